//! Who the replicas are, and this one's share of the schedule. Pure: the
//! poll loop feeds it what it resolved and what peers answered.
//!
//! Members are keyed by instance id, not address: a replica learns which
//! resolved address is itself when that address answers with its own id,
//! two addresses of one replica (IPv4 and IPv6) count once, and the order
//! (by id) is the same on every replica whatever addresses each one sees.
//! This replica is always a member, even before it finds its own address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::document::Versions;
use super::version::InstanceId;
use crate::engine::mode::Share;

/// Polls a peer may miss in a row before its share is taken over by the
/// others: one lost answer on a busy machine must not re-split the load.
pub const MISSES_BEFORE_LEAVING: u32 = 2;

/// What a replica says about itself on `GET /cluster/member`. Unknown
/// fields (from a newer release) are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub instance: InstanceId,
    /// `warming_up`, `running` or `paused`.
    pub state: String,
    pub mode: String,
    pub rps: f64,
    pub share: ShareJson,
    pub versions: Versions,
    /// The rate its schedule asks of it now (its share of a ramp's or a
    /// job's rate at this moment); absent from an older release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
    /// The rate it sent over the last 10 s; absent from an older release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_rps: Option<f64>,
}

impl MemberInfo {
    /// The state of a replica that received a stop signal: its share is
    /// taken over at once, not after it stops answering.
    pub const STOPPING: &'static str = "stopping";

    /// Still in its warm-up, or stopping: not sending.
    pub fn sending(&self) -> bool {
        self.state != "warming_up" && self.state != Self::STOPPING
    }

    /// Bounds what a peer says of itself (`/status` shows it): its state
    /// and mode are short names (a newer release may add some).
    pub fn check(&self) -> Result<(), String> {
        for (field, value) in [("state", &self.state), ("mode", &self.mode)] {
            let name_like = |b: u8| b.is_ascii_lowercase() || b == b'_';
            if value.is_empty() || value.len() > MAX_NAME_CHARS || !value.bytes().all(name_like) {
                return Err(format!("its {field} is not a name of 1 to {MAX_NAME_CHARS} letters a-z and '_'"));
            }
        }
        for (field, rate) in [("target_rps", self.target_rps), ("achieved_rps", self.achieved_rps)] {
            if rate.is_some_and(|r| !(0.0..=MAX_REPORTED_RPS).contains(&r)) {
                return Err(format!("its {field} is not a rate from 0 to {MAX_REPORTED_RPS}"));
            }
        }
        Ok(())
    }
}

/// Highest rate a peer may report (far above any `MAX_RPS`): the
/// cluster's sums stay meaningful whatever a peer says.
const MAX_REPORTED_RPS: f64 = 1e7;

/// Longest state or mode name a peer may report.
const MAX_NAME_CHARS: usize = 32;

/// A [`Share`] as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareJson {
    pub index: u64,
    pub count: u64,
}

impl From<Share> for ShareJson {
    fn from(share: Share) -> Self {
        ShareJson { index: share.index, count: share.count }
    }
}

/// What is known of one resolved address.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// Its last answer, if it ever answered.
    pub last: Option<MemberInfo>,
    pub last_seen: Option<Instant>,
    /// Polls missed in a row.
    pub misses: u32,
    pub error: Option<String>,
    /// This address is this replica.
    pub is_self: bool,
    /// The last fan-out to it failed, and why.
    pub fanout_error: Option<String>,
}

impl Peer {
    pub fn reachable(&self) -> bool {
        self.misses == 0 && self.last.is_some()
    }

    /// Counts in the split: known, not gone quiet, not stopping.
    pub fn is_member(&self) -> bool {
        !self.is_self
            && self.misses < MISSES_BEFORE_LEAVING
            && self.last.as_ref().is_some_and(|info| info.state != MemberInfo::STOPPING)
    }
}

/// The resolved addresses and what each one said.
#[derive(Debug, Clone)]
pub struct Membership {
    me: InstanceId,
    peers: BTreeMap<SocketAddr, Peer>,
}

