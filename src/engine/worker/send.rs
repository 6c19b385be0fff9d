//! Sending: every due arrival of a turn (a request, or a new journey
//! instance), rendered into a reused buffer and put in flight behind the
//! in-flight bound and `MAX_RPS`; the client, built when first needed.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use super::turn::batch_window;
use super::{
    Completed, MAX_LATENESS, MAX_SPARE_BUFFER_BYTES, MAX_SPARE_BUFFERS, Origin, QUIET_MIN_RATE, SPARE_BUFFER_SLACK,
    ScheduleClock, Series, Worker,
};
use crate::engine::InFlightPermit;
use crate::engine::client::{Request, TargetClient};
use crate::engine::schedule::Pacer;
use crate::engine::spans::request_target;
use crate::engine::tls::TlsError;
use crate::observe::metrics::ErrorKind;
use crate::workload::{Arrival, Chosen, Draw, Locals, Method, RequestId};

impl Worker {
    /// What every sending turn does first, in either model: the client's
    /// clock, a swapped workload or focus, a setup that is due.
    pub(super) fn begin_turn(&mut self, now: Instant) {
        if let Some(client) = &self.client {
            client.set_clock(now);
        }
        self.quiet_reads.read_aged(now);
        self.follow_workload();
        self.follow_focus();
        self.setup_if_due(now);
        self.started_traffic = true;
    }

    pub(super) fn send_due(&mut self, pacer: &mut Pacer, clock: &ScheduleClock) {
        let now = Instant::now();
        self.begin_turn(now);
        let elapsed = clock.elapsed(now);
        let skipped = pacer.skip_before(elapsed - MAX_LATENESS, &mut self.rng);
        if skipped > 0 {
            self.engine.shared.metrics.add_dropped(skipped);
            log::warn!(skipped = skipped; "engine fell behind its schedule; skipped the missed requests");
        }
        let rate = pacer.rate_at(elapsed);
        let (cap_allowed, cap_window) = self.cap.window();
        let turn = batch_window(rate, cap_allowed, cap_window);
        self.turn = Some(turn);
        self.quiet_answers = rate >= QUIET_MIN_RATE
            && self.answers_may_wait()
            && self.client.as_ref().is_some_and(|client| client.quiet_pays());
        let horizon = turn.horizon(elapsed);
        if std::mem::take(&mut self.held_by_cap) {
            self.engine.shared.metrics.count_capped();
        }
        // Running instances' steps before new arrivals: they take the room first.
        self.run_journeys(now);
        // What is left over is due already; the timer fires again at once
        // (or when the cap has room).
        for _ in 0..Pacer::turn_limit(rate, turn.width) {
            if pacer.next_send_time().is_none_or(|t| t > horizon)
                || self.cap.free_at(now).is_some()
                || self.journeys.any_waiting()
            {
                break;
            }
            let Some(due) = pacer.pop_due(horizon, &mut self.rng) else { break };
            self.fire(now, elapsed - due);
        }
    }

