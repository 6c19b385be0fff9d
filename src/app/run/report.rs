//! What `trafficgen run` prints and writes at the end: a table like k6's
//! (per request name: count, rate, latency percentiles, errors by kind),
//! the SLO verdicts, and the same as JSON for `--summary-json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::jobs::slo_watch::SloState;
use crate::jobs::summary::Summary;
use crate::observe::latency::Percentiles;

/// The whole result of a run, as `--summary-json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub target_url: String,
    /// The scenario's name (`normal` without one).
    pub scenario: &'static str,
    pub duration_secs: f64,
    pub max_rps: f64,
    /// A users run (the closed model): the virtual users it rises to;
    /// `max_rps` is then 0 and no rate is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// Stopped before the end because an SLO was missed for a whole window.
    pub aborted: bool,
    /// Stopped before the end by SIGINT/SIGTERM.
    pub interrupted: bool,
    /// Every SLO met at the end (none missed, none without data), and the
    /// run neither aborted nor interrupted.
    pub passed: bool,
    pub summary: Summary,
    /// Per request name, failures without an answer by kind (timeout, connect, …).
    pub errors_by_kind: BTreeMap<String, BTreeMap<String, u64>>,
    pub slo: Vec<SloState>,
    /// The window the SLOs were judged over, seconds.
    pub slo_window_secs: f64,
}

impl RunReport {
    /// The exit code CI sees: 0 when it passed, 1 when not.
    pub fn exit_code(&self) -> u8 {
        if self.passed { 0 } else { 1 }
    }

    /// The table printed at the end.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        let (load, due) = match self.users {
            Some(users) => (format!("up to {users} virtual users"), ", no rate due (the closed model)".to_string()),
            None => (format!("up to {} req/s", trim(self.max_rps)), format!(" of {:.1}/s due", s.target_rps)),
        };
        let _ = writeln!(out, "\n{} for {:.0} s at {load} against {}", self.scenario, s.elapsed_secs, self.target_url);
        let _ = writeln!(
            out,
            "sent {}  successful {}  failed {}  dropped {}  rate {:.1}/s{due}  error ratio {:.2} %",
            s.requests.sent,
            s.requests.successful,
            s.requests.failed,
            s.requests.dropped,
            s.achieved_rps,
            s.error_ratio * 100.0
        );
        let header = ["request", "count", "rate/s", "p50", "p90", "p95", "p99", "max", "errors"];
        let mut rows: Vec<[String; 9]> = Vec::new();
        let secs = s.elapsed_secs.max(f64::MIN_POSITIVE);
        for (name, n) in &s.by_name {
            let count = n.successful + n.failed;
            rows.push(row(name, count, count as f64 / secs, &n.latency_ms.from_sent, self.errors(name, n.failed)));
        }
        let all_count = s.requests.successful + s.requests.failed;
        let all_errors = self.errors("", s.requests.failed);
        rows.push(row("all", all_count, all_count as f64 / secs, &s.latency_ms.from_sent, all_errors));
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        out.push('\n');
        push_row(&mut out, &header.map(String::from), &widths);
        for r in &rows {
            push_row(&mut out, r, &widths);
        }
        let _ = writeln!(
            out,
            "  latency from the send; from the scheduled time (coordinated omission corrected): p99 {} max {}",
            ms(s.latency_ms.from_scheduled.p99),
            ms(s.latency_ms.from_scheduled.max)
        );
        let j = &s.journeys;
        if !j.is_empty() {
            let early: u64 = j.ended_early.values().sum();
            let dropped: u64 = j.dropped.values().sum();
            let _ = writeln!(
                out,
                "journeys: {} arrivals, {} started, {} completed (p50 {} p99 {}), {} ended early, {} dropped, {} running at the end",
                j.arrivals,
                j.started,
                j.completed,
                ms(j.duration_ms.p50),
                ms(j.duration_ms.p99),
                early,
                dropped,
                j.active_at_end
            );
        }
        if !self.slo.is_empty() {
            let _ = writeln!(out, "\nSLOs over the last {} s:", trim(self.slo_window_secs));
            let width = self.slo.iter().map(|x| x.slo.len()).max().unwrap_or(0);
            for state in &self.slo {
                // No data fails a run: nothing showed the objective holds.
                let mark = match state.outcome {
                    "met" => "✓ met".to_string(),
                    "missed" => "✗ missed".to_string(),
                    _ => format!("✗ no data: {}", state.reason.unwrap_or("nothing to judge it on")),
                };
                let value = state.value.map_or("-".to_string(), |v| format!("{v:.2}{}", unit_of(&state.slo)));
                let _ = writeln!(out, "  {:width$}  {:>12}  {mark}", state.slo, value);
            }
        }
        let _ = writeln!(out, "\n{}", self.verdict());
        out
    }

    /// The last line: PASSED, or what failed.
    fn verdict(&self) -> String {
        if self.aborted {
            return "ABORTED: an SLO was missed for a whole window".into();
        }
        if self.passed {
            return "PASSED".into();
        }
        let mut why: Vec<String> = self
            .slo
            .iter()
            .filter_map(|s| match s.outcome {
                "met" => None,
                "missed" => Some(format!("{} missed", s.slo)),
                _ => Some(format!("{} had no data ({})", s.slo, s.reason.unwrap_or("nothing to judge it on"))),
            })
            .collect();
        if self.interrupted {
            why.push("interrupted before the end".into());
        }
        if why.is_empty() { "FAILED".into() } else { format!("FAILED: {}", why.join("; ")) }
    }

    /// The failures of a name (all names for `""`) by kind, as `3 (timeout 2, connect 1)`.
    fn errors(&self, name: &str, failed: u64) -> String {
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for (n, by_kind) in &self.errors_by_kind {
            if name.is_empty() || n == name {
                for (kind, count) in by_kind {
                    *kinds.entry(kind).or_default() += count;
                }
            }
        }
        let no_answer: u64 = kinds.values().sum();
        let mut parts: Vec<String> = kinds.iter().filter(|(_, c)| **c > 0).map(|(k, c)| format!("{k} {c}")).collect();
        let status = failed.saturating_sub(no_answer);
        if status > 0 {
            parts.insert(0, format!("status {status}"));
        }
        if parts.is_empty() { failed.to_string() } else { format!("{failed} ({})", parts.join(", ")) }
    }
}

