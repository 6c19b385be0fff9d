//! The worker's side of journeys: an arrival drawn as a journey starts an
//! instance (if `MAX_JOURNEYS` allows and its data rows are there), which
//! then runs its steps one after the other — each request after the
//! previous answer, each pause on the worker's one timer. A step that is
//! not a success ends the instance, counted by reason, unless it says to
//! go on; the last step's answer completes it.
//!
//! Every step goes through the same `MAX_RPS` cap and in-flight bound as
//! any request. A step that finds no room waits in a queue served before
//! new arrivals, so running instances go first when room is short and
//! arrivals that do not fit are dropped by the pacer, counted.

use std::time::{Duration, Instant};

use super::turn::BATCH_WINDOW;
use super::{Origin, Worker};
use crate::engine::journeys::Key;
use crate::engine::users::UserKey;
use crate::observe::metrics::{DropReason, EndReason};
use crate::workload::{JourneyId, Step};

/// What became of a step the worker tried to send.
enum Sent {
    /// It is in flight.
    Yes,
    /// No room under `MAX_RPS` or the in-flight bound: it waits.
    NoRoom,
    /// The instance ended (a value it reads is missing).
    Ended,
}

impl Worker {
    /// When the loop must wake for journeys: the next pause that ends, or
    /// `room` (when `MAX_RPS` has room again) while steps wait for it.
    pub(super) fn journeys_wake(&self, room: Option<Instant>) -> Option<Instant> {
        let waiting = if self.journeys.any_waiting() { room } else { None };
        super::earliest(self.journeys.next_wake(), waiting)
    }

    /// Sends the steps that waited for room, then those whose pause has
    /// ended (up to the batch window ahead), in that order.
    pub(super) fn run_journeys(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        while let Some(key) = self.journeys.next_waiting() {
            if let Sent::NoRoom = self.send_step(key, now) {
                self.journeys.still_waiting(key);
                break;
            }
        }
        let horizon = now + BATCH_WINDOW;
        while let Some(key) = self.journeys.pop_woken(horizon) {
            self.advance(key, now);
        }
        self.publish_journeys();
    }

    /// A new instance of `journey`, from its first step.
    pub(super) fn start_journey(&mut self, journey: JourneyId, now: Instant) {
        self.start_journey_for(journey, now, None);
    }

    /// A new instance of `journey`, run for `user` if given (handed back
    /// to it at the end); false when none could start.
    pub(super) fn start_journey_for(&mut self, journey: JourneyId, now: Instant, user: Option<UserKey>) -> bool {
        let series = &self.journey_series[journey.index()];
        let Some(key) = self.journeys.start(journey, now) else {
            series.dropped(DropReason::MaxJourneys);
            return false;
        };
        let Some(instance) = self.journeys.get_mut(key) else { return false };
        if self.workload.begin(journey, &mut self.rng, &mut self.state, &mut instance.locals).is_err() {
            self.journeys.end(key);
            series.dropped(DropReason::NoData);
            return false;
        }
        instance.user = user;
        series.started();
        if let (Some(tracer), Some(instance)) = (&self.tracer, self.journeys.get_mut(key)) {
            instance.trace = Some(tracer.begin_journey(&mut self.rng));
        }
        self.advance(key, now);
        self.publish_journeys();
        true
    }

    /// Runs `key` from its current step: pauses are scheduled, the next
    /// request is sent (or waits for room), the end completes it.
    pub(super) fn advance(&mut self, key: Key, now: Instant) {
        loop {
            let Some(instance) = self.journeys.get_mut(key) else { return };
            let steps = self.workload.steps(instance.journey);
            let Some(step) = steps.get(instance.step).copied() else {
                self.finish(key, None, now);
                return;
            };
            match step {
                Step::Pause(pause) => {
                    instance.step += 1;
                    let wait = pause.draw(&mut self.rng);
                    if !wait.is_zero() {
                        let at = now.checked_add(wait).unwrap_or(now + Duration::from_secs(3600));
                        instance.due = at;
                        self.journeys.sleep_until(key, at);
                        return;
                    }
                }
                Step::Request { .. } => {
                    match self.send_step(key, now) {
                        Sent::Yes | Sent::Ended => {}
                        Sent::NoRoom => self.journeys.wait_for_room(key),
                    }
                    return;
                }
            }
        }
    }

