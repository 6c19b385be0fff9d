//! The jobs' state machine and registry: at most one job at a time
//! (running → completed | stopped), timed modes, and what the sidecar
//! returns to when either ends. Pure: the caller passes the clock and the
//! measures (counters and a latency snapshot) of the moment, and applies
//! what comes back (a plan to resume) to the engine.
//!
//! The rules:
//! - A second start while a job runs is refused with the running job's id.
//! - Stopping is idempotent: a job that has ended answers as it ended.
//! - A mode switch stops a running job; the new mode wins (nothing resumes).
//! - When a job completes or is stopped by request, the mode and rate from
//!   before it come back. A job started during a timed mode returns to the
//!   mode the timed mode would have returned to.
//! - A timed mode (`burst` for 60 s) is a mode switch; when it ends, the mode
//!   before it comes back. A timed mode started during another returns to
//!   the first one's mode; one started during a job returns to the mode
//!   before the job.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::JobError;
use super::spec::JobSpec;
use super::summary::{Measures, Progress, RequestCounts, Summary, round3};
use crate::engine::mode::Mode;
use crate::engine::stages::{Ragged, Stages};

/// Jobs kept in the registry, the running one included.
pub const HISTORY: usize = 50;

/// The moment, twice: for durations and for the times people read.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Clock {
    pub fn now() -> Clock {
        Clock { at: Instant::now(), wall: SystemTime::now() }
    }

    /// `d` later on both clocks.
    pub fn after(&self, d: Duration) -> Clock {
        Clock { at: self.at + d, wall: self.wall + d }
    }
}

/// A mode and its rate, to come back to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resume {
    pub mode: Mode,
    pub rps: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    /// Ran its whole duration.
    Completed,
    /// Ended early: see its `stop_reason`.
    Stopped,
    /// Was running when the sidecar went down (found so at the next start).
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `POST /jobs/{id}/stop`.
    Requested,
    /// A mode was switched (or a timed mode started) during the job.
    ModeSwitch,
    /// The sidecar shut down.
    Shutdown,
}

/// A job as `GET /jobs` shows it and `STATE_DIR` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub status: JobStatus,
    #[serde(flatten)]
    pub spec: JobSpec,
    /// RFC 3339, UTC.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
}

/// A job that ended, and the plan to go back to (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub record: JobRecord,
    pub resume: Option<Resume>,
}

/// The answer to a stop.
#[derive(Debug, Clone, PartialEq)]
pub enum StopOutcome {
    Stopped(Finished),
    /// It had ended already; stopping again changes nothing.
    AlreadyEnded(JobRecord),
}

/// What a mode switch ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Switched {
    /// The job it stopped.
    pub stopped: Option<JobRecord>,
    /// A timed mode was on and will no longer return.
    pub timed_cancelled: bool,
}

/// What is due to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Job,
    TimedMode,
}

struct Running {
    record: JobRecord,
    started: Instant,
    resume: Resume,
    stages: Stages,
    /// Latency degradation's pauses, on the same seed as the engine's.
    ragged: Option<Ragged>,
    start: Measures,
    last: (Instant, Measures),
}

impl Running {
    fn elapsed(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// Schedule time at wall time `w`, and whether a pause is on.
    fn schedule_time(&mut self, w: f64) -> (f64, bool) {
        match &mut self.ragged {
            Some(ragged) => {
                let s = ragged.schedule_time(w).unwrap_or(w);
                let paused = ragged.wall_time(s).is_some_and(|start| start < w - 1e-9);
                (s, paused)
            }
            None => (w, false),
        }
    }

    /// Requests the schedule asked for by `w` seconds into the job.
    fn planned(&mut self, w: f64) -> f64 {
        let s = self.schedule_time(w.min(self.record.spec.duration_secs)).0;
        self.stages.position_at(s)
    }

    fn target_rps(&mut self, w: f64) -> f64 {
        match self.schedule_time(w) {
            (_, true) => 0.0,
            (s, false) => self.stages.rate_at(s),
        }
    }
}

struct Timed {
    until: Instant,
    resume: Resume,
}

/// The jobs of one sidecar, and its timed mode.
pub struct Board {
    running: Option<Running>,
    timed: Option<Timed>,
    /// Ended jobs, newest first.
    history: VecDeque<JobRecord>,
    next_seq: u64,
    /// Part of every id, so ids from before a restart (without STATE_DIR)
    /// are not mistaken for new ones.
    tag: u16,
}

impl Board {
    /// An empty board; `tag` (random) goes into its job ids.
    pub fn new(tag: u16) -> Board {
        Board { running: None, timed: None, history: VecDeque::new(), next_seq: 1, tag }
    }

