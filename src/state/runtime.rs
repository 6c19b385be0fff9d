//! Settings that change at runtime (`GET`/`PUT /config`, `POST
//! /config/reset`).
//!
//! A change is checked by the very function that checks start-up settings:
//! the app hands in a [`RuntimeCheck`] that puts the changed values into
//! the start-up arguments and validates them again, so a rate over
//! `MAX_RPS`, a jitter of 2 or a timeout of 0 is refused with the same
//! reason as at start, naming the JSON field. One rule is added: the
//! in-flight bound may go down and back up, never above its start-up value
//! (memory was sized for it).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::base::setting::ConfigError;

/// The settings `PUT /config` may change, with their current values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    pub steady_rps: f64,
    pub burst_rps: f64,
    pub overload_rps: f64,
    pub jitter: f64,
    pub request_timeout_ms: u64,
    pub max_in_flight: usize,
    /// 0: no stats line.
    pub stats_interval_secs: f64,
}

/// The JSON fields and the settings they stand for.
const FIELDS: [(&str, &str); 7] = [
    ("steady_rps", "STEADY_RPS"),
    ("burst_rps", "BURST_RPS"),
    ("overload_rps", "OVERLOAD_RPS"),
    ("jitter", "JITTER"),
    ("request_timeout_ms", "REQUEST_TIMEOUT_MS"),
    ("max_in_flight", "MAX_IN_FLIGHT"),
    ("stats_interval_secs", "STATS_INTERVAL_SECS"),
];

/// True for the name of a setting `PUT /config` may change.
pub fn is_runtime_field(name: &str) -> bool {
    FIELDS.iter().any(|(field, _)| *field == name)
}

impl RuntimeConfig {
    /// The fields whose values differ from `other`, as a JSON object.
    fn differences(&self, other: &RuntimeConfig) -> Map<String, Value> {
        let (Value::Object(mine), Value::Object(theirs)) =
            (serde_json::to_value(self).unwrap_or_default(), serde_json::to_value(other).unwrap_or_default())
        else {
            return Map::new();
        };
        mine.into_iter().filter(|(k, v)| theirs.get(k) != Some(v)).collect()
    }
}

/// Why a config change was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigChangeError {
    /// 400: not JSON.
    #[error("{0}")]
    BadJson(String),
    /// 422: `field` is wrong.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigChangeError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        ConfigChangeError::Invalid { field: field.to_string(), message: message.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ConfigChangeError::BadJson(_) => 400,
            ConfigChangeError::Invalid { .. } => 422,
        }
    }
}

/// Validates the start-up settings with `candidate`'s values put in, as
/// at start, and returns the values as that check leaves them. The app
/// gives it: the rules live in one place, the start-up check.
pub type RuntimeCheck = Arc<dyn Fn(&RuntimeConfig) -> Result<RuntimeConfig, ConfigError> + Send + Sync>;

/// The start-up settings and the current ones.
#[derive(Clone)]
pub struct RuntimeSettings {
    /// Re-validates with each change. It reads no file (file-backed
    /// settings are not among the runtime ones).
    check: RuntimeCheck,
    startup: RuntimeConfig,
    current: RuntimeConfig,
}

impl std::fmt::Debug for RuntimeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSettings").field("startup", &self.startup).field("current", &self.current).finish()
    }
}

impl RuntimeSettings {
    /// From the start-up values and the check every change goes through.
    pub fn new(startup: RuntimeConfig, check: RuntimeCheck) -> RuntimeSettings {
        RuntimeSettings { check, startup, current: startup }
    }

    pub fn current(&self) -> RuntimeConfig {
        self.current
    }

    pub fn startup(&self) -> RuntimeConfig {
        self.startup
    }

    /// `PUT /config`: any of the fields, the others stay. Returns the new
    /// settings; on an error nothing changes.
    pub fn change(&mut self, body: &[u8]) -> Result<RuntimeConfig, ConfigChangeError> {
        let allowed = FIELDS.map(|(f, _)| f).join(", ");
        if body.trim_ascii().is_empty() {
            return Err(ConfigChangeError::BadJson(format!(
                "PUT /config needs a JSON object of the settings to change ({allowed})"
            )));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ConfigChangeError::BadJson(format!("body is not valid JSON ({e})")))?;
        let Value::Object(fields) = value else {
            return Err(ConfigChangeError::invalid("body", format!("must be a JSON object with any of {allowed}")));
        };
        let next = self.check(&fields)?;
        self.current = next;
        Ok(next)
    }

