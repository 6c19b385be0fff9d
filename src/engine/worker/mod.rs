//! The engine loop: sleeps until the next send time, sends every request
//! that is due, records answers as they complete, and re-anchors whenever the
//! plan changes.
//!
//! What is sent is the running workload's: each arrival is drawn (by
//! weight, or by a job's focus) and is one request, rendered into a reused
//! buffer, or a new journey instance that sends its steps one after the
//! other (`journeys.rs`); answers' captures fill the workload's pools and
//! the instances' variables. Setup requests go first, one after the other,
//! before the traffic starts, again every `setup.every_secs` (or when the
//! login's answer says), after a backoff when they fail, and at once when
//! their values are refused (`setup.rs`). A swapped workload takes over
//! between two requests.
//!
//! Everything happens on one thread in one task: requests in flight are
//! futures polled by this loop (not spawned tasks), their timeouts come from
//! one periodic sweep (not a timer each), and the two timers the loop needs
//! are created once and only moved: the send timer wakes for the next
//! arrival, the next pause that ends, or the next room under `MAX_RPS`,
//! whichever is first.

mod answers;
mod in_flight;
mod journeys;
mod notices;
mod send;
mod setup;
mod turn;
mod users;

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::cap::SendCap;
use super::client::{Outcome, QuietReads, Request, TargetClient};
use super::deadline::{Deadlines, TimedOut};
use super::focus::Focus;
use super::journeys::{Journeys, Key};
use super::mode::{Plan, Share};
use super::pace_timer::PaceTimer;
use super::schedule::{Pacer, pickup, send_instant};
use super::spans::{SpanStart, Tracer};
use super::users::{UserKey, Users};
use super::{Engine, InFlightPermit};
use crate::observe::latency::LatencyTable;
use crate::observe::metrics::{ErrorKind, JourneySeries, RequestSeries};
use crate::workload::focus::FocusedDraw;
use crate::workload::{RequestId, Role, RunState, Workload};
use in_flight::InFlight;
use notices::Notices;
use setup::Setup;
use turn::TurnWindow;

/// The longest sleep until the next turn with answers unread
/// (`Worker::answers_wait_time`): the gap after a turn of the widest window
/// at the lowest rate it batches (250 req/s, jittered), and a little.
const MAX_ANSWER_WAIT: Duration = Duration::from_millis(10);

/// From this rate up, the open model's requests are quiet
/// (`Request::quiet`): their answers are read at the next turn, at most a
/// few milliseconds later, without the event loop being told of each.
const QUIET_MIN_RATE: f64 = 1000.0;

/// Wakes the engine's thread from `park_timeout` (`Event::Idle`).
struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Slots that fell due longer ago than this (the thread was starved) are
/// skipped and counted as dropped rather than sent in one burst.
const MAX_LATENESS: f64 = 0.25;

/// At most one failure line per this interval; the rest are counted.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Request buffers kept for reuse (each as large as the largest request
/// rendered into it); more are dropped when answers come back.
const MAX_SPARE_BUFFERS: usize = 4096;

/// A spare buffer larger than this is dropped rather than kept.
const MAX_SPARE_BUFFER_BYTES: usize = 64 * 1024;

/// Spare buffers kept beyond the requests in flight: after a peak, the
/// buffers it needed are freed as its answers come back.
const SPARE_BUFFER_SLACK: usize = 64;

/// A request in flight, resolving to its completion record.
type InFlightFuture = Pin<Box<dyn Future<Output = Completed>>>;

/// The series of one request, shared by its requests in flight.
type Series = Rc<RefCell<RequestSeries>>;

/// Why a request was sent: its answer moves that on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// An arrival of the traffic.
    Traffic,
    /// A setup request (its answer moves the setup on).
    Setup,
    /// A step of a journey instance.
    Step(Key),
    /// A virtual user's request (its answer ends the user's iteration).
    User(UserKey),
}

struct Completed {
    request: RequestId,
    /// The workload it was drawn from (see `Worker::generation`).
    generation: u64,
    origin: Origin,
    series: Series,
    started: Instant,
    /// How late it left against its scheduled time.
    lag: Duration,
    /// The epoch of the setup values it was sent with (see `engine::login`).
    epoch: u32,
    result: Result<(Outcome, Request), TimedOut>,
    /// A sampled request's span, while spans are exported.
    span: Option<Box<SpanStart>>,
    /// Released (after recording) when this is dropped.
    _permit: InFlightPermit,
}

