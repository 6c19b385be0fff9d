//! Black-box tests: the real binary, real peers on 127.0.0.1, HTTP only.

mod cli;
mod cluster;
mod control;
mod demo_target;
mod dns;
mod export;
mod exposure;
mod faults;
mod hardening;
mod helpers;
mod hostile;
pub mod jobs;
mod keep_alive;
mod metrics;
mod openapi;
mod panel;
mod peers;
mod promises;
mod readme;
mod real_servers;
mod run;
mod scripted;
mod soak;
mod target_bounds;
mod tls;
mod traffic;
mod workload;
