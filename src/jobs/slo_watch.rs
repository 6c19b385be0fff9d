//! SLOs judged continuously: a sliding window over readings taken every
//! tick (say every second), and the verdicts of [`crate::observe::slo::evaluate`]
//! over it, with what changed since the previous tick.
//!
//! Pure: the caller reads the counters and the latency table, hands them in
//! as a [`Reading`], and turns the answer into gauges, a `/status` section,
//! an event and a log line. Keeping the window here (differences of
//! cumulative readings) means nothing on the engine's hot path knows SLOs
//! exist.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::jobs::Measures;
use crate::observe::latency::{Counts, Snapshot};
use crate::observe::slo::{self, Latencies, Measured, Outcome, Slo, Verdict, Window};

/// Cumulative counts of one request name (or of all) at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests completed: answered or failed without an answer.
    pub completed: u64,
    /// Of those, the ones that did not count as a success.
    pub failed: u64,
    /// Of those, the ones that got an HTTP answer (any status): what the
    /// `rps` objective counts, so requests a target never answers are no
    /// throughput.
    pub answered: u64,
}

impl Tally {
    fn since(&self, earlier: &Tally) -> Tally {
        Tally {
            completed: self.completed.saturating_sub(earlier.completed),
            failed: self.failed.saturating_sub(earlier.failed),
            answered: self.answered.saturating_sub(earlier.answered),
        }
    }
}

/// What the caller read at one tick. Counters are cumulative; the window
/// subtracts.
#[derive(Debug, Clone)]
pub struct Reading {
    pub at: Instant,
    /// The latency table's snapshot (names in the table's order).
    pub latency: Snapshot,
    /// The table's names, matching `latency`.
    pub names: Vec<String>,
    pub overall: Tally,
    /// Per request name, in the same order as `names`.
    pub by_name: Vec<Tally>,
    /// Requests per second due at this moment (whole rate of this
    /// process); the window averages it.
    pub target_rps: f64,
    /// Each name's share of the traffic (0..=1), in `names` order, to judge
    /// a per-name `rps` objective; empty when unknown.
    pub shares: Vec<f64>,
}

impl Reading {
    /// From the sidecar's measures (see [`crate::jobs::Measures`]): names in
    /// the latency table's order.
    pub fn from_measures(at: Instant, measures: &Measures, target_rps: f64, shares: Vec<f64>) -> Reading {
        let by_name = measures
            .latency_names
            .iter()
            .map(|name| {
                let t = measures.by_name.get(name).copied().unwrap_or_default();
                Tally { completed: t.successful.saturating_add(t.failed), failed: t.failed, answered: t.answered }
            })
            .collect();
        let totals = measures.totals;
        Reading {
            at,
            latency: measures.latency.clone(),
            names: measures.latency_names.clone(),
            overall: Tally {
                completed: totals.successful.saturating_add(totals.failed),
                failed: totals.failed,
                answered: measures.answered,
            },
            by_name,
            target_rps,
            shares,
        }
    }
}

/// An objective whose outcome changed at this tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Flip {
    pub index: usize,
    pub from: Outcome,
    pub to: Outcome,
    pub value: Option<f64>,
}

/// One objective as `/status` and the summary show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloState {
    /// As written, normalised (`p95<300ms`).
    pub slo: String,
    /// `met`, `missed` or `no_data`.
    pub outcome: &'static str,
    /// The measured value in the objective's own unit (ms for latencies,
    /// percent for error_rate and rps), `null` without data.
    pub value: Option<f64>,
    /// Seconds it has been missed without a break (0 when met).
    pub missed_for_secs: f64,
    /// With `no_data`, why (`no request was answered`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

pub fn outcome_str(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Met => "met",
        Outcome::Missed => "missed",
        Outcome::NoData => "no_data",
    }
}

