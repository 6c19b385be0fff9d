//! The sidecar's validated settings: built once at start from the CLI/env
//! values, so the rest of the program never sees an out-of-range value.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::app::cli::{DemoTargetArgs, OtelArgs, SidecarArgs};
use crate::app::openapi_source::{self, OpenApiPath};
use crate::base::otlp::settings as otlp_settings;
use crate::base::otlp::{Endpoint as OtlpEndpoint, ExportSettings, SpanExport};
pub use crate::base::setting::ConfigError;
pub use crate::base::token::ControlToken;
use crate::base::trace_context::Sampler;
pub use crate::base::url::TargetUrl;
use crate::cluster::Peers;
use crate::cluster::auth::{ClusterKey, MIN_SECRET_CHARS};
use crate::cluster::peers::PeersSetting;
use crate::control::origin::AllowedOrigins;
use crate::control::server::ServerLimits;
use crate::demo_target::DemoTargetSettings;
use crate::engine::EngineSettings;
use crate::engine::client::ClientSettings;
use crate::engine::memory::{MIB, MemoryBudget};
use crate::engine::mode::{MIN_RPS, Mode, ModeTable, check_rate};
use crate::engine::tls::{TlsError, TlsSettings, client_config};
use crate::engine::users::UserPause;
use crate::observe::logging::LogFormat;
use crate::observe::slo::Slo;
use crate::workload::TraceHeaders;
use crate::workload::mix::{Endpoint, Mix};
use crate::workload::{self, OrderWeights, Workload};

/// A token file is a few dozen bytes; a bigger one is a mistake (a wrong
/// path, a device) and must not be read into memory whole.
pub const MAX_TOKEN_FILE_BYTES: u64 = 4096;

fn read_token_file(setting: &'static str, path: &std::path::Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let error = |reason: &dyn fmt::Display| ConfigError::new(setting, path.display(), reason);
    let file = crate::base::file::open_regular(path).map_err(|e| error(&format_args!("cannot be read: {e}")))?;
    let mut raw = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| error(&format_args!("cannot be read: {e}")))?;
    if raw.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(error(&format_args!("is larger than {MAX_TOKEN_FILE_BYTES} bytes; it should hold only the token")));
    }
    String::from_utf8(raw).map_err(|_| error(&"is not text"))
}

fn control_token(args: &SidecarArgs) -> Result<Option<ControlToken>, ConfigError> {
    let raw = match (&args.control_token, &args.control_token_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "CONTROL_TOKEN_FILE",
                "…",
                "set CONTROL_TOKEN or CONTROL_TOKEN_FILE, not both",
            ));
        }
        (Some(token), None) => {
            return ControlToken::parse(token)
                .map(Some)
                .map_err(|e| ConfigError::new("CONTROL_TOKEN", "<redacted>", e));
        }
        (None, Some(path)) => read_token_file("CONTROL_TOKEN_FILE", path)?,
        (None, None) => return Ok(None),
    };
    let token = without_line_end(&raw);
    let path = args.control_token_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    ControlToken::parse(token)
        .map(Some)
        .map_err(|e| ConfigError::new("CONTROL_TOKEN_FILE", path, format_args!("token {e}")))
}

/// A secret file's text without its trailing line break.
fn without_line_end(raw: &str) -> &str {
    raw.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(raw)
}

/// `PEERS` and the key the replicas prove themselves with: from
/// `CLUSTER_SECRET` or `CLUSTER_SECRET_FILE`, else from `CONTROL_TOKEN`.
/// Without any secret the replica runs alone, and says so in `warnings`:
/// it sends no message to a peer and takes none (a listener on a vacant
/// address could otherwise pose as a replica), and a single replica from
/// a compose file that names its peers needs no setup.
fn peers(
    args: &SidecarArgs,
    token: Option<&ControlToken>,
    warnings: &mut Vec<String>,
) -> Result<Option<Peers>, ConfigError> {
    let secret = match (&args.cluster_secret, &args.cluster_secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "CLUSTER_SECRET_FILE",
                "…",
                "set CLUSTER_SECRET or CLUSTER_SECRET_FILE, not both",
            ));
        }
        (Some(secret), None) => Some(("CLUSTER_SECRET", secret.clone())),
        (None, Some(path)) => {
            Some(("CLUSTER_SECRET_FILE", without_line_end(&read_token_file("CLUSTER_SECRET_FILE", path)?).to_string()))
        }
        (None, None) => None,
    };
    // Checked whenever given, so a mistake shows before PEERS is set.
    if let Some((setting, secret)) = &secret {
        check_cluster_secret(setting, secret, "")?;
    }
    let Some(raw) = &args.peers else { return Ok(None) };
    let Some(setting) = PeersSetting::parse(raw).map_err(|e| ConfigError::new("PEERS", raw, e))? else {
        return Ok(None);
    };
    let secret = match (secret, token) {
        (Some((_, secret)), _) => secret,
        (None, Some(token)) => {
            check_cluster_secret(
                "CONTROL_TOKEN",
                token.expose(),
                " (without CLUSTER_SECRET it is the replicas' shared secret; set CLUSTER_SECRET, or a longer token)",
            )?;
            token.expose().to_string()
        }
        (None, None) => {
            warnings.push(format!(
                "PEERS={raw} is set but no CLUSTER_SECRET: this replica runs alone and sends the whole rate; \
                 replicas prove to each other that they share a secret, so set CLUSTER_SECRET (or \
                 CLUSTER_SECRET_FILE) to the same random string of at least {MIN_SECRET_CHARS} characters on \
                 every replica to split the rate (CONTROL_TOKEN serves when set)"
            ));
            return Ok(None);
        }
    };
    Ok(Some(Peers { setting, key: ClusterKey::derive(secret.as_bytes()) }))
}