/// A timer made once and re-armed, so the loop never builds one per turn.
struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
}

impl Timer {
    fn new() -> Self {
        Timer { sleep: Box::pin(tokio::time::sleep(Duration::ZERO)), armed_for: None }
    }

    fn arm(&mut self, at: Instant) {
        if self.armed_for != Some(at) {
            self.sleep.as_mut().reset(at.into());
            self.armed_for = Some(at);
        }
    }

    fn disarm(&mut self) {
        self.armed_for = None;
    }

    fn is_armed(&self) -> bool {
        self.armed_for.is_some()
    }
}

enum Event {
    Shutdown,
    PlanChanged,
    SendDue,
    Completed(Completed),
    Sweep,
    /// Nothing more to do until the next turn (see `Worker::answers_wait`).
    Idle,
}

pub(super) struct Worker {
    engine: Engine,
    /// Where answers' latencies go: a row per request of `workload`.
    latency: Arc<LatencyTable>,
    /// Built when traffic starts, dropped while nothing is scheduled, so a
    /// paused sidecar holds no connections to the target.
    client: Option<Rc<TargetClient>>,
    in_flight: InFlight,
    deadlines: Rc<Deadlines>,
    sweep_every: Duration,
    send_timer: PaceTimer,
    sweep_timer: Timer,
    /// The sweep is armed for the requests in flight (not for the pool).
    sweep_for_deadlines: bool,
    errors: ErrorLog,
    rng: SmallRng,
    workloads: watch::Receiver<Arc<Workload>>,
    workload: Arc<Workload>,
    /// Counts workload swaps: answers to an older workload's requests are
    /// recorded but not captured (its request and pool ids differ).
    generation: u64,
    state: RunState,
    /// By request id of the running workload; error requests' are made
    /// when first sent (until a job sends them, they have no series).
    series: Vec<Option<Series>>,
    focuses: watch::Receiver<Option<Arc<Focus>>>,
    focused: Option<FocusedDraw>,
    setup: Setup,
    /// Rate-limited warnings about traffic not sent.
    notices: Notices,
    /// Traffic has been sent since start.
    started_traffic: bool,
    /// Shutting down: in-flight requests finish, nothing new is sent.
    stopping: bool,
    spare_buffers: Vec<Vec<u8>>,
    /// `MAX_RPS` (this replica's share of it) over every window; it
    /// outlives plans, so no switch can get past it.
    cap: SendCap,
    /// The send timer was set late for the cap: the next turn's first
    /// request waited for room.
    held_by_cap: bool,
    /// The last turn's window under the current plan: where the next turn
    /// wakes (`TurnWindow::wake`).
    turn: Option<TurnWindow>,
    /// Set by a turn of the open model whose answers may wait for the next
    /// turn (`answers_may_wait`): once nothing else is ready, the thread
    /// sleeps until then instead of waking for each answer.
    answers_wait: bool,
    /// This turn's traffic is sent quiet (`QUIET_MIN_RATE`).
    quiet_answers: bool,
    /// Quiet requests waiting for a turn, of every client built.
    quiet_reads: Rc<QuietReads>,
    /// Unparks this worker's thread (made on it, in `Worker::new`).
    unpark: Waker,
    /// Journey instances running (`MAX_JOURNEYS` at most).
    journeys: Journeys,
    /// By journey id of the running workload.
    journey_series: Vec<JourneySeries>,
    /// Durations of completed instances, by journey.
    journey_latency: Arc<LatencyTable>,
    arrivals: prometheus::IntCounter,
    /// Client spans, while they are exported.
    tracer: Option<Tracer>,
    /// Virtual users (users mode), and the plan they follow.
    users: Users,
    users_follow: Option<users::UsersFollow>,
}

/// A fresh latency table for `workload`, put where readers find it.
fn install_latency_table(engine: &Engine, workload: &Workload) -> Arc<LatencyTable> {
    let table = Arc::new(super::latency_table_of(workload));
    *engine.shared.latency.lock() = Arc::clone(&table);
    table
}

/// A fresh table of journey durations for `workload`, put where readers find it.
fn install_journey_table(engine: &Engine, workload: &Workload) -> Arc<LatencyTable> {
    let table = Arc::new(LatencyTable::new(workload.journeys().map(|j| workload.journey_name(j))));
    *engine.shared.journey_latency.lock() = Arc::clone(&table);
    table
}

