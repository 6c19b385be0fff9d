//! The k6 options: the arrival-rate scenario that plays the stages, its
//! VUs, and the SLOs as thresholds. Every stage and shape of the k6 script
//! is written here, and only here.

use std::fmt::Write as _;

use super::super::script::{Entry, Script};
use super::super::text::{comment, go_duration, js_str, num};
use super::super::{Spec, expected_rps};
use crate::observe::slo::{Metric, Percentile};

/// Iterations per `timeUnit` must be whole numbers: the smallest unit of
/// 1, 10, 100 or 1000 seconds that makes every rate one.
fn time_unit(rates: &[f64]) -> u64 {
    for unit in [1u64, 10, 100, 1000] {
        if rates.iter().all(|r| {
            let scaled = r * unit as f64;
            (scaled - scaled.round()).abs() < 1e-6
        }) {
            return unit;
        }
    }
    1000
}

/// The options: the arrival-rate scenario that plays the stages, its VUs,
/// and the thresholds. Every stage and shape of the k6 script is written
/// here, and only here.
pub fn options(out: &mut String, script: &Script, spec: &Spec) {
    if spec.users.is_some() {
        users_options(out, script, spec);
        return;
    }
    let traffic = &spec.traffic;
    let max_vus = if script.journeys.is_empty() {
        spec.max_in_flight.max(1)
    } else {
        spec.max_in_flight.max(1) + spec.max_journeys.max(1)
    };
    // Enough VUs for answers of about 100 ms at the peak (and journeys for
    // their pauses); k6 adds more up to maxVUs.
    let pre_allocated = ((traffic.peak_rps() * mean_iteration_secs(script)).ceil() as usize).clamp(1, max_vus);
    out.push_str("export const options = {\n  scenarios: {\n    traffic: {\n");
    let mut rates: Vec<f64> = traffic.stages.iter().flat_map(|s| [s.from_rps, s.to_rps]).collect();
    rates.push(0.0);
    let unit = time_unit(&rates);
    let per_unit = |r: f64| (r * unit as f64).round() as u64;
    if unit > 1 {
        let _ = writeln!(
            out,
            "      // Rates are whole numbers of iterations per timeUnit: {unit} s here, for rates with fractions."
        );
    }
    match traffic.constant_rps() {
        Some(rps) => {
            out.push_str("      executor: \"constant-arrival-rate\",\n");
            let _ = writeln!(out, "      rate: {},", per_unit(rps));
            let _ = writeln!(out, "      timeUnit: \"{unit}s\",");
            let _ = writeln!(out, "      duration: {},", js_str(&go_duration(traffic.duration_secs)));
        }
        None => {
            out.push_str("      executor: \"ramping-arrival-rate\",\n");
            let start = traffic.stages.first().map_or(0.0, |s| s.from_rps);
            let _ = writeln!(out, "      startRate: {},", per_unit(start));
            let _ = writeln!(out, "      timeUnit: \"{unit}s\",");
            out.push_str("      stages: [\n");
            let mut current = start;
            for stage in &traffic.stages {
                if stage.from_rps != current {
                    let _ = writeln!(out, "        {{ duration: \"0s\", target: {} }},", per_unit(stage.from_rps));
                }
                let _ = writeln!(
                    out,
                    "        {{ duration: {}, target: {} }},",
                    js_str(&go_duration(stage.secs)),
                    per_unit(stage.to_rps)
                );
                current = stage.to_rps;
            }
            out.push_str("      ],\n");
        }
    }
    let _ = writeln!(out, "      preAllocatedVUs: {pre_allocated},");
    out.push_str("      maxVUs: MAX_VUS,\n    },\n  },\n");
    thresholds(out, script, spec);
    out.push_str("};\n\n");
}

