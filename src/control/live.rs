//! The control side's moving parts: the jobs board (one job at a time,
//! timed modes, the history), the runtime settings, the event hub and the
//! latency window, and the driver task that ticks them.
//!
//! Every change of mode, job or settings goes through here, under one lock,
//! so the board, the engine's plan and the events never disagree. The
//! engine only ever sees plans and a focus; the board stays pure.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::cluster::document::{JobSection, SharedJob};
use crate::cluster::{Cluster, Source};
use crate::control::events::{EventHub, JobEvent, ModeEvent, SloEvent, StatsEvent, Topic, names};
use crate::control::rates::RatesNow;
use crate::engine::Engine;
use crate::engine::focus::Focus;
use crate::engine::mode::{Mode, Plan, Shape};
use crate::jobs::board::Due;
use crate::jobs::slo_watch::{Reading, SloState, SloWatch, outcome_str};
use crate::jobs::{
    Board, Clock, JobError, JobRecord, JobSpec, Measures, NameTotals, Progress, Resume, StopReason, Totals,
};
use crate::observe::history::{History, HistoryPoint, NameCounts, NameRate, NameRates};
use crate::observe::latency::{LatencyReport, LatencyWindow};
use crate::observe::slo::{Outcome, Slo};
use crate::state::{ConfigChangeError, PersistedState, RuntimeConfig, RuntimeSettings, STATE_VERSION, StateStore};

/// A running job's numbers are published this often.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// The sidecar's stats event, and a slice of the latency window.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// Slices of [`STATS_EVERY`] in `/status`'s latency window: the last 10 s.
const WINDOW_SLICES: usize = 10;

/// What a mode switch did besides switching.
#[derive(Debug, Default)]
pub struct SwitchOutcome {
    /// The job it stopped.
    pub stopped_job: Option<JobRecord>,
    /// A timed mode: seconds until the mode before comes back.
    pub returns_in_secs: Option<f64>,
}

/// Arrivals and journeys now, summed over journeys.
fn journey_measures(engine: &Engine) -> crate::jobs::JourneyMeasures {
    let counts = engine.metrics().journey_counts();
    let mut measures = crate::jobs::JourneyMeasures {
        arrivals: engine.metrics().arrivals_total(),
        active: engine.journeys_active() as u64,
        durations: engine.journey_latency().snapshot(),
        ..Default::default()
    };
    for c in counts.values() {
        measures.started += c.started;
        measures.completed += c.completed;
        for (reason, n) in &c.ended_early {
            *measures.ended.entry(reason.clone()).or_default() += n;
        }
        for (reason, n) in &c.dropped {
            *measures.dropped.entry(reason.clone()).or_default() += n;
        }
    }
    measures
}

/// `/status`'s `latency`: the last 10 s, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct RecentLatency {
    /// How much time the percentiles cover (up to 10 s).
    pub window_secs: f64,
    #[serde(flatten)]
    pub report: LatencyReport,
}

struct Inner {
    board: Board,
    /// `None` only where the API is built without a configuration (in-process tests).
    settings: Option<RuntimeSettings>,
    window: LatencyWindow,
    /// The running job's latest numbers, for `/status`.
    progress: Option<Progress>,
    /// For the stats event: the moment and the counters of the previous one.
    last_stats: Option<(Instant, Totals)>,
    /// `SLO`: the objectives judged every second over `SLO_WINDOW`.
    slo: Option<SloWatch>,
    /// The last 5 minutes, a point a second (`GET /history`).
    history: History,
    /// Each request name's rate over the last seconds (`/status`'s `requests`).
    name_rates: NameRates,
    /// The moment the history's clock counts from.
    started: Instant,
}

/// `/status`'s `slo`: each objective over the window.
#[derive(Debug, Clone, Serialize)]
pub struct SloStatus {
    pub window_secs: f64,
    /// Every objective met or without data.
    pub ok: bool,
    pub objectives: Vec<SloState>,
}

/// Shared by the handlers and the driver task.
pub struct Live {
    engine: Engine,
    cluster: Option<Cluster>,
    inner: Mutex<Inner>,
    hub: EventHub,
    store: Option<StateStore>,
    /// Wakes the driver when something new is due (a job or a timed mode began).
    wake: Notify,
    /// The stats line's interval (`PUT /config` changes it).
    stats_every: watch::Sender<Option<Duration>>,
    /// Why the last write to `STATE_DIR` failed, if it did.
    save_error: Mutex<Option<String>>,
}