impl Membership {
    pub fn new(me: InstanceId) -> Self {
        Membership { me, peers: BTreeMap::new() }
    }

    /// After a lookup: addresses no longer listed are forgotten (a replica
    /// gone from DNS has left), new ones are added, unknown as yet.
    pub fn set_addresses(&mut self, addresses: &[SocketAddr]) {
        let listed: BTreeSet<&SocketAddr> = addresses.iter().collect();
        self.peers.retain(|address, _| listed.contains(address));
        for address in addresses {
            self.peers.entry(*address).or_default();
        }
    }

    pub fn addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.keys().copied()
    }

    /// `address` answered with `info`.
    pub fn answered(&mut self, address: SocketAddr, info: MemberInfo, now: Instant) {
        let me = self.me;
        if let Some(peer) = self.peers.get_mut(&address) {
            peer.is_self = info.instance == me;
            peer.last = Some(info);
            peer.last_seen = Some(now);
            peer.misses = 0;
            peer.error = None;
        }
    }

    /// The replica `instance` said it is stopping: its share is taken over
    /// now (its next answer, if any, says what it is again).
    pub fn stopping(&mut self, instance: InstanceId) {
        for peer in self.peers.values_mut() {
            if let Some(info) = peer.last.as_mut().filter(|i| i.instance == instance) {
                info.state = MemberInfo::STOPPING.into();
            }
        }
    }

    /// `address` did not answer; true when it has just become unreachable.
    pub fn missed(&mut self, address: SocketAddr, error: String) -> bool {
        let Some(peer) = self.peers.get_mut(&address) else { return false };
        peer.misses = peer.misses.saturating_add(1);
        peer.error = Some(error);
        peer.misses == 1 && peer.last.is_some()
    }

    /// Notes how the last fan-out to `address` went; returns whether the
    /// one before had failed.
    pub fn fanned_out(&mut self, address: SocketAddr, result: Result<(), String>) -> bool {
        match self.peers.get_mut(&address) {
            Some(peer) => std::mem::replace(&mut peer.fanout_error, result.err()).is_some(),
            None => false,
        }
    }

    /// Every member's id, this replica's included, in order.
    pub fn members(&self) -> Vec<InstanceId> {
        let peers = self.peers.values().filter(|p| p.is_member()).filter_map(|p| p.last.as_ref().map(|i| i.instance));
        let set: BTreeSet<InstanceId> = peers.chain([self.me]).collect();
        set.into_iter().collect()
    }

    /// This replica's part of the schedule.
    pub fn share(&self) -> Share {
        split(self.me, &self.members())
    }

    /// Every address but our own (told when this replica leaves).
    pub fn others(&self) -> Vec<SocketAddr> {
        self.peers.iter().filter(|(_, p)| !p.is_self).map(|(a, _)| *a).collect()
    }

    /// Where changes made here are sent: every other address whose last
    /// poll got a signed answer (see [`super::auth`]).
    pub fn proven_others(&self) -> Vec<SocketAddr> {
        self.peers.iter().filter(|(_, p)| !p.is_self && p.reachable()).map(|(a, _)| *a).collect()
    }

    /// The reachable peer with the newest state, if it is newer than `mine`
    /// in any section and none of its versions is too far ahead of
    /// `now_ms` (its document would be refused): the one to catch up from.
    pub fn ahead_of(&self, mine: &Versions, now_ms: u64) -> Option<SocketAddr> {
        self.peers
            .iter()
            .filter(|(_, p)| p.reachable() && !p.is_self)
            .filter_map(|(a, p)| p.last.as_ref().map(|i| (a, i.versions)))
            .filter(|(_, theirs)| mine.behind(theirs) && theirs.check(now_ms).is_ok())
            .max_by_key(|(_, theirs)| theirs.latest())
            .map(|(a, _)| *a)
    }

    /// A reachable peer is past its warm-up: the cluster is sending, so a
    /// replica that joins it has no reason to wait (its share is missing).
    pub fn a_peer_is_sending(&self) -> bool {
        self.peers.values().any(|p| p.reachable() && !p.is_self && p.last.as_ref().is_some_and(MemberInfo::sending))
    }

    /// This replica's own address, once one answered with its id.
    pub fn own_address(&self) -> Option<SocketAddr> {
        self.peers.iter().find(|(_, p)| p.is_self).map(|(a, _)| *a)
    }

    pub fn peers(&self) -> impl Iterator<Item = (&SocketAddr, &Peer)> {
        self.peers.iter()
    }
}

