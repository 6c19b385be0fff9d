//! The numbers of an interval — a job, the last 500 ms of one, an SLO
//! window — from two moments' measures: counts, achieved against target
//! rate, error ratio, latency percentiles, overall and per request name.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::observe::latency::{LatencyPercentiles, Percentiles, Snapshot};

/// The sidecar's counters at a moment (all traffic, since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Handed to the client.
    pub sent: u64,
    /// Answered with a success code.
    pub successful: u64,
    /// Answered otherwise, or not at all.
    pub failed: u64,
    /// Due by the schedule but not sent.
    pub dropped: u64,
}

impl Totals {
    /// What happened between `earlier` and this (never below 0).
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            sent: self.sent.saturating_sub(earlier.sent),
            successful: self.successful.saturating_sub(earlier.successful),
            failed: self.failed.saturating_sub(earlier.failed),
            dropped: self.dropped.saturating_sub(earlier.dropped),
        }
    }

    /// Share of completed requests that failed (0 when none completed).
    pub fn error_ratio(&self) -> f64 {
        ratio(self.failed, self.successful.saturating_add(self.failed))
    }
}

/// One request name's counters at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameTotals {
    pub successful: u64,
    pub failed: u64,
    /// Answered with any status (successful, and failed with an answer).
    #[serde(default)]
    pub answered: u64,
}

impl NameTotals {
    fn since(&self, earlier: &NameTotals) -> NameTotals {
        NameTotals {
            successful: self.successful.saturating_sub(earlier.successful),
            failed: self.failed.saturating_sub(earlier.failed),
            answered: self.answered.saturating_sub(earlier.answered),
        }
    }
}

/// Everything read at one moment, to be subtracted from a later one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measures {
    pub totals: Totals,
    /// Requests answered with any status (all traffic): what the `rps`
    /// objective counts.
    pub answered: u64,
    pub by_name: BTreeMap<String, NameTotals>,
    /// Requests sent and not yet answered.
    pub in_flight: u64,
    pub latency: Snapshot,
    /// The latency table's names, in its order.
    pub latency_names: Vec<String>,
    pub journeys: JourneyMeasures,
}

/// Arrivals and journeys at a moment (all traffic, since start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JourneyMeasures {
    /// Arrivals drawn: requests and journeys.
    pub arrivals: u64,
    /// Instances running now.
    pub active: u64,
    pub started: u64,
    pub completed: u64,
    /// Ended before their last step, by reason.
    pub ended: BTreeMap<String, u64>,
    /// Arrivals that started no instance, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Durations of the completed instances (the running workload's table).
    pub durations: Snapshot,
}

/// Journeys over an interval: shown when any ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JourneySummary {
    /// Arrivals drawn (requests and journeys).
    pub arrivals: u64,
    pub started: u64,
    pub completed: u64,
    /// Ended before their last step, by reason.
    pub ended_early: BTreeMap<String, u64>,
    /// Arrivals that started no instance, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Running at the end.
    pub active_at_end: u64,
    /// From the arrival to the end of the last step, of those completed.
    pub duration_ms: Percentiles,
}

impl JourneySummary {
    /// No journey ran: the summary leaves the section out.
    pub fn is_empty(&self) -> bool {
        self.started == 0 && self.active_at_end == 0 && self.dropped.values().all(|n| *n == 0)
    }
}

fn since_by_reason(now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter().map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0)))).collect()
}

impl JourneyMeasures {
    fn since(&self, start: &JourneyMeasures) -> JourneySummary {
        JourneySummary {
            arrivals: self.arrivals.saturating_sub(start.arrivals),
            started: self.started.saturating_sub(start.started),
            completed: self.completed.saturating_sub(start.completed),
            ended_early: since_by_reason(&self.ended, &start.ended),
            dropped: since_by_reason(&self.dropped, &start.dropped),
            active_at_end: self.active,
            duration_ms: Percentiles::of(&self.durations.since(&start.durations).overall().from_sent),
        }
    }
}

/// Requests of an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub sent: u64,
    pub successful: u64,
    pub failed: u64,
    pub dropped: u64,
    /// Sent in the interval and not answered by its end.
    pub in_flight_at_end: u64,
}

/// One request name over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NameSummary {
    pub successful: u64,
    pub failed: u64,
    pub error_ratio: f64,
    pub latency_ms: LatencyPercentiles,
}

/// The numbers of an interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How long it lasted.
    pub elapsed_secs: f64,
    pub requests: RequestCounts,
    /// What the schedule asked for, on average over the interval.
    pub target_rps: f64,
    /// What was sent, on average.
    pub achieved_rps: f64,
    /// Failed over completed.
    pub error_ratio: f64,
    /// Overall: from the scheduled send time and from the actual one.
    pub latency_ms: LatencyPercentiles,
    pub by_name: BTreeMap<String, NameSummary>,
    /// Arrivals and journey instances, when the workload has journeys.
    #[serde(default, skip_serializing_if = "JourneySummary::is_empty")]
    pub journeys: JourneySummary,
}

