//! Black-box tests: the real binary, real peers on 127.0.0.1, HTTP only.

mod cli;
mod control;
mod demo_target;
mod faults;
mod hardening;
mod helpers;
mod metrics;
mod peers;
mod soak;
mod traffic;
