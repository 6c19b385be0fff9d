//! `POST /jobs`: the request body, presets, and the checks that turn it
//! into a [`JobSpec`]. Every problem names its field; nothing is guessed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::JobError;
use crate::base::number::Shown;
use crate::base::shape::Stage;
use crate::engine::mode::{check_rate, check_users};
use crate::jobs::scenario::ScenarioKind;

/// Shortest and longest job, seconds.
pub const MIN_DURATION_SECS: f64 = 1.0;
pub const MAX_DURATION_SECS: f64 = 86_400.0;

/// A named job: a scenario, a rate and a length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Preset {
    pub name: &'static str,
    pub scenario: ScenarioName,
    pub max_rps: f64,
    pub duration_secs: f64,
}

/// A scenario as JSON shows it (`"normal"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScenarioName(pub ScenarioKind);

impl Serialize for ScenarioName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for ScenarioName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map(ScenarioName).map_err(serde::de::Error::custom)
    }
}

/// `GET /presets`, and what `{"preset": …}` starts from.
pub const PRESETS: [Preset; 3] = [
    Preset { name: "gentle", scenario: ScenarioName(ScenarioKind::Normal), max_rps: 10.0, duration_secs: 30.0 },
    Preset { name: "moderate", scenario: ScenarioName(ScenarioKind::Normal), max_rps: 100.0, duration_secs: 60.0 },
    Preset { name: "stress", scenario: ScenarioName(ScenarioKind::Stress), max_rps: 500.0, duration_secs: 120.0 },
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

fn preset_names() -> String {
    PRESETS.map(|p| p.name).join(", ")
}

/// What a job body is checked against: the cap and the workload's names.
#[derive(Debug, Clone, PartialEq)]
pub struct JobLimits {
    pub max_rps: f64,
    /// `MAX_USERS`: the bound on a users job's `users`.
    pub max_users: u64,
    /// Requests drawn by weight: what `endpoints` may name.
    pub weighted: Vec<String>,
    /// Requests marked `error: true`: what error injection sends.
    pub errors: Vec<String>,
}

impl JobLimits {
    /// The limits of a workload under `max_rps` and `max_users`.
    pub fn of(workload: &crate::workload::Workload, max_rps: f64, max_users: u64) -> JobLimits {
        use crate::workload::Role;
        let names = |want: fn(Role) -> bool| {
            workload.requests().filter(|id| want(workload.role(*id))).map(|id| workload.name(id).to_string()).collect()
        };
        JobLimits {
            max_rps,
            max_users,
            weighted: names(|r| matches!(r, Role::Weighted(_))),
            errors: names(|r| r == Role::Error),
        }
    }
}

/// A checked job: what the engine will play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub scenario: ScenarioName,
    /// The preset it started from, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preset: Option<String>,
    pub duration_secs: f64,
    pub max_rps: f64,
    pub ramp_up_secs: f64,
    /// The requests to send (by weight among themselves); `None`: all.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoints: Option<Vec<String>>,
    /// Set when a preset's rate was above `MAX_RPS` and was cut to it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capped_from_rps: Option<f64>,
    /// A users job (the closed model): the scenario's shape is played in
    /// virtual users rising to this many, not in requests per second
    /// (`max_rps` is then 0: no rate of its own; `MAX_RPS` still caps).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub users: Option<u64>,
    /// A story of one's own (`"stages"`), in place of the scenario's
    /// shape: each stage moves the target in a straight line from where
    /// the previous one ended (0 before the first) to its own, as k6
    /// `stages` and Locust shapes do. The target is requests/s, or users
    /// in a users job. `duration_secs` is their sum, `max_rps` (or
    /// `users`) their highest target.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stages: Option<Vec<JobStage>>,
}

/// One stage of a job's own story (see [`JobSpec::stages`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JobStage {
    pub duration_secs: f64,
    /// Requests/s, or users in a users job.
    pub target: f64,
}

/// Most stages a job may give.
pub const MAX_STAGES: usize = 32;
/// Shortest stage, seconds: a shorter one is no story, and its slope
/// (the change of rate over its length) would be out of any useful range.
pub const MIN_STAGE_SECS: f64 = 0.1;

const FIELDS: [&str; 8] =
    ["scenario", "preset", "duration_secs", "max_rps", "ramp_up_secs", "endpoints", "users", "stages"];
const STAGES_EXAMPLE: &str =
    r#"[{"duration_secs": 30, "rps": 50}, {"duration_secs": 60, "rps": 50}, {"duration_secs": 10, "rps": 0}]"#;

/// How the request names of a job body are checked.
#[derive(Debug, Clone, Copy)]
enum Names<'a> {
    /// Against a workload's (`POST /jobs`), with its error requests.
    Of(&'a JobLimits),
    /// For their bounds only: a job another replica checked against its
    /// workload; the replica that plays it applies the names it has.
    Sent,
}
const EXAMPLE: &str = r#"{"scenario": "peak", "duration_secs": 120, "max_rps": 50} or {"preset": "gentle"} or {"scenario": "ramp", "duration_secs": 600, "users": 20, "ramp_up_secs": 60}"#;

