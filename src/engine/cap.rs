//! `MAX_RPS` as a promise over every window: [`SendCap`] lets a request
//! leave only if the requests already sent in the window ending now leave
//! room for it.
//!
//! The pacer alone cannot keep it: every switch (a mode, a job, a
//! `PUT /config`, a replica's share) starts a fresh schedule whose first
//! request leaves at once, so switches made faster than the rate put more
//! than the rate on the target. The cap sits in front of every send and
//! outlives plans, so nothing that changes the plan can get past it.
//!
//! The window is 100 ms for caps of 10/s and more (ten such windows make a
//! second, so every second holds too); below that, one second or `1/rate`,
//! whichever is longer, so a fraction of a request per second stays one
//! request per `1/rate`. A request that finds no room waits (its lateness is
//! recorded like any other); the pacer skips what falls too far behind.
//!
//! Pure: the clock is passed in. Memory: one instant per request the window
//! allows (100 for a cap of 1 000/s).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The shortest window, for caps of 10/s and more.
const SHORT_WINDOW: Duration = Duration::from_millis(100);

/// Most requests one window may hold: a cap of 10^6/s (the largest
/// `MAX_RPS`) over 100 ms.
const MAX_ALLOWED: usize = 100_000;

#[derive(Debug, Clone)]
pub struct SendCap {
    window: Duration,
    /// Requests the window may hold.
    allowed: usize,
    /// When the last `allowed` requests left, oldest first.
    sent: VecDeque<Instant>,
}

impl SendCap {
    /// A cap of `rps` requests per second; 0 (or less, or not a number)
    /// lets nothing through.
    pub fn new(rps: f64) -> SendCap {
        let (window, allowed) = window_for(rps);
        SendCap { window, allowed, sent: VecDeque::with_capacity(allowed.min(1024)) }
    }

    /// Requests per window and the window, for the status of a test.
    pub fn window(&self) -> (usize, Duration) {
        (self.allowed, self.window)
    }

    /// Changes the cap (a replica joined or left); what was sent stays
    /// counted, so a change cannot open a burst either.
    pub fn set_rate(&mut self, rps: f64) {
        let (window, allowed) = window_for(rps);
        if (window, allowed) == (self.window, self.allowed) {
            return;
        }
        self.window = window;
        self.allowed = allowed;
        while self.sent.len() > allowed {
            self.sent.pop_front();
        }
    }

    /// When a request may next leave: `None` if it may now (at `now`).
    pub fn free_at(&self, now: Instant) -> Option<Instant> {
        if self.allowed == 0 {
            // Nothing ever leaves (a cap of 0 comes with no schedule).
            return Some(now + Duration::from_secs(3600));
        }
        self.room_from().filter(|free| *free > now)
    }

    /// From when there is room, whatever the time now: `None` while the
    /// window is not full. The loop arms its timer with this without
    /// reading the clock.
    pub fn room_from(&self) -> Option<Instant> {
        if self.sent.len() < self.allowed {
            return None;
        }
        self.sent.front().map(|oldest| *oldest + self.window)
    }

    /// Takes room for one request leaving at `now`; false (nothing taken)
    /// when the window is full.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.free_at(now).is_some() {
            return false;
        }
        if self.sent.len() == self.allowed {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
        true
    }
}

/// The window and the requests it may hold for a cap of `rps`.
fn window_for(rps: f64) -> (Duration, usize) {
    if !(rps.is_finite() && rps > 0.0) {
        return (SHORT_WINDOW, 0);
    }
    if rps >= 10.0 {
        // Whole requests per 100 ms, never more than the cap allows.
        let allowed = (rps * SHORT_WINDOW.as_secs_f64() + 1e-9).floor();
        return (SHORT_WINDOW, (allowed as usize).min(MAX_ALLOWED));
    }
    // One second, or the time one request takes at this rate if longer.
    let secs = (1.0 / rps).max(1.0);
    let allowed = (rps * secs + 1e-9).floor().max(1.0) as usize;
    (Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(86_400 * 365)), allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn windows_follow_the_rate() {
        let table: [(f64, u64, usize); 9] = [
            (1000.0, 100, 100),
            (100.0, 100, 10),
            (99.0, 100, 9),
            (10.0, 100, 1),
            (5.0, 1000, 5),
            (1.0, 1000, 1),
            (0.5, 2000, 1),
            (1.0 / 3.0, 3000, 1),
            (1e6, 100, 100_000),
        ];
        for (rps, window_ms, allowed) in table {
            let cap = SendCap::new(rps);
            let (a, w) = cap.window();
            assert_eq!((a, w.as_millis() as u64), (allowed, window_ms), "{rps}");
        }
        for odd in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY, f64::INFINITY] {
            assert_eq!(SendCap::new(odd).window().0, 0, "{odd}");
        }
        assert_eq!(SendCap::new(f64::MIN_POSITIVE).window().0, 1);
    }

    /// However requests are offered, no window of the cap's length holds
    /// more than it allows.
    fn most_in_any_window(times: &[Instant], window: Duration) -> usize {
        (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + window).count()).max().unwrap_or(0)
    }

    #[test]
    fn a_burst_is_held_to_the_window_whatever_is_offered() {
        let t0 = Instant::now();
        let mut cap = SendCap::new(100.0);
        let mut sent = Vec::new();
        // 1 000 requests offered in 100 ms, then one every 0.1 ms for 2 s.
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            if cap.try_take(now) {
                sent.push(now);
            }
        }
        for i in 0..20_000u64 {
            let now = t0 + ms(100) + Duration::from_micros(i * 100);
            if cap.try_take(now) {
                sent.push(now);
            }
        }
        assert_eq!(most_in_any_window(&sent, ms(100)), 10);
        assert!(most_in_any_window(&sent, ms(1000)) <= 100);
        // It is a cap, not a brake: over 2.1 s it let through what it allows.
        assert!((200..=210).contains(&sent.len()), "{}", sent.len());
    }

    #[test]
    fn free_at_says_when_room_comes_back() {
        let t0 = Instant::now();
        let mut cap = SendCap::new(20.0);
        assert_eq!(cap.free_at(t0), None);
        assert!(cap.try_take(t0));
        assert!(cap.try_take(t0 + ms(10)));
        assert_eq!(cap.free_at(t0 + ms(20)), Some(t0 + ms(100)));
        assert!(!cap.try_take(t0 + ms(99)));
        assert!(cap.try_take(t0 + ms(100)));
        assert_eq!(cap.free_at(t0 + ms(100)), Some(t0 + ms(110)));
    }

    #[test]
    fn slow_caps_space_single_requests() {
        let t0 = Instant::now();
        let mut cap = SendCap::new(0.5);
        assert!(cap.try_take(t0));
        assert!(!cap.try_take(t0 + ms(1999)));
        assert!(cap.try_take(t0 + ms(2000)));
    }

    #[test]
    fn a_lower_cap_keeps_what_was_sent() {
        let t0 = Instant::now();
        let mut cap = SendCap::new(300.0);
        for i in 0..30 {
            assert!(cap.try_take(t0 + ms(i)));
        }
        // Three replicas now share the cap: 100/s each, 10 per 100 ms.
        cap.set_rate(100.0);
        assert!(!cap.try_take(t0 + ms(50)), "the window is full already");
        assert!(cap.try_take(t0 + ms(120)));
        let mut stopped = SendCap::new(0.0);
        assert!(!stopped.try_take(t0));
        assert!(stopped.free_at(t0).is_some());
    }
}
