//! The rate schedule and the pacer that turns it into send times.
//!
//! Both are pure: no clock, no I/O. Times are seconds since the plan's
//! anchor (the instant it was applied), so tests are tables, not sleeps.
//!
//! Send times are absolute (`anchor + f(i)`), never "sleep 1/rps after the
//! last send": errors do not accumulate, and the long-run rate is exact.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use super::stages::{Ragged, Stages};

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

/// A request rate over time: a constant, or stages (ramps and holds, see
/// [`Stages`]) perhaps made ragged by pauses (see [`Ragged`]). Each gives
/// its rate, its integral and the inverse; the pacer needs nothing else.
#[derive(Debug, Clone, PartialEq)]
pub enum RateSchedule {
    /// The same rate for ever.
    Constant { rps: f64 },
    /// Linear stages, then their last rate held.
    Staged(Box<Staged>),
}

/// Stages on a clock that may pause: schedule time stands still during a
/// pause, so the count due by wall time `w` is the stages' position at
/// the schedule time of `w`.
#[derive(Debug, Clone, PartialEq)]
pub struct Staged {
    stages: Stages,
    /// A cursor into the pauses; `Cell` because answering moves it (it is
    /// a cache: every answer is a pure function of the seed).
    ragged: Option<Cell<Ragged>>,
}

impl RateSchedule {
    /// A constant rate; anything but a finite positive rate is silence
    /// (there is no meaningful schedule for NaN or infinity).
    pub fn constant(rps: f64) -> Self {
        let rps = if rps.is_finite() && rps > 0.0 { rps } else { 0.0 };
        RateSchedule::Constant { rps }
    }

    /// `stages` played from the anchor, paused by `ragged` if given.
    pub fn staged(stages: Stages, ragged: Option<Ragged>) -> Self {
        RateSchedule::Staged(Box::new(Staged { stages, ragged: ragged.map(Cell::new) }))
    }

    /// Requests per second at `t` seconds after the anchor (0 in a pause).
    pub fn rate_at(&self, t: f64) -> f64 {
        match self {
            RateSchedule::Constant { rps } => *rps,
            RateSchedule::Staged(staged) => match staged.schedule_time(t) {
                Some((_, true)) | None => 0.0,
                Some((s, false)) => staged.stages.rate_at(s),
            },
        }
    }

    /// How many requests are due by `t`: the integral of the rate from 0.
    pub fn position_at(&self, t: f64) -> f64 {
        match self {
            RateSchedule::Constant { rps } => rps * t.max(0.0),
            RateSchedule::Staged(staged) => match staged.schedule_time(t) {
                Some((s, _)) => staged.stages.position_at(s),
                // Beyond the pauses' horizon: as if it had never paused.
                None => staged.stages.position_at(t),
            },
        }
    }

    /// When the schedule reaches `position` requests; `None` if it never
    /// does (or only beyond any representable time).
    pub fn time_of(&self, position: f64) -> Option<f64> {
        let position = position.max(0.0);
        let time = match self {
            RateSchedule::Constant { rps } if *rps > 0.0 => position / rps,
            RateSchedule::Constant { .. } => return None,
            RateSchedule::Staged(staged) => {
                let s = staged.stages.time_of(position)?;
                match &staged.ragged {
                    Some(cell) => {
                        let mut ragged = cell.get();
                        let wall = ragged.wall_time(s);
                        cell.set(ragged);
                        wall?
                    }
                    None => s,
                }
            }
        };
        time.is_finite().then_some(time)
    }

    /// True when the schedule will never send anything.
    pub fn is_silent(&self) -> bool {
        match self {
            RateSchedule::Constant { rps } => *rps <= 0.0,
            RateSchedule::Staged(staged) => staged.stages.is_silent(),
        }
    }

    /// A time `t` seconds after the anchor, moved back by whole periods of
    /// `stride` slots where the schedule repeats (a constant rate does), so
    /// that slot arithmetic stays exact however old the anchor is (the Unix
    /// epoch, for replicas that agreed on nothing else): slot `g` becomes
    /// `g - k·stride`, which a pacer owning every `stride`-th slot owns
    /// just the same. A schedule that does not repeat keeps `t`.
    pub fn fold(&self, t: f64, stride: u64) -> f64 {
        match self {
            RateSchedule::Constant { rps } => {
                let period = stride.max(1) as f64 / rps;
                if !(period.is_finite() && period > 0.0 && t.is_finite() && t > period) {
                    return t;
                }
                (t - (t / period).floor() * period).max(0.0)
            }
            RateSchedule::Staged(_) => t,
        }
    }
}

