//! The sidecar's Prometheus metrics: names and labels defined once here.
//!
//! `/status` counts are read back from these same counters, so `/status`
//! and `/metrics` agree by construction.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use serde::Serialize;

use crate::engine::mix::Endpoint;
use crate::engine::mode::Mode;

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
/// Schedule lag is small when all is well; the upper buckets show starvation.
const LAG_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    durations: [Histogram; 3],
    schedule_lag: Histogram,
    target_rps: Gauge,
    mode: IntGaugeVec,
    in_flight: IntGauge,
    dropped: IntCounter,
    ids_buffered: IntGauge,
    mode_switches: IntCounter,
    retries: RetryCounters,
}

/// Request counts of one endpoint, as `/status` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByEndpoint {
    pub create_order: EndpointStats,
    pub list_orders: EndpointStats,
    pub get_order: EndpointStats,
}

impl ByEndpoint {
    fn get_mut(&mut self, endpoint: Endpoint) -> &mut EndpointStats {
        match endpoint {
            Endpoint::CreateOrder => &mut self.create_order,
            Endpoint::ListOrders => &mut self.list_orders,
            Endpoint::GetOrder => &mut self.get_order,
        }
    }
}

/// The `stats` object of `/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub total: u64,
    pub successful: u64,
    pub failed: u64,
    pub dropped: u64,
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
        let durations = Endpoint::ALL.map(|e| duration_vec.with_label_values(&[e.as_str()]));
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
        let ids_buffered = IntGauge::new("trafficgen_order_ids_buffered", "Order ids remembered for get_order")?;
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
        let build_info = IntGaugeVec::new(
            Opts::new("trafficgen_build_info", "Always 1; the version is in the label"),
            &["version"],
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for m in Mode::ALL {
            mode.with_label_values(&[m.as_str()]).set(0);
        }
        // Make every endpoint's series exist from the start, so rate() and
        // dashboards see zeros rather than gaps.
        for e in Endpoint::ALL {
            for kind in ErrorKind::ALL {
                errors.with_label_values(&[e.as_str(), kind.as_str()]);
            }
        }

        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(requests.clone()),
            Box::new(errors.clone()),
            Box::new(duration_vec),
            Box::new(schedule_lag.clone()),
            Box::new(target_rps.clone()),
            Box::new(mode.clone()),
            Box::new(in_flight.clone()),
            Box::new(dropped.clone()),
            Box::new(ids_buffered.clone()),
            Box::new(mode_switches.clone()),
            Box::new(retries_vec),
            Box::new(build_info),
        ];
        for c in collectors {
            registry.register(c)?;
        }
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;

        Ok(Metrics {
            registry,
            requests,
            errors,
            durations,
            schedule_lag,
            target_rps,
            mode,
            in_flight,
            dropped,
            ids_buffered,
            mode_switches,
            retries,
        })
    }

    /// The retry counter, for the client.
    pub fn retry_counters(&self) -> RetryCounters {
        self.retries.clone()
    }

    /// A request that got an HTTP answer with `status`.
    pub fn record_answer(&self, endpoint: Endpoint, status: u16, seconds: f64) {
        let mut code = itoa_buf();
        self.requests.with_label_values(&[endpoint.as_str(), status_str(status, &mut code)]).inc();
        self.durations[endpoint.index()].observe(seconds);
    }

    /// A per-worker cache of the `requests_total` series, so the hot path
    /// bumps a counter without hashing label strings or taking a lock.
    pub fn answer_counters(&self) -> AnswerCounters {
        AnswerCounters { requests: self.requests.clone(), cache: Default::default() }
    }

    pub fn observe_duration(&self, endpoint: Endpoint, seconds: f64) {
        self.durations[endpoint.index()].observe(seconds);
    }

    /// A request that got no answer.
    pub fn record_failure(&self, endpoint: Endpoint, kind: ErrorKind, seconds: f64) {
        self.requests.with_label_values(&[endpoint.as_str(), "error"]).inc();
        self.errors.with_label_values(&[endpoint.as_str(), kind.as_str()]).inc();
        self.durations[endpoint.index()].observe(seconds);
    }

    pub fn observe_lag(&self, seconds: f64) {
        self.schedule_lag.observe(seconds.max(0.0));
    }

    pub fn add_dropped(&self, n: u64) {
        self.dropped.inc_by(n);
    }

    /// Shows `mode` as current and `rps` as the rate being sent.
    pub fn show_mode(&self, mode: Mode, rps: f64) {
        for m in Mode::ALL {
            self.mode.with_label_values(&[m.as_str()]).set(i64::from(m == mode));
        }
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

    /// Request counts read back from the counters.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats { dropped: self.dropped.get(), ..Stats::default() };
        for family in self.requests.collect() {
            for metric in family.get_metric() {
                let label =
                    |name: &str| metric.get_label().iter().find(|l| l.name() == name).map(|l| l.value().to_string());
                let Some(endpoint) = label("endpoint").and_then(|e| e.parse::<Endpoint>().ok()) else {
                    continue;
                };
                let count = metric.get_counter().get_value() as u64;
                let ok = label("code").is_some_and(|c| c.starts_with('2'));
                let entry = stats.by_endpoint.get_mut(endpoint);
                entry.total += count;
                if ok {
                    entry.successful += count;
                } else {
                    entry.failed += count;
                }
            }
        }
        for e in [stats.by_endpoint.create_order, stats.by_endpoint.list_orders, stats.by_endpoint.get_order] {
            stats.total += e.total;
            stats.successful += e.successful;
            stats.failed += e.failed;
        }
        stats
    }

    /// The Prometheus text exposition of everything.
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

