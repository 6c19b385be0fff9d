//! The replicated document: what every replica should be doing.
//!
//! It is made of sections, each replaced whole by a newer version of it
//! (last writer wins, per section), so crossed changes to different
//! sections both survive, and late, repeated or crossed messages about one
//! section change nothing once a newer version is in. Merging is the only
//! way a replica's document changes, whether the change was made here, came
//! from a peer's fan-out or was fetched to catch up, so every replica that
//! has seen the same versions holds the same document.
//!
//! Sections: `plan` (mode, rate and the instant its schedule starts),
//! `job` (the job every replica plays), `workload` (the text of the last
//! workload put on a replica) and `config` (the runtime settings' changes
//! from start-up). Replicating another kind of state is one more
//! `Option<Section<…>>` field here,
//! with its line in [`Document::merge`], [`Document::versions`],
//! [`Versions`] and [`Document::check`], and its apply in
//! `Cluster::apply` (see `super`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::version::{MAX_AHEAD_MS, Version, VersionAhead};
use crate::engine::mode::{Mode, RateError, check_rate};
use crate::engine::users::UserPause;
use crate::jobs::{JobSpec, StopReason};

/// One replicated value and the version that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section<T> {
    pub version: Version,
    pub value: T,
}

impl<T> Section<T> {
    /// Takes `theirs` if it is newer; true when it did.
    fn take_newer(&mut self, theirs: Section<T>) -> bool {
        if theirs.version > self.version {
            *self = theirs;
            true
        } else {
            false
        }
    }
}

/// What every replica should be doing. Sections a replica does not know
/// (from a newer release, during an upgrade) are ignored; unknown fields
/// inside a known section are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub plan: Section<PlanSpec>,
    /// The job every replica plays (each its share of it); absent until a
    /// job was first started, so older replicas see the same document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Section<JobSection>>,
    /// The workload every replica runs; absent until one was put on a
    /// replica (until then each runs its own `WORKLOAD_FILE` or `MIX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Section<WorkloadSection>>,
    /// The runtime settings' changes; absent until `PUT /config` or
    /// `POST /config/reset` on a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Section<ConfigSection>>,
}

/// A workload as it was put on a replica (`PUT /workload`, SIGHUP): its
/// text, so every peer loads it against its own target and pools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSection {
    /// Where it came from (`body`, or the file SIGHUP read), as
    /// `GET /workload` shows it.
    pub source: String,
    /// YAML or JSON, as put.
    pub text: String,
}

/// Longest source name of a workload section.
pub const MAX_SOURCE_CHARS: usize = 4096;
/// Most characters of a workload text once in JSON: the file bound with
/// its line breaks, tabs and quotes escaped (two bytes each).
pub const MAX_WORKLOAD_JSON_BYTES: usize = 2 * crate::workload::MAX_FILE_BYTES;

impl WorkloadSection {
    /// Bounds a workload from a peer as `PUT /workload` bounds one (its
    /// content is checked where it is loaded); the same check tells
    /// `PUT /workload` whether a text can be sent to peers at all.
    pub fn check(&self) -> Result<(), DocumentError> {
        let fail = |message: String| Err(DocumentError::Workload(message));
        let limit = crate::workload::MAX_FILE_BYTES;
        if self.text.len() > limit {
            return fail(format!("text is larger than {limit} bytes (1 MiB); a workload is much smaller"));
        }
        if self.source.is_empty() || self.source.chars().count() > MAX_SOURCE_CHARS {
            return fail(format!("source must have 1 to {MAX_SOURCE_CHARS} characters"));
        }
        let escaped = serde_json::to_string(&self.text).map_or(usize::MAX, |json| json.len());
        if escaped > MAX_WORKLOAD_JSON_BYTES {
            return fail(format!(
                "text is {escaped} bytes as JSON, more than {MAX_WORKLOAD_JSON_BYTES}: too many control characters to send to peers"
            ));
        }
        Ok(())
    }
}

/// The runtime settings in force among the replicas: what differs from
/// start-up, as `STATE_DIR` keeps it (`{}` after `POST /config/reset`).
/// Each replica puts it over its own start-up settings through the checks
/// of `PUT /config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSection {
    pub overrides: Map<String, Value>,
}