/// The series of the journeys of `workload`, by journey id.
fn journey_series_of(engine: &Engine, workload: &Workload) -> Vec<JourneySeries> {
    workload.journeys().map(|j| engine.shared.metrics.journey_series(workload.journey_name(j))).collect()
}

impl Worker {
    /// Must be called on the worker's own thread, inside its runtime.
    pub(super) fn new(engine: Engine) -> std::io::Result<Self> {
        let sweep_every = Deadlines::sweep_interval(engine.shared.settings.request_timeout);
        let mut workloads = engine.watch_workload();
        let workload = Arc::clone(&workloads.borrow_and_update());
        let mut focuses = engine.watch_focus();
        focuses.mark_changed();
        let state = RunState::new(&workload);
        // A workload swapped in before the worker started is counted as its own.
        engine.publish_pool_counts(&workload, state.pools.iter().map(crate::workload::pool::Ring::len));
        let series = series_of(&engine, &workload);
        let latency = install_latency_table(&engine, &workload);
        let journey_latency = install_journey_table(&engine, &workload);
        let journey_series = journey_series_of(&engine, &workload);
        let cap = SendCap::new(engine.modes().max_rps);
        let journeys = Journeys::new(engine.shared.settings.max_journeys);
        let arrivals = engine.shared.metrics.arrivals();
        let tracer = engine
            .spans
            .clone()
            .map(|setup| Tracer::new(setup, &engine.shared.settings.target, &workload, engine.job.subscribe()));
        let setup = Setup::of(&workload);
        engine.publish_setup(setup.login.status());
        Ok(Worker {
            tracer,
            journeys,
            journey_series,
            journey_latency,
            arrivals,
            latency,
            engine,
            client: None,
            in_flight: InFlight::new(),
            deadlines: Deadlines::new(),
            sweep_every,
            send_timer: PaceTimer::new()?,
            sweep_timer: Timer::new(),
            sweep_for_deadlines: false,
            errors: ErrorLog::default(),
            rng: SmallRng::seed_from_u64(rand::random()),
            workloads,
            workload,
            generation: 0,
            state,
            series,
            focuses,
            focused: None,
            setup,
            notices: Notices::default(),
            started_traffic: false,
            stopping: false,
            spare_buffers: Vec::new(),
            cap,
            held_by_cap: false,
            turn: None,
            answers_wait: false,
            quiet_answers: false,
            quiet_reads: Rc::new(QuietReads::default()),
            unpark: Waker::from(Arc::new(Unpark(std::thread::current()))),
            users: Users::new(),
            users_follow: None,
        })
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken, abandon: CancellationToken) {
        let mut plans = self.engine.plan.subscribe();
        while self.follow(&mut plans, &shutdown).await {}
        self.drain(&abandon).await;
    }