impl Live {
    /// With the start-up settings and, if `STATE_DIR` is set, what it kept:
    /// config changes are applied to the engine and the history loaded.
    pub fn new(
        engine: Engine,
        cluster: Option<Cluster>,
        settings: Option<RuntimeSettings>,
        store: Option<StateStore>,
    ) -> Arc<Live> {
        let stats_every = settings.as_ref().map(|s| s.current()).and_then(|c| stats_interval(&c));
        let hub = EventHub::counting_into(engine.metrics().events_dropped());
        let live = Arc::new(Live {
            inner: Mutex::new(Inner {
                board: Board::new(rand::random()),
                settings,
                window: LatencyWindow::new(WINDOW_SLICES),
                progress: None,
                last_stats: None,
                slo: None,
                history: History::new(),
                name_rates: NameRates::default(),
                started: Instant::now(),
            }),
            engine,
            cluster,
            hub,
            store,
            wake: Notify::new(),
            stats_every: watch::channel(stats_every).0,
            save_error: Mutex::new(None),
        });
        live.load();
        live
    }

    /// Without settings or a state directory (in-process tests).
    pub fn detached(engine: Engine, cluster: Option<Cluster>) -> Arc<Live> {
        Live::new(engine, cluster, None, None)
    }

    pub fn hub(&self) -> &EventHub {
        &self.hub
    }

    /// Follows the stats line's interval.
    pub fn stats_interval(&self) -> watch::Receiver<Option<Duration>> {
        self.stats_every.subscribe()
    }

    fn load(&self) {
        let Some(store) = &self.store else { return };
        let loaded = store.load();
        if let Some(problem) = &loaded.problem {
            log::warn!(path:% = store.path().display(); "state file not used: {problem}");
        }
        let mut inner = self.inner.lock();
        let jobs = loaded.state.jobs.len();
        inner.board.load_history(loaded.state.jobs);
        if let Some(settings) = inner.settings.as_mut()
            && !loaded.state.config.is_empty()
        {
            match settings.apply_overrides(&loaded.state.config) {
                Ok(config) => {
                    self.retune(&config);
                    log::info!(path:% = store.path().display(), jobs = jobs; "runtime settings and job history loaded from STATE_DIR");
                }
                Err(e) => {
                    log::warn!(error:% = e; "runtime settings kept in STATE_DIR no longer fit the start-up settings; not applied")
                }
            }
        }
    }

    /// Writes config changes and the history to `STATE_DIR`, if set.
    fn persist(&self, inner: &Inner) {
        let Some(store) = &self.store else { return };
        let state = PersistedState {
            version: STATE_VERSION,
            config: inner.settings.as_ref().map(RuntimeSettings::overrides).unwrap_or_default(),
            jobs: inner.board.records(),
        };
        let saved = store.save(&state);
        if let Err(e) = &saved {
            log::error!(error:% = e; "could not save the state to STATE_DIR");
        }
        *self.save_error.lock() = saved.err().map(|e| e.to_string());
    }

    /// Whether the last change was kept in `STATE_DIR`: `None` without
    /// one, else the reason it could not be written. A change that could
    /// not be kept is in force all the same (pausing the load must work on
    /// a full disk too); its answer says `"persisted": false`.
    pub fn persisted(&self) -> Option<Result<(), String>> {
        self.store.as_ref()?;
        Some(self.save_error.lock().clone().map_or(Ok(()), Err))
    }

    /// Judges `slos` every second over `window` from now on: gauges,
    /// `/status.slo`, an `slo` event and a log line when one flips.
    pub fn judge_slos(&self, slos: Vec<Slo>, window: Duration) {
        if slos.is_empty() {
            return;
        }
        let metrics = self.engine.metrics();
        for slo in &slos {
            metrics.show_slo(&slo.to_string(), None, None);
        }
        self.inner.lock().slo = Some(SloWatch::new(slos, window));
    }

    /// The objectives now; `None` without `SLO`.
    pub fn slo_status(&self) -> Option<SloStatus> {
        let inner = self.inner.lock();
        let watch = inner.slo.as_ref()?;
        Some(SloStatus { window_secs: watch.window().as_secs_f64(), ok: watch.all_hold(), objectives: watch.states() })
    }

    /// The objectives judged once more right now (the end of a run).
    pub fn judge_slos_now(&self) -> Option<SloStatus> {
        {
            let mut inner = self.inner.lock();
            if let Some(mut slo) = inner.slo.take() {
                let measures = self.measures();
                self.judge(&mut slo, Instant::now(), &measures);
                inner.slo = Some(slo);
            }
        }
        self.slo_status()
    }

