//! Staged rate schedules and ragged pauses: the shapes a job or a timed
//! mode plays through the pacer.
//!
//! [`Stages`] is a list of linear [`Stage`]s (ramps and holds) followed by a
//! rate held for ever (0 for a job, which ends with its stages; the new rate
//! for a ramped `custom` mode). It answers the three questions the pacer
//! asks of any schedule — the rate at `t`, the count due by `t` (the
//! integral of the rate) and the inverse, when the count reaches `n` — so it
//! slots into [`super::schedule::RateSchedule`] as one more variant.
//!
//! [`Ragged`] is latency degradation's clock: it inserts random pauses
//! between active stretches. The schedule runs on its own time, which stands
//! still during a pause, so the count sent stays within one request of the
//! integral of the rate over the time that was not paused.
//!
//! Both are pure: no clock, no I/O; any `f64` is accepted without a panic.

use crate::base::shape::Stage;

/// A stage longer than this (about 115 days) is cut to it: no job or timed
/// mode comes near, and it keeps every sum far from overflowing.
const MAX_STAGE_SECS: f64 = 1e7;
/// Rates above this are cut to it (the configuration allows 10^6).
const MAX_STAGE_RPS: f64 = 1e9;

/// A stage placed on the timeline: where it starts, in time and in count.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Placed {
    start: f64,
    secs: f64,
    from_rps: f64,
    to_rps: f64,
    /// Requests due before the stage starts.
    start_position: f64,
}

impl Placed {
    fn end(&self) -> f64 {
        self.start + self.secs
    }

    fn requests(&self) -> f64 {
        self.secs * (self.from_rps + self.to_rps) / 2.0
    }

    fn end_position(&self) -> f64 {
        self.start_position + self.requests()
    }

    /// Rate change per second within the stage.
    fn slope(&self) -> f64 {
        (self.to_rps - self.from_rps) / self.secs
    }

    /// Requests due `s` seconds into the stage (`0 ≤ s ≤ secs`).
    fn position_into(&self, s: f64) -> f64 {
        self.start_position + self.from_rps * s + self.slope() * s * s / 2.0
    }

    /// Seconds into the stage at which `n` more requests (beyond its start)
    /// are due: the root of `slope/2·s² + from·s − n = 0`, written as
    /// `2n / (from + √(from² + 2·slope·n))`, which stays exact when the slope
    /// is tiny or the stage starts from 0 (the usual form cancels).
    fn time_into(&self, n: f64) -> f64 {
        if n <= 0.0 {
            return 0.0;
        }
        let discriminant = (self.from_rps * self.from_rps + 2.0 * self.slope() * n).max(0.0);
        let denominator = self.from_rps + discriminant.sqrt();
        if denominator > 0.0 { (2.0 * n / denominator).clamp(0.0, self.secs) } else { self.secs }
    }
}

/// A list of linear rate stages, then `after_rps` for ever.
#[derive(Debug, Clone, PartialEq)]
pub struct Stages {
    placed: Vec<Placed>,
    after_rps: f64,
    /// Where the stages end, in seconds and in requests.
    end: f64,
    total: f64,
}

impl Stages {
    /// Stages played in order from the anchor, then `after_rps` held.
    /// Stages without length are left out; a length or rate that is not a
    /// finite non-negative number counts as 0, and lengths and rates are cut
    /// to bounds far beyond any job, so no input can make a sum overflow.
    pub fn new(stages: &[Stage], after_rps: f64) -> Stages {
        let mut placed = Vec::with_capacity(stages.len());
        let (mut start, mut start_position) = (0.0, 0.0);
        for stage in stages {
            let secs = bounded(stage.secs, MAX_STAGE_SECS);
            if secs <= 0.0 {
                continue;
            }
            let stage = Placed {
                start,
                secs,
                from_rps: bounded(stage.from_rps, MAX_STAGE_RPS),
                to_rps: bounded(stage.to_rps, MAX_STAGE_RPS),
                start_position,
            };
            start = stage.end();
            start_position = stage.end_position();
            placed.push(stage);
        }
        Stages { placed, after_rps: bounded(after_rps, MAX_STAGE_RPS), end: start, total: start_position }
    }

    /// A linear ramp from `from_rps` to `to_rps` over `secs`, then `to_rps`
    /// held: `POST /mode/custom {"rps": …, "ramp_secs": …}`.
    pub fn ramp_then_hold(secs: f64, from_rps: f64, to_rps: f64) -> Stages {
        Stages::new(&[Stage::ramp(secs, from_rps, to_rps)], to_rps)
    }

