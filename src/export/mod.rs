//! Export: the traffic of a workload as one runnable k6, Locust or
//! Artillery script — each request and journey with its weight (an
//! arrival is one request or one journey instance, as trafficgen draws
//! it), journeys as the tool's own flow with their pauses, variables and
//! data files, templates as the tool's own functions, captures and pools,
//! fallbacks, setup requests, the rate as an arrival rate over the
//! scenario's stages (or, in users mode, the closed model: virtual users
//! that pause between arrivals, as near as each tool allows), and the
//! SLOs as the tool's thresholds. What a tool
//! cannot do is said in a comment in the script, never dropped silently;
//! what it cannot express at all is refused with one line.
//!
//! Pure: same input, same bytes (no clock, no randomness, no maps).
//!
//! # Layout
//! - `script`: the workload as tool-independent pieces (shared by all three);
//!   `journeys`: its journeys and data tables.
//! - `text`: string literals, comments, numbers and durations per language.
//! - `k6`, `locust`, `artillery`: one writer each.
//! - [`command`]: `trafficgen export …`.

mod artillery;
mod journeys;
mod k6;
mod locust;
mod script;
mod text;

use std::fmt;
use std::str::FromStr;

use crate::base::number::Shown;
use crate::base::shape::{PausePattern, Stage};
use crate::jobs::scenario::ScenarioKind;
use crate::observe::slo::{self, Slo, SloError};
use crate::workload::Workload;
use crate::workload::model::{Model, Role};

use script::Script;
use text::{num, secs};

/// Longest export, seconds (a week).
pub const MAX_DURATION_SECS: f64 = 7.0 * 86_400.0;
/// Lowest rate, requests per second: one request in 1000 s (k6 counts
/// whole iterations per time unit, at most 1000 s).
pub const MIN_RATE: f64 = 0.001;
/// Highest rate, requests per second (as `MAX_RPS`).
pub const MAX_RATE: f64 = 1_000_000.0;
/// Bound on requests in flight when none is given (`MAX_IN_FLIGHT`'s default).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Bound on journey instances running at once when none is given
/// (`MAX_JOURNEYS`'s default).
pub const DEFAULT_MAX_JOURNEYS: usize = 10_000;
/// Largest script an export writes. A workload is at most 1 MiB and its
/// script a few times that; a script past this bound comes from a workload
/// made to blow up (Artillery writes each `random_int` range as a list of
/// its values), and is refused while it is written, before it is.
pub const MAX_SCRIPT_BYTES: usize = 4 * 1024 * 1024;

/// The tools a script can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    K6,
    Locust,
    Artillery,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::K6, Format::Locust, Format::Artillery];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::K6 => "k6",
            Format::Locust => "locust",
            Format::Artillery => "artillery",
        }
    }

    /// What a file of this script is called after its base name.
    pub fn suffix(self) -> &'static str {
        match self {
            Format::K6 => ".k6.js",
            Format::Locust => ".locustfile.py",
            Format::Artillery => ".artillery.yml",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::K6 => "text/javascript; charset=utf-8",
            Format::Locust => "text/x-python; charset=utf-8",
            Format::Artillery => "application/yaml; charset=utf-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown export format '{0}'; formats: k6, locust, artillery")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// The rate story of an export: a scenario's stages, or a constant rate
/// (with an optional ramp up).
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// `None`: a constant rate (the sidecar's mode).
    pub scenario: Option<ScenarioKind>,
    pub duration_secs: f64,
    /// From [`ScenarioKind::stages`]; their lengths add up to the duration.
    pub stages: Vec<Stage>,
}

/// A rate, duration or ramp that cannot make a script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TrafficError(pub String);