    /// An objective missed without a break for a whole window (for
    /// `trafficgen run --abort-on-fail`).
    pub fn slo_missed_for_a_window(&self) -> Option<String> {
        let inner = self.inner.lock();
        let watch = inner.slo.as_ref()?;
        watch.missed_for_a_window().map(|i| watch.slos()[i].to_string())
    }

    /// One SLO tick: the window moves on by `measures`; flips are logged
    /// and published.
    fn judge(&self, slo: &mut SloWatch, now: Instant, measures: &Measures) {
        let plan = self.engine.plan();
        let target_rps = if plan.warming_up { 0.0 } else { plan.share.of(plan.rate_at(SystemTime::now())) };
        let workload = self.engine.workload();
        let shares = measures
            .latency_names
            .iter()
            .map(|name| workload.find(name).and_then(|id| workload.share(id)).map_or(0.0, |p| p / 100.0))
            .collect();
        let names: Vec<String> = workload.requests().map(|id| workload.name(id).to_string()).collect();
        let listed = names.join(", ");
        for objective in slo.follow_workload(names) {
            let scope = objective.scope.as_deref().unwrap_or_default();
            log::warn!(slo:% = objective, requests = listed.as_str();
                "SLO {objective}: the workload now running has no request named `{scope}` (requests: {listed}); \
                 it has no data until one does");
        }
        let flips = slo.tick(Reading::from_measures(now, measures, target_rps, shares));
        let metrics = self.engine.metrics();
        for (objective, verdict) in slo.slos().iter().zip(slo.verdicts()) {
            let ok = match verdict.outcome {
                Outcome::Met => Some(true),
                Outcome::Missed => Some(false),
                Outcome::NoData => None,
            };
            metrics.show_slo(&objective.to_string(), ok, verdict.value);
        }
        let window_secs = slo.window().as_secs_f64();
        for flip in flips {
            let objective = &slo.slos()[flip.index];
            let value = flip.value.map(|v| crate::jobs::slo_watch::shown_value(objective, v));
            let (outcome, previous) = (outcome_str(flip.to), outcome_str(flip.from));
            // A number in the JSON line; without a value NaN, which the JSON
            // logger writes as null.
            let logged = value.unwrap_or(f64::NAN);
            match flip.to {
                Outcome::Missed => log::warn!(slo:% = objective, value = logged, window_secs = window_secs;
                    "SLO {objective} missed over the last {window_secs} s"),
                _ => log::info!(slo:% = objective, value = logged, outcome = outcome, previous = previous;
                    "SLO {objective}: {outcome} (was {previous})"),
            }
            let event = SloEvent { slo: objective.to_string(), outcome, previous, value, window_secs };
            self.hub.publish(&Topic::Sidecar, names::SLO, &event, false);
        }
    }

    /// The counters and latencies of this moment.
    pub fn measures(&self) -> Measures {
        let engine = &self.engine;
        let stats = engine.stats();
        let table = engine.latency();
        let by = &stats.by_endpoint;
        let by_name = by
            .iter()
            .map(|(name, e)| {
                (name.clone(), NameTotals { successful: e.successful, failed: e.failed, answered: e.answered })
            })
            .collect();
        Measures {
            totals: Totals {
                sent: engine.sent(),
                successful: stats.successful,
                failed: stats.failed,
                dropped: stats.dropped,
            },
            answered: stats.answered,
            by_name,
            in_flight: engine.in_flight() as u64,
            latency: table.snapshot(),
            latency_names: table.names().to_vec(),
            journeys: journey_measures(engine),
        }
    }

    /// The plan now, as the board's "mode to come back to".
    fn current(&self) -> Resume {
        let plan = self.engine.plan();
        let rps = if plan.shape == Shape::Constant {
            plan.rps
        } else if plan.is_users() {
            // A ramp of users part-way: the users it has reached.
            plan.users_at(SystemTime::now()) as f64
        } else {
            plan.rate_at(SystemTime::now())
        };
        Resume { mode: plan.mode, rps }
    }

