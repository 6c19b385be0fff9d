//! Small leaf types and helpers every layer may use: durations, the
//! target URL, the control token, rate shapes as data, JSON helpers, a
//! setting's error, the stop signal. Nothing here imports the rest of the
//! crate.

pub mod descriptors;
pub mod duration;
pub mod file;
pub mod json;
pub mod number;
pub mod otlp;
pub mod setting;
pub mod shape;
pub mod signal;
pub mod token;
pub mod trace_context;
pub mod url;