fn check_cluster_secret(setting: &'static str, secret: &str, hint: &str) -> Result<(), ConfigError> {
    let error = |reason: String| Err(ConfigError::new(setting, "<redacted>", reason));
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return error(format!("must be printable ASCII without spaces{hint}"));
    }
    if secret.len() < MIN_SECRET_CHARS {
        return error(format!(
            "is {} characters long, fewer than {MIN_SECRET_CHARS}: a signed request lets anyone who sees it test guesses offline{hint}",
            secret.len()
        ));
    }
    Ok(())
}

/// Span export from the OpenTelemetry SDK's variables, every one checked
/// (set or not, so a mistake shows before it matters); `None` when no
/// endpoint is set, `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
/// `service` names the spans when `OTEL_SERVICE_NAME` does not.
pub fn span_export(args: &OtelArgs, service: &str) -> Result<Option<SpanExport>, ConfigError> {
    let bad = |setting: &'static str, value: &str, reason: String| ConfigError::new(setting, value, reason);
    otlp_settings::check_protocol(&args.otel_exporter_otlp_protocol)
        .map_err(|e| bad("OTEL_EXPORTER_OTLP_PROTOCOL", &args.otel_exporter_otlp_protocol, e))?;
    let disabled = otlp_settings::boolean(&args.otel_sdk_disabled)
        .map_err(|e| bad("OTEL_SDK_DISABLED", &args.otel_sdk_disabled, e))?;
    let exporter = args.otel_traces_exporter.trim();
    let exporting = match exporter {
        "otlp" => true,
        "none" => false,
        _ => return Err(bad("OTEL_TRACES_EXPORTER", exporter, "must be otlp or none".into())),
    };
    let endpoint = match (&args.otel_exporter_otlp_traces_endpoint, &args.otel_exporter_otlp_endpoint) {
        (Some(raw), _) => {
            Some(OtlpEndpoint::from_signal(raw).map_err(|e| bad("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raw, e))?)
        }
        (None, Some(raw)) => {
            Some(OtlpEndpoint::from_base(raw).map_err(|e| bad("OTEL_EXPORTER_OTLP_ENDPOINT", raw, e))?)
        }
        (None, None) => None,
    };
    let sampler = Sampler::parse(&args.otel_traces_sampler, args.otel_traces_sampler_arg.as_deref())
        .map_err(|e| bad("OTEL_TRACES_SAMPLER", &args.otel_traces_sampler, e))?;
    let headers = match &args.otel_exporter_otlp_headers {
        None => Vec::new(),
        Some(raw) => otlp_settings::headers(raw).map_err(|e| bad("OTEL_EXPORTER_OTLP_HEADERS", "<redacted>", e))?,
    };
    let attributes = match &args.otel_resource_attributes {
        None => Vec::new(),
        Some(raw) => otlp_settings::resource_attributes(raw).map_err(|e| bad("OTEL_RESOURCE_ATTRIBUTES", raw, e))?,
    };
    let service_name = args.otel_service_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if let Some(name) = service_name
        && name.len() > otlp_settings::MAX_ATTRIBUTE_VALUE_BYTES
    {
        return Err(bad("OTEL_SERVICE_NAME", name, "is too long".into()));
    }
    let timeout = whole("OTEL_EXPORTER_OTLP_TIMEOUT", args.otel_exporter_otlp_timeout, 1, 600_000)?;
    let delay = whole("OTEL_BSP_SCHEDULE_DELAY", args.otel_bsp_schedule_delay, 1, 600_000)?;
    let queue_size = whole("OTEL_BSP_MAX_QUEUE_SIZE", args.otel_bsp_max_queue_size, 1, 1_000_000)?;
    // At most the queue (the spec's rule), so a small queue needs no second setting.
    let batch_size =
        whole("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", args.otel_bsp_max_export_batch_size, 1, 100_000)?.min(queue_size);
    let Some(endpoint) = endpoint.filter(|_| exporting && !disabled) else { return Ok(None) };
    let mut export = ExportSettings::new(endpoint, service).with_resource(attributes, service_name);
    export.headers = headers;
    export.timeout = Duration::from_millis(timeout);
    export.schedule_delay = Duration::from_millis(delay);
    export.queue_size = queue_size;
    export.batch_size = batch_size;
    Ok(Some(SpanExport { export, sampler }))
}

/// What the process holds whatever the workload: the runtime, metrics and
/// the log ring (measured 7.5 MiB idle; the ring holds up to 2 MiB), one
/// workload check or export at a time (a megabyte of hostile YAML or a
/// 4 MiB script: 16 MiB), the control API's answers waiting to be read
/// (see `crate::control::output`), and each control connection's buffers
/// at most (measured about 30 KiB).
fn fixed_memory(control_connections: usize) -> u64 {
    const CONTROL_CONNECTION_BYTES: u64 = 32 * 1024;
    12 * MIB
        + 16 * MIB
        + crate::control::output::OUTPUT_BUDGET_BYTES as u64
        + CONTROL_CONNECTION_BYTES.saturating_mul(control_connections as u64)
}

/// What span export holds at most: the queue full of spans (each about
/// 200 bytes and a URL of at most `MAX_URL_BYTES`), the batch taken from
/// it and its encoding.
fn span_memory(spans: Option<&SpanExport>) -> u64 {
    const SPAN_BYTES: u64 = 256 + crate::engine::spans::MAX_URL_BYTES as u64;
    spans.map_or(0, |s| SPAN_BYTES.saturating_mul((s.export.queue_size + 2 * s.export.batch_size) as u64))
}

/// Everything the sidecar needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// What the traffic engine needs: target, modes, mix, bounds.
    pub engine: EngineSettings,
    pub listen: SocketAddr,
    pub warmup: Duration,
    pub log_format: LogFormat,
    /// `None`: no periodic stats line.
    pub stats_interval: Option<Duration>,
    /// Start the built-in demo target in process and aim at it.
    pub demo: bool,
    /// Required on state-changing control requests when set.
    pub control_token: Option<ControlToken>,
    /// Browser origins, besides loopback ones, that may change state.
    pub allowed_origins: AllowedOrigins,
    /// Bounds of the control server.
    pub control_limits: ServerLimits,
    /// `MEMORY_BUDGET_MB`, which the workload was checked against.
    pub memory_budget: MemoryBudget,
    /// The other replicas and the key they share; `None`: this sidecar runs alone.
    pub peers: Option<Peers>,
    /// Said once the log is set up: settings that were taken but are
    /// probably not what was meant.
    pub warnings: Vec<String>,
    /// Objectives judged continuously (empty: none).
    pub slos: Vec<Slo>,
    /// The window they are judged over.
    pub slo_window: Duration,
    /// Client spans over OTLP; `None`: none are made.
    pub spans: Option<SpanExport>,
    /// Where config changes and the job history are kept; `None`: memory only.
    pub state: Option<crate::state::StateStore>,
    /// The settings as given, without secrets or files: what `PUT /config`
    /// checks a change against (see [`crate::state::RuntimeSettings`]).
    pub runtime_args: SidecarArgs,
    /// `OPENAPI_PATH`: the workload is derived from the target's document at start.
    pub openapi: Option<OpenApiPath>,
}

pub(crate) const MAX_RPS_LIMIT: f64 = 1_000_000.0;

/// The largest `MAX_USERS`: a user is a few dozen bytes, but each may hold
/// a request in flight and a connection.
pub const MAX_USERS_LIMIT: u64 = 100_000;

/// Connection reuse and https trust (issue 9).
fn client_settings(
    args: &SidecarArgs,
    target: &TargetUrl,
    max_in_flight: usize,
) -> Result<ClientSettings, ConfigError> {
    let idle_keep = Duration::from_millis(whole("KEEP_ALIVE_MS", args.keep_alive_ms, 0, 3_600_000)?);
    if args.tls_insecure && args.tls_ca_file.is_some() {
        return Err(ConfigError::new(
            "TLS_INSECURE",
            "true",
            "set TLS_CA_FILE (trust these CAs) or TLS_INSECURE (trust any certificate), not both",
        ));
    }
    let tls_settings = TlsSettings { ca_file: args.tls_ca_file.clone(), insecure: args.tls_insecure };
    let tls = if target.is_https() {
        let config = client_config(&tls_settings).map_err(|e| match e {
            TlsError::CaFile { path, reason } => ConfigError::new("TLS_CA_FILE", path, reason),
            other => ConfigError::new("TARGET_URL", target.as_str(), other),
        })?;
        Some(config)
    } else {
        // Checked all the same, so a broken file is found before it matters.
        client_config(&tls_settings).map_err(|e| ConfigError::new("TLS_CA_FILE", "…", e))?;
        None
    };
    Ok(ClientSettings { idle_keep, max_connections: max_in_flight, tls, tls_insecure: args.tls_insecure })
}

/// The built-in orders workload with `MIX`'s weights.
pub fn builtin_workload(mix: Mix, options: &workload::Options) -> Result<Workload, workload::LoadError> {
    let weights = OrderWeights {
        create_order: mix.weight(Endpoint::CreateOrder),
        list_orders: mix.weight(Endpoint::ListOrders),
        get_order: mix.weight(Endpoint::GetOrder),
    };
    workload::orders(weights, options)
}

/// `WORKLOAD_FILE`, read and checked: every problem on a line of its own,
/// as `file:line:column: what is wrong`.
fn load_workload(path: &std::path::Path, options: &workload::Options) -> Result<Workload, ConfigError> {
    workload::load_file(path, options).map_err(|e| {
        let count = e.count();
        let noun = if count == 1 { "problem" } else { "problems" };
        ConfigError::new("WORKLOAD_FILE", path.display(), format_args!("{count} {noun}:\n{e}"))
    })
}

fn seconds(setting: &'static str, value: f64, min: f64, max: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::new(setting, value, format_args!("must be a number of seconds from {min} to {max}")))
    }
}

fn whole<T>(setting: &'static str, value: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(ConfigError::new(setting, value, format_args!("must be from {min} to {max}")))
    }
}

