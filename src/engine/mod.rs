//! The traffic engine: turns the current [`Plan`] into requests at the
//! target.
//!
//! Data walks one way: the control API changes the plan (a `watch`), the
//! worker follows it and records into [`Metrics`]; `/status` and `/metrics`
//! only read. The worker runs on its own thread with its own single-threaded
//! runtime, so a saturated engine never slows the control API and its hot
//! path needs no locks or cross-thread wake-ups.

pub mod client;
mod deadline;
pub mod focus;
pub mod http;
pub mod mix;
pub mod mode;
mod pace_timer;
mod resolve;
pub mod ring;
pub mod schedule;
pub mod stages;
pub mod tls;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::TargetUrl;
use crate::metrics::Metrics;
use crate::workload::{MAX_POOLS, ORDER_IDS, Role, Workload};
use mode::{Mode, ModeTable, Plan, Share};

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
    pub shutdown_grace: Duration,
    /// Connection reuse and https trust.
    pub client: client::ClientSettings,
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
}

/// State the worker writes and the control API reads.
struct Shared {
    settings: EngineSettings,
    metrics: Arc<Metrics>,
    /// Values held in each pool of the running workload (by pool id), as
    /// the worker last saw them.
    pool_counts: [AtomicUsize; MAX_POOLS],
    in_flight: Arc<InFlight>,
    /// Requests handed to the client so far (for the achieved rate).
    sent: AtomicU64,
    /// Requests still in flight when the worker stopped (`NOT_STOPPED`
    /// until then).
    abandoned: AtomicU64,
}

const NOT_STOPPED: u64 = u64::MAX;

impl Engine {
    /// An engine in warm-up, heading for the initial mode. Nothing is sent
    /// until [`Engine::start`] and the end of the warm-up.
    pub fn new(settings: EngineSettings, metrics: Arc<Metrics>) -> Engine {
        let mut plan = settings.modes.plan(settings.initial_mode).unwrap_or(Plan::new(Mode::Pause, 0.0));
        plan.warming_up = true;
        metrics.show_mode(plan.mode, plan.sending_rps());
        let workload = Arc::clone(&settings.workload);
        register_series(&metrics, &workload);
        let shared = Shared {
            pool_counts: std::array::from_fn(|_| AtomicUsize::new(0)),
            in_flight: Arc::new(InFlight::new(settings.max_in_flight)),
            sent: AtomicU64::new(0),
            abandoned: AtomicU64::new(NOT_STOPPED),
            metrics,
            settings,
        };
        Engine {
            plan: Arc::new(watch::channel(plan).0),
            focus: Arc::new(watch::channel(None).0),
            workload: Arc::new(watch::channel(workload).0),
            shared: Arc::new(shared),
        }
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
    pub fn pool_counts(&self) -> Vec<(String, usize)> {
        let workload = self.workload();
        workload
            .pools()
            .map(|id| {
                let count = self.shared.pool_counts.get(id.index()).map_or(0, |c| c.load(Ordering::Relaxed));
                (workload.pool_name(id).to_string(), count)
            })
            .collect()
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
            // awc (https targets) spawns local tasks to close connections.
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
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

    pub fn modes(&self) -> &ModeTable {
        &self.shared.settings.modes
    }

    pub fn plan(&self) -> Plan {
        *self.plan.borrow()
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
            previous = Some(*plan);
            *plan = next;
            true
        });
        let Some(previous) = previous else { return false };
        self.shared.metrics.show_mode(next.mode, next.sending_rps());
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
            self.shared.metrics.show_mode(plan.mode, plan.sending_rps());
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
            started = Some(*plan);
            true
        });
        let plan = started?;
        self.shared.metrics.show_mode(plan.mode, plan.sending_rps());
        log::info!(mode = plan.mode.as_str(), rps = plan.rps, target = self.shared.settings.target.as_str();
            "traffic started in {} mode", plan.mode);
        Some(plan)
    }

    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.current()
    }

    /// Order ids held: the `order_ids` pool of the built-in workload (or
    /// of a file that names a pool so); 0 without one.
    pub fn ids_buffered(&self) -> usize {
        self.pool_counts().into_iter().find(|(name, _)| name == ORDER_IDS).map_or(0, |(_, count)| count)
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

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Request counts, an answer counted successful by its request's
    /// `success` codes in the running workload (any 2xx for names it no
    /// longer has).
    pub fn stats(&self) -> crate::metrics::Stats {
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
        self.shared.metrics.show_pools(pools.iter().map(|(name, count)| (name.as_str(), *count)));
    }
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
    max: usize,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        InFlight { current: AtomicUsize::new(0), max }
    }

    pub fn try_acquire(self: &Arc<Self>) -> Option<InFlightPermit> {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
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
