//! Scenario shapes: the named traffic stories (normal, peak, stress, error
//! injection, latency degradation) as plain data — a list of linear rate
//! stages plus what each scenario does besides the rate.
//!
//! Pure: no clock, no I/O. The engine plays the stages through its rate
//! schedule (the count sent is the integral of the rate); exporters turn the
//! same stages into k6 stages, Locust shapes or Artillery phases, so a job
//! and its exported script tell the same story.

use std::fmt;
use std::str::FromStr;

use crate::base::shape::{PausePattern, Stage};

/// One of the named stories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// Constant `max_rps`.
    Normal,
    /// 0 → max over the first quarter, hold to three quarters, back to 0 by the end.
    Peak,
    /// Like normal, with a share of the traffic sent to the workload's
    /// error-provoking requests.
    ErrorInjection,
    /// Like normal, with the rate made ragged by random pauses.
    LatencyDegradation,
    /// Straight to max, hold.
    Stress,
}

impl ScenarioKind {
    pub const ALL: [ScenarioKind; 5] = [
        ScenarioKind::Normal,
        ScenarioKind::Peak,
        ScenarioKind::ErrorInjection,
        ScenarioKind::LatencyDegradation,
        ScenarioKind::Stress,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::Normal => "normal",
            ScenarioKind::Peak => "peak",
            ScenarioKind::ErrorInjection => "error_injection",
            ScenarioKind::LatencyDegradation => "latency_degradation",
            ScenarioKind::Stress => "stress",
        }
    }

    /// Valid names, for error messages.
    pub fn names() -> String {
        ScenarioKind::ALL.map(ScenarioKind::as_str).join(", ")
    }

    /// Share of requests sent to the workload's error requests.
    pub fn error_share(self) -> f64 {
        match self {
            ScenarioKind::ErrorInjection => ERROR_SHARE,
            _ => 0.0,
        }
    }

    /// Random pauses in sending between active stretches.
    pub fn pauses(self) -> Option<PausePattern> {
        match self {
            ScenarioKind::LatencyDegradation => Some(PausePattern { pauses: PAUSES, active: ACTIVE_BETWEEN_PAUSES }),
            _ => None,
        }
    }

    /// The rate stages of this story over `duration` seconds at up to
    /// `max_rps`. `ramp_up` (seconds) is a linear rise from 0 at the start
    /// for every story that would otherwise start at full rate; peak has
    /// its own rise (the first quarter) and ignores it. Stages with no
    /// length are left out; the lengths add up to `duration`.
    pub fn stages(self, duration: f64, max_rps: f64, ramp_up: f64) -> Vec<Stage> {
        let duration = finite_non_negative(duration);
        let max = finite_non_negative(max_rps);
        let stages = match self {
            ScenarioKind::Peak => {
                let quarter = duration / 4.0;
                vec![
                    Stage::ramp(quarter, 0.0, max),
                    Stage::ramp(duration - 2.0 * quarter, max, max),
                    Stage::ramp(quarter, max, 0.0),
                ]
            }
            _ => {
                let ramp = finite_non_negative(ramp_up).min(duration);
                vec![Stage::ramp(ramp, 0.0, max), Stage::ramp(duration - ramp, max, max)]
            }
        };
        stages.into_iter().filter(|s| s.secs > 0.0).collect()
    }
}

/// Share of the traffic error injection sends to error requests.
pub const ERROR_SHARE: f64 = 0.3;
/// Latency degradation's pauses, seconds.
pub const PAUSES: (f64, f64) = (0.1, 0.5);
/// Latency degradation's active stretches between pauses, seconds: with
/// the pauses above, traffic flows about 80 % of the time (1.25 s of every
/// 1.55 s on average), in visibly ragged bursts.
pub const ACTIVE_BETWEEN_PAUSES: (f64, f64) = (0.5, 2.0);

fn finite_non_negative(x: f64) -> f64 {
    if x.is_finite() { x.max(0.0) } else { 0.0 }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario '{0}'; valid scenarios: normal, peak, error_injection, latency_degradation, stress")]
pub struct UnknownScenario(pub String);

impl FromStr for ScenarioKind {
    type Err = UnknownScenario;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScenarioKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownScenario(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stages::Stages;

    fn rate_at(stages: &[Stage], t: f64) -> f64 {
        Stages::new(stages, 0.0).rate_at(t)
    }

    fn total(stages: &[Stage]) -> (f64, f64) {
        (stages.iter().map(|s| s.secs).sum(), stages.iter().map(Stage::requests).sum())
    }

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid() {
        for kind in ScenarioKind::ALL {
            assert_eq!(kind.as_str().parse::<ScenarioKind>(), Ok(kind));
        }
        let err = "tsunami".parse::<ScenarioKind>().unwrap_err().to_string();
        assert!(err.contains("tsunami") && err.contains(&ScenarioKind::names()), "{err}");
    }

    #[test]
    fn peak_rises_over_a_quarter_holds_to_three_quarters_and_falls_to_zero() {
        let stages = ScenarioKind::Peak.stages(120.0, 50.0, 10.0);
        assert_eq!(
            stages,
            vec![Stage::ramp(30.0, 0.0, 50.0), Stage::ramp(60.0, 50.0, 50.0), Stage::ramp(30.0, 50.0, 0.0)]
        );
        // Its first quarter averages half of max; the whole sends 3/4 of max × duration.
        assert_eq!(stages[0].requests() / 30.0, 25.0);
        assert_eq!(total(&stages), (120.0, 4500.0));
        assert_eq!(rate_at(&stages, 15.0), 25.0);
        assert_eq!(rate_at(&stages, 60.0), 50.0);
        assert_eq!(rate_at(&stages, 120.0), 0.0);
    }

    #[test]
    fn flat_stories_hold_max_after_an_optional_ramp() {
        for kind in [ScenarioKind::Normal, ScenarioKind::Stress, ScenarioKind::ErrorInjection] {
            assert_eq!(kind.stages(60.0, 100.0, 0.0), vec![Stage::ramp(60.0, 100.0, 100.0)]);
            let ramped = kind.stages(60.0, 100.0, 10.0);
            assert_eq!(ramped, vec![Stage::ramp(10.0, 0.0, 100.0), Stage::ramp(50.0, 100.0, 100.0)]);
            assert_eq!(total(&ramped), (60.0, 5500.0));
        }
        // A ramp longer than the story is the whole story.
        assert_eq!(ScenarioKind::Normal.stages(5.0, 10.0, 60.0), vec![Stage::ramp(5.0, 0.0, 10.0)]);
    }

    #[test]
    fn what_each_story_does_besides_the_rate() {
        assert_eq!(ScenarioKind::ErrorInjection.error_share(), 0.3);
        assert_eq!(ScenarioKind::Normal.error_share(), 0.0);
        assert_eq!(ScenarioKind::LatencyDegradation.pauses().map(|p| p.pauses), Some((0.1, 0.5)));
        assert_eq!(ScenarioKind::Stress.pauses(), None);
    }

    #[test]
    fn odd_numbers_give_an_empty_or_bounded_story_never_a_panic() {
        for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, 0.0, f64::MAX, f64::MIN_POSITIVE] {
            for kind in ScenarioKind::ALL {
                let stages = kind.stages(x, x, x);
                assert!(stages.iter().all(|s| s.secs.is_finite() && s.secs > 0.0), "{kind} {x}: {stages:?}");
                let _ = rate_at(&stages, x);
            }
        }
    }
}