    /// Sends the request step `key` is at, if there is room.
    fn send_step(&mut self, key: Key, now: Instant) -> Sent {
        if self.cap.free_at(now).is_some() {
            return Sent::NoRoom;
        }
        let Some(permit) = self.engine.shared.in_flight.try_acquire() else { return Sent::NoRoom };
        let Some(instance) = self.journeys.get_mut(key) else { return Sent::Ended };
        let Some(Step::Request { id, .. }) = self.workload.steps(instance.journey).get(instance.step).copied() else {
            return Sent::Ended;
        };
        let chosen = match self.workload.resolve_step(id, &mut self.rng, &self.state, &instance.locals) {
            Ok(chosen) => chosen,
            Err(_) => {
                self.count_unmet(id, now);
                self.finish(key, Some(EndReason::Unmet), now);
                return Sent::Ended;
            }
        };
        let lag = now.saturating_duration_since(instance.due);
        // Rendered with the instance's own values, taken out for the call
        // (moving them allocates nothing) and put back.
        let locals = std::mem::take(&mut instance.locals);
        self.cap.try_take(now);
        let shared = &self.engine.shared;
        shared.metrics.observe_lag(lag.as_secs_f64());
        shared.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = self.send_with(&chosen, now, lag, permit, Origin::Step(key), Some(&locals));
        if let Some(instance) = self.journeys.get_mut(key) {
            instance.locals = locals;
        }
        if !sent {
            // No client (an https target's trust could not be set up): counted as a failure.
            self.finish(key, Some(EndReason::NoAnswer), now);
            return Sent::Ended;
        }
        Sent::Yes
    }

    /// The answer to `key`'s step came (`Some(success)`) or none did:
    /// on to the next step, or the end of the instance.
    pub(super) fn step_done(&mut self, key: Key, answered: Option<bool>, now: Instant) {
        if self.stopping {
            return;
        }
        let Some(instance) = self.journeys.get_mut(key) else { return };
        let go_on =
            matches!(self.workload.steps(instance.journey).get(instance.step), Some(Step::Request { go_on: true, .. }));
        let ended = match answered {
            Some(true) => None,
            _ if go_on => None,
            Some(false) => Some(EndReason::NotSuccess),
            None => Some(EndReason::NoAnswer),
        };
        if let Some(reason) = ended {
            self.finish(key, Some(reason), now);
            self.publish_journeys();
            return;
        }
        if let Some(instance) = self.journeys.get_mut(key) {
            instance.step = instance.next_step();
            instance.due = now;
        }
        self.advance(key, now);
        self.publish_journeys();
    }

    /// Ends `key`: completed (`reason` is `None`) or early, counted.
    fn finish(&mut self, key: Key, reason: Option<EndReason>, now: Instant) {
        let Some(instance) = self.journeys.get_mut(key) else { return };
        let (journey, took) = (instance.journey, now.saturating_duration_since(instance.started));
        let (trace, step, user) = (instance.trace, instance.step, instance.user);
        self.journeys.end(key);
        if let Some(user) = user {
            // Its user pauses, then goes on (an instance that sent nothing: after the idle retry).
            self.user_iteration_done(user, now, took.is_zero());
        }
        if let (Some(tracer), Some(trace)) = (&mut self.tracer, trace) {
            tracer.end_journey(&trace, journey.index(), took, reason.is_none(), step);
        }
        let series = &self.journey_series[journey.index()];
        match reason {
            None => {
                series.completed(took.as_secs_f64());
                self.journey_latency.record(journey.index(), took, Duration::ZERO);
            }
            Some(reason) => series.ended(reason, 1),
        }
    }

    /// Ends every instance, counted as stopped (the traffic paused, the
    /// workload changed, or the engine stops).
    pub(super) fn end_journeys(&mut self) {
        if self.journeys.active() == 0 {
            return;
        }
        if let Some(tracer) = &mut self.tracer {
            let now = Instant::now();
            for instance in self.journeys.live() {
                if let Some(trace) = instance.trace {
                    let took = now.saturating_duration_since(instance.started);
                    tracer.end_journey(&trace, instance.journey.index(), took, false, instance.step);
                }
            }
        }
        for (journey, ended) in self.journeys.end_all().into_iter().enumerate() {
            if ended > 0
                && let Some(series) = self.journey_series.get(journey)
            {
                series.ended(EndReason::Stopped, ended);
            }
        }
        self.users_lost_journeys(Instant::now());
        self.publish_journeys();
    }

    /// Where `/status` and `/metrics` read the instances running.
    fn publish_journeys(&self) {
        self.engine.shared.journeys_active.store(self.journeys.active(), std::sync::atomic::Ordering::Relaxed);
    }
}
