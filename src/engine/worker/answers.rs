//! Answers: every request that has completed is recorded (counts,
//! latencies, errors), its captures fill the pools and, for a journey step,
//! the instance's variables; then the setup or the instance moves on.

use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;

use super::setup::SetupAnswer;
use super::{Completed, Origin, Worker};
use crate::engine::client::Outcome;
use crate::engine::deadline::TimedOut;
use crate::engine::journeys::Key;
use crate::engine::spans::SpanStart;
use crate::observe::metrics::{ErrorKind, RequestSeries};
use crate::observe::trace::SpanOutcome;
use crate::workload::{CaptureReport, RequestId};

impl Worker {
    /// Records `first` and every other request that has completed by now,
    /// with one read of each clock for the lot.
    pub(super) fn record_ready(&mut self, first: Completed) {
        let now = Instant::now();
        let wall = SystemTime::now();
        self.record(first, now, wall);
        while let Some(Some(done)) = self.in_flight.next().now_or_never() {
            self.record(done, now, wall);
        }
    }

    /// Records every request that has completed by now; false if none had.
    pub(super) fn record_arrived(&mut self) -> bool {
        match self.in_flight.next().now_or_never() {
            Some(Some(first)) => {
                self.record_ready(first);
                true
            }
            _ => false,
        }
    }

    /// `now` and `wall`: the time, on the monotonic clock and on the wall
    /// clock the kernel stamps answers with.
    pub(super) fn record(&mut self, done: Completed, now: Instant, wall: SystemTime) {
        let from_sent = answer_time(&done, now, wall);
        let secs = from_sent.as_secs_f64();
        let current = done.generation == self.generation;
        // Every answer, and every wait that ended in a timeout: both are
        // what a user would have waited (a refused connection is not). A
        // request of a workload swapped out since has no row in the table.
        if current && matches!(done.result, Ok((Outcome::Answered { .. }, _)) | Err(TimedOut)) {
            self.latency.record(done.request.index(), from_sent, done.lag);
        }
        let step = match done.origin {
            Origin::Step(key) if current => Some(key),
            _ => None,
        };
        // A failure's line names its trace, to find it in the tracing backend.
        let trace_id = done.span.as_deref().map(SpanStart::trace_id);
        if let (Some(tracer), Some(span)) = (&mut self.tracer, done.span) {
            let outcome = match &done.result {
                Ok((Outcome::Answered { status, .. }, _)) => SpanOutcome::Answered(*status),
                Ok((Outcome::Failed { kind, .. }, _)) => SpanOutcome::Failed(kind.as_str()),
                Err(TimedOut) => SpanOutcome::Failed(ErrorKind::Timeout.as_str()),
            };
            tracer.finish(*span, from_sent, outcome);
        }
        let mut series = done.series.borrow_mut();
        // What a setup run needs of the answer, and the status for a 401 check.
        let mut setup: Option<SetupAnswer> = None;
        let mut status_seen = None;
        let is_setup = done.origin == Origin::Setup;
        // For a step: answered with a success, answered otherwise, or not at all.
        let answered = match done.result {
            Ok((Outcome::Answered { status, body, headers, .. }, request)) => {
                series.answer(status, secs);
                self.recycle(request);
                let report = if current {
                    self.capture(done.request, status, &headers, body.as_deref(), &series, step)
                } else {
                    CaptureReport::default()
                };
                status_seen = Some(status);
                if is_setup {
                    setup = Some(SetupAnswer::Answered { status, report, body });
                }
                // Only a request of the running workload has a row in it
                // (an answer can come in after `PUT /workload` swapped in a
                // smaller one, the more so read at the next turn).
                current.then(|| self.workload.is_success(done.request, status))
            }
            Ok((Outcome::Failed { kind, error }, request)) => {
                series.failure(kind, secs);
                self.recycle(request);
                if is_setup {
                    // Said by the setup's own line, one per try.
                    setup = Some(SetupAnswer::NoAnswer(format!("{}: {error}", kind.as_str())));
                } else {
                    self.errors.trace_id = trace_id;
                    self.errors.note(series.label(), kind, &error);
                }
                None
            }
            Err(TimedOut) => {
                series.failure(ErrorKind::Timeout, secs);
                let timeout = self.engine.request_timeout();
                if is_setup {
                    setup = Some(SetupAnswer::NoAnswer(format!("no answer within {timeout:?}")));
                } else {
                    self.errors.trace_id = trace_id;
                    self.errors.note(series.label(), ErrorKind::Timeout, &format_args!("no answer within {timeout:?}"));
                }
                None
            }
        };
        drop(series);
        if current {
            match (setup, status_seen) {
                (Some(setup), _) => self.setup_answered(done.request, setup, now),
                (None, Some(status)) => self.check_setup_values(done.request, status, done.epoch, now),
                (None, None) => {}
            }
        }
        if let Some(key) = step {
            // A code that calls for its instance's login goes back to it
            // first (see `relogin_journey`); otherwise the instance goes on.
            let relogged = status_seen.is_some_and(|status| self.relogin_journey(key, status, now));
            if !relogged {
                self.step_done(key, answered, now);
            }
        }
        // Its permit is free now (dropped with `done`): a step waiting
        // for one may go.
        drop(done._permit);
        if let Origin::User(user) = done.origin {
            self.user_request_done(user, now);
        }
        if self.journeys.any_waiting() {
            self.run_journeys(now);
        }
    }