impl TryFrom<SidecarArgs> for Config {
    type Error = ConfigError;

    fn try_from(args: SidecarArgs) -> Result<Self, Self::Error> {
        let target = TargetUrl::parse(&args.target_url)
            .map_err(|reason| ConfigError::new("TARGET_URL", &args.target_url, reason))?;

        if !(args.max_rps.is_finite() && args.max_rps >= MIN_RPS && args.max_rps <= MAX_RPS_LIMIT) {
            return Err(ConfigError::new(
                "MAX_RPS",
                args.max_rps,
                format_args!("must be a number from 1/86400 (one request a day) to {MAX_RPS_LIMIT}"),
            ));
        }
        let rate = |setting: &'static str, rps: f64| {
            check_rate(rps, args.max_rps).map_err(|e| ConfigError::new(setting, rps, e))
        };
        let modes = ModeTable {
            steady: rate("STEADY_RPS", args.steady_rps)?,
            burst: rate("BURST_RPS", args.burst_rps)?,
            overload: rate("OVERLOAD_RPS", args.overload_rps)?,
            max_rps: args.max_rps,
            max_users: whole("MAX_USERS", args.max_users, 1, MAX_USERS_LIMIT)?,
            user_pause: UserPause::parse(&args.user_pause)
                .map_err(|e| ConfigError::new("USER_PAUSE", &args.user_pause, e))?,
        };