impl Traffic {
    /// `rps` is the scenario's peak (`max_rps`), or the constant rate.
    /// Checked here, for the command line and the API alike.
    pub fn new(
        scenario: Option<ScenarioKind>,
        rps: f64,
        duration_secs: f64,
        ramp_up_secs: f64,
    ) -> Result<Traffic, TrafficError> {
        let what = if scenario.is_some() { "max_rps" } else { "rps" };
        if !(rps.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rps)) {
            return Err(TrafficError(format!(
                "{what} must be a number from {} to {} requests/s, not {}",
                num(MIN_RATE),
                num(MAX_RATE),
                Shown(rps)
            )));
        }
        if !(duration_secs.is_finite() && (0.001..=MAX_DURATION_SECS).contains(&duration_secs)) {
            return Err(TrafficError(format!(
                "duration must be from 1 ms to {} s (a week), not {} s",
                num(MAX_DURATION_SECS),
                Shown(duration_secs)
            )));
        }
        if !(ramp_up_secs.is_finite() && ramp_up_secs >= 0.0 && ramp_up_secs <= duration_secs) {
            return Err(TrafficError(format!(
                "ramp-up must be from 0 to the duration ({} s), not {} s",
                num(duration_secs),
                Shown(ramp_up_secs)
            )));
        }
        if scenario == Some(ScenarioKind::Peak) && ramp_up_secs > 0.0 {
            return Err(TrafficError(
                "the peak scenario has its own ramp (its first quarter): leave out ramp-up".into(),
            ));
        }
        // Stages in whole milliseconds, so every tool gets the same story.
        let duration_secs = (duration_secs * 1000.0).round() / 1000.0;
        let ramp_up_secs = (ramp_up_secs * 1000.0).round() / 1000.0;
        let kind = scenario.unwrap_or(ScenarioKind::Normal);
        let stages = kind
            .stages(duration_secs, rps, ramp_up_secs)
            .into_iter()
            .map(|s| Stage { secs: (s.secs * 1000.0).round() / 1000.0, ..s })
            .filter(|s| s.secs > 0.0)
            .collect();
        Ok(Traffic { scenario, duration_secs, stages })
    }

    /// Stages of one's own (`--user-stages`, a job's `stages`): each a
    /// straight line from where the previous one ended (0 before the
    /// first) to its target, over its duration. Checked: a duration of at
    /// least 1 ms each, a week in all; targets finite, 0 or more, and not
    /// all 0; no more than [`crate::jobs::spec::MAX_STAGES`]. `scenario`
    /// only names what else the traffic does (its error share); the
    /// shape is the stages.
    pub fn of_stages(scenario: Option<ScenarioKind>, list: &[(f64, f64)]) -> Result<Traffic, TrafficError> {
        if list.is_empty() || list.len() > crate::jobs::spec::MAX_STAGES {
            return Err(TrafficError(format!(
                "give from 1 to {} stages, not {}",
                crate::jobs::spec::MAX_STAGES,
                list.len()
            )));
        }
        if matches!(scenario, Some(ScenarioKind::Peak | ScenarioKind::Stress)) {
            return Err(TrafficError(
                "peak and stress are shapes, and the stages are the shape: leave the scenario out".into(),
            ));
        }
        let mut stages = Vec::with_capacity(list.len());
        let mut from = 0.0;
        for (i, &(secs, to)) in list.iter().enumerate() {
            let secs = (secs * 1000.0).round() / 1000.0;
            if !(secs.is_finite() && secs >= 0.001) {
                return Err(TrafficError(format!("stage {}: a duration of at least 1 ms", i + 1)));
            }
            if !(to.is_finite() && (0.0..=MAX_RATE).contains(&to)) {
                return Err(TrafficError(format!(
                    "stage {}: a target from 0 to {}, not {}",
                    i + 1,
                    num(MAX_RATE),
                    Shown(to)
                )));
            }
            stages.push(Stage::ramp(secs, from, to));
            from = to;
        }
        let duration_secs: f64 = stages.iter().map(|s| s.secs).sum();
        if duration_secs > MAX_DURATION_SECS {
            return Err(TrafficError(format!(
                "the stages must last at most {} s (a week) in all, not {} s",
                num(MAX_DURATION_SECS),
                num(duration_secs)
            )));
        }
        if stages.iter().all(|s| s.to_rps == 0.0) {
            return Err(TrafficError("every target is 0: the script would send nothing".into()));
        }
        Ok(Traffic { scenario, duration_secs: (duration_secs * 1000.0).round() / 1000.0, stages })
    }

    /// The highest rate of any stage.
    pub fn peak_rps(&self) -> f64 {
        self.stages.iter().map(|s| s.from_rps.max(s.to_rps)).fold(0.0, f64::max)
    }

    /// Requests due over the whole run divided by its duration.
    pub fn mean_rps(&self) -> f64 {
        let total: f64 = self.stages.iter().map(Stage::requests).sum();
        if self.duration_secs > 0.0 { total / self.duration_secs } else { 0.0 }
    }

    /// A constant rate without a ramp.
    pub fn constant_rps(&self) -> Option<f64> {
        match self.stages.as_slice() {
            [only] if only.from_rps == only.to_rps => Some(only.to_rps),
            _ => None,
        }
    }

    /// `scenario peak over 120 s up to 50 requests/s: 0 → 50/s over 30 s, …`.
    pub fn describe(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| {
                if s.from_rps == s.to_rps {
                    format!("{}/s for {}", num(s.to_rps), secs(s.secs))
                } else {
                    format!("{} → {}/s over {}", num(s.from_rps), num(s.to_rps), secs(s.secs))
                }
            })
            .collect();
        let head = match self.scenario {
            Some(kind) => {
                format!("scenario {kind} over {} up to {} requests/s", secs(self.duration_secs), num(self.peak_rps()))
            }
            None => format!("a constant rate over {}", secs(self.duration_secs)),
        };
        format!("{head}: {}", stages.join(", then "))
    }

    /// [`Traffic::describe`] for users mode, whose stages count users.
    pub fn describe_users(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| {
                if s.from_rps == s.to_rps {
                    format!("{} users for {}", num(s.to_rps), secs(s.secs))
                } else {
                    format!("{} → {} users over {}", num(s.from_rps), num(s.to_rps), secs(s.secs))
                }
            })
            .collect();
        format!("virtual users over {}: {}", secs(self.duration_secs), stages.join(", then "))
    }
}

