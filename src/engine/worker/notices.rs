//! Warnings about traffic that is not sent, at most one line per kind per
//! [`NOTICE_INTERVAL`], with the count since the previous one: requests
//! unmet (a pool or variable they read is empty, often because the setup
//! fails) and requests dropped because the in-flight bound was full. The
//! counts themselves are in `/status`, `/metrics` and the stats line; these
//! lines say it when it starts happening.

use std::time::{Duration, Instant};

use super::Worker;
use crate::workload::RequestId;

/// At most one line per kind per this interval.
const NOTICE_INTERVAL: Duration = Duration::from_secs(10);

/// One kind of event, logged at most once per [`NOTICE_INTERVAL`].
#[derive(Debug, Default)]
struct Notice {
    last: Option<Instant>,
    /// Events since the last line, that line's included.
    since: u64,
}

impl Notice {
    /// Counts one event at `now`; `Some(count)` when a line is due, with
    /// the events it covers.
    fn note(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self.last.is_some_and(|last| now.saturating_duration_since(last) < NOTICE_INTERVAL) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[derive(Debug, Default)]
pub(super) struct Notices {
    unmet: Notice,
    in_flight_full: Notice,
}

impl Worker {
    /// Request `asked` was drawn and not sent: a value it reads is empty.
    pub(super) fn count_unmet(&mut self, asked: RequestId, now: Instant) {
        self.series(asked).borrow().unmet();
        if let Some(unmet) = self.notices.unmet.note(now) {
            let setup = self.setup.login.status().state.as_str();
            log::warn!(request = self.workload.name(asked), unmet = unmet, setup = setup;
                "requests not sent: a pool or variable they read is empty and they have no fallback (setup: {setup})");
        }
    }

    /// A due request was dropped: the in-flight bound was full.
    pub(super) fn count_in_flight_full(&mut self, now: Instant) {
        self.engine.shared.metrics.add_dropped(1);
        if let Some(dropped) = self.notices.in_flight_full.note(now) {
            let bound = self.engine.max_in_flight();
            log::warn!(dropped = dropped, max_in_flight = bound;
                "requests dropped: {bound} requests are in flight already (MAX_IN_FLIGHT); the target answers slower than the rate sends");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_at_most_per_interval_with_the_count_it_covers() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut notice = Notice::default();
        assert_eq!(notice.note(at(0)), Some(1), "the first at once");
        assert_eq!(notice.note(at(10)), None);
        assert_eq!(notice.note(at(9_999)), None);
        assert_eq!(notice.note(at(10_000)), Some(3), "then the ones held back, with this one");
        assert_eq!(notice.note(at(30_000)), Some(1));
    }
}