        let initial_mode = match args.initial_mode.trim().parse::<Mode>() {
            Ok(Mode::Custom | Mode::Users) | Err(_) => {
                return Err(ConfigError::new(
                    "INITIAL_MODE",
                    &args.initial_mode,
                    "must be one of steady, burst, overload, pause",
                ));
            }
            Ok(mode) => mode,
        };

        if !(args.jitter.is_finite() && (0.0..=1.0).contains(&args.jitter)) {
            return Err(ConfigError::new("JITTER", args.jitter, "must be a fraction from 0 to 1"));
        }
        let mix: Mix = args.mix.parse().map_err(|e| ConfigError::new("MIX", &args.mix, e))?;
        let id_buffer_size = whole("ID_BUFFER_SIZE", args.id_buffer_size, 1, 1_000_000)?;
        let spans = span_export(&args.otel, "trafficgen")?;
        if spans.is_some() && !args.trace_headers {
            return Err(ConfigError::new(
                "TRACE_HEADERS",
                "false",
                "spans are exported (OTEL_EXPORTER_OTLP_ENDPOINT) but requests would carry no traceparent to tie \
                 them to; set TRACE_HEADERS=true, or OTEL_SDK_DISABLED=true for no spans",
            ));
        }
        if spans.is_some() && !args.trace_sampled {
            return Err(ConfigError::new(
                "TRACE_SAMPLED",
                "false",
                "with spans exported OTEL_TRACES_SAMPLER decides the sampled flag; for unsampled traces set \
                 OTEL_TRACES_SAMPLER=always_off (or traceidratio with OTEL_TRACES_SAMPLER_ARG)",
            ));
        }
        let trace = match (args.trace_headers, args.trace_sampled) {
            (false, _) => TraceHeaders::Off,
            (true, sampled) => TraceHeaders::On { sampled, baggage: args.trace_baggage },
        };
        let data_dir = args.data_dir.clone().filter(|d| !d.as_os_str().is_empty());
        let options = workload::Options::new(workload::Target::new(&target).with_trace(trace), id_buffer_size)
            .with_data_dir(data_dir.clone());
        // An empty WORKLOAD_FILE (a Compose default) means none.
        let workload_file = args.workload_file.as_deref().filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
        let openapi = match args.openapi_path.as_deref().filter(|p| !p.is_empty()) {
            None => None,
            Some(_) if workload_file.is_some() => {
                return Err(ConfigError::new(
                    "OPENAPI_PATH",
                    args.openapi_path.as_deref().unwrap_or_default(),
                    "set WORKLOAD_FILE (a workload file) or OPENAPI_PATH (derive one from the target's document), not both",
                ));
            }
            Some(raw) => Some(OpenApiPath::parse(raw).map_err(|e| ConfigError::new("OPENAPI_PATH", raw, e))?),
        };
        let workload = match (&workload_file, &openapi) {
            (Some(path), _) => load_workload(path, &options)?,
            (None, Some(path)) => {
                // Replaced by the derived workload once the document is read.
                let url = path.url(&target);
                openapi_source::waiting_workload(&url, &options)
                    .map_err(|e| ConfigError::new("OPENAPI_PATH", path.as_str(), e))?
            }
            (None, None) => builtin_workload(mix, &options).map_err(|e| ConfigError::new("MIX", &args.mix, e))?,
        };
        // Per-request objectives must name requests the workload has (a
        // derived workload's names are known only once it is derived).
        let slo_text = args.slo.as_deref().unwrap_or_default();
        let slos = crate::observe::slo::parse(slo_text).map_err(|e| ConfigError::new("SLO", slo_text, e))?;
        let names: Vec<&str> = workload.requests().map(|id| workload.name(id)).collect();
        if openapi.is_none() {
            crate::observe::slo::check_scopes(&slos, &names).map_err(|e| ConfigError::new("SLO", slo_text, e))?;
        }

        let max_in_flight = whole("MAX_IN_FLIGHT", args.max_in_flight, 1, 100_000)?;
        let default_warmup = if args.demo { 1.0 } else { 10.0 };
        let warmup = seconds("WARMUP_SECS", args.warmup_secs.unwrap_or(default_warmup), 0.0, 86_400.0)?;
        let default_stats = if args.demo { 5.0 } else { 30.0 };
        let stats_secs = args.stats_interval_secs.unwrap_or(default_stats);
        let stats_interval =
            if stats_secs == 0.0 { None } else { Some(seconds("STATS_INTERVAL_SECS", stats_secs, 1.0, 86_400.0)?) };

