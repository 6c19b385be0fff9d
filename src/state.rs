//! Settings that change at runtime (`GET`/`PUT /config`, `POST
//! /config/reset`) and what survives a restart with `STATE_DIR`: those
//! changes and the job history.
//!
//! A change is checked by the very function that checks start-up settings
//! ([`Config::try_from`]): the start-up arguments with the changed values put
//! in are validated again, so a rate over `MAX_RPS`, a jitter of 2 or a
//! timeout of 0 is refused with the same reason as at start, naming the
//! JSON field. One rule is added: the in-flight bound may go down and back
//! up, never above its start-up value (memory was sized for it).
//!
//! The state file is written whole to a temporary file, synced, and renamed
//! over the old one (then the directory is synced), so a crash leaves the
//! old file or the new one, never half of one. A file that cannot be read
//! or parsed is reported and moved aside, and the sidecar starts without
//! it: a broken state file must never keep a sidecar down.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cli::SidecarArgs;
use crate::config::{Config, ConfigError};
use crate::jobs::JobRecord;

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
    /// The runtime part of a validated configuration.
    pub fn of(config: &Config) -> RuntimeConfig {
        let engine = &config.engine;
        RuntimeConfig {
            steady_rps: engine.modes.steady,
            burst_rps: engine.modes.burst,
            overload_rps: engine.modes.overload,
            jitter: engine.jitter,
            request_timeout_ms: u64::try_from(engine.request_timeout.as_millis()).unwrap_or(u64::MAX),
            max_in_flight: engine.max_in_flight,
            stats_interval_secs: config.stats_interval.map_or(0.0, |d| d.as_secs_f64()),
        }
    }

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

/// The start-up settings and the current ones.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// The start-up arguments, re-validated with each change. File-backed
    /// settings are left out: a change must not read files (and the token
    /// has no part in it). So is the SLO, which names the file's requests.
    args: SidecarArgs,
    startup: RuntimeConfig,
    current: RuntimeConfig,
}

impl RuntimeSettings {
    /// From the arguments the sidecar started with and what they gave.
    pub fn new(args: &SidecarArgs, config: &Config) -> RuntimeSettings {
        let mut args = args.clone();
        args.control_token_file = None;
        args.control_token = None;
        args.tls_ca_file = None;
        args.state_dir = None;
        // Read and checked once at start (and on SIGHUP): a change must not
        // read `WORKLOAD_FILE` again (a file edited since, deleted, or a FIFO
        // would fail it, or hang it). The SLO was checked against it then.
        args.workload_file = None;
        args.slo = None;
        let startup = RuntimeConfig::of(config);
        RuntimeSettings { args, startup, current: startup }
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
        let mut args = self.args.clone();
        let current = self.current;
        args.steady_rps = rate(fields, "steady_rps", current.steady_rps)?;
        args.burst_rps = rate(fields, "burst_rps", current.burst_rps)?;
        args.overload_rps = rate(fields, "overload_rps", current.overload_rps)?;
        args.jitter = rate(fields, "jitter", current.jitter)?;
        args.request_timeout_ms = whole(fields, "request_timeout_ms", current.request_timeout_ms)?;
        let in_flight = whole(fields, "max_in_flight", current.max_in_flight as u64)?;
        args.max_in_flight = usize::try_from(in_flight).unwrap_or(usize::MAX);
        args.stats_interval_secs = Some(rate(fields, "stats_interval_secs", current.stats_interval_secs)?);
        let config = Config::try_from(args).map_err(field_error)?;
        let next = RuntimeConfig::of(&config);
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

/// What `STATE_DIR` keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    pub version: u32,
    /// Runtime settings that differ from start-up.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// The job history, newest first.
    #[serde(default)]
    pub jobs: Vec<JobRecord>,
}

/// The version this build writes and reads.
pub const STATE_VERSION: u32 = 1;
/// The file's name in `STATE_DIR`.
pub const STATE_FILE: &str = "trafficgen-state.json";
/// The file whose lock says the directory is in use.
pub const LOCK_FILE: &str = ".trafficgen-state.lock";
/// A larger file is not read (50 jobs of 64 request names each are about
/// 1.3 MB), and a save trims the oldest jobs to stay under it.
pub const MAX_STATE_BYTES: usize = 4 * 1024 * 1024;
/// Files set aside that are kept; older ones are removed.
const KEEP_SET_ASIDE: usize = 3;

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub state: PersistedState,
    /// Something to report (the file was set aside, or could not be).
    pub problem: Option<String>,
}

