//! Command-line and environment interface (clap). Values are parsed here;
//! ranges and cross-setting rules are checked once in [`crate::app::config`].

use std::net::IpAddr;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "trafficgen",
    version,
    about = "Always-on HTTP traffic generator sidecar: a switchable, stateful request mix for demo and observability stacks",
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub sidecar: SidecarArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the built-in in-memory orders API to aim traffic at
    DemoTarget(DemoTargetArgs),
    /// Exit 0 if the sidecar (or demo target) at --url answers healthy, 1 otherwise
    Healthcheck(HealthcheckArgs),
    /// Workload files: check one and see what it would send
    Workload(WorkloadArgs),
    /// Write the traffic of a workload as a k6, Locust or Artillery script (sends nothing)
    Export(ExportArgs),
    /// Send a scenario at TARGET_URL once, judge the SLOs, print a summary; exit 0 (SLOs hold), 1 (one missed), 2 (bad input)
    Run(RunArgs),
}

/// Settings of `trafficgen run` (the one-shot CI mode).
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Base URL of the system under load (http[s]://host[:port][/prefix])
    #[arg(env = "TARGET_URL")]
    pub target_url: String,

    /// The workload file (YAML or JSON); without it, the built-in orders workload (MIX)
    #[arg(long, env = env_unless_empty("WORKLOAD_FILE"))]
    pub workload: Option<String>,

    /// The scenario: normal, peak, error_injection, latency_degradation or stress
    #[arg(long, default_value = "normal")]
    pub scenario: String,

    /// How long it runs: 90, 30s, 5m, 1h (1 s to 24 h)
    #[arg(long, default_value = "60s")]
    pub duration: String,

    /// The rate the scenario rises to, requests per second
    #[arg(value_parser = number::<f64>, long, default_value_t = 10.0)]
    pub max_rps: f64,

    /// A linear rise from 0 at the start (not for peak, which has its own)
    #[arg(long, default_value = "0s")]
    pub ramp_up: String,

    /// Virtual users the scenario rises to (the closed model), instead of --max-rps
    #[arg(value_parser = number::<u64>, long, conflicts_with = "max_rps")]
    pub users: Option<u64>,

    /// Stages of your own instead of the scenario's shape: DURATION:RATE,… e.g. 30s:50,1m:50,10s:200,20s:0 (each a straight line from the previous target, 0 before the first)
    #[arg(long, conflicts_with_all = ["duration", "max_rps", "ramp_up", "users"])]
    pub stages: Option<String>,

    /// Like --stages, in virtual users: DURATION:USERS,… e.g. 1m:20,5m:20,30s:0
    #[arg(long, conflicts_with_all = ["duration", "max_rps", "ramp_up", "users", "stages"])]
    pub user_stages: Option<String>,

    /// Only these requests of the workload, comma-separated names (default: all)
    #[arg(long)]
    pub endpoints: Option<String>,

    /// Objectives the run is judged on: "p95<300ms,error_rate<1%,rps>=95%,create_order:p99<1s"
    #[arg(long, env = env_unless_empty("SLO"))]
    pub slo: Option<String>,

    /// The sliding window SLOs are judged over (10 s to 24 h) [default: 1m, or the whole run if shorter]
    #[arg(long, env = env_unless_empty("SLO_WINDOW"))]
    pub slo_window: Option<String>,

    /// Stop as soon as an SLO has been missed for a whole window
    #[arg(long)]
    pub abort_on_fail: bool,

    /// Write the summary as JSON to this file
    #[arg(long)]
    pub summary_json: Option<std::path::PathBuf>,

    /// Serve the control API on 127.0.0.1:PORT while it runs, to watch it (/status, /events)
    #[arg(long)]
    pub port: Option<u16>,

    /// Weights of the built-in workload (ignored with --workload)
    #[arg(long, env = "MIX", default_value = "create_order=60,list_orders=25,get_order=15")]
    pub mix: String,

    /// Per-request timeout, connect to last body byte, in ms
    #[arg(value_parser = number::<u64>, long, env = "REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub request_timeout_ms: u64,

    /// Bound on concurrent requests
    #[arg(value_parser = number::<usize>, long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Progress lines: auto (a bar on a terminal, plain lines otherwise), bar, plain or none
    #[arg(long, default_value = "auto")]
    pub progress: String,
}

