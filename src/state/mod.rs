//! Settings that change at runtime ([`runtime`]) and what survives a
//! restart with `STATE_DIR`: those changes and the job history.
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

use crate::jobs::JobRecord;

pub mod runtime;

pub use runtime::{ConfigChangeError, RuntimeCheck, RuntimeConfig, RuntimeSettings, is_runtime_field};

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
    let file = match crate::base::file::open_regular(path) {
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
    use crate::engine::mode::Mode;
    use crate::jobs::{Board, Clock, JobLimits, JobSpec, Measures, Resume};

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
        let limits = JobLimits { max_rps: 1000.0, max_users: 100, weighted: vec!["a".into()], errors: vec![] };
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
        let config: Map<String, Value> = serde_json::from_str(r#"{"overload_rps": 300}"#).unwrap();
        let state = PersistedState { version: 0, config, jobs: some_jobs(3) };
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