impl ConfigSection {
    /// Names and kinds of a peer's settings (their values are checked
    /// where they are applied, as `PUT /config` checks them).
    fn check(&self) -> Result<(), DocumentError> {
        let fail = |message: String| Err(DocumentError::Config(message));
        for (name, value) in &self.overrides {
            if !crate::state::is_runtime_field(name) {
                let name: String = name.chars().take(64).collect();
                return fail(format!("'{name}' is not a runtime setting"));
            }
            if !value.is_number() {
                return fail(format!("{name} must be a number"));
            }
        }
        Ok(())
    }
}

/// The job in force among the replicas, or how the last one was ended early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSection {
    /// `None`: no job runs (one that ran its whole time ends on every
    /// replica by itself and needs no change here).
    pub running: Option<SharedJob>,
    /// Why the last job ended early: `requested` (the mode before it comes
    /// back) or `mode_switch` (the plan section has the new mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StopReason>,
}

/// A job as the replicas share it: the same id, story, pauses and start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedJob {
    pub job_id: String,
    pub spec: JobSpec,
    /// Draws latency degradation's pauses, the same on every replica.
    pub seed: u64,
    /// Milliseconds since the Unix epoch: the anchor of every replica's share.
    pub start_ms: u64,
}

/// The mode and rate of every replica together, and the instant the
/// schedule starts, so that every replica anchors its share of the one
/// schedule at the same place.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    #[serde(with = "mode_name")]
    pub mode: Mode,
    /// The whole rate, of all replicas together.
    pub rps: f64,
    /// Milliseconds since the Unix epoch; 0 for the settings' initial mode,
    /// which every replica starts with without a word (the epoch is the one
    /// instant they agree on unasked).
    pub start_ms: u64,
    /// A ramp to `rps` from `start_ms` (`POST /mode/custom` or
    /// `/mode/users` with `ramp_secs`), so every replica ramps its share
    /// along the same line; absent for a plain mode, so a document without
    /// a ramp reads as it did before ramps were replicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp: Option<RampSpec>,
    /// Users mode's pause given in the switch's body (`None`: each
    /// replica's `USER_PAUSE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseSpec>,
}

impl PlanSpec {
    /// A plain mode at `rps`: no ramp, no pause of its own.
    pub fn constant(mode: Mode, rps: f64, start_ms: u64) -> PlanSpec {
        PlanSpec { mode, rps, start_ms, ramp: None, pause: None }
    }

    /// Whether a plan with these parts is this one: asking for the plan in
    /// force changes nothing. A ramp is never the plan in force (it starts
    /// from where the rate is now).
    pub fn is_same_plan(&self, mode: Mode, rps: f64, ramp: Option<RampSpec>, pause: Option<PauseSpec>) -> bool {
        self.mode == mode && self.rps == rps && ramp.is_none() && self.ramp.is_none() && self.pause == pause
    }

    /// A peer's ramp and pause, checked as the control API checks them.
    fn check_shape(&self) -> Result<(), DocumentError> {
        if let Some(ramp) = self.ramp {
            check_rate(ramp.from, f64::MAX).map_err(|e| DocumentError::Ramp(format!("from: {e}")))?;
            if !(ramp.secs.is_finite() && ramp.secs > 0.0 && ramp.secs <= MAX_RAMP_SECS) {
                return Err(DocumentError::Ramp(format!("secs must be above 0 and at most {MAX_RAMP_SECS}")));
            }
            if self.mode == Mode::Pause {
                return Err(DocumentError::Ramp("pause has no ramp".into()));
            }
        }
        if let Some(pause) = self.pause {
            if self.mode != Mode::Users {
                return Err(DocumentError::Pause(format!("only users mode has a pause, not {}", self.mode.as_str())));
            }
            UserPause::new(pause.min_secs, pause.max_secs).map_err(DocumentError::Pause)?;
        }
        Ok(())
    }
}

/// Longest ramp a peer may send: a day, as `ramp_secs` allows.
pub const MAX_RAMP_SECS: f64 = 86_400.0;

/// A straight line from `from` (a rate, or users) to the plan's `rps`
/// over `secs`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampSpec {
    pub from: f64,
    pub secs: f64,
}

/// The pause between a user's iterations, drawn from `min_secs` to
/// `max_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseSpec {
    pub min_secs: f64,
    pub max_secs: f64,
}

impl From<UserPause> for PauseSpec {
    fn from(pause: UserPause) -> PauseSpec {
        PauseSpec { min_secs: pause.min_secs, max_secs: pause.max_secs }
    }
}

