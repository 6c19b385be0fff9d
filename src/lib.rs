//! trafficgen: an always-on HTTP traffic generator sidecar.
//!
//! # Layout
//! - [`cli`] and [`config`]: settings from flags and environment, validated
//!   once into [`config::Config`].
//! - [`engine`]: the pure pacer ([`engine::schedule`]), request mix
//!   ([`engine::mix`]), order-id ring ([`engine::ring`]) and modes
//!   ([`engine::mode`]); the worker loop and the HTTP client around them.
//! - [`control`]: the HTTP control API; it changes the engine's plan and
//!   reads its state, nothing else.
//! - [`metrics`]: every Prometheus metric, defined once; `/status` reads
//!   its counts back from them.
//! - [`demo_target`]: the built-in API to aim at (orders, users, login).
//! - [`workload`]: workload files (requests, templates, captures, pools),
//!   checked and compiled once; the built-in orders workload.
//! - [`scenario`]: the named traffic stories as rate stages, shared by
//!   jobs and exports.
//! - [`descriptors`]: the open-file limit shared out between the engine
//!   and the control API.
//! - [`export`]: a workload's traffic as a k6, Locust or Artillery script.
//! - [`slo`]: the SLO syntax and a pure evaluator of a window against it.
//! - [`events`]: the live event hub behind the SSE streams (bounded
//!   buffers per reader; a slow reader loses events, never slows anyone).
//! - [`jobs`]: timed scenarios as jobs (spec, presets, the one-at-a-time
//!   state machine, the history, summaries) and timed modes, as pure code.
//! - [`latency`]: latency percentiles per request name, recorded by the
//!   engine without locks and read as snapshots.
//! - [`state`]: runtime settings (`/config`) checked as at start-up, and
//!   what `STATE_DIR` keeps across restarts.
//! - [`cluster`]: replicas (`PEERS`) that split the rate and switch
//!   together: membership, shares, the versioned replicated state.
//! - [`app`]: wires it together; `main.rs` only dispatches.

pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo_target;
pub mod descriptors;
pub mod engine;
pub mod events;
pub mod export;
pub mod healthcheck;
pub mod jobs;
pub mod json;
pub mod latency;
pub mod logging;
pub mod metrics;
pub mod rate;
pub mod run;
pub mod scenario;
pub mod slo;
pub mod slo_watch;
pub mod state;
pub mod workload;
