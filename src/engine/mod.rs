//! The traffic engine: turns the current [`Plan`] into requests at the
//! target.
//!
//! Data walks one way: the control API changes the plan (a `watch`), the
//! worker follows it and records into [`Metrics`]; `/status` and `/metrics`
//! only read. The worker runs on its own thread with its own single-threaded
//! runtime, so a saturated engine never slows the control API and its hot
//! path needs no locks or cross-thread wake-ups.

pub mod backoff;
pub mod cap;
pub mod client;
mod deadline;
pub mod focus;
pub mod http;
pub mod journeys;
pub mod login;
pub mod memory;

pub mod mode;
mod pace_timer;
mod quiet_reads;
mod resolve;

pub mod schedule;
pub mod spans;
pub mod stages;
pub mod tls;
pub mod users;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::base::url::TargetUrl;
use crate::observe::latency::LatencyTable;
use crate::observe::metrics::Metrics;
use crate::observe::rate::SentRate;
use crate::workload::{MAX_POOLS, ORDER_IDS, Role, RunState, Workload};
use mode::{Mode, ModeTable, Plan, Shape, Share};

/// What the engine needs from the configuration.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub target: TargetUrl,
    pub initial_mode: Mode,
    pub modes: ModeTable,
    pub jitter: f64,
    /// The workload it starts with: the built-in orders one (for `MIX`),
    /// or `WORKLOAD_FILE`'s.
    pub workload: Arc<Workload>,
    /// `WORKLOAD_FILE`, re-read on SIGHUP.
    pub workload_file: Option<PathBuf>,
    /// Size of a pool that does not give one (`ID_BUFFER_SIZE`).
    pub id_buffer_size: usize,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    /// Journey instances running at once (`MAX_JOURNEYS`).
    pub max_journeys: usize,
    /// `DATA_DIR`: where data files are read; `None`: next to the workload
    /// file, and not at all for a workload put over the API.
    pub data_dir: Option<PathBuf>,
    pub shutdown_grace: Duration,
    /// Connection reuse and https trust.
    pub client: client::ClientSettings,
    /// `traceparent` and the synthetic-traffic marker on every request
    /// (what a swapped-in workload is compiled with too).
    pub trace: crate::workload::TraceHeaders,
    /// `MEMORY_BUDGET_MB`: new workloads and in-flight bounds are checked
    /// against it, wherever they come from (`None`: unchecked).
    pub memory: Option<memory::MemoryBudget>,
}

/// A cheap, cloneable handle: change the plan, read the state.
#[derive(Clone)]
pub struct Engine {
    plan: Arc<watch::Sender<Plan>>,
    /// The draw a running job narrows the workload to (see [`focus`]).
    focus: Arc<watch::Sender<Option<Arc<focus::Focus>>>>,
    /// The running workload; the worker swaps to a new one between two
    /// requests, with the schedule untouched.
    workload: Arc<watch::Sender<Arc<Workload>>>,
    shared: Arc<Shared>,
    /// Client spans, when they are exported (see [`spans`]).
    spans: Option<spans::SpanSetup>,
    /// The running job's id, for the spans (`None` outside jobs).
    job: Arc<watch::Sender<Option<Arc<str>>>>,
}