/// The version of each section: what peers compare to find who is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub plan: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Version>,
}

impl Versions {
    /// True when `theirs` has a newer version of any section.
    pub fn behind(&self, theirs: &Versions) -> bool {
        theirs.plan > self.plan
            || theirs.job > self.job
            || theirs.workload > self.workload
            || theirs.config > self.config
    }

    /// The newest version of any section.
    pub fn latest(&self) -> Version {
        self.each().max().unwrap_or(self.plan)
    }

    pub fn each(&self) -> impl Iterator<Item = Version> {
        [Some(self.plan), self.job, self.workload, self.config].into_iter().flatten()
    }

    /// Refuses versions too far ahead of `now_ms`.
    pub fn check(&self, now_ms: u64) -> Result<(), DocumentError> {
        let sections =
            [("plan", Some(self.plan)), ("job", self.job), ("workload", self.workload), ("config", self.config)];
        for (section, version) in sections {
            if let Some(version) = version {
                version.check_not_ahead(now_ms).map_err(|error| DocumentError::Ahead { section, error })?;
            }
        }
        Ok(())
    }
}

/// Which sections a merge changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    pub plan: bool,
    pub job: bool,
    pub workload: bool,
    pub config: bool,
}

impl Changed {
    pub fn any(&self) -> bool {
        self.plan || self.job || self.workload || self.config
    }

    /// The names of the changed sections.
    pub fn names(&self) -> Vec<&'static str> {
        [("plan", self.plan), ("job", self.job), ("workload", self.workload), ("config", self.config)]
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(name, _)| name)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    #[error("{section}: {error}")]
    Ahead { section: &'static str, error: VersionAhead },
    #[error("plan: {0}")]
    Rate(RateError),
    #[error("plan: pause has rps 0, not {0}")]
    PauseWithRate(f64),
    #[error(
        "plan: start_ms is {ahead_ms} ms ahead of this replica's clock (at most {MAX_AHEAD_MS} ms allowed: are the clocks in sync?)"
    )]
    StartAhead { ahead_ms: u64 },
    #[error("job: {0}")]
    Job(String),
    #[error("workload: {0}")]
    Workload(String),
    #[error("config: {0}")]
    Config(String),
    #[error("plan: ramp: {0}")]
    Ramp(String),
    #[error("plan: pause: {0}")]
    Pause(String),
}

impl Document {
    /// A replica's document before any change: its settings' initial mode.
    pub fn initial(mode: Mode, rps: f64) -> Document {
        Document {
            plan: Section { version: Version::INITIAL, value: PlanSpec::constant(mode, rps, 0) },
            job: None,
            workload: None,
            config: None,
        }
    }

    pub fn versions(&self) -> Versions {
        Versions {
            plan: self.plan.version,
            job: self.job.as_ref().map(|s| s.version),
            workload: self.workload.as_ref().map(|s| s.version),
            config: self.config.as_ref().map(|s| s.version),
        }
    }

    /// Takes every section of `incoming` that is newer than ours.
    pub fn merge(&mut self, incoming: Document) -> Changed {
        Changed {
            plan: self.plan.take_newer(incoming.plan),
            job: take_newer_optional(&mut self.job, incoming.job),
            workload: take_newer_optional(&mut self.workload, incoming.workload),
            config: take_newer_optional(&mut self.config, incoming.config),
        }
    }

    /// Checks a document from a peer as a request from a user would be:
    /// a rate that is a rate, no version or start from the far future.
    /// (A rate above this replica's `MAX_RPS` is not an error here: the
    /// cap is applied when the plan is, so replicas still agree on the
    /// document.)
    pub fn check(&self, now_ms: u64) -> Result<(), DocumentError> {
        self.versions().check(now_ms)?;
        let plan = &self.plan.value;
        check_rate(plan.rps, f64::MAX).map_err(DocumentError::Rate)?;
        if plan.mode == Mode::Pause && plan.rps != 0.0 {
            return Err(DocumentError::PauseWithRate(plan.rps));
        }
        if plan.start_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Err(DocumentError::StartAhead { ahead_ms: plan.start_ms - now_ms });
        }
        plan.check_shape()?;
        if let Some(job) = self.job.as_ref().and_then(|j| j.value.running.as_ref()) {
            job.check(now_ms)?;
        }
        if let Some(workload) = &self.workload {
            workload.value.check()?;
        }
        if let Some(config) = &self.config {
            config.value.check()?;
        }
        Ok(())
    }
}