    /// One arrival of the traffic now: a request, sent if the in-flight
    /// bound allows, or a journey instance, started if `MAX_JOURNEYS` allows.
    pub(super) fn fire(&mut self, now: Instant, lag_secs: f64) {
        let arrival = match &self.focused {
            Some(focus) => focus.draw(&self.workload, &mut self.rng, &self.state),
            None => self.workload.draw_arrival(&mut self.rng, &self.state),
        };
        self.arrivals.inc();
        let chosen = match arrival {
            Arrival::Request(Draw::Send(chosen)) => chosen,
            Arrival::Request(Draw::Unmet { asked, .. }) => {
                self.count_unmet(asked, now);
                return;
            }
            Arrival::Journey(journey) => {
                self.engine.shared.metrics.observe_lag(lag_secs);
                self.start_journey(journey, now);
                return;
            }
        };
        let Some(permit) = self.engine.shared.in_flight.try_acquire() else {
            self.count_in_flight_full(now);
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
        self.send(&chosen, now, lag, permit, Origin::Traffic);
    }

    /// Renders `chosen` and puts it in flight; false if it could not be
    /// sent (no client: counted as a failure). `lag`: how late it leaves
    /// against its scheduled time.
    pub(super) fn send(
        &mut self,
        chosen: &Chosen,
        started: Instant,
        lag: Duration,
        permit: InFlightPermit,
        origin: Origin,
    ) -> bool {
        self.send_with(chosen, started, lag, permit, origin, None)
    }

    /// [`Worker::send`], for a journey step rendered with its instance's `locals`.
    pub(super) fn send_with(
        &mut self,
        chosen: &Chosen,
        started: Instant,
        lag: Duration,
        permit: InFlightPermit,
        origin: Origin,
        locals: Option<&Locals>,
    ) -> bool {
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
        // The trace it joins: its journey instance's, or one of its own.
        let journey = match origin {
            Origin::Step(key) => {
                self.journeys.get_mut(key).and_then(|i| i.trace.map(|trace| (trace, i.journey.index())))
            }
            _ => None,
        };
        if let Some(tracer) = &self.tracer {
            match &journey {
                Some((trace, _)) => tracer.before_step(&mut self.state, trace),
                None => tracer.before_render(&mut self.rng, &mut self.state),
            }
        }
        workload.render_in(chosen, &mut self.rng, &mut self.state, locals, &mut rendered);
        let span = self.tracer.as_ref().and_then(|tracer| {
            let (parent, step) = journey.as_ref().map_or((None, None), |(trace, j)| tracer.step_labels(*j, trace));
            tracer.after_render(&mut self.state, id, request_target(&rendered), parent, step)
        });
        let request = Request {
            rendered,
            keep_body: workload.wants_body(id),
            keep_headers: workload.wanted_headers(id).next().is_some(),
            head: workload.method(id) == Method::Head,
            quiet: self.quiet_answers && origin == Origin::Traffic,
        };
        let timeout = self.engine.request_timeout();
        let exchange = self.deadlines.guard(started + timeout, client.send(request));
        let generation = self.generation;
        let epoch = self.setup.login.epoch();
        // A combinator, not an async block: an async block keeps what it
        // captures (the whole exchange) and its own copy of it, twice the size.
        let completion = exchange.map(move |result| Completed {
            request: id,
            generation,
            origin,
            series,
            started,
            lag,
            epoch,
            result,
            span,
            _permit: permit,
        });
        self.in_flight.push(Box::pin(completion));
        true
    }

    /// The series of request `id` of the running workload.
    pub(super) fn series(&mut self, id: RequestId) -> Series {
        let slot = &mut self.series[id.index()];
        let series = slot.get_or_insert_with(|| {
            Rc::new(RefCell::new(self.engine.shared.metrics.request_series(self.workload.name(id))))
        });
        Rc::clone(series)
    }

    /// Keeps a plain request's buffer for the next one.
    pub(super) fn recycle(&mut self, request: Request) {
        let buffer = request.rendered;
        let keep = (self.in_flight.len() + SPARE_BUFFER_SLACK).min(MAX_SPARE_BUFFERS);
        self.spare_buffers.truncate(keep);
        if self.spare_buffers.len() < keep && buffer.capacity() <= MAX_SPARE_BUFFER_BYTES {
            self.spare_buffers.push(buffer);
        }
    }

    /// The client, built when first needed. Building can fail only for an
    /// https target given no trust settings (the configuration always gives
    /// some) whose built-in ones cannot be set up.
    pub(super) fn client(&mut self) -> Result<Rc<TargetClient>, TlsError> {
        if let Some(client) = &self.client {
            return Ok(Rc::clone(client));
        }
        let shared = &self.engine.shared;
        let settings = &shared.settings;
        let client = TargetClient::new(&settings.target, &settings.client, shared.metrics.retry_counters())?;
        let client = Rc::new(client.sharing_quiet_reads(Rc::clone(&self.quiet_reads)));
        self.client = Some(Rc::clone(&client));
        Ok(client)
    }
}
