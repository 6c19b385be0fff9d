//! The last 5 minutes of the sidecar's numbers, a point a second, in a
//! ring of fixed size (so a page opened during an incident shows what
//! happened), and rates measured over a window that fits the rate.
//!
//! Pure: the caller reads the counters once a second and passes them in
//! with the moment; nothing here looks at a clock.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// Points kept: 5 minutes at one a second.
pub const HISTORY_POINTS: usize = 300;
/// A rate is measured over the shortest recent window that saw at least
/// this many requests (a one-second count at 2/s swings between 1 and 3)…
pub const MIN_REQUESTS_SEEN: u64 = 10;
/// …and at most this many readings back (10 s at one a second).
pub const MAX_WINDOW_READINGS: usize = 10;

/// What the caller read at one moment: counts since start, rates now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// A monotonic clock, in seconds (only differences matter).
    pub at_secs: f64,
    /// Wall-clock milliseconds since the Unix epoch, for the chart's axis.
    pub t_ms: u64,
    /// Requests handed to the client since start.
    pub sent: u64,
    pub successful: u64,
    pub failed: u64,
    pub dropped: u64,
    pub in_flight: u64,
    /// What the schedule asks now, of this replica and of every replica.
    pub target_rps: f64,
    pub cluster_target_rps: f64,
    /// The cluster's achieved rate as the peers report it; `None` alone
    /// (then it is this replica's).
    pub cluster_achieved_rps: Option<f64>,
    /// Latency percentiles of the last seconds, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One second of history, as `GET /history` serves it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub t_ms: u64,
    pub target_rps: f64,
    pub cluster_target_rps: f64,
    /// This replica's, over `achieved_window_secs` (see [`MIN_REQUESTS_SEEN`]).
    pub achieved_rps: f64,
    pub achieved_window_secs: f64,
    pub cluster_achieved_rps: f64,
    /// Answers since the previous point.
    pub successful: u64,
    pub failed: u64,
    pub dropped: u64,
    /// `failed / (successful + failed)` since the previous point (0 without answers).
    pub error_ratio: f64,
    pub in_flight: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The ring of points and the last few readings the rates come from.
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<HistoryPoint>,
    recent: VecDeque<Reading>,
}

impl History {
    pub fn new() -> Self {
        History { points: VecDeque::with_capacity(HISTORY_POINTS), recent: VecDeque::new() }
    }

    /// Adds the point of `reading`; returns it. The first reading only
    /// starts the counts: its point has no answers and a rate of 0.
    pub fn push(&mut self, reading: Reading) -> HistoryPoint {
        let previous = self.recent.back();
        let delta = |now: u64, before: fn(&Reading) -> u64| previous.map_or(0, |p| now.saturating_sub(before(p)));
        let successful = delta(reading.successful, |r| r.successful);
        let failed = delta(reading.failed, |r| r.failed);
        let dropped = delta(reading.dropped, |r| r.dropped);
        self.recent.push_back(reading.clone());
        while self.recent.len() > MAX_WINDOW_READINGS + 1 {
            self.recent.pop_front();
        }
        let (achieved, window) = smoothed(self.recent.iter().map(|r| (r.at_secs, r.sent)));
        let point = HistoryPoint {
            t_ms: reading.t_ms,
            target_rps: round3(reading.target_rps),
            cluster_target_rps: round3(reading.cluster_target_rps),
            achieved_rps: round3(achieved),
            achieved_window_secs: round3(window),
            cluster_achieved_rps: round3(reading.cluster_achieved_rps.unwrap_or(achieved)),
            successful,
            failed,
            dropped,
            error_ratio: if successful + failed > 0 {
                round3(failed as f64 / (successful + failed) as f64)
            } else {
                0.0
            },
            in_flight: reading.in_flight,
            p50_ms: reading.p50_ms,
            p95_ms: reading.p95_ms,
            p99_ms: reading.p99_ms,
        };
        if self.points.len() == HISTORY_POINTS {
            self.points.pop_front();
        }
        self.points.push_back(point);
        point
    }