    /// Starts `spec` now, `current` being the plan to return to. The
    /// engine's pauses for latency degradation must use the same `seed`.
    pub fn start(
        &mut self,
        spec: JobSpec,
        clock: Clock,
        current: Resume,
        measures: Measures,
        seed: u64,
    ) -> Result<JobRecord, JobError> {
        self.refuse_while_running()?;
        let job_id = format!("job-{}-{:04x}", self.next_seq, self.tag);
        self.next_seq += 1;
        Ok(self.start_as(job_id, spec, clock, current, measures, seed))
    }

    /// One job at a time: a 409 naming the running one.
    fn refuse_while_running(&self) -> Result<(), JobError> {
        match &self.running {
            Some(running) => Err(JobError::Conflict { running: running.record.job_id.clone() }),
            None => Ok(()),
        }
    }

    /// Starts a job another replica started, under its id, `clock` being
    /// when it started there (perhaps a moment ago). The caller ends a job
    /// of its own first.
    pub fn start_shared(
        &mut self,
        job_id: String,
        spec: JobSpec,
        clock: Clock,
        current: Resume,
        measures: Measures,
        seed: u64,
    ) -> Result<JobRecord, JobError> {
        self.refuse_while_running()?;
        self.history.retain(|r| r.job_id != job_id);
        Ok(self.start_as(job_id, spec, clock, current, measures, seed))
    }

    fn start_as(
        &mut self,
        job_id: String,
        spec: JobSpec,
        clock: Clock,
        current: Resume,
        measures: Measures,
        seed: u64,
    ) -> JobRecord {
        // A timed mode gives way to the job, which returns to where it would have.
        let resume = self.timed.take().map_or(current, |t| t.resume);
        let stages = Stages::new(&spec.stages(), 0.0);
        let ragged = spec.scenario.0.pauses().map(|p| Ragged::new(p.pauses, p.active, seed));
        let record = JobRecord {
            job_id,
            status: JobStatus::Running,
            spec,
            started_at: rfc3339(clock.wall),
            ended_at: None,
            stop_reason: None,
            summary: None,
        };
        self.running = Some(Running {
            record: record.clone(),
            started: clock.at,
            resume,
            stages,
            ragged,
            last: (clock.at, measures.clone()),
            start: measures,
        });
        self.trim();
        record
    }

    /// What has reached its end by `at`, if anything (a job first).
    pub fn due(&self, at: Instant) -> Option<Due> {
        if let Some(running) = &self.running
            && running.elapsed(at) >= running.record.spec.duration_secs
        {
            return Some(Due::Job);
        }
        self.timed.as_ref().filter(|t| at >= t.until).map(|_| Due::TimedMode)
    }

    /// When the next end is due, for the caller's timer.
    pub fn next_due(&self) -> Option<Instant> {
        let job = self.running.as_ref().map(|r| {
            let d = Duration::try_from_secs_f64(r.record.spec.duration_secs).unwrap_or(Duration::MAX);
            r.started.checked_add(d).unwrap_or(r.started)
        });
        let timed = self.timed.as_ref().map(|t| t.until);
        job.into_iter().chain(timed).min()
    }

    /// Ends the running job as completed if its time is up.
    pub fn complete(&mut self, clock: Clock, measures: &Measures) -> Option<Finished> {
        (self.due(clock.at) == Some(Due::Job)).then(|| self.end(clock, measures, None)).flatten()
    }