impl JobSpec {
    /// Reads and checks a `POST /jobs` body: a JSON object with a
    /// `scenario` or a `preset`, fields given overriding the preset's.
    pub fn parse(body: &[u8], limits: &JobLimits) -> Result<JobSpec, JobError> {
        if body.trim_ascii().is_empty() {
            return Err(JobError::BadJson(format!("POST /jobs needs a JSON body, e.g. {EXAMPLE}")));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| JobError::BadJson(format!("body is not valid JSON ({e}); e.g. {EXAMPLE}")))?;
        let Value::Object(fields) = value else {
            return Err(JobError::invalid("body", format!("must be a JSON object, e.g. {EXAMPLE}")));
        };
        Self::from_fields(&fields, limits.max_rps, limits.max_users, Names::Of(limits))
    }

    /// A job another replica checked with [`JobSpec::parse`] and sent: its
    /// fields go through the same checks again, so every string and list
    /// is bounded as in a `POST /jobs` body here (a preset is one of ours,
    /// at most 64 request names of at most 64 characters each). The cap and
    /// the request names are the playing replica's, applied where it plays
    /// the job, so a rate above this replica's `MAX_RPS` or a name its
    /// workload lacks is no error here.
    pub fn check_sent(&self) -> Result<(), JobError> {
        let mut fields = Map::new();
        fields.insert("scenario".into(), Value::from(self.scenario.0.as_str()));
        if let Some(preset) = &self.preset {
            fields.insert("preset".into(), Value::from(preset.as_str()));
        }
        fields.insert("duration_secs".into(), Value::from(self.duration_secs));
        fields.insert("max_rps".into(), Value::from(self.max_rps));
        fields.insert("ramp_up_secs".into(), Value::from(self.ramp_up_secs));
        if let Some(endpoints) = &self.endpoints {
            fields.insert("endpoints".into(), Value::from(endpoints.clone()));
        }
        if let Some(users) = self.users {
            fields.insert("users".into(), Value::from(users));
            fields.remove("max_rps");
        }
        if let Some(stages) = &self.stages {
            let key = if self.users.is_some() { "users" } else { "rps" };
            let list: Vec<Value> =
                stages.iter().map(|s| serde_json::json!({"duration_secs": s.duration_secs, key: s.target})).collect();
            for derived in ["duration_secs", "max_rps", "ramp_up_secs", "users"] {
                fields.remove(derived);
            }
            fields.insert("stages".into(), Value::from(list));
        }
        let sent = Self::from_fields(&fields, f64::MAX, u64::MAX, Names::Sent)?;
        if sent.stages.is_some()
            && (sent.duration_secs, sent.max_rps, sent.users) != (self.duration_secs, self.max_rps, self.users)
        {
            return Err(JobError::invalid("stages", "duration_secs, max_rps and users must be what the stages give"));
        }
        // Set only when a preset's own rate was cut to a cap.
        if let Some(rps) = self.capped_from_rps {
            let presets_rate = self.preset.as_deref().and_then(preset).map(|p| p.max_rps);
            if presets_rate != Some(rps) || rps < self.max_rps {
                return Err(JobError::invalid("capped_from_rps", "must be the preset's rate, above max_rps"));
            }
        }
        Ok(())
    }

    fn from_fields(fields: &Map<String, Value>, cap: f64, max_users: u64, names: Names) -> Result<JobSpec, JobError> {
        let unknown: Vec<&str> = fields.keys().map(String::as_str).filter(|k| !FIELDS.contains(k)).collect();
        if !unknown.is_empty() {
            return Err(JobError::invalid(
                "body",
                format!("unknown field(s) {}; allowed: {}", quoted(&unknown), FIELDS.join(", ")),
            ));
        }
        let preset = match fields.get("preset") {
            None => None,
            Some(v) => {
                let name = v.as_str().ok_or_else(|| JobError::invalid("preset", "must be a string"))?;
                Some(preset(name).ok_or_else(|| {
                    JobError::invalid("preset", format!("unknown preset '{}'; presets: {}", clip(name), preset_names()))
                })?)
            }
        };
        if let Some(list) = fields.get("stages") {
            return Self::with_stages(fields, list, cap, max_users, names);
        }
        let scenario = match fields.get("scenario") {
            Some(v) => {
                let name = v.as_str().ok_or_else(|| JobError::invalid("scenario", "must be a string"))?;
                name.parse::<ScenarioKind>().map_err(|e| JobError::invalid("scenario", e.to_string()))?
            }
            None => match preset {
                Some(p) => p.scenario.0,
                None => {
                    return Err(JobError::invalid(
                        "scenario",
                        format!(
                            "give a scenario ({}) or a preset ({}), e.g. {EXAMPLE}",
                            ScenarioKind::names(),
                            preset_names()
                        ),
                    ));
                }
            },
        };

        let duration_secs = match number(fields, "duration_secs")? {
            Some(d) => d,
            None => preset.map(|p| p.duration_secs).ok_or_else(|| required("duration_secs"))?,
        };
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&duration_secs) {
            return Err(JobError::invalid(
                "duration_secs",
                format!(
                    "must be from {MIN_DURATION_SECS} to {MAX_DURATION_SECS} seconds (24 h), not {}",
                    Shown(duration_secs)
                ),
            ));
        }