fn row(name: &str, count: u64, rate: f64, p: &Percentiles, errors: String) -> [String; 9] {
    [
        name.to_string(),
        count.to_string(),
        format!("{rate:.1}"),
        ms(p.p50),
        ms(p.p90),
        ms(p.p95),
        ms(p.p99),
        ms(p.max),
        errors,
    ]
}

fn push_row(out: &mut String, cells: &[String; 9], widths: &[usize; 9]) {
    out.push(' ');
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        let pad = w.saturating_sub(cell.chars().count());
        out.push_str(if i == 0 { " " } else { "  " });
        if i == 0 || i == 8 {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(cell);
        }
    }
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    out.push('\n');
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1000.0 => format!("{:.2}s", v / 1000.0),
        Some(v) => format!("{v:.1}ms"),
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The unit [`crate::jobs::slo_watch::shown_value`] gives an objective's value in.
fn unit_of(slo: &str) -> &'static str {
    let metric = slo.rsplit(':').next().unwrap_or(slo).trim_start();
    if metric.starts_with("error_rate") || metric.starts_with("rps") { " %" } else { " ms" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::summary::{NameSummary, RequestCounts};
    use crate::observe::latency::LatencyPercentiles;

    fn percentiles(p50: f64, max: f64) -> LatencyPercentiles {
        let p = Percentiles {
            count: 10,
            p50: Some(p50),
            p90: Some(p50 * 2.0),
            p95: Some(p50 * 3.0),
            p99: Some(p50 * 4.0),
            max: Some(max),
        };
        LatencyPercentiles { from_scheduled: p, from_sent: p }
    }

    fn report(passed: bool) -> RunReport {
        let mut by_name = BTreeMap::new();
        by_name.insert(
            "create_order".to_string(),
            NameSummary { successful: 90, failed: 10, error_ratio: 0.1, latency_ms: percentiles(2.0, 1500.0) },
        );
        by_name.insert(
            "list_orders".to_string(),
            NameSummary { successful: 50, failed: 0, error_ratio: 0.0, latency_ms: percentiles(1.0, 9.0) },
        );
        let mut kinds = BTreeMap::new();
        kinds.insert(
            "create_order".to_string(),
            BTreeMap::from([("timeout".to_string(), 4), ("connect".to_string(), 0)]),
        );
        RunReport {
            target_url: "http://127.0.0.1:8080".into(),
            scenario: "peak",
            duration_secs: 10.0,
            max_rps: 20.0,
            users: None,
            aborted: false,
            interrupted: false,
            passed,
            summary: Summary {
                elapsed_secs: 10.0,
                requests: RequestCounts { sent: 150, successful: 140, failed: 10, dropped: 0, in_flight_at_end: 0 },
                target_rps: 15.0,
                achieved_rps: 15.0,
                error_ratio: 10.0 / 150.0,
                latency_ms: percentiles(1.5, 1500.0),
                by_name,
                journeys: Default::default(),
            },
            errors_by_kind: kinds,
            slo: vec![
                SloState {
                    slo: "p95<300ms".into(),
                    outcome: "met",
                    value: Some(4.5),
                    missed_for_secs: 0.0,
                    reason: None,
                },
                SloState {
                    slo: "error_rate<1%".into(),
                    outcome: "missed",
                    value: Some(6.667),
                    missed_for_secs: 3.0,
                    reason: None,
                },
                SloState {
                    slo: "list_orders:p95<300ms".into(),
                    outcome: "no_data",
                    value: None,
                    missed_for_secs: 0.0,
                    reason: Some("no request completed in the window"),
                },
            ],
            slo_window_secs: 60.0,
        }
    }

    #[test]
    fn journeys_get_a_line_only_when_any_ran() {
        let mut r = report(true);
        assert!(!r.table().contains("journeys:"), "none ran");
        let j = &mut r.summary.journeys;
        j.arrivals = 150;
        j.started = 150;
        j.completed = 140;
        j.ended_early.insert("not_success".into(), 6);
        j.dropped.insert("max_journeys".into(), 2);
        j.active_at_end = 4;
        j.duration_ms.p50 = Some(1500.0);
        let table = r.table();
        assert!(
            table.contains("journeys: 150 arrivals, 150 started, 140 completed (p50 1.50s p99 -), 6 ended early, 2 dropped, 4 running at the end"),
            "{table}"
        );
    }

    #[test]
    fn the_table_has_a_row_per_name_an_all_row_and_the_verdicts() {
        let table = report(false).table();
        let lines: Vec<&str> = table.lines().collect();
        let header = lines.iter().position(|l| l.trim_start().starts_with("request")).expect(&table);
        assert!(lines[header].contains("p50") && lines[header].contains("p99") && lines[header].contains("errors"));
        let create = lines[header + 1];
        assert!(create.contains("create_order") && create.contains(" 100 ") && create.contains("10.0"), "{create}");
        assert!(create.contains("2.0ms") && create.contains("1.50s"), "{create}");
        assert!(create.ends_with("10 (status 6, timeout 4)"), "errors by kind, zero kinds left out: {create}");
        assert!(lines[header + 2].contains("list_orders") && lines[header + 2].trim_end().ends_with(" 0"));
        let all = lines[header + 3];
        assert!(all.trim_start().starts_with("all") && all.contains(" 150 ") && all.contains("15.0"), "{all}");
        // Columns line up: every row as wide up to the last column.
        let at = |l: &str| l.find("ms").unwrap_or(0);
        assert!(at(create) > 0 && at(lines[header + 2]) > 0);
        assert!(table.contains("✓ met") && table.contains("✗ missed"), "{table}");
        assert!(table.contains("✗ no data: no request completed in the window"), "{table}");
        assert!(table.contains("6.67 %") && table.contains("4.50 ms"), "{table}");
        assert!(
            table.trim_end().ends_with(
                "FAILED: error_rate<1% missed; list_orders:p95<300ms had no data (no request completed in the window)"
            ),
            "{table}"
        );
        assert!(report(true).table().trim_end().ends_with("PASSED"));
        assert_eq!(report(false).exit_code(), 1);
        assert_eq!(report(true).exit_code(), 0);
        let mut interrupted = report(false);
        interrupted.slo.clear();
        interrupted.interrupted = true;
        assert!(interrupted.table().trim_end().ends_with("FAILED: interrupted before the end"));
    }

    #[test]
    fn the_json_summary_has_the_verdict_and_every_number() {
        let json = serde_json::to_value(report(false)).unwrap();
        assert_eq!(json["passed"], false);
        assert_eq!(json["summary"]["requests"]["sent"], 150);
        assert_eq!(json["summary"]["by_name"]["create_order"]["failed"], 10);
        assert_eq!(json["summary"]["latency_ms"]["from_scheduled"]["p99"], 6.0);
        assert_eq!(json["errors_by_kind"]["create_order"]["timeout"], 4);
        assert_eq!(json["slo"][1]["outcome"], "missed");
        assert_eq!(json["slo"][2]["value"], serde_json::Value::Null);
        assert_eq!(json["slo"][2]["reason"], "no request completed in the window");
        assert!(json["slo"][1].get("reason").is_none(), "a reason only for no data: {json}");
    }
}
