//! Versions of replicated changes: a hybrid logical clock (milliseconds of
//! wall time, pushed past every version seen) plus the replica's id.
//!
//! Versions are totally ordered: by clock, then by replica id, so two
//! changes made at the same millisecond on two replicas still have a winner
//! that every replica agrees on. A replica's next version is past every
//! version it has seen, so a change made after hearing of another one
//! always wins over it, whatever the clocks say.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How far ahead of our clock a version (or a plan's start) may be: a peer's
/// clock may be a little ahead (NTP keeps hosts within milliseconds). Kept
/// tight because a version from the future wins over every change made
/// before its time on a replica that has not seen it yet: a forged one 59 s
/// ahead would hold the whole cluster for 59 s. So at most this long after
/// any accepted version, a change made anywhere wins over it. (A clock near
/// `u64::MAX` would also leave no room for later changes.)
pub const MAX_AHEAD_MS: u64 = 1_000;

/// A replica's random id, chosen at start; 0 is nobody's (the initial
/// version). Shown as 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(pub u64);

impl InstanceId {
    pub const NOBODY: InstanceId = InstanceId(0);

    pub fn random() -> InstanceId {
        loop {
            let id = rand::random::<u64>();
            if id != 0 {
                return InstanceId(id);
            }
        }
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an instance id is 16 hex digits, not {0:?}")]
pub struct BadInstanceId(String);

impl FromStr for InstanceId {
    type Err = BadInstanceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BadInstanceId(s.chars().take(40).collect()));
        }
        u64::from_str_radix(s, 16).map(InstanceId).map_err(|_| BadInstanceId(s.to_string()))
    }
}

impl Serialize for InstanceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The version of one replicated value. The field order is the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// Milliseconds since the Unix epoch, or later (see [`Clock`]).
    pub clock: u64,
    /// The replica that made the change.
    pub replica: InstanceId,
}

impl Version {
    /// What every replica starts from: its own settings, older than any change.
    pub const INITIAL: Version = Version { clock: 0, replica: InstanceId::NOBODY };

    /// Refuses a version too far ahead of `now_ms`.
    pub fn check_not_ahead(&self, now_ms: u64) -> Result<(), VersionAhead> {
        if self.clock > now_ms.saturating_add(MAX_AHEAD_MS) {
            Err(VersionAhead { ahead_ms: self.clock - now_ms })
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.clock, self.replica)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "version is {ahead_ms} ms ahead of this replica's clock (at most {MAX_AHEAD_MS} ms allowed: are the clocks in sync?)"
)]
pub struct VersionAhead {
    pub ahead_ms: u64,
}

/// A replica's clock for new versions: wall time, but always past every
/// version seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    seen: u64,
}

impl Clock {
    /// Notes a version heard of (applied or not).
    pub fn observe(&mut self, version: Version) {
        self.seen = self.seen.max(version.clock);
    }

    /// The version of a change made now by `me`.
    pub fn next(&mut self, now_ms: u64, me: InstanceId) -> Version {
        let clock = now_ms.max(self.seen.saturating_add(1));
        self.seen = clock;
        Version { clock, replica: me }
    }
}

