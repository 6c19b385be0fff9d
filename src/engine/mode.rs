//! Modes, their rates, and the plan the engine follows.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use super::schedule::RateSchedule;
use super::stages::{Ragged, Stages};
use crate::base::shape::{PausePattern, Stage};

/// A named traffic level the control API can switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Steady,
    Burst,
    Overload,
    Pause,
    Custom,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Steady, Mode::Burst, Mode::Overload, Mode::Pause, Mode::Custom];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Steady => "steady",
            Mode::Burst => "burst",
            Mode::Overload => "overload",
            Mode::Pause => "pause",
            Mode::Custom => "custom",
        }
    }

    /// Valid mode names, for error messages.
    pub fn names() -> String {
        Mode::ALL.map(Mode::as_str).join(", ")
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode '{0}'; valid modes: steady, burst, overload, pause, custom")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| UnknownMode(s.to_string()))
    }
}

/// The slowest rate that is not a pause: one request a day. Below it a
/// "rate" is a typo or an attack (`1e-20` puts the next request 10^12 years
/// away, beyond what the clock can hold), so it is refused, not rounded.
pub const MIN_RPS: f64 = 1.0 / 86_400.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    #[error("rps must be a finite number")]
    NotFinite,
    #[error("rps must not be negative (got {0})")]
    Negative(f64),
    #[error("rps {0:?} is below one request a day; use 0 to pause, or a rate of at least 1/86400 (0.0000116)")]
    TooSlow(f64),
    #[error("rps {rps} exceeds MAX_RPS ({max}); allowed: 0 to {max}")]
    OverCap { rps: f64, max: f64 },
}

/// Checks a rate against the hard cap: finite, within `0..=max`, and
/// either 0 (pause) or at least [`MIN_RPS`].
pub fn check_rate(rps: f64, max: f64) -> Result<f64, RateError> {
    if !rps.is_finite() {
        Err(RateError::NotFinite)
    } else if rps < 0.0 {
        Err(RateError::Negative(rps))
    } else if rps > 0.0 && rps < MIN_RPS {
        Err(RateError::TooSlow(rps))
    } else if rps > max {
        Err(RateError::OverCap { rps, max })
    } else {
        Ok(rps)
    }
}

/// The rates of the built-in modes and the cap that bounds every rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeTable {
    pub steady: f64,
    pub burst: f64,
    pub overload: f64,
    pub max_rps: f64,
}

impl ModeTable {
    /// The rate of a built-in mode; `None` for `custom`, which brings its own.
    pub fn rate_of(&self, mode: Mode) -> Option<f64> {
        match mode {
            Mode::Steady => Some(self.steady),
            Mode::Burst => Some(self.burst),
            Mode::Overload => Some(self.overload),
            Mode::Pause => Some(0.0),
            Mode::Custom => None,
        }
    }

    /// The plan for a built-in mode.
    pub fn plan(&self, mode: Mode) -> Option<Plan> {
        self.rate_of(mode).map(|rps| Plan::new(mode, rps))
    }

    /// The plan for a custom rate, checked against the cap.
    pub fn custom_plan(&self, rps: f64) -> Result<Plan, RateError> {
        let rps = check_rate(rps, self.max_rps)?;
        Ok(Plan::new(Mode::Custom, rps))
    }
}

/// The part of a schedule this process sends when several replicas share
/// one (see `crate::cluster`): every `count`-th slot, starting at `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Share {
    pub index: u64,
    pub count: u64,
}

impl Share {
    /// The whole schedule: a process on its own.
    pub const WHOLE: Share = Share { index: 0, count: 1 };

    /// `None` unless `index < count`.
    pub fn new(index: u64, count: u64) -> Option<Share> {
        (index < count).then_some(Share { index, count })
    }

    /// This share of a rate.
    pub fn of(&self, rps: f64) -> f64 {
        rps / self.count.max(1) as f64
    }
}

/// What the engine should be doing: the one value the control API changes
/// and the engine watches.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mode: Mode,
    /// The whole rate; with replicas, of all of them together (see `share`).
    pub rps: f64,
    /// Before the warm-up ends the engine sends nothing; `mode` is what
    /// comes after it.
    pub warming_up: bool,
    /// The instant the schedule starts from, agreed between replicas so
    /// that their shares interleave; `None`: the moment the engine takes
    /// the plan up (a process on its own).
    pub anchor: Option<SystemTime>,
    /// The part of the schedule this process sends; set by the cluster,
    /// kept across switches.
    pub share: Share,
    /// How the rate goes over time, from the anchor.
    pub shape: Shape,
}