impl Staged {
    /// Schedule time at wall time `w`, and whether a pause is on then;
    /// `None` beyond the pauses' horizon.
    fn schedule_time(&self, w: f64) -> Option<(f64, bool)> {
        let Some(cell) = &self.ragged else { return Some((w, false)) };
        let mut ragged = cell.get();
        let answer = ragged.schedule_time(w).map(|s| {
            let paused = ragged.wall_time(s).is_some_and(|start| start < w - 1e-9);
            (s, paused)
        });
        cell.set(ragged);
        answer
    }
}

/// How late a plan may be taken up and still have its missed slots sent
/// (as a late engine sends them, see `MAX_LATENESS` in the worker): a
/// replica hears of a switch a message's delay after it began.
pub const CATCH_UP_SECS: f64 = 0.25;

/// How far ahead an agreed anchor may lie: a peer's clock a little ahead
/// delays this replica's share at most this much.
pub const MAX_WAIT_SECS: f64 = 1.0;

/// Where a pacer takes up a schedule when it starts following a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pickup {
    /// Schedule time (seconds after the anchor, perhaps folded) at the
    /// moment following starts.
    pub elapsed: f64,
    /// Slots due before this schedule time are never sent (nor counted as
    /// dropped): they fell due before this process could know of them, or
    /// another replica sent them.
    pub skip_before: Option<f64>,
}