    /// When the stages end, in seconds from the anchor (0 if there are none).
    pub fn end(&self) -> f64 {
        self.end
    }

    /// Requests due over the stages (not counting the rate held after them).
    pub fn total(&self) -> f64 {
        self.total
    }

    /// The rate held after the stages.
    pub fn after_rps(&self) -> f64 {
        self.after_rps
    }

    /// True when nothing will ever be due.
    pub fn is_silent(&self) -> bool {
        self.total <= 0.0 && self.after_rps <= 0.0
    }

    /// Requests per second at `t` seconds after the anchor (a time before
    /// the anchor, or NaN, reads as the anchor).
    pub fn rate_at(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match self.stage_at(t) {
            Some(stage) => stage.from_rps + stage.slope() * (t - stage.start),
            None => self.after_rps,
        }
    }

    /// How many requests are due by `t`: the integral of the rate from 0.
    pub fn position_at(&self, t: f64) -> f64 {
        let t = t.max(0.0);
        match self.stage_at(t) {
            Some(stage) => stage.position_into(t - stage.start).min(stage.end_position()),
            None if t.is_finite() => self.total + self.after_rps * (t - self.end),
            None => {
                if self.after_rps > 0.0 {
                    f64::INFINITY
                } else {
                    self.total
                }
            }
        }
    }

    /// When the schedule reaches `position` requests; `None` if it never
    /// does. Where the rate is 0 for a while, the earliest such time.
    pub fn time_of(&self, position: f64) -> Option<f64> {
        let position = position.max(0.0);
        if position <= self.total && !self.placed.is_empty() {
            // The first stage that ends at or beyond the position holds it.
            let i = self.placed.partition_point(|s| s.end_position() < position).min(self.placed.len() - 1);
            let stage = &self.placed[i];
            return Some(stage.start + stage.time_into(position - stage.start_position));
        }
        if self.after_rps <= 0.0 {
            return None;
        }
        let t = self.end + (position - self.total) / self.after_rps;
        t.is_finite().then_some(t)
    }

    /// The stage `t` falls in (`t ≥ 0`); `None` at or after the end.
    fn stage_at(&self, t: f64) -> Option<&Placed> {
        if t >= self.end || t.is_nan() {
            return None;
        }
        let i = self.placed.partition_point(|s| s.start <= t);
        self.placed.get(i.checked_sub(1)?)
    }
}

fn bounded(x: f64, max: f64) -> f64 {
    if x.is_finite() { x.clamp(0.0, max) } else { 0.0 }
}

/// Latency degradation's clock: active stretches of random length, each
/// followed by a random pause. The schedule runs on *schedule time*, which
/// stands still during a pause; wall time is schedule time plus the pauses
/// before it. A slot due during a pause leaves when it ends, so nothing is
/// skipped or counted as dropped: the count sent by wall time `w` stays
/// within one request of the schedule's position at `schedule_time(w)`, the
/// integral of the rate over the time that was not paused.
///
/// Cycle `k` (its active stretch and pause) is a pure function of the seed
/// and `k`, so the clock can answer for any time in any order (the engine
/// asks about "now" on the wall and about the next slot on the schedule)
/// while holding one cycle, not a list of them: a 24-hour job needs no
/// memory for its tens of thousands of pauses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ragged {
    pause_secs: (f64, f64),
    active_secs: (f64, f64),
    seed: u64,
    /// The cycle the cursor is on.
    cycle: u64,
    /// Schedule time at which its pause begins.
    pause_at: f64,
    /// Total length of the pauses of the cycles before it.
    paused_before: f64,
}

/// The shortest active stretch and pause, and the longest of either: below
/// 0.1 s of activity a "ragged" rate is a stopped one, and the lower bound
/// keeps every walk between cycles short.
const ACTIVE_MIN_SECS: f64 = 0.1;
const PAUSE_MIN_SECS: f64 = 0.001;
const RAGGED_MAX_SECS: f64 = 3600.0;
/// Times further than this (about 11 days, well beyond the 24-hour limit of
/// a job) from the anchor are not answered: walking there would take too long.
pub const RAGGED_HORIZON_SECS: f64 = 1e6;