/// A section absent until first used: theirs if we have none, or if newer.
fn take_newer_optional<T>(mine: &mut Option<Section<T>>, theirs: Option<Section<T>>) -> bool {
    match (mine.as_mut(), theirs) {
        (_, None) => false,
        (None, Some(theirs)) => {
            *mine = Some(theirs);
            true
        }
        (Some(mine), Some(theirs)) => mine.take_newer(theirs),
    }
}

/// Longest job id a peer may send (ours are `job-<n>-<hex>`).
const MAX_JOB_ID_CHARS: usize = 64;

impl SharedJob {
    /// A peer's job, checked by the rules of `POST /jobs` (see
    /// [`JobSpec::check_sent`]: every field, string and list within the
    /// same bounds; the cap and the request names are applied where it is
    /// played), with an id like ours and a start not from the future.
    fn check(&self, now_ms: u64) -> Result<(), DocumentError> {
        let id_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if self.job_id.is_empty() || self.job_id.len() > MAX_JOB_ID_CHARS || !self.job_id.bytes().all(id_char) {
            return Err(DocumentError::Job(format!(
                "job_id must be 1 to {MAX_JOB_ID_CHARS} letters, digits, '-' or '_'"
            )));
        }
        self.spec.check_sent().map_err(|e| DocumentError::Job(e.to_string()))?;
        if self.start_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
            return Err(DocumentError::StartAhead { ahead_ms: self.start_ms - now_ms });
        }
        Ok(())
    }
}