        let control_limits = ServerLimits {
            max_connections: whole("CONTROL_MAX_CONNECTIONS", args.control_max_connections, 4, 65_536)?,
            request_timeout: Duration::from_millis(whole(
                "CONTROL_REQUEST_TIMEOUT_MS",
                args.control_request_timeout_ms,
                100,
                300_000,
            )?),
        };
        let budget_mib = whole("MEMORY_BUDGET_MB", args.memory_budget_mb, 32, 1_048_576)?;
        let fixed = fixed_memory(control_limits.max_connections) + span_memory(spans.as_ref());
        let memory_budget = MemoryBudget::new(budget_mib, fixed);
        memory_budget
            .check(&workload, max_in_flight)
            .map_err(|e| ConfigError::new("MEMORY_BUDGET_MB", budget_mib, e))?;

        let client = client_settings(&args, &target, max_in_flight)?;
        let state = match &args.state_dir {
            None => None,
            Some(dir) => {
                Some(crate::state::StateStore::open(dir).map_err(|e| ConfigError::new("STATE_DIR", dir.display(), e))?)
            }
        };
        let mut runtime_args = args.clone();
        runtime_args.control_token = None;
        runtime_args.control_token_file = None;
        runtime_args.cluster_secret = None;
        runtime_args.cluster_secret_file = None;
        // A start-up setting, checked once here; its secret is not kept.
        runtime_args.peers = None;
        runtime_args.tls_ca_file = None;
        runtime_args.state_dir = None;
        let control_token = control_token(&args)?;
        let mut warnings = Vec::new();
        let peers = peers(&args, control_token.as_ref(), &mut warnings)?;
        runtime_args.workload_file = None;
        runtime_args.slo = None;
        Ok(Config {
            state,
            openapi,
            runtime_args,
            engine: EngineSettings {
                target,
                initial_mode,
                modes,
                jitter: args.jitter,
                workload: std::sync::Arc::new(workload),
                workload_file,
                id_buffer_size,
                request_timeout: Duration::from_millis(whole(
                    "REQUEST_TIMEOUT_MS",
                    args.request_timeout_ms,
                    1,
                    600_000,
                )?),
                max_in_flight,
                max_journeys: whole("MAX_JOURNEYS", args.max_journeys, 1, 1_000_000)?,
                data_dir,
                shutdown_grace: seconds("SHUTDOWN_GRACE_SECS", args.shutdown_grace_secs, 0.0, 300.0)?,
                client,
                trace,
                memory: Some(memory_budget),
            },
            listen: SocketAddr::new(args.bind, args.port),
            warmup,
            log_format: args.log_format,
            stats_interval,
            demo: args.demo,
            control_token,
            allowed_origins: match &args.allowed_origins {
                None => AllowedOrigins::default(),
                Some(raw) => AllowedOrigins::parse(raw).map_err(|e| ConfigError::new("ALLOWED_ORIGINS", raw, e))?,
            },
            peers,
            warnings,
            spans,
            slos,
            slo_window: window_duration("SLO_WINDOW", &args.slo_window, 10, 86_400)?,
            control_limits,
            memory_budget,
        })
    }
}

