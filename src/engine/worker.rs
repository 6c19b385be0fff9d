//! The engine loop: sleeps until the next send time, sends every request
//! that is due, records answers as they complete, and re-anchors whenever the
//! plan changes.
//!
//! Everything happens on one thread in one task: requests in flight are
//! futures polled by this loop (not spawned tasks), their timeouts come from
//! one periodic sweep (not a timer each), and the two timers the loop needs
//! are created once and only moved.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::client::{Outcome, Request, TargetClient};
use super::deadline::{Deadlines, TimedOut};
use super::mix::Endpoint;
use super::mode::{Plan, Share};
use super::pace_timer::PaceTimer;
use super::schedule::{Pacer, pickup, send_instant};
use super::tls::TlsError;
use super::{Engine, InFlightPermit};
use crate::metrics::{AnswerCounters, ErrorKind};

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

/// A request in flight, resolving to its completion record.
type InFlightFuture = Pin<Box<dyn Future<Output = Completed>>>;

struct Completed {
    endpoint: Endpoint,
    started: Instant,
    /// How late it left against its scheduled time.
    lag: Duration,
    result: Result<Outcome, TimedOut>,
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
}

pub(super) struct Worker {
    engine: Engine,
    /// Built when traffic starts, dropped while nothing is scheduled, so a
    /// paused sidecar holds no connections to the target.
    client: Option<Rc<TargetClient>>,
    in_flight: FuturesUnordered<InFlightFuture>,
    deadlines: Rc<Deadlines>,
    sweep_every: Duration,
    send_timer: PaceTimer,
    sweep_timer: Timer,
    answers: AnswerCounters,
    errors: ErrorLog,
    rng: SmallRng,
}

impl Worker {
    /// Must be called on the worker's own thread, inside its runtime.
    pub(super) fn new(engine: Engine) -> std::io::Result<Self> {
        let answers = engine.shared.metrics.answer_counters();
        let sweep_every = Deadlines::sweep_interval(engine.shared.settings.request_timeout);
        Ok(Worker {
            engine,
            client: None,
            in_flight: FuturesUnordered::new(),
            deadlines: Deadlines::new(),
            sweep_every,
            send_timer: PaceTimer::new()?,
            sweep_timer: Timer::new(),
            answers,
            errors: ErrorLog::default(),
            rng: SmallRng::seed_from_u64(rand::random()),
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
        let plan = *plans.borrow_and_update();
        // Send times are fixed against the plan's anchor, never against answers.
        let since_anchor = plan.anchor.map(|anchor| signed_secs_since(anchor, SystemTime::now()));
        let anchor = Instant::now();
        let jitter = self.engine.jitter();
        let mut origin = 0.0;
        let mut pacer = plan.schedule().map(|s| {
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
        if pacer.is_none() {
            // In-flight requests hold their own handle and finish first.
            self.client = None;
        }
        // Made once per plan: building them every turn takes a lock each.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let changed = plans.changed();
        tokio::pin!(changed);
        loop {
            let next = pacer.as_ref().and_then(Pacer::next_send_time).and_then(|t| clock.instant(t));
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
                Event::Completed(done) => self.record_ready(done),
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
        let elapsed = clock.elapsed(now);
        let skipped = pacer.skip_before(elapsed - MAX_LATENESS, &mut self.rng);
        if skipped > 0 {
            self.engine.shared.metrics.add_dropped(skipped);
            log::warn!(skipped = skipped; "engine fell behind its schedule; skipped the missed requests");
        }
        let window = BATCH_WINDOW.as_secs_f64();
        let horizon = elapsed + window;
        // What is left over is due already; the timer fires again at once.
        for _ in 0..Pacer::turn_limit(pacer.rate_at(elapsed), window) {
            let Some(due) = pacer.pop_due(horizon, &mut self.rng) else { break };
            self.fire(now, elapsed - due);
        }
    }

    /// Sends one request now, if the in-flight bound allows.
    fn fire(&mut self, now: Instant, lag_secs: f64) {
        let Some(permit) = self.engine.shared.in_flight.try_acquire() else {
            self.engine.shared.metrics.add_dropped(1);
            return;
        };
        let client = self.client();
        let shared = &self.engine.shared;
        shared.metrics.observe_lag(lag_secs);
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let timeout = self.engine.request_timeout();
        let request = self.draw_request();
        let endpoint = request.endpoint();
        let started = now;
        let lag = Duration::try_from_secs_f64(lag_secs.max(0.0)).unwrap_or(Duration::ZERO);
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                self.engine.shared.metrics.record_failure(endpoint, ErrorKind::Tls, 0.0);
                self.errors.note(endpoint, ErrorKind::Tls, &e);
                return;
            }
        };
        let send = client.send(request);
        let exchange = self.deadlines.guard(started + timeout, send);
        self.in_flight.push(Box::pin(async move {
            let result = exchange.await;
            Completed { endpoint, started, lag, result, _permit: permit }
        }));
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
        let metrics = &self.engine.shared.metrics;
        let from_sent = now.saturating_duration_since(done.started);
        let secs = from_sent.as_secs_f64();
        let endpoint = done.endpoint;
        // Every answer, and every wait that ended in a timeout: both are
        // what a user would have waited (a refused connection is not).
        if matches!(done.result, Ok(Outcome::Answered { .. }) | Err(TimedOut)) {
            self.engine.shared.latency.record(endpoint.index(), from_sent, done.lag);
        }
        match done.result {
            Ok(Outcome::Answered { status, created }) => {
                self.answers.count(endpoint, status);
                metrics.observe_duration(endpoint, secs);
                if let Some(id) = created {
                    self.engine.shared.ids.lock().push(id);
                }
            }
            Ok(Outcome::Failed { kind, error }) => {
                metrics.record_failure(endpoint, kind, secs);
                self.errors.note(endpoint, kind, &error);
            }
            Err(TimedOut) => {
                metrics.record_failure(endpoint, ErrorKind::Timeout, secs);
                let timeout = self.engine.request_timeout();
                self.errors.note(endpoint, ErrorKind::Timeout, &format_args!("no answer within {timeout:?}"));
            }
        }
    }

    /// After shutdown: lets the requests in flight finish within the grace
    /// period (or until `abandon`), recording them; abandons the rest and
    /// notes how many.
    async fn drain(&mut self, abandon: &CancellationToken) {
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

    /// Picks the next request from the mix; a read with no id to read
    /// becomes a create, which will provide ids.
    fn draw_request(&mut self) -> Request {
        let mix = self.engine.shared.settings.mix;
        let endpoint = mix.pick(self.rng.random_range(0..mix.total()));
        let id = match endpoint {
            Endpoint::GetOrder => {
                let roll = self.rng.random_range(0..usize::MAX);
                self.engine.shared.ids.lock().pick(roll).cloned()
            }
            _ => None,
        };
        match (endpoint, id) {
            (Endpoint::ListOrders, _) => Request::ListOrders,
            (Endpoint::GetOrder, Some(id)) => Request::GetOrder(id),
            _ => Request::CreateOrder {
                product_id: self.rng.random_range(1..=10),
                quantity: self.rng.random_range(1..=5),
            },
        }
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
}

impl ErrorLog {
    fn note(&mut self, endpoint: Endpoint, kind: ErrorKind, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < ERROR_LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        log::warn!(endpoint = endpoint.as_str(), kind = kind.as_str(), error:% = error, suppressed = self.suppressed;
            "request failed");
        self.last = Some(now);
        self.suppressed = 0;
    }
}