/// The rate over time of a plan, `rps` being its headline rate: the
/// worker builds the schedule from it. Shapes come as data; the engine
/// does not know which story wrote them.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// `rps` for ever: a mode.
    Constant,
    /// A straight line from `from_rps` to `rps` over `secs`, then `rps`
    /// held: `POST /mode/custom {"rps", "ramp_secs"}`.
    Ramp { from_rps: f64, secs: f64 },
    /// A job's story: `stages` from the anchor (their rates at most `rps`),
    /// made ragged by `pauses` if given; nothing is sent after the last
    /// stage. `seed` draws the pauses (the jobs board uses the same one to
    /// know the target rate at each moment).
    Story { stages: Arc<[Stage]>, pauses: Option<PausePattern>, seed: u64 },
}

/// What the engine is doing, as `/status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    WarmingUp,
    Running,
    Paused,
}

impl EngineState {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::WarmingUp => "warming_up",
            EngineState::Running => "running",
            EngineState::Paused => "paused",
        }
    }
}

impl Plan {
    /// A plan of a process on its own, out of warm-up.
    pub fn new(mode: Mode, rps: f64) -> Plan {
        Plan { mode, rps, warming_up: false, anchor: None, share: Share::WHOLE, shape: Shape::Constant }
    }

    /// This plan with another shape (from `anchor`, the moment it starts,
    /// so a replica or a re-read of the plan takes the story up where it is).
    pub fn shaped(self, shape: Shape, anchor: SystemTime) -> Plan {
        Plan { shape, anchor: Some(anchor), ..self }
    }

    /// The schedule to send by, `None` while nothing is to be sent.
    pub fn schedule(&self) -> Option<RateSchedule> {
        if self.warming_up {
            return None;
        }
        let schedule = match &self.shape {
            Shape::Constant => RateSchedule::constant(self.rps),
            Shape::Ramp { from_rps, secs } => {
                RateSchedule::staged(Stages::ramp_then_hold(*secs, *from_rps, self.rps), None)
            }
            Shape::Story { stages, pauses, seed } => {
                let ragged = pauses.map(|p| Ragged::new(p.pauses, p.active, *seed));
                RateSchedule::staged(Stages::new(stages, 0.0), ragged)
            }
        };
        (!schedule.is_silent()).then_some(schedule)
    }

    pub fn state(&self) -> EngineState {
        if self.warming_up {
            EngineState::WarmingUp
        } else if self.rps > 0.0 {
            EngineState::Running
        } else {
            EngineState::Paused
        }
    }

    /// The rate being sent right now (0 during warm-up), by every replica
    /// together.
    pub fn current_rps(&self) -> f64 {
        if self.warming_up { 0.0 } else { self.rps }
    }

    /// The rate the schedule asks for at `now`, by every replica together
    /// (a ramp's rate part-way; 0 during warm-up): where a new ramp starts.
    pub fn rate_at(&self, now: SystemTime) -> f64 {
        if self.shape == Shape::Constant {
            return self.current_rps();
        }
        let since = self.anchor.and_then(|a| now.duration_since(a).ok()).map_or(0.0, |d| d.as_secs_f64());
        self.schedule().map_or(0.0, |s| s.rate_at(since))
    }

    /// The rate this process sends right now: its share of `current_rps`.
    pub fn sending_rps(&self) -> f64 {
        self.share.of(self.current_rps())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: ModeTable = ModeTable { steady: 2.0, burst: 20.0, overload: 100.0, max_rps: 1000.0 };

    #[test]
    fn built_in_modes_have_their_rates() {
        assert_eq!(TABLE.plan(Mode::Burst).unwrap().rps, 20.0);
        assert_eq!(TABLE.plan(Mode::Pause).unwrap().rps, 0.0);
        assert_eq!(TABLE.plan(Mode::Custom), None);
    }

    #[test]
    fn custom_rates_are_checked_against_the_cap() {
        assert_eq!(TABLE.custom_plan(250.0).unwrap().rps, 250.0);
        assert_eq!(TABLE.custom_plan(0.0).unwrap().state(), EngineState::Paused);
        assert_eq!(TABLE.custom_plan(1000.0).unwrap().rps, 1000.0);
        assert_eq!(TABLE.custom_plan(1000.5), Err(RateError::OverCap { rps: 1000.5, max: 1000.0 }));
        assert_eq!(TABLE.custom_plan(-1.0), Err(RateError::Negative(-1.0)));
        assert_eq!(TABLE.custom_plan(f64::NAN), Err(RateError::NotFinite));
        assert_eq!(TABLE.custom_plan(f64::INFINITY), Err(RateError::NotFinite));
    }

    #[test]
    fn rates_between_zero_and_one_a_day_are_refused() {
        assert_eq!(TABLE.custom_plan(MIN_RPS).unwrap().rps, MIN_RPS);
        assert_eq!(TABLE.custom_plan(-0.0).unwrap().state(), EngineState::Paused);
        for tiny in [1e-20, 1e-19, f64::MIN_POSITIVE, 5e-324, MIN_RPS * 0.999] {
            assert_eq!(TABLE.custom_plan(tiny), Err(RateError::TooSlow(tiny)));
        }
        assert!(RateError::TooSlow(1e-20).to_string().contains("use 0 to pause"));
    }

    #[test]
    fn mode_names_round_trip_and_unknown_names_list_the_valid_ones() {
        for mode in Mode::ALL {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
        }
        let err = "turbo".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("turbo") && err.contains(&Mode::names()), "{err}");
    }

