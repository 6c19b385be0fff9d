//! trafficgen: an always-on HTTP traffic generator sidecar.
//!
//! The folders are the layers, top-down (ARCHITECTURE.md draws them and
//! says what may import what; `tests/architecture.rs` keeps it so):
//! - [`app`]: entry and wiring — settings from flags and environment,
//!   validated once; the sidecar put together; the subcommands.
//! - [`control`]: the HTTP control API, its live streams and the panel.
//! - [`cluster`]: replicas that split the rate and switch together.
//! - [`state`]: what `PUT /config` changes and what `STATE_DIR` keeps.
//! - [`jobs`]: the stories — scenarios, timed jobs, their summaries and SLOs.
//! - [`export`]: a workload's traffic as a k6, Locust or Artillery script.
//! - [`engine`]: the pacer, the worker loop and the HTTP client.
//! - [`openapi`]: a workload derived from an OpenAPI document (pure).
//! - [`workload`]: the workload language — parse, check, compile, render.
//! - [`observe`]: metrics, latency percentiles, SLO syntax, logs, rates.
//! - [`base`]: small leaf types every layer may use.
//! - [`demo_target`]: the built-in API to aim at; it shares only `base`.

pub mod app;
pub mod base;
pub mod cluster;
pub mod control;
pub mod demo_target;
pub mod engine;
pub mod export;
pub mod jobs;
pub mod observe;
pub mod openapi;
pub mod state;
pub mod workload;