        let users = match number(fields, "users")? {
            None => None,
            Some(_) if fields.contains_key("max_rps") => {
                return Err(JobError::invalid(
                    "users",
                    "a users job has no rate of its own: give users or max_rps, not both (MAX_RPS still caps)",
                ));
            }
            Some(users) => {
                let users = check_users(users, max_users).map_err(|e| JobError::invalid("users", e.to_string()))?;
                if users == 0 {
                    return Err(JobError::invalid("users", "must be above 0: a job of 0 users sends nothing"));
                }
                Some(users)
            }
        };

        let mut capped_from_rps = None;
        let max_rps = match number(fields, "max_rps")? {
            _ if users.is_some() => 0.0,
            Some(rps) => check_rate(rps, cap).map_err(|e| JobError::invalid("max_rps", e.to_string()))?,
            None => {
                let rps = preset.map(|p| p.max_rps).ok_or_else(|| required("max_rps"))?;
                // Presets are ours, MAX_RPS is the operator's: the cap wins, and the answer says so.
                if rps > cap {
                    capped_from_rps = Some(rps);
                }
                rps.min(cap)
            }
        };
        if max_rps <= 0.0 && users.is_none() {
            return Err(JobError::invalid(
                "max_rps",
                "must be above 0: a job at 0 req/s sends nothing (POST /mode/pause pauses)",
            ));
        }

        let ramp_up_secs = number(fields, "ramp_up_secs")?.unwrap_or(0.0);
        if !(0.0..=duration_secs).contains(&ramp_up_secs) {
            return Err(JobError::invalid(
                "ramp_up_secs",
                format!("must be from 0 to duration_secs ({duration_secs}), not {}", Shown(ramp_up_secs)),
            ));
        }

        let endpoints = requests_of(fields, scenario, names)?;

        Ok(JobSpec {
            scenario: ScenarioName(scenario),
            preset: preset.map(|p| p.name.to_string()),
            duration_secs,
            max_rps,
            ramp_up_secs,
            endpoints,
            capped_from_rps,
            users,
            stages: None,
        })
    }

    /// A body with `"stages"`: the story is the list; a scenario, if
    /// named, adds only what it does besides its shape (error injection's
    /// errors, latency degradation's pauses).
    fn with_stages(
        fields: &Map<String, Value>,
        list: &Value,
        cap: f64,
        max_users: u64,
        names: Names,
    ) -> Result<JobSpec, JobError> {
        for field in ["preset", "duration_secs", "max_rps", "ramp_up_secs", "users"] {
            if fields.contains_key(field) {
                return Err(JobError::invalid(
                    field,
                    format!("comes from the stages in a job with stages: give stages or {field}, not both"),
                ));
            }
        }
        let scenario = match fields.get("scenario") {
            None => ScenarioKind::Normal,
            Some(v) => {
                let name = v.as_str().ok_or_else(|| JobError::invalid("scenario", "must be a string"))?;
                name.parse::<ScenarioKind>().map_err(|e| JobError::invalid("scenario", e.to_string()))?
            }
        };
        if scenario == ScenarioKind::Peak || scenario == ScenarioKind::Stress {
            return Err(JobError::invalid(
                "scenario",
                format!(
                    "{scenario} is a shape, and the stages are the shape: leave scenario out (or name normal, error_injection or latency_degradation)"
                ),
            ));
        }
        let items = list
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| JobError::invalid("stages", format!("must be a non-empty list, e.g. {STAGES_EXAMPLE}")))?;
        if items.len() > MAX_STAGES {
            return Err(JobError::invalid("stages", format!("at most {MAX_STAGES} stages, not {}", items.len())));
        }
        let mut users_job = None;
        let mut stages = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = |key: &str| format!("stages[{i}].{key}");
            let stage = item.as_object().ok_or_else(|| {
                JobError::invalid("stages", format!("stages[{i}] must be an object, e.g. {STAGES_EXAMPLE}"))
            })?;
            if let Some(unknown) = stage.keys().find(|k| !["duration_secs", "rps", "users"].contains(&k.as_str())) {
                return Err(JobError::invalid(
                    &at(&clip(unknown)),
                    "unknown field; a stage has duration_secs and rps (or users)",
                ));
            }
            let duration = stage.get("duration_secs").and_then(Value::as_f64).filter(|d| d.is_finite());
            let duration = match duration {
                Some(d) if (MIN_STAGE_SECS..=MAX_DURATION_SECS).contains(&d) => d,
                Some(d) => {
                    return Err(JobError::invalid(
                        &at("duration_secs"),
                        format!("must be from {MIN_STAGE_SECS} to {MAX_DURATION_SECS} s, not {}", Shown(d)),
                    ));
                }
                None => {
                    return Err(JobError::invalid(&at("duration_secs"), "a number of seconds is required"));
                }
            };
            let users = match (stage.get("rps"), stage.get("users")) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(JobError::invalid(&format!("stages[{i}]"), "give rps or users (one of them)"));
                }
                (_, users) => users.is_some(),
            };
            if *users_job.get_or_insert(users) != users {
                return Err(JobError::invalid(
                    &format!("stages[{i}]"),
                    "every stage gives rps, or every stage gives users",
                ));
            }
            let key = if users { "users" } else { "rps" };
            let value = stage.get(key).and_then(Value::as_f64).filter(|v| v.is_finite());
            let target = match value {
                None => return Err(JobError::invalid(&at(key), "must be a number")),
                Some(v) if users => {
                    check_users(v, max_users).map_err(|e| JobError::invalid(&at(key), format!("{e}")))? as f64
                }
                Some(v) => check_rate(v, cap).map_err(|e| JobError::invalid(&at(key), format!("{e}")))?,
            };
            stages.push(JobStage { duration_secs: duration, target });
        }
        let duration_secs: f64 = stages.iter().map(|s| s.duration_secs).sum();
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&duration_secs) {
            return Err(JobError::invalid(
                "stages",
                format!(
                    "their durations must add up to {MIN_DURATION_SECS} to {MAX_DURATION_SECS} seconds (24 h), not {}",
                    Shown(duration_secs)
                ),
            ));
        }
        let highest = stages.iter().map(|s| s.target).fold(0.0, f64::max);
        if highest <= 0.0 {
            return Err(JobError::invalid("stages", "every target is 0: the job would send nothing"));
        }
        let users_job = users_job == Some(true);
        let endpoints = requests_of(fields, scenario, names)?;
        Ok(JobSpec {
            scenario: ScenarioName(scenario),
            preset: None,
            duration_secs,
            max_rps: if users_job { 0.0 } else { highest },
            ramp_up_secs: 0.0,
            endpoints,
            capped_from_rps: None,
            users: users_job.then_some(highest as u64),
            stages: Some(stages),
        })
    }

    /// The job's own stages as shapes, each capped at `cap`: from where
    /// the previous one ended (0 before the first) to its target.
    fn own_stages(&self, cap: f64) -> Option<Vec<Stage>> {
        let own = self.stages.as_ref()?;
        let mut from = 0.0;
        Some(
            own.iter()
                .map(|s| {
                    let to = s.target.min(cap);
                    let stage = Stage::ramp(s.duration_secs, from, to);
                    from = to;
                    stage
                })
                .collect(),
        )
    }

    /// The rate stages of a rate job with every rate held to `cap`
    /// (`MAX_RPS`): the job's own, or its scenario's up to its `max_rps`.
    pub fn rate_stages(&self, cap: f64) -> Vec<Stage> {
        if self.users.is_some() {
            return Vec::new();
        }
        self.own_stages(cap)
            .unwrap_or_else(|| self.scenario.0.stages(self.duration_secs, self.max_rps.min(cap), self.ramp_up_secs))
    }

    /// The rate stages the engine plays (they end with the job); none for
    /// a users job, which has no rate of its own.
    pub fn stages(&self) -> Vec<Stage> {
        self.rate_stages(f64::INFINITY)
    }

    /// A users job's shape: the scenario's stages in users, rising to
    /// `users` (`None` for a rate job).
    pub fn user_stages(&self) -> Option<Vec<Stage>> {
        let users = self.users? as f64;
        self.own_stages(users).or_else(|| Some(self.scenario.0.stages(self.duration_secs, users, self.ramp_up_secs)))
    }
}