/// The state file in `STATE_DIR`.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    max_bytes: usize,
    /// Held (an exclusive `flock`) for as long as the process runs, so two
    /// sidecars never share one state file: each would overwrite the other's
    /// config and history. Released by the kernel when the process ends.
    _lock: std::sync::Arc<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("STATE_DIR {dir}: {reason}")]
    Dir { dir: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("the state does not fit in {MAX_STATE_BYTES} bytes even without its job history")]
    TooLarge,
}

impl StateStore {
    /// The store in `dir`, which must be a directory we can write: checked
    /// once at start (a bad `STATE_DIR` is a bad setting, exit 2).
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |reason: String| StateError::Dir { dir: dir.display().to_string(), reason };
        let meta = fs::metadata(dir).map_err(|e| fail(format!("cannot be read ({e})")))?;
        if !meta.is_dir() {
            return Err(fail("is not a directory".into()));
        }
        let probe = dir.join(format!(".{STATE_FILE}.probe-{}", std::process::id()));
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| fail(format!("is not writable ({e})")))?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            // A FIFO in its place must not hang start-up.
            .custom_flags(libc::O_NONBLOCK)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| fail(format!("its lock file cannot be opened ({e})")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(fail(
                    "is in use by another trafficgen process; give each replica a directory of its own".into(),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(fail(format!("cannot be locked ({e})"))),
        }
        Ok(StateStore { dir: dir.to_path_buf(), max_bytes: MAX_STATE_BYTES, _lock: std::sync::Arc::new(lock) })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Reads the state. No file: an empty state. A file that cannot be used
    /// is moved aside (`…json.corrupt-<unix time>`) and reported; the
    /// sidecar goes on with an empty state.
    pub fn load(&self) -> Loaded {
        let path = self.path();
        let bytes = match read_bounded(&path, self.max_bytes) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Loaded::default(),
            Err(reason) => return self.set_aside(&path, &reason),
        };
        match serde_json::from_slice::<PersistedState>(&bytes) {
            Ok(state) if state.version == STATE_VERSION => Loaded { state, problem: None },
            Ok(state) => self.set_aside(&path, &format!("version {} is not {STATE_VERSION}", state.version)),
            Err(e) => self.set_aside(&path, &format!("not a state file ({e})")),
        }
    }

    /// Writes the state whole: temporary file, sync, rename, sync the
    /// directory. Jobs beyond what fits in [`MAX_STATE_BYTES`] are left out,
    /// oldest first.
    pub fn save(&self, state: &PersistedState) -> Result<(), StateError> {
        let mut state = state.clone();
        state.version = STATE_VERSION;
        let bytes = loop {
            let bytes = serde_json::to_vec(&state).map_err(|e| StateError::Write {
                path: self.path().display().to_string(),
                source: std::io::Error::other(e),
            })?;
            if bytes.len() <= self.max_bytes {
                break bytes;
            }
            if state.jobs.pop().is_none() {
                return Err(StateError::TooLarge);
            }
        };
        let path = self.path();
        let temporary = self.dir.join(format!(".{STATE_FILE}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = create_regular(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, &path)?;
            // The rename itself is durable only once the directory is.
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&temporary);
            StateError::Write { path: path.display().to_string(), source }
        })
    }

    fn set_aside(&self, path: &Path, reason: &str) -> Loaded {
        let stamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        let aside = (0..100)
            .map(|n| {
                self.dir.join(format!(
                    "{STATE_FILE}.corrupt-{stamp}{}",
                    if n == 0 { String::new() } else { format!("-{n}") }
                ))
            })
            .find(|p| !p.exists());
        let problem = match aside.map(|to| fs::rename(path, &to).map(|()| to)) {
            Some(Ok(to)) => {
                self.prune_set_aside();
                format!("state file {} {reason}; moved to {} and started without it", path.display(), to.display())
            }
            Some(Err(e)) => format!(
                "state file {} {reason}, and could not be moved aside ({e}); started without it",
                path.display()
            ),
            None => format!("state file {} {reason}; started without it", path.display()),
        };
        Loaded { state: PersistedState::default(), problem: Some(problem) }
    }

    /// Keeps the newest few files set aside, so a file that keeps breaking
    /// cannot fill the disk.
    fn prune_set_aside(&self) {
        let prefix = format!("{STATE_FILE}.corrupt-");
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        let mut aside: Vec<(SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH), e.path()))
            .collect();
        aside.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        for (_, old) in aside.into_iter().skip(KEEP_SET_ASIDE) {
            let _ = fs::remove_file(old);
        }
    }
}

