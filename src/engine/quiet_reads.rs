//! Quiet requests (`client::Request::quiet`) waiting for the engine's next
//! turn to read their answers, and the tally that stops them against a
//! target slower than the turns. The tally is pure: the caller gives the time.

use std::cell::{Cell, RefCell};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The least time between sending a quiet request and reading its answer
/// at a turn (`QuietReads::read_aged`): answers from a target
/// nearby are in well within it; one further away misses, and the tally
/// stops quiet requests.
const QUIET_MIN_AGE: Duration = Duration::from_millis(1);

/// Quiet requests waiting for the next turn (`Request::quiet`), and their tally.
#[derive(Debug, Default)]
pub struct QuietReads {
    waiters: RefCell<Vec<Waker>>,
    /// When the latest waiter was queued (the client's clock).
    queued_at: Cell<Option<Instant>>,
    /// Counts the turns (`QuietReads::read_all`): a request polled
    /// before the next one (woken by something else) waits on.
    turns: Cell<u64>,
    pub(super) tally: RefCell<QuietTally>,
}

impl QuietReads {
    /// Lets every quiet request read its answer now: when the next turn is
    /// far, the plan changes, the engine stops.
    pub fn read_all(&self) {
        self.queued_at.set(None);
        self.turns.set(self.turns.get().wrapping_add(1));
        // Waking only queues each request to be polled by the engine's loop.
        self.waiters.borrow_mut().drain(..).for_each(Waker::wake);
    }

    /// Lets the quiet requests read their answers if the latest of them
    /// was sent `QUIET_MIN_AGE` ago or more: call at each turn, after each
    /// sleep and sweep. (A turn can follow the last one at once, with the
    /// rest of what is due: its answers are not in yet.)
    pub fn read_aged(&self, now: Instant) {
        if self.queued_at.get().is_some_and(|at| now.saturating_duration_since(at) >= QUIET_MIN_AGE) {
            self.read_all();
        }
    }
}

/// Quiet reads made lately, and how many missed: found the answer not
/// (wholly) in by the next turn, so that its connection had to be made
/// loud again, a `recvmsg` and two `setsockopt`s more than a loud
/// request. Against a target slower than the turns, quiet requests stop,
/// and are tried again after a backoff (1 s, doubling to 64 s). Pure: the
/// caller gives the time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QuietTally {
    pub(super) reads: u32,
    pub(super) misses: u32,
    pub(super) off_until: Option<Instant>,
    pub(super) backoff: Duration,
}

impl Default for QuietTally {
    fn default() -> Self {
        QuietTally { reads: 0, misses: 0, off_until: None, backoff: QuietTally::FIRST_BACKOFF }
    }
}

impl QuietTally {
    /// Reads judged together: at 10 000 req/s a turn sends 20, and one late
    /// answer from the target can make a whole turn miss; that must not
    /// stop quiet requests for a second.
    const WINDOW: u32 = 1024;
    /// Misses a window may have (about 6 %) and quiet requests still pay.
    const MAX_MISSES: u32 = 64;
    const FIRST_BACKOFF: Duration = Duration::from_secs(1);
    const MAX_BACKOFF: Duration = Duration::from_secs(64);

    pub(crate) fn note(&mut self, hit: bool) {
        self.reads = self.reads.saturating_add(1);
        if !hit {
            self.misses = self.misses.saturating_add(1);
        }
    }

    /// Whether requests sent at `now` should be quiet.
    pub(crate) fn allows(&mut self, now: Instant) -> bool {
        if self.misses > QuietTally::MAX_MISSES {
            self.off_until = now.checked_add(self.backoff);
            self.backoff = (self.backoff * 2).min(QuietTally::MAX_BACKOFF);
            (self.reads, self.misses) = (0, 0);
        } else if self.reads >= QuietTally::WINDOW {
            self.backoff = QuietTally::FIRST_BACKOFF;
            (self.reads, self.misses) = (0, 0);
        }
        self.off_until.is_none_or(|until| now >= until)
    }
}

/// Pending until the next turn (`QuietReads::read_all`).
pub(super) struct NextTurn<'a> {
    pub(super) quiet: &'a QuietReads,
    /// The client's clock when it is queued.
    pub(super) now: Instant,
    /// The turn it was queued in.
    pub(super) queued: Option<u64>,
}

impl std::future::Future for NextTurn<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let turn = self.quiet.turns.get();
        match self.queued {
            Some(queued) if queued != turn => Poll::Ready(()),
            // Woken by something else: its waker is queued already.
            Some(_) => Poll::Pending,
            None => {
                self.queued = Some(turn);
                self.quiet.waiters.borrow_mut().push(cx.waker().clone());
                self.quiet.queued_at.set(Some(self.now));
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_requests_stop_against_a_slow_target_and_are_tried_again_later() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut tally = QuietTally::default();
        assert!(tally.allows(t0));
        // Answers in by the next turn: quiet requests pay.
        (0..QuietTally::WINDOW).for_each(|_| tally.note(true));
        assert!(tally.allows(t0));
        // A few misses a window are allowed.
        (0..QuietTally::MAX_MISSES).for_each(|_| tally.note(false));
        (0..QuietTally::WINDOW).for_each(|_| tally.note(true));
        assert!(tally.allows(t0));
        // One more and they stop, for a second, then two, then four...
        let mut until = 0;
        for backoff in [1, 2, 4, 8, 16, 32, 64, 64] {
            (0..=QuietTally::MAX_MISSES).for_each(|_| tally.note(false));
            assert!(!tally.allows(at(until)), "off after misses (backoff {backoff} s)");
            assert!(!tally.allows(at(until + backoff - 1)));
            until += backoff;
            assert!(tally.allows(at(until)), "tried again after {backoff} s");
        }
        // A window that pays starts the backoff over.
        (0..QuietTally::WINDOW).for_each(|_| tally.note(true));
        assert!(tally.allows(at(until)));
        (0..=QuietTally::MAX_MISSES).for_each(|_| tally.note(false));
        assert!(!tally.allows(at(until)));
        assert!(tally.allows(at(until + 1)));
    }
}