    /// Sends by the current plan until it changes (returns true: follow the
    /// new one) or shutdown (returns false).
    async fn follow(&mut self, plans: &mut watch::Receiver<Plan>, shutdown: &CancellationToken) -> bool {
        let plan = plans.borrow_and_update().clone();
        if let Some(tracer) = &mut self.tracer {
            tracer.set_mode(plan.mode.as_str());
        }
        // Replicas share the cap as they share the schedule.
        self.cap.set_rate(plan.share.of(self.engine.modes().max_rps));
        self.follow_workload();
        self.publish_pools();
        // Before the first traffic (and before a new workload's, while
        // paused), its setup requests are answered first.
        let holding = plan.sends() && self.hold_for_setup();
        // Send times are fixed against the plan's anchor, never against answers.
        let since_anchor = plan.anchor.map(|anchor| signed_secs_since(anchor, SystemTime::now()));
        let anchor = Instant::now();
        let jitter = self.engine.jitter();
        let mut origin = 0.0;
        let mut pacer = plan.schedule().filter(|_| !holding).map(|s| {
            // Replicas share one schedule: this process owns every
            // `count`-th slot from `index` (a process alone: all of them).
            let Share { index, count } = plan.share;
            let start = pickup(&s, since_anchor, count);
            origin = start.elapsed;
            let mut pacer = Pacer::sharded(s, jitter, count, index, &mut self.rng);
            if let Some(before) = start.skip_before {
                // Not dropped: never this process's to send.
                pacer.skip_before(before, &mut self.rng);
            }
            pacer
        });
        let clock = ScheduleClock { anchor, origin };
        self.turn = None;
        self.answers_wait = false;
        self.quiet_answers = false;
        self.read_quiet();
        self.follow_users(&plan, holding, since_anchor);
        if !plan.sends() && !holding {
            // Paused: running journeys end with the traffic.
            self.end_journeys();
            // In-flight requests hold their own handle and finish first.
            self.client = None;
        }
        if holding && self.setup.next.is_none() {
            self.start_setup(Instant::now());
            if self.setup.next.is_none() {
                // Nothing could be sent: the traffic goes on without it.
                self.setup.holding = false;
                return true;
            }
        }
        // Made once per plan: building them every turn takes a lock each.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let changed = plans.changed();
        tokio::pin!(changed);
        loop {
            let next = pacer.as_ref().and_then(Pacer::next_send_time);
            let next = next.map(|t| self.turn.map_or(t, |turn| turn.wake(t))).and_then(|t| clock.instant(t));
            // A request held back by the cap leaves when there is room.
            let room = self.cap.room_from();
            let next = match (next, room) {
                (Some(at), Some(room)) if room > at => {
                    self.held_by_cap = true;
                    Some(room)
                }
                (next, _) => next,
            };
            // Journeys: the next pause that ends, and steps waiting for room.
            let next = earliest(next, self.journeys_wake(room));
            let next = earliest(next, self.users_wake(room));
            // While traffic runs, the setup's next run (a retry or a refresh).
            let next = if pacer.is_some() || self.following_users() { earliest(next, self.setup_wake()) } else { next };
            let armed = match next {
                Some(at) => self.send_timer.arm(at),
                // No deadline (warm-up, pause, or one beyond the clock):
                // nothing to wake for, no CPU.
                None => self.send_timer.disarm(),
            };
            if let Err(e) = armed {
                log::error!(error:% = e; "cannot set the send timer; the engine stops");
                return false;
            }
            self.arm_sweep();
            let send_armed = self.send_timer.is_armed();
            let sweep_armed = self.sweep_timer.is_armed();
            let busy = !self.in_flight.is_empty();
            let may_idle = self.answers_wait;
            let event = tokio::select! {
                biased;
                _ = &mut cancelled => Event::Shutdown,
                changed = &mut changed => if changed.is_ok() { Event::PlanChanged } else { Event::Shutdown },
                // Sending on time comes before reading answers.
                _ = self.send_timer.fired(), if send_armed => Event::SendDue,
                // So do timeouts: a target streaming without end keeps its
                // requests busy reading, which would use up the task's I/O
                // budget before the sweep's timer could fire.
                _ = &mut self.sweep_timer.sleep, if sweep_armed => Event::Sweep,
                Some(done) = self.in_flight.next(), if busy => Event::Completed(done),
                // Reached only when nothing above is ready.
                () = std::future::ready(()), if may_idle => Event::Idle,
            };
            match event {
                Event::Shutdown => return false,
                Event::PlanChanged => return true,
                Event::Completed(done) => {
                    self.record_ready(done);
                    if holding && !self.setup.holding {
                        // Setup done: the traffic starts on the plan as it is now.
                        return true;
                    }
                }
                Event::Sweep => {
                    // Answers that came in before their deadline count as
                    // answers, read late or not (`answers_wait_time`).
                    let recorded = self.record_arrived();
                    self.sweep();
                    if recorded && holding && !self.setup.holding {
                        // Setup done, as for `Event::Completed`.
                        return true;
                    }
                }
                Event::Idle => {
                    self.answers_wait = false;
                    let wait = self.answers_wait_time();
                    if wait.is_none() && tokio::task::coop::has_budget_remaining() {
                        // The next turn is far: quiet answers are read now.
                        self.read_quiet();
                    }
                    if let Some(wait) = wait {
                        // A plan change or shutdown ends the sleep: polled
                        // with a waker that unparks this thread.
                        let mut cx = Context::from_waker(&self.unpark);
                        if cancelled.as_mut().poll(&mut cx).is_ready() {
                            return false;
                        }
                        if let Poll::Ready(changed) = changed.as_mut().poll(&mut cx) {
                            return changed.is_ok();
                        }
                        std::thread::park_timeout(wait);
                        self.quiet_reads.read_aged(Instant::now());
                    }
                }
                Event::SendDue => match pacer.as_mut() {
                    Some(pacer) => {
                        self.send_due(pacer, &clock);
                        self.answers_wait = self.answers_may_wait();
                    }
                    None if self.following_users() => self.run_users(Instant::now()),
                    None => self.run_journeys(Instant::now()),
                },
            }
        }
    }