/// State the worker writes and the control API reads.
struct Shared {
    settings: EngineSettings,
    metrics: Arc<Metrics>,
    /// Values held in each pool (by pool id) of the workload in
    /// `counted`, as the worker last saw them.
    pool_counts: [AtomicUsize; MAX_POOLS],
    /// The workload `pool_counts` belong to: the worker's, which lags the
    /// one `PUT /workload` put in until the worker takes it over. The
    /// worker changes it and the counts together under this lock (and
    /// between swaps writes only counts of this workload); readers take
    /// both under it.
    counted: Mutex<Arc<Workload>>,
    in_flight: Arc<InFlight>,
    /// Requests handed to the client so far (for the achieved rate).
    sent: AtomicU64,
    /// `sent` sampled once a second by the sidecar: the achieved rate
    /// `/status` and the replicas' peers read.
    sent_rate: Arc<SentRate>,
    /// Requests still in flight when the worker stopped (`NOT_STOPPED`
    /// until then).
    abandoned: AtomicU64,
    /// Latencies of the answers, by request (the running workload's, in
    /// its order); the worker puts a new one in when the workload changes.
    latency: Mutex<Arc<LatencyTable>>,
    /// Durations of completed journey instances, by journey (the running
    /// workload's), likewise.
    journey_latency: Mutex<Arc<LatencyTable>>,
    /// Journey instances running now.
    journeys_active: AtomicUsize,
    /// Virtual users: wanted on this replica now, running (wanted and
    /// started), and retired but finishing their iteration.
    users_target: AtomicUsize,
    users_active: AtomicUsize,
    users_finishing: AtomicUsize,
    /// The setup's state, as the worker last published it (on each change
    /// of it, never per request).
    setup: Mutex<login::SetupStatus>,
    /// The settings `PUT /config` changes while the engine runs.
    modes: Mutex<ModeTable>,
    jitter_bits: AtomicU64,
    timeout_micros: AtomicU64,
}

/// The window of the achieved rate `/status` shows and peers exchange.
pub const ACHIEVED_RATE_WINDOW: Duration = Duration::from_secs(10);

/// What `PUT /config` may change in a running engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    pub steady_rps: f64,
    pub burst_rps: f64,
    pub overload_rps: f64,
    pub jitter: f64,
    pub request_timeout: Duration,
    pub max_in_flight: usize,
}

const NOT_STOPPED: u64 = u64::MAX;

/// Virtual users on this replica, as the worker last published them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsersNow {
    /// Wanted now (a ramp's part-way number).
    pub target: usize,
    /// Running and going on.
    pub active: usize,
    /// Retired, finishing the iteration they were in.
    pub finishing: usize,
}

/// `trafficgen_mode` and `trafficgen_target_rps` for `plan`.
fn show_plan(metrics: &Metrics, plan: &Plan) {
    metrics.show_mode(&Mode::ALL.map(Mode::as_str), plan.mode.as_str(), plan.sending_rps());
}

impl Engine {
    /// An engine in warm-up, heading for the initial mode. Nothing is sent
    /// until [`Engine::start`] and the end of the warm-up.
    pub fn new(settings: EngineSettings, metrics: Arc<Metrics>) -> Engine {
        let mut plan = settings.modes.plan(settings.initial_mode).unwrap_or(Plan::new(Mode::Pause, 0.0));
        plan.warming_up = true;
        show_plan(&metrics, &plan);
        let workload = Arc::clone(&settings.workload);
        register_series(&metrics, &workload);
        let starting = RunState::starting_counts(&workload);
        let shared = Shared {
            pool_counts: std::array::from_fn(|i| AtomicUsize::new(starting.get(i).copied().unwrap_or(0))),
            counted: Mutex::new(Arc::clone(&workload)),
            in_flight: Arc::new(InFlight::new(settings.max_in_flight)),
            sent: AtomicU64::new(0),
            sent_rate: Arc::new(SentRate::new(ACHIEVED_RATE_WINDOW)),
            abandoned: AtomicU64::new(NOT_STOPPED),
            latency: Mutex::new(Arc::new(latency_table_of(&workload))),
            journey_latency: Mutex::new(Arc::new(LatencyTable::new(
                workload.journeys().map(|j| workload.journey_name(j)),
            ))),
            journeys_active: AtomicUsize::new(0),
            users_target: AtomicUsize::new(0),
            users_active: AtomicUsize::new(0),
            users_finishing: AtomicUsize::new(0),
            setup: Mutex::new(login::SetupStatus::default()),
            modes: Mutex::new(settings.modes),
            jitter_bits: AtomicU64::new(settings.jitter.to_bits()),
            timeout_micros: AtomicU64::new(micros(settings.request_timeout)),
            metrics,
            settings,
        };
        Engine {
            plan: Arc::new(watch::channel(plan).0),
            focus: Arc::new(watch::channel(None).0),
            workload: Arc::new(watch::channel(workload).0),
            shared: Arc::new(shared),
            spans: None,
            job: Arc::new(watch::channel(None).0),
        }
    }