    /// Puts `plan` in force: through the cluster for a mode (with its ramp
    /// and users' pause), so every replica switches; a job's story on this
    /// replica only, as the job section brings it to the others.
    fn apply(&self, plan: Plan, cause: &'static str, returns_in_secs: Option<f64>) {
        let before = self.engine.plan();
        match &self.cluster {
            Some(cluster) if !matches!(plan.shape, Shape::Story { .. }) => {
                // The document may say this already while a job's plan runs
                // here: then it is put back in force here.
                if !cluster.propose_plan(plan.clone()) {
                    cluster.reapply_plan();
                }
            }
            _ => {
                self.engine.switch_to(plan.clone());
            }
        }
        self.hub.publish(
            &Topic::Sidecar,
            names::MODE,
            &ModeEvent {
                mode: plan.mode.as_str(),
                rps: plan.rps,
                previous_mode: before.mode.as_str(),
                previous_rps: before.rps,
                cause,
                returns_in_secs,
            },
            false,
        );
    }

    fn resume(&self, resume: Resume, cause: &'static str) {
        self.apply(Plan::new(resume.mode, resume.rps), cause, None);
    }

    /// A mode switch from the API: stops a running job (nothing resumes);
    /// with `duration`, the mode before comes back after it.
    pub fn switch_mode(&self, plan: Plan, duration: Option<Duration>) -> SwitchOutcome {
        let mut inner = self.inner.lock();
        let clock = Clock::now();
        let measures = self.measures();
        let switched = match duration {
            Some(d) => {
                let current = self.current();
                inner.board.start_timed(clock, d, current, &measures)
            }
            None => inner.board.switch_mode(clock, &measures),
        };
        let returns_in_secs = duration.map(|d| d.as_secs_f64());
        self.apply(plan, "api", returns_in_secs);
        if let Some(record) = &switched.stopped {
            self.job_ended(&mut inner, record);
            self.share_stop(StopReason::ModeSwitch);
            self.persist(&inner);
        }
        drop(inner);
        self.wake.notify_one();
        SwitchOutcome { stopped_job: switched.stopped, returns_in_secs }
    }

    /// `POST /jobs`: starts `spec` unless a job runs (409).
    pub fn start_job(&self, spec: JobSpec) -> Result<JobRecord, JobError> {
        let mut inner = self.inner.lock();
        // Whole milliseconds: the anchor replicas agree on, to the slot.
        let start_ms = epoch_ms(SystemTime::now());
        let clock = Clock { at: Instant::now(), wall: UNIX_EPOCH + Duration::from_millis(start_ms) };
        let seed: u64 = rand::random();
        let current = self.current();
        let record = inner.board.start(spec.clone(), clock, current, self.measures(), seed)?;
        self.play(&record, clock, seed);
        // `/status` shows the job at once, not at the first progress tick.
        inner.progress = inner.board.progress(clock, self.measures());
        if let Some(cluster) = &self.cluster {
            let job_id = record.job_id.clone();
            cluster
                .propose_job(JobSection { running: Some(SharedJob { job_id, spec, seed, start_ms }), stopped: None });
        }
        self.persist(&inner);
        drop(inner);
        self.wake.notify_one();
        Ok(record)
    }

    /// Puts a job the board just started in force: its focus, its plan
    /// (anchored where it started, so replicas interleave), the event.
    fn play(&self, record: &JobRecord, clock: Clock, seed: u64) {
        let spec = &record.spec;
        let scenario = spec.scenario.0;
        let max_rps = spec.max_rps.min(self.engine.modes().max_rps);
        let plan = match (spec.users, spec.user_stages()) {
            // A users job: the scenario's shape in users (its ragged pauses are the rate's).
            (Some(users), Some(stages)) => {
                let users = users.min(self.engine.modes().max_users);
                let shape = Shape::Story { stages: stages.into(), pauses: None, seed };
                Plan::new(Mode::Users, users as f64).shaped(shape, clock.wall)
            }
            _ => {
                let stages = spec.rate_stages(max_rps);
                let shape = Shape::Story { stages: stages.into(), pauses: scenario.pauses(), seed };
                Plan::new(Mode::Custom, max_rps).shaped(shape, clock.wall)
            }
        };
        self.engine.set_focus(Some(Focus { requests: spec.endpoints.clone(), error_share: scenario.error_share() }));
        self.engine.set_job(Some(&record.job_id));
        self.apply(plan, "job_started", None);
        self.hub.publish(&Topic::Sidecar, names::JOB_STARTED, &job_event(record), false);
        log::info!(job_id = record.job_id.as_str(), scenario = scenario.as_str(), max_rps = max_rps,
            duration_secs = spec.duration_secs; "job started");
    }