    /// Ends a timed mode whose time is up; returns the plan to go back to.
    pub fn expire_timed(&mut self, at: Instant) -> Option<Resume> {
        if self.timed.as_ref().is_some_and(|t| at >= t.until) {
            return self.timed.take().map(|t| t.resume);
        }
        None
    }

    /// `POST /jobs/{id}/stop`.
    pub fn stop(&mut self, id: &str, clock: Clock, measures: &Measures) -> Result<StopOutcome, JobError> {
        if self.running.as_ref().is_some_and(|r| r.record.job_id == id) {
            let finished = self.end(clock, measures, Some(StopReason::Requested));
            return finished.map(StopOutcome::Stopped).ok_or_else(|| JobError::NotFound(clip(id)));
        }
        match self.history.iter().find(|r| r.job_id == id) {
            Some(record) => Ok(StopOutcome::AlreadyEnded(record.clone())),
            None => Err(JobError::NotFound(clip(id))),
        }
    }

    /// A mode switch: stops a running job and any timed mode.
    pub fn switch_mode(&mut self, clock: Clock, measures: &Measures) -> Switched {
        let stopped = self
            .running
            .is_some()
            .then(|| self.end(clock, measures, Some(StopReason::ModeSwitch)))
            .flatten()
            .map(|f| f.record);
        Switched { stopped, timed_cancelled: self.timed.take().is_some() }
    }

    /// A timed mode for `duration` from now: a mode switch that comes back.
    pub fn start_timed(&mut self, clock: Clock, duration: Duration, current: Resume, measures: &Measures) -> Switched {
        let job_resume = self.running.as_ref().map(|r| r.resume);
        let timed_resume = self.timed.as_ref().map(|t| t.resume);
        let switched = self.switch_mode(clock, measures);
        let resume = job_resume.or(timed_resume).unwrap_or(current);
        let until = clock.at.checked_add(duration).unwrap_or(clock.at + Duration::from_secs(86_400 * 365));
        self.timed = Some(Timed { until, resume });
        Switched { timed_cancelled: false, ..switched }
    }

    /// The shutdown: a running job is stopped and recorded as such.
    pub fn shut_down(&mut self, clock: Clock, measures: &Measures) -> Option<JobRecord> {
        self.timed = None;
        self.running
            .is_some()
            .then(|| self.end(clock, measures, Some(StopReason::Shutdown)))
            .flatten()
            .map(|f| f.record)
    }

    /// The running job's live numbers since the previous call.
    pub fn progress(&mut self, clock: Clock, measures: Measures) -> Option<Progress> {
        let running = self.running.as_mut()?;
        let elapsed = running.elapsed(clock.at);
        let target_rps = running.target_rps(elapsed);
        let (since, before) = &running.last;
        let interval_secs = clock.at.saturating_duration_since(*since).as_secs_f64();
        let interval = Summary::between(before, &measures, interval_secs, 0.0);
        let whole = measures.totals.since(&running.start.totals);
        let progress = Progress {
            job_id: running.record.job_id.clone(),
            scenario: running.record.spec.scenario.0.as_str(),
            elapsed_secs: round3(elapsed),
            duration_secs: running.record.spec.duration_secs,
            target_rps: round3(target_rps),
            achieved_rps: interval.achieved_rps,
            requests: RequestCounts {
                sent: whole.sent,
                successful: whole.successful,
                failed: whole.failed,
                dropped: whole.dropped,
                in_flight_at_end: measures.in_flight,
            },
            error_ratio: interval.error_ratio,
            latency_ms: interval.latency_ms,
            interval_secs: round3(interval_secs),
        };
        running.last = (clock.at, measures);
        Some(progress)
    }

    /// The running job's id.
    pub fn running_id(&self) -> Option<&str> {
        self.running.as_ref().map(|r| r.record.job_id.as_str())
    }

    /// When the timed mode ends, if one is on.
    pub fn timed_until(&self) -> Option<Instant> {
        self.timed.as_ref().map(|t| t.until)
    }