    /// Every point kept, oldest first.
    pub fn points(&self) -> Vec<HistoryPoint> {
        self.points.iter().copied().collect()
    }

    pub fn latest(&self) -> Option<&HistoryPoint> {
        self.points.back()
    }
}

/// The rate of a counter read at `(seconds, count)` moments, oldest
/// first: over the shortest window back from the newest reading that saw
/// [`MIN_REQUESTS_SEEN`] counts, else over all of them. `(rate, window
/// in seconds)`; `(0, 0)` with fewer than two readings.
pub fn smoothed(readings: impl Iterator<Item = (f64, u64)>) -> (f64, f64) {
    let readings: Vec<(f64, u64)> = readings.collect();
    let (Some(start), Some(&(t_new, n_new))) = (window_start(&readings), readings.last()) else { return (0.0, 0.0) };
    let (t, n) = readings[start];
    let secs = t_new - t;
    (n_new.saturating_sub(n) as f64 / secs, secs)
}

/// Where [`smoothed`]'s window starts: an index into `readings`.
fn window_start(readings: &[(f64, u64)]) -> Option<usize> {
    let &(t_new, n_new) = readings.last()?;
    let mut found = None;
    for (i, &(t, n)) in readings.iter().enumerate().rev().skip(1) {
        if t_new - t <= 0.0 {
            continue;
        }
        found = Some(i);
        if n_new.saturating_sub(n) >= MIN_REQUESTS_SEEN {
            break;
        }
    }
    found
}

/// Counts of one request name since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameCounts {
    pub successful: u64,
    pub failed: u64,
}

/// Per request name: the rate of answers (and failures) over the last
/// seconds, from the counts read once a second. Bounded by the names the
/// caller passes (a workload's) and [`MAX_WINDOW_READINGS`].
#[derive(Debug, Default)]
pub struct NameRates {
    recent: VecDeque<(f64, BTreeMap<String, NameCounts>)>,
}

/// One name's rate over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NameRate {
    /// Requests completed (answered or failed) per second.
    pub rps: f64,
    /// Of those, failed ones per second.
    pub failed_rps: f64,
}

impl NameRates {
    pub fn push(&mut self, at_secs: f64, counts: BTreeMap<String, NameCounts>) {
        self.recent.push_back((at_secs, counts));
        while self.recent.len() > MAX_WINDOW_READINGS + 1 {
            self.recent.pop_front();
        }
    }

    /// Every name's rate over one window, the one [`smoothed`] picks for
    /// all of them together (so the names' rates add up to the total),
    /// and that window in seconds.
    pub fn rates(&self) -> (BTreeMap<String, NameRate>, f64) {
        let total =
            |counts: &BTreeMap<String, NameCounts>| -> u64 { counts.values().map(|c| c.successful + c.failed).sum() };
        let totals: Vec<(f64, u64)> = self.recent.iter().map(|(t, c)| (*t, total(c))).collect();
        let (Some(start), Some((t_new, newest))) = (window_start(&totals), self.recent.back()) else {
            return (BTreeMap::new(), 0.0);
        };
        let (t_old, oldest) = &self.recent[start];
        let window = t_new - t_old;
        let rates = newest
            .iter()
            .map(|(name, now)| {
                let before = oldest.get(name).copied().unwrap_or_default();
                let done = (now.successful + now.failed).saturating_sub(before.successful + before.failed);
                let failed = now.failed.saturating_sub(before.failed);
                let per_sec = |n: u64| round3(n as f64 / window);
                (name.clone(), NameRate { rps: per_sec(done), failed_rps: per_sec(failed) })
            })
            .collect();
        (rates, round3(window))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: f64, sent: u64) -> Reading {
        Reading { at_secs: at, t_ms: (at * 1000.0) as u64, sent, successful: sent, ..Reading::default() }
    }

