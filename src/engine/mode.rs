//! Modes, their rates, and the plan the engine follows.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use super::schedule::RateSchedule;
use super::stages::{Ragged, Stages};
use super::users::{UserPause, ramp_users, users_of_share};
use crate::base::number::Shown;
use crate::base::shape::{PausePattern, Stage};

/// A named traffic level the control API can switch to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Steady,
    Burst,
    Overload,
    Pause,
    Custom,
    /// The closed model: virtual users, each sending after its previous
    /// answer and a pause (see `engine::users`); the plan's `rps` is their number.
    Users,
}

impl Mode {
    pub const ALL: [Mode; 6] = [Mode::Steady, Mode::Burst, Mode::Overload, Mode::Pause, Mode::Custom, Mode::Users];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Steady => "steady",
            Mode::Burst => "burst",
            Mode::Overload => "overload",
            Mode::Pause => "pause",
            Mode::Custom => "custom",
            Mode::Users => "users",
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
#[error("unknown mode '{0}'; valid modes: steady, burst, overload, pause, custom, users")]
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
    #[error("rps must not be negative (got {})", Shown(*.0))]
    Negative(f64),
    #[error("rps {0:?} is below one request a day; use 0 to pause, or a rate of at least 1/86400 (0.0000116)")]
    TooSlow(f64),
    #[error("rps {} exceeds MAX_RPS ({max}); allowed: 0 to {max}", Shown(*.rps))]
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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UsersError {
    #[error("users must be a whole number from 0 to MAX_USERS ({max}), not {}", Shown(*.got))]
    NotWhole { got: f64, max: u64 },
    #[error("users {} exceeds MAX_USERS ({max}); allowed: 0 to {max}", Shown(*.got))]
    OverCap { got: f64, max: u64 },
}

/// Checks a number of users: a whole number within `0..=max` (0 pauses).
pub fn check_users(users: f64, max: u64) -> Result<u64, UsersError> {
    if !users.is_finite() || users < 0.0 || users.fract() != 0.0 {
        Err(UsersError::NotWhole { got: users, max })
    } else if users > max as f64 {
        Err(UsersError::OverCap { got: users, max })
    } else {
        Ok(users as u64)
    }
}

/// The rates of the built-in modes and the cap that bounds every rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeTable {
    pub steady: f64,
    pub burst: f64,
    pub overload: f64,
    pub max_rps: f64,
    /// `MAX_USERS`: the bound on virtual users (with replicas, of all together).
    pub max_users: u64,
    /// `USER_PAUSE`: a user's pause between iterations, unless its plan gives one.
    pub user_pause: UserPause,
}

