//! The `config` of the Artillery script that is not data: the phases that
//! play the stages (every stage and shape of the Artillery script is
//! written here, and only here) and the SLOs as `ensure` conditions.

use std::fmt::Write as _;

use super::super::Spec;
use super::super::text::{num, yaml_str};
use super::flows::Flow;
use super::{Writer, duration, rate};
use crate::observe::slo::{Metric, Percentile};

/// The phases that play the stages, arrivals scaled by `scale` (see
/// [`write`]). Every stage and shape of the Artillery script is written
/// here, and only here.
pub(super) fn phases(out: &mut String, spec: &Spec, scale: f64, ours: f64, sent: u64) {
    if scale != 1.0 {
        let _ = writeln!(
            out,
            "  # Arrivals per request sent: {}/{sent} = {}.",
            num((ours * 1e6).round() / 1e6),
            num((scale * 1e6).round() / 1e6)
        );
    }
    out.push_str("  phases:\n");
    for stage in &spec.traffic.stages {
        let _ = writeln!(out, "    - duration: {}", duration(stage.secs));
        let _ = writeln!(out, "      arrivalRate: {}", rate(stage.from_rps * scale));
        if stage.to_rps != stage.from_rps {
            let _ = writeln!(out, "      rampTo: {}", rate(stage.to_rps * scale));
        }
        let _ = writeln!(out, "      maxVusers: {}", spec.max_in_flight.max(1));
    }
}

impl Writer<'_> {
    pub(super) fn ensure(&mut self, spec: &Spec, flows: &[Flow], sent: u64) -> String {
        if spec.slos.is_empty() {
            return String::new();
        }
        let script = self.script;
        let duration = num(spec.traffic.duration_secs);
        let mut conditions: Vec<(String, String)> = Vec::new();
        let mut by_name = false;
        for slo in &spec.slos {
            let op = slo.op.as_str();
            let expression = match (slo.metric, &slo.scope) {
                (Metric::Latency(p), scope) => {
                    let stat = match p {
                        Percentile::P50 => "p50",
                        Percentile::P90 => "p90",
                        Percentile::P95 => "p95",
                        Percentile::P99 => "p99",
                        Percentile::Max => "max",
                    };
                    let metric = match scope {
                        Some(name) => {
                            by_name = true;
                            format!("plugins.metrics-by-endpoint.response_time.{name}.{stat}")
                        }
                        None => format!("http.response_time.{stat}"),
                    };
                    format!("{metric} {op} {}", num(slo.threshold_ms()))
                }
                (Metric::ErrorRate, None) => {
                    if script.requests.iter().any(|r| r.success != [(200, 299)]) {
                        self.note(
                            "Artillery has no success codes per request: error_rate counts every answer that is not 2xx, and requests without an answer, as errors."
                                .to_string(),
                        );
                    }
                    format!(
                        "(http.requests - http.response_time.2xx.count) / http.requests {op} {}",
                        num(slo.threshold)
                    )
                }
                (Metric::ErrorRate, Some(_)) => {
                    self.note(format!(
                        "{slo}: Artillery counts answers by code per request name but not failures, so this objective is left out."
                    ));
                    continue;
                }
                (Metric::Rps, scope) => {
                    // Requests per second over the run, against the share of
                    // the mean target rate these scenarios send.
                    let sent_share = match scope {
                        None => 1.0,
                        Some(name) => {
                            let Some(index) = script.find(name) else { continue };
                            let of_name: u64 = flows.iter().map(|f| f.weight * f.sends_of(index) as u64).sum();
                            if of_name == 0 || sent == 0 {
                                self.note(format!(
                                    "{slo}: no scenario sends `{name}`, so it has no target rate; left out."
                                ));
                                continue;
                            }
                            of_name as f64 / sent as f64
                        }
                    };
                    // Requests trafficgen sends per arrival (1 without journeys).
                    let weight: u64 = flows.iter().map(|f| f.weight).sum();
                    let ours: f64 = flows.iter().map(|f| f.weight as f64 * f.ours).sum();
                    let per_arrival = if weight == 0 { 1.0 } else { ours / weight as f64 };
                    let expected = spec.traffic.mean_rps() * per_arrival * sent_share * slo.threshold;
                    let count = match scope {
                        None => "http.requests".to_string(),
                        Some(name) => {
                            by_name = true;
                            format!("plugins.metrics-by-endpoint.response_time.{name}.count")
                        }
                    };
                    format!("{count} / {duration} {op} {}", num((expected * 1000.0).round() / 1000.0))
                }
            };
            conditions.push((expression, slo.to_string()));
        }
        let mut out = String::from("  plugins:\n    ensure: {}\n");
        if by_name {
            out.push_str("    metrics-by-endpoint:\n      useOnlyRequestNames: true\n");
        }
        if conditions.is_empty() {
            return out;
        }
        out.push_str(
            "  # The SLOs: Artillery exits 1 when one is missed. rps is a share of the mean target rate of the whole run.\n",
        );
        out.push_str("  ensure:\n    conditions:\n");
        for (expression, clause) in &conditions {
            let _ = writeln!(out, "      - expression: {} # {clause}", yaml_str(expression));
        }
        out
    }
}