    /// This engine, making a client span of every sampled request (before
    /// [`Engine::start`]).
    pub fn with_spans(mut self, setup: spans::SpanSetup) -> Engine {
        self.spans = Some(setup);
        self
    }

    /// The running job, for the spans' `trafficgen.job_id` (`None`: none).
    pub fn set_job(&self, job_id: Option<&str>) {
        self.job.send_replace(job_id.map(Arc::from));
    }

    /// Whether `workload` with `in_flight` requests at once fits
    /// `MEMORY_BUDGET_MB` (always, without one).
    pub fn memory_fits(&self, workload: &Workload, in_flight: usize) -> Result<(), memory::MemoryError> {
        self.shared.settings.memory.map_or(Ok(()), |budget| budget.check(workload, in_flight).map(|_| ()))
    }

    /// The workload running now.
    pub fn workload(&self) -> Arc<Workload> {
        Arc::clone(&self.workload.borrow())
    }

    /// Runs `next` from the next request on: pools whose names survive
    /// keep their values; the plan (mode, rate, schedule) is untouched.
    pub fn replace_workload(&self, next: Workload) {
        let next = Arc::new(next);
        register_series(&self.shared.metrics, &next);
        let requests = next.requests().filter(|id| next.role(*id) != Role::Setup).count();
        log::info!(source = next.source(), requests = requests, pools = next.pools().count(), mix = next.mix().as_str();
            "workload replaced");
        self.workload.send_replace(next);
    }

    /// For the worker: follows workload swaps without locks on the hot path.
    fn watch_workload(&self) -> watch::Receiver<Arc<Workload>> {
        self.workload.subscribe()
    }

    /// Values held now in each pool of the running workload, by name.
    /// Until the worker has taken over a workload just put in, what its
    /// pools start with: the values carried over by name from the
    /// workload the worker runs, or their own `values`; never another
    /// workload's counts.
    pub fn pool_counts(&self) -> Vec<(String, usize)> {
        let workload = self.workload();
        let (counted, held) = {
            let counted = self.shared.counted.lock();
            let held: Vec<usize> = self.shared.pool_counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            (Arc::clone(&counted), held)
        };
        let counts =
            if Arc::ptr_eq(&counted, &workload) { held } else { RunState::carried_counts(&counted, &held, &workload) };
        workload
            .pools()
            .map(|id| (workload.pool_name(id).to_string(), counts.get(id.index()).copied().unwrap_or(0)))
            .collect()
    }

    /// For the worker: the counts of `workload`'s pools, from now on.
    fn publish_pool_counts(&self, workload: &Arc<Workload>, counts: impl Iterator<Item = usize>) {
        let mut counted = self.shared.counted.lock();
        self.store_pool_counts(counts);
        if !Arc::ptr_eq(&counted, workload) {
            *counted = Arc::clone(workload);
        }
    }

    /// For the worker, between swaps: new counts of the workload in `counted`.
    fn store_pool_counts(&self, counts: impl Iterator<Item = usize>) {
        let mut counts = counts.fuse();
        for count in &self.shared.pool_counts {
            count.store(counts.next().unwrap_or(0), Ordering::Relaxed);
        }
    }

    /// Starts the worker on its own thread. It runs until `shutdown` is
    /// cancelled, then lets in-flight requests finish within the grace
    /// period, or until `abandon` is cancelled.
    pub fn start(&self, shutdown: CancellationToken, abandon: CancellationToken) -> std::io::Result<EngineTask> {
        let (done_tx, done_rx) = oneshot::channel();
        let engine = self.clone();
        // The blocking pool only ever runs the one name lookup in flight;
        // a small bound keeps a resolver problem from becoming a thread storm.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(2).build()?;
        std::thread::Builder::new().name("trafficgen-engine".into()).spawn(move || {
            runtime.block_on(async move {
                match worker::Worker::new(engine) {
                    Ok(worker) => worker.run(shutdown, abandon).await,
                    Err(e) => log::error!(error:% = e; "cannot start the engine"),
                }
            });
            // Not reached if the worker panics: the dropped sender tells.
            let _ = done_tx.send(());
        })?;
        Ok(EngineTask { done: done_rx })
    }