/// A number for a message: short however large.
/// `endpoints`, checked; and a scenario that sends error requests only
/// with a workload that has some.
fn requests_of(
    fields: &Map<String, Value>,
    scenario: ScenarioKind,
    names: Names,
) -> Result<Option<Vec<String>>, JobError> {
    let chosen = match fields.get("endpoints") {
        None => None,
        Some(v) => Some(endpoints(v, names)?),
    };
    if let Names::Of(limits) = names
        && scenario.error_share() > 0.0
        && limits.errors.is_empty()
    {
        return Err(JobError::invalid(
            "scenario",
            format!(
                "{scenario} sends the workload's error requests, and it has none; mark a request `error: true` in the workload"
            ),
        ));
    }
    Ok(chosen)
}

fn required(field: &'static str) -> JobError {
    JobError::invalid(field, format!("is required without a preset (presets: {})", preset_names()))
}

/// A finite number, if the field is there.
fn number(fields: &Map<String, Value>, field: &'static str) -> Result<Option<f64>, JobError> {
    match fields.get(field) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(JobError::invalid(field, format!("must be a number, not {}", short(v)))),
        },
    }
}

/// `endpoints`: a non-empty list of distinct names of weighted requests.
fn endpoints(value: &Value, names: Names) -> Result<Vec<String>, JobError> {
    let example = match names {
        Names::Of(limits) => first(&limits.weighted),
        Names::Sent => first(&[]),
    };
    let items = value.as_array().ok_or_else(|| {
        JobError::invalid("endpoints", format!("must be a list of request names, e.g. [\"{example}\"]"))
    })?;
    if items.is_empty() {
        return Err(JobError::invalid("endpoints", "must name at least one request (leave it out for all)"));
    }
    if items.len() > crate::workload::MAX_REQUESTS {
        return Err(JobError::invalid(
            "endpoints",
            format!("names {} requests; a workload has at most {}", items.len(), crate::workload::MAX_REQUESTS),
        ));
    }
    let mut listed: Vec<String> = Vec::with_capacity(items.len());
    let (mut unknown, mut errors) = (Vec::new(), Vec::new());
    for item in items {
        let name = item.as_str().ok_or_else(|| {
            JobError::invalid("endpoints", format!("must hold request names (strings), not {}", short(item)))
        })?;
        if listed.iter().any(|n| n == name) {
            return Err(JobError::invalid("endpoints", format!("names '{}' twice", clip(name))));
        }
        match names {
            Names::Of(limits) if limits.errors.iter().any(|n| n == name) => errors.push(name),
            Names::Of(limits) if !limits.weighted.iter().any(|n| n == name) => unknown.push(name),
            Names::Of(_) => {}
            // A workload's names are at most this long: its own rule.
            Names::Sent if name.is_empty() || name.len() > crate::workload::model::MAX_NAME => unknown.push(name),
            Names::Sent => {}
        }
        listed.push(name.to_string());
    }
    if !unknown.is_empty() {
        let known = match names {
            Names::Of(limits) => format!("the workload's requests: {}", limits.weighted.join(", ")),
            Names::Sent => format!("a request name has 1 to {} characters", crate::workload::model::MAX_NAME),
        };
        return Err(JobError::invalid("endpoints", format!("unknown request name(s) {}; {known}", quoted(&unknown))));
    }
    if !errors.is_empty() {
        return Err(JobError::invalid(
            "endpoints",
            format!("{} marked `error: true`: the error_injection scenario sends those by itself", quoted(&errors)),
        ));
    }
    Ok(listed)
}

