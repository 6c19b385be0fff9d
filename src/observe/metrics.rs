//! The sidecar's Prometheus metrics: names and labels defined once here.
//!
//! `/status` counts are read back from these same counters, so `/status`
//! and `/metrics` agree by construction.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::{BTreeMap, HashSet};

use parking_lot::Mutex;
use serde::Serialize;

/// Most distinct request names ever used as the `endpoint` label (over all
/// workloads a process runs: each has at most 64 requests, and swaps add
/// names); later names share the label [`OTHER_ENDPOINT`], so the series
/// stay bounded however often the workload is replaced.
pub const MAX_ENDPOINT_LABELS: usize = 256;
/// The label of requests whose names came after the bound.
pub const OTHER_ENDPOINT: &str = "_other";
/// Most distinct journey names ever used as the `journey` label (a
/// workload has at most 16); later names share [`OTHER_ENDPOINT`].
pub const MAX_JOURNEY_LABELS: usize = 64;

/// Why a journey instance ended before its last step (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A step was answered with a status its `success` does not list.
    NotSuccess,
    /// A step got no answer (timeout, connection, TLS…).
    NoAnswer,
    /// A value a step reads was missing: a variable its capture did not
    /// fill, or an empty pool.
    Unmet,
    /// The traffic was paused, the workload replaced, or the sidecar stopped.
    Stopped,
}

impl EndReason {
    pub const ALL: [EndReason; 4] = [EndReason::NotSuccess, EndReason::NoAnswer, EndReason::Unmet, EndReason::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::NotSuccess => "not_success",
            EndReason::NoAnswer => "no_answer",
            EndReason::Unmet => "unmet",
            EndReason::Stopped => "stopped",
        }
    }
}

/// Why an arrival drawn as a journey did not start one (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// `MAX_JOURNEYS` instances were running.
    MaxJourneys,
    /// A `unique` data table had given every row.
    NoData,
}

impl DropReason {
    pub const ALL: [DropReason; 2] = [DropReason::MaxJourneys, DropReason::NoData];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::MaxJourneys => "max_journeys",
            DropReason::NoData => "no_data",
        }
    }
}

/// Why a request got no HTTP answer (the `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Timeout,
    Connect,
    /// The target's name does not resolve (cached for a short while, so
    /// requests meanwhile fail at once).
    Dns,
    /// The TLS handshake failed: certificate not trusted, wrong name, no
    /// common protocol.
    Tls,
    /// A kept-alive connection broke after the answer had begun (so the
    /// request was not resent): unlike `other`, which is always a fresh
    /// connection, this may be the idle-close race rather than the target.
    Reused,
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] =
        [ErrorKind::Timeout, ErrorKind::Connect, ErrorKind::Dns, ErrorKind::Tls, ErrorKind::Reused, ErrorKind::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Dns => "dns",
            ErrorKind::Tls => "tls",
            ErrorKind::Reused => "reused",
            ErrorKind::Other => "other",
        }
    }
}

/// The kinds of [`Metrics::failures_by_endpoint`]: answers with a status
/// not counted as success, by class, then requests without an answer.
pub const FAILURE_KINDS: [&str; 9] =
    ["http_4xx", "http_5xx", "http_other", "timeout", "connect", "dns", "tls", "reused", "other"];

/// Why a request was sent a second time (the `reason` label): its kept-alive
/// connection failed before a single byte of answer came back, so the target
/// cannot have processed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// End of stream before the answer.
    Closed,
    /// Connection reset before the answer.
    Reset,
    /// The request could not be written (broken pipe).
    BrokenPipe,
}

impl RetryReason {
    pub const ALL: [RetryReason; 3] = [RetryReason::Closed, RetryReason::Reset, RetryReason::BrokenPipe];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Closed => "closed",
            RetryReason::Reset => "reset",
            RetryReason::BrokenPipe => "broken_pipe",
        }
    }
}

/// The retry counter's series, resolved once.
#[derive(Clone)]
pub struct RetryCounters([IntCounter; 3]);

impl RetryCounters {
    pub fn count(&self, reason: RetryReason) {
        self.0[reason as usize].inc();
    }
}

