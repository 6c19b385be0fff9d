//! The rate schedule and the pacer that turns it into send times.
//!
//! Both are pure: no clock, no I/O. Times are seconds since the plan's
//! anchor (the instant it was applied), so tests are tables, not sleeps.
//!
//! Send times are absolute (`anchor + f(i)`), never "sleep 1/rps after the
//! last send": errors do not accumulate, and the long-run rate is exact.

use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

/// The instant `secs` seconds after `anchor`, or `None` when that is beyond
/// what the clock can represent (or not a time at all). A user's rate
/// reaches the clock through here: `Duration::from_secs_f64` and
/// `Instant + Duration` both panic on values too large, so this saturates to
/// "never" instead.
pub fn send_instant(anchor: Instant, secs: f64) -> Option<Instant> {
    if secs.is_nan() {
        return None;
    }
    let offset = Duration::try_from_secs_f64(secs.max(0.0)).ok()?;
    anchor.checked_add(offset)
}

/// A request rate over time. A constant today; ramps and stages slot in
/// here as more variants, each giving its rate, its integral and the inverse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSchedule {
    /// The same rate for ever.
    Constant { rps: f64 },
}

impl RateSchedule {
    /// A constant rate; anything but a finite positive rate is silence
    /// (there is no meaningful schedule for NaN or infinity).
    pub fn constant(rps: f64) -> Self {
        let rps = if rps.is_finite() && rps > 0.0 { rps } else { 0.0 };
        RateSchedule::Constant { rps }
    }

    /// Requests per second at `t` seconds after the anchor.
    pub fn rate_at(&self, _t: f64) -> f64 {
        match *self {
            RateSchedule::Constant { rps } => rps,
        }
    }

    /// How many requests are due by `t`: the integral of the rate from 0.
    pub fn position_at(&self, t: f64) -> f64 {
        match *self {
            RateSchedule::Constant { rps } => rps * t.max(0.0),
        }
    }

    /// When the schedule reaches `position` requests; `None` if it never
    /// does (or only beyond any representable time).
    pub fn time_of(&self, position: f64) -> Option<f64> {
        let position = position.max(0.0);
        let time = match *self {
            RateSchedule::Constant { rps } if rps > 0.0 => position / rps,
            RateSchedule::Constant { .. } => return None,
        };
        time.is_finite().then_some(time)
    }

    /// True when the schedule will never send anything.
    pub fn is_silent(&self) -> bool {
        match *self {
            RateSchedule::Constant { rps } => rps <= 0.0,
        }
    }
}

/// Walks the slots of a schedule: slot `g` (global index) is due when the
/// schedule's position reaches `g + δ`, with `δ` uniform in ±jitter/2.
///
/// Jitter displaces each send time within its own slot instead of adding a
/// random gap to the previous send: every gap still varies by up to ±jitter
/// of `1/rps`, but the count sent never drifts more than one request from the
/// schedule (a random walk of gaps would drift by √n).
///
/// A pacer may own every `stride`-th slot starting at `offset`, so several
/// workers can share one schedule and still interleave evenly.
#[derive(Debug, Clone)]
pub struct Pacer {
    schedule: RateSchedule,
    jitter: f64,
    stride: u64,
    /// Global index of the next slot this pacer owns.
    next_slot: u64,
    /// Send time of `next_slot`, `None` once the schedule never reaches it.
    next_time: Option<f64>,
}

impl Pacer {
    /// A pacer owning every slot of `schedule`; slot 0 is due at once.
    pub fn new(schedule: RateSchedule, jitter: f64, rng: &mut impl Rng) -> Self {
        Self::sharded(schedule, jitter, 1, 0, rng)
    }