    /// `POST /config/reset`: the start-up settings again.
    pub fn reset(&mut self) -> RuntimeConfig {
        self.current = self.startup;
        self.current
    }

    /// What differs from start-up, to keep in `STATE_DIR`.
    pub fn overrides(&self) -> Map<String, Value> {
        self.current.differences(&self.startup)
    }

    /// Applies overrides kept in `STATE_DIR`. They were valid when saved; if
    /// they are not under today's start-up settings (a lower `MAX_RPS`),
    /// none is applied and the reason comes back to be logged.
    pub fn apply_overrides(&mut self, overrides: &Map<String, Value>) -> Result<RuntimeConfig, ConfigChangeError> {
        let next = self.check(overrides)?;
        self.current = next;
        Ok(next)
    }

    /// Start-up with `overrides` put in, checked as `PUT /config` checks
    /// a change (a peer's settings, see `crate::cluster`): afterwards
    /// [`RuntimeSettings::overrides`] are `overrides` (less any equal to
    /// start-up). On an error nothing changes.
    pub fn replace_overrides(&mut self, overrides: &Map<String, Value>) -> Result<RuntimeConfig, ConfigChangeError> {
        let from_startup = RuntimeSettings { current: self.startup, ..self.clone() };
        let next = from_startup.check(overrides)?;
        self.current = next;
        Ok(next)
    }

    /// The settings with `fields` put in, checked as at start-up.
    fn check(&self, fields: &Map<String, Value>) -> Result<RuntimeConfig, ConfigChangeError> {
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.iter().any(|(f, _)| f == k)) {
            let allowed = FIELDS.map(|(f, _)| f).join(", ");
            let name: String = unknown.chars().take(64).collect();
            return Err(ConfigChangeError::invalid(
                "body",
                format!("'{name}' cannot be changed at runtime; allowed: {allowed} (the rest is fixed at start-up)"),
            ));
        }
        let current = self.current;
        let candidate = RuntimeConfig {
            steady_rps: rate(fields, "steady_rps", current.steady_rps)?,
            burst_rps: rate(fields, "burst_rps", current.burst_rps)?,
            overload_rps: rate(fields, "overload_rps", current.overload_rps)?,
            jitter: rate(fields, "jitter", current.jitter)?,
            request_timeout_ms: whole(fields, "request_timeout_ms", current.request_timeout_ms)?,
            max_in_flight: usize::try_from(whole(fields, "max_in_flight", current.max_in_flight as u64)?)
                .unwrap_or(usize::MAX),
            stats_interval_secs: rate(fields, "stats_interval_secs", current.stats_interval_secs)?,
        };
        let next = (self.check)(&candidate).map_err(field_error)?;
        if next.max_in_flight > self.startup.max_in_flight {
            return Err(ConfigChangeError::invalid(
                "max_in_flight",
                format!(
                    "may not exceed its start-up value MAX_IN_FLIGHT={} (memory is sized for it), not {}",
                    self.startup.max_in_flight, next.max_in_flight
                ),
            ));
        }
        Ok(next)
    }
}

fn rate(fields: &Map<String, Value>, field: &str, current: f64) -> Result<f64, ConfigChangeError> {
    match fields.get(field) {
        None => Ok(current),
        Some(v) => {
            v.as_f64().ok_or_else(|| ConfigChangeError::invalid(field, format!("must be a number, not {}", short(v))))
        }
    }
}

fn whole(fields: &Map<String, Value>, field: &str, current: u64) -> Result<u64, ConfigChangeError> {
    match fields.get(field) {
        None => Ok(current),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| ConfigChangeError::invalid(field, format!("must be a whole number, not {}", short(v)))),
    }
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(64).collect()
}

/// A start-up check's error, under the JSON field's name.
fn field_error(e: ConfigError) -> ConfigChangeError {
    match FIELDS.iter().find(|(_, setting)| *setting == e.setting) {
        Some((field, setting)) => {
            ConfigChangeError::invalid(field, format!("{} (as {setting}); got {}", e.reason, e.value))
        }
        // Another setting cannot fail when only these change; say so plainly if it does.
        None => ConfigChangeError::invalid("body", e.to_string()),
    }
}