impl Summary {
    /// From `start` to `end`, `elapsed_secs` apart, during which the
    /// schedule asked for `planned` requests.
    pub fn between(start: &Measures, end: &Measures, elapsed_secs: f64, planned: f64) -> Summary {
        let elapsed_secs = if elapsed_secs.is_finite() { elapsed_secs.max(0.0) } else { 0.0 };
        let totals = end.totals.since(&start.totals);
        let latency = end.latency.since(&start.latency);
        let report = latency.report(&end.latency_names);
        let mut by_name = BTreeMap::new();
        for (name, now) in &end.by_name {
            let counts = now.since(&start.by_name.get(name).copied().unwrap_or_default());
            if counts.successful + counts.failed == 0 {
                continue;
            }
            by_name.insert(
                name.clone(),
                NameSummary {
                    successful: counts.successful,
                    failed: counts.failed,
                    error_ratio: ratio(counts.failed, counts.successful + counts.failed),
                    latency_ms: report.by_name.get(name).copied().unwrap_or_default(),
                },
            );
        }
        Summary {
            elapsed_secs: round3(elapsed_secs),
            requests: RequestCounts {
                sent: totals.sent,
                successful: totals.successful,
                failed: totals.failed,
                dropped: totals.dropped,
                in_flight_at_end: end.in_flight,
            },
            target_rps: round3(per_sec(if planned.is_finite() { planned.max(0.0) } else { 0.0 }, elapsed_secs)),
            achieved_rps: round3(per_sec(totals.sent as f64, elapsed_secs)),
            error_ratio: round4(totals.error_ratio()),
            latency_ms: report.overall,
            by_name,
            journeys: end.journeys.since(&start.journeys),
        }
    }
}

/// A running job's live numbers (the `progress` event, every 500 ms).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub job_id: String,
    pub scenario: &'static str,
    pub elapsed_secs: f64,
    pub duration_secs: f64,
    /// The schedule's rate now.
    pub target_rps: f64,
    /// Sent over the interval since the previous progress.
    pub achieved_rps: f64,
    /// Since the job started.
    pub requests: RequestCounts,
    /// Over the interval.
    pub error_ratio: f64,
    /// Over the interval, overall.
    pub latency_ms: LatencyPercentiles,
    pub interval_secs: f64,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn per_sec(count: f64, secs: f64) -> f64 {
    if secs > 0.0 { count / secs } else { 0.0 }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::latency::LatencyTable;
    use std::time::Duration;

    fn measures(table: &LatencyTable, totals: Totals, by_name: &[(&str, u64, u64)], in_flight: u64) -> Measures {
        Measures {
            totals,
            answered: totals.successful + totals.failed,
            by_name: by_name
                .iter()
                .map(|(n, s, f)| (n.to_string(), NameTotals { successful: *s, failed: *f, answered: s + f }))
                .collect(),
            in_flight,
            latency: table.snapshot(),
            latency_names: table.names().to_vec(),
            journeys: JourneyMeasures::default(),
        }
    }

    #[test]
    fn an_interval_counts_only_what_happened_in_it() {
        let table = LatencyTable::new(["create", "list"]);
        table.record(0, Duration::from_millis(900), Duration::ZERO);
        let start = measures(
            &table,
            Totals { sent: 100, successful: 90, failed: 10, dropped: 1 },
            &[("create", 60, 5), ("list", 30, 5)],
            0,
        );
        for _ in 0..40 {
            table.record(0, Duration::from_millis(20), Duration::from_millis(5));
        }
        for _ in 0..10 {
            table.record(1, Duration::from_millis(2), Duration::ZERO);
        }
        let end = measures(
            &table,
            Totals { sent: 151, successful: 130, failed: 20, dropped: 4 },
            &[("create", 90, 15), ("list", 40, 5), ("idle", 0, 0)],
            1,
        );
        let summary = Summary::between(&start, &end, 10.0, 50.0);
        assert_eq!(
            summary.requests,
            RequestCounts { sent: 51, successful: 40, failed: 10, dropped: 3, in_flight_at_end: 1 }
        );
        assert_eq!((summary.target_rps, summary.achieved_rps, summary.error_ratio), (5.0, 5.1, 0.2));
        assert_eq!(summary.latency_ms.from_sent.count, 50);
        // The 900 ms before the start is not in it.
        assert!(summary.latency_ms.from_sent.max.unwrap() < 21.0, "{:?}", summary.latency_ms);
        let create = summary.by_name["create"];
        assert_eq!((create.successful, create.failed, create.error_ratio), (30, 10, 0.25));
        assert!((create.latency_ms.from_scheduled.p50.unwrap() - 25.0).abs() < 0.2);
        assert_eq!(summary.by_name["list"].failed, 0);
        assert!(!summary.by_name.contains_key("idle"), "a name without answers is left out");
    }

    #[test]
    fn nothing_in_an_interval_gives_zeros_not_nan() {
        let table = LatencyTable::new(["a"]);
        let m = measures(&table, Totals::default(), &[], 0);
        for elapsed in [0.0, f64::NAN, -1.0, f64::INFINITY] {
            let summary = Summary::between(&m, &m, elapsed, f64::NAN);
            assert_eq!((summary.target_rps, summary.achieved_rps, summary.error_ratio), (0.0, 0.0, 0.0));
            assert!(serde_json::to_string(&summary).is_ok());
        }
    }

    #[test]
    fn counters_that_went_back_count_as_nothing() {
        let later = Totals { sent: 5, successful: 5, failed: 0, dropped: 0 };
        let earlier = Totals { sent: 9, successful: 9, failed: 1, dropped: 2 };
        assert_eq!(later.since(&earlier), Totals::default());
    }
}