/// Latency buckets from 1 ms to 10 s (roughly 1-2.5-5 per decade).
const DURATION_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// A journey lasts from milliseconds (no pauses) to an hour of pauses.
const JOURNEY_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];
/// Schedule lag is small when all is well; the upper buckets show starvation.
const LAG_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    durations: prometheus::HistogramVec,
    /// Names used as `endpoint` so far (bounded, see [`MAX_ENDPOINT_LABELS`]).
    endpoints: Mutex<HashSet<String>>,
    pool_values: IntGaugeVec,
    slo_ok: GaugeVec,
    slo_value: GaugeVec,
    unmet: IntCounterVec,
    capture_failures: IntCounterVec,
    setup_failing: IntGauge,
    setup_failures: IntCounter,
    relogins: IntCounterVec,
    schedule_lag: Histogram,
    target_rps: Gauge,
    mode: IntGaugeVec,
    in_flight: IntGauge,
    dropped: IntCounter,
    capped: IntCounter,
    ids_buffered: IntGauge,
    mode_switches: IntCounter,
    retries: RetryCounters,
    events_dropped: IntCounter,
    arrivals: IntCounter,
    journeys_started: IntCounterVec,
    journeys_completed: IntCounterVec,
    journeys_ended: IntCounterVec,
    journeys_dropped: IntCounterVec,
    journeys_active: IntGauge,
    virtual_users: IntGauge,
    virtual_users_target: IntGauge,
    journey_duration: prometheus::HistogramVec,
    /// Names used as `journey` so far (bounded, see [`MAX_JOURNEY_LABELS`]).
    journey_labels: Mutex<HashSet<String>>,
}

/// One journey's counts, as `/status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JourneyCounts {
    pub started: u64,
    pub completed: u64,
    /// Ended before the last step, by reason.
    pub ended_early: BTreeMap<String, u64>,
    /// Arrivals that did not start an instance, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Mean time from the arrival to the end of the last step, of the
    /// completed instances; `null` before the first.
    pub mean_duration_ms: Option<f64>,
}

/// Request counts of one endpoint, as `/status` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
    /// Of `total`, those that got an HTTP answer (any status); for the
    /// `rps` objective, not shown in `/status`.
    #[serde(skip)]
    pub answered: u64,
}

/// Counts per request name (the `endpoint` label).
pub type ByEndpoint = BTreeMap<String, EndpointStats>;