/// Creates (or empties) a regular file to write. Whatever else holds the
/// name (a FIFO would wait for a reader for ever) is refused, and a
/// symbolic link is not followed.
fn create_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// The file's bytes; `None` if there is none; an error if it is too large
/// or unreadable.
fn read_bounded(path: &Path, max_bytes: usize) -> Result<Option<Vec<u8>>, String> {
    // Only a regular file: a FIFO put there would hang start-up.
    let file = match crate::workload::open_regular_file(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot be read ({e})")),
    };
    let mut bytes = Vec::new();
    file.take(max_bytes as u64 + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot be read ({e})"))?;
    if bytes.len() > max_bytes {
        return Err(format!("is larger than {max_bytes} bytes"));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use crate::engine::mode::Mode;
    use crate::jobs::{Board, Clock, JobLimits, JobSpec, Measures, Resume};
    use clap::Parser;

    fn args(flags: &[&str]) -> SidecarArgs {
        Cli::try_parse_from(std::iter::once("trafficgen").chain(flags.iter().copied())).expect("flags parse").sidecar
    }

    fn settings(flags: &[&str]) -> RuntimeSettings {
        let args = args(flags);
        let config = Config::try_from(args.clone()).expect("valid start-up settings");
        RuntimeSettings::new(&args, &config)
    }

    fn refused(settings: &mut RuntimeSettings, body: &str) -> (String, String) {
        let before = settings.current();
        let result = settings.change(body.as_bytes());
        assert_eq!(settings.current(), before, "{body}: a refused change changed something");
        match result {
            Err(ConfigChangeError::Invalid { field, message }) => (field, message),
            other => panic!("{body}: expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_peers_overrides_replace_ours_from_start_up_through_the_same_checks() {
        let mut s = settings(&["--max-rps", "500"]);
        s.change(br#"{"burst_rps": 40, "jitter": 0.1}"#).unwrap();
        let theirs: Map<String, Value> = serde_json::from_str(r#"{"steady_rps": 7}"#).unwrap();
        let config = s.replace_overrides(&theirs).unwrap();
        // Ours are gone: start-up with theirs put in.
        assert_eq!(config, RuntimeConfig { steady_rps: 7.0, ..s.startup() });
        let ours = s.overrides();
        assert_eq!((ours.len(), ours["steady_rps"].as_f64()), (1, Some(7.0)), "{ours:?}");
        // Checked as PUT /config checks: over MAX_RPS, or unknown, changes nothing.
        let before = s.current();
        for bad in [r#"{"steady_rps": 501}"#, r#"{"workers": 3}"#, r#"{"max_in_flight": 100000}"#] {
            let bad: Map<String, Value> = serde_json::from_str(bad).unwrap();
            assert!(matches!(s.replace_overrides(&bad), Err(ConfigChangeError::Invalid { .. })), "{bad:?}");
            assert_eq!(s.current(), before, "{bad:?}");
        }
        // A reset elsewhere: no overrides, start-up again.
        assert_eq!(s.replace_overrides(&Map::new()).unwrap(), s.startup());
        assert!(is_runtime_field("steady_rps") && !is_runtime_field("target_url"));
    }

    #[test]
    fn a_change_takes_the_fields_given_and_keeps_the_rest() {
        let mut s = settings(&[]);
        let start = s.current();
        assert_eq!(
            start,
            RuntimeConfig {
                steady_rps: 2.0,
                burst_rps: 20.0,
                overload_rps: 100.0,
                jitter: 0.2,
                request_timeout_ms: 5000,
                max_in_flight: 512,
                stats_interval_secs: 30.0
            }
        );
        let changed = s.change(br#"{"burst_rps": 50, "jitter": 0, "max_in_flight": 100}"#).unwrap();
        assert_eq!((changed.burst_rps, changed.jitter, changed.max_in_flight), (50.0, 0.0, 100));
        assert_eq!((changed.steady_rps, changed.request_timeout_ms), (2.0, 5000));
        let changed = s.change(br#"{"stats_interval_secs": 0, "max_in_flight": 512}"#).unwrap();
        assert_eq!((changed.stats_interval_secs, changed.burst_rps), (0.0, 50.0));
        let overrides = Value::Object(s.overrides());
        assert_eq!(overrides, serde_json::json!({"burst_rps": 50.0, "jitter": 0.0, "stats_interval_secs": 0.0}));
        assert_eq!(s.reset(), start);
        assert!(s.overrides().is_empty());
    }

    #[test]
    fn a_bad_value_is_refused_as_at_start_up_naming_the_field() {
        let mut s = settings(&["--max-rps", "1000", "--max-in-flight", "512"]);
        let cases: &[(&str, &str, &str)] = &[
            (r#"{"burst_rps": 2000}"#, "burst_rps", "exceeds MAX_RPS"),
            (r#"{"steady_rps": -1}"#, "steady_rps", "negative"),
            (r#"{"overload_rps": "many"}"#, "overload_rps", "number"),
            (r#"{"jitter": 1.5}"#, "jitter", "fraction from 0 to 1"),
            (r#"{"request_timeout_ms": 0}"#, "request_timeout_ms", "from 1 to 600000"),
            (r#"{"request_timeout_ms": 1.5}"#, "request_timeout_ms", "whole number"),
            (r#"{"request_timeout_ms": -5}"#, "request_timeout_ms", "whole number"),
            (r#"{"max_in_flight": 0}"#, "max_in_flight", "from 1"),
            (r#"{"max_in_flight": 513}"#, "max_in_flight", "start-up value MAX_IN_FLIGHT=512"),
            (r#"{"stats_interval_secs": 0.5}"#, "stats_interval_secs", "seconds from 1 to 86400"),
            (r#"{"max_rps": 5}"#, "body", "cannot be changed at runtime"),
            (r#"{"target_url": "http://elsewhere"}"#, "body", "cannot be changed at runtime"),
            (r#"[1]"#, "body", "JSON object"),
            // One bad field spoils the change: the good one is not applied either.
            (r#"{"steady_rps": 5, "jitter": 9}"#, "jitter", "fraction"),
        ];
        for (body, field, fragment) in cases {
            let (f, message) = refused(&mut s, body);
            assert_eq!(&f, field, "{body}: {message}");
            assert!(message.contains(fragment), "{body}: {message}");
        }
        // The very reason start-up gives.
        let start_up = Config::try_from(args(&["--jitter", "1.5"])).unwrap_err();
        let (_, message) = refused(&mut s, r#"{"jitter": 1.5}"#);
        assert!(message.starts_with(&start_up.reason), "{message} vs {}", start_up.reason);
        for body in ["", "{", "jitter=1"] {
            assert!(matches!(s.change(body.as_bytes()), Err(ConfigChangeError::BadJson(_))), "{body}");
        }
    }

    #[test]
    fn overrides_that_no_longer_fit_are_refused_whole() {
        let mut before = settings(&[]);
        before.change(br#"{"burst_rps": 500, "jitter": 0.5}"#).unwrap();
        let kept = before.overrides();
        // Restarted with a lower cap: the kept burst rate is over it.
        let mut after = settings(&["--max-rps", "100"]);
        let err = after.apply_overrides(&kept).unwrap_err();
        assert!(matches!(&err, ConfigChangeError::Invalid { field, .. } if field == "burst_rps"), "{err}");
        assert_eq!(after.current(), after.startup());
        // Under the same cap they apply.
        let mut same = settings(&[]);
        assert_eq!(same.apply_overrides(&kept).unwrap().burst_rps, 500.0);
    }

    #[test]
    fn a_change_reads_no_file() {
        let dir = temp_dir("token");
        let token = dir.join("token");
        fs::write(&token, "secret\n").unwrap();
        let path = token.to_str().unwrap().to_string();
        let mut s = settings(&["--control-token-file", &path]);
        // The token file went away (rotated): changes still work.
        fs::remove_file(&token).unwrap();
        assert_eq!(s.change(br#"{"steady_rps": 3}"#).unwrap().steady_rps, 3.0);
        fs::remove_dir_all(dir).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "trafficgen-state-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn some_jobs(n: usize) -> Vec<JobRecord> {
        let limits = JobLimits { max_rps: 1000.0, weighted: vec!["a".into()], errors: vec![] };
        let mut board = Board::new(7);
        let t0 = Clock::now();
        let resume = Resume { mode: Mode::Steady, rps: 2.0 };
        for _ in 0..n {
            let spec = JobSpec::parse(br#"{"preset":"gentle"}"#, &limits).unwrap();
            board.start(spec, t0, resume, Measures::default(), 1).unwrap();
            let id = board.running_id().unwrap().to_string();
            board.stop(&id, t0, &Measures::default()).unwrap();
        }
        board.records()
    }

    #[test]
    fn the_state_survives_a_save_and_a_load() {
        let dir = temp_dir("roundtrip");
        let store = StateStore::open(&dir).unwrap();
        assert_eq!(store.load().state, PersistedState::default(), "no file: an empty state");
        let mut s = settings(&[]);
        s.change(br#"{"overload_rps": 300}"#).unwrap();
        let state = PersistedState { version: 0, config: s.overrides(), jobs: some_jobs(3) };
        store.save(&state).unwrap();
        let loaded = store.load();
        assert_eq!(loaded.problem, None);
        assert_eq!(loaded.state.version, STATE_VERSION);
        assert_eq!(loaded.state.jobs, state.jobs);
        assert_eq!(loaded.state.config, state.config);
        // Only the state file is left: no temporary file.
        let mut names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [LOCK_FILE, STATE_FILE]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_reported_and_set_aside_never_fatal() {
        let dir = temp_dir("corrupt");
        let store = StateStore::open(&dir).unwrap();
        let contents: &[&[u8]] = &[
            b"{\"version\":1,\"jobs\":[",
            b"\xff\xfe not json",
            b"{\"version\":99}",
            b"{\"version\":1,\"surprise\":true}",
            b"[]",
        ];
        for (i, bytes) in contents.iter().enumerate() {
            fs::write(store.path(), bytes).unwrap();
            let loaded = store.load();
            let problem = loaded.problem.expect("reported");
            assert!(problem.contains("moved to") && problem.contains("started without it"), "{problem}");
            assert_eq!(loaded.state, PersistedState::default());
            assert!(!store.path().exists(), "case {i}: the file was set aside");
        }
        // At most three set-aside files are kept.
        let aside = fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".corrupt-"))
            .count();
        assert_eq!(aside, KEEP_SET_ASIDE);
        // And the next save works.
        store.save(&PersistedState::default()).unwrap();
        assert_eq!(store.load().problem, None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sizes_are_bounded_both_ways() {
        let dir = temp_dir("bounds");
        let mut store = StateStore::open(&dir).unwrap();
        store.max_bytes = 4096;
        // A save leaves out the oldest jobs until the state fits.
        let jobs = some_jobs(20);
        store.save(&PersistedState { version: 1, config: Map::new(), jobs: jobs.clone() }).unwrap();
        let loaded = store.load().state.jobs;
        assert!(!loaded.is_empty() && loaded.len() < 20, "{} jobs kept", loaded.len());
        assert_eq!(loaded[..], jobs[..loaded.len()], "the newest are kept");
        assert!(fs::metadata(store.path()).unwrap().len() <= 4096);
        // A file too large is not read.
        fs::write(store.path(), vec![b' '; 5000]).unwrap();
        assert!(store.load().problem.unwrap().contains("larger than 4096 bytes"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_save_leaves_the_old_file_whole() {
        let dir = temp_dir("failed");
        let store = StateStore::open(&dir).unwrap();
        let old = PersistedState { version: 1, config: Map::new(), jobs: some_jobs(1) };
        store.save(&old).unwrap();
        // The temporary file's name is taken by a directory: the write fails.
        fs::create_dir(dir.join(format!(".{STATE_FILE}.tmp-{}", std::process::id()))).unwrap();
        assert!(matches!(store.save(&PersistedState::default()), Err(StateError::Write { .. })));
        assert_eq!(store.load().state.jobs, old.jobs);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn state_dir_must_be_a_writable_directory() {
        let dir = temp_dir("open");
        let file = dir.join("plain-file");
        fs::write(&file, "x").unwrap();
        for bad in [file.clone(), dir.join("missing")] {
            let err = StateStore::open(&bad).unwrap_err().to_string();
            assert!(err.starts_with("STATE_DIR") && !err.contains('\n'), "{err}");
        }
        assert!(StateStore::open(&dir).is_ok());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn one_directory_serves_one_process_at_a_time() {
        let dir = temp_dir("lock");
        let first = StateStore::open(&dir).unwrap();
        let err = StateStore::open(&dir).unwrap_err().to_string();
        assert!(err.contains("in use by another trafficgen") && !err.contains('\n'), "{err}");
        // Clones share the one lock; it goes with the last of them.
        let clone = first.clone();
        drop(first);
        assert!(StateStore::open(&dir).is_err(), "a clone still holds the lock");
        drop(clone);
        assert!(StateStore::open(&dir).is_ok(), "free again once the holder is gone");
        fs::remove_dir_all(dir).unwrap();
    }
}