/// `me`'s share among `members` (sorted; `me` counts once, listed or not).
pub fn split(me: InstanceId, members: &[InstanceId]) -> Share {
    let set: BTreeSet<InstanceId> = members.iter().copied().chain([me]).collect();
    let index = set.iter().position(|id| *id == me).unwrap_or(0);
    Share::new(index as u64, set.len() as u64).unwrap_or(Share::WHOLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::version::Version;

    const ME: InstanceId = InstanceId(0x50);

    fn info(instance: u64, state: &str, clock: u64) -> MemberInfo {
        MemberInfo {
            instance: InstanceId(instance),
            state: state.into(),
            mode: "steady".into(),
            rps: 2.0,
            share: ShareJson { index: 0, count: 1 },
            versions: Versions {
                plan: Version { clock, replica: InstanceId(instance) },
                job: None,
                workload: None,
                config: None,
            },
            target_rps: None,
            achieved_rps: None,
        }
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 8089))
    }

    #[test]
    fn the_split_is_by_instance_id_and_counts_this_replica_once() {
        let ids = |list: &[u64]| list.iter().map(|&n| InstanceId(n)).collect::<Vec<_>>();
        assert_eq!(split(ME, &ids(&[])), Share::WHOLE);
        assert_eq!(split(ME, &ids(&[0x90, 0x10])), Share::new(1, 3).unwrap());
        assert_eq!(split(ME, &ids(&[0x90, 0x50, 0x10, 0x10])), Share::new(1, 3).unwrap());
        assert_eq!(split(ME, &ids(&[0x60, 0x70])), Share::new(0, 3).unwrap());
        // Every replica of a set computes a different index: together they
        // own every slot once.
        let all = ids(&[0x31, 0x07, 0xff, 0x50]);
        let mut indexes: Vec<u64> = all.iter().map(|&id| split(id, &all).index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_peer_joins_when_it_answers_and_leaves_after_missing_two_polls() {
        let now = Instant::now();
        let mut m = Membership::new(ME);
        m.set_addresses(&[addr(1), addr(2), addr(3)]);
        assert_eq!(m.share(), Share::WHOLE, "nobody has answered yet");
        m.answered(addr(1), info(0x10, "running", 1), now);
        m.answered(addr(2), info(ME.0, "running", 1), now);
        m.answered(addr(3), info(0x90, "warming_up", 1), now);
        assert_eq!(m.own_address(), Some(addr(2)));
        assert_eq!(m.members(), vec![InstanceId(0x10), ME, InstanceId(0x90)]);
        assert_eq!(m.share(), Share::new(1, 3).unwrap(), "a peer still warming up counts");
        assert_eq!(m.others(), vec![addr(1), addr(3)], "never notify ourselves");
        assert_eq!(m.proven_others(), vec![addr(1), addr(3)]);

        assert!(m.missed(addr(3), "connection refused".into()), "unreachable at once");
        assert_eq!(m.proven_others(), vec![addr(1)], "changes go to those that answered their last poll");
        assert_eq!(m.share(), Share::new(1, 3).unwrap(), "one miss keeps its share");
        assert!(!m.missed(addr(3), "connection refused".into()));
        assert_eq!(m.share(), Share::new(1, 2).unwrap(), "two misses: the others take it over");
        m.answered(addr(3), info(0x90, "running", 1), now);
        assert_eq!(m.share(), Share::new(1, 3).unwrap(), "back at the next answer");
        m.answered(addr(3), info(0x90, MemberInfo::STOPPING, 1), now);
        assert_eq!(m.share(), Share::new(1, 2).unwrap(), "stopping: taken over at once");
        m.answered(addr(3), info(0x90, "running", 1), now);
        m.stopping(InstanceId(0x90));
        assert_eq!(m.share(), Share::new(1, 2).unwrap(), "told it is stopping: taken over before it answers");
        m.answered(addr(3), info(0x90, "running", 1), now);

        // Gone from DNS: gone at once.
        m.set_addresses(&[addr(2), addr(3)]);
        assert_eq!(m.share(), Share::new(0, 2).unwrap());
        // A new address knows nothing until it answers.
        m.set_addresses(&[addr(2), addr(3), addr(4)]);
        assert_eq!(m.share(), Share::new(0, 2).unwrap());
        assert!(!m.missed(addr(4), "refused".into()), "never answered: not 'become unreachable'");
        assert_eq!(m.others(), vec![addr(3), addr(4)]);
        assert_eq!(m.proven_others(), vec![addr(3)], "never sent anything before it answered");
    }

    #[test]
    fn what_a_peer_says_of_itself_is_bounded() {
        assert_eq!(info(0x10, "running", 1).check(), Ok(()));
        assert_eq!(info(0x10, MemberInfo::STOPPING, 1).check(), Ok(()));
        assert_eq!(info(0x10, "a_state_of_a_newer_release", 1).check(), Ok(()));
        for state in ["", "Running", "run ning", "x\n", &"x".repeat(33), &"x".repeat(1_900_000)] {
            let err = info(0x10, state, 1).check().unwrap_err();
            assert!(err.contains("state"), "{err}");
        }
        let mut long_mode = info(0x10, "running", 1);
        long_mode.mode = "m".repeat(100);
        assert!(long_mode.check().unwrap_err().contains("mode"));
    }

    #[test]
    fn two_addresses_of_one_replica_count_once() {
        let mut m = Membership::new(ME);
        let v6 = SocketAddr::from(([0xfd00, 0, 0, 0, 0, 0, 0, 1], 8089));
        m.set_addresses(&[addr(1), v6]);
        m.answered(addr(1), info(0x10, "running", 1), Instant::now());
        m.answered(v6, info(0x10, "running", 1), Instant::now());
        assert_eq!(m.share(), Share::new(1, 2).unwrap());
    }

    #[test]
    fn catch_up_picks_the_reachable_peer_with_the_newest_state() {
        let at = Instant::now();
        let mut m = Membership::new(ME);
        m.set_addresses(&[addr(1), addr(2), addr(3)]);
        m.answered(addr(1), info(0x10, "running", 5), at);
        m.answered(addr(2), info(0x20, "running", 9), at);
        m.answered(addr(3), info(0x30, "running", 12), at);
        m.missed(addr(3), "timeout".into());
        let mine = |clock| Versions { plan: Version { clock, replica: ME }, job: None, workload: None, config: None };
        let now_ms = 100_000;
        assert_eq!(m.ahead_of(&mine(1), now_ms), Some(addr(2)), "the newest reachable one");
        assert_eq!(m.ahead_of(&mine(9), now_ms), None, "nobody reachable is ahead");
        // A peer whose versions are beyond this clock's bound is not caught
        // up from (its document would be refused), and still counts.
        let far = now_ms + crate::cluster::version::MAX_AHEAD_MS + 1;
        m.answered(addr(1), info(0x10, "running", far), at);
        assert_eq!(m.ahead_of(&mine(1), now_ms), Some(addr(2)));
        assert_eq!(m.members().len(), 4, "it proved who it is: it counts");
        m.answered(addr(1), info(0x10, "running", 5), at);
        assert!(m.a_peer_is_sending());
        m.answered(addr(2), info(0x20, "warming_up", 9), at);
        m.answered(addr(1), info(0x10, "warming_up", 5), at);
        assert!(!m.a_peer_is_sending(), "all reachable peers are warming up");
    }
}
