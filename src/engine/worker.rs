//! The engine loop: sleeps until the next send time, sends every request
//! that is due, records answers as they complete, and re-anchors whenever the
//! plan changes.
//!
//! What is sent is the running workload's: each request is drawn (by
//! weight, or by a job's focus), rendered into a reused buffer, and its
//! answer's captures fill the workload's pools. Setup requests go first,
//! one after the other, before the traffic starts and again every
//! `setup.every_secs`. A swapped workload takes over between two requests.
//!
//! Everything happens on one thread in one task: requests in flight are
//! futures polled by this loop (not spawned tasks), their timeouts come from
//! one periodic sweep (not a timer each), and the two timers the loop needs
//! are created once and only moved.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::cap::SendCap;
use super::client::{Outcome, Request, TargetClient};
use super::deadline::{Deadlines, TimedOut};
use super::focus::Focus;
use super::mode::{Plan, Share};
use super::pace_timer::PaceTimer;
use super::schedule::{Pacer, pickup, send_instant};
use super::spans::{SpanStart, Tracer, request_target};
use super::tls::TlsError;
use super::{Engine, InFlightPermit};
use crate::observe::latency::LatencyTable;
use crate::observe::metrics::{ErrorKind, RequestSeries};
use crate::observe::trace::SpanOutcome;
use crate::workload::focus::FocusedDraw;
use crate::workload::{Chosen, Draw, Method, RequestId, Role, RunState, Workload};

/// The engine wakes exactly when the next request is due and sends every
/// request due within this window with it (up to the window early): at most
/// about a thousand wake-ups a second at any rate, while requests further
/// apart than the window each leave at their own time.
const BATCH_WINDOW: Duration = Duration::from_millis(1);

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

/// A setup request that could not be sent (in-flight bound full) is tried
/// again after this.
const SETUP_RETRY: Duration = Duration::from_secs(1);

/// A request in flight, resolving to its completion record.
type InFlightFuture = Pin<Box<dyn Future<Output = Completed>>>;

/// The series of one request, shared by its requests in flight.
type Series = Rc<RefCell<RequestSeries>>;

struct Completed {
    request: RequestId,
    /// The workload it was drawn from (see `Worker::generation`).
    generation: u64,
    /// A setup request (its answer moves the setup on).
    setup: bool,
    series: Series,
    started: Instant,
    /// How late it left against its scheduled time.
    lag: Duration,
    result: Result<(Outcome, Request), TimedOut>,
    /// A sampled request's span, while spans are exported.
    span: Option<SpanStart>,
    /// Released (after recording) when this is dropped.
    _permit: InFlightPermit,
}

/// Where the setup requests are.
#[derive(Debug, Default)]
struct Setup {
    /// Index into `Workload::setup` of the request in flight.
    next: Option<usize>,
    /// When they are sent again.
    due: Option<Instant>,
    /// They have been sent (for this workload) at least once.
    ran: bool,
    /// Traffic waits until they are done (only before the first traffic).
    holding: bool,
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
}

pub(super) struct Worker {
    engine: Engine,
    /// Where answers' latencies go: a row per request of `workload`.
    latency: Arc<LatencyTable>,
    /// Built when traffic starts, dropped while nothing is scheduled, so a
    /// paused sidecar holds no connections to the target.
    client: Option<Rc<TargetClient>>,
    in_flight: FuturesUnordered<InFlightFuture>,
    deadlines: Rc<Deadlines>,
    sweep_every: Duration,
    send_timer: PaceTimer,
    sweep_timer: Timer,
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
    /// Client spans, while they are exported.
    tracer: Option<Tracer>,
}