    /// Narrows the draw to a job's requests (`None`: the whole workload).
    pub fn set_focus(&self, focus: Option<focus::Focus>) {
        let focus = focus.filter(|f| !f.is_whole()).map(Arc::new);
        self.focus.send_replace(focus);
    }

    /// The focus now in force.
    pub fn focus(&self) -> Option<Arc<focus::Focus>> {
        self.focus.borrow().clone()
    }

    /// For the worker: follows focus changes without locks on the hot path.
    pub fn watch_focus(&self) -> watch::Receiver<Option<Arc<focus::Focus>>> {
        self.focus.subscribe()
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.shared.settings
    }

    /// How a new workload (`PUT /workload`, SIGHUP, a peer's) is loaded
    /// for this engine's target.
    pub fn workload_options(&self) -> crate::workload::Options {
        let settings = self.settings();
        crate::workload::Options::new(
            crate::workload::Target::new(&settings.target).with_trace(settings.trace),
            settings.id_buffer_size,
        )
        .with_data_dir(settings.data_dir.clone())
    }

    /// The modes' rates now (`PUT /config` changes them) and the cap.
    pub fn modes(&self) -> ModeTable {
        *self.shared.modes.lock()
    }

    /// ± fraction of randomness on each gap, now.
    pub fn jitter(&self) -> f64 {
        f64::from_bits(self.shared.jitter_bits.load(Ordering::Relaxed))
    }