    /// A job section a peer changed: play its job here too, or end ours
    /// as it was ended there.
    fn play_shared(&self, section: JobSection, source: Source) {
        let mut inner = self.inner.lock();
        let measures = self.measures();
        let clock = Clock::now();
        match section.running {
            Some(job) => {
                let known = inner.board.get(&job.job_id).is_some();
                let end_ms = job.start_ms.saturating_add((job.spec.duration_secs * 1000.0) as u64);
                // Ours already, or over: nothing to play.
                if known || epoch_ms(clock.wall) >= end_ms {
                    return;
                }
                // The newer job wins over one of ours.
                if let Some(record) = inner.board.switch_mode(clock, &measures).stopped {
                    self.job_ended(&mut inner, &record);
                }
                let since = Duration::from_millis(epoch_ms(clock.wall).saturating_sub(job.start_ms));
                let started = Clock {
                    at: clock.at.checked_sub(since).unwrap_or(clock.at),
                    wall: UNIX_EPOCH + Duration::from_millis(job.start_ms),
                };
                let current = self.current();
                match inner.board.start_shared(job.job_id, job.spec, started, current, measures, job.seed) {
                    Ok(record) => {
                        log::info!(job_id = record.job_id.as_str(), source = source.as_str();
                            "cluster: playing the job a peer started");
                        self.play(&record, started, job.seed);
                        inner.progress = inner.board.progress(Clock::now(), self.measures());
                    }
                    Err(e) => log::warn!(error:% = e; "cluster: cannot play a peer's job"),
                }
            }
            None => {
                let Some(id) = inner.board.running_id().map(str::to_string) else { return };
                match section.stopped {
                    // The plan section carries the new mode.
                    Some(StopReason::ModeSwitch) => {
                        if let Some(record) = inner.board.switch_mode(clock, &measures).stopped {
                            self.job_ended(&mut inner, &record);
                        }
                    }
                    _ => {
                        if let Ok(crate::jobs::StopOutcome::Stopped(finished)) = inner.board.stop(&id, clock, &measures)
                        {
                            self.job_ended(&mut inner, &finished.record);
                            if let Some(resume) = finished.resume {
                                self.resume(resume, "job_ended");
                            }
                        }
                    }
                }
            }
        }
        self.persist(&inner);
        drop(inner);
        self.wake.notify_one();
    }

    /// Tells the peers a job ended early here (a run to its end needs no word).
    fn share_stop(&self, reason: StopReason) {
        if let Some(cluster) = &self.cluster {
            cluster.propose_job(JobSection { running: None, stopped: Some(reason) });
        }
    }

    /// `POST /jobs/{id}/stop`: idempotent; the mode before comes back.
    pub fn stop_job(&self, id: &str) -> Result<JobRecord, JobError> {
        let mut inner = self.inner.lock();
        let measures = self.measures();
        match inner.board.stop(id, Clock::now(), &measures)? {
            crate::jobs::StopOutcome::AlreadyEnded(record) => Ok(record),
            crate::jobs::StopOutcome::Stopped(finished) => {
                self.job_ended(&mut inner, &finished.record);
                if let Some(resume) = finished.resume {
                    self.resume(resume, "job_ended");
                }
                self.share_stop(StopReason::Requested);
                self.persist(&inner);
                Ok(finished.record)
            }
        }
    }

    /// After a job ended, however: the whole workload again, the summary as
    /// the job stream's last event.
    fn job_ended(&self, inner: &mut Inner, record: &JobRecord) {
        self.engine.set_focus(None);
        self.engine.set_job(None);
        inner.progress = None;
        let topic = Topic::Job(record.job_id.clone());
        // The record carries the summary: what `GET /jobs/{id}` shows.
        self.hub.publish(&topic, names::SUMMARY, record, true);
        self.hub.publish(&Topic::Sidecar, names::JOB_ENDED, &job_event(record), false);
        log::info!(job_id = record.job_id.as_str(), status = status_name(record),
            sent = record.summary.as_ref().map_or(0, |s| s.requests.sent); "job ended");
    }

    pub fn job(&self, id: &str) -> Option<JobRecord> {
        self.inner.lock().board.get(id).cloned()
    }

    pub fn jobs(&self) -> Vec<JobRecord> {
        self.inner.lock().board.records()
    }

    /// The running job's latest numbers.
    pub fn progress(&self) -> Option<Progress> {
        self.inner.lock().progress.clone()
    }