    /// Whether the answers of the turn just sent may be read at the next
    /// one (if it is near: `answers_wait_time`): nothing waits for them (no
    /// journey step, user or setup), and the client has each answer's time
    /// of arrival from the kernel, so the latency is the answer's own.
    fn answers_may_wait(&self) -> bool {
        self.journeys.active() == 0
            && !self.following_users()
            && !self.setup.holding
            && self.client.as_ref().is_some_and(|client| client.stamps_answers())
    }

    /// How long the thread may sleep until the next turn (or sweep), not
    /// in the event loop: answers that come in meanwhile do not wake it
    /// (each wake-up cost more CPU than the request, issue 30); the next
    /// turn finds them all ready at once, stamped with the time they came
    /// (`answer_time`). Only a short wait, so that captures, pools and
    /// `in_flight` follow the answers closely.
    fn answers_wait_time(&self) -> Option<Duration> {
        // A spent task budget makes the requests in flight yield before
        // their first write: they must run before any sleep.
        if !tokio::task::coop::has_budget_remaining() {
            return None;
        }
        let at = earliest(self.send_timer.armed_for(), self.sweep_timer.armed_for)?;
        let wait = at.saturating_duration_since(Instant::now());
        (wait <= MAX_ANSWER_WAIT).then_some(wait)
    }

    /// Keeps a sweep scheduled every sweep interval while requests are in
    /// flight (their timeouts), and otherwise for when the first idle
    /// connection expires: at a few requests a second, sweeping every
    /// interval only for the pool woke the loop several times per request
    /// (issue 30).
    fn arm_sweep(&mut self) {
        if !self.deadlines.is_empty() {
            if self.sweep_timer.is_armed() && self.sweep_for_deadlines {
                return;
            }
            let at = Instant::now() + self.sweep_every;
            self.sweep_for_deadlines = true;
            if self.sweep_timer.armed_for.is_none_or(|armed| armed > at) {
                self.sweep_timer.arm(at);
            }
            return;
        }
        if self.sweep_timer.is_armed() {
            return;
        }
        if let Some(at) = self.client.as_ref().and_then(|c| c.next_expiry()) {
            self.sweep_for_deadlines = false;
            self.sweep_timer.arm(at);
        }
    }

    fn sweep(&mut self) {
        self.sweep_timer.disarm();
        let now = Instant::now();
        self.deadlines.sweep(now);
        if let Some(client) = &self.client {
            client.set_clock(now);
            client.close_stale();
        }
        self.quiet_reads.read_aged(now);
    }

    /// Lets quiet requests read their answers now (`Request::quiet`).
    fn read_quiet(&self) {
        self.quiet_reads.read_all();
    }

    /// Takes over a swapped-in workload: pools carried over by name, the
    /// sequence goes on, its setup requests are sent at once (traffic goes
    /// on meanwhile, on the values the pools kept).
    fn follow_workload(&mut self) {
        if !self.workloads.has_changed().unwrap_or(false) {
            return;
        }
        let next = Arc::clone(&self.workloads.borrow_and_update());
        if Arc::ptr_eq(&next, &self.workload) {
            return;
        }
        // Its instances' steps and variables belong to the old workload.
        self.end_journeys();
        self.state.carry_over(&self.workload, &next);
        self.series = series_of(&self.engine, &next);
        self.latency = install_latency_table(&self.engine, &next);
        if let Some(tracer) = &mut self.tracer {
            tracer.follow_workload(&next, self.engine.shared.settings.target.path_prefix());
        }
        self.journey_latency = install_journey_table(&self.engine, &next);
        self.journey_series = journey_series_of(&self.engine, &next);
        self.workload = next;
        self.generation += 1;
        self.focuses.mark_changed();
        self.follow_focus();
        self.setup = Setup::of(&self.workload);
        self.publish_setup();
        // The counts and the workload they belong to change together.
        let counts = self.state.pools.iter().map(crate::workload::pool::Ring::len);
        self.engine.publish_pool_counts(&self.workload, counts);
        if self.started_traffic {
            self.start_setup(Instant::now());
        }
    }