/// A mode as its name in JSON.
mod mode_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::engine::mode::Mode;

    pub fn serialize<S: Serializer>(mode: &Mode, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(mode.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::version::InstanceId;

    const NOW: u64 = 1_800_000_000_000;

    fn plan(clock: u64, replica: u64, mode: Mode, rps: f64) -> Document {
        Document {
            plan: Section {
                version: Version { clock, replica: InstanceId(replica) },
                value: PlanSpec::constant(mode, rps, clock),
            },
            job: None,
            workload: None,
            config: None,
        }
    }

    #[test]
    fn only_a_newer_version_changes_a_section() {
        let mut doc = Document::initial(Mode::Steady, 2.0);
        assert!(doc.merge(plan(10, 1, Mode::Burst, 20.0)).any());
        assert_eq!(doc.plan.value.mode, Mode::Burst);
        // Late, repeated and equal-but-different messages change nothing.
        assert!(!doc.merge(plan(9, 7, Mode::Overload, 100.0)).any());
        assert!(!doc.merge(plan(10, 1, Mode::Burst, 20.0)).any());
        assert!(!doc.merge(plan(10, 1, Mode::Pause, 0.0)).any(), "same version: the first one stands");
        assert!(!doc.merge(Document::initial(Mode::Pause, 0.0)).any());
        // The replica id breaks a tie of clocks.
        assert_eq!(doc.merge(plan(10, 2, Mode::Pause, 0.0)).names(), vec!["plan"]);
        assert_eq!(doc.plan.value.mode, Mode::Pause);
        assert_eq!(doc.versions().latest(), Version { clock: 10, replica: InstanceId(2) });
    }

    #[test]
    fn a_replica_is_behind_when_any_section_of_a_peer_is_newer() {
        let old = plan(5, 1, Mode::Burst, 20.0).versions();
        let new = plan(6, 1, Mode::Burst, 20.0).versions();
        assert!(old.behind(&new));
        assert!(!new.behind(&old));
        assert!(!new.behind(&new));
    }

    #[test]
    fn documents_round_trip_and_unknown_sections_are_ignored() {
        let doc = plan(NOW, 0xab, Mode::Custom, 250.5);
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"plan":{{"version":{{"clock":{NOW},"replica":"00000000000000ab"}},"value":{{"mode":"custom","rps":250.5,"start_ms":{NOW}}}}}}}"#
            )
        );
        assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), doc);
        let with_more = json.replacen('{', r#"{"targets":{"version":1},"#, 1);
        assert_eq!(serde_json::from_str::<Document>(&with_more).unwrap(), doc, "an unknown section is ignored");
        let field = json.replace(r#""start_ms""#, r#""jitter":1,"start_ms""#);
        assert!(serde_json::from_str::<Document>(&field).is_err(), "an unknown field of a known section is refused");
        let mode = json.replace("custom", "turbo");
        assert!(serde_json::from_str::<Document>(&mode).unwrap_err().to_string().contains("turbo"));
    }

    #[test]
    fn a_peer_document_is_checked_like_a_user_request() {
        assert_eq!(plan(NOW, 1, Mode::Custom, 250.0).check(NOW), Ok(()));
        assert_eq!(plan(NOW, 1, Mode::Custom, 1e9).check(NOW), Ok(()), "the cap is applied later");
        assert!(matches!(plan(NOW, 1, Mode::Custom, -1.0).check(NOW), Err(DocumentError::Rate(_))));
        assert!(matches!(plan(NOW, 1, Mode::Custom, 1e-20).check(NOW), Err(DocumentError::Rate(_))));
        assert_eq!(plan(NOW, 1, Mode::Pause, 3.0).check(NOW), Err(DocumentError::PauseWithRate(3.0)));
        let ahead = plan(NOW + MAX_AHEAD_MS + 5, 1, Mode::Burst, 20.0);
        assert!(matches!(ahead.check(NOW), Err(DocumentError::Ahead { section: "plan", .. })));
        let mut start_ahead = plan(NOW, 1, Mode::Burst, 20.0);
        start_ahead.plan.value.start_ms = u64::MAX;
        assert!(matches!(start_ahead.check(NOW), Err(DocumentError::StartAhead { .. })));
        assert!(start_ahead.check(NOW).unwrap_err().to_string().starts_with("plan: "));
    }

    #[test]
    fn a_peer_ramp_and_pause_are_checked_like_a_switch_and_read_back() {
        let shaped = |mode, ramp: Option<RampSpec>, pause: Option<PauseSpec>| {
            let mut doc = plan(NOW, 1, mode, 40.0);
            doc.plan.value.ramp = ramp;
            doc.plan.value.pause = pause;
            doc
        };
        let ramp = |from, secs| Some(RampSpec { from, secs });
        let pause = |min_secs, max_secs| Some(PauseSpec { min_secs, max_secs });
        let good = shaped(Mode::Users, ramp(0.0, 30.0), pause(0.3, 0.4));
        assert_eq!(good.check(NOW), Ok(()));
        let json = serde_json::to_string(&good).unwrap();
        assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), good);
        // Without them, the document reads as it did before they existed.
        let plain = serde_json::to_string(&plan(NOW, 1, Mode::Custom, 40.0)).unwrap();
        assert!(!plain.contains("ramp") && !plain.contains("pause"), "{plain}");
        let refused = [
            (shaped(Mode::Custom, ramp(f64::NAN, 30.0), None), "plan: ramp: from"),
            (shaped(Mode::Custom, ramp(-1.0, 30.0), None), "plan: ramp: from"),
            (shaped(Mode::Custom, ramp(0.0, 0.0), None), "plan: ramp: secs"),
            (shaped(Mode::Custom, ramp(0.0, f64::INFINITY), None), "plan: ramp: secs"),
            (shaped(Mode::Custom, ramp(0.0, MAX_RAMP_SECS * 2.0), None), "plan: ramp: secs"),
            (shaped(Mode::Custom, None, pause(1.0, 1.0)), "plan: pause: only users mode"),
            (shaped(Mode::Users, None, pause(2.0, 1.0)), "plan: pause: the shortest"),
            (shaped(Mode::Users, None, pause(-1.0, 1.0)), "plan: pause: a pause must be"),
            (shaped(Mode::Users, None, pause(0.0, 1e300)), "plan: pause: a pause must be"),
        ];
        for (doc, expected) in refused {
            let err = doc.check(NOW).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{expected}: {err}");
        }
        let mut pause_ramp = plan(NOW, 1, Mode::Pause, 0.0);
        pause_ramp.plan.value.ramp = ramp(10.0, 5.0);
        assert!(pause_ramp.check(NOW).unwrap_err().to_string().contains("pause has no ramp"));
    }

    #[test]
    fn asking_for_the_plan_in_force_is_no_change_unless_it_ramps_or_pauses_otherwise() {
        let spec = PlanSpec::constant(Mode::Users, 10.0, 5);
        assert!(spec.is_same_plan(Mode::Users, 10.0, None, None));
        assert!(!spec.is_same_plan(Mode::Users, 10.0, None, Some(PauseSpec { min_secs: 1.0, max_secs: 1.0 })));
        assert!(!spec.is_same_plan(Mode::Users, 10.0, Some(RampSpec { from: 10.0, secs: 1.0 }), None));
        assert!(!spec.is_same_plan(Mode::Users, 11.0, None, None));
        let ramping = PlanSpec { ramp: Some(RampSpec { from: 0.0, secs: 9.0 }), ..spec };
        assert!(!ramping.is_same_plan(Mode::Users, 10.0, None, None), "a plain switch ends a ramp");
    }

    fn job(clock: u64, running: Option<SharedJob>) -> Document {
        let mut doc = plan(1, 1, Mode::Steady, 2.0);
        doc.job = Some(Section {
            version: Version { clock, replica: InstanceId(1) },
            value: JobSection { running, stopped: None },
        });
        doc
    }

    fn shared(duration_secs: f64) -> SharedJob {
        let limits =
            crate::jobs::JobLimits { max_rps: 1000.0, max_users: 100, weighted: vec!["a".into()], errors: vec![] };
        let body = format!(r#"{{"scenario": "peak", "duration_secs": {duration_secs}, "max_rps": 50}}"#);
        let spec = crate::jobs::JobSpec::parse(body.as_bytes(), &limits).unwrap();
        SharedJob { job_id: "job-1-abcd".into(), spec, seed: 7, start_ms: NOW }
    }

    #[test]
    fn a_job_section_is_a_section_like_the_plan_and_absent_until_used() {
        let mut doc = Document::initial(Mode::Steady, 2.0);
        assert_eq!(doc.versions().job, None);
        assert!(!serde_json::to_string(&doc).unwrap().contains("job"), "older replicas see the same document");
        let started = job(20, Some(shared(60.0)));
        assert_eq!(doc.merge(started.clone()).names(), vec!["plan", "job"]);
        assert!(!doc.merge(job(19, None)).any(), "an older end changes nothing");
        assert!(doc.versions().behind(&job(21, None).versions()));
        assert!(doc.merge(job(21, None)).job);
        assert_eq!(doc.job.as_ref().unwrap().value.running, None);
        let json = serde_json::to_string(&started).unwrap();
        assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), started);
        assert_eq!(started.check(NOW), Ok(()));
        let mut bad = shared(60.0);
        bad.spec.duration_secs = 1e9;
        assert!(matches!(job(20, Some(bad)).check(NOW), Err(DocumentError::Job(_))));
        let mut ahead = shared(60.0);
        ahead.start_ms = NOW + MAX_AHEAD_MS + 1;
        assert!(matches!(job(20, Some(ahead)).check(NOW), Err(DocumentError::StartAhead { .. })));
    }

    #[test]
    fn a_peer_job_is_bounded_by_the_checks_of_post_jobs() {
        let mut preset = shared(60.0);
        preset.spec.preset = Some("x".repeat(1_900_000));
        let err = job(20, Some(preset)).check(NOW).unwrap_err();
        assert!(err.to_string().starts_with("job: preset: unknown preset"), "{err}");
        assert!(err.to_string().len() < 300, "quoted at length: {} bytes", err.to_string().len());
        let mut names = shared(60.0);
        names.spec.endpoints = Some(vec!["n".repeat(65)]);
        assert!(job(20, Some(names)).check(NOW).unwrap_err().to_string().starts_with("job: endpoints"));
        for id in ["", "job 1", "job-1\n", &"j".repeat(65)] {
            let mut bad = shared(60.0);
            bad.job_id = id.to_string();
            assert!(job(20, Some(bad)).check(NOW).unwrap_err().to_string().starts_with("job: job_id"), "{id:?}");
        }
    }

    fn workload(clock: u64, source: &str, text: &str) -> Document {
        let mut doc = plan(1, 1, Mode::Steady, 2.0);
        doc.workload = Some(Section {
            version: Version { clock, replica: InstanceId(2) },
            value: WorkloadSection { source: source.into(), text: text.into() },
        });
        doc
    }

    fn config(clock: u64, overrides: &str) -> Document {
        let mut doc = plan(1, 1, Mode::Steady, 2.0);
        doc.config = Some(Section {
            version: Version { clock, replica: InstanceId(3) },
            value: ConfigSection { overrides: serde_json::from_str(overrides).unwrap() },
        });
        doc
    }

    #[test]
    fn workload_and_config_sections_merge_like_the_plan_and_are_absent_until_used() {
        let mut doc = Document::initial(Mode::Steady, 2.0);
        let json = serde_json::to_string(&doc).unwrap();
        assert!(!json.contains("workload") && !json.contains("config"), "older replicas see the same document");
        assert_eq!(doc.versions().workload, None);
        assert_eq!(doc.merge(workload(20, "body", "requests: []")).names(), vec!["plan", "workload"]);
        assert!(!doc.merge(workload(19, "body", "older")).any(), "an older workload changes nothing");
        assert!(!doc.merge(workload(20, "body", "same version")).any(), "the first of a version stands");
        assert_eq!(doc.workload.as_ref().unwrap().value.text, "requests: []");
        // Sections are independent: a config change leaves the workload be.
        assert_eq!(doc.merge(config(15, r#"{"steady_rps": 7}"#)).names(), vec!["config"]);
        assert!(doc.versions().behind(&config(16, "{}").versions()));
        assert!(doc.versions().behind(&workload(21, "body", "x").versions()));
        assert_eq!(doc.merge(config(16, "{}")).names(), vec!["config"], "a reset is a change like another");
        assert!(doc.config.as_ref().unwrap().value.overrides.is_empty());
        assert_eq!(doc.workload.as_ref().unwrap().version.clock, 20);
        let latest = doc.versions();
        assert_eq!(latest.each().count(), 3);
        assert_eq!(latest.latest(), Version { clock: 20, replica: InstanceId(2) });
        // Round trip, and each section's version checked for the future.
        let json = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<Document>(&json).unwrap(), doc);
        let ahead = workload(NOW + MAX_AHEAD_MS + 1, "body", "x");
        assert!(matches!(ahead.check(NOW), Err(DocumentError::Ahead { section: "workload", .. })));
        let ahead = config(NOW + MAX_AHEAD_MS + 1, "{}");
        assert!(matches!(ahead.check(NOW), Err(DocumentError::Ahead { section: "config", .. })));
    }

    #[test]
    fn a_peer_workload_or_config_is_bounded_like_a_user_request() {
        assert_eq!(workload(NOW, "body", "requests: []").check(NOW), Ok(()));
        let limit = crate::workload::MAX_FILE_BYTES;
        assert_eq!(workload(NOW, "/etc/w.yaml", &"#".repeat(limit)).check(NOW), Ok(()), "the file bound itself");
        let large = workload(NOW, "body", &"#".repeat(limit + 1)).check(NOW).unwrap_err();
        assert!(large.to_string().starts_with("workload: text is larger than"), "{large}");
        assert!(matches!(workload(NOW, "", "x").check(NOW), Err(DocumentError::Workload(_))));
        let long_source = "s".repeat(MAX_SOURCE_CHARS + 1);
        assert!(matches!(workload(NOW, &long_source, "x").check(NOW), Err(DocumentError::Workload(_))));
        // Control characters grow six-fold in JSON: bounded as sent.
        let escaped = workload(NOW, "body", &"\u{1}".repeat(limit / 2)).check(NOW).unwrap_err();
        assert!(escaped.to_string().contains("control characters"), "{escaped}");
        // A document at the bounds fits what a peer reads.
        let at_bound = workload(NOW, "body", &"\n".repeat(limit));
        assert!(serde_json::to_vec(&at_bound).unwrap().len() <= crate::cluster::MAX_DOCUMENT_BYTES);

        assert_eq!(config(NOW, r#"{"steady_rps": 7, "max_in_flight": 16}"#).check(NOW), Ok(()));
        assert_eq!(config(NOW, "{}").check(NOW), Ok(()));
        let unknown = config(NOW, r#"{"target_url": 1}"#).check(NOW).unwrap_err();
        assert_eq!(unknown.to_string(), "config: 'target_url' is not a runtime setting");
        let text = config(NOW, r#"{"jitter": "0.1"}"#).check(NOW).unwrap_err();
        assert_eq!(text.to_string(), "config: jitter must be a number");
        let json =
            serde_json::to_string(&config(NOW, "{}")).unwrap().replace(r#""overrides""#, r#""more":1,"overrides""#);
        assert!(serde_json::from_str::<Document>(&json).is_err(), "an unknown field of a known section is refused");
    }
}