    /// Opens a job's event stream: its progress, then its summary. For a
    /// job that has ended, `Err` with its record (the caller sends the
    /// summary alone); `None`: no such job.
    pub fn job_stream(
        &self,
        id: &str,
    ) -> Option<Result<Result<crate::control::events::Subscription, crate::control::events::SubscribeError>, JobRecord>>
    {
        // Under the lock: the job cannot end between the check and the
        // subscription, so the stream always gets its summary.
        let inner = self.inner.lock();
        let record = inner.board.get(id)?;
        if inner.board.running_id() == Some(id) {
            Some(Ok(self.hub.subscribe(Topic::Job(id.to_string()))))
        } else {
            Some(Err(record.clone()))
        }
    }

    /// The last 5 minutes, oldest first.
    pub fn history(&self) -> Vec<HistoryPoint> {
        self.inner.lock().history.points()
    }

    /// Each request name's rate over the last seconds, and that window.
    pub fn name_rates(&self) -> (std::collections::BTreeMap<String, NameRate>, f64) {
        self.inner.lock().name_rates.rates()
    }

    /// `/status`'s latency of the last 10 s.
    pub fn recent_latency(&self) -> RecentLatency {
        let inner = self.inner.lock();
        let table = self.engine.latency();
        let names = table.names();
        let window = &inner.window;
        let mut report = window.merged().report(names);
        // Every name of the traffic, answered or not: the shape of `/status`
        // does not change with what happened to be sent in the last 10 s.
        // Error requests are sent only by jobs that inject errors: shown
        // when they were.
        let workload = self.engine.workload();
        for name in names {
            let is_error = workload.find(name).is_some_and(|id| workload.role(id) == crate::workload::Role::Error);
            if !is_error {
                report.by_name.entry(name.clone()).or_default();
            }
        }
        RecentLatency { window_secs: round3(window.covers().as_secs_f64()), report }
    }

    pub fn config(&self) -> Option<RuntimeConfig> {
        self.inner.lock().settings.as_ref().map(RuntimeSettings::current)
    }

    /// The settings as they were at start-up (what a reset brings back).
    pub fn startup_config(&self) -> Option<RuntimeConfig> {
        self.inner.lock().settings.as_ref().map(RuntimeSettings::startup)
    }

    /// `PUT /config` (`body`) or `POST /config/reset` (`None`). With
    /// `PEERS`, what then differs from start-up goes to every replica.
    pub fn change_config(&self, body: Option<&[u8]>) -> Option<Result<RuntimeConfig, ConfigChangeError>> {
        let mut inner = self.inner.lock();
        let settings = inner.settings.as_mut()?;
        let before = self.engine.plan();
        let changed = match body {
            Some(body) => settings.change(body),
            None => Ok(settings.reset()),
        };
        if let Ok(config) = &changed {
            let overrides = settings.overrides();
            self.config_changed(&inner, before, config);
            // Under the lock: a peer's change applied meanwhile cannot
            // overtake this one (see `apply_shared_config`).
            if let Some(cluster) = &self.cluster {
                cluster.propose_config(overrides);
            }
        }
        Some(changed)
    }

    /// The config section of the cluster's document, after a peer changed
    /// it, put over this replica's start-up settings through the checks of
    /// `PUT /config`. Settings this replica cannot take (a lower `MAX_RPS`
    /// here) are logged and not applied.
    fn apply_shared_config(&self, source: Source) {
        let Some(cluster) = &self.cluster else { return };
        let mut inner = self.inner.lock();
        // The document's section, not the one that woke us: a newer
        // change made here since then must stand.
        let Some(section) = cluster.document().config else { return };
        let Some(settings) = inner.settings.as_mut() else { return };
        if settings.overrides() == section.value.overrides {
            return;
        }
        let before = self.engine.plan();
        let asked_in_flight = section.value.overrides.get("max_in_flight").and_then(serde_json::Value::as_u64);
        if let Some(in_flight) = asked_in_flight.and_then(|n| usize::try_from(n).ok())
            && in_flight > self.engine.max_in_flight()
            && let Err(e) = self.engine.memory_fits(&self.engine.workload(), in_flight)
        {
            log::error!(version:% = section.version;
                "cluster: config version {} asks for max_in_flight {in_flight}, which does not fit this replica's MEMORY_BUDGET_MB ({e}); kept the settings in force",
                section.version);
            return;
        }
        match settings.replace_overrides(&section.value.overrides) {
            Ok(config) => {
                log::info!(version:% = section.version, by:% = section.version.replica, source = source.as_str();
                    "cluster: config version {} in force", section.version);
                self.config_changed(&inner, before, &config);
            }
            Err(e) => log::error!(version:% = section.version, error:% = e;
                "cluster: config version {} cannot be used on this replica (give every replica the same settings); kept the settings in force",
                section.version),
        }
    }