/// Where to take up `schedule`, shared in `stride` parts, when its anchor
/// was `since_anchor` seconds ago (`None`: the plan starts now).
///
/// A plan that began within [`CATCH_UP_SECS`] is caught up from its start;
/// an older one (a replica joining, a new share of a running plan, the
/// epoch anchor) is taken up at the present slot, so no slot another
/// replica already sent is sent again.
pub fn pickup(schedule: &RateSchedule, since_anchor: Option<f64>, stride: u64) -> Pickup {
    match since_anchor {
        Some(since) if since.is_nan() => Pickup { elapsed: 0.0, skip_before: None },
        None => Pickup { elapsed: 0.0, skip_before: None },
        Some(since) if since <= CATCH_UP_SECS => Pickup { elapsed: since.max(-MAX_WAIT_SECS), skip_before: None },
        Some(since) => {
            let elapsed = schedule.fold(since, stride);
            Pickup { elapsed, skip_before: Some(elapsed) }
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
                let mut p = Pacer::sharded(schedule.clone(), 0.0, 4, k, &mut r);
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

    /// The send times of shares `0..count` of `rps`, each taken up at
    /// `since` seconds after a common anchor, over the next `secs`, in
    /// seconds from the moment they were taken up.
    fn shares_taken_up(rps: f64, count: u64, since: f64, secs: f64) -> Vec<f64> {
        let mut r = rng();
        let schedule = RateSchedule::constant(rps);
        let mut all = Vec::new();
        for index in 0..count {
            let pickup = pickup(&schedule, Some(since), count);
            let mut pacer = Pacer::sharded(schedule.clone(), 0.0, count, index, &mut r);
            if let Some(before) = pickup.skip_before {
                pacer.skip_before(before, &mut r);
            }
            while let Some(t) = pacer.pop_due(pickup.elapsed + secs, &mut r) {
                all.push(t - pickup.elapsed);
            }
        }
        all.sort_by(f64::total_cmp);
        all
    }

    /// Every send from now on, once, evenly: `n` (or `n + 1` when the
    /// window's two ends both fall on a slot) with gaps of `1/rps`.
    fn assert_whole_schedule(times: &[f64], rps: f64, n: usize) {
        assert!(times.len() == n || times.len() == n + 1, "{} sends, want {n}", times.len());
        assert!(times[0] >= -1e-9, "a past slot was sent: {}", times[0]);
        for pair in times.windows(2) {
            assert!((pair[1] - pair[0] - 1.0 / rps).abs() < 1e-3 / rps, "uneven gap {pair:?}");
        }
    }

    #[test]
    fn shares_taken_up_late_interleave_into_the_whole_schedule_from_now_on() {
        // Three replicas at 300/s, anchored 1 000.01 s ago: together they
        // send every slot from now on, each once, none of the past.
        assert_whole_schedule(&shares_taken_up(300.0, 3, 1000.01, 1.0), 300.0, 300);
        assert_whole_schedule(&shares_taken_up(30.0, 2, 7.3, 2.0), 30.0, 60);
    }

    #[test]
    fn an_anchor_at_the_epoch_folds_to_a_recent_time_on_the_same_grid() {
        let since = 1.8e9 + 0.123_456; // about 2027, in seconds since 1970
        let schedule = RateSchedule::constant(300.0);
        let folded = schedule.fold(since, 3);
        assert!((0.0..0.01 + 1e-9).contains(&folded), "folded to {folded}");
        // Slot times are whole multiples of 1/300 s after the epoch, before
        // and after folding (to well under a microsecond).
        let phase = |t: f64| (t * 300.0 - (t * 300.0).round()).abs() / 300.0;
        assert!((phase(since) - phase(folded)).abs() < 1e-6);
        assert_whole_schedule(&shares_taken_up(300.0, 3, since, 1.0), 300.0, 300);
        // At 1 000 000/s too: folding keeps the slot arithmetic exact.
        assert_whole_schedule(&shares_taken_up(1e6, 3, since, 0.001), 1e6, 1000);
    }

    #[test]
    fn a_plan_that_just_began_is_caught_up_and_a_new_one_starts_at_once() {
        let schedule = RateSchedule::constant(100.0);
        assert_eq!(pickup(&schedule, None, 3), Pickup { elapsed: 0.0, skip_before: None });
        // Heard of 20 ms late: the slots of those 20 ms are still sent.
        assert_eq!(pickup(&schedule, Some(0.02), 3), Pickup { elapsed: 0.02, skip_before: None });
        // An anchor ahead (a peer's clock) waits, at most a second.
        assert_eq!(pickup(&schedule, Some(-0.3), 3).elapsed, -0.3);
        assert_eq!(pickup(&schedule, Some(-3600.0), 3).elapsed, -MAX_WAIT_SECS);
        assert_eq!(pickup(&schedule, Some(f64::NAN), 3), Pickup { elapsed: 0.0, skip_before: None });
        // Older: from the present slot on.
        let late = pickup(&schedule, Some(5.0), 3);
        assert_eq!(late.skip_before, Some(late.elapsed));
    }

    #[test]
    fn folding_leaves_what_it_cannot_fold() {
        let schedule = RateSchedule::constant(0.0);
        assert_eq!(schedule.fold(1e9, 3), 1e9);
        let slow = RateSchedule::constant(MIN_DAILY);
        assert_eq!(slow.fold(10.0, 3), 10.0, "within the first period");
        assert!(RateSchedule::constant(1e-300).fold(f64::MAX, 7).is_finite());
        assert_eq!(RateSchedule::constant(5.0).fold(f64::INFINITY, 2), f64::INFINITY);
    }

    const MIN_DAILY: f64 = 1.0 / 86_400.0;

    #[test]
    fn sharded_skip_keeps_the_pacer_on_its_own_slots() {
        let mut r = rng();
        let mut pacer = Pacer::sharded(RateSchedule::constant(100.0), 0.0, 3, 2, &mut r);
        let skipped = pacer.skip_before(1.0, &mut r);
        // Own slots below position 100: 2, 5, …, 98 → 33 of them.
        assert_eq!(skipped, 33);
        assert_eq!(pacer.next_send_time(), Some(1.01));
    }

    #[test]
    fn a_peak_sends_the_integral_of_its_rate_half_of_max_in_its_first_quarter() {
        use crate::base::shape::Stage;
        let mut r = rng();
        let peak = [Stage::ramp(10.0, 0.0, 50.0), Stage::ramp(20.0, 50.0, 50.0), Stage::ramp(10.0, 50.0, 0.0)];
        let stages = Stages::new(&peak, 0.0);
        let mut pacer = Pacer::new(RateSchedule::staged(stages, None), 0.2, &mut r);
        let times = send_times(&mut pacer, 100.0, &mut r);
        // 3/4 of 50 req/s over 40 s, and nothing after the end.
        assert!((times.len() as f64 - 1500.0).abs() <= 1.0, "{}", times.len());
        assert!(times.iter().all(|t| *t <= 40.0));
        let first_quarter = times.iter().filter(|t| **t < 10.0).count() as f64;
        assert!((first_quarter - 250.0).abs() <= 1.0, "{first_quarter}");
        assert_eq!(pacer.next_send_time(), None);
    }

    #[test]
    fn ragged_pauses_leave_gaps_and_lose_no_request() {
        let mut r = rng();
        let stages = Stages::new(&[crate::base::shape::Stage::ramp(20.0, 100.0, 100.0)], 0.0);
        let ragged = Ragged::new((0.1, 0.5), (0.5, 2.0), 7);
        let schedule = RateSchedule::staged(stages, Some(ragged));
        let mut pacer = Pacer::new(schedule.clone(), 0.0, &mut r);
        let times = send_times(&mut pacer, 1000.0, &mut r);
        assert!((times.len() as f64 - 2000.0).abs() <= 1.0, "{}", times.len());
        let pauses = times.windows(2).filter(|w| w[1] - w[0] >= 0.099).count();
        // About one pause per 1.25 s of activity over 20 s of it.
        assert!((6..=40).contains(&pauses), "{pauses} pauses");
        let last = times.last().copied().unwrap_or_default();
        assert!(last > 20.5, "the pauses push the end back: {last}");
        // No rate is scheduled during a pause; the count follows the integral.
        assert!((schedule.position_at(last) - times.len() as f64).abs() <= 1.0);
    }
}