    /// Builds the draw of a new focus (or of the workload after a swap).
    fn follow_focus(&mut self) {
        if !self.focuses.has_changed().unwrap_or(false) {
            return;
        }
        let focus = self.focuses.borrow_and_update().clone();
        self.focused = focus.map(|f| FocusedDraw::new(&self.workload, f.requests.as_deref(), f.error_share));
    }

    /// Copies the pools' sizes where `/status` and `/metrics` read them
    /// (those of the workload already published with them, see
    /// `follow_workload`).
    fn publish_pools(&self) {
        self.engine.store_pool_counts(self.state.pools.iter().map(crate::workload::pool::Ring::len));
    }

    /// After shutdown: lets the requests in flight finish within the grace
    /// period (or until `abandon`), recording them; abandons the rest and
    /// notes how many.
    async fn drain(&mut self, abandon: &CancellationToken) {
        self.stopping = true;
        self.read_quiet();
        self.end_journeys();
        let grace = self.engine.shared.settings.shutdown_grace;
        // Saturating: the grace period is a user's number too.
        let give_up = Instant::now().checked_add(grace).unwrap_or_else(|| Instant::now() + Duration::from_secs(300));
        if !self.in_flight.is_empty() {
            log::info!(in_flight = self.in_flight.len(); "waiting for in-flight requests to finish");
        }
        let abandoned = abandon.cancelled();
        tokio::pin!(abandoned);
        while !self.in_flight.is_empty() {
            self.sweep_timer.arm((Instant::now() + self.sweep_every).min(give_up));
            tokio::select! {
                biased;
                _ = &mut abandoned => break,
                Some(done) = self.in_flight.next() => self.record(done, Instant::now(), SystemTime::now()),
                _ = &mut self.sweep_timer.sleep => {
                    self.sweep_timer.disarm();
                    self.deadlines.sweep(Instant::now());
                    if Instant::now() >= give_up {
                        log::warn!(in_flight = self.in_flight.len(), grace_secs = grace.as_secs_f64();
                            "grace period over; abandoning in-flight requests");
                        break;
                    }
                }
            }
        }
        self.engine.shared.abandoned.store(self.in_flight.len() as u64, Ordering::Release);
        self.in_flight.clear();
    }
}

/// The series of the requests of `workload` sent by weight or in setup,
/// by request id (see [`super::register_series`]).
fn series_of(engine: &Engine, workload: &Workload) -> Vec<Option<Series>> {
    let metrics = &engine.shared.metrics;
    workload
        .requests()
        .map(|id| {
            (workload.role(id) != Role::Error).then(|| Rc::new(RefCell::new(metrics.request_series(workload.name(id)))))
        })
        .collect()
}

/// The earlier of two instants, either of which may be missing.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Schedule time against the monotonic clock: schedule time `origin` is
/// the instant `anchor` (when following began).
struct ScheduleClock {
    anchor: Instant,
    origin: f64,
}

impl ScheduleClock {
    fn elapsed(&self, now: Instant) -> f64 {
        self.origin + now.saturating_duration_since(self.anchor).as_secs_f64()
    }

    /// The instant schedule time `t` falls on (at once if it has passed).
    fn instant(&self, t: f64) -> Option<Instant> {
        send_instant(self.anchor, t - self.origin)
    }
}

/// Seconds from `anchor` to `now`, negative when the anchor is ahead.
fn signed_secs_since(anchor: SystemTime, now: SystemTime) -> f64 {
    match now.duration_since(anchor) {
        Ok(past) => past.as_secs_f64(),
        Err(ahead) => -ahead.duration().as_secs_f64(),
    }
}

/// Rate-limits failure lines: a dead target must not flood the log.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
    /// The trace of the failure being noted, when its span is exported.
    trace_id: Option<crate::base::trace_context::TraceId>,
}

impl ErrorLog {
    fn note(&mut self, endpoint: &str, kind: ErrorKind, error: &dyn std::fmt::Display) {
        let trace_id = self.trace_id.take();
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < ERROR_LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        match trace_id {
            Some(trace_id) => log::warn!(endpoint = endpoint, kind = kind.as_str(), error:% = error,
                suppressed = self.suppressed, trace_id:% = trace_id; "request failed"),
            None => log::warn!(endpoint = endpoint, kind = kind.as_str(), error:% = error,
                suppressed = self.suppressed; "request failed"),
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}