    /// `GET /jobs/{id}`.
    pub fn get(&self, id: &str) -> Option<&JobRecord> {
        self.list().find(|r| r.job_id == id)
    }

    /// `GET /jobs`: the running job, then the ended ones, newest first.
    pub fn list(&self) -> impl Iterator<Item = &JobRecord> {
        self.running.iter().map(|r| &r.record).chain(self.history.iter()).take(HISTORY)
    }

    /// Loads the history kept in `STATE_DIR` (newest first). A job found
    /// running was cut off by the sidecar going down: it is interrupted.
    pub fn load_history(&mut self, records: Vec<JobRecord>) {
        let mut seen = std::collections::HashSet::new();
        for mut record in records.into_iter().take(HISTORY) {
            if !seen.insert(record.job_id.clone()) {
                continue;
            }
            if record.status == JobStatus::Running {
                record.status = JobStatus::Interrupted;
            }
            self.next_seq = self.next_seq.max(sequence(&record.job_id).saturating_add(1));
            self.history.push_back(record);
        }
        self.trim();
    }

    /// Every job to keep in `STATE_DIR`, the running one included (so a
    /// crash shows it as interrupted at the next start).
    pub fn records(&self) -> Vec<JobRecord> {
        self.list().cloned().collect()
    }

    fn end(&mut self, clock: Clock, measures: &Measures, stopped: Option<StopReason>) -> Option<Finished> {
        let mut running = self.running.take()?;
        let elapsed = running.elapsed(clock.at);
        let planned = running.planned(elapsed);
        let summary = Summary::between(&running.start, measures, elapsed, planned);
        let mut record = running.record;
        record.status = if stopped.is_some() { JobStatus::Stopped } else { JobStatus::Completed };
        record.stop_reason = stopped;
        record.ended_at = Some(rfc3339(clock.wall));
        record.summary = Some(summary);
        let resume = match stopped {
            None | Some(StopReason::Requested) => Some(running.resume),
            Some(StopReason::ModeSwitch | StopReason::Shutdown) => None,
        };
        self.history.push_front(record.clone());
        self.trim();
        Some(Finished { record, resume })
    }