/// The `stats` object of `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Requests drawn and not sent: a pool or variable they read was
    /// empty and they have no fallback (not in `total`).
    pub unmet: u64,
    /// Captures that stored nothing.
    pub capture_failures: u64,
    /// Of `total`, those that got an HTTP answer (any status); not shown.
    #[serde(skip)]
    pub answered: u64,
    pub by_endpoint: ByEndpoint,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "trafficgen_requests_total",
                "Requests completed, by endpoint and HTTP status (code=\"error\" when no answer came)",
            ),
            &["endpoint", "code"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "trafficgen_request_errors_total",
                "Requests that got no HTTP answer, by endpoint and kind (timeout, connect, dns, tls, reused, other)",
            ),
            &["endpoint", "kind"],
        )?;
        let duration_vec = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "trafficgen_request_duration_seconds",
                "Time from sending a request to the end of its answer",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let schedule_lag = Histogram::with_opts(
            HistogramOpts::new(
                "trafficgen_schedule_lag_seconds",
                "How late each request left against its scheduled send time",
            )
            .buckets(LAG_BUCKETS.to_vec()),
        )?;
        let target_rps = Gauge::new("trafficgen_target_rps", "Requests per second the engine is trying to send now")?;
        let mode =
            IntGaugeVec::new(Opts::new("trafficgen_mode", "1 for the current mode, 0 for the others"), &["mode"])?;
        let in_flight = IntGauge::new("trafficgen_in_flight_requests", "Requests sent and not yet answered")?;
        let dropped = IntCounter::new(
            "trafficgen_dropped_requests_total",
            "Requests due by the schedule but not sent (in-flight bound full, or the engine fell far behind)",
        )?;
        let capped = IntCounter::new(
            "trafficgen_max_rps_waits_total",
            "Times a request that was due waited for room under MAX_RPS (the cap holds over every 100 ms)",
        )?;
        let ids_buffered = IntGauge::new("trafficgen_order_ids_buffered", "Order ids remembered for get_order")?;
        let unmet = IntCounterVec::new(
            Opts::new(
                "trafficgen_unmet_requests_total",
                "Requests drawn but not sent: a pool they read was empty and they have no fallback",
            ),
            &["endpoint"],
        )?;
        let capture_failures = IntCounterVec::new(
            Opts::new(
                "trafficgen_capture_failures_total",
                "Captures that stored nothing, by request and reason (no_body, not_json, missing, refused)",
            ),
            &["endpoint", "reason"],
        )?;
        let setup_failing = IntGauge::new(
            "trafficgen_setup_failing",
            "1 while the workload's setup (its login) fails and is tried again with a backoff, 0 otherwise",
        )?;
        let setup_failures = IntCounter::new(
            "trafficgen_setup_failures_total",
            "Setup runs that failed (no answer, not a success, a capture or a refresh time that found nothing)",
        )?;
        let relogins = IntCounterVec::new(
            Opts::new(
                "trafficgen_relogins_total",
                "Logins run again because an answer refused their values (relogin_on, 401 by default), by scope: setup or journey",
            ),
            &["scope"],
        )?;
        let pool_values = IntGaugeVec::new(
            Opts::new("trafficgen_pool_values", "Values held in each pool of the running workload"),
            &["pool"],
        )?;
        let slo_ok = GaugeVec::new(
            Opts::new(
                "trafficgen_slo_ok",
                "1 while an SLO holds over SLO_WINDOW, 0 while it is missed, NaN without data",
            ),
            &["slo"],
        )?;
        let slo_value = GaugeVec::new(
            Opts::new(
                "trafficgen_slo_value",
                "An SLO's measured value over SLO_WINDOW, in its own unit (seconds for latencies, a ratio for error_rate and rps)",
            ),
            &["slo"],
        )?;
        let mode_switches =
            IntCounter::new("trafficgen_mode_switches_total", "Changes of mode or rate made through the control API")?;
        let retries_vec = IntCounterVec::new(
            Opts::new(
                "trafficgen_connection_retries_total",
                "Requests sent once more on a new connection because their kept-alive connection closed before any answer byte",
            ),
            &["reason"],
        )?;
        let retries = RetryCounters(RetryReason::ALL.map(|r| retries_vec.with_label_values(&[r.as_str()])));
        let events_dropped = IntCounter::new(
            "trafficgen_events_dropped_total",
            "Live events (GET /events, /jobs/{id}/events) a stream lost because its reader was too slow to keep up",
        )?;
        let arrivals = IntCounter::new(
            "trafficgen_arrivals_total",
            "Arrivals drawn by the schedule: each sends one request or starts one journey",
        )?;
        let journeys_started = IntCounterVec::new(
            Opts::new("trafficgen_journeys_started_total", "Journey instances started, by journey"),
            &["journey"],
        )?;
        let journeys_completed = IntCounterVec::new(
            Opts::new("trafficgen_journeys_completed_total", "Journey instances that ran every step, by journey"),
            &["journey"],
        )?;
        let journeys_ended = IntCounterVec::new(
            Opts::new(
                "trafficgen_journeys_ended_total",
                "Journey instances ended before their last step, by journey and reason (not_success, no_answer, unmet, stopped)",
            ),
            &["journey", "reason"],
        )?;
        let journeys_dropped = IntCounterVec::new(
            Opts::new(
                "trafficgen_journeys_dropped_total",
                "Arrivals of a journey that started no instance, by journey and reason (max_journeys, no_data)",
            ),
            &["journey", "reason"],
        )?;
        let journeys_active = IntGauge::new("trafficgen_journeys_active", "Journey instances running now")?;
        let virtual_users =
            IntGauge::new("trafficgen_virtual_users", "Virtual users running now (users mode, the closed model)")?;
        let virtual_users_target =
            IntGauge::new("trafficgen_virtual_users_target", "Virtual users wanted now (a ramp's part-way number)")?;
        let journey_duration = prometheus::HistogramVec::new(
            HistogramOpts::new(
                "trafficgen_journey_duration_seconds",
                "Time from a journey's arrival to the end of its last step, of the instances that completed",
            )
            .buckets(JOURNEY_BUCKETS.to_vec()),
            &["journey"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("trafficgen_build_info", "Always 1; the version is in the label"),
            &["version"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);

        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(requests.clone()),
            Box::new(errors.clone()),
            Box::new(duration_vec.clone()),
            Box::new(schedule_lag.clone()),
            Box::new(target_rps.clone()),
            Box::new(mode.clone()),
            Box::new(in_flight.clone()),
            Box::new(dropped.clone()),
            Box::new(capped.clone()),
            Box::new(ids_buffered.clone()),
            Box::new(pool_values.clone()),
            Box::new(slo_ok.clone()),
            Box::new(slo_value.clone()),
            Box::new(unmet.clone()),
            Box::new(capture_failures.clone()),
            Box::new(setup_failing.clone()),
            Box::new(setup_failures.clone()),
            Box::new(relogins.clone()),
            Box::new(mode_switches.clone()),
            Box::new(retries_vec),
            Box::new(events_dropped.clone()),
            Box::new(arrivals.clone()),
            Box::new(journeys_started.clone()),
            Box::new(journeys_completed.clone()),
            Box::new(journeys_ended.clone()),
            Box::new(journeys_dropped.clone()),
            Box::new(journeys_active.clone()),
            Box::new(virtual_users.clone()),
            Box::new(virtual_users_target.clone()),
            Box::new(journey_duration.clone()),
            Box::new(build_info),
        ];
        for c in collectors {
            registry.register(c)?;
        }
        // Shown at 0 from the start, so a rate over them has a beginning.
        for scope in ["setup", "journey"] {
            relogins.with_label_values(&[scope]);
        }
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;

        Ok(Metrics {
            registry,
            requests,
            errors,
            durations: duration_vec,
            endpoints: Mutex::new(HashSet::new()),
            pool_values,
            slo_ok,
            slo_value,
            unmet,
            capture_failures,
            setup_failing,
            setup_failures,
            relogins,
            schedule_lag,
            target_rps,
            mode,
            in_flight,
            dropped,
            capped,
            ids_buffered,
            mode_switches,
            retries,
            events_dropped,
            arrivals,
            journeys_started,
            journeys_completed,
            journeys_ended,
            journeys_dropped,
            journeys_active,
            virtual_users,
            virtual_users_target,
            journey_duration,
            journey_labels: Mutex::new(HashSet::new()),
        })
    }

    /// The setup fails (or works again).
    pub fn show_setup_failing(&self, failing: bool) {
        self.setup_failing.set(i64::from(failing));
    }

    pub fn count_setup_failure(&self) {
        self.setup_failures.inc();
    }

    /// A login run again in `scope` (`setup` or `journey`).
    pub fn count_relogin(&self, scope: &str) {
        self.relogins.with_label_values(&[scope]).inc();
    }

    /// Logins run again in `scope` so far.
    pub fn relogins_total(&self, scope: &str) -> u64 {
        self.relogins.with_label_values(&[scope]).get()
    }

    /// Requests drawn but not sent so far (every endpoint).
    pub fn unmet_total(&self) -> u64 {
        sum_of(&self.unmet)
    }

    /// Captures that stored nothing so far (every endpoint and reason).
    pub fn capture_failures_total(&self) -> u64 {
        sum_of(&self.capture_failures)
    }

    /// The arrivals counter, for the engine's hot path.
    pub fn arrivals(&self) -> IntCounter {
        self.arrivals.clone()
    }

    /// Arrivals so far.
    pub fn arrivals_total(&self) -> u64 {
        self.arrivals.get()
    }

    pub fn set_journeys_active(&self, active: usize) {
        self.journeys_active.set(i64::try_from(active).unwrap_or(i64::MAX));
    }

    /// Virtual users running and wanted.
    pub fn set_virtual_users(&self, active: usize, target: usize) {
        self.virtual_users.set(i64::try_from(active).unwrap_or(i64::MAX));
        self.virtual_users_target.set(i64::try_from(target).unwrap_or(i64::MAX));
    }

    /// The series of the journey `name`, created at zero if new (resolve
    /// once per journey of a workload).
    pub fn journey_series(&self, name: &str) -> JourneySeries {
        let label = {
            let mut known = self.journey_labels.lock();
            if known.contains(name) {
                name
            } else if known.len() < MAX_JOURNEY_LABELS {
                known.insert(name.to_string());
                name
            } else {
                OTHER_ENDPOINT
            }
        };
        JourneySeries {
            label: label.to_string(),
            started: self.journeys_started.with_label_values(&[label]),
            completed: self.journeys_completed.with_label_values(&[label]),
            ended: EndReason::ALL.map(|r| self.journeys_ended.with_label_values(&[label, r.as_str()])),
            dropped: DropReason::ALL.map(|r| self.journeys_dropped.with_label_values(&[label, r.as_str()])),
            duration: self.journey_duration.with_label_values(&[label]),
        }
    }

    /// Every journey's counts so far, by its label (those of earlier
    /// workloads too).
    pub fn journey_counts(&self) -> BTreeMap<String, JourneyCounts> {
        let mut out: BTreeMap<String, JourneyCounts> = BTreeMap::new();
        let label = |metric: &prometheus::proto::Metric, name: &str| {
            metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string())
        };
        let each = |vec: &IntCounterVec,
                    out: &mut BTreeMap<String, JourneyCounts>,
                    f: &dyn Fn(&mut JourneyCounts, Option<String>, u64)| {
            for family in vec.collect() {
                for metric in family.get_metric() {
                    let Some(journey) = label(metric, "journey") else { continue };
                    let count = metric.get_counter().get_value() as u64;
                    f(out.entry(journey).or_default(), label(metric, "reason"), count);
                }
            }
        };
        each(&self.journeys_started, &mut out, &|c, _, n| c.started += n);
        each(&self.journeys_completed, &mut out, &|c, _, n| c.completed += n);
        each(&self.journeys_ended, &mut out, &|c, reason, n| {
            *c.ended_early.entry(reason.unwrap_or_default()).or_default() += n;
        });
        each(&self.journeys_dropped, &mut out, &|c, reason, n| {
            *c.dropped.entry(reason.unwrap_or_default()).or_default() += n;
        });
        for family in self.journey_duration.collect() {
            for metric in family.get_metric() {
                let Some(journey) = label(metric, "journey") else { continue };
                let h = metric.get_histogram();
                let mean = (h.get_sample_count() > 0)
                    .then(|| (h.get_sample_sum() / h.get_sample_count() as f64 * 1e6).round() / 1e3);
                out.entry(journey).or_default().mean_duration_ms = mean;
            }
        }
        out
    }

    /// The counter of live events lost to slow readers, for the event hub.
    pub fn events_dropped(&self) -> IntCounter {
        self.events_dropped.clone()
    }

    /// The retry counter, for the client.
    pub fn retry_counters(&self) -> RetryCounters {
        self.retries.clone()
    }

    /// The series of the request `name`, created (at zero, so rate() and
    /// dashboards see zeros rather than gaps) if it is new. Resolve once
    /// per request of a workload: the hot path then bumps counters without
    /// hashing label strings or taking a lock.
    pub fn request_series(&self, name: &str) -> RequestSeries {
        let label = {
            let mut known = self.endpoints.lock();
            if known.contains(name) {
                name
            } else if known.len() < MAX_ENDPOINT_LABELS {
                known.insert(name.to_string());
                name
            } else {
                OTHER_ENDPOINT
            }
        };
        RequestSeries {
            label: label.to_string(),
            requests: self.requests.clone(),
            duration: self.durations.with_label_values(&[label]),
            failures: self.requests.with_label_values(&[label, "error"]),
            errors: ErrorKind::ALL.map(|kind| self.errors.with_label_values(&[label, kind.as_str()])),
            codes: Vec::new(),
            unmet: self.unmet.clone(),
            capture_failures: self.capture_failures.clone(),
        }
    }

    /// Shows the pools of the running workload: `(name, values held)`.
    /// Pools of an earlier workload are removed.
    pub fn show_pools<'a>(&self, pools: impl Iterator<Item = (&'a str, usize)>) {
        self.pool_values.reset();
        for (name, count) in pools {
            self.pool_values.with_label_values(&[name]).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// The SLOs' verdicts: `slo` is the objective as written (at most 32,
    /// fixed at start, so the label set is bounded); `value` in base units.
    pub fn show_slo(&self, slo: &str, ok: Option<bool>, value: Option<f64>) {
        let ok = ok.map_or(f64::NAN, |ok| if ok { 1.0 } else { 0.0 });
        self.slo_ok.with_label_values(&[slo]).set(ok);
        self.slo_value.with_label_values(&[slo]).set(value.unwrap_or(f64::NAN));
    }

    /// Failures without an answer so far, per request name and kind (the
    /// kinds that happened).
    pub fn errors_by_kind(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for family in self.errors.collect() {
            for metric in family.get_metric() {
                let label = |name: &str| metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value());
                let (Some(endpoint), Some(kind)) = (label("endpoint"), label("kind")) else { continue };
                let count = metric.get_counter().get_value() as u64;
                if count > 0 {
                    out.entry(endpoint.to_string()).or_default().insert(kind.to_string(), count);
                }
            }
        }
        out
    }

    pub fn observe_lag(&self, seconds: f64) {
        self.schedule_lag.observe(seconds.max(0.0));
    }

    pub fn add_dropped(&self, n: u64) {
        self.dropped.inc_by(n);
    }

    /// A due request found no room under `MAX_RPS` and waits.
    pub fn count_capped(&self) {
        self.capped.inc();
    }

    /// Shows `current` of the modes named `all` as the current one (1, the
    /// others 0) and `rps` as the rate being sent.
    pub fn show_mode(&self, all: &[&str], current: &str, rps: f64) {
        for name in all {
            self.mode.with_label_values(&[name]).set(i64::from(*name == current));
        }
        self.target_rps.set(rps);
    }

    /// The rate being sent now, between mode switches (a ramp's or a
    /// job's rate moves without one).
    pub fn show_target_rps(&self, rps: f64) {
        self.target_rps.set(rps);
    }

    pub fn count_mode_switch(&self) {
        self.mode_switches.inc();
    }

    /// Gauges the engine keeps elsewhere are copied in just before a scrape.
    pub fn set_gauges(&self, in_flight: usize, ids_buffered: usize) {
        self.in_flight.set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        self.ids_buffered.set(i64::try_from(ids_buffered).unwrap_or(i64::MAX));
    }

    /// Request counts read back from the counters. Every request with a
    /// series shows, at zero until it is sent.
    pub fn stats(&self) -> Stats {
        self.stats_by(|_, status| (200..300).contains(&status))
    }

    /// [`Metrics::stats`], with `success(endpoint, status)` saying which
    /// answers count as successful (a workload's `success` codes).
    pub fn stats_by(&self, success: impl Fn(&str, u16) -> bool) -> Stats {
        let mut stats = Stats {
            dropped: self.dropped.get(),
            unmet: self.unmet_total(),
            capture_failures: self.capture_failures_total(),
            ..Stats::default()
        };
        let label = |metric: &prometheus::proto::Metric, name: &str| {
            metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string())
        };
        // The error series exist from the moment a request's series does.
        for family in self.errors.collect() {
            for metric in family.get_metric() {
                if let Some(endpoint) = label(metric, "endpoint") {
                    stats.by_endpoint.entry(endpoint).or_default();
                }
            }
        }
        for family in self.requests.collect() {
            for metric in family.get_metric() {
                let Some(endpoint) = label(metric, "endpoint") else { continue };
                let count = metric.get_counter().get_value() as u64;
                let code = label(metric, "code").and_then(|c| c.parse::<u16>().ok());
                let ok = code.is_some_and(|code| success(&endpoint, code));
                let entry = stats.by_endpoint.entry(endpoint).or_default();
                entry.total += count;
                if code.is_some() {
                    entry.answered += count;
                }
                if ok {
                    entry.successful += count;
                } else {
                    entry.failed += count;
                }
            }
        }
        for e in stats.by_endpoint.values() {
            stats.total += e.total;
            stats.successful += e.successful;
            stats.failed += e.failed;
            stats.answered += e.answered;
        }
        stats
    }

    /// Failed requests of each endpoint by kind since start: a status
    /// `success(endpoint, status)` does not accept, by class (`http_4xx`,
    /// `http_5xx`, `http_other`), or no answer, by [`ErrorKind`]. Every
    /// kind is present, at 0 unless counted.
    pub fn failures_by_endpoint(
        &self,
        success: impl Fn(&str, u16) -> bool,
    ) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        let empty = || FAILURE_KINDS.iter().map(|k| (*k, 0)).collect::<BTreeMap<&'static str, u64>>();
        let mut by: BTreeMap<String, BTreeMap<&'static str, u64>> = BTreeMap::new();
        let label = |metric: &prometheus::proto::Metric, name: &str| {
            metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string())
        };
        for family in self.requests.collect() {
            for metric in family.get_metric() {
                let Some(endpoint) = label(metric, "endpoint") else { continue };
                let entry = by.entry(endpoint.clone()).or_insert_with(empty);
                let Some(code) = label(metric, "code").and_then(|c| c.parse::<u16>().ok()) else { continue };
                if success(&endpoint, code) {
                    continue;
                }
                let kind = match code {
                    400..=499 => "http_4xx",
                    500..=599 => "http_5xx",
                    _ => "http_other",
                };
                *entry.entry(kind).or_default() += metric.get_counter().get_value() as u64;
            }
        }
        for family in self.errors.collect() {
            for metric in family.get_metric() {
                let (Some(endpoint), Some(kind)) = (label(metric, "endpoint"), label(metric, "kind")) else { continue };
                let Some(kind) = ErrorKind::ALL.iter().map(|k| k.as_str()).find(|k| *k == kind) else { continue };
                *by.entry(endpoint).or_insert_with(empty).entry(kind).or_default() +=
                    metric.get_counter().get_value() as u64;
            }
        }
        by
    }

    /// The Prometheus text exposition of everything.
    /// For metrics defined beside their subject (the span counters).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail on I/O; a failure here would be a
        // bug in a metric's own data.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!(error:% = e; "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The series of one journey (see [`Metrics::journey_series`]).