/// See [`Metrics::answer_counters`].
pub struct AnswerCounters {
    requests: IntCounterVec,
    /// Per endpoint, the counter of each status code seen so far.
    cache: [Vec<Option<IntCounter>>; 3],
}

impl AnswerCounters {
    /// Counts one answer with `status`.
    pub fn count(&mut self, endpoint: Endpoint, status: u16) {
        let codes = &mut self.cache[endpoint.index()];
        let i = usize::from(status.min(999));
        if codes.len() <= i {
            codes.resize(i + 1, None);
        }
        let requests = &self.requests;
        codes[i]
            .get_or_insert_with(|| {
                let mut code = itoa_buf();
                requests.with_label_values(&[endpoint.as_str(), status_str(status, &mut code)])
            })
            .inc();
    }
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
    fn cached_answer_counters_bump_the_same_series() {
        let m = Metrics::new().unwrap();
        let mut counters = m.answer_counters();
        for _ in 0..3 {
            counters.count(Endpoint::GetOrder, 404);
        }
        m.record_answer(Endpoint::GetOrder, 404, 0.01);
        counters.count(Endpoint::ListOrders, 200);
        let s = m.stats();
        assert_eq!(s.by_endpoint.get_order, EndpointStats { total: 4, successful: 0, failed: 4 });
        assert_eq!(s.by_endpoint.list_orders.successful, 1);
    }

    #[test]
    fn stats_are_read_back_from_the_counters() {
        let m = Metrics::new().unwrap();
        m.record_answer(Endpoint::CreateOrder, 201, 0.01);
        m.record_answer(Endpoint::CreateOrder, 500, 0.01);
        m.record_answer(Endpoint::GetOrder, 404, 0.01);
        m.record_answer(Endpoint::ListOrders, 200, 0.01);
        m.record_failure(Endpoint::ListOrders, ErrorKind::Connect, 0.001);
        m.add_dropped(3);
        let s = m.stats();
        assert_eq!((s.total, s.successful, s.failed, s.dropped), (5, 2, 3, 3));
        assert_eq!(s.by_endpoint.create_order, EndpointStats { total: 2, successful: 1, failed: 1 });
        assert_eq!(s.by_endpoint.list_orders, EndpointStats { total: 2, successful: 1, failed: 1 });
        assert_eq!(s.by_endpoint.get_order, EndpointStats { total: 1, successful: 0, failed: 1 });
    }

    #[test]
    fn render_names_every_contract_metric() {
        let m = Metrics::new().unwrap();
        m.record_answer(Endpoint::CreateOrder, 201, 0.01);
        m.observe_lag(0.0005);
        m.show_mode(Mode::Burst, 20.0);
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