/// Everything an export needs besides the workload.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where the workload came from, for the script's first line.
    pub source: String,
    /// The base URL written into the script (each tool can override it).
    pub target_url: String,
    pub traffic: Traffic,
    pub slos: Vec<Slo>,
    /// The bound on requests in flight (k6's `maxVUs`).
    pub max_in_flight: usize,
    /// The bound on journey instances running at once (`MAX_JOURNEYS`).
    pub max_journeys: usize,
    /// Only these weighted requests are drawn (a job's `endpoints`); `None`: all.
    pub endpoints: Option<Vec<String>>,
    /// Largest script to write (see [`MAX_SCRIPT_BYTES`]).
    pub max_bytes: usize,
    /// The closed model (users mode): the traffic's stages are numbers of
    /// virtual users, not rates; `None`: the open model.
    pub users: Option<ClosedModel>,
}

/// Virtual users (trafficgen's users mode): each runs an arrival to its
/// end, then pauses from `min_pause_secs` to `max_pause_secs` (uniform).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedModel {
    pub min_pause_secs: f64,
    pub max_pause_secs: f64,
}

/// Why a script cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Slo(#[from] SloError),
    #[error("{0}")]
    Endpoints(String),
    /// The script would pass [`Spec::max_bytes`]; found while writing it.
    #[error(
        "the {format} script would be larger than {} KiB, the bound of an export{}",
        limit / 1024,
        if *format == Format::Artillery {
            " (Artillery gets each random_int range of fewer than 1000 values as a list of them: use fewer distinct ranges)"
        } else {
            ""
        }
    )]
    TooLarge { format: Format, limit: usize },
    /// The workload uses what this tool cannot express at all.
    #[error("{0}")]
    NotExported(String),
}

/// Writes `workload` as a `format` script. Fails when an SLO or the
/// endpoints name a request the workload does not have (or cannot draw),
/// when the tool cannot express what the workload does (see
/// [`RenderError::NotExported`]), or when the script would pass
/// `spec.max_bytes` (the writers stop there).
pub fn render(format: Format, workload: &Workload, spec: &Spec) -> Result<String, RenderError> {
    let model = workload.model();
    let names: Vec<&str> = model.all_requests().map(|r| r.name.as_str()).collect();
    slo::check_scopes(&spec.slos, &names)?;
    if let Some(endpoints) = &spec.endpoints {
        check_endpoints(model, endpoints).map_err(RenderError::Endpoints)?;
    }
    let sizes: Vec<usize> = workload.pools().map(|id| workload.pool_size(id)).collect();
    let error_share = spec.traffic.scenario.map_or(0.0, ScenarioKind::error_share);
    let mut script = Script::new(model, &sizes, error_share, spec.endpoints.as_deref());
    for table in &mut script.tables {
        // The file's own column order: Artillery reads fields by position.
        table.columns = workload
            .compiled
            .tables
            .iter()
            .find(|t| t.name == table.name)
            .map(|t| t.columns().to_vec())
            .unwrap_or_default();
    }
    if format == Format::Artillery
        && let Some(why) = artillery::cannot(&script)
    {
        return Err(RenderError::NotExported(why));
    }
    let mut notes = script.notes.clone();
    if let Some(PausePattern { pauses: (shortest, longest), .. }) = spec.traffic.scenario.and_then(ScenarioKind::pauses)
    {
        notes.push(format!(
            "This scenario pauses sending at random for {} to {} at a time; {} keeps its arrival rate steady and has no such pauses, so the rate here is not ragged.",
            secs(shortest),
            secs(longest),
            match format {
                Format::K6 => "k6",
                Format::Locust => "this Locust file",
                Format::Artillery => "Artillery",
            }
        ));
    }
    let written = match format {
        Format::K6 => k6::write(&script, spec, &notes),
        Format::Locust => locust::write(&script, spec, &notes),
        Format::Artillery => artillery::write(&script, spec, &notes),
    };
    written.filter(|s| s.len() <= spec.max_bytes).ok_or(RenderError::TooLarge { format, limit: spec.max_bytes })
}