/// `name`, unless that variable is set but empty: then the setting reads
/// no variable, as if unset (its default, or none). Compose files write
/// `STATE_DIR: ${STATE_DIR:-}`, which sets it empty when the user did not.
/// For the settings that are off or optional unless given; the others
/// read theirs as is (an empty rate or port is a mistake to report, and an
/// empty control token stops start-up: it fails closed).
fn env_unless_empty(name: &'static str) -> Option<&'static str> {
    let empty = std::env::var_os(name).is_some_and(|value| value.is_empty());
    (!empty).then_some(name)
}

pub use crate::observe::logging::LogFormat;

/// Settings of the sidecar (the default command).
#[derive(Debug, Clone, Args)]
pub struct SidecarArgs {
    /// Base URL of the system under load (http://host[:port][/prefix])
    #[arg(long, env = "TARGET_URL", default_value = "http://nginx")]
    pub target_url: String,

    /// Control server port (0 = pick a free one, and log it)
    #[arg(value_parser = number::<u16>, long, env = "PORT", default_value_t = 8089)]
    pub port: u16,

    /// Control server address (the image sets 0.0.0.0; a bare binary stays on loopback)
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Seconds to wait before traffic starts [default: 10, or 1 with --demo]
    #[arg(value_parser = number::<f64>, long, env = env_unless_empty("WARMUP_SECS"))]
    pub warmup_secs: Option<f64>,

    /// Mode entered after the warm-up: steady, burst, overload or pause
    #[arg(long, env = "INITIAL_MODE", default_value = "steady")]
    pub initial_mode: String,

    /// Requests per second in steady mode
    #[arg(value_parser = number::<f64>, long, env = "STEADY_RPS", default_value_t = 2.0)]
    pub steady_rps: f64,

    /// Requests per second in burst mode
    #[arg(value_parser = number::<f64>, long, env = "BURST_RPS", default_value_t = 20.0)]
    pub burst_rps: f64,

    /// Requests per second in overload mode
    #[arg(value_parser = number::<f64>, long, env = "OVERLOAD_RPS", default_value_t = 100.0)]
    pub overload_rps: f64,

    /// Hard cap on every rate; no mode or runtime call can exceed it
    #[arg(value_parser = number::<f64>, long, env = "MAX_RPS", default_value_t = 1000.0)]
    pub max_rps: f64,

    /// ± fraction of randomness on each inter-arrival gap (0 to 1)
    #[arg(value_parser = number::<f64>, long, env = "JITTER", default_value_t = 0.2)]
    pub jitter: f64,

    /// Request weights, endpoint=weight,…
    #[arg(long, env = "MIX", default_value = "create_order=60,list_orders=25,get_order=15")]
    pub mix: String,

    /// How many recently created order ids to remember for get_order
    #[arg(value_parser = number::<usize>, long, env = "ID_BUFFER_SIZE", default_value_t = 50)]
    pub id_buffer_size: usize,

    /// Workload file (YAML or JSON) to send instead of the built-in orders traffic; empty = none
    #[arg(long = "workload", env = env_unless_empty("WORKLOAD_FILE"))]
    pub workload_file: Option<String>,

    /// Path of the target's OpenAPI document (e.g. /openapi.json): without WORKLOAD_FILE, the workload is derived from it at start; empty = none
    #[arg(long, env = env_unless_empty("OPENAPI_PATH"))]
    pub openapi_path: Option<String>,

    /// Per-request timeout in milliseconds
    #[arg(value_parser = number::<u64>, long, env = "REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub request_timeout_ms: u64,

    /// Bound on concurrent requests; a request due while it is full is dropped and counted
    #[arg(value_parser = number::<usize>, long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Bound on journey instances running at once; an arrival that finds it full is dropped and counted
    #[arg(long, env = "MAX_JOURNEYS", default_value_t = 10000)]
    pub max_journeys: usize,

    /// Bound on virtual users (users mode, the closed model), of all replicas together
    #[arg(long, env = "MAX_USERS", default_value_t = 1000)]
    pub max_users: u64,

    /// A virtual user's pause between iterations: `1s`, or `1s..3s` (uniform)
    #[arg(long, env = "USER_PAUSE", default_value = "1s")]
    pub user_pause: String,

    /// Directory a workload's data files are read from (without it: the workload file's own; a workload put over the API reads none)
    #[arg(long, env = env_unless_empty("DATA_DIR"))]
    pub data_dir: Option<std::path::PathBuf>,

    /// Log line format (level from RUST_LOG, default info)
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish
    #[arg(value_parser = number::<f64>, long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 5.0)]
    pub shutdown_grace_secs: f64,

    /// Seconds between stats log lines, 0 = none [default: 30, or 5 with --demo]
    #[arg(value_parser = number::<f64>, long, env = env_unless_empty("STATS_INTERVAL_SECS"))]
    pub stats_interval_secs: Option<f64>,

    /// Bearer token required on every state-changing control request (default: none)
    #[arg(long, env = "CONTROL_TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,

    /// File holding the control token (compose/Kubernetes secrets); trailing newline ignored
    #[arg(long, env = "CONTROL_TOKEN_FILE")]
    pub control_token_file: Option<std::path::PathBuf>,

    /// Browser origins allowed to change state besides loopback ones (comma-separated scheme://host[:port])
    #[arg(long, env = env_unless_empty("ALLOWED_ORIGINS"))]
    pub allowed_origins: Option<String>,

    /// Control connections held at once; when full, the one longest without an answer is closed
    #[arg(value_parser = number::<usize>, long, env = "CONTROL_MAX_CONNECTIONS", default_value_t = 256)]
    pub control_max_connections: usize,

    /// A control connection that goes this long without an answer (slow head, slow body, idle) is closed, in ms
    #[arg(value_parser = number::<u64>, long, env = "CONTROL_REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub control_request_timeout_ms: u64,

    /// Memory the process may use, in MiB; a workload that cannot fit (requests in flight × their size and answer buffers, full pools) is refused
    #[arg(value_parser = number::<u64>, long, env = "MEMORY_BUDGET_MB", default_value_t = crate::engine::memory::DEFAULT_MEMORY_BUDGET_MB)]
    pub memory_budget_mb: u64,

    /// Replicas that split the rate and switch together: dns:NAME:PORT (every address NAME resolves to, e.g. a Compose service or a headless Service) or static:ADDR:PORT,…; empty = none
    #[arg(long, env = env_unless_empty("PEERS"))]
    pub peers: Option<String>,

    /// Secret the replicas of PEERS share to prove themselves to each other (at least 16 characters, the same on every replica; never sent). Required with PEERS unless CONTROL_TOKEN is set, which then serves
    #[arg(long, env = env_unless_empty("CLUSTER_SECRET"), hide_env_values = true)]
    pub cluster_secret: Option<String>,

    /// File holding the cluster secret (compose/Kubernetes secrets); trailing newline ignored
    #[arg(long, env = env_unless_empty("CLUSTER_SECRET_FILE"))]
    pub cluster_secret_file: Option<std::path::PathBuf>,

    /// Also start the built-in demo target on a free loopback port and aim at it (TARGET_URL is ignored)
    #[arg(long)]
    pub demo: bool,

    // Connections to the target (issue 9).
    /// Milliseconds an idle connection to the target is kept for reuse (0 = a new connection per request); shortened by the target's Keep-Alive: timeout=N
    #[arg(value_parser = number::<u64>, long, env = "KEEP_ALIVE_MS", default_value_t = 1500)]
    pub keep_alive_ms: u64,

    /// PEM file of the CAs to trust for an https target, instead of the built-in Mozilla roots
    #[arg(long, env = env_unless_empty("TLS_CA_FILE"))]
    pub tls_ca_file: Option<std::path::PathBuf>,

    /// Directory keeping runtime config changes and the job history across restarts, one process per directory (default: none, memory only)
    #[arg(long, env = env_unless_empty("STATE_DIR"))]
    pub state_dir: Option<std::path::PathBuf>,

    /// Accept any certificate from an https target (self-signed staging only; logged as a warning)
    #[arg(long, env = "TLS_INSECURE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_insecure: bool,

    // Observability (issue 12).
    /// Add a fresh W3C traceparent and X-Synthetic-Traffic: trafficgen to every request
    #[arg(long, env = "TRACE_HEADERS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trace_headers: bool,

    /// The sampled flag of the traceparent header (true: 01, false: 00) while no spans are exported; with spans, OTEL_TRACES_SAMPLER decides
    #[arg(long, env = "TRACE_SAMPLED", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trace_sampled: bool,

    /// Add W3C baggage synthetic_request=true to every request (with TRACE_HEADERS), so instrumented services pass the mark on
    #[arg(long, env = "TRACE_BAGGAGE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub trace_baggage: bool,

    #[command(flatten)]
    pub otel: OtelArgs,

    /// Service level objectives judged continuously, e.g. "p95<300ms,error_rate<1%,rps>=95%,create_order:p99<1s"
    #[arg(long, env = env_unless_empty("SLO"))]
    pub slo: Option<String>,

    /// The sliding window SLOs are judged over: seconds, or a number with s, m or h (10s to 24h, e.g. 30s, 1.5m)
    #[arg(long, env = env_unless_empty("SLO_WINDOW"), default_value = "1m")]
    pub slo_window: String,
}

/// Settings of `trafficgen demo-target`.
#[derive(Debug, Clone, Args)]
pub struct DemoTargetArgs {
    /// Port to serve on (0 = pick a free one, and log it)
    #[arg(value_parser = number::<u16>, long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to serve on (the image sets 0.0.0.0; a bare binary stays on loopback)
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Delay added to every API answer, in milliseconds
    #[arg(value_parser = number::<u64>, long, env = "DEMO_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,

    /// Fraction (0 to 1) of API requests answered with 500
    #[arg(value_parser = number::<f64>, long, env = "DEMO_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,

    /// How many orders to keep; the oldest are forgotten
    #[arg(value_parser = number::<usize>, long, env = "DEMO_MAX_ORDERS", default_value_t = 10_000)]
    pub max_orders: usize,

    /// How many users to keep; the oldest are forgotten
    #[arg(value_parser = number::<usize>, long, env = "DEMO_MAX_USERS", default_value_t = 10_000)]
    pub max_users: usize,

    /// Worker threads
    #[arg(value_parser = number::<usize>, long, env = "DEMO_WORKERS", default_value_t = 1)]
    pub workers: usize,

    /// POST /login answers 503 for this many seconds after start (an auth service still starting)
    #[arg(value_parser = number::<u64>, long, env = "DEMO_LOGIN_FAIL_SECS", default_value_t = 0)]
    pub login_fail_secs: u64,

    /// How long a login token lives, in seconds (the login's `expires_in`)
    #[arg(value_parser = number::<u64>, long, env = "DEMO_TOKEN_TTL_SECS", default_value_t = 900)]
    pub token_ttl_secs: u64,

    /// Log line format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub otel: OtelArgs,
}

/// Span export (issue 28): the OpenTelemetry SDK's own environment
/// variables, with the spec's defaults. The sidecar and the demo target
/// read the same ones. An empty variable counts as unset, as the spec says.
#[derive(Debug, Clone, Args)]
pub struct OtelArgs {
    /// OTLP/HTTP base URL spans are sent to, /v1/traces appended (http only, e.g. http://otel-collector:4318); unset = no spans exported
    #[arg(long, env = env_unless_empty("OTEL_EXPORTER_OTLP_ENDPOINT"))]
    pub otel_exporter_otlp_endpoint: Option<String>,

    /// The traces URL itself, used as is (wins over OTEL_EXPORTER_OTLP_ENDPOINT)
    #[arg(long, env = env_unless_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))]
    pub otel_exporter_otlp_traces_endpoint: Option<String>,

    /// The export protocol: only http/protobuf (grpc and http/json are refused)
    #[arg(long, env = env_unless_empty("OTEL_EXPORTER_OTLP_PROTOCOL"), default_value = "http/protobuf")]
    pub otel_exporter_otlp_protocol: String,

    /// Headers sent with every export, key=value,… with percent-encoded values (e.g. an API key)
    #[arg(long, env = env_unless_empty("OTEL_EXPORTER_OTLP_HEADERS"), hide_env_values = true)]
    pub otel_exporter_otlp_headers: Option<String>,

    /// Longest one export may take, connect to answer, in milliseconds; then its spans are dropped
    #[arg(value_parser = number::<u64>, long, env = env_unless_empty("OTEL_EXPORTER_OTLP_TIMEOUT"), default_value_t = 10_000)]
    pub otel_exporter_otlp_timeout: u64,

    /// service.name of the spans (default trafficgen; the demo target's: demo-target)
    #[arg(long, env = env_unless_empty("OTEL_SERVICE_NAME"))]
    pub otel_service_name: Option<String>,

    /// More resource attributes, key=value,… (e.g. deployment.environment=demo)
    #[arg(long, env = env_unless_empty("OTEL_RESOURCE_ATTRIBUTES"))]
    pub otel_resource_attributes: Option<String>,

    /// Which traces are sampled: always_on, always_off, traceidratio or parentbased_ of these
    #[arg(long, env = env_unless_empty("OTEL_TRACES_SAMPLER"), default_value = "parentbased_always_on")]
    pub otel_traces_sampler: String,

    /// The ratio of traceidratio, 0 to 1 [default: 1.0]
    #[arg(long, env = env_unless_empty("OTEL_TRACES_SAMPLER_ARG"))]
    pub otel_traces_sampler_arg: Option<String>,

    /// otlp, or none for no spans even with an endpoint set
    #[arg(long, env = env_unless_empty("OTEL_TRACES_EXPORTER"), default_value = "otlp")]
    pub otel_traces_exporter: String,

    /// true: no spans, whatever else is set
    #[arg(long, env = env_unless_empty("OTEL_SDK_DISABLED"), default_value = "false")]
    pub otel_sdk_disabled: String,

    /// Longest a span waits to be sent in a batch that is not full, in milliseconds
    #[arg(value_parser = number::<u64>, long, env = env_unless_empty("OTEL_BSP_SCHEDULE_DELAY"), default_value_t = 5000)]
    pub otel_bsp_schedule_delay: u64,

    /// Spans waiting to be sent; when full, new spans are dropped and counted
    #[arg(value_parser = number::<usize>, long, env = env_unless_empty("OTEL_BSP_MAX_QUEUE_SIZE"), default_value_t = 2048)]
    pub otel_bsp_max_queue_size: usize,

    /// Most spans in one export (at most OTEL_BSP_MAX_QUEUE_SIZE)
    #[arg(value_parser = number::<usize>, long, env = env_unless_empty("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"), default_value_t = 512)]
    pub otel_bsp_max_export_batch_size: usize,
}

/// Settings of `trafficgen healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Health URL to ask [default: http://127.0.0.1:$PORT/health; without PORT, port 8089 then 8080]
    #[arg(long, env = env_unless_empty("HEALTHCHECK_URL"))]
    pub url: Option<String>,

    /// Give up after this many milliseconds
    #[arg(value_parser = number::<u64>, long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

/// `trafficgen workload …`.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    #[command(subcommand)]
    pub command: WorkloadCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum WorkloadCommand {
    /// Read and check a workload file; print it normalised with a sample of each request (sends nothing).
    /// Exit 0, or 2 with one `file:line:column: problem` line per problem
    Check(WorkloadCheckArgs),
    /// Derive a workload from an OpenAPI 3.0/3.1 document (JSON or YAML, a file or - for stdin) and write it (sends nothing).
    /// Exit 0 with a workload, 2 when the document gives none
    FromOpenapi(FromOpenApiArgs),
}

/// Settings of `trafficgen workload from-openapi`.
#[derive(Debug, Clone, Args)]
pub struct FromOpenApiArgs {
    /// The OpenAPI document (JSON or YAML, at most 8 MiB), or - to read it from stdin
    pub spec: String,

    /// Write the workload to this file instead of stdout
    #[arg(short, long)]
    pub out: Option<std::path::PathBuf>,

    /// Weight of each read (GET, HEAD, OPTIONS)
    #[arg(value_parser = number::<u32>, long, default_value_t = crate::openapi::READ_WEIGHT)]
    pub read_weight: u32,

    /// Weight of each write (POST, PUT, PATCH, DELETE)
    #[arg(value_parser = number::<u32>, long, default_value_t = crate::openapi::WRITE_WEIGHT)]
    pub write_weight: u32,

    /// Also send DELETE operations (they take ids from the same pools, so reads may find them gone)
    #[arg(long)]
    pub include_delete: bool,

    /// Also send operations marked deprecated
    #[arg(long)]
    pub include_deprecated: bool,

    /// The operation that logs in (its operationId, or "POST /path"), or none [default: an OAuth2 password flow's tokenUrl, else an operation that takes a password and answers a token]
    #[arg(long)]
    pub login: Option<String>,
}

/// Settings of `trafficgen workload check`.
#[derive(Debug, Clone, Args)]
pub struct WorkloadCheckArgs {
    /// The workload file (YAML or JSON, at most 1 MiB)
    pub file: std::path::PathBuf,

    /// Base URL the samples are rendered for (their Host and path prefix)
    #[arg(long, env = "TARGET_URL", default_value = "http://nginx")]
    pub target_url: String,

    /// Size of the pools that do not give one
    #[arg(value_parser = number::<usize>, long, env = "ID_BUFFER_SIZE", default_value_t = 50)]
    pub id_buffer_size: usize,
}

/// Settings of `trafficgen export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The tool to write a script for: k6, locust or artillery (required)
    #[arg(long)]
    pub format: Option<String>,

    /// The workload file (YAML or JSON); without it, the built-in orders workload (MIX, ID_BUFFER_SIZE)
    #[arg(long, env = env_unless_empty("WORKLOAD_FILE"))]
    pub workload: Option<std::path::PathBuf>,

    /// A scenario: normal, peak, error_injection, latency_degradation or stress (needs --max-rps)
    #[arg(long)]
    pub scenario: Option<String>,

    /// How long the script runs: 500ms, 60s, 5m, 1h [default: 60s]
    #[arg(long)]
    pub duration: Option<String>,

    /// The rate the scenario rises to, requests per second
    #[arg(value_parser = number::<f64>, long)]
    pub max_rps: Option<f64>,

    /// A linear rise from 0 at the start (not for peak, which has its own) [default: 0s]
    #[arg(long)]
    pub ramp_up: Option<String>,

    /// Without a scenario: the constant rate, requests per second [default: 2]
    #[arg(value_parser = number::<f64>, long)]
    pub rps: Option<f64>,

    /// Virtual users (the closed model), instead of a rate: the constant number, or the number a --scenario rises to
    #[arg(long, allow_hyphen_values = true)]
    pub users: Option<String>,

    /// Like --users, stages of your own in virtual users: DURATION:USERS,… e.g. 1m:20,5m:20,30s:0 (each a straight line from the previous number, 0 before the first)
    #[arg(long)]
    pub user_stages: Option<String>,

    /// The users' pause after each arrival, with --users or --user-stages: 1s, or 1s..3s (any time between, each as likely) [default: 1s, USER_PAUSE's default]
    #[arg(long)]
    pub pause: Option<String>,

    /// Only these weighted requests are drawn, comma-separated names, as a job's endpoints (default: all)
    #[arg(long)]
    pub endpoints: Option<String>,

    /// Objectives to gate the run on: "p95<300ms,error_rate<1%,rps>=95%,create_order:p99<1s"
    #[arg(long, env = env_unless_empty("SLO"))]
    pub slo: Option<String>,

    /// The base URL written into the script (each tool can override it when it runs)
    #[arg(long, env = "TARGET_URL", default_value = "http://nginx")]
    pub target_url: String,

    /// Weights of the built-in workload (ignored with --workload)
    #[arg(long, env = "MIX", default_value = "create_order=60,list_orders=25,get_order=15")]
    pub mix: String,

    /// Size of the pools that do not give one
    #[arg(value_parser = number::<usize>, long, env = "ID_BUFFER_SIZE", default_value_t = 50)]
    pub id_buffer_size: usize,

    /// Bound on requests in flight (k6 maxVUs, Artillery maxVusers)
    #[arg(value_parser = number::<usize>, long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Write the script to this file instead of stdout
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
}

/// A number setting. clap's own message ("invalid float literal") names
/// no remedy; this one says what is expected.
fn number<T: std::str::FromStr>(raw: &str) -> Result<T, String> {
    raw.trim().parse::<T>().map_err(|_| match std::any::type_name::<T>() {
        "f64" => "expected a number such as 2, 0.5 or 1e3".to_string(),
        "u16" => format!("expected a whole number from 0 to {}", u16::MAX),
        _ => "expected a whole number such as 5000".to_string(),
    })
}