    /// The per-request timeout, now.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_micros(self.shared.timeout_micros.load(Ordering::Relaxed))
    }

    /// The bound on requests in flight, now.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.max()
    }

    /// Applies runtime settings (checked by the caller, as at start-up).
    /// The timeout and the in-flight bound hold for requests sent from now
    /// on; the jitter from the next plan the worker takes up, which this
    /// makes happen at once. A built-in mode whose rate changed is switched
    /// to its new rate.
    pub fn retune(&self, tuning: Tuning) {
        let modes = {
            let mut modes = self.shared.modes.lock();
            modes.steady = tuning.steady_rps;
            modes.burst = tuning.burst_rps;
            modes.overload = tuning.overload_rps;
            *modes
        };
        self.shared.jitter_bits.store(tuning.jitter.to_bits(), Ordering::Relaxed);
        self.shared.timeout_micros.store(micros(tuning.request_timeout), Ordering::Relaxed);
        self.shared.in_flight.set_max(tuning.max_in_flight);
        let plan = self.plan();
        match modes.rate_of(plan.mode) {
            Some(rps) if plan.shape == Shape::Constant && plan.rps != rps => {
                self.switch_to(Plan { rps, ..plan.clone() });
            }
            // Re-read by the worker: the new jitter takes effect.
            _ => self.plan.send_modify(|_| {}),
        }
    }

    pub fn plan(&self) -> Plan {
        self.plan.borrow().clone()
    }

    /// Switches to `next` (ending the warm-up if it is still on). Returns
    /// false, changing nothing, when it is already the plan. The share
    /// stays as it is (it is the cluster's, see [`Engine::set_share`]).
    pub fn switch_to(&self, next: Plan) -> bool {
        self.replace(next, true)
    }

    /// Like [`Engine::switch_to`], but leaves the warm-up as it is: a
    /// replica catching up with its peers' plan is not a user's switch.
    pub fn adopt(&self, next: Plan) -> bool {
        self.replace(next, false)
    }

    fn replace(&self, mut next: Plan, ends_warmup: bool) -> bool {
        let mut previous = None;
        let changed = self.plan.send_if_modified(|plan| {
            next.share = plan.share;
            if !ends_warmup {
                next.warming_up = plan.warming_up;
            }
            if *plan == next {
                return false;
            }
            previous = Some(std::mem::replace(plan, next.clone()));
            true
        });
        let Some(previous) = previous else { return false };
        show_plan(&self.shared.metrics, &next);
        // A new anchor alone (replicas agreeing on one) re-anchors silently.
        let switched = previous.mode != next.mode || previous.rps != next.rps || previous.warming_up != next.warming_up;
        if switched {
            self.shared.metrics.count_mode_switch();
            if previous.warming_up && !next.warming_up {
                log::info!(mode = next.mode.as_str(), rps = next.rps, target = self.shared.settings.target.as_str(), warmup_cut_short = true;
                    "traffic started in {} mode", next.mode);
            } else {
                log::info!(from = previous.mode.as_str(), from_rps = previous.rps, mode = next.mode.as_str(), rps = next.rps;
                    "mode changed to {}", next.mode);
            }
        }
        changed
    }

    /// Sends `share` of the plan's schedule from now on (replicas split
    /// one schedule); returns false when it already does.
    pub fn set_share(&self, share: Share) -> bool {
        let changed = self.plan.send_if_modified(|plan| {
            let changed = plan.share != share;
            plan.share = share;
            changed
        });
        if changed {
            let plan = self.plan();
            show_plan(&self.shared.metrics, &plan);
        }
        changed
    }

    /// Ends the warm-up, if nothing else has. Returns the plan it started.
    pub fn end_warmup(&self) -> Option<Plan> {
        let mut started = None;
        self.plan.send_if_modified(|plan| {
            if !plan.warming_up {
                return false;
            }
            plan.warming_up = false;
            started = Some(plan.clone());
            true
        });
        let plan = started?;
        show_plan(&self.shared.metrics, &plan);
        log::info!(mode = plan.mode.as_str(), rps = plan.rps, target = self.shared.settings.target.as_str();
            "traffic started in {} mode", plan.mode);
        Some(plan)
    }

    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.current()
    }

    /// Order ids held: the `order_ids` pool of the built-in workload (or
    /// of a file that names a pool so); 0 without one.
    /// Ids in the built-in workload's `order_ids` pool; `None` for a
    /// workload without one.
    pub fn ids_buffered(&self) -> Option<usize> {
        self.pool_counts().into_iter().find(|(name, _)| name == ORDER_IDS).map(|(_, count)| count)
    }

    /// Requests the worker gave up at exit (in flight when the grace period
    /// ran out or a second stop signal came); `None` while it runs.
    pub fn abandoned(&self) -> Option<u64> {
        Some(self.shared.abandoned.load(Ordering::Acquire)).filter(|&n| n != NOT_STOPPED)
    }

    /// Requests handed to the client since start.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// The achieved rate over the last [`ACHIEVED_RATE_WINDOW`], as sampled
    /// by whoever calls [`SentRate::sample`] (the sidecar, once a second).
    pub fn sent_rate(&self) -> &Arc<SentRate> {
        &self.shared.sent_rate
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Latencies recorded so far, per request name; snapshot and subtract.
    pub fn latency(&self) -> Arc<LatencyTable> {
        Arc::clone(&self.shared.latency.lock())
    }

    /// Durations of the journey instances completed so far, per journey
    /// of the running workload; snapshot and subtract.
    pub fn journey_latency(&self) -> Arc<LatencyTable> {
        Arc::clone(&self.shared.journey_latency.lock())
    }

    /// The setup's state now.
    pub fn setup_status(&self) -> login::SetupStatus {
        self.shared.setup.lock().clone()
    }

    /// For the worker: the setup's state changed.
    fn publish_setup(&self, status: &login::SetupStatus) {
        self.shared.metrics.show_setup_failing(status.state == login::SetupState::Failing);
        status.clone_into(&mut self.shared.setup.lock());
    }

    /// Journey instances running now.
    pub fn journeys_active(&self) -> usize {
        self.shared.journeys_active.load(Ordering::Relaxed)
    }

    /// Virtual users on this replica now: wanted, running, and retired
    /// but finishing their iteration.
    pub fn users(&self) -> UsersNow {
        let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        UsersNow {
            target: load(&self.shared.users_target),
            active: load(&self.shared.users_active),
            finishing: load(&self.shared.users_finishing),
        }
    }

    /// For the worker: where `/status` and `/metrics` read the users.
    fn publish_users(&self, now: UsersNow) {
        self.shared.users_target.store(now.target, Ordering::Relaxed);
        self.shared.users_active.store(now.active, Ordering::Relaxed);
        self.shared.users_finishing.store(now.finishing, Ordering::Relaxed);
    }

    /// The bound on journey instances (`MAX_JOURNEYS`).
    pub fn max_journeys(&self) -> usize {
        self.shared.settings.max_journeys
    }

    /// Request counts, an answer counted successful by its request's
    /// `success` codes in the running workload (any 2xx for names it no
    /// longer has).
    pub fn stats(&self) -> crate::observe::metrics::Stats {
        let workload = self.workload();
        self.shared.metrics.stats_by(|name, status| match workload.find(name) {
            Some(id) => workload.is_success(id, status),
            None => (200..300).contains(&status),
        })
    }

    /// Copies the engine's live gauges into the metrics before a scrape.
    pub fn refresh_gauges(&self) {
        let pools = self.pool_counts();
        let ids = pools.iter().find(|(name, _)| name == ORDER_IDS).map_or(0, |(_, count)| *count);
        self.shared.metrics.set_gauges(self.in_flight(), ids);
        // A ramp or a job: the rate asked at this moment, not its maximum.
        let plan = self.plan();
        self.shared.metrics.show_target_rps(plan.share.of(plan.rate_at(std::time::SystemTime::now())));
        self.shared.metrics.set_journeys_active(self.journeys_active());
        self.shared.metrics.set_virtual_users(self.users().active, self.users().target);
        self.shared.metrics.show_pools(pools.iter().map(|(name, count)| (name.as_str(), *count)));
    }
}