/// A fresh latency table for `workload`, put where readers find it.
fn install_latency_table(engine: &Engine, workload: &Workload) -> Arc<LatencyTable> {
    let table = Arc::new(super::latency_table_of(workload));
    *engine.shared.latency.lock() = Arc::clone(&table);
    table
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
        let cap = SendCap::new(engine.modes().max_rps);
        let tracer = engine
            .spans
            .clone()
            .map(|setup| Tracer::new(setup, &engine.shared.settings.target, &workload, engine.job.subscribe()));
        Ok(Worker {
            tracer,
            latency,
            engine,
            client: None,
            in_flight: FuturesUnordered::new(),
            deadlines: Deadlines::new(),
            sweep_every,
            send_timer: PaceTimer::new()?,
            sweep_timer: Timer::new(),
            errors: ErrorLog::default(),
            rng: SmallRng::seed_from_u64(rand::random()),
            workloads,
            workload,
            generation: 0,
            state,
            series,
            focuses,
            focused: None,
            setup: Setup::default(),
            started_traffic: false,
            stopping: false,
            spare_buffers: Vec::new(),
            cap,
            held_by_cap: false,
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
        let holding = plan.schedule().is_some() && self.hold_for_setup();
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
        if pacer.is_none() && !holding {
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
            let next = pacer.as_ref().and_then(Pacer::next_send_time).and_then(|t| clock.instant(t));
            // A request held back by the cap leaves when there is room.
            let room = self.cap.room_from();
            let next = match (next, room) {
                (Some(at), Some(room)) if room > at => {
                    self.held_by_cap = true;
                    Some(room)
                }
                (next, _) => next,
            };
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
                Event::Sweep => self.sweep(),
                Event::SendDue => {
                    if let Some(pacer) = pacer.as_mut() {
                        self.send_due(pacer, &clock);
                    }
                }
            }
        }
    }

    /// Keeps a sweep scheduled while anything is in flight or pooled.
    fn arm_sweep(&mut self) {
        let pooled = self.client.as_ref().is_some_and(|c| c.idle_connections() > 0);
        if self.sweep_timer.is_armed() || (self.deadlines.is_empty() && !pooled) {
            return;
        }
        self.sweep_timer.arm(Instant::now() + self.sweep_every);
    }

    fn sweep(&mut self) {
        self.sweep_timer.disarm();
        let now = Instant::now();
        self.deadlines.sweep(now);
        if let Some(client) = &self.client {
            client.set_clock(now);
            client.close_stale();
        }
    }

    fn send_due(&mut self, pacer: &mut Pacer, clock: &ScheduleClock) {
        let now = Instant::now();
        if let Some(client) = &self.client {
            client.set_clock(now);
        }
        self.follow_workload();
        self.follow_focus();
        if self.setup.next.is_none() && self.setup.due.is_some_and(|due| now >= due) {
            self.start_setup(now);
        }
        self.started_traffic = true;
        let elapsed = clock.elapsed(now);
        let skipped = pacer.skip_before(elapsed - MAX_LATENESS, &mut self.rng);
        if skipped > 0 {
            self.engine.shared.metrics.add_dropped(skipped);
            log::warn!(skipped = skipped; "engine fell behind its schedule; skipped the missed requests");
        }
        let window = BATCH_WINDOW.as_secs_f64();
        let horizon = elapsed + window;
        if std::mem::take(&mut self.held_by_cap) {
            self.engine.shared.metrics.count_capped();
        }
        // What is left over is due already; the timer fires again at once
        // (or when the cap has room).
        for _ in 0..Pacer::turn_limit(pacer.rate_at(elapsed), window) {
            if pacer.next_send_time().is_none_or(|t| t > horizon) || self.cap.free_at(now).is_some() {
                break;
            }
            let Some(due) = pacer.pop_due(horizon, &mut self.rng) else { break };
            self.fire(now, elapsed - due);
        }
    }

    /// Sends one request of the traffic now, if the in-flight bound allows.
    fn fire(&mut self, now: Instant, lag_secs: f64) {
        let draw = match &self.focused {
            Some(focus) => focus.draw(&self.workload, &mut self.rng, &self.state),
            None => self.workload.draw(&mut self.rng, &self.state),
        };
        let chosen = match draw {
            Draw::Send(chosen) => chosen,
            Draw::Unmet { asked, .. } => {
                self.series(asked).borrow().unmet();
                return;
            }
        };
        let Some(permit) = self.engine.shared.in_flight.try_acquire() else {
            self.engine.shared.metrics.add_dropped(1);
            return;
        };
        if !self.cap.try_take(now) {
            // `send_due` checked for room: only a cap of 0 gets here.
            self.engine.shared.metrics.add_dropped(1);
            return;
        }
        let shared = &self.engine.shared;
        shared.metrics.observe_lag(lag_secs);
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let lag = Duration::try_from_secs_f64(lag_secs.max(0.0)).unwrap_or(Duration::ZERO);
        self.send(&chosen, now, lag, permit, false);
    }

    /// Renders `chosen` and puts it in flight; false if it could not be
    /// sent (no client: counted as a failure). `lag`: how late it leaves
    /// against its scheduled time.
    fn send(&mut self, chosen: &Chosen, started: Instant, lag: Duration, permit: InFlightPermit, setup: bool) -> bool {
        let id = chosen.request();
        let series = self.series(id);
        let client = match self.client() {
            Ok(client) => client,
            Err(e) => {
                let series = series.borrow();
                series.failure(ErrorKind::Tls, 0.0);
                self.errors.note(series.label(), ErrorKind::Tls, &e);
                return false;
            }
        };
        let workload = &self.workload;
        let mut rendered = self.spare_buffers.pop().unwrap_or_default();
        if let Some(tracer) = &self.tracer {
            tracer.before_render(&mut self.rng, &mut self.state);
        }
        workload.render(chosen, &mut self.rng, &mut self.state, &mut rendered);
        let span = self
            .tracer
            .as_ref()
            .and_then(|tracer| tracer.after_render(&mut self.state, id, request_target(&rendered), None, None));
        let request = Request {
            rendered,
            keep_body: workload.wants_body(id),
            keep_headers: workload.wanted_headers(id).next().is_some(),
            head: workload.method(id) == Method::Head,
        };
        let timeout = self.engine.request_timeout();
        let exchange = self.deadlines.guard(started + timeout, client.send(request));
        let generation = self.generation;
        self.in_flight.push(Box::pin(async move {
            let result = exchange.await;
            Completed { request: id, generation, setup, series, started, lag, result, span, _permit: permit }
        }));
        true
    }

    /// The series of request `id` of the running workload.
    fn series(&mut self, id: RequestId) -> Series {
        let slot = &mut self.series[id.index()];
        let series = slot.get_or_insert_with(|| {
            Rc::new(RefCell::new(self.engine.shared.metrics.request_series(self.workload.name(id))))
        });
        Rc::clone(series)
    }

    /// Starts the setup requests from the first (if there are any).
    fn start_setup(&mut self, now: Instant) {
        self.setup.due = None;
        if self.workload.setup().is_empty() {
            self.setup.holding = false;
            return;
        }
        self.setup.next = Some(0);
        self.send_setup(now);
    }

    /// Sends the setup request at `setup.next`, or the first after it that
    /// can be sent; after the last, the setup is done until `every_secs`.
    fn send_setup(&mut self, now: Instant) {
        if self.stopping {
            // Draining: nothing new goes out.
            self.setup.next = None;
            return;
        }
        while let Some(i) = self.setup.next {
            let Some(&asked) = self.workload.setup().get(i) else {
                self.finish_setup(now);
                return;
            };
            let chosen = match self.workload.resolve(asked, &mut self.rng, &self.state) {
                Draw::Send(chosen) => chosen,
                Draw::Unmet { .. } => {
                    self.series(asked).borrow().unmet();
                    self.setup.next = Some(i + 1);
                    continue;
                }
            };
            if let Some(room) = self.cap.free_at(now) {
                // Setup requests count against MAX_RPS too: sent first when there is room.
                self.setup.next = None;
                self.setup.holding = false;
                self.setup.due = Some(room);
                return;
            }
            let Some(permit) = self.engine.shared.in_flight.try_acquire() else {
                log::warn!(request = self.workload.name(asked); "in-flight bound full: setup requests are tried again in 1 s");
                self.setup.next = None;
                self.setup.holding = false;
                self.setup.due = Some(now + SETUP_RETRY);
                return;
            };
            self.cap.try_take(now);
            // Sent like any request: `sent` and the answers add up.
            self.engine.shared.sent.fetch_add(1, Ordering::Relaxed);
            if self.send(&chosen, now, Duration::ZERO, permit, true) {
                return;
            }
            self.setup.next = Some(i + 1);
        }
    }

    fn finish_setup(&mut self, now: Instant) {
        self.setup.next = None;
        self.setup.ran = true;
        self.setup.holding = false;
        self.setup.due = self.workload.setup_every().and_then(|every| now.checked_add(every));
    }

    /// Whether the traffic must wait for setup requests: there are some and
    /// they have not run yet for this workload, before any traffic was sent.
    fn hold_for_setup(&mut self) -> bool {
        // A retry already scheduled (the in-flight bound was full) is sent
        // along with the traffic instead.
        let hold =
            !self.started_traffic && !self.setup.ran && self.setup.due.is_none() && !self.workload.setup().is_empty();
        self.setup.holding = hold;
        hold
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
        self.state.carry_over(&self.workload, &next);
        self.series = series_of(&self.engine, &next);
        self.latency = install_latency_table(&self.engine, &next);
        if let Some(tracer) = &mut self.tracer {
            tracer.follow_workload(&next, self.engine.shared.settings.target.path_prefix());
        }
        self.workload = next;
        self.generation += 1;
        self.focuses.mark_changed();
        self.follow_focus();
        self.setup = Setup::default();
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

    /// Records `first` and every other request that has completed by now,
    /// with one clock read for the lot.
    fn record_ready(&mut self, first: Completed) {
        let now = Instant::now();
        self.record(first, now);
        while let Some(Some(done)) = self.in_flight.next().now_or_never() {
            self.record(done, now);
        }
    }

    fn record(&mut self, done: Completed, now: Instant) {
        let from_sent = now.saturating_duration_since(done.started);
        let secs = from_sent.as_secs_f64();
        let current = done.generation == self.generation;
        // Every answer, and every wait that ended in a timeout: both are
        // what a user would have waited (a refused connection is not). A
        // request of a workload swapped out since has no row in the table.
        if current && matches!(done.result, Ok((Outcome::Answered { .. }, _)) | Err(TimedOut)) {
            self.latency.record(done.request.index(), from_sent, done.lag);
        }
        // A failure's line names its trace, to find it in the tracing backend.
        let trace_id = done.span.as_ref().map(SpanStart::trace_id);
        if let (Some(tracer), Some(span)) = (&mut self.tracer, done.span) {
            let outcome = match &done.result {
                Ok((Outcome::Answered { status, .. }, _)) => SpanOutcome::Answered(*status),
                Ok((Outcome::Failed { kind, .. }, _)) => SpanOutcome::Failed(kind.as_str()),
                Err(TimedOut) => SpanOutcome::Failed(ErrorKind::Timeout.as_str()),
            };
            tracer.finish(span, from_sent, outcome);
        }
        let mut series = done.series.borrow_mut();
        match done.result {
            Ok((Outcome::Answered { status, body, headers }, request)) => {
                series.answer(status, secs);
                self.recycle(request);
                if current {
                    self.capture(done.request, status, &headers, body.as_deref(), &series);
                }
                if done.setup && !self.workload.is_success(done.request, status) && current {
                    log::warn!(request = series.label(), status = status;
                        "setup request answered {status}; requests that need what it captures wait or fall back");
                }
            }
            Ok((Outcome::Failed { kind, error }, request)) => {
                series.failure(kind, secs);
                self.recycle(request);
                self.errors.trace_id = trace_id;
                self.errors.note(series.label(), kind, &error);
            }
            Err(TimedOut) => {
                series.failure(ErrorKind::Timeout, secs);
                let timeout = self.engine.request_timeout();
                self.errors.trace_id = trace_id;
                self.errors.note(series.label(), ErrorKind::Timeout, &format_args!("no answer within {timeout:?}"));
            }
        }
        drop(series);
        if done.setup
            && current
            && let Some(i) = self.setup.next
        {
            self.setup.next = Some(i + 1);
            self.send_setup(now);
        }
    }

    /// The answer's captures into the pools; what stored nothing is counted.
    fn capture(
        &mut self,
        id: RequestId,
        status: u16,
        headers: &[(String, Vec<u8>)],
        body: Option<&[u8]>,
        series: &RequestSeries,
    ) {
        // Empty (no allocation) unless a header capture asked for them.
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let report = self.workload.capture(id, status, &headers, body, &mut self.state);
        if report.stored > 0 {
            self.publish_pools();
        }
        if report.failed() > 0 {
            series.capture_failures("no_body", report.no_body);
            series.capture_failures("not_json", report.not_json);
            series.capture_failures("missing", report.missing);
            series.capture_failures("refused", report.refused);
        }
    }

    /// Keeps a request's buffer for the next one.
    fn recycle(&mut self, request: Request) {
        let buffer = request.rendered;
        let keep = (self.in_flight.len() + SPARE_BUFFER_SLACK).min(MAX_SPARE_BUFFERS);
        self.spare_buffers.truncate(keep);
        if self.spare_buffers.len() < keep && buffer.capacity() <= MAX_SPARE_BUFFER_BYTES {
            self.spare_buffers.push(buffer);
        }
    }

    /// After shutdown: lets the requests in flight finish within the grace
    /// period (or until `abandon`), recording them; abandons the rest and
    /// notes how many.
    async fn drain(&mut self, abandon: &CancellationToken) {
        self.stopping = true;
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
                Some(done) = self.in_flight.next() => self.record(done, Instant::now()),
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

    /// The client, built when first needed. Building can fail only for an
    /// https target given no trust settings (the configuration always gives
    /// some) whose built-in ones cannot be set up.
    fn client(&mut self) -> Result<Rc<TargetClient>, TlsError> {
        if let Some(client) = &self.client {
            return Ok(Rc::clone(client));
        }
        let shared = &self.engine.shared;
        let settings = &shared.settings;
        let client = Rc::new(TargetClient::new(&settings.target, &settings.client, shared.metrics.retry_counters())?);
        self.client = Some(Rc::clone(&client));
        Ok(client)
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