pub struct JourneySeries {
    label: String,
    started: IntCounter,
    completed: IntCounter,
    ended: [IntCounter; 4],
    dropped: [IntCounter; 2],
    duration: Histogram,
}

impl JourneySeries {
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn started(&self) {
        self.started.inc();
    }

    pub fn completed(&self, seconds: f64) {
        self.completed.inc();
        self.duration.observe(seconds);
    }

    pub fn ended(&self, reason: EndReason, n: u64) {
        self.ended[reason as usize].inc_by(n);
    }

    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].inc();
    }
}

/// The series of one request name (see [`Metrics::request_series`]).
pub struct RequestSeries {
    label: String,
    requests: IntCounterVec,
    duration: Histogram,
    /// `requests_total{code="error"}`.
    failures: IntCounter,
    errors: [IntCounter; 6],
    /// The counter of each status code seen so far, by code.
    codes: Vec<Option<IntCounter>>,
    /// Rare events: their series are made when first counted.
    unmet: IntCounterVec,
    capture_failures: IntCounterVec,
}

impl RequestSeries {
    /// The `endpoint` label (the request's name, or [`OTHER_ENDPOINT`]).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A request that got an HTTP answer with `status`.
    pub fn answer(&mut self, status: u16, seconds: f64) {
        let i = usize::from(status.min(999));
        if self.codes.len() <= i {
            self.codes.resize(i + 1, None);
        }
        let (requests, label) = (&self.requests, &self.label);
        self.codes[i]
            .get_or_insert_with(|| {
                let mut code = itoa_buf();
                requests.with_label_values(&[label.as_str(), status_str(status, &mut code)])
            })
            .inc();
        self.duration.observe(seconds);
    }