    /// After the runtime settings changed, however: the engine retuned,
    /// the event if a rate changed, `STATE_DIR`, the log line.
    fn config_changed(&self, inner: &Inner, before: Plan, config: &RuntimeConfig) {
        self.retune(config);
        let after = self.engine.plan();
        if after.rps != before.rps {
            self.hub.publish(
                &Topic::Sidecar,
                names::MODE,
                &ModeEvent {
                    mode: after.mode.as_str(),
                    rps: after.rps,
                    previous_mode: before.mode.as_str(),
                    previous_rps: before.rps,
                    cause: "config",
                    returns_in_secs: None,
                },
                false,
            );
        }
        self.persist(inner);
        log::info!(steady_rps = config.steady_rps, burst_rps = config.burst_rps, overload_rps = config.overload_rps,
            jitter = config.jitter, request_timeout_ms = config.request_timeout_ms, max_in_flight = config.max_in_flight,
            stats_interval_secs = config.stats_interval_secs; "runtime settings changed");
    }

    fn retune(&self, config: &RuntimeConfig) {
        self.engine.retune(crate::engine::Tuning {
            steady_rps: config.steady_rps,
            burst_rps: config.burst_rps,
            overload_rps: config.overload_rps,
            jitter: config.jitter,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            max_in_flight: config.max_in_flight,
        });
        self.stats_every.send_if_modified(|every| {
            let next = stats_interval(config);
            let changed = *every != next;
            *every = next;
            changed
        });
    }