/// A duration as `trafficgen export --duration` takes it (`90`, `30s`, `1m`,
/// `1.5h`), from `min` to `max` seconds.
pub fn window_duration(setting: &'static str, raw: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
    let secs = crate::base::duration::parse_duration(raw).map_err(|e| ConfigError::new(setting, raw, e))?;
    if !(min as f64..=max as f64).contains(&secs) {
        return Err(ConfigError::new(setting, raw, format!("must be from {min} s to {max} s (e.g. 30s, 1m)")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The demo target's settings, validated.
pub fn demo_target_settings(args: &DemoTargetArgs) -> Result<DemoTargetSettings, ConfigError> {
    let bad = |setting, value: String, reason: &str| ConfigError { setting, value, reason: reason.to_string() };
    if !(args.error_rate.is_finite() && (0.0..=1.0).contains(&args.error_rate)) {
        return Err(bad("DEMO_ERROR_RATE", args.error_rate.to_string(), "must be a fraction from 0 to 1"));
    }
    if args.latency_ms > 600_000 {
        return Err(bad("DEMO_LATENCY_MS", args.latency_ms.to_string(), "must be from 0 to 600000"));
    }
    if !(1..=10_000_000).contains(&args.max_orders) {
        return Err(bad("DEMO_MAX_ORDERS", args.max_orders.to_string(), "must be from 1 to 10000000"));
    }
    if !(1..=10_000_000).contains(&args.max_users) {
        return Err(bad("DEMO_MAX_USERS", args.max_users.to_string(), "must be from 1 to 10000000"));
    }
    if !(1..=64).contains(&args.workers) {
        return Err(bad("DEMO_WORKERS", args.workers.to_string(), "must be from 1 to 64"));
    }
    if args.login_fail_secs > 31_536_000 {
        return Err(bad(
            "DEMO_LOGIN_FAIL_SECS",
            args.login_fail_secs.to_string(),
            "must be from 0 to 31536000 (a year)",
        ));
    }
    if !(1..=86_400).contains(&args.token_ttl_secs) {
        return Err(bad("DEMO_TOKEN_TTL_SECS", args.token_ttl_secs.to_string(), "must be from 1 to 86400"));
    }
    Ok(DemoTargetSettings {
        listen: SocketAddr::new(args.bind, args.port),
        latency: Duration::from_millis(args.latency_ms),
        error_rate: args.error_rate,
        max_orders: args.max_orders,
        max_users: args.max_users,
        workers: args.workers,
        spans: span_export(&args.otel, "demo-target")?,
        login_fail: Duration::from_secs(args.login_fail_secs),
        token_ttl: Duration::from_secs(args.token_ttl_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::cli::Cli;
    use clap::Parser;

    /// Parses flags only (no environment), as `trafficgen` would.
    fn config(flags: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("trafficgen").chain(flags.iter().copied())).expect("flags parse");
        Config::try_from(cli.sidecar)
    }

    fn rejected(flags: &[&str]) -> ConfigError {
        config(flags).expect_err("should be rejected")
    }

    #[test]
    fn defaults_match_the_contract() {
        // The environment of the test process must not leak in.
        for var in ["TARGET_URL", "PORT", "MAX_RPS", "MIX", "WARMUP_SECS", "INITIAL_MODE", "PEERS"] {
            assert!(std::env::var_os(var).is_none(), "{var} is set in the test environment");
        }
        let c = config(&[]).unwrap();
        assert_eq!(c.engine.target.as_str(), "http://nginx");
        // The contract's 0.0.0.0 is what the image sets; a bare binary
        // stays on loopback (issue "A README read in ten minutes", item 6).
        assert_eq!(c.listen, "127.0.0.1:8089".parse().unwrap());
        assert_eq!(c.warmup, Duration::from_secs(10));
        assert_eq!(c.engine.initial_mode, Mode::Steady);
        assert_eq!(
            c.engine.modes,
            ModeTable {
                steady: 2.0,
                burst: 20.0,
                overload: 100.0,
                max_rps: 1000.0,
                max_users: 1000,
                user_pause: UserPause::fixed(1.0)
            }
        );
        assert_eq!(c.engine.jitter, 0.2);
        assert_eq!(c.engine.workload.mix(), Mix::default().to_string());
        assert_eq!(c.engine.workload.source(), workload::BUILTIN_SOURCE);
        assert_eq!(c.engine.id_buffer_size, 50);
        assert_eq!(c.engine.request_timeout, Duration::from_millis(5000));
        assert_eq!(c.engine.max_in_flight, 512);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.stats_interval, Some(Duration::from_secs(30)));
        assert_eq!(c.allowed_origins, AllowedOrigins::default());
        assert_eq!(c.control_limits, ServerLimits { max_connections: 256, request_timeout: Duration::from_secs(5) });
        assert!(c.peers.is_none(), "alone unless PEERS is set");
    }

    #[test]
    fn span_export_at_its_defaults_fits_the_default_memory_budget() {
        let c = config(&["--otel-exporter-otlp-endpoint", "http://collector:4318"]).expect("defaults fit");
        let spans = c.spans.expect("spans on");
        assert_eq!(spans.export.endpoint.path, "/v1/traces");
        assert_eq!((spans.export.queue_size, spans.export.batch_size), (2048, 512));
        assert_eq!(spans.export.service_name(), "trafficgen");
        assert!(config(&[]).unwrap().spans.is_none(), "no endpoint, no spans");
        let off = ["--otel-exporter-otlp-endpoint", "http://c:4318", "--otel-sdk-disabled", "TRUE"];
        assert!(config(&off).unwrap().spans.is_none());
    }

    #[test]
    fn trace_headers_and_slos_are_read_once() {
        let c = config(&[]).unwrap();
        assert_eq!(c.engine.trace, TraceHeaders::On { sampled: true, baggage: false }, "on by default");
        assert!(c.slos.is_empty());
        assert_eq!(c.slo_window, Duration::from_secs(60));
        assert_eq!(config(&["--trace-headers", "false"]).unwrap().engine.trace, TraceHeaders::Off);
        assert_eq!(
            config(&["--trace-sampled", "false"]).unwrap().engine.trace,
            TraceHeaders::On { sampled: false, baggage: false }
        );
        let c = config(&["--slo", "p95<300ms, create_order:error_rate<1%", "--slo-window", "90"]).unwrap();
        assert_eq!(
            c.slos.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["p95<300ms", "create_order:error_rate<1%"]
        );
        assert_eq!(c.slo_window, Duration::from_secs(90));
        for (raw, secs) in [("30s", 30), ("2m", 120), ("1h", 3600), (" 10 ", 10), ("24h", 86_400)] {
            assert_eq!(window_duration("X", raw, 10, 86_400).unwrap(), Duration::from_secs(secs), "{raw}");
        }
        assert_eq!(window_duration("X", "1.5m", 10, 86_400).unwrap(), Duration::from_secs(90));
        for raw in ["", "m", "-1", "9s", "25h", "1 d", "NaN"] {
            assert!(window_duration("X", raw, 10, 86_400).is_err(), "{raw}");
        }
    }

    #[test]
    fn peers_are_read_once_and_an_empty_value_means_none() {
        let c = config(&["--peers", "dns:traffic-generator:8089", "--cluster-secret", "0123456789abcdef"]).unwrap();
        let setting = c.peers.map(|p| p.setting);
        assert_eq!(setting, Some(PeersSetting::Dns { name: "traffic-generator".into(), port: 8089 }));
        assert!(config(&["--peers", ""]).unwrap().peers.is_none());
    }

    #[test]
    fn peers_need_a_shared_secret_of_sixteen_characters_never_shown() {
        let peers = ["--peers", "dns:traffic-generator:8089"];
        // Without a secret the replica runs alone, and says why.
        let alone = config(&peers).unwrap();
        assert!(alone.peers.is_none());
        assert!(
            alone.warnings.iter().any(|w| w.contains("set CLUSTER_SECRET") && w.contains("runs alone")),
            "{:?}",
            alone.warnings
        );
        assert!(config(&[]).unwrap().warnings.is_empty());
        // The control token serves when no CLUSTER_SECRET is given, if long enough.
        let with = |more: &[&str]| config(&[&peers[..], more].concat());
        assert!(with(&["--control-token", "a-token-of-16-chars"]).unwrap().peers.is_some());
        let short = with(&["--control-token", "s3cret"]).unwrap_err();
        assert_eq!(short.setting, "CONTROL_TOKEN");
        assert!(short.to_string().contains("set CLUSTER_SECRET") && !short.to_string().contains("s3cret"), "{short}");
        // A short token is fine alone, or with a CLUSTER_SECRET.
        assert!(config(&["--control-token", "s3cret"]).is_ok());
        assert!(with(&["--control-token", "s3cret", "--cluster-secret", "0123456789abcdef"]).is_ok());
        for bad in ["0123456789abcde", "0123456789 abcdef", "0123456789abcdé!"] {
            let err = with(&["--cluster-secret", bad]).unwrap_err();
            assert_eq!(err.setting, "CLUSTER_SECRET", "{bad}");
            assert!(!err.to_string().contains(&bad[..10]), "secret echoed: {err}");
        }
        assert_eq!(rejected(&["--cluster-secret", "short"]).setting, "CLUSTER_SECRET", "checked without PEERS too");
        let c = with(&["--cluster-secret", "0123456789abcdef"]).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "secret in Debug output");
        assert!(c.runtime_args.cluster_secret.is_none(), "kept out of the runtime settings");

        let dir = std::env::temp_dir().join(format!("trafficgen-cluster-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "0123456789abcdef\n").unwrap();
        let path = file.to_str().unwrap();
        assert!(with(&["--cluster-secret-file", path]).unwrap().peers.is_some());
        let both = with(&["--cluster-secret-file", path, "--cluster-secret", "0123456789abcdef"]).unwrap_err();
        assert_eq!(both.setting, "CLUSTER_SECRET_FILE");
        std::fs::write(&file, "short\n").unwrap();
        assert_eq!(with(&["--cluster-secret-file", path]).unwrap_err().setting, "CLUSTER_SECRET_FILE");
        assert_eq!(with(&["--cluster-secret-file", "/nonexistent/s"]).unwrap_err().setting, "CLUSTER_SECRET_FILE");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn target_url_is_taken_apart_once() {
        let parts = |url: &str| {
            let t = TargetUrl::parse(url).unwrap();
            (t.host().to_string(), t.port(), t.authority().to_string(), t.path_prefix().to_string())
        };
        assert_eq!(parts("http://nginx"), ("nginx".into(), 80, "nginx".into(), "".into()));
        assert_eq!(parts("http://x:65535/api/"), ("x".into(), 65535, "x:65535".into(), "/api".into()));
        assert_eq!(parts("http://[::1]:8080"), ("::1".into(), 8080, "[::1]:8080".into(), "".into()));
        assert_eq!(parts("http://[::1]"), ("::1".into(), 80, "[::1]".into(), "".into()));
        assert_eq!(
            parts("https://shop.example/api"),
            ("shop.example".into(), 443, "shop.example".into(), "/api".into())
        );
        assert_eq!(parts("https://shop:8443"), ("shop".into(), 8443, "shop:8443".into(), "".into()));
        assert!(TargetUrl::parse("https://x").unwrap().is_https());
        assert!(!TargetUrl::parse("http://x").unwrap().is_https());
    }

    #[test]
    fn target_url_keeps_a_path_prefix_without_the_trailing_slash() {
        let c = config(&["--target-url", "http://shop:8080/api/"]).unwrap();
        assert_eq!(c.engine.target.as_str(), "http://shop:8080/api");
    }

    #[test]
    fn each_bad_setting_is_named_in_its_error() {
        let cases: &[(&[&str], &str)] = &[
            (&["--target-url", "nginx"], "TARGET_URL"),
            (&["--target-url", "ftp://x"], "TARGET_URL"),
            (&["--target-url", "https://x", "--tls-insecure", "--tls-ca-file", "/x"], "TLS_INSECURE"),
            (&["--target-url", "https://x", "--tls-ca-file", "/nonexistent/ca.pem"], "TLS_CA_FILE"),
            (&["--keep-alive-ms", "3600001"], "KEEP_ALIVE_MS"),
            (&["--slo", "p95<300"], "SLO"),
            (&["--slo", "p95<300ms,p42<1s"], "SLO"),
            (&["--slo", "create_user:p95<300ms"], "SLO"),
            (&["--slo-window", "5s"], "SLO_WINDOW"),
            (&["--slo-window", "2d"], "SLO_WINDOW"),
            (&["--slo-window", "99999999999999999999"], "SLO_WINDOW"),
            (&["--target-url", "http://x/?a=1"], "TARGET_URL"),
            (&["--target-url", "http://user:pw@x"], "TARGET_URL"),
            (&["--target-url", "http://x:99999"], "TARGET_URL"),
            (&["--target-url", "http://x:0"], "TARGET_URL"),
            (&["--max-rps", "0"], "MAX_RPS"),
            (&["--max-rps", "NaN"], "MAX_RPS"),
            (&["--steady-rps", "-1"], "STEADY_RPS"),
            (&["--steady-rps", "1e-20"], "STEADY_RPS"),
            (&["--burst-rps", "5e-324"], "BURST_RPS"),
            (&["--max-rps", "1e-9"], "MAX_RPS"),
            (&["--burst-rps", "2000"], "BURST_RPS"),
            (&["--max-rps", "50"], "OVERLOAD_RPS"),
            (&["--initial-mode", "turbo"], "INITIAL_MODE"),
            (&["--initial-mode", "custom"], "INITIAL_MODE"),
            (&["--jitter", "1.5"], "JITTER"),
            (&["--mix", "create_order=0"], "MIX"),
            (&["--mix", "buy=1"], "MIX"),
            (&["--id-buffer-size", "0"], "ID_BUFFER_SIZE"),
            (&["--request-timeout-ms", "0"], "REQUEST_TIMEOUT_MS"),
            (&["--max-in-flight", "0"], "MAX_IN_FLIGHT"),
            (&["--warmup-secs", "-1"], "WARMUP_SECS"),
            (&["--warmup-secs", "inf"], "WARMUP_SECS"),
            (&["--shutdown-grace-secs", "1000"], "SHUTDOWN_GRACE_SECS"),
            (&["--stats-interval-secs", "0.5"], "STATS_INTERVAL_SECS"),
            (&["--allowed-origins", "evil.example"], "ALLOWED_ORIGINS"),
            (&["--allowed-origins", "*"], "ALLOWED_ORIGINS"),
            (&["--control-max-connections", "0"], "CONTROL_MAX_CONNECTIONS"),
            (&["--control-request-timeout-ms", "0"], "CONTROL_REQUEST_TIMEOUT_MS"),
            (&["--peers", "traffic-generator:8089"], "PEERS"),
            (&["--peers", "dns:traffic-generator"], "PEERS"),
            (&["--peers", "static:10.0.0.1"], "PEERS"),
        ];
        for (flags, setting) in cases {
            let err = rejected(flags);
            assert_eq!(err.setting, *setting, "{flags:?}: {err}");
            assert!(!err.to_string().contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn control_token_comes_from_the_flag_or_a_file_never_both() {
        assert_eq!(config(&[]).unwrap().control_token, None);
        let c = config(&["--control-token", "s3cret-token"]).unwrap();
        assert!(c.control_token.as_ref().unwrap().matches(b"s3cret-token"));
        assert!(!format!("{c:?}").contains("s3cret"), "token in Debug output");

        let dir = std::env::temp_dir().join(format!("trafficgen-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let path = file.to_str().unwrap();
        let c = config(&["--control-token-file", path]).unwrap();
        assert!(c.control_token.unwrap().matches(b"from-file"));

        assert_eq!(rejected(&["--control-token", "a", "--control-token-file", path]).setting, "CONTROL_TOKEN_FILE");
        assert_eq!(rejected(&["--control-token", "has space"]).setting, "CONTROL_TOKEN");
        assert_eq!(rejected(&["--control-token", ""]).setting, "CONTROL_TOKEN");
        let err = rejected(&["--control-token", "has space"]);
        assert!(!err.to_string().contains("has space"), "token echoed in the error: {err}");
        assert_eq!(rejected(&["--control-token-file", "/nonexistent/token"]).setting, "CONTROL_TOKEN_FILE");
        std::fs::write(&file, "\n").unwrap();
        assert_eq!(rejected(&["--control-token-file", path]).setting, "CONTROL_TOKEN_FILE");
        std::fs::write(&file, "x".repeat(4096)).unwrap();
        assert!(config(&["--control-token-file", path]).is_ok(), "4 KiB is allowed");
        std::fs::write(&file, "x".repeat(4097)).unwrap();
        let err = rejected(&["--control-token-file", path]);
        assert!(err.to_string().contains("larger than 4096 bytes"), "{err}");
        assert_eq!(rejected(&["--control-token-file", "/dev/zero"]).setting, "CONTROL_TOKEN_FILE");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn token_comparison_needs_the_whole_token() {
        let token = ControlToken::parse("abcdef").unwrap();
        assert!(token.matches(b"abcdef"));
        for wrong in [&b"abcdeg"[..], b"abcde", b"abcdefg", b"", b"ABCDEF"] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn demo_shortens_warm_up_and_stats_unless_given() {
        let c = config(&["--demo"]).unwrap();
        assert_eq!(c.warmup, Duration::from_secs(1));
        assert_eq!(c.stats_interval, Some(Duration::from_secs(5)));
        let c = config(&["--demo", "--warmup-secs", "0", "--stats-interval-secs", "0"]).unwrap();
        assert_eq!(c.warmup, Duration::ZERO);
        assert_eq!(c.stats_interval, None);
    }
}