impl Ragged {
    /// Pauses of `pause_secs` (shortest, longest) after active stretches of
    /// `active_secs`, both uniform, drawn from `seed`; the first active
    /// stretch starts at the anchor.
    pub fn new(pause_secs: (f64, f64), active_secs: (f64, f64), seed: u64) -> Ragged {
        let mut ragged = Ragged {
            pause_secs: span(pause_secs, PAUSE_MIN_SECS),
            active_secs: span(active_secs, ACTIVE_MIN_SECS),
            seed,
            cycle: 0,
            pause_at: 0.0,
            paused_before: 0.0,
        };
        ragged.pause_at = ragged.active(0);
        ragged
    }

    /// Wall time (seconds since the anchor) of schedule time `s`; a slot due
    /// exactly as a pause begins leaves before it. `None` beyond the horizon.
    pub fn wall_time(&mut self, s: f64) -> Option<f64> {
        let s = s.max(0.0);
        if s > RAGGED_HORIZON_SECS || s.is_nan() {
            return None;
        }
        // The first pause that begins at or after `s`.
        while self.pause_at < s {
            self.forward();
        }
        while self.cycle > 0 && self.pause_at - self.active(self.cycle) >= s {
            self.back();
        }
        Some(s + self.paused_before)
    }

    /// Schedule time at wall time `w`: during a pause, the moment it began.
    /// `None` beyond the horizon.
    pub fn schedule_time(&mut self, w: f64) -> Option<f64> {
        let w = w.max(0.0);
        if w > RAGGED_HORIZON_SECS || w.is_nan() {
            return None;
        }
        // The first pause that ends at or after `w`.
        while self.pause_end() < w {
            self.forward();
        }
        while self.cycle > 0 && self.pause_end() - self.pause(self.cycle) - self.active(self.cycle) >= w {
            self.back();
        }
        let pause_begins = self.pause_at + self.paused_before;
        Some(if w >= pause_begins { self.pause_at } else { w - self.paused_before })
    }

    /// Seconds paused in total by wall time `w`.
    pub fn paused_by(&mut self, w: f64) -> Option<f64> {
        let w = w.max(0.0);
        Some(w - self.schedule_time(w)?)
    }

    /// Wall time at which the cursor's pause ends.
    fn pause_end(&self) -> f64 {
        self.pause_at + self.paused_before + self.pause(self.cycle)
    }

    fn forward(&mut self) {
        self.paused_before += self.pause(self.cycle);
        self.cycle += 1;
        self.pause_at += self.active(self.cycle);
    }

    fn back(&mut self) {
        self.pause_at -= self.active(self.cycle);
        self.cycle -= 1;
        self.paused_before = (self.paused_before - self.pause(self.cycle)).max(0.0);
        if self.cycle == 0 {
            // No rounding left over from the walk.
            self.paused_before = 0.0;
            self.pause_at = self.active(0);
        }
    }

    fn active(&self, cycle: u64) -> f64 {
        uniform(self.active_secs, mix(self.seed, cycle.wrapping_mul(2)))
    }

    fn pause(&self, cycle: u64) -> f64 {
        uniform(self.pause_secs, mix(self.seed, cycle.wrapping_mul(2).wrapping_add(1)))
    }
}

/// A (shortest, longest) pair made sane: finite, in bounds, ordered.
fn span((a, b): (f64, f64), min: f64) -> (f64, f64) {
    let fix = |x: f64| if x.is_finite() { x.clamp(min, RAGGED_MAX_SECS) } else { min };
    let (a, b) = (fix(a), fix(b));
    if a <= b { (a, b) } else { (b, a) }
}

/// A point of `[a, b]` picked by the 53 high bits of `bits`.
fn uniform((a, b): (f64, f64), bits: u64) -> f64 {
    let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
    a + (b - a) * unit
}