    fn trim(&mut self) {
        let room = HISTORY - usize::from(self.running.is_some());
        self.history.truncate(room);
    }
}

/// The sequence number in `job-N-tag` (0 if it has none).
fn sequence(id: &str) -> u64 {
    id.strip_prefix("job-").and_then(|rest| rest.split('-').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn rfc3339(t: SystemTime) -> String {
    String::from_utf8_lossy(&crate::workload::render::rfc3339_millis(t)).into_owned()
}

/// At most 64 characters of an id a client sent.
fn clip(id: &str) -> String {
    id.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::spec::JobLimits;
    use crate::jobs::summary::Totals;
    use crate::observe::latency::LatencyTable;

    const STEADY: Resume = Resume { mode: Mode::Steady, rps: 2.0 };
    const BURST: Resume = Resume { mode: Mode::Burst, rps: 20.0 };

    fn spec(body: &str) -> JobSpec {
        let limits = JobLimits {
            max_rps: 1000.0,
            max_users: 100,
            weighted: vec!["create_order".into(), "list_orders".into()],
            errors: vec!["order_error".into()],
        };
        JobSpec::parse(body.as_bytes(), &limits).unwrap()
    }

    fn measures(sent: u64) -> Measures {
        Measures { totals: Totals { sent, successful: sent, failed: 0, dropped: 0 }, ..Measures::default() }
    }

    fn start() -> (Board, Clock) {
        let t0 = Clock::now();
        let mut board = Board::new(0xab);
        let record = board
            .start(spec(r#"{"scenario":"normal","duration_secs":60,"max_rps":10}"#), t0, STEADY, measures(0), 1)
            .unwrap();
        assert_eq!(record.job_id, "job-1-00ab");
        assert_eq!(record.status, JobStatus::Running);
        (board, t0)
    }

    #[test]
    fn a_job_completes_after_its_duration_and_the_mode_before_comes_back() {
        let (mut board, t0) = start();
        assert_eq!(board.due(t0.at + Duration::from_secs(59)), None);
        assert!(board.complete(t0.after(Duration::from_secs(59)), &measures(590)).is_none());
        assert_eq!(board.next_due(), Some(t0.at + Duration::from_secs(60)));
        let end = t0.after(Duration::from_secs(60));
        assert_eq!(board.due(end.at), Some(Due::Job));
        let finished = board.complete(end, &measures(600)).expect("completed");
        assert_eq!(finished.resume, Some(STEADY));
        assert_eq!(finished.record.status, JobStatus::Completed);
        let summary = finished.record.summary.as_ref().unwrap();
        assert_eq!((summary.requests.sent, summary.achieved_rps, summary.target_rps), (600, 10.0, 10.0));
        assert_eq!(board.running_id(), None);
        assert_eq!(board.list().count(), 1);
        assert_eq!(board.next_due(), None);
    }

    #[test]
    fn one_job_at_a_time_and_the_conflict_names_the_running_one() {
        let (mut board, t0) = start();
        let again = board.start(spec(r#"{"preset":"gentle"}"#), t0, STEADY, measures(0), 1);
        assert_eq!(again, Err(JobError::Conflict { running: "job-1-00ab".into() }));
        assert_eq!(again.unwrap_err().status(), 409);
        assert_eq!(board.list().count(), 1, "the refused start left no trace");
    }

    #[test]
    fn stop_is_idempotent_and_unknown_ids_are_not_found() {
        let (mut board, t0) = start();
        let at = t0.after(Duration::from_secs(10));
        let StopOutcome::Stopped(finished) = board.stop("job-1-00ab", at, &measures(100)).unwrap() else {
            panic!("should stop")
        };
        assert_eq!(finished.resume, Some(STEADY));
        assert_eq!(finished.record.stop_reason, Some(StopReason::Requested));
        assert_eq!(finished.record.summary.as_ref().unwrap().elapsed_secs, 10.0);
        let again = board.stop("job-1-00ab", at.after(Duration::from_secs(1)), &measures(200)).unwrap();
        assert_eq!(again, StopOutcome::AlreadyEnded(finished.record.clone()));
        assert_eq!(board.stop("job-9", at, &measures(0)), Err(JobError::NotFound("job-9".into())));
        let long = "j".repeat(10_000);
        assert!(matches!(board.stop(&long, at, &measures(0)), Err(JobError::NotFound(id)) if id.len() == 64));
    }

    #[test]
    fn a_mode_switch_stops_the_job_and_nothing_comes_back() {
        let (mut board, t0) = start();
        let switched = board.switch_mode(t0.after(Duration::from_secs(5)), &measures(50));
        let stopped = switched.stopped.expect("stopped");
        assert_eq!((stopped.status, stopped.stop_reason), (JobStatus::Stopped, Some(StopReason::ModeSwitch)));
        assert!(!switched.timed_cancelled);
        assert_eq!(board.due(t0.at + Duration::from_secs(3600)), None, "nothing left to end");
        assert_eq!(board.switch_mode(t0, &measures(50)), Switched::default());
    }

    #[test]
    fn a_timed_mode_returns_to_the_mode_before_it() {
        let t0 = Clock::now();
        let mut board = Board::new(1);
        let switched = board.start_timed(t0, Duration::from_secs(60), STEADY, &measures(0));
        assert_eq!(switched, Switched::default());
        assert_eq!(board.timed_until(), Some(t0.at + Duration::from_secs(60)));
        assert_eq!(board.expire_timed(t0.at + Duration::from_secs(59)), None);
        // A second timed mode during the first returns to the first's mode.
        board.start_timed(t0.after(Duration::from_secs(30)), Duration::from_secs(60), BURST, &measures(0));
        assert_eq!(board.due(t0.at + Duration::from_secs(90)), Some(Due::TimedMode));
        assert_eq!(board.expire_timed(t0.at + Duration::from_secs(90)), Some(STEADY));
        assert_eq!(board.expire_timed(t0.at + Duration::from_secs(91)), None);
        // A plain switch cancels it.
        board.start_timed(t0, Duration::from_secs(60), STEADY, &measures(0));
        assert!(board.switch_mode(t0, &measures(0)).timed_cancelled);
        assert_eq!(board.timed_until(), None);
    }

    #[test]
    fn jobs_and_timed_modes_hand_over_where_to_return() {
        // A timed burst (from steady), then a job: the job returns to steady.
        let t0 = Clock::now();
        let mut board = Board::new(1);
        board.start_timed(t0, Duration::from_secs(60), STEADY, &measures(0));
        board.start(spec(r#"{"preset":"gentle"}"#), t0, BURST, measures(0), 1).unwrap();
        assert_eq!(board.timed_until(), None, "the job replaced the timed mode");
        let finished = board.complete(t0.after(Duration::from_secs(30)), &measures(300)).unwrap();
        assert_eq!(finished.resume, Some(STEADY));
        // A job (from steady), then a timed burst: the job stops, and the
        // burst returns to steady.
        board.start(spec(r#"{"preset":"gentle"}"#), t0, STEADY, measures(0), 1).unwrap();
        let custom = Resume { mode: Mode::Custom, rps: 7.0 };
        let switched =
            board.start_timed(t0.after(Duration::from_secs(1)), Duration::from_secs(5), custom, &measures(0));
        assert_eq!(switched.stopped.map(|r| r.stop_reason), Some(Some(StopReason::ModeSwitch)));
        assert_eq!(board.expire_timed(t0.at + Duration::from_secs(6)), Some(STEADY));
    }

    #[test]
    fn the_registry_keeps_the_last_50_newest_first() {
        let t0 = Clock::now();
        let mut board = Board::new(2);
        for i in 0..60u64 {
            let at = t0.after(Duration::from_secs(i * 2));
            board.start(spec(r#"{"preset":"gentle"}"#), at, STEADY, measures(0), i).unwrap();
            let id = board.running_id().unwrap().to_string();
            board.stop(&id, at.after(Duration::from_secs(1)), &measures(1)).unwrap();
        }
        board.start(spec(r#"{"preset":"gentle"}"#), t0, STEADY, measures(0), 0).unwrap();
        let ids: Vec<&str> = board.list().map(|r| r.job_id.as_str()).collect();
        assert_eq!(ids.len(), HISTORY);
        assert_eq!(&ids[..3], ["job-61-0002", "job-60-0002", "job-59-0002"]);
        assert_eq!(ids[49], "job-12-0002");
        assert!(board.get("job-11-0002").is_none());
        assert_eq!(board.get("job-61-0002").unwrap().status, JobStatus::Running);
    }

    #[test]
    fn history_survives_a_round_trip_and_a_job_cut_off_is_interrupted() {
        let (mut board, t0) = start();
        board.stop("job-1-00ab", t0.after(Duration::from_secs(2)), &measures(20)).unwrap();
        board.start(spec(r#"{"preset":"stress"}"#), t0, STEADY, measures(0), 1).unwrap();
        let json = serde_json::to_string(&board.records()).unwrap();
        let records: Vec<JobRecord> = serde_json::from_str(&json).unwrap();
        let mut restarted = Board::new(0xcd);
        restarted.load_history(records);
        let loaded: Vec<(String, JobStatus)> = restarted.list().map(|r| (r.job_id.clone(), r.status)).collect();
        assert_eq!(
            loaded,
            [("job-2-00ab".to_string(), JobStatus::Interrupted), ("job-1-00ab".to_string(), JobStatus::Stopped)]
        );
        let next = restarted.start(spec(r#"{"preset":"gentle"}"#), t0, STEADY, measures(0), 1).unwrap();
        assert_eq!(next.job_id, "job-3-00cd", "numbers go on after the loaded ones");
        assert_eq!(restarted.get("job-1-00ab").unwrap().summary.as_ref().unwrap().requests.sent, 20);
    }

    #[test]
    fn progress_shows_the_interval_and_the_schedules_rate_now() {
        let t0 = Clock::now();
        let mut board = Board::new(3);
        let table = LatencyTable::new(["create_order"]);
        let m = |sent: u64| Measures {
            totals: Totals { sent, successful: sent, failed: 0, dropped: 0 },
            latency: table.snapshot(),
            latency_names: table.names().to_vec(),
            ..Measures::default()
        };
        board.start(spec(r#"{"scenario":"peak","duration_secs":40,"max_rps":100}"#), t0, STEADY, m(0), 1).unwrap();
        for _ in 0..10 {
            table.record(0, Duration::from_millis(30), Duration::ZERO);
        }
        // 5 s in: peak's rate is halfway up its 10 s rise.
        let p = board.progress(t0.after(Duration::from_secs(5)), m(125)).unwrap();
        assert_eq!((p.elapsed_secs, p.target_rps, p.achieved_rps, p.requests.sent), (5.0, 50.0, 25.0, 125));
        assert_eq!(p.latency_ms.from_sent.count, 10);
        let p = board.progress(t0.after(Duration::from_millis(5500)), m(150)).unwrap();
        assert_eq!((p.interval_secs, p.achieved_rps, p.requests.sent), (0.5, 50.0, 150));
        assert_eq!(p.latency_ms.from_sent.count, 0, "nothing was answered in this interval");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["scenario"], "peak");
        assert!(json["latency_ms"]["from_scheduled"]["p99"].is_null());
    }

    #[test]
    fn latency_degradation_plans_for_its_pauses() {
        let t0 = Clock::now();
        let mut board = Board::new(3);
        board
            .start(
                spec(r#"{"scenario":"latency_degradation","duration_secs":60,"max_rps":100}"#),
                t0,
                STEADY,
                measures(0),
                9,
            )
            .unwrap();
        // The rate is 0 during a pause and 100 otherwise.
        let mut rates = Vec::new();
        for i in 0..600u64 {
            rates.push(board.progress(t0.after(Duration::from_millis(i * 100)), measures(0)).unwrap().target_rps);
        }
        let paused = rates.iter().filter(|r| **r == 0.0).count();
        assert!(rates.iter().all(|r| *r == 0.0 || *r == 100.0));
        assert!((60..=180).contains(&paused), "{paused} of 600 samples paused");
        let finished = board.complete(t0.after(Duration::from_secs(60)), &measures(4800)).unwrap();
        let target = finished.record.summary.unwrap().target_rps;
        assert!((70.0..90.0).contains(&target), "average target {target}");
    }

    #[test]
    fn shutdown_records_the_job_as_stopped() {
        let (mut board, t0) = start();
        let record = board.shut_down(t0.after(Duration::from_secs(1)), &measures(10)).unwrap();
        assert_eq!(record.stop_reason, Some(StopReason::Shutdown));
        assert!(board.shut_down(t0, &measures(10)).is_none());
    }

    #[test]
    fn a_shared_job_keeps_its_id_and_its_start_and_is_one_at_a_time_too() {
        let now = Clock::now();
        let started = Clock { at: now.at - Duration::from_secs(20), wall: now.wall - Duration::from_secs(20) };
        let mut board = Board::new(0x01);
        let job = spec(r#"{"scenario":"normal","duration_secs":60,"max_rps":10}"#);
        let record = board.start_shared("job-7-beef".into(), job.clone(), started, STEADY, measures(0), 3).unwrap();
        assert_eq!((record.job_id.as_str(), board.running_id()), ("job-7-beef", Some("job-7-beef")));
        // It ends 60 s after it started elsewhere, 40 s from now.
        assert_eq!(board.next_due(), Some(started.at + Duration::from_secs(60)));
        let second = board.start_shared("job-8-beef".into(), job, now, STEADY, measures(0), 3);
        assert_eq!(second, Err(JobError::Conflict { running: "job-7-beef".into() }));
        // Ids of this board go on from its own sequence.
        assert!(board.stop("job-7-beef", now, &measures(5)).is_ok());
        let own = board.start(spec(r#"{"preset":"gentle"}"#), now, STEADY, measures(5), 1).unwrap();
        assert_eq!(own.job_id, "job-1-0001");
    }
}