/// The sliding window and the last verdicts.
pub struct SloWatch {
    slos: Vec<Slo>,
    window: Duration,
    /// Readings within the window plus the one just before it, oldest
    /// first: the oldest is the baseline the newest is compared with.
    readings: VecDeque<(Instant, Snapshot, Tally, Vec<Tally>, f64)>,
    names: Vec<String>,
    /// The running workload's request names, as last followed.
    workload_names: Vec<String>,
    shares: Vec<f64>,
    verdicts: Vec<Verdict>,
    /// Per objective, since when it has been missed.
    missed_since: Vec<Option<Instant>>,
    last_at: Option<Instant>,
}

/// Readings kept at most, whatever the tick: bounds memory if a caller
/// ticks far more often than it should.
const MAX_READINGS: usize = 4096;

impl SloWatch {
    pub fn new(slos: Vec<Slo>, window: Duration) -> SloWatch {
        let n = slos.len();
        SloWatch {
            slos,
            window: window.max(Duration::from_secs(1)),
            readings: VecDeque::new(),
            names: Vec::new(),
            workload_names: Vec::new(),
            shares: Vec::new(),
            verdicts: vec![Verdict::NOTHING_YET; n],
            missed_since: vec![None; n],
            last_at: None,
        }
    }

    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Takes the request names of the workload running now (the engine's:
    /// while paused, ahead of the latency table's). Returns the objectives
    /// a change of names left scoped to no request, to warn about; nothing
    /// when the names did not change. Scopes are checked against the
    /// workload at start, so only a swap since can leave one behind.
    pub fn follow_workload(&mut self, names: Vec<String>) -> Vec<&Slo> {
        if names == self.workload_names {
            return Vec::new();
        }
        self.workload_names = names;
        let names = &self.workload_names;
        self.slos.iter().filter(|slo| slo.scope.as_ref().is_some_and(|scope| !names.contains(scope))).collect()
    }

    /// Takes a reading, re-judges every objective over the window, and
    /// returns the objectives whose outcome changed.
    pub fn tick(&mut self, reading: Reading) -> Vec<Flip> {
        if reading.names != self.names {
            // Another workload: its counters are another series. Start over.
            self.readings.clear();
            self.names = reading.names.clone();
        }
        self.shares = reading.shares.clone();
        self.readings.push_back((reading.at, reading.latency, reading.overall, reading.by_name, reading.target_rps));
        // Keep one reading at or before the window's start as the baseline.
        while self.readings.len() > 2
            && self.readings.get(1).is_some_and(|(at, ..)| reading.at.saturating_duration_since(*at) >= self.window)
        {
            self.readings.pop_front();
        }
        while self.readings.len() > MAX_READINGS {
            self.readings.pop_front();
        }
        let window = self.measure();
        let verdicts = slo::evaluate(&self.slos, &window);
        let mut flips = Vec::new();
        for (i, verdict) in verdicts.into_iter().enumerate() {
            let before = self.verdicts[i].outcome;
            if verdict.outcome != before {
                flips.push(Flip { index: i, from: before, to: verdict.outcome, value: verdict.value });
            }
            self.missed_since[i] = match verdict.outcome {
                Outcome::Missed => self.missed_since[i].or(Some(reading.at)),
                _ => None,
            };
            self.verdicts[i] = verdict;
        }
        self.last_at = Some(reading.at);
        flips
    }

    /// The window as [`slo::evaluate`] wants it: newest minus oldest.
    fn measure(&self) -> Window {
        // Nothing measured yet, but the names are known: an objective on one
        // of them has no data for want of time, not of a request.
        let empty = || Window {
            overall: Measured::default(),
            by_name: self.names.iter().map(|name| (name.clone(), Measured::default())).collect(),
        };
        let (Some(first), Some(last)) = (self.readings.front(), self.readings.back()) else {
            return empty();
        };
        let secs = last.0.saturating_duration_since(first.0).as_secs_f64();
        if self.readings.len() < 2 || secs <= 0.0 {
            return empty();
        }
        // The rate due, averaged over the window (each reading's rate held
        // until the next).
        let due: f64 = self
            .readings
            .iter()
            .zip(self.readings.iter().skip(1))
            .map(|(a, b)| a.4.max(0.0) * b.0.saturating_duration_since(a.0).as_secs_f64())
            .sum::<f64>()
            / secs;
        let latency = last.1.since(&first.1);
        let overall_tally = last.2.since(&first.2);
        let overall = measured(&overall_tally, latency.overall().from_sent, secs, due);
        let by_name = self
            .names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let now = last.3.get(i)?;
                let then = first.3.get(i).copied().unwrap_or_default();
                let tally = now.since(&then);
                let counts = latency.name(i).map(|p| p.from_sent.clone()).unwrap_or_default();
                let share = self.shares.get(i).copied().unwrap_or(0.0);
                Some((name.clone(), measured(&tally, counts, secs, due * share)))
            })
            .collect();
        Window { overall, by_name }
    }

    /// The objectives now, for `/status` and summaries.
    pub fn states(&self) -> Vec<SloState> {
        let now = self.last_at;
        self.slos
            .iter()
            .zip(&self.verdicts)
            .zip(&self.missed_since)
            .map(|((slo, verdict), since)| SloState {
                slo: slo.to_string(),
                outcome: outcome_str(verdict.outcome),
                value: verdict.value.map(|v| shown_value(slo, v)),
                missed_for_secs: match (since, now) {
                    (Some(since), Some(now)) => now.saturating_duration_since(*since).as_secs_f64(),
                    _ => 0.0,
                },
                reason: verdict.no_data,
            })
            .collect()
    }

    pub fn verdicts(&self) -> &[Verdict] {
        &self.verdicts
    }

    /// True when every objective is met or has no data: the continuous
    /// watch's view, where a paused sidecar is not failing. (`trafficgen
    /// run` is stricter and fails on no data too.)
    pub fn all_hold(&self) -> bool {
        self.verdicts.iter().all(|v| v.outcome != Outcome::Missed)
    }

    /// An objective that has been missed without a break for at least the
    /// whole window (`--abort-on-fail`).
    pub fn missed_for_a_window(&self) -> Option<usize> {
        let now = self.last_at?;
        self.missed_since.iter().position(|s| s.is_some_and(|s| now.saturating_duration_since(s) >= self.window))
    }
}

