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
//! Today there is one section, `plan` (mode, rate and the instant its
//! schedule starts). Replicating another kind of state (a job, a workload
//! text, the runtime config) is one more `Option<Section<…>>` field here,
//! with its line in [`Document::merge`], [`Document::versions`],
//! [`Versions`] and [`Document::check`], and its apply in
//! `Cluster::apply` (see `super`).

use serde::{Deserialize, Serialize};

use super::version::{MAX_AHEAD_MS, Version, VersionAhead};
use crate::engine::mode::{Mode, RateError, check_rate};

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
}

/// The version of each section: what peers compare to find who is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub plan: Version,
}

impl Versions {
    /// True when `theirs` has a newer version of any section.
    pub fn behind(&self, theirs: &Versions) -> bool {
        theirs.plan > self.plan
    }

    /// The newest version of any section.
    pub fn latest(&self) -> Version {
        self.plan
    }

    pub fn each(&self) -> impl Iterator<Item = Version> {
        [self.plan].into_iter()
    }

    /// Refuses versions too far ahead of `now_ms`.
    pub fn check(&self, now_ms: u64) -> Result<(), DocumentError> {
        self.plan.check_not_ahead(now_ms).map_err(|e| DocumentError::Ahead { section: "plan", error: e })
    }
}

/// Which sections a merge changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    pub plan: bool,
}

impl Changed {
    pub fn any(&self) -> bool {
        self.plan
    }

    /// The names of the changed sections.
    pub fn names(&self) -> Vec<&'static str> {
        [("plan", self.plan)].into_iter().filter(|(_, changed)| *changed).map(|(name, _)| name).collect()
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
}

impl Document {
    /// A replica's document before any change: its settings' initial mode.
    pub fn initial(mode: Mode, rps: f64) -> Document {
        Document { plan: Section { version: Version::INITIAL, value: PlanSpec { mode, rps, start_ms: 0 } } }
    }

    pub fn versions(&self) -> Versions {
        Versions { plan: self.plan.version }
    }

    /// Takes every section of `incoming` that is newer than ours.
    pub fn merge(&mut self, incoming: Document) -> Changed {
        Changed { plan: self.plan.take_newer(incoming.plan) }
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
                value: PlanSpec { mode, rps, start_ms: clock },
            },
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
        let with_more = json.replacen('{', r#"{"workload":{"version":1},"#, 1);
        assert_eq!(serde_json::from_str::<Document>(&with_more).unwrap(), doc, "an unknown section is ignored");
        let field = json.replace(r#""start_ms""#, r#""ramp":1,"start_ms""#);
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
}