    #[test]
    fn a_share_is_its_part_of_the_rate_and_needs_an_index_below_its_count() {
        assert_eq!(Share::new(2, 3), Some(Share { index: 2, count: 3 }));
        assert_eq!(Share::new(3, 3), None);
        assert_eq!(Share::new(0, 0), None);
        let mut plan = TABLE.plan(Mode::Overload).unwrap();
        assert_eq!(plan.sending_rps(), 100.0);
        plan.share = Share::new(1, 4).unwrap();
        assert_eq!((plan.current_rps(), plan.sending_rps()), (100.0, 25.0));
        plan.warming_up = true;
        assert_eq!(plan.sending_rps(), 0.0);
    }

    #[test]
    fn nothing_is_scheduled_during_warm_up_or_at_rate_zero() {
        let mut plan = TABLE.plan(Mode::Steady).unwrap();
        assert!(plan.schedule().is_some());
        plan.warming_up = true;
        assert_eq!(plan.schedule(), None);
        assert_eq!(plan.state(), EngineState::WarmingUp);
        assert_eq!(plan.current_rps(), 0.0);
        assert_eq!(TABLE.plan(Mode::Pause).unwrap().schedule(), None);
    }

    #[test]
    fn a_shaped_plan_plays_its_shape_from_its_anchor_and_keeps_its_share() {
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let at = |secs: f64| start + std::time::Duration::from_secs_f64(secs);
        let ramp = Plan::new(Mode::Custom, 100.0).shaped(Shape::Ramp { from_rps: 20.0, secs: 10.0 }, start);
        assert_eq!((ramp.rate_at(start), ramp.rate_at(at(5.0)), ramp.rate_at(at(60.0))), (20.0, 60.0, 100.0));
        // A peak to 50/s over 40 s.
        let stages = [Stage::ramp(10.0, 0.0, 50.0), Stage::ramp(20.0, 50.0, 50.0), Stage::ramp(10.0, 50.0, 0.0)];
        let story = Shape::Story { stages: stages.into(), pauses: None, seed: 1 };
        let mut job = Plan::new(Mode::Custom, 50.0).shaped(story, start);
        let schedule = job.schedule().expect("a story sends");
        assert_eq!(schedule.position_at(40.0), 1500.0);
        assert_eq!(schedule.rate_at(5.0), 25.0);
        assert_eq!(schedule.rate_at(41.0), 0.0, "nothing after the story");
        // Replicas split a story as they split a mode.
        job.share = Share::new(1, 2).unwrap();
        assert_eq!(job.sending_rps(), 25.0);
        // Latency degradation pauses: some moment of its first 5 s sends nothing.
        let ragged = Shape::Story {
            stages: [Stage::ramp(20.0, 10.0, 10.0)].into(),
            pauses: Some(PausePattern { pauses: (0.1, 0.5), active: (0.5, 2.0) }),
            seed: 3,
        };
        let schedule = Plan::new(Mode::Custom, 10.0).shaped(ragged, start).schedule().unwrap();
        assert!((0..500).any(|i| schedule.rate_at(f64::from(i) / 100.0) == 0.0));
        assert!(schedule.position_at(5.0) < 50.0);
        // A constant plan is what it always was.
        assert_eq!(TABLE.plan(Mode::Burst).unwrap().schedule(), Some(RateSchedule::constant(20.0)));
    }
}