/// SplitMix64's finaliser over `seed` and `n`: a well-spread 64-bit value
/// for every (seed, n), so cycle `n` needs no state from cycle `n - 1`.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Latency degradation's pattern.
    const PAUSES: (f64, f64) = (0.1, 0.5);
    const ACTIVE: (f64, f64) = (0.5, 2.0);

    /// 0 → max over the first quarter, hold, back to 0 over the last quarter.
    fn peak(secs: f64, max: f64) -> Vec<Stage> {
        let q = secs / 4.0;
        vec![Stage::ramp(q, 0.0, max), Stage::ramp(secs - 2.0 * q, max, max), Stage::ramp(q, max, 0.0)]
    }

    /// 0 → max over `ramp`, then max held to the end.
    fn ramp_hold(secs: f64, max: f64, ramp: f64) -> Vec<Stage> {
        let ramp = ramp.min(secs);
        vec![Stage::ramp(ramp, 0.0, max), Stage::ramp(secs - ramp, max, max)]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    /// Sends slot by slot as the pacer does: slot `g` (after the first, which
    /// goes at the anchor) is due when the position reaches `g + δ`, with
    /// `δ` uniform in ±jitter/2. Returns how many are due by each of `times`.
    fn counts_at(stages: &Stages, jitter: f64, seed: u64, times: &[f64]) -> Vec<u64> {
        let mut sent = 0u64;
        let mut out = Vec::with_capacity(times.len());
        let slot_time = |slot: u64| {
            let displacement = if slot == 0 { 0.0 } else { (uniform((0.0, 1.0), mix(seed, slot)) - 0.5) * jitter };
            stages.time_of(slot as f64 + displacement)
        };
        let mut next = slot_time(0);
        for &t in times {
            while let Some(due) = next.filter(|&d| d <= t) {
                let _ = due;
                sent += 1;
                next = slot_time(sent);
            }
            out.push(sent);
        }
        out
    }

    #[test]
    fn a_ramp_has_the_integral_of_its_rate_and_the_inverse() {
        // 0 → 10 req/s over 10 s: position t²/2, 50 requests in all.
        let ramp = Stages::new(&[Stage::ramp(10.0, 0.0, 10.0)], 0.0);
        let table = [(0.0, 0.0, 0.0), (2.0, 2.0, 2.0), (5.0, 5.0, 12.5), (10.0, 0.0, 50.0), (20.0, 0.0, 50.0)];
        for (t, rate, position) in table {
            assert!(close(ramp.rate_at(t), rate), "rate at {t}: {}", ramp.rate_at(t));
            assert!(close(ramp.position_at(t), position), "position at {t}: {}", ramp.position_at(t));
        }
        for (position, t) in [(0.0, 0.0), (2.0, 2.0), (12.5, 5.0), (50.0, 10.0)] {
            assert!(close(ramp.time_of(position).unwrap(), t), "time of {position}");
        }
        assert_eq!(ramp.time_of(50.001), None, "a job ends with its stages");
        assert_eq!((ramp.end(), ramp.total()), (10.0, 50.0));
    }

    #[test]
    fn a_ramp_down_and_a_ramp_then_hold() {
        // 10 → 0 over 10 s: position 10t − t²/2.
        let down = Stages::new(&[Stage::ramp(10.0, 10.0, 0.0)], 0.0);
        assert!(close(down.position_at(4.0), 32.0));
        assert!(close(down.time_of(32.0).unwrap(), 4.0));
        assert!(close(down.time_of(50.0).unwrap(), 10.0));
        // `custom` from 100 to 500 over 30 s, then 500 for ever.
        let custom = Stages::ramp_then_hold(30.0, 100.0, 500.0);
        assert!(close(custom.position_at(30.0), 9000.0));
        assert!(close(custom.rate_at(15.0), 300.0));
        assert!(close(custom.rate_at(1e6), 500.0));
        assert!(close(custom.position_at(40.0), 14_000.0));
        assert!(close(custom.time_of(14_000.0).unwrap(), 40.0));
        assert!(!custom.is_silent());
    }

    #[test]
    fn peak_holds_max_in_the_middle_and_its_first_quarter_averages_half() {
        let peak = Stages::new(&peak(120.0, 50.0), 0.0);
        assert!(close(peak.position_at(30.0) / 30.0, 25.0));
        assert!(close(peak.rate_at(60.0), 50.0));
        assert!(close(peak.position_at(90.0) - peak.position_at(30.0), 3000.0));
        assert!(close(peak.total(), 4500.0));
        assert!(close(peak.time_of(4500.0).unwrap(), 120.0));
        assert_eq!(peak.rate_at(120.0), 0.0);
    }

    #[test]
    fn a_still_stretch_is_reached_at_its_start_and_passed_at_its_end() {
        // 10 req/s for 1 s, nothing for 5 s, 10 req/s for 1 s.
        let gap =
            Stages::new(&[Stage::ramp(1.0, 10.0, 10.0), Stage::ramp(5.0, 0.0, 0.0), Stage::ramp(1.0, 10.0, 10.0)], 0.0);
        assert_eq!(gap.time_of(10.0), Some(1.0));
        assert!(close(gap.time_of(10.5).unwrap(), 6.05));
        assert_eq!(gap.position_at(3.0), 10.0);
        let counts = counts_at(&gap, 0.0, 1, &[0.99, 5.99, 6.99, 7.0]);
        assert_eq!(counts, vec![10, 11, 20, 21]);
    }

    #[test]
    fn no_stages_is_silence_or_a_plain_constant() {
        let silent = Stages::new(&[], 0.0);
        assert!(silent.is_silent());
        assert_eq!(silent.time_of(0.0), None);
        assert_eq!(silent.position_at(100.0), 0.0);
        let constant = Stages::new(&[], 4.0);
        assert_eq!(constant.time_of(0.0), Some(0.0));
        assert_eq!(constant.time_of(5.0), Some(1.25));
        assert_eq!(constant.position_at(2.0), 8.0);
    }

    #[test]
    fn counts_stay_within_one_request_of_the_integral_for_every_shape() {
        for (duration, max, ramp) in [(30.0, 10.0, 0.0), (60.0, 100.0, 10.0), (120.0, 500.0, 20.0), (7.0, 0.3, 3.0)] {
            for shape in [peak(duration, max), ramp_hold(duration, max, ramp)] {
                let stages = Stages::new(&shape, 0.0);
                let times: Vec<f64> = (0..=400).map(|i| duration * f64::from(i) / 400.0).collect();
                let counts = counts_at(&stages, 0.2, 7, &times);
                for (t, n) in times.iter().zip(counts) {
                    let expected = stages.position_at(*t);
                    assert!((n as f64 - expected).abs() <= 1.1, "{shape:?} at {t}: {n}, due {expected}");
                }
            }
        }
    }

    #[test]
    fn odd_numbers_never_panic() {
        let odd = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, 1e-300, f64::MAX, f64::MIN_POSITIVE];
        for &a in &odd {
            for &b in &odd {
                let stages = Stages::new(&[Stage::ramp(a, b, a), Stage::ramp(b, a, 1.0)], a);
                for &x in &odd {
                    let _ = (stages.rate_at(x), stages.position_at(x), stages.time_of(x), stages.is_silent());
                }
            }
        }
    }

    #[test]
    fn ragged_pauses_are_within_their_bounds_and_stop_the_schedule_clock() {
        let mut clock = Ragged::new(PAUSES, ACTIVE, 42);
        let mut in_pause = 0.0;
        let mut pauses = Vec::new();
        let step = 0.001;
        let mut previous = 0.0;
        let mut w = 0.0;
        while w < 600.0 {
            let s = clock.schedule_time(w).unwrap();
            assert!(s >= previous, "schedule time went back at {w}");
            if s == previous && w > 0.0 {
                in_pause += step;
            } else if in_pause > 0.0 {
                pauses.push(in_pause);
                in_pause = 0.0;
            }
            previous = s;
            w += step;
        }
        assert!(pauses.len() > 300, "{} pauses in 600 s", pauses.len());
        for p in &pauses {
            assert!((0.099..=0.502).contains(p), "a pause of {p} s");
        }
        let mean = pauses.iter().sum::<f64>() / pauses.len() as f64;
        assert!((0.27..0.33).contains(&mean), "mean pause {mean}");
        // Traffic flows about 1.25 s of every 1.55 s.
        let share = clock.schedule_time(600.0).unwrap() / 600.0;
        assert!((0.76..0.85).contains(&share), "active share {share}");
    }

    #[test]
    fn ragged_answers_the_same_in_any_order() {
        let times: Vec<f64> = (0..2000).map(|i| f64::from(i) * 0.137).collect();
        let mut forward = Ragged::new(PAUSES, ACTIVE, 9);
        let ahead: Vec<f64> = times.iter().map(|&w| forward.schedule_time(w).unwrap()).collect();
        let mut backward = Ragged::new(PAUSES, ACTIVE, 9);
        let behind: Vec<f64> = times.iter().rev().map(|&w| backward.schedule_time(w).unwrap()).collect();
        for (a, b) in ahead.iter().zip(behind.iter().rev()) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        // And wall time is the inverse off the pauses.
        let mut clock = Ragged::new(PAUSES, ACTIVE, 9);
        for &w in &times {
            let s = clock.schedule_time(w).unwrap();
            let back = clock.wall_time(s).unwrap();
            assert!(back <= w + 1e-9, "wall of schedule time {s} is {back}, after {w}");
            assert_eq!(clock.schedule_time(back).map(|x| (x - s).abs() < 1e-9), Some(true));
        }
    }

    #[test]
    fn a_ragged_constant_sends_the_integral_over_the_time_not_paused() {
        let stages = Stages::new(&ramp_hold(60.0, 200.0, 5.0), 0.0);
        let mut wall = Ragged::new(PAUSES, ACTIVE, 3);
        let mut schedule = wall;
        // The engine's two questions, each on its own cursor: when is the
        // next slot on the wall, and where is the schedule now.
        let mut sent = 0u64;
        let mut next = stages.time_of(0.0).and_then(|s| wall.wall_time(s));
        let mut w = 0.0;
        while w <= 60.0 {
            while next.is_some_and(|n| n <= w) {
                sent += 1;
                let slot = sent as f64 + (uniform((0.0, 1.0), mix(5, sent)) - 0.5) * 0.2;
                next = stages.time_of(slot).and_then(|s| wall.wall_time(s));
            }
            let due = stages.position_at(schedule.schedule_time(w).unwrap());
            assert!((sent as f64 - due).abs() <= 1.1, "{sent} sent by {w}, {due} due");
            w += 0.01;
        }
        // About 80 % of the unpaused count.
        let share = sent as f64 / stages.position_at(60.0);
        assert!((0.7..0.9).contains(&share), "share {share}");
    }

    #[test]
    fn ragged_refuses_times_beyond_its_horizon_and_odd_bounds() {
        let mut clock = Ragged::new((f64::NAN, -3.0), (f64::INFINITY, 0.0), 1);
        assert_eq!(clock.schedule_time(RAGGED_HORIZON_SECS * 2.0), None);
        assert_eq!(clock.wall_time(f64::INFINITY), None);
        assert_eq!(clock.wall_time(f64::NAN), Some(0.0));
        assert!(clock.schedule_time(100.0).is_some());
    }

    fn stage() -> impl Strategy<Value = Stage> {
        (0.0..300.0f64, 0.0..5000.0f64, 0.0..5000.0f64).prop_map(|(s, a, b)| Stage::ramp(s, a, b))
    }

    fn short_stage() -> impl Strategy<Value = Stage> {
        (0.0..30.0f64, 0.0..2000.0f64, 0.0..2000.0f64).prop_map(|(s, a, b)| Stage::ramp(s, a, b))
    }

    fn any_stage() -> impl Strategy<Value = Stage> {
        (any::<f64>(), any::<f64>(), any::<f64>()).prop_map(|(s, a, b)| Stage::ramp(s, a, b))
    }

    proptest! {
        #[test]
        fn no_input_panics(stages in prop::collection::vec(any_stage(), 0..6), after in any::<f64>(), x in any::<f64>()) {
            let stages = Stages::new(&stages, after);
            let _ = (stages.rate_at(x), stages.position_at(x), stages.time_of(x));
            let mut clock = Ragged::new((x, after), (after, x), x.to_bits());
            let _ = (clock.wall_time(x), clock.schedule_time(x), clock.paused_by(x));
        }

        #[test]
        fn time_of_inverts_position_at(stages in prop::collection::vec(stage(), 1..6), after in 0.0..1000.0f64, t in 0.0..2000.0f64) {
            let stages = Stages::new(&stages, after);
            let p = stages.position_at(t);
            prop_assert!(p >= 0.0 && p.is_finite());
            prop_assert!(stages.position_at(t + 0.5) >= p);
            if let Some(back) = stages.time_of(p) {
                // The earliest time with that count: never later, same count.
                prop_assert!(back <= t + 1e-6, "time_of({p}) = {back} > {t}");
                prop_assert!((stages.position_at(back) - p).abs() <= 1e-6 * p.max(1.0));
            } else {
                prop_assert!(p <= 0.0 || (after == 0.0 && p >= stages.total()));
            }
        }

    }

    proptest! {
        // Each case walks every slot: fewer, shorter cases keep it quick.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn counts_stay_within_one_request_of_the_integral(
            stages in prop::collection::vec(short_stage(), 1..5),
            jitter in 0.0..=1.0f64,
            seed in any::<u64>(),
        ) {
            let stages = Stages::new(&stages, 0.0);
            let end = stages.end();
            let times: Vec<f64> = (0..=200).map(|i| end * f64::from(i) / 200.0).collect();
            let counts = counts_at(&stages, jitter, seed, &times);
            for (t, n) in times.iter().zip(counts) {
                let due = stages.position_at(*t);
                // One request, plus the half-slot jitter may move a send.
                prop_assert!((n as f64 - due).abs() <= 1.0 + jitter / 2.0 + 1e-6, "{n} by {t}, {due} due");
            }
        }
    }
}