/// `endpoints` must be a non-empty list of the model's weighted requests,
/// as a job's are: the ones a focus draws among.
fn check_endpoints(model: &Model, endpoints: &[String]) -> Result<(), String> {
    let weighted: Vec<&str> = model
        .all_requests()
        .filter(|r| matches!(r.role, Role::Weighted(w) if w > 0))
        .map(|r| r.name.as_str())
        .collect();
    if endpoints.is_empty() {
        return Err("endpoints: must name at least one request (leave it out for all)".into());
    }
    let unknown: Vec<String> = endpoints
        .iter()
        .filter(|name| !weighted.contains(&name.as_str()))
        .map(|name| format!("'{}'", name.chars().take(64).collect::<String>().escape_debug()))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "endpoints: {} not among the workload's weighted requests: {}",
            unknown.join(", "),
            weighted.join(", ")
        ))
    }
}

/// The requests per second an `rps` objective expects: the mean arrival
/// rate times the requests an arrival sends (one, or a journey's steps),
/// for one name its share of them.
fn expected_rps(script: &Script, spec: &Spec, name: Option<&str>) -> Option<f64> {
    let mean = spec.traffic.mean_rps();
    match name {
        None => Some(mean * script.sends_per_arrival()),
        Some(name) => script.find(name).map(|i| mean * script.share(i)).filter(|r| *r > 0.0),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod traffic_tests {
    use super::*;

    #[test]
    fn traffic_is_checked_once_for_every_caller() {
        let t = Traffic::new(Some(ScenarioKind::Peak), 50.0, 120.0, 0.0).unwrap();
        assert_eq!(t.stages.len(), 3);
        assert_eq!(t.peak_rps(), 50.0);
        assert_eq!(t.mean_rps(), 37.5);
        assert_eq!(
            t.describe(),
            "scenario peak over 120 s up to 50 requests/s: 0 → 50/s over 30 s, then 50/s for 60 s, then 50 → 0/s over 30 s"
        );
        let c = Traffic::new(None, 2.0, 60.0, 0.0).unwrap();
        assert_eq!(c.constant_rps(), Some(2.0));
        assert_eq!(c.describe(), "a constant rate over 60 s: 2/s for 60 s");
        let bad = [
            (None, 0.0, 60.0, 0.0, "rps must be"),
            (None, 0.0009, 60.0, 0.0, "from 0.001"),
            (None, f64::NAN, 60.0, 0.0, "rps must be"),
            (Some(ScenarioKind::Stress), 2e6, 60.0, 0.0, "max_rps must be"),
            (None, 1.0, 0.0, 0.0, "duration"),
            (None, 1.0, f64::INFINITY, 0.0, "duration"),
            (None, 1.0, 1e9, 0.0, "duration"),
            (None, 1.0, 10.0, 11.0, "ramp-up"),
            (None, 1.0, 10.0, -1.0, "ramp-up"),
            (Some(ScenarioKind::Peak), 1.0, 10.0, 1.0, "own ramp"),
        ];
        for (kind, rps, duration, ramp, expected) in bad {
            let e = Traffic::new(kind, rps, duration, ramp).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
    }

    #[test]
    fn stages_of_ones_own_are_straight_lines_from_zero_and_checked() {
        let t = Traffic::of_stages(None, &[(60.0, 20.0), (300.0, 20.0), (30.0, 0.0)]).unwrap();
        assert_eq!(t.duration_secs, 390.0);
        assert_eq!(
            t.stages,
            [Stage::ramp(60.0, 0.0, 20.0), Stage::ramp(300.0, 20.0, 20.0), Stage::ramp(30.0, 20.0, 0.0)]
        );
        assert_eq!(
            t.describe_users(),
            "virtual users over 390 s: 0 → 20 users over 60 s, then 20 users for 300 s, then 20 → 0 users over 30 s"
        );
        let too_many = vec![(1.0, 1.0); crate::jobs::spec::MAX_STAGES + 1];
        let bad: [(&[(f64, f64)], &str); 7] = [
            (&[], "from 1 to"),
            (&too_many, "from 1 to"),
            (&[(0.0, 5.0)], "stage 1: a duration"),
            (&[(1.0, 5.0), (f64::NAN, 5.0)], "stage 2: a duration"),
            (&[(1.0, -1.0)], "stage 1: a target"),
            (&[(1.0, 0.0), (2.0, 0.0)], "every target is 0"),
            (&[(MAX_DURATION_SECS, 1.0), (1.0, 1.0)], "a week"),
        ];
        for (list, expected) in bad {
            let e = Traffic::of_stages(None, list).unwrap_err().to_string();
            assert!(e.contains(expected), "{list:?}: {e}");
        }
        let e = Traffic::of_stages(Some(ScenarioKind::Peak), &[(1.0, 1.0)]).unwrap_err().to_string();
        assert!(e.contains("the stages are the shape"), "{e}");
    }

    #[test]
    fn formats_by_name() {
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        assert!("jmeter".parse::<Format>().unwrap_err().to_string().contains("k6, locust, artillery"));
    }
}