    /// The driver: ends jobs and timed modes when due, publishes a running
    /// job's progress every 500 ms and the sidecar's stats every second.
    /// Runs until aborted.
    pub async fn drive(self: Arc<Self>) {
        let mut next_progress = Instant::now() + PROGRESS_EVERY;
        let mut next_stats = Instant::now();
        let mut shared_jobs = self.cluster.as_ref().map(Cluster::watch_jobs);
        let mut shared_config = self.cluster.as_ref().map(Cluster::watch_config);
        // A section merged before this watch began (a fast catch-up at start).
        if self.cluster.as_ref().is_some_and(|c| c.document().config.is_some()) {
            self.apply_shared_config(Source::CatchUp);
        }
        loop {
            let due = self.inner.lock().board.next_due();
            let wake_at = [Some(next_progress), Some(next_stats), due].into_iter().flatten().min();
            let wake_at = wake_at.unwrap_or(next_stats);
            let peer_job = async {
                let Some(jobs) = shared_jobs.as_mut() else { return std::future::pending().await };
                match jobs.changed().await {
                    Ok(()) => jobs.borrow_and_update().clone(),
                    Err(_) => std::future::pending().await,
                }
            };
            let peer_config = async {
                let Some(config) = shared_config.as_mut() else { return std::future::pending().await };
                match config.changed().await {
                    Ok(()) => *config.borrow_and_update(),
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                _ = self.wake.notified() => continue,
                change = peer_config => {
                    if let Some(source) = change {
                        self.apply_shared_config(source);
                    }
                    continue;
                }
                change = peer_job => {
                    if let Some((section, source)) = change {
                        self.play_shared(section, source);
                    }
                    continue;
                }
            }
            let now = Instant::now();
            self.end_what_is_due();
            if now >= next_progress {
                self.publish_progress();
                next_progress = (next_progress + PROGRESS_EVERY).max(now);
            }
            if now >= next_stats {
                self.publish_stats(now);
                next_stats = (next_stats + STATS_EVERY).max(now);
            }
        }
    }

    fn end_what_is_due(&self) {
        let mut inner = self.inner.lock();
        let clock = Clock::now();
        match inner.board.due(clock.at) {
            Some(Due::Job) => {
                let measures = self.measures();
                if let Some(finished) = inner.board.complete(clock, &measures) {
                    self.job_ended(&mut inner, &finished.record);
                    if let Some(resume) = finished.resume {
                        self.resume(resume, "job_ended");
                    }
                    self.persist(&inner);
                }
            }
            Some(Due::TimedMode) => {
                if let Some(resume) = inner.board.expire_timed(clock.at) {
                    self.resume(resume, "timed_mode_ended");
                }
            }
            None => {}
        }
    }

    fn publish_progress(&self) {
        let mut inner = self.inner.lock();
        let measures = self.measures();
        let Some(progress) = inner.board.progress(Clock::now(), measures) else { return };
        self.hub.publish(&Topic::Job(progress.job_id.clone()), names::PROGRESS, &progress, false);
        inner.progress = Some(progress);
    }

    fn publish_stats(&self, now: Instant) {
        let mut inner = self.inner.lock();
        let measures = self.measures();
        inner.window.tick(now, measures.latency.clone());
        if let Some(mut slo) = inner.slo.take() {
            self.judge(&mut slo, now, &measures);
            inner.slo = Some(slo);
        }
        let totals = measures.totals;
        let error_ratio = match inner.last_stats {
            Some((_, before)) => round3(totals.since(&before).error_ratio()),
            None => 0.0,
        };
        inner.last_stats = Some((now, totals));
        let plan = self.engine.plan();
        let cluster = self.cluster.as_ref().map(Cluster::view);
        let latency_ms = inner.window.merged().overall().percentiles();
        let from_scheduled = &latency_ms.from_scheduled;
        let at_secs = now.saturating_duration_since(inner.started).as_secs_f64();
        // The achieved rate over a window that fits it (see `History`);
        // the cluster's from the peers' last answers.
        let mut rates = RatesNow::of(&plan, 0.0, cluster.as_ref());
        let point = inner.history.push(crate::observe::history::Reading {
            at_secs,
            t_ms: epoch_ms(SystemTime::now()),
            sent: totals.sent,
            successful: totals.successful,
            failed: totals.failed,
            dropped: totals.dropped,
            in_flight: measures.in_flight,
            target_rps: rates.target_rps,
            cluster_target_rps: rates.cluster_target_rps,
            cluster_achieved_rps: cluster.as_ref().map(|c| c.achieved_rps),
            p50_ms: from_scheduled.p50,
            p95_ms: from_scheduled.p95,
            p99_ms: from_scheduled.p99,
        });
        rates.cluster_achieved_rps = point.cluster_achieved_rps;
        let counts = measures
            .by_name
            .iter()
            .map(|(name, t)| (name.clone(), NameCounts { successful: t.successful, failed: t.failed }))
            .collect();
        inner.name_rates.push(at_secs, counts);
        let event = StatsEvent {
            mode: plan.mode.as_str(),
            state: plan.state().as_str(),
            rates,
            achieved_rps: point.achieved_rps,
            achieved_window_secs: point.achieved_window_secs,
            users: plan.is_users().then(|| {
                let users = self.engine.users();
                super::events::UsersEvent { target: users.target, active: users.active, finishing: users.finishing }
            }),
            in_flight: measures.in_flight,
            requests: totals,
            error_ratio,
            latency_ms,
            job_id: inner.board.running_id().map(str::to_string),
        };
        self.hub.publish(&Topic::Sidecar, names::STATS, &event, false);
    }

    /// At shutdown: a running job is recorded as stopped, the history
    /// saved, and every stream ends with a `shutdown` event.
    pub fn shut_down(&self) {
        let mut inner = self.inner.lock();
        let measures = self.measures();
        if let Some(record) = inner.board.shut_down(Clock::now(), &measures) {
            self.job_ended(&mut inner, &record);
        }
        self.persist(&inner);
        self.hub.close(&serde_json::json!({"reason": "the sidecar is shutting down"}));
    }
}

fn job_event(record: &JobRecord) -> JobEvent {
    JobEvent {
        job_id: record.job_id.clone(),
        scenario: record.spec.scenario.0.as_str(),
        status: status_name(record),
        stop_reason: record.stop_reason.map(|r| match r {
            crate::jobs::StopReason::Requested => "requested",
            crate::jobs::StopReason::ModeSwitch => "mode_switch",
            crate::jobs::StopReason::Shutdown => "shutdown",
        }),
    }
}

fn status_name(record: &JobRecord) -> &'static str {
    match record.status {
        crate::jobs::JobStatus::Running => "running",
        crate::jobs::JobStatus::Completed => "completed",
        crate::jobs::JobStatus::Stopped => "stopped",
        crate::jobs::JobStatus::Interrupted => "interrupted",
    }
}

fn stats_interval(config: &RuntimeConfig) -> Option<Duration> {
    (config.stats_interval_secs > 0.0).then(|| Duration::try_from_secs_f64(config.stats_interval_secs).ok()).flatten()
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
