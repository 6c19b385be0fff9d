//! The `config` of the Artillery script that is not data: the phases that
//! play the stages (every stage and shape of the Artillery script is
//! written here, and only here) and the SLOs as `ensure` conditions.

use std::fmt::Write as _;

use super::super::text::{num, yaml_str};
use super::super::{ClosedModel, Spec};
use super::flows::{Flow, FlowStep};
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

/// How long an answer is taken to be when a loop's length is estimated,
/// as k6's pre-allocated VUs are.
const ANSWER_SECS: f64 = 0.1;

/// One phase of users mode: users added evenly over a duration, or none.
#[derive(Debug, Clone, PartialEq)]
enum UserPhase {
    Add { secs: f64, users: u64 },
    Pause { secs: f64 },
}

/// Users mode, the nearest Artillery has: virtual users added by the
/// phases as the stages add users (never removed: Artillery cannot retire
/// one), each looping its scenario for an estimated life, with scenario
/// weights that give each as many users as trafficgen's users would be
/// busy with it.
pub(in crate::export) struct UserPlan {
    phases: Vec<UserPhase>,
    /// Users added over the run (every rise of the stages, added up).
    added: u64,
    /// The stages' user-seconds (their integral).
    user_secs: f64,
    /// A user's life: `user_secs / added`.
    life_secs: f64,
    peak: u64,
    /// Per flow: iterations of its loop, and its scenario weight.
    pub loops: Vec<u64>,
    pub weights: Vec<u64>,
    /// Per flow: the expected length of one iteration, seconds.
    iteration_secs: Vec<f64>,
    pause: ClosedModel,
}

impl UserPlan {
    pub fn of(spec: &Spec, pause: ClosedModel, flows: &[Flow]) -> UserPlan {
        let mut phases: Vec<UserPhase> = Vec::new();
        let hold = |phases: &mut Vec<UserPhase>, secs: f64| {
            if secs <= 0.0 {
                return;
            }
            match phases.last_mut() {
                Some(UserPhase::Pause { secs: s }) => *s += secs,
                _ => phases.push(UserPhase::Pause { secs }),
            }
        };
        let whole = |n: f64| n.round().max(0.0) as u64;
        let (mut before, mut added) = (0u64, 0u64);
        for stage in &spec.traffic.stages {
            let (a, b) = (whole(stage.from_rps), whole(stage.to_rps));
            let mut left = stage.secs;
            if a > before {
                // A jump up: its users within a second (or the stage, if shorter).
                let secs = left.min(1.0);
                phases.push(UserPhase::Add { secs, users: a - before });
                added += a - before;
                left -= secs;
            }
            if b > a && left > 0.0 {
                phases.push(UserPhase::Add { secs: left, users: b - a });
                added += b - a;
            } else {
                hold(&mut phases, left);
            }
            before = b;
        }
        let user_secs: f64 = spec.traffic.stages.iter().map(|s| (s.from_rps + s.to_rps) / 2.0 * s.secs).sum();
        let life_secs = if added == 0 { 0.0 } else { user_secs / added as f64 };
        let mean_pause = (pause.min_pause_secs + pause.max_pause_secs) / 2.0;
        let iteration_secs: Vec<f64> = flows
            .iter()
            .map(|f| {
                let thinks: f64 = f
                    .steps
                    .iter()
                    .map(|s| match s {
                        FlowStep::Think(p) => p.mean_secs(),
                        FlowStep::Send(_) => 0.0,
                    })
                    .sum();
                f.sends() as f64 * ANSWER_SECS + thinks + mean_pause
            })
            .collect();
        let loops = iteration_secs.iter().map(|t| ((life_secs / t.max(0.001)).round() as u64).max(1)).collect();
        // Weight × iteration length, in whole milliseconds, over their
        // greatest common divisor.
        let raw: Vec<u64> = flows
            .iter()
            .zip(&iteration_secs)
            .map(|(f, t)| f.weight.saturating_mul(((t * 1000.0).round() as u64).max(1)))
            .collect();
        let divisor = raw.iter().fold(0, |g, w| super::super::script::gcd(g, *w)).max(1);
        let weights = raw.iter().map(|w| w / divisor).collect();
        UserPlan {
            phases,
            added,
            user_secs,
            life_secs,
            peak: whole(spec.traffic.peak_rps()).max(1),
            loops,
            weights,
            iteration_secs,
            pause,
        }
    }

    /// The header's account of what was written instead of a closed model.
    pub fn explain(&self) -> Vec<String> {
        let pause = if self.pause.min_pause_secs == self.pause.max_pause_secs {
            format!("{} s", num(self.pause.min_pause_secs))
        } else {
            format!("{} to {} s", num(self.pause.min_pause_secs), num(self.pause.max_pause_secs))
        };
        vec![
            format!(
                "trafficgen's users mode is a closed model: N virtual users, each running one arrival (drawn by weight) to its end, pausing {pause}, and again, their number following the stages. Artillery has no closed model: its virtual users arrive by phases and each runs one scenario once. This script is the nearest it allows, and it is not the same."
            ),
            format!(
                "What is written instead: each virtual user stands for one of trafficgen's users and loops its scenario, with a think of the users' pause after each iteration. The phases add users as the stages rise ({} in all: a rise over its stage as arrivalCount, a jump or a constant number within 1 s) and add none while they hold or fall. Each loop's count is an estimate: the stages' user-seconds ({}) over the users added give a user's life ({} s), divided by an iteration's expected length (its requests at {} ms each, its journey's pauses and the users' pause). Scenario weights are the arrival weights times those lengths, so that about as many users run each scenario as trafficgen's users would be busy with it, and arrivals come in its proportions.",
                self.added,
                num((self.user_secs * 1000.0).round() / 1000.0),
                num((self.life_secs * 1000.0).round() / 1000.0),
                num(ANSWER_SECS * 1000.0)
            ),
            format!(
                "How it differs: users cannot retire when the stages go down (each runs its loops out, the first added first gone); a user draws its scenario once and keeps it, where trafficgen's draw each iteration; with answers slower than {} ms a user lives longer than planned (and may still run after the stages end), with faster ones it leaves early; at most {} (the stages' peak) run at once (maxVusers). Like any closed model it slows down with the target and hides its queueing (coordinated omission). For an honest rate, export with a rate instead.",
                num(ANSWER_SECS * 1000.0),
                self.peak
            ),
        ]
    }

    /// The phases. Every stage and shape of a users-mode Artillery script
    /// is written here, and only here.
    pub fn phases(&self, out: &mut String) {
        out.push_str("  # Users added by the stages' rises (never removed: see above).\n  phases:\n");
        for phase in &self.phases {
            match phase {
                UserPhase::Add { secs, users } => {
                    let _ = writeln!(out, "    - duration: {}", duration(*secs));
                    let _ = writeln!(out, "      arrivalCount: {users}");
                    let _ = writeln!(out, "      maxVusers: {}", self.peak);
                }
                UserPhase::Pause { secs } => {
                    let _ = writeln!(out, "    - pause: {}", duration(*secs));
                }
            }
        }
        let lengths: Vec<String> = self.iteration_secs.iter().map(|t| num((t * 1000.0).round() / 1000.0)).collect();
        let _ = writeln!(out, "  # Expected iteration lengths, seconds, scenario by scenario: {}.", lengths.join(", "));
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
                (Metric::Rps, _) if spec.users.is_some() => {
                    self.note(format!("{slo}: users mode has no target rate to compare with; left out."));
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