/// The value in the unit the objective was written in: ms for latencies,
/// percent for ratios (`error_rate<1%` shows 0.4, not 0.004).
pub fn shown_value(slo: &Slo, value: f64) -> f64 {
    match slo.metric {
        slo::Metric::Latency(_) => value * 1000.0,
        slo::Metric::ErrorRate | slo::Metric::Rps => value * 100.0,
    }
}

fn measured(tally: &Tally, counts: Counts, secs: f64, target_rps: f64) -> Measured {
    let latency = (!counts.is_empty()).then(|| {
        let q = |q: f64| counts.quantile(q).map_or(0.0, |d| d.as_secs_f64());
        Latencies {
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            max: counts.max().map_or(0.0, |d| d.as_secs_f64()),
        }
    });
    Measured {
        count: tally.completed,
        errors: tally.failed,
        latency,
        answered_rps: tally.answered as f64 / secs,
        target_rps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::latency::LatencyTable;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    struct Rig {
        table: LatencyTable,
        start: Instant,
        overall: Tally,
        by_name: Vec<Tally>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                table: LatencyTable::new(["a", "b"]),
                start: Instant::now(),
                overall: Tally::default(),
                by_name: vec![Tally::default(); 2],
            }
        }

        /// `n` answers of name `i` taking `latency`, `failed` of them failures.
        fn answer(&mut self, i: usize, n: u64, failed: u64, latency: Duration) {
            for _ in 0..n {
                self.table.record(i, latency, latency);
            }
            for t in [&mut self.overall, &mut self.by_name[i]] {
                t.completed += n;
                t.failed += failed;
                t.answered += n;
            }
        }

        /// `n` requests of name `i` that failed without an answer (refused).
        fn fail_unanswered(&mut self, i: usize, n: u64) {
            for t in [&mut self.overall, &mut self.by_name[i]] {
                t.completed += n;
                t.failed += n;
            }
        }

        fn reading(&self, secs: u64, target_rps: f64) -> Reading {
            Reading {
                at: self.start + Duration::from_secs(secs),
                latency: self.table.snapshot(),
                names: vec!["a".into(), "b".into()],
                overall: self.overall,
                by_name: self.by_name.clone(),
                target_rps,
                shares: vec![0.5, 0.5],
            }
        }
    }

    #[test]
    fn a_latency_objective_flips_when_the_window_fills_with_slow_answers_and_back() {
        let slos = slo::parse("p95<300ms,error_rate<1%").unwrap();
        let mut watch = SloWatch::new(slos, Duration::from_secs(10));
        let mut rig = Rig::new();
        assert!(watch.tick(rig.reading(0, 100.0)).is_empty(), "nothing to judge yet");
        rig.answer(0, 100, 0, ms(20));
        let flips = watch.tick(rig.reading(1, 100.0));
        assert_eq!(flips.len(), 2, "both go from no data to met: {flips:?}");
        assert!(flips.iter().all(|f| f.to == Outcome::Met));
        // Ten seconds of slow answers push p95 over 300 ms.
        let mut flipped_at = None;
        for s in 2..=12 {
            rig.answer(0, 100, 0, ms(500));
            let flips = watch.tick(rig.reading(s, 100.0));
            if flips.iter().any(|f| f.index == 0 && f.to == Outcome::Missed) {
                flipped_at.get_or_insert(s);
            }
        }
        assert_eq!(flipped_at, Some(2), "a p95 over a window mostly of 500 ms answers misses at once");
        let states = watch.states();
        assert_eq!(states[0].outcome, "missed");
        assert!(states[0].value.unwrap() >= 500.0, "{states:?}");
        assert_eq!(states[0].missed_for_secs, 10.0);
        assert_eq!(watch.missed_for_a_window(), Some(0));
        assert!(!watch.all_hold());
        // Fast again: once the slow seconds leave the window, it is met.
        let mut back_at = None;
        for s in 13..=30 {
            rig.answer(0, 100, 0, ms(10));
            if watch.tick(rig.reading(s, 100.0)).iter().any(|f| f.index == 0 && f.to == Outcome::Met) {
                back_at.get_or_insert(s);
            }
        }
        let back_at = back_at.expect("met again");
        assert!((20..=22).contains(&back_at), "met again at {back_at}, when slow answers are < 5 % of the window");
        assert_eq!(watch.missed_for_a_window(), None);
        assert!(watch.all_hold());
    }

    #[test]
    fn error_rate_and_rps_are_ratios_over_the_window_shown_in_percent() {
        let slos = slo::parse("error_rate<1%,rps>=95%,b:rps>=95%,a:error_rate<=50%").unwrap();
        let mut watch = SloWatch::new(slos, Duration::from_secs(5));
        let mut rig = Rig::new();
        watch.tick(rig.reading(0, 100.0));
        for s in 1..=5 {
            rig.answer(0, 50, 2, ms(5)); // 4 % errors on a
            rig.answer(1, 40, 0, ms(5)); // b sends 40 of its 50/s
            watch.tick(rig.reading(s, 100.0));
        }
        let states = watch.states();
        assert_eq!(states[0].outcome, "missed");
        assert!((states[0].value.unwrap() - 10.0 / 450.0 * 100.0).abs() < 1e-9, "{states:?}");
        assert_eq!(states[1].outcome, "missed", "90 of 100/s is under 95 %");
        assert!((states[1].value.unwrap() - 90.0).abs() < 1e-9);
        assert_eq!(states[2].outcome, "missed", "b: 40 of its 50/s");
        assert!((states[2].value.unwrap() - 80.0).abs() < 1e-9);
        assert_eq!(states[3].outcome, "met");
        assert!((states[3].value.unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn the_window_is_bounded_and_a_new_workload_starts_it_over() {
        let mut watch = SloWatch::new(slo::parse("p99<1s").unwrap(), Duration::from_secs(3));
        let mut rig = Rig::new();
        for s in 0..100 {
            rig.answer(1, 10, 0, ms(5));
            watch.tick(rig.reading(s, 10.0));
        }
        assert!(watch.readings.len() <= 5, "kept {}", watch.readings.len());
        let mut other = rig.reading(100, 10.0);
        other.names = vec!["c".into()];
        other.by_name.truncate(1);
        let flips = watch.tick(other);
        assert_eq!(flips, vec![Flip { index: 0, from: Outcome::Met, to: Outcome::NoData, value: None }]);
    }

    #[test]
    fn no_traffic_is_no_data_never_a_miss() {
        let mut watch = SloWatch::new(slo::parse("p95<1ms,error_rate<1%,rps>=99%").unwrap(), Duration::from_secs(5));
        let rig = Rig::new();
        for s in 0..10 {
            watch.tick(rig.reading(s, 0.0));
        }
        assert!(watch.states().iter().all(|s| s.outcome == "no_data"), "{:?}", watch.states());
        assert!(watch.states().iter().all(|s| s.reason.is_some()), "{:?}", watch.states());
        assert!(watch.all_hold());
    }

    #[test]
    fn a_target_that_answers_nothing_meets_no_rate_and_has_no_latency() {
        let slos = slo::parse("rps>=95%,a:rps>=50%,p99<1s,a:p99<1s").unwrap();
        let mut watch = SloWatch::new(slos, Duration::from_secs(5));
        let mut rig = Rig::new();
        watch.tick(rig.reading(0, 20.0));
        for s in 1..=5 {
            rig.fail_unanswered(0, 10);
            rig.fail_unanswered(1, 10);
            watch.tick(rig.reading(s, 20.0));
        }
        let states = watch.states();
        assert_eq!((states[0].outcome, states[0].value, states[0].reason), ("missed", Some(0.0), None), "{states:?}");
        assert_eq!((states[1].outcome, states[1].value), ("missed", Some(0.0)), "{states:?}");
        for state in &states[2..] {
            assert_eq!(state.outcome, "no_data", "{states:?}");
            assert_eq!(state.reason, Some("no request was answered"));
        }
        let json = serde_json::to_value(&states).unwrap();
        assert_eq!(json[2]["reason"], "no request was answered");
        assert!(json[0].get("reason").is_none(), "no reason without no_data: {json}");
        // Answered, even with errors: that is throughput again.
        for s in 6..=11 {
            rig.answer(0, 10, 10, ms(5));
            rig.answer(1, 10, 0, ms(5));
            watch.tick(rig.reading(s, 20.0));
        }
        let states = watch.states();
        assert_eq!((states[0].outcome, states[0].value), ("met", Some(100.0)), "{states:?}");
        assert!(states.iter().all(|s| s.outcome == "met"), "{states:?}");
    }

    #[test]
    fn objectives_scoped_to_a_request_a_new_workload_lacks_are_listed_once() {
        let slos = slo::parse("a:p99<1s,b:p99<1s,p99<1s").unwrap();
        let mut watch = SloWatch::new(slos, Duration::from_secs(5));
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        assert!(watch.follow_workload(names(&["a", "b"])).is_empty(), "the workload at start");
        let mut rig = Rig::new();
        watch.tick(rig.reading(0, 10.0));
        rig.answer(0, 10, 0, ms(5));
        let left: Vec<String> = watch.follow_workload(names(&["a", "c"])).into_iter().map(Slo::to_string).collect();
        assert_eq!(left, ["b:p99<1s"]);
        assert!(watch.follow_workload(names(&["a", "c"])).is_empty(), "said once per swap");
        let mut other = rig.reading(1, 10.0);
        other.names = names(&["a", "c"]);
        watch.tick(other);
        let states = watch.states();
        assert_eq!(states[0].reason, Some("no request completed in the window"), "a new series, no window yet");
        assert_eq!(states[1].reason, Some("no request of the running workload has this name"));
    }
}
