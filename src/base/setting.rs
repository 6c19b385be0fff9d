//! The error of a setting that failed validation, shared by every command
//! that reads settings (the sidecar, the demo target, `run`, `export`).

use std::fmt;

/// A setting that failed validation. Displays as one line naming it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid {setting}={value:?}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, value: impl fmt::Display, reason: impl fmt::Display) -> Self {
        ConfigError { setting, value: value.to_string(), reason: reason.to_string() }
    }
}