/// The closed model: virtual users (`constant-vus`, or `ramping-vus`
/// over the stages, which are numbers of users), each iteration followed
/// by the users' pause (see the default function).
fn users_options(out: &mut String, script: &Script, spec: &Spec) {
    let traffic = &spec.traffic;
    let users = |n: f64| n.round().max(0.0) as u64;
    out.push_str("export const options = {\n  scenarios: {\n    traffic: {\n");
    out.push_str("      // trafficgen's users mode: a closed model, each VU a user that pauses between iterations.\n");
    match traffic.constant_rps() {
        Some(n) => {
            out.push_str("      executor: \"constant-vus\",\n");
            let _ = writeln!(out, "      vus: {},", users(n).max(1));
            let _ = writeln!(out, "      duration: {},", js_str(&go_duration(traffic.duration_secs)));
        }
        None => {
            out.push_str("      executor: \"ramping-vus\",\n");
            let start = traffic.stages.first().map_or(0.0, |s| s.from_rps);
            let _ = writeln!(out, "      startVUs: {},", users(start));
            out.push_str("      stages: [\n");
            let mut current = start;
            for stage in &traffic.stages {
                if stage.from_rps != current {
                    let _ = writeln!(out, "        {{ duration: \"0s\", target: {} }},", users(stage.from_rps));
                }
                let _ = writeln!(
                    out,
                    "        {{ duration: {}, target: {} }},",
                    js_str(&go_duration(stage.secs)),
                    users(stage.to_rps)
                );
                current = stage.to_rps;
            }
            out.push_str("      ],\n");
        }
    }
    out.push_str("    },\n  },\n");
    thresholds(out, script, spec);
    out.push_str("};\n\n");
}

/// How long an iteration lasts, on average, at 100 ms an answer.
fn mean_iteration_secs(script: &Script) -> f64 {
    const ANSWER_SECS: f64 = 0.1;
    let total = script.total_weight();
    if total == 0 {
        return ANSWER_SECS;
    }
    let weighted: f64 = script
        .mix
        .iter()
        .map(|(e, w)| {
            let secs = match e {
                Entry::Request(_) => ANSWER_SECS,
                Entry::Journey(j) => {
                    let j = &script.journeys[*j];
                    j.mean_pause_secs() + ANSWER_SECS * j.sends() as f64
                }
            };
            secs * *w as f64
        })
        .sum();
    weighted / total as f64
}

fn thresholds(out: &mut String, script: &Script, spec: &Spec) {
    if spec.slos.is_empty() {
        return;
    }
    // One key per metric and name, in the order the SLOs name them.
    let mut keys: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for slo in &spec.slos {
        let (metric, expression) = match slo.metric {
            Metric::Latency(p) => {
                let stat = match p {
                    Percentile::P50 => "p(50)".to_string(),
                    Percentile::P90 => "p(90)".to_string(),
                    Percentile::P95 => "p(95)".to_string(),
                    Percentile::P99 => "p(99)".to_string(),
                    Percentile::Max => "max".to_string(),
                };
                ("http_req_duration", format!("{stat}{}{}", slo.op.as_str(), num(slo.threshold_ms())))
            }
            Metric::ErrorRate => ("http_req_failed", format!("rate{}{}", slo.op.as_str(), num(slo.threshold))),
            Metric::Rps if spec.users.is_some() => {
                left_out.push(format!("{slo}: users mode has no target rate to compare with; left out."));
                continue;
            }
            Metric::Rps => match expected_rps(script, spec, slo.scope.as_deref()) {
                Some(expected) => (
                    "http_reqs",
                    format!("rate{}{}", slo.op.as_str(), num((slo.threshold * expected * 1000.0).round() / 1000.0)),
                ),
                None => {
                    left_out.push(format!(
                        "{slo}: `{}` is never drawn by weight, so it has no target rate to compare with; left out.",
                        slo.scope.as_deref().unwrap_or_default()
                    ));
                    continue;
                }
            },
        };
        let key = match &slo.scope {
            Some(name) => format!("{metric}{{name:{name}}}"),
            None => metric.to_string(),
        };
        match keys.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, expressions, clauses)) => {
                expressions.push(expression);
                clauses.push(slo.to_string());
            }
            None => keys.push((key, vec![expression], vec![slo.to_string()])),
        }
    }
    out.push_str("  // The SLOs. rps is a share of the mean target rate of the whole run (requests due / duration).\n");
    out.push_str("  thresholds: {\n");
    for (key, expressions, clauses) in &keys {
        let list: Vec<String> = expressions.iter().map(|e| js_str(e)).collect();
        let _ = writeln!(out, "    {}: [{}], // {}", js_str(key), list.join(", "), clauses.join(", "));
    }
    for note in &left_out {
        comment(out, "    ", "// ", note);
    }
    out.push_str("  },\n");
}