/// A latency table with a row per request of `workload`, by request index.
fn latency_table_of(workload: &Workload) -> LatencyTable {
    LatencyTable::new(workload.requests().map(|id| workload.name(id)))
}

/// Creates the series of the requests a workload sends by weight or in
/// setup, so `/metrics` and `/status` show them at zero before they are
/// sent; error requests get theirs when first sent.
fn register_series(metrics: &Metrics, workload: &Workload) {
    for id in workload.requests() {
        if workload.role(id) != Role::Error {
            metrics.request_series(workload.name(id));
        }
    }
    for j in workload.journeys() {
        metrics.journey_series(workload.journey_name(j));
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The running worker; await [`EngineTask::stopped`] after cancelling.
pub struct EngineTask {
    done: oneshot::Receiver<()>,
}

impl EngineTask {
    /// Waits for the worker to finish (it drains in-flight requests within
    /// the grace period first); its thread ends right after. `false` if it
    /// ended abnormally (a panic).
    pub async fn stopped(&mut self) -> bool {
        (&mut self.done).await.is_ok()
    }
}

/// The bound on concurrent requests. A permit is taken without waiting;
/// when none is left the request is dropped, never queued.
pub struct InFlight {
    current: AtomicUsize,
    /// Changed at runtime by `PUT /config` (never above its start value).
    max: AtomicUsize,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        InFlight { current: AtomicUsize::new(0), max: AtomicUsize::new(max) }
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// A lower bound lets the requests in flight finish; only new ones wait for room.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn try_acquire(self: &Arc<Self>) -> Option<InFlightPermit> {
        let max = self.max();
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| InFlightPermit(Arc::clone(self)))
    }

    pub fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

pub struct InFlightPermit(Arc<InFlight>);

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_bound_refuses_beyond_max_and_frees_on_drop() {
        let bound = Arc::new(InFlight::new(2));
        let a = bound.try_acquire().expect("first");
        let _b = bound.try_acquire().expect("second");
        assert!(bound.try_acquire().is_none());
        assert_eq!(bound.current(), 2);
        drop(a);
        assert!(bound.try_acquire().is_some());
    }
}