    /// A pacer owning slots `offset, offset + stride, …`.
    pub fn sharded(schedule: RateSchedule, jitter: f64, stride: u64, offset: u64, rng: &mut impl Rng) -> Self {
        let mut pacer = Pacer {
            schedule,
            jitter: if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0) },
            stride: stride.max(1),
            next_slot: offset,
            next_time: None,
        };
        pacer.next_time = pacer.slot_time(offset, rng);
        pacer
    }

    /// The rate of this pacer's own slots at `t`, requests per second.
    pub fn rate_at(&self, t: f64) -> f64 {
        self.schedule.rate_at(t) / self.stride as f64
    }

    /// How many requests one turn of the engine may send, when it sends
    /// those due within `window` at `rate`: the window's share twice over,
    /// and at least a handful. A turn that wakes behind schedule (the thread
    /// was kept off the CPU for a few milliseconds) then catches up at twice
    /// the rate, with answers read between turns, instead of sending the
    /// whole backlog at once: at 30 000 req/s a 10 ms stall is 300 requests,
    /// and sent together each would need a connection of its own.
    pub fn turn_limit(rate: f64, window: f64) -> usize {
        const MIN_PER_TURN: f64 = 8.0;
        const CATCH_UP: f64 = 2.0;
        let limit = (rate * window * CATCH_UP).ceil();
        if limit.is_finite() { limit.clamp(MIN_PER_TURN, 1_000_000.0) as usize } else { MIN_PER_TURN as usize }
    }

    /// The time the next request is due, `None` if none ever is.
    pub fn next_send_time(&self) -> Option<f64> {
        self.next_time
    }

    /// Takes the next slot if it is due at or before `now`; returns its
    /// intended send time.
    pub fn pop_due(&mut self, now: f64, rng: &mut impl Rng) -> Option<f64> {
        let due = self.next_time.filter(|&t| t <= now)?;
        self.next_slot = self.next_slot.saturating_add(self.stride);
        self.next_time = self.slot_time(self.next_slot, rng);
        Some(due)
    }

    /// Gives up the slots that fell due before `cutoff` (the loop was starved
    /// and woke far behind): sending them now would be a burst the schedule
    /// never asked for. Returns how many were skipped.
    pub fn skip_before(&mut self, cutoff: f64, rng: &mut impl Rng) -> u64 {
        match self.next_time {
            Some(t) if t < cutoff => {}
            _ => return 0,
        }
        // Jump straight to the first slot at or after the cutoff's position;
        // a long stall at a high rate must not cost a loop per missed slot.
        // (`as` saturates: a position beyond u64 becomes u64::MAX.)
        let position = self.schedule.position_at(cutoff).ceil() as u64;
        let offset = self.next_slot % self.stride;
        let mut slot =
            position.saturating_sub(offset).div_ceil(self.stride).saturating_mul(self.stride).saturating_add(offset);
        slot = slot.max(self.next_slot);
        let mut time = self.slot_time(slot, rng);
        // Jitter (at most half a slot) can put the slot at the position just
        // before the cutoff, so one more step always clears it; the bound
        // only matters where f64 can no longer tell slots apart.
        for _ in 0..4 {
            if !matches!(time, Some(t) if t < cutoff) {
                break;
            }
            slot = slot.saturating_add(self.stride);
            time = self.slot_time(slot, rng);
        }
        let skipped = (slot - self.next_slot) / self.stride;
        self.next_slot = slot;
        self.next_time = time;
        skipped
    }

    fn slot_time(&self, slot: u64, rng: &mut impl Rng) -> Option<f64> {
        // Slot 0 goes at the anchor: a mode switch shows at the target at once.
        let displacement = if slot == 0 || self.jitter == 0.0 {
            0.0
        } else {
            let half = self.jitter / 2.0;
            rng.random_range(-half..=half)
        };
        self.schedule.time_of(slot as f64 + displacement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::SmallRng};

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    /// Every send time up to `horizon` seconds.
    fn send_times(pacer: &mut Pacer, horizon: f64, rng: &mut SmallRng) -> Vec<f64> {
        let mut times = Vec::new();
        while let Some(t) = pacer.pop_due(horizon, rng) {
            times.push(t);
        }
        times
    }

    #[test]
    fn constant_schedule_without_jitter_sends_on_an_exact_grid() {
        let mut r = rng();
        let mut pacer = Pacer::new(RateSchedule::constant(4.0), 0.0, &mut r);
        let times = send_times(&mut pacer, 1.0, &mut r);
        assert_eq!(times, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(pacer.next_send_time(), Some(1.25));
    }

    #[test]
    fn a_turn_sends_twice_the_window_share_and_at_least_a_handful() {
        assert_eq!(Pacer::turn_limit(30_000.0, 0.001), 60);
        assert_eq!(Pacer::turn_limit(1_000.0, 0.001), 8);
        assert_eq!(Pacer::turn_limit(0.0, 0.001), 8);
        assert_eq!(Pacer::turn_limit(f64::INFINITY, 0.001), 8);
        // Normal turns are never cut short: the limit covers the window.
        for rate in [0.1, 2.0, 999.0, 10_000.0, 55_000.0, 100_000.0] {
            assert!(Pacer::turn_limit(rate, 0.001) as f64 >= rate * 0.001 + 1.0, "rate {rate}");
        }
    }

    #[test]
    fn a_sharded_pacer_has_its_share_of_the_rate() {
        let mut r = rng();
        let pacer = Pacer::sharded(RateSchedule::constant(900.0), 0.0, 3, 1, &mut r);
        assert_eq!(pacer.rate_at(5.0), 300.0);
    }

    #[test]
    fn nothing_is_popped_before_it_is_due() {
        let mut r = rng();
        let mut pacer = Pacer::new(RateSchedule::constant(2.0), 0.0, &mut r);
        assert_eq!(pacer.pop_due(0.0, &mut r), Some(0.0));
        assert_eq!(pacer.pop_due(0.49, &mut r), None);
        assert_eq!(pacer.pop_due(0.5, &mut r), Some(0.5));
    }

    #[test]
    fn counts_stay_within_one_request_of_the_schedule_at_every_rate() {
        for &(rps, secs) in &[(0.1, 600.0), (2.0, 30.0), (20.0, 10.0), (1000.0, 10.0), (55_000.0, 2.0)] {
            let mut r = rng();
            let mut pacer = Pacer::new(RateSchedule::constant(rps), 0.2, &mut r);
            // Check the count at many points, not only at the end.
            let mut sent = 0u64;
            for step in 1..=100 {
                let t = secs * f64::from(step) / 100.0;
                while pacer.pop_due(t, &mut r).is_some() {
                    sent += 1;
                }
                let expected = rps * t;
                assert!(
                    (sent as f64 - expected).abs() <= 1.5,
                    "rps {rps} at t={t}: sent {sent}, schedule says {expected}"
                );
            }
        }
    }

    #[test]
    fn jitter_keeps_every_gap_within_its_bound_and_varies_them() {
        let mut r = rng();
        let jitter = 0.2;
        let mut pacer = Pacer::new(RateSchedule::constant(10.0), jitter, &mut r);
        let times = send_times(&mut pacer, 100.0, &mut r);
        let gaps: Vec<f64> = times.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
        let (lo, hi) = (0.1 * (1.0 - jitter) - 1e-9, 0.1 * (1.0 + jitter) + 1e-9);
        assert!(gaps.iter().all(|&g| g >= lo && g <= hi), "a gap outside [{lo}, {hi}]");
        let min = gaps.iter().cloned().fold(f64::MAX, f64::min);
        let max = gaps.iter().cloned().fold(f64::MIN, f64::max);
        assert!(max - min > 0.02, "jitter should spread the gaps, got {min}..{max}");
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.1).abs() < 0.001, "mean gap {mean}");
    }

    #[test]
    fn a_silent_schedule_sends_nothing_and_has_no_next_time() {
        let mut r = rng();
        let mut pacer = Pacer::new(RateSchedule::constant(0.0), 0.2, &mut r);
        assert_eq!(pacer.next_send_time(), None);
        assert_eq!(pacer.pop_due(1e9, &mut r), None);
        assert!(RateSchedule::constant(0.0).is_silent());
    }

    #[test]
    fn a_slow_rate_sends_at_once_then_waits_its_gap() {
        let mut r = rng();
        let mut pacer = Pacer::new(RateSchedule::constant(0.1), 0.0, &mut r);
        assert_eq!(pacer.pop_due(0.0, &mut r), Some(0.0));
        assert_eq!(pacer.next_send_time(), Some(10.0));
    }

    #[test]
    fn skipping_jumps_past_missed_slots_and_counts_them() {
        let mut r = rng();
        let mut pacer = Pacer::new(RateSchedule::constant(1000.0), 0.2, &mut r);
        assert_eq!(pacer.pop_due(0.0, &mut r), Some(0.0));
        // Starved for 5 s: slots 1..4999 (about) are given up, none are sent.
        let skipped = pacer.skip_before(5.0, &mut r);
        assert!((4998..=5000).contains(&skipped), "skipped {skipped}");
        let next = pacer.next_send_time().expect("schedule continues");
        assert!((5.0..5.002).contains(&next), "next {next}");
        assert_eq!(pacer.skip_before(5.0, &mut r), 0);
    }

    #[test]
    fn sharded_pacers_interleave_into_one_even_stream() {
        let mut r = rng();
        let schedule = RateSchedule::constant(8.0);
        let mut all: Vec<f64> = (0..4)
            .flat_map(|k| {
                let mut p = Pacer::sharded(schedule, 0.0, 4, k, &mut r);
                send_times(&mut p, 1.0, &mut r)
            })
            .collect();
        all.sort_by(f64::total_cmp);
        let expected: Vec<f64> = (0..=8).map(|i| f64::from(i) / 8.0).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn send_times_beyond_the_clock_are_never_and_no_panic() {
        let anchor = Instant::now();
        assert_eq!(send_instant(anchor, 1.5), Some(anchor + Duration::from_millis(1500)));
        assert_eq!(send_instant(anchor, -3.0), Some(anchor), "a past time is now");
        for never in [1e20, 1e300, f64::MAX, f64::INFINITY, f64::NAN] {
            assert_eq!(send_instant(anchor, never), None, "{never}");
        }
    }

    #[test]
    fn a_rate_whose_gap_overflows_sends_once_and_then_never() {
        let mut r = rng();
        let mut pacer = Pacer::new(RateSchedule::constant(1e-300), 0.2, &mut r);
        assert_eq!(pacer.pop_due(0.0, &mut r), Some(0.0));
        let next = pacer.next_send_time().expect("a time, however far");
        assert_eq!(send_instant(Instant::now(), next), None, "beyond the clock: never");
        assert_eq!(pacer.pop_due(1e9, &mut r), None);
        assert!(pacer.skip_before(f64::MAX, &mut r) > 0);
    }

    #[test]
    fn rates_that_are_not_rates_are_silence() {
        for rps in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
            assert!(RateSchedule::constant(rps).is_silent(), "{rps}");
        }
    }

    #[test]
    fn skipping_at_an_absurd_rate_or_cutoff_terminates() {
        let mut r = rng();
        let mut pacer = Pacer::sharded(RateSchedule::constant(f64::MAX), 1.0, 3, 2, &mut r);
        pacer.skip_before(f64::MAX, &mut r);
        pacer.skip_before(1e300, &mut r);
        let mut pacer = Pacer::new(RateSchedule::constant(1e6), f64::NAN, &mut r);
        pacer.skip_before(1e30, &mut r);
        assert!(pacer.pop_due(f64::INFINITY, &mut r).is_some());
    }

    #[test]
    fn sharded_skip_keeps_the_pacer_on_its_own_slots() {
        let mut r = rng();
        let mut pacer = Pacer::sharded(RateSchedule::constant(100.0), 0.0, 3, 2, &mut r);
        let skipped = pacer.skip_before(1.0, &mut r);
        // Own slots below position 100: 2, 5, …, 98 → 33 of them.
        assert_eq!(skipped, 33);
        assert_eq!(pacer.next_send_time(), Some(1.01));
    }
}
