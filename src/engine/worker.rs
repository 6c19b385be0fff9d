//! The engine loop: sleeps until the next send time, sends every request
//! that is due, and re-anchors whenever the plan changes.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::{Outcome, Request, TargetClient};
use super::mix::Endpoint;
use super::mode::Plan;
use super::schedule::Pacer;
use super::{Engine, Shared};
use crate::metrics::ErrorKind;

/// tokio's timer rounds deadlines up to its 1 ms wheel and wakes 1-2 ms
/// late. Waking this much early and sending what falls due within the same
/// window centres the send-time error around zero instead.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Slots that fell due longer ago than this (the thread was starved) are
/// skipped and counted as dropped rather than sent in one burst.
const MAX_LATENESS: f64 = 0.25;

/// At most one failure line per this interval; the rest are counted.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

pub(super) struct Worker {
    engine: Engine,
    /// Built when traffic starts, dropped while nothing is scheduled: the
    /// client's pool reaps idle connections only when it is next used, so a
    /// paused sidecar would otherwise sit on every connection of its last
    /// busy moment (in CLOSE_WAIT once the target times them out).
    client: Option<Rc<TargetClient>>,
    errors: Rc<ErrorLog>,
    rng: SmallRng,
}

impl Worker {
    /// Must be called on the worker's own thread.
    pub(super) fn new(engine: Engine) -> Self {
        Worker {
            engine,
            client: None,
            errors: Rc::new(ErrorLog::default()),
            rng: SmallRng::seed_from_u64(rand::random()),
        }
    }

    fn client(&mut self) -> Rc<TargetClient> {
        let s = &self.engine.shared.settings;
        Rc::clone(
            self.client
                .get_or_insert_with(|| Rc::new(TargetClient::new(&s.target, s.request_timeout, s.max_in_flight))),
        )
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let mut plans = self.engine.plan.subscribe();
        while let Some(plan) = self.follow(&mut plans, &shutdown).await {
            log::debug!(mode = plan.mode.as_str(), rps = plan.rps; "engine re-planned");
        }
        let in_flight = self.engine.in_flight();
        if in_flight > 0 {
            log::info!(in_flight = in_flight; "waiting for in-flight requests to finish");
        }
        let grace = self.engine.shared.settings.shutdown_grace;
        if !self.engine.shared.in_flight.wait_idle(grace).await {
            log::warn!(in_flight = self.engine.in_flight(), grace_secs = grace.as_secs_f64();
                "grace period over; abandoning in-flight requests");
        }
    }

    /// Sends by the current plan until it changes (returns the new plan) or
    /// shutdown (returns `None`).
    async fn follow(&mut self, plans: &mut watch::Receiver<Plan>, shutdown: &CancellationToken) -> Option<Plan> {
        let plan = *plans.borrow_and_update();
        // Send times are fixed against this anchor, never against answers.
        let anchor = Instant::now();
        let jitter = self.engine.shared.settings.jitter;
        let mut pacer = plan.schedule().map(|s| Pacer::new(s, jitter, &mut self.rng));
        if pacer.is_none() {
            // In-flight requests hold their own handle and finish first.
            self.client = None;
        }
        loop {
            let wake = pacer
                .as_ref()
                .and_then(Pacer::next_send_time)
                .map(|t| (anchor + Duration::from_secs_f64(t)).checked_sub(TIMER_SLACK).unwrap_or(anchor));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return None,
                changed = plans.changed() => {
                    return match changed {
                        Ok(()) => Some(*plans.borrow_and_update()),
                        Err(_) => None,
                    };
                }
                // No deadline (warm-up, pause): nothing to wake for, no CPU.
                _ = sleep_until(wake) => {}
            }
            let Some(pacer) = pacer.as_mut() else { continue };
            let now = Instant::now();
            let elapsed = now.duration_since(anchor).as_secs_f64();
            let skipped = pacer.skip_before(elapsed - MAX_LATENESS, &mut self.rng);
            if skipped > 0 {
                self.engine.shared.metrics.add_dropped(skipped);
                log::warn!(skipped = skipped; "engine fell behind its schedule; skipped the missed requests");
            }
            let horizon = elapsed + TIMER_SLACK.as_secs_f64();
            while let Some(due) = pacer.pop_due(horizon, &mut self.rng) {
                let lag = elapsed - due;
                self.fire(lag);
            }
        }
    }

    /// Sends one request now, if the in-flight bound allows.
    fn fire(&mut self, lag_secs: f64) {
        let shared: Arc<Shared> = Arc::clone(&self.engine.shared);
        let Some(permit) = shared.in_flight.try_acquire() else {
            shared.metrics.add_dropped(1);
            return;
        };
        shared.metrics.observe_lag(lag_secs);
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let request = self.draw_request();
        let client = self.client();
        let errors = Rc::clone(&self.errors);
        actix_rt::spawn(async move {
            let started = Instant::now();
            let outcome = client.send(&request).await;
            let secs = started.elapsed().as_secs_f64();
            let endpoint = request.endpoint();
            match outcome {
                Outcome::Answered { status, created } => {
                    shared.metrics.record_answer(endpoint, status, secs);
                    if let Some(id) = created {
                        shared.ids.lock().push(id);
                    }
                }
                Outcome::Failed { kind, reason } => {
                    shared.metrics.record_failure(endpoint, kind, secs);
                    errors.note(endpoint, kind, &reason);
                }
            }
            drop(permit);
        });
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => actix_rt::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Rate-limits failure lines: a dead target must not flood the log.
#[derive(Default)]
struct ErrorLog {
    state: std::cell::Cell<(Option<Instant>, u64)>,
}

impl ErrorLog {
    fn note(&self, endpoint: Endpoint, kind: ErrorKind, reason: &str) {
        let (last, suppressed) = self.state.get();
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < ERROR_LOG_INTERVAL) {
            self.state.set((last, suppressed + 1));
            return;
        }
        log::warn!(endpoint = endpoint.as_str(), kind = kind.as_str(), error = reason, suppressed = suppressed;
            "request failed");
        self.state.set((Some(now), 0));
    }
}