/// Milliseconds since the Unix epoch now (0 for a clock before 1970).
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: InstanceId = InstanceId(0xa);
    const B: InstanceId = InstanceId(0xb);

    #[test]
    fn versions_order_by_clock_then_by_replica() {
        let v = |clock, replica| Version { clock, replica };
        assert!(v(5, A) < v(6, A));
        assert!(v(5, B) < v(6, A), "the clock decides first");
        assert!(v(5, A) < v(5, B), "then the replica id breaks the tie");
        assert!(Version::INITIAL < v(0, A));
        assert!(Version::INITIAL < v(1, InstanceId::NOBODY));
    }

    #[test]
    fn a_change_made_after_hearing_of_another_wins_whatever_the_clocks() {
        let mut clock = Clock::default();
        // A peer's clock is 30 s ahead of ours.
        let theirs = Version { clock: 1_000_030_000, replica: B };
        clock.observe(theirs);
        let ours = clock.next(1_000_000_000, A);
        assert!(ours > theirs, "{ours} after {theirs}");
        assert!(clock.next(1_000_000_000, A) > ours, "and each next one is later still");
        // With nothing seen, the wall clock.
        assert_eq!(Clock::default().next(77, A), Version { clock: 77, replica: A });
        // Observing an older version changes nothing.
        let mut c = Clock::default();
        c.observe(Version { clock: 10, replica: B });
        c.observe(Version { clock: 3, replica: B });
        assert_eq!(c.next(0, A).clock, 11);
    }

    #[test]
    fn the_clock_never_overflows() {
        let mut clock = Clock::default();
        clock.observe(Version { clock: u64::MAX, replica: B });
        assert_eq!(clock.next(5, A).clock, u64::MAX);
    }

    #[test]
    fn versions_far_ahead_are_refused() {
        let now = 1_700_000_000_000;
        assert!(Version { clock: now + MAX_AHEAD_MS, replica: A }.check_not_ahead(now).is_ok());
        let err = Version { clock: now + MAX_AHEAD_MS + 1, replica: A }.check_not_ahead(now).unwrap_err();
        assert!(err.to_string().contains("ahead"), "{err}");
        assert!(Version { clock: u64::MAX, replica: A }.check_not_ahead(now).is_err());
        assert!(Version { clock: u64::MAX, replica: A }.check_not_ahead(u64::MAX).is_ok());
    }

    /// Replica 1 is sent a version `ahead` ms past its clock at `t0`;
    /// replica 2, which has not seen it, makes a change `after` ms later.
    /// Each takes what it is sent if it passes its checks and is newer;
    /// the result is what both end with.
    fn forged_then_local(ahead: u64, after: u64) -> (bool, Version) {
        let t0 = 1_800_000_000_000;
        let forged = Version { clock: t0 + ahead, replica: InstanceId(0xf0f0) };
        let accepted = forged.check_not_ahead(t0).is_ok();
        let mut replica_1 = if accepted { forged } else { Version::INITIAL };
        let local = Clock::default().next(t0 + after, B);
        let mut replica_2 = local;
        // The fan-out of the local change, then the catch-up at the next
        // poll, each checked against the receiver's clock.
        if local.check_not_ahead(t0 + after).is_ok() && local > replica_1 {
            replica_1 = local;
        }
        if replica_1.check_not_ahead(t0 + after).is_ok() && replica_1 > replica_2 {
            replica_2 = replica_1;
        }
        assert_eq!(replica_1, replica_2, "the replicas agree");
        (accepted, replica_1)
    }

    #[test]
    fn a_version_far_ahead_never_wins_over_a_later_local_change() {
        // (ahead of replica 1's clock, the local change after it, taken?, who wins)
        for (ahead, after, taken, local_wins) in [
            // The attack of issue 21: 59.9 s ahead; refused, so a change made
            // anywhere afterwards stands.
            (59_900, 100, false, true),
            (59_900, 0, false, true),
            (MAX_AHEAD_MS + 1, 0, false, true),
            (u64::MAX / 2, 0, false, true),
            // Within the skew allowed: taken, and it wins only over a change
            // made before its time (the price of tolerating clock skew)…
            (MAX_AHEAD_MS, 500, true, false),
            // … never over one made after it.
            (MAX_AHEAD_MS, MAX_AHEAD_MS + 1, true, true),
            (300, 301, true, true),
            (0, 1, true, true),
        ] {
            let (accepted, winner) = forged_then_local(ahead, after);
            assert_eq!(accepted, taken, "ahead {ahead} ms");
            assert_eq!(winner.replica == B, local_wins, "ahead {ahead} ms, change {after} ms later: {winner}");
        }
    }

    #[test]
    fn instance_ids_are_sixteen_hex_digits_both_ways() {
        let id = InstanceId(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00abcdef01234567".parse(), Ok(id));
        assert_eq!("00ABCDEF01234567".parse(), Ok(id));
        for bad in ["", "abc", "00abcdef012345678", "00abcdef0123456g", "+0abcdef01234567", "é0abcdef0123456"] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&Version { clock: 3, replica: id }).unwrap();
        assert_eq!(json, r#"{"clock":3,"replica":"00abcdef01234567"}"#);
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), Version { clock: 3, replica: id });
        assert!(serde_json::from_str::<Version>(r#"{"clock":3,"replica":"x","more":1}"#).is_err());
        assert!(serde_json::from_str::<Version>(r#"{"clock":-1,"replica":"00abcdef01234567"}"#).is_err());
        assert_ne!(InstanceId::random(), InstanceId::NOBODY);
    }
}
