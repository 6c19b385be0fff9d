//! How long a failing setup waits before it is tried again.
//!
//! The first few tries come a second apart, then the wait doubles up to a
//! cap, each wait jittered by a fraction so replicas that failed together
//! do not try together again. Why not double from the first failure: an
//! auth service that starts after the sidecar is usually up within
//! seconds, and doubling from 1 s loses up to half of the outage again
//! (a service up at 5 s would be tried at 7 s; up at 17 s, at 31 s),
//! while a handful of 1 s tries cost a handful of requests. A login that
//! stays down is tried every `cap` at most, however long it stays down.
//!
//! Pure: the caller passes in how many failures came in a row and a
//! uniform draw, so the rule is a table test.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after each of the first `quick_tries` failures.
    pub first: Duration,
    pub quick_tries: u32,
    /// No wait is longer.
    pub cap: Duration,
    /// Each wait is drawn from ± this fraction around its nominal value.
    pub jitter: f64,
}

/// The setup's: 1 s apart for the first 6 failures, then 2, 4, 8, 16 and
/// 30 s (the cap), ± 10 %.
pub const SETUP: Backoff =
    Backoff { first: Duration::from_secs(1), quick_tries: 6, cap: Duration::from_secs(30), jitter: 0.1 };

impl Backoff {
    /// The wait after the `failures`-th failure in a row (1: the first),
    /// before jitter. 0 failures is treated as 1.
    pub fn nominal(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(self.quick_tries).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// The wait after the `failures`-th failure in a row, jittered by
    /// `unit` (a uniform draw in [0, 1); anything else counts as 0.5, the
    /// nominal wait), never above the cap.
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let unit = if (0.0..=1.0).contains(&unit) { unit } else { 0.5 };
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter + 2.0 * jitter * unit;
        // Saturating: a factor above 1 on a wait near `Duration::MAX` overflows.
        let secs = self.nominal(failures).as_secs_f64() * factor;
        Duration::try_from_secs_f64(secs).unwrap_or(self.cap).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn the_first_tries_are_a_second_apart_then_the_wait_doubles_to_the_cap() {
        let table = [
            (0, 1.0),
            (1, 1.0),
            (2, 1.0),
            (6, 1.0),
            (7, 2.0),
            (8, 4.0),
            (9, 8.0),
            (10, 16.0),
            (11, 30.0),
            (12, 30.0),
            (1_000, 30.0),
            (u32::MAX, 30.0),
        ];
        for (failures, want) in table {
            assert_eq!(SETUP.nominal(failures), secs(want), "after {failures} failures");
        }
    }

    #[test]
    fn jitter_spreads_a_wait_by_its_fraction_and_never_passes_the_cap() {
        let table = [
            (1, 0.0, 0.9),
            (1, 0.5, 1.0),
            (1, 0.999_999, 1.1),
            (8, 0.0, 3.6),
            (8, 1.0, 4.4),
            (11, 0.0, 27.0),
            (11, 0.999, 30.0),
            (u32::MAX, 1.0, 30.0),
            // Not a draw: the nominal wait.
            (7, f64::NAN, 2.0),
            (7, -1.0, 2.0),
            (7, 7.0, 2.0),
        ];
        for (failures, unit, want) in table {
            let got = SETUP.delay(failures, unit).as_secs_f64();
            assert!((got - want).abs() < 1e-3, "after {failures} failures, draw {unit}: {got} s, not {want} s");
        }
    }

    #[test]
    fn the_time_to_reach_the_cap_and_the_tries_meanwhile_are_bounded() {
        // Nominal: tries at 0, 1, …, 6, 8, 12, 20, 36, then every 30 s.
        let mut at = Duration::ZERO;
        let mut tries = vec![at];
        for failures in 1..=10 {
            at += SETUP.nominal(failures);
            tries.push(at);
        }
        let want: Vec<Duration> = [0, 1, 2, 3, 4, 5, 6, 8, 12, 20, 36].into_iter().map(Duration::from_secs).collect();
        assert_eq!(tries, want);
        assert_eq!(SETUP.nominal(11), SETUP.cap);
    }

    #[test]
    fn a_backoff_of_extreme_settings_saturates() {
        let wild = Backoff { first: Duration::MAX, quick_tries: 0, cap: Duration::MAX, jitter: 5.0 };
        assert_eq!(wild.nominal(u32::MAX), Duration::MAX);
        assert_eq!(wild.delay(3, 0.9), Duration::MAX);
        let none = Backoff { first: Duration::ZERO, quick_tries: 0, cap: Duration::ZERO, jitter: 0.1 };
        assert_eq!(none.delay(9, 0.9), Duration::ZERO);
    }
}