fn first(names: &[String]) -> &str {
    names.first().map_or("create_order", String::as_str)
}

/// Names as `'a', 'b'`, each cut short: they come from the request body.
fn quoted(names: &[&str]) -> String {
    names.iter().take(10).map(|n| format!("'{}'", clip(n))).collect::<Vec<_>>().join(", ")
        + if names.len() > 10 { ", …" } else { "" }
}

/// At most 64 characters of something a client sent, for an error message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn short(value: &Value) -> String {
    clip(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> JobLimits {
        JobLimits {
            max_rps: 1000.0,
            max_users: 100,
            weighted: vec!["create_order".into(), "list_orders".into(), "get_order".into()],
            errors: vec!["order_error".into()],
        }
    }

    fn parse(body: &str) -> Result<JobSpec, JobError> {
        JobSpec::parse(body.as_bytes(), &limits())
    }

    /// The field an error names and its message.
    fn refused(body: &str) -> (String, String) {
        match parse(body) {
            Err(JobError::Invalid { field, message }) => (field, message),
            other => panic!("{body}: expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn stages_of_ones_own_are_the_shape_from_zero_in_straight_lines() {
        let spec = parse(
            r#"{"stages":[{"duration_secs":30,"rps":50},{"duration_secs":60,"rps":50},{"duration_secs":10,"rps":200},{"duration_secs":20,"rps":0}]}"#,
        )
        .unwrap();
        assert_eq!(spec.scenario.0, ScenarioKind::Normal);
        assert_eq!((spec.duration_secs, spec.max_rps, spec.users), (120.0, 200.0, None));
        let shape: Vec<(f64, f64, f64)> = spec.stages().iter().map(|s| (s.secs, s.from_rps, s.to_rps)).collect();
        assert_eq!(shape, [(30.0, 0.0, 50.0), (60.0, 50.0, 50.0), (10.0, 50.0, 200.0), (20.0, 200.0, 0.0)]);
        // Requests: 750 + 3000 + 1250 + 2000.
        assert_eq!(spec.stages().iter().map(Stage::requests).sum::<f64>(), 7000.0);
        // MAX_RPS holds every stage's rate, the line to it and from it.
        let capped: Vec<f64> = spec.rate_stages(100.0).iter().map(|s| s.to_rps).collect();
        assert_eq!(capped, [50.0, 50.0, 100.0, 0.0]);
        // A scenario adds what it does besides its shape.
        let errors = parse(r#"{"scenario":"error_injection","stages":[{"duration_secs":5,"rps":10}]}"#).unwrap();
        assert_eq!(errors.scenario.0, ScenarioKind::ErrorInjection);

        let users = parse(r#"{"stages":[{"duration_secs":10,"users":20},{"duration_secs":5,"users":5}]}"#).unwrap();
        assert_eq!((users.duration_secs, users.max_rps, users.users), (15.0, 0.0, Some(20)));
        assert!(users.stages().is_empty(), "a users job has no rate stages");
        let shape: Vec<(f64, f64, f64)> =
            users.user_stages().unwrap().iter().map(|s| (s.secs, s.from_rps, s.to_rps)).collect();
        assert_eq!(shape, [(10.0, 0.0, 20.0), (5.0, 20.0, 5.0)]);
        // What a replica receives is checked again, and passes.
        spec.check_sent().unwrap();
        users.check_sent().unwrap();
        let lying = JobSpec { duration_secs: 5.0, ..spec.clone() };
        assert!(lying.check_sent().is_err());
    }

    #[test]
    fn bad_stages_are_refused_naming_the_stage_and_field() {
        let many = format!("{{\"stages\":[{}]}}", vec![r#"{"duration_secs":1,"rps":1}"#; MAX_STAGES + 1].join(","));
        let table: [(&str, &str, &str); 17] = [
            (r#"{"stages":[]}"#, "stages", "non-empty list"),
            (r#"{"stages":{}}"#, "stages", "non-empty list"),
            (r#"{"stages":[5]}"#, "stages", "stages[0] must be an object"),
            (r#"{"stages":[{"duration_secs":1}]}"#, "stages[0]", "give rps or users"),
            (r#"{"stages":[{"duration_secs":1,"rps":1,"users":1}]}"#, "stages[0]", "give rps or users"),
            (r#"{"stages":[{"rps":1}]}"#, "stages[0].duration_secs", "a number"),
            (
                r#"{"stages":[{"duration_secs":0.01,"rps":1},{"duration_secs":2,"rps":1}]}"#,
                "stages[0].duration_secs",
                "from 0.1",
            ),
            (r#"{"stages":[{"duration_secs":1e300,"rps":1}]}"#, "stages[0].duration_secs", "not 1e300"),
            (r#"{"stages":[{"duration_secs":2,"rps":-1}]}"#, "stages[0].rps", "negative"),
            (r#"{"stages":[{"duration_secs":2,"rps":5000}]}"#, "stages[0].rps", "MAX_RPS"),
            (
                r#"{"stages":[{"duration_secs":2,"rps":1},{"duration_secs":2,"users":1}]}"#,
                "stages[1]",
                "every stage gives rps",
            ),
            (r#"{"stages":[{"duration_secs":2,"users":1.5}]}"#, "stages[0].users", "whole number"),
            (r#"{"stages":[{"duration_secs":2,"users":101}]}"#, "stages[0].users", "MAX_USERS"),
            (r#"{"stages":[{"duration_secs":2,"rps":0}]}"#, "stages", "send nothing"),
            (r#"{"stages":[{"duration_secs":0.5,"rps":3}]}"#, "stages", "add up to"),
            (r#"{"stages":[{"duration_secs":2,"rps":1,"hold":true}]}"#, "stages[0].hold", "unknown field"),
            (r#"{"stages":[{"duration_secs":2,"rps":1}],"max_rps":5}"#, "max_rps", "give stages or max_rps"),
        ];
        for (body, field, words) in table {
            let (f, message) = refused(body);
            assert_eq!(f, field, "{body}: {message}");
            assert!(message.contains(words), "{body}: {message:?} lacks {words:?}");
        }
        let (f, message) = refused(&many);
        assert_eq!(f, "stages");
        assert!(message.contains("at most 32"), "{message}");
        let (f, message) = refused(r#"{"scenario":"peak","stages":[{"duration_secs":2,"rps":1}]}"#);
        assert_eq!(f, "scenario");
        assert!(message.contains("the stages are the shape"), "{message}");
    }

    #[test]
    fn a_full_body_is_taken_as_given() {
        let spec = parse(
            r#"{"scenario":"peak","duration_secs":120,"max_rps":50,"ramp_up_secs":10,"endpoints":["create_order","list_orders"]}"#,
        )
        .unwrap();
        assert_eq!(spec.scenario.0, ScenarioKind::Peak);
        assert_eq!((spec.duration_secs, spec.max_rps, spec.ramp_up_secs), (120.0, 50.0, 10.0));
        assert_eq!(spec.endpoints, Some(vec!["create_order".to_string(), "list_orders".to_string()]));
        assert_eq!(spec.preset, None);
        assert_eq!(spec.stages().len(), 3);
    }

    #[test]
    fn presets_fill_in_and_explicit_fields_override_them() {
        for (name, scenario, rps, secs) in
            [("gentle", "normal", 10.0, 30.0), ("moderate", "normal", 100.0, 60.0), ("stress", "stress", 500.0, 120.0)]
        {
            let spec = parse(&format!(r#"{{"preset":"{name}"}}"#)).unwrap();
            assert_eq!(
                (spec.scenario.0.as_str(), spec.max_rps, spec.duration_secs, spec.preset.as_deref()),
                (scenario, rps, secs, Some(name))
            );
        }
        let spec = parse(r#"{"preset":"gentle","max_rps":25,"scenario":"peak"}"#).unwrap();
        assert_eq!((spec.scenario.0, spec.max_rps, spec.duration_secs), (ScenarioKind::Peak, 25.0, 30.0));
    }

    #[test]
    fn a_presets_rate_is_cut_to_max_rps_and_says_so_but_an_explicit_one_is_refused() {
        let low = JobLimits { max_rps: 100.0, ..limits() };
        let spec = JobSpec::parse(br#"{"preset":"stress"}"#, &low).unwrap();
        assert_eq!((spec.max_rps, spec.capped_from_rps), (100.0, Some(500.0)));
        match JobSpec::parse(br#"{"scenario":"normal","duration_secs":5,"max_rps":101}"#, &low) {
            Err(JobError::Invalid { field, message }) => {
                assert_eq!(field, "max_rps");
                assert!(message.contains("MAX_RPS"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"[1]"#, "body", "JSON object"),
            (r#"{"scenario":"normal","duration_secs":5,"max_rps":5,"rps":5}"#, "body", "'rps'"),
            (r#"{"duration_secs":5,"max_rps":5}"#, "scenario", "or a preset"),
            (r#"{"scenario":"tsunami","duration_secs":5,"max_rps":5}"#, "scenario", "normal, peak"),
            (r#"{"scenario":7,"duration_secs":5,"max_rps":5}"#, "scenario", "string"),
            (r#"{"preset":"turbo"}"#, "preset", "gentle, moderate, stress"),
            (r#"{"preset":null}"#, "preset", "string"),
            (r#"{"scenario":"normal","max_rps":5}"#, "duration_secs", "required"),
            (r#"{"scenario":"normal","duration_secs":5}"#, "max_rps", "required"),
            (r#"{"scenario":"normal","duration_secs":0.5,"max_rps":5}"#, "duration_secs", "from 1 to 86400"),
            (r#"{"scenario":"normal","duration_secs":86401,"max_rps":5}"#, "duration_secs", "24 h"),
            (r#"{"scenario":"normal","duration_secs":"60","max_rps":5}"#, "duration_secs", "number"),
            (r#"{"scenario":"normal","duration_secs":5,"max_rps":-1}"#, "max_rps", "negative"),
            (r#"{"scenario":"normal","duration_secs":5,"max_rps":0}"#, "max_rps", "above 0"),
            (r#"{"scenario":"normal","duration_secs":5,"max_rps":1e400}"#, "body", ""),
            (
                r#"{"scenario":"normal","duration_secs":5,"max_rps":5,"ramp_up_secs":6}"#,
                "ramp_up_secs",
                "duration_secs (5)",
            ),
            (r#"{"scenario":"normal","duration_secs":5,"max_rps":5,"ramp_up_secs":-1}"#, "ramp_up_secs", "from 0"),
            (r#"{"preset":"gentle","endpoints":[]}"#, "endpoints", "at least one"),
            (r#"{"preset":"gentle","endpoints":"create_order"}"#, "endpoints", "list"),
            (r#"{"preset":"gentle","endpoints":[1]}"#, "endpoints", "strings"),
            (r#"{"preset":"gentle","endpoints":["buy","create_order","sell"]}"#, "endpoints", "'buy', 'sell'"),
            (r#"{"preset":"gentle","endpoints":["order_error"]}"#, "endpoints", "error_injection"),
            (r#"{"preset":"gentle","endpoints":["get_order","get_order"]}"#, "endpoints", "twice"),
        ];
        for (body, field, fragment) in cases {
            match parse(body) {
                Err(JobError::Invalid { field: f, message }) => {
                    assert_eq!(&f, field, "{body}: {message}");
                    assert!(message.contains(fragment), "{body}: {message}");
                }
                // 1e400 does not fit a JSON number we accept: a parse error.
                Err(JobError::BadJson(_)) if body.contains("1e400") => {}
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_body_or_not_json_is_a_bad_request() {
        for body in ["", "  ", "{", "scenario=peak"] {
            assert!(matches!(parse(body), Err(JobError::BadJson(_))), "{body:?}");
        }
    }

    #[test]
    fn error_injection_needs_an_error_request() {
        let spec = parse(r#"{"scenario":"error_injection","duration_secs":10,"max_rps":5}"#).unwrap();
        assert_eq!(spec.scenario.0.error_share(), 0.3);
        let none = JobLimits { errors: vec![], ..limits() };
        let err = JobSpec::parse(br#"{"scenario":"error_injection","duration_secs":10,"max_rps":5}"#, &none);
        assert!(matches!(err, Err(JobError::Invalid { field, .. }) if field == "scenario"));
    }

    #[test]
    fn names_from_a_client_are_cut_short_in_messages() {
        let long = "x".repeat(10_000);
        let (_, message) = refused(&format!(r#"{{"preset":"gentle","endpoints":["{long}"]}}"#));
        assert!(message.len() < 400, "{} bytes", message.len());
        let many: Vec<String> = (0..60).map(|i| format!("\"n{i}\"")).collect();
        let (_, message) = refused(&format!(r#"{{"preset":"gentle","endpoints":[{}]}}"#, many.join(",")));
        assert!(message.contains("…") && message.len() < 400, "{message}");
    }

    #[test]
    fn the_builtin_workload_gives_its_names() {
        let options = crate::workload::Options {
            target: crate::workload::Target::new(&crate::base::url::TargetUrl::parse("http://x").unwrap()),
            default_pool_size: 50,
            data_dir: None,
            env: Default::default(),
        };
        let workload = crate::workload::orders(crate::workload::OrderWeights::default(), &options).unwrap();
        let limits = JobLimits::of(&workload, 100.0, 100);
        assert_eq!(limits.weighted, ["create_order", "list_orders", "get_order"]);
        assert_eq!(limits.errors, ["order_error"]);
        assert_eq!(limits.max_rps, 100.0);
    }

    #[test]
    fn a_spec_round_trips_through_json() {
        let spec = parse(r#"{"preset":"moderate","endpoints":["get_order"]}"#).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<JobSpec>(&json).unwrap(), spec);
        assert!(json.contains(r#""scenario":"normal""#), "{json}");
    }

    #[test]
    fn a_job_sent_by_another_replica_is_bounded_by_the_same_checks() {
        for body in [
            r#"{"preset":"stress"}"#,
            r#"{"scenario":"peak","duration_secs":120,"max_rps":50,"ramp_up_secs":10,"endpoints":["create_order"]}"#,
            r#"{"scenario":"error_injection","duration_secs":10,"max_rps":5}"#,
        ] {
            let spec = parse(body).unwrap();
            assert_eq!(spec.check_sent(), Ok(()), "{body}");
        }
        // The cap and the names are the playing replica's: no error here.
        let low = JobLimits { max_rps: 100.0, ..limits() };
        let capped = JobSpec::parse(br#"{"preset":"stress"}"#, &low).unwrap();
        assert_eq!(capped.capped_from_rps, Some(500.0));
        assert_eq!(capped.check_sent(), Ok(()));
        let good = parse(r#"{"scenario":"peak","duration_secs":60,"max_rps":50}"#).unwrap();
        let above_our_cap = JobSpec { max_rps: 5000.0, ..good.clone() };
        assert_eq!(above_our_cap.check_sent(), Ok(()));
        let other_names = JobSpec { endpoints: Some(vec!["list_users".into()]), ..good.clone() };
        assert_eq!(other_names.check_sent(), Ok(()));

        // Out of bounds, as a POST /jobs here would be: refused, naming the field.
        let huge = "x".repeat(1_900_000);
        let cases: Vec<(JobSpec, &str)> = vec![
            (JobSpec { preset: Some(huge.clone()), ..good.clone() }, "preset"),
            (JobSpec { preset: Some("turbo".into()), ..good.clone() }, "preset"),
            (JobSpec { endpoints: Some(vec![huge.clone()]), ..good.clone() }, "endpoints"),
            (JobSpec { endpoints: Some(vec!["n".repeat(65)]), ..good.clone() }, "endpoints"),
            (JobSpec { endpoints: Some(vec![String::new()]), ..good.clone() }, "endpoints"),
            (JobSpec { endpoints: Some((0..65).map(|i| format!("r{i}")).collect()), ..good.clone() }, "endpoints"),
            (JobSpec { endpoints: Some(vec![]), ..good.clone() }, "endpoints"),
            (JobSpec { endpoints: Some(vec!["a".into(), "a".into()]), ..good.clone() }, "endpoints"),
            (JobSpec { duration_secs: 1e9, ..good.clone() }, "duration_secs"),
            (JobSpec { duration_secs: f64::NAN, ..good.clone() }, "duration_secs"),
            (JobSpec { max_rps: 0.0, ..good.clone() }, "max_rps"),
            (JobSpec { max_rps: 1e-20, ..good.clone() }, "max_rps"),
            (JobSpec { ramp_up_secs: 61.0, ..good.clone() }, "ramp_up_secs"),
            (JobSpec { capped_from_rps: Some(1e300), ..good.clone() }, "capped_from_rps"),
        ];
        for (spec, field) in cases {
            match spec.check_sent() {
                Err(JobError::Invalid { field: named, message }) => {
                    assert_eq!(named, field, "{message}");
                    assert!(message.len() < 300, "the message quotes at most a little: {} bytes", message.len());
                }
                other => panic!("{field}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_users_job_plays_its_scenario_in_users_and_is_checked_like_every_field() {
        let job = parse(r#"{"scenario": "normal", "duration_secs": 60, "users": 20, "ramp_up_secs": 10}"#).unwrap();
        assert_eq!((job.users, job.max_rps), (Some(20), 0.0));
        assert!(job.stages().is_empty(), "no rate of its own");
        let stages = job.user_stages().expect("users stages");
        let peak = stages.iter().map(|s| s.to_rps.max(s.from_rps)).fold(0.0, f64::max);
        assert_eq!(peak, 20.0);
        assert_eq!(stages.iter().map(|s| s.secs).sum::<f64>(), 60.0);
        assert_eq!(parse(r#"{"scenario": "normal", "duration_secs": 60, "max_rps": 5}"#).unwrap().user_stages(), None);
        for (body, says) in [
            (r#"{"scenario": "normal", "duration_secs": 60, "users": 101}"#, "MAX_USERS"),
            (r#"{"scenario": "normal", "duration_secs": 60, "users": 2.5}"#, "whole number"),
            (r#"{"scenario": "normal", "duration_secs": 60, "users": -1}"#, "whole number"),
            (r#"{"scenario": "normal", "duration_secs": 60, "users": 0}"#, "above 0"),
            (r#"{"scenario": "normal", "duration_secs": 60, "users": "ten"}"#, "must be a number"),
            (r#"{"scenario": "normal", "duration_secs": 60, "users": 5, "max_rps": 5}"#, "not both"),
        ] {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains("users") && err.contains(says), "{body}: {err}");
        }
        // Sent to a replica, it passes the same checks again.
        assert_eq!(job.check_sent(), Ok(()));
        let round: JobSpec = serde_json::from_value(serde_json::to_value(&job).unwrap()).unwrap();
        assert_eq!(round, job);
    }
}