    /// The answer's captures into the pools (and, for a step, its
    /// instance's variables); what stored nothing is counted.
    pub(super) fn capture(
        &mut self,
        id: RequestId,
        status: u16,
        headers: &[(String, Vec<u8>)],
        body: Option<&[u8]>,
        series: &RequestSeries,
        step: Option<Key>,
    ) -> CaptureReport {
        // Empty (no allocation) unless a header capture asked for them.
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let locals = step.and_then(|key| self.journeys.get_mut(key)).map(|instance| &mut instance.locals);
        let report = self.workload.capture_in(id, status, &headers, body, &mut self.state, locals);
        if report.stored > 0 {
            self.publish_pools();
        }
        if report.failed() > 0 {
            series.capture_failures("no_body", report.no_body);
            series.capture_failures("not_json", report.not_json);
            series.capture_failures("missing", report.missing);
            series.capture_failures("refused", report.refused);
        }
        report
    }

    /// A step of `key` answered `status`: when the journey's `relogin_on`
    /// names it and the step sends, in a header, a variable an earlier
    /// step captured (its login), the instance runs that step again and
    /// then sends this one once more; a second such answer to it ends the
    /// instance as any failure would. Returns whether it went back.
    ///
    /// Sent again, unlike a request of the traffic: a 401 is an answer
    /// the target gives without acting on the request (RFC 9110 15.5.2),
    /// and the instance is one user whose later steps need this step's
    /// answer. The 401 itself is counted as the answer it is.
    pub(super) fn relogin_journey(&mut self, key: Key, status: u16, now: Instant) -> bool {
        if self.stopping {
            return false;
        }
        let Some(instance) = self.journeys.get_mut(key) else { return false };
        if instance.back_to == Some(instance.step) {
            return false;
        }
        let Some(login) = self.workload.relogin_step(instance.journey, instance.step, status) else { return false };
        instance.back_to = Some(instance.step);
        instance.step = login;
        instance.due = now;
        self.engine.shared.metrics.count_relogin("journey");
        self.advance(key, now);
        true
    }
}

/// From the request's send to the end of its answer: to when the kernel
/// took in the answer's last bytes where it says (an answer read a little
/// later, with others, keeps its own time), else to `now`. A wall clock
/// stepped since counts nothing before the send.
fn answer_time(done: &Completed, now: Instant, wall: SystemTime) -> Duration {
    let received = match &done.result {
        Ok((Outcome::Answered { received, .. }, _)) => *received,
        _ => None,
    };
    time_to_answer(done.started, received, now, wall)
}

/// `answer_time` on its own: `started` and `now` on the monotonic clock,
/// `received` and `wall` (read with `now`) on the wall clock.
fn time_to_answer(started: Instant, received: Option<SystemTime>, now: Instant, wall: SystemTime) -> Duration {
    let waited = now.saturating_duration_since(started);
    let unread = received.map_or(Duration::ZERO, |received| wall.duration_since(received).unwrap_or_default());
    waited.saturating_sub(unread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_read_late_keeps_the_time_it_came_in() {
        let started = Instant::now();
        let now = started + Duration::from_millis(5);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = Duration::from_millis;
        let cases = [
            // Came in 1 ms after the send, read 4 ms later.
            (Some(wall - ms(4)), ms(1)),
            // Read as it came.
            (Some(wall), ms(5)),
            // No stamp (https, a failure): until now.
            (None, ms(5)),
            // Stamped "before the send": the wall clock was stepped back.
            (Some(wall - ms(60_000)), Duration::ZERO),
            // Stamped "in the future": stepped forward; until now.
            (Some(wall + ms(60_000)), ms(5)),
        ];
        for (received, expected) in cases {
            assert_eq!(time_to_answer(started, received, now, wall), expected, "{received:?}");
        }
    }
}