    #[test]
    fn the_ring_keeps_five_minutes() {
        let mut history = History::new();
        for s in 0..1000u64 {
            history.push(reading(s as f64, s * 50));
        }
        let points = history.points();
        assert_eq!(points.len(), HISTORY_POINTS);
        assert_eq!(points[0].t_ms, 700_000);
        assert_eq!(points.last().map(|p| p.successful), Some(50));
    }

    #[test]
    fn a_fast_rate_is_measured_over_one_second_and_a_slow_one_over_more() {
        // 100/s: one second is enough and follows a change at once.
        let fast: Vec<(f64, u64)> = (0..=10).map(|s| (s as f64, s * 100)).collect();
        assert_eq!(smoothed(fast.into_iter()), (100.0, 1.0));
        // 2/s sent as 1, 3, 1, 3…: a one-second count swings; six seconds hold 12.
        let mut sent = 0;
        let slow: Vec<(f64, u64)> = (0..=10u64)
            .map(|s| {
                sent += if s % 2 == 0 { 1 } else { 3 };
                (s as f64, sent)
            })
            .collect();
        let (rate, window) = smoothed(slow.into_iter());
        assert_eq!((rate, window), (2.0, 6.0));
        // Nothing sent: the whole window, rate 0; one reading: nothing known.
        assert_eq!(smoothed([(0.0, 5), (1.0, 5), (2.0, 5)].into_iter()), (0.0, 2.0));
        assert_eq!(smoothed([(0.0, 5)].into_iter()), (0.0, 0.0));
    }

    #[test]
    fn a_point_counts_answers_since_the_previous_one() {
        let mut history = History::new();
        let first = history.push(Reading { at_secs: 0.0, successful: 10, failed: 2, ..Reading::default() });
        assert_eq!((first.successful, first.failed, first.achieved_rps), (0, 0, 0.0));
        let next = history.push(Reading {
            at_secs: 1.0,
            sent: 20,
            successful: 19,
            failed: 5,
            target_rps: 20.0,
            cluster_target_rps: 60.0,
            cluster_achieved_rps: Some(59.5),
            ..Reading::default()
        });
        assert_eq!((next.successful, next.failed, next.error_ratio), (9, 3, 0.25));
        assert_eq!((next.achieved_rps, next.cluster_achieved_rps, next.cluster_target_rps), (20.0, 59.5, 60.0));
        // Counters that went back (a new process) give 0, not a wrap.
        let after = history.push(Reading { at_secs: 2.0, sent: 21, successful: 1, failed: 0, ..Reading::default() });
        assert_eq!((after.successful, after.failed), (0, 0));
        // Alone, the cluster's achieved rate is this replica's.
        assert_eq!(after.cluster_achieved_rps, after.achieved_rps);
    }

    #[test]
    fn the_names_rates_add_up_to_the_total() {
        let mut rates = NameRates::default();
        let counts = |a: u64, b: u64, failed_b: u64| {
            BTreeMap::from([
                ("a".to_string(), NameCounts { successful: a, failed: 0 }),
                ("b".to_string(), NameCounts { successful: b, failed: failed_b }),
            ])
        };
        for s in 0..=10u64 {
            rates.push(s as f64, counts(s * 30, s * 9, s));
        }
        let (by_name, window) = rates.rates();
        assert_eq!(window, 1.0);
        assert_eq!(by_name["a"], NameRate { rps: 30.0, failed_rps: 0.0 });
        assert_eq!(by_name["b"], NameRate { rps: 10.0, failed_rps: 1.0 });
        // Slow traffic: the window grows until it holds 10 answers.
        let mut slow = NameRates::default();
        for s in 0..=10u64 {
            slow.push(s as f64, counts(s, s, 0));
        }
        let (by_name, window) = slow.rates();
        assert_eq!(window, 5.0);
        assert_eq!((by_name["a"].rps, by_name["b"].rps), (1.0, 1.0));
    }
}