impl ModeTable {
    /// The rate of a built-in mode; `None` for `custom`, which brings its own.
    pub fn rate_of(&self, mode: Mode) -> Option<f64> {
        match mode {
            Mode::Steady => Some(self.steady),
            Mode::Burst => Some(self.burst),
            Mode::Overload => Some(self.overload),
            Mode::Pause => Some(0.0),
            Mode::Custom | Mode::Users => None,
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

    /// The plan for `users` virtual users, checked against `MAX_USERS`.
    pub fn users_plan(&self, users: f64, pause: Option<UserPause>) -> Result<Plan, UsersError> {
        let users = check_users(users, self.max_users)?;
        Ok(Plan { user_pause: pause, ..Plan::new(Mode::Users, users as f64) })
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
    /// In users mode, the number of users (the shape's "rate" is users too).
    pub rps: f64,
    /// In users mode, the pause between iterations (`None`: `USER_PAUSE`).
    pub user_pause: Option<UserPause>,
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
        Plan {
            mode,
            rps,
            warming_up: false,
            anchor: None,
            share: Share::WHOLE,
            shape: Shape::Constant,
            user_pause: None,
        }
    }

    /// This plan with another shape (from `anchor`, the moment it starts,
    /// so a replica or a re-read of the plan takes the story up where it is).
    pub fn shaped(self, shape: Shape, anchor: SystemTime) -> Plan {
        Plan { shape, anchor: Some(anchor), ..self }
    }

    /// The schedule to send by, `None` while nothing is to be sent.
    pub fn schedule(&self) -> Option<RateSchedule> {
        if self.warming_up || self.is_users() {
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

    /// The rate being sent right now (0 during warm-up, and in users mode,
    /// which has no rate of its own), by every replica together.
    pub fn current_rps(&self) -> f64 {
        if self.warming_up || self.is_users() { 0.0 } else { self.rps }
    }

    /// The closed model: virtual users rather than a rate.
    pub fn is_users(&self) -> bool {
        self.mode == Mode::Users
    }

    /// Whether anything is to be sent now: a schedule, or users.
    pub fn sends(&self) -> bool {
        if self.is_users() {
            !self.warming_up && (self.rps > 0.0 || self.shape != Shape::Constant)
        } else {
            self.schedule().is_some()
        }
    }

    /// In users mode, the users of every replica together at `since`
    /// seconds after the anchor (a ramp's part-way; 0 during warm-up).
    pub fn users_at_secs(&self, since: f64) -> u64 {
        if self.warming_up || !self.is_users() {
            return 0;
        }
        let whole = |x: f64| if x.is_finite() && x > 0.0 { (x + 1e-9).floor() as u64 } else { 0 };
        match &self.shape {
            Shape::Constant => whole(self.rps),
            Shape::Ramp { from_rps, secs } => ramp_users(whole(*from_rps), whole(self.rps), *secs, since),
            Shape::Story { stages, .. } => whole(Stages::new(stages, 0.0).rate_at(since)),
        }
    }

    /// [`Plan::users_at_secs`] at the wall-clock instant `now`.
    pub fn users_at(&self, now: SystemTime) -> u64 {
        let since = self.anchor.and_then(|a| now.duration_since(a).ok()).map_or(0.0, |d| d.as_secs_f64());
        self.users_at_secs(since)
    }

    /// This replica's part of `users` (see [`users_of_share`]).
    pub fn users_here(&self, users: u64) -> u64 {
        users_of_share(users, self.share.index, self.share.count)
    }

    /// Whether the users' number still changes after `since` (a ramp or a
    /// story under way): the worker re-reads it while it does.
    pub fn users_moving(&self, since: f64) -> bool {
        match &self.shape {
            Shape::Constant => false,
            Shape::Ramp { secs, .. } => since < *secs,
            Shape::Story { stages, .. } => since < Stages::new(stages, 0.0).end(),
        }
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

    #[test]
    fn errors_show_numbers_as_typed_and_huge_or_tiny_ones_in_exponent_form() {
        let over = |rps| check_rate(rps, 1000.0).unwrap_err().to_string();
        assert_eq!(over(1500.0), "rps 1500 exceeds MAX_RPS (1000); allowed: 0 to 1000");
        assert_eq!(over(2.5e3), "rps 2500 exceeds MAX_RPS (1000); allowed: 0 to 1000");
        assert_eq!(over(1e308), "rps 1e308 exceeds MAX_RPS (1000); allowed: 0 to 1000");
        assert_eq!(check_rate(-1e300, 10.0).unwrap_err().to_string(), "rps must not be negative (got -1e300)");
        assert_eq!(check_rate(-0.5, 10.0).unwrap_err().to_string(), "rps must not be negative (got -0.5)");
        assert!(check_users(1e20, 50).unwrap_err().to_string().starts_with("users 1e20 exceeds MAX_USERS (50)"));
        assert!(check_users(1e-9, 50).unwrap_err().to_string().ends_with("not 1e-9"));
        assert!(check_users(2.5, 50).unwrap_err().to_string().ends_with("not 2.5"));
    }

    const TABLE: ModeTable = ModeTable {
        steady: 2.0,
        burst: 20.0,
        overload: 100.0,
        max_rps: 1000.0,
        max_users: 1000,
        user_pause: UserPause::fixed(1.0),
    };

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

    #[test]
    fn users_plans_take_whole_numbers_within_the_bound_and_have_no_rate() {
        let plan = TABLE.users_plan(20.0, None).unwrap();
        assert_eq!(
            (plan.mode, plan.users_at_secs(0.0), plan.current_rps(), plan.schedule()),
            (Mode::Users, 20, 0.0, None)
        );
        assert!(plan.sends());
        assert_eq!(plan.state(), EngineState::Running);
        let paused = TABLE.users_plan(0.0, None).unwrap();
        assert_eq!((paused.state(), paused.sends()), (EngineState::Paused, false));
        assert_eq!(TABLE.users_plan(1000.0, None).unwrap().users_at_secs(0.0), 1000);
        for bad in [-1.0, 2.5, f64::NAN, f64::INFINITY, -0.5] {
            assert!(matches!(TABLE.users_plan(bad, None), Err(UsersError::NotWhole { .. })), "{bad}");
        }
        assert_eq!(TABLE.users_plan(1001.0, None), Err(UsersError::OverCap { got: 1001.0, max: 1000 }));
        assert!(UsersError::OverCap { got: 1001.0, max: 1000 }.to_string().contains("MAX_USERS"));
    }

    #[test]
    fn users_ramp_from_the_anchor_and_replicas_split_them() {
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let plan = TABLE.users_plan(50.0, None).unwrap().shaped(Shape::Ramp { from_rps: 10.0, secs: 10.0 }, start);
        assert_eq!([0.0, 5.0, 10.0, 99.0].map(|t| plan.users_at_secs(t)), [10, 30, 50, 50]);
        assert!(plan.users_moving(9.0) && !plan.users_moving(10.0));
        let later = start + std::time::Duration::from_secs(5);
        assert_eq!(plan.users_at(later), 30);
        let mut shared = TABLE.users_plan(10.0, None).unwrap();
        shared.share = Share::new(0, 3).unwrap();
        assert_eq!(shared.users_here(10), 4);
        shared.share = Share::new(2, 3).unwrap();
        assert_eq!(shared.users_here(10), 3);
        // Stages of users: up to 20 over 10 s, hold 10 s, none after.
        let stages = [Stage::ramp(10.0, 0.0, 20.0), Stage::ramp(10.0, 20.0, 20.0)];
        let story = TABLE
            .users_plan(20.0, None)
            .unwrap()
            .shaped(Shape::Story { stages: stages.into(), pauses: None, seed: 1 }, start);
        assert_eq!([0.0, 5.0, 15.0, 21.0].map(|t| story.users_at_secs(t)), [0, 10, 20, 0]);
        let mut warming = TABLE.users_plan(5.0, None).unwrap();
        warming.warming_up = true;
        assert_eq!((warming.users_at_secs(0.0), warming.sends()), (0, false));
    }
}
