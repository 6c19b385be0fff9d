//! What the engine and the stories record and the surface reads:
//! Prometheus metrics, latency percentiles, the SLO syntax and its pure
//! evaluator, log lines, the achieved rate, the last 5 minutes' numbers. Below the engine: it knows no
//! mode, plan or job, only names and numbers handed to it.

pub mod history;
pub mod latency;
pub mod logging;
pub mod metrics;
pub mod rate;
pub mod slo;
pub mod trace;
