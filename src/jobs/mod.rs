//! Jobs: a traffic story (a scenario at a rate for a time) played once,
//! with live progress and a summary at the end; timed modes; the history.
//!
//! Pure types and functions, clock passed in, so every rule is a unit
//! test: [`spec`] reads and checks `POST /jobs` bodies and holds the
//! presets; [`board`] is the state machine (one job at a time, stop, mode
//! switches, timed modes, what to return to) and the registry of the last
//! 50; [`summary`] turns two moments' counters and latency snapshots into
//! the numbers people look at. The control API and the engine wiring use
//! these; nothing here sends or serves anything.

pub mod board;
pub mod scenario;
pub mod slo_watch;
pub mod spec;
pub mod summary;
pub mod timed;

pub use board::{Board, Clock, Finished, JobRecord, JobStatus, Resume, StopOutcome, StopReason, Switched};
pub use spec::{JobLimits, JobSpec, PRESETS, Preset};
pub use summary::{JourneyMeasures, JourneySummary, Measures, NameTotals, Progress, Summary, Totals};

/// Why a job request was refused; the control API maps each to its status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// 400: the body is not JSON at all.
    #[error("{0}")]
    BadJson(String),
    /// 422: a field is wrong; `field` names it (`body` for the whole).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 409: a job is running already.
    #[error("job {running} is running; stop it first (POST /jobs/{running}/stop) or wait for it to end")]
    Conflict { running: String },
    /// 404: no such job (any more).
    #[error("no job '{0}'; GET /jobs lists the last 50")]
    NotFound(String),
}

impl JobError {
    pub fn invalid(field: &str, message: impl Into<String>) -> JobError {
        JobError::Invalid { field: field.to_string(), message: message.into() }
    }

    /// The HTTP status the control API answers with.
    pub fn status(&self) -> u16 {
        match self {
            JobError::BadJson(_) => 400,
            JobError::Invalid { .. } => 422,
            JobError::Conflict { .. } => 409,
            JobError::NotFound(_) => 404,
        }
    }
}