    /// A request that got no answer.
    pub fn failure(&self, kind: ErrorKind, seconds: f64) {
        self.failures.inc();
        self.errors[kind as usize].inc();
        self.duration.observe(seconds);
    }

    /// This request was drawn and not sent: a pool it reads was empty.
    pub fn unmet(&self) {
        self.unmet.with_label_values(&[self.label.as_str()]).inc();
    }

    /// Captures of one answer that stored nothing, by reason.
    pub fn capture_failures(&self, reason: &str, n: u32) {
        if n > 0 {
            self.capture_failures.with_label_values(&[self.label.as_str(), reason]).inc_by(u64::from(n));
        }
    }
}

/// The sum of every series of a counter family.
fn sum_of(counters: &IntCounterVec) -> u64 {
    counters.collect().iter().flat_map(|f| f.get_metric()).map(|m| m.get_counter().get_value() as u64).sum()
}

fn itoa_buf() -> [u8; 3] {
    [b'0'; 3]
}

/// The status code as a label without allocating; HTTP codes have 3 digits.
fn status_str(status: u16, buf: &mut [u8; 3]) -> &str {
    let status = status.min(999);
    buf[0] = b'0' + (status / 100) as u8;
    buf[1] = b'0' + (status / 10 % 10) as u8;
    buf[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_become_three_digit_labels() {
        let mut buf = itoa_buf();
        assert_eq!(status_str(200, &mut buf), "200");
        assert_eq!(status_str(404, &mut buf), "404");
        assert_eq!(status_str(99, &mut buf), "099");
    }

    #[test]
    fn series_of_one_name_bump_the_same_counters() {
        let m = Metrics::new().unwrap();
        let mut a = m.request_series("get_order");
        let mut b = m.request_series("get_order");
        for _ in 0..3 {
            a.answer(404, 0.01);
        }
        b.answer(404, 0.01);
        m.request_series("list_orders").answer(200, 0.01);
        let s = m.stats();
        assert_eq!(s.by_endpoint["get_order"], EndpointStats { total: 4, successful: 0, failed: 4, answered: 4 });
        assert_eq!(s.by_endpoint["list_orders"].successful, 1);
    }

    #[test]
    fn stats_are_read_back_from_the_counters() {
        let m = Metrics::new().unwrap();
        let mut create = m.request_series("create_order");
        let mut get = m.request_series("get_order");
        let mut list = m.request_series("list_orders");
        let unused = m.request_series("update_user");
        create.answer(201, 0.01);
        create.answer(500, 0.01);
        get.answer(404, 0.01);
        list.answer(200, 0.01);
        list.failure(ErrorKind::Connect, 0.001);
        m.add_dropped(3);
        let s = m.stats();
        assert_eq!((s.total, s.successful, s.failed, s.dropped, s.answered), (5, 2, 3, 3, 4));
        assert_eq!(s.by_endpoint["create_order"], EndpointStats { total: 2, successful: 1, failed: 1, answered: 2 });
        let list = EndpointStats { total: 2, successful: 1, failed: 1, answered: 1 };
        assert_eq!(s.by_endpoint["list_orders"], list, "the connect failure got no answer");
        assert_eq!(s.by_endpoint["get_order"], EndpointStats { total: 1, successful: 0, failed: 1, answered: 1 });
        assert_eq!(s.by_endpoint[unused.label()], EndpointStats::default(), "known, not yet sent");
    }

    #[test]
    fn failures_are_told_apart_by_kind_per_endpoint() {
        let m = Metrics::new().unwrap();
        let mut create = m.request_series("create_order");
        let mut list = m.request_series("list_orders");
        create.answer(201, 0.01);
        create.answer(503, 0.01);
        create.answer(500, 0.01);
        create.answer(302, 0.01);
        list.answer(404, 0.01);
        list.failure(ErrorKind::Timeout, 0.001);
        let by = m.failures_by_endpoint(|_, status| (200..300).contains(&status));
        let create = &by["create_order"];
        assert_eq!((create["http_5xx"], create["http_other"], create["http_4xx"], create["timeout"]), (2, 1, 0, 0));
        let list = &by["list_orders"];
        assert_eq!((list["http_4xx"], list["timeout"], list["connect"]), (1, 1, 0));
        assert_eq!(list.len(), FAILURE_KINDS.len(), "every kind shows");
        // A status the workload accepts is no failure.
        let by = m.failures_by_endpoint(|_, status| status != 500);
        assert_eq!(by["create_order"]["http_5xx"], 1);
    }

    #[test]
    fn success_may_be_decided_per_request() {
        let m = Metrics::new().unwrap();
        m.request_series("create").answer(201, 0.01);
        m.request_series("probe").answer(404, 0.01);
        m.request_series("probe").failure(ErrorKind::Timeout, 1.0);
        let s = m.stats_by(|name, code| name == "probe" && code == 404);
        assert_eq!(s.by_endpoint["create"], EndpointStats { total: 1, successful: 0, failed: 1, answered: 1 });
        assert_eq!(s.by_endpoint["probe"], EndpointStats { total: 2, successful: 1, failed: 1, answered: 1 });
        assert_eq!((s.total, s.successful, s.failed), (3, 1, 2));
    }

    #[test]
    fn endpoint_labels_are_bounded_over_any_number_of_names() {
        let m = Metrics::new().unwrap();
        for i in 0..MAX_ENDPOINT_LABELS {
            assert_eq!(m.request_series(&format!("r{i}")).label(), format!("r{i}"));
        }
        let mut late = m.request_series("one_too_many");
        assert_eq!(late.label(), OTHER_ENDPOINT);
        late.answer(200, 0.01);
        assert_eq!(m.request_series("r0").label(), "r0", "a known name keeps its label");
        let s = m.stats();
        assert_eq!(s.by_endpoint.len(), MAX_ENDPOINT_LABELS + 1);
        assert_eq!(s.by_endpoint[OTHER_ENDPOINT].total, 1);
    }

    #[test]
    fn pools_of_the_running_workload_are_gauged_by_name() {
        let m = Metrics::new().unwrap();
        m.show_pools([("user_ids", 7), ("token", 1)].into_iter());
        m.show_pools([("user_ids", 9)].into_iter());
        let text = m.render();
        assert!(text.contains("trafficgen_pool_values{pool=\"user_ids\"} 9"), "{text}");
        assert!(!text.contains("pool=\"token\""), "a pool of the old workload is gone: {text}");
    }

    #[test]
    fn render_names_every_contract_metric() {
        let m = Metrics::new().unwrap();
        m.request_series("create_order").answer(201, 0.01);
        m.request_series("get_order");
        m.request_series("list_orders");
        m.observe_lag(0.0005);
        m.show_mode(&["steady", "burst", "overload", "pause", "custom"], "burst", 20.0);
        let text = m.render();
        for name in [
            "trafficgen_requests_total{code=\"201\",endpoint=\"create_order\"} 1",
            "trafficgen_request_errors_total{endpoint=\"get_order\",kind=\"timeout\"} 0",
            "trafficgen_request_duration_seconds_bucket{endpoint=\"create_order\",le=\"0.01\"} 1",
            "trafficgen_target_rps 20",
            "trafficgen_mode{mode=\"burst\"} 1",
            "trafficgen_mode{mode=\"steady\"} 0",
            "trafficgen_in_flight_requests 0",
            "trafficgen_dropped_requests_total 0",
            "trafficgen_max_rps_waits_total 0",
            "trafficgen_order_ids_buffered 0",
            "trafficgen_mode_switches_total 0",
            "trafficgen_build_info{version=",
            "trafficgen_schedule_lag_seconds_count 1",
            "trafficgen_request_errors_total{endpoint=\"list_orders\",kind=\"dns\"} 0",
            "trafficgen_request_errors_total{endpoint=\"get_order\",kind=\"tls\"} 0",
            "trafficgen_request_errors_total{endpoint=\"get_order\",kind=\"reused\"} 0",
            "trafficgen_connection_retries_total{reason=\"closed\"} 0",
            "trafficgen_connection_retries_total{reason=\"reset\"} 0",
            "trafficgen_connection_retries_total{reason=\"broken_pipe\"} 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
