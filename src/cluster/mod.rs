//! Replicas that split the rate and switch together, with no coordinator.
//!
//! Every replica resolves `PEERS` every few seconds, asks each address who
//! it is (`GET /cluster/member`), and sends its share of one schedule: the
//! members sorted by instance id, this one the `index`-th of `count`, every
//! `count`-th slot from `index` (see [`split`] and
//! `crate::engine::schedule::Pacer::sharded`). Replicas anchor that schedule
//! at the same wall-clock instant, the plan's start, so their requests
//! interleave into one even stream.
//!
//! State changes go into a versioned [`document::Document`] through one
//! path, [`Cluster::merge`] (a change made here is merged with a new
//! version first): a change made on this replica is applied and then sent
//! to every peer (`PUT /cluster/state`), which merges it without sending it
//! on. A peer that misses it (down, slow, not yet started) finds a newer
//! version in the next poll and fetches the document (`GET /cluster/state`).
//!
//! Layout: [`version`] (versions and the clock), [`document`] (the
//! replicated state and its merge rule), [`split`] (membership and shares),
//! [`peers`] (the `PEERS` setting), [`client`] (HTTP to peers); this file
//! ties them to the engine and runs the poll loop and the fan-out.

pub mod client;
pub mod document;
pub mod peers;
pub mod split;
pub mod version;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::ControlToken;
use crate::engine::Engine;
use crate::engine::mode::Plan;
use client::PeerClient;
use document::{Changed, Document, DocumentError, PlanSpec, Section, Versions};
use peers::PeersSetting;
use split::{MemberInfo, Membership, ShareJson};
use version::{Clock, InstanceId, Version, now_ms};

/// Between polls while things are settled.
const POLL_EVERY: Duration = Duration::from_secs(2);
/// Between polls while they are not (warming up, the set just changed), so
/// replicas started together agree on the split before traffic starts.
const POLL_SOON: Duration = Duration::from_millis(500);
/// How long a peer has to answer; it is never waited on longer.
const PEER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a poll waits for the name lookup before using the addresses it
/// had; the lookup goes on, and no second one starts meanwhile.
const LOOKUP_WAIT: Duration = Duration::from_secs(1);
/// Largest `GET /cluster/member` answer read.
const MAX_MEMBER_BYTES: usize = 16 * 1024;
/// Largest document read or accepted. (A replicated workload text will
/// need this raised to the workload file bound.)
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Polls without finding our own address before saying so.
const SELF_SEARCH_POLLS: u32 = 10;
/// Least time between polls, however often peers ask for one.
const MIN_POLL_GAP: Duration = Duration::from_millis(250);
/// The header a replica's poll carries: its instance id, and `; stopping`
/// when it is leaving. A replica polled by one it does not count yet (or by
/// one that is leaving) polls at once, so a join or a leave is seen by all
/// within moments, not at their next poll.
pub const ASKER_HEADER: &str = "trafficgen-replica";

/// Where a change to the document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A request to this replica: applied, then fanned out.
    Local,
    /// A peer's fan-out: applied, not sent on. Ends the warm-up, as a
    /// switch on this replica would.
    Peer,
    /// Fetched from a peer that was ahead: applied, warm-up left alone.
    CatchUp,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Peer => "peer",
            Source::CatchUp => "catch_up",
        }
    }
}

/// A cheap, cloneable handle on this replica's part in the cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    me: InstanceId,
    setting: PeersSetting,
    engine: Engine,
    client: PeerClient,
    replicated: Mutex<Replicated>,
    membership: Mutex<Membership>,
    lookup: Mutex<LookupStatus>,
    /// Fan-out to each peer: at most one request in flight per peer.
    links: Mutex<HashMap<SocketAddr, Link>>,
    /// Set at shutdown: peers stop counting this replica at their next poll.
    stopping: std::sync::atomic::AtomicBool,
    /// Wakes the poll loop early (see [`ASKER_HEADER`]).
    wake: tokio::sync::Notify,
}

struct Replicated {
    document: Document,
    clock: Clock,
}

#[derive(Debug, Default)]
struct LookupStatus {
    at: Option<Instant>,
    addresses: usize,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Link {
    sending: bool,
    /// The document changed while a request was in flight: send it again.
    again: bool,
}

impl Cluster {
    /// Joins the engine to the replicas `setting` names. Its first plan
    /// (the initial mode) is anchored at the Unix epoch, the instant every
    /// replica agrees on without a word.
    pub fn new(setting: PeersSetting, engine: Engine, token: Option<&ControlToken>) -> Cluster {
        let me = InstanceId::random();
        let plan = engine.plan();
        let document = Document::initial(plan.mode, plan.rps);
        let inner = Inner {
            me,
            setting,
            client: PeerClient::new(token, PEER_TIMEOUT),
            replicated: Mutex::new(Replicated { document: document.clone(), clock: Clock::default() }),
            membership: Mutex::new(Membership::new(me)),
            lookup: Mutex::new(LookupStatus::default()),
            links: Mutex::new(HashMap::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            engine,
        };
        let cluster = Cluster { inner: Arc::new(inner) };
        cluster.apply_plan(&document.plan, Source::CatchUp);
        cluster
    }

    pub fn instance(&self) -> InstanceId {
        self.inner.me
    }

    /// Starts polling the peers (on the current actix runtime).
    pub fn start(&self) -> actix_rt::task::JoinHandle<()> {
        log::info!(peers:% = self.inner.setting, instance:% = self.inner.me;
            "cluster: one of the replicas at {}", self.inner.setting);
        actix_rt::spawn(self.clone().poll_loop())
    }

    /// From now on this replica says it is stopping, and tells its peers,
    /// so they take its share over at once instead of after it stops
    /// answering. Resolves when every peer was told (or did not answer
    /// within the peer timeout).
    pub fn leave(&self) -> impl std::future::Future<Output = ()> + use<> {
        self.inner.stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        let peers = self.inner.membership.lock().others();
        let cluster = self.clone();
        async move {
            futures_util::future::join_all(peers.into_iter().map(|a| cluster.ask(a))).await;
        }
    }

    /// A peer polled us saying who it is ([`ASKER_HEADER`]): poll now if it
    /// is one we do not count yet; if it is leaving (`authorized`: it
    /// carried the control token, when one is set), stop counting it at once.
    pub fn asked_by(&self, asker: &str, authorized: bool) {
        let (id, stopping) = match asker.split_once(';') {
            Some((id, flag)) => (id.trim(), flag.trim() == MemberInfo::STOPPING),
            None => (asker.trim(), false),
        };
        let Ok(id) = id.parse::<InstanceId>() else { return };
        if id == self.inner.me {
            return;
        }
        let mut membership = self.inner.membership.lock();
        let wake = if stopping && authorized {
            membership.stopping(id);
            true
        } else {
            !membership.members().contains(&id)
        };
        drop(membership);
        if wake {
            self.inner.wake.notify_one();
        }
    }

    fn asker(&self) -> String {
        if self.inner.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            format!("{}; {}", self.inner.me, MemberInfo::STOPPING)
        } else {
            self.inner.me.to_string()
        }
    }

    /// A plan asked of this replica (`POST /mode/…`): a new version of the
    /// plan, starting now, applied here and sent to every peer. Asking for
    /// the plan in force changes nothing, except during the warm-up, which
    /// it ends on every replica. Returns whether anything changed.
    pub fn propose_plan(&self, plan: Plan) -> bool {
        let now = now_ms();
        let changed = {
            let mut replicated = self.inner.replicated.lock();
            let current = replicated.document.plan.value;
            let warming_up = self.inner.engine.plan().warming_up;
            if current.mode == plan.mode && current.rps == plan.rps && !warming_up {
                return false;
            }
            let version = replicated.clock.next(now, self.inner.me);
            let section = Section { version, value: PlanSpec { mode: plan.mode, rps: plan.rps, start_ms: now } };
            let mut change = replicated.document.clone();
            change.plan = section;
            self.merge_locked(&mut replicated, change, Source::Local)
        };
        if changed.any() {
            self.fan_out();
        }
        changed.any()
    }

    /// Merges a document from a peer (its fan-out, or fetched to catch up):
    /// each section newer than ours replaces ours and is applied. Never
    /// sent on. A document that fails the checks changes nothing.
    pub fn merge(&self, incoming: Document, source: Source) -> Result<Changed, DocumentError> {
        incoming.check(now_ms())?;
        let mut replicated = self.inner.replicated.lock();
        Ok(self.merge_locked(&mut replicated, incoming, source))
    }

    /// The one apply path. The lock is held while the engine takes the
    /// change, so the engine sees versions in order.
    fn merge_locked(&self, replicated: &mut Replicated, incoming: Document, source: Source) -> Changed {
        for version in incoming.versions().each() {
            replicated.clock.observe(version);
        }
        let changed = replicated.document.merge(incoming);
        if changed.plan {
            self.apply_plan(&replicated.document.plan, source);
        }
        // Extension point: each further section is applied here the same
        // way (`if changed.job { start or stop it }`, a workload swap, a
        // config change), with `source` deciding as for the plan.
        changed
    }

    fn apply_plan(&self, section: &Section<PlanSpec>, source: Source) {
        let spec = section.value;
        let engine = &self.inner.engine;
        let max_rps = engine.modes().max_rps;
        let rps = if spec.rps > max_rps {
            log::warn!(rps = spec.rps, max_rps = max_rps, version:% = section.version;
                "cluster: the plan's rate is above this replica's MAX_RPS; sending at MAX_RPS (give every replica the same settings)");
            max_rps
        } else {
            spec.rps
        };
        let mut plan = Plan::new(spec.mode, rps);
        plan.anchor = UNIX_EPOCH.checked_add(Duration::from_millis(spec.start_ms));
        let changed = match source {
            Source::Local | Source::Peer => engine.switch_to(plan),
            Source::CatchUp => engine.adopt(plan),
        };
        if section.version != Version::INITIAL {
            log::info!(version:% = section.version, by:% = section.version.replica, source = source.as_str(),
                mode = spec.mode.as_str(), rps = spec.rps, start_ms = spec.start_ms, changed = changed;
                "cluster: plan version {} in force", section.version);
        }
    }

    /// This replica's document.
    pub fn document(&self) -> Document {
        self.inner.replicated.lock().document.clone()
    }

    pub fn versions(&self) -> Versions {
        self.inner.replicated.lock().document.versions()
    }

    /// What this replica says about itself to its peers.
    pub fn member(&self) -> MemberInfo {
        let plan = self.inner.engine.plan();
        let stopping = self.inner.stopping.load(std::sync::atomic::Ordering::Relaxed);
        MemberInfo {
            instance: self.inner.me,
            state: if stopping { MemberInfo::STOPPING.into() } else { plan.state().as_str().into() },
            mode: plan.mode.as_str().into(),
            rps: plan.rps,
            share: plan.share.into(),
            versions: self.versions(),
        }
    }

    /// Sends the document to every peer, without waiting for any. A peer
    /// still busy with the previous one gets the newest once it is done.
    fn fan_out(&self) {
        let peers = self.inner.membership.lock().others();
        for address in peers {
            self.send_to(address);
        }
    }

    fn send_to(&self, address: SocketAddr) {
        {
            let mut links = self.inner.links.lock();
            let link = links.entry(address).or_default();
            if link.sending {
                link.again = true;
                return;
            }
            link.sending = true;
        }
        let cluster = self.clone();
        actix_rt::spawn(async move {
            loop {
                let body = serde_json::to_vec(&cluster.document()).unwrap_or_default();
                let result = cluster.inner.client.put(address, "/cluster/state", &body, MAX_MEMBER_BYTES).await;
                let result = result.map(|_| ()).map_err(|e| e.to_string());
                if let Err(error) = &result {
                    log::warn!(peer:% = address, error = error.as_str(); "cluster: could not send the change to {address}");
                }
                cluster.inner.membership.lock().fanned_out(address, result);
                let mut links = cluster.inner.links.lock();
                let link = links.entry(address).or_default();
                if std::mem::take(&mut link.again) {
                    continue;
                }
                link.sending = false;
                break;
            }
        });
    }

    async fn poll_loop(self) {
        let mut lookup = None;
        let mut polls_without_self = 0u32;
        let mut catch_up_error: Option<String> = None;
        loop {
            let soon = self.poll(&mut lookup, &mut catch_up_error).await;
            if self.inner.membership.lock().own_address().is_none() {
                polls_without_self = polls_without_self.saturating_add(1);
                if polls_without_self == SELF_SEARCH_POLLS {
                    log::warn!(peers:% = self.inner.setting, instance:% = self.inner.me;
                        "cluster: none of the addresses of PEERS answers as this replica; \
                         its share overlaps the others' unless PEERS lists it (check the name and port)");
                }
            } else {
                polls_without_self = 0;
            }
            actix_rt::time::sleep(MIN_POLL_GAP).await;
            let rest = if soon { POLL_SOON } else { POLL_EVERY }.saturating_sub(MIN_POLL_GAP);
            tokio::select! {
                _ = actix_rt::time::sleep(rest) => {}
                _ = self.inner.wake.notified() => {}
            }
        }
    }

    /// One poll: resolve, ask every address, re-split, catch up. Returns
    /// true when the next poll should come soon.
    async fn poll(
        &self,
        lookup: &mut Option<actix_rt::task::JoinHandle<Result<Vec<SocketAddr>, String>>>,
        catch_up_error: &mut Option<String>,
    ) -> bool {
        if let Some(result) = self.look_up(lookup).await {
            let addresses = match &result {
                Ok(addresses) => addresses.len(),
                Err(_) => self.inner.lookup.lock().addresses,
            };
            let error = result.as_ref().err().cloned();
            let previous = {
                let mut status = self.inner.lookup.lock();
                status.at = Some(Instant::now());
                status.addresses = addresses;
                std::mem::replace(&mut status.error, error.clone())
            };
            match (result, previous) {
                (Ok(addresses), previous) => {
                    if previous.is_some() {
                        log::info!(peers:% = self.inner.setting; "cluster: PEERS resolves again");
                    }
                    self.inner.membership.lock().set_addresses(&addresses);
                    self.inner.links.lock().retain(|a, link| link.sending || addresses.contains(a));
                }
                (Err(error), None) => {
                    log::warn!(peers:% = self.inner.setting, error = error.as_str();
                        "cluster: cannot resolve PEERS; keeping the addresses known so far");
                }
                (Err(_), Some(_)) => {}
            }
        }

        let addresses: Vec<SocketAddr> = self.inner.membership.lock().addresses().collect();
        let answers = futures_util::future::join_all(addresses.iter().map(|a| self.ask(*a))).await;
        let now = Instant::now();
        {
            let mut membership = self.inner.membership.lock();
            let mut replicated = self.inner.replicated.lock();
            for (address, answer) in addresses.into_iter().zip(answers) {
                match answer.and_then(|info| {
                    info.versions.check(now_ms()).map_err(|e| e.to_string())?;
                    Ok(info)
                }) {
                    Ok(info) => {
                        for version in info.versions.each() {
                            replicated.clock.observe(version);
                        }
                        let was_unreachable = membership.peers().any(|(a, p)| *a == address && p.misses > 0);
                        if was_unreachable && info.instance != self.inner.me {
                            log::info!(peer:% = address, instance:% = info.instance; "cluster: {address} answers again");
                        }
                        membership.answered(address, info, now);
                    }
                    Err(error) => {
                        if membership.missed(address, error.clone()) {
                            log::warn!(peer:% = address, error = error.as_str(); "cluster: {address} does not answer");
                        }
                    }
                }
            }
        }

        let ahead = self.inner.membership.lock().ahead_of(&self.versions());
        if let Some(address) = ahead {
            match self.catch_up(address).await {
                Ok(()) => *catch_up_error = None,
                Err(error) => {
                    if catch_up_error.as_deref() != Some(error.as_str()) {
                        log::warn!(peer:% = address, error = error.as_str(); "cluster: cannot catch up from {address}");
                    }
                    *catch_up_error = Some(error);
                }
            }
        }

        let (share, members, sending_peer, missing) = {
            let membership = self.inner.membership.lock();
            let missing = membership.peers().any(|(_, p)| p.is_member() && p.misses > 0);
            (membership.share(), membership.members().len(), membership.a_peer_is_sending(), missing)
        };
        let engine = &self.inner.engine;
        let resplit = engine.set_share(share);
        if resplit {
            let plan = engine.plan();
            log::info!(index = share.index, count = share.count, members = members, rps = plan.rps,
                share_rps = share.of(plan.rps);
                "cluster: {} replicas; this one sends share {} of {}", share.count, share.index + 1, share.count);
        }
        // Joining replicas that already send: the target is up and this
        // replica's share is missing, so its warm-up has no reason left.
        if sending_peer && engine.end_warmup().is_some() {
            log::info!("cluster: warm-up ended early: the other replicas are already sending");
        }
        resplit || missing || engine.plan().warming_up
    }

    /// The addresses of `PEERS`, if a lookup has finished; a lookup still
    /// running is kept for the next poll rather than started again.
    async fn look_up(
        &self,
        pending: &mut Option<actix_rt::task::JoinHandle<Result<Vec<SocketAddr>, String>>>,
    ) -> Option<Result<Vec<SocketAddr>, String>> {
        if let PeersSetting::Static(list) = &self.inner.setting {
            return Some(Ok(list.clone()));
        }
        let mut handle = pending.take().unwrap_or_else(|| {
            let setting = self.inner.setting.clone();
            actix_rt::task::spawn_blocking(move || setting.resolve())
        });
        match actix_rt::time::timeout(LOOKUP_WAIT, &mut handle).await {
            Ok(Ok(result)) => Some(result),
            Ok(Err(e)) => Some(Err(format!("lookup failed: {e}"))),
            Err(_) => {
                *pending = Some(handle);
                None
            }
        }
    }

    async fn ask(&self, address: SocketAddr) -> Result<MemberInfo, String> {
        let asker = [(ASKER_HEADER, self.asker())];
        let body = self
            .inner
            .client
            .get_with(address, "/cluster/member", &asker, MAX_MEMBER_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("not an answer of a trafficgen replica: {e}"))
    }

    async fn catch_up(&self, address: SocketAddr) -> Result<(), String> {
        let body =
            self.inner.client.get(address, "/cluster/state", MAX_DOCUMENT_BYTES).await.map_err(|e| e.to_string())?;
        let document: Document =
            serde_json::from_slice(&body).map_err(|e| format!("not a replicated document: {e}"))?;
        let changed = self.merge(document, Source::CatchUp).map_err(|e| e.to_string())?;
        if changed.any() {
            log::info!(peer:% = address, sections:? = changed.names(); "cluster: caught up from {address}");
        }
        Ok(())
    }

    /// The cluster as this replica sees it, for `/status` and `GET /cluster`.
    pub fn view(&self) -> ClusterView {
        let plan = self.inner.engine.plan();
        let now = Instant::now();
        let membership = self.inner.membership.lock();
        let lookup = self.inner.lookup.lock();
        let replicas: Vec<ReplicaView> = membership
            .peers()
            .map(|(address, peer)| ReplicaView {
                address: address.to_string(),
                instance: peer.last.as_ref().map(|i| i.instance),
                is_self: peer.is_self,
                member: peer.is_member() || peer.is_self,
                reachable: peer.reachable(),
                state: peer.last.as_ref().map(|i| i.state.clone()),
                mode: peer.last.as_ref().map(|i| i.mode.clone()),
                rps: peer.last.as_ref().map(|i| i.rps),
                share: peer.last.as_ref().map(|i| i.share),
                versions: peer.last.as_ref().map(|i| i.versions),
                last_seen_secs_ago: peer.last_seen.map(|t| round_tenth(now.duration_since(t).as_secs_f64())),
                error: peer.error.clone(),
                fanout_error: peer.fanout_error.clone(),
            })
            .collect();
        ClusterView {
            peers: self.inner.setting.to_string(),
            instance: self.inner.me,
            address: membership.own_address().map(|a| a.to_string()),
            share: ShareView { index: plan.share.index, count: plan.share.count, rps: plan.sending_rps() },
            members: membership.members().len(),
            versions: self.versions(),
            lookup: LookupView {
                addresses: lookup.addresses,
                error: lookup.error.clone(),
                secs_ago: lookup.at.map(|t| round_tenth(now.duration_since(t).as_secs_f64())),
            },
            unreachable: replicas.iter().filter(|r| !r.reachable).map(|r| r.address.clone()).collect(),
            replicas,
        }
    }
}

fn round_tenth(secs: f64) -> f64 {
    (secs * 10.0).round() / 10.0
}

/// The cluster in `/status` and `GET /cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// The `PEERS` setting.
    pub peers: String,
    pub instance: InstanceId,
    /// This replica's address among the resolved ones, once found.
    pub address: Option<String>,
    /// This replica's share, and the rate it sends.
    pub share: ShareView,
    /// Replicas the rate is split between, this one included.
    pub members: usize,
    pub versions: Versions,
    pub lookup: LookupView,
    /// Every resolved address, this replica's own included.
    pub replicas: Vec<ReplicaView>,
    /// Addresses that did not answer the last poll (or never did).
    pub unreachable: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ShareView {
    pub index: u64,
    pub count: u64,
    #[serde(serialize_with = "crate::json::serialize_rate")]
    pub rps: f64,
}

#[derive(Debug, Serialize)]
pub struct LookupView {
    pub addresses: usize,
    pub error: Option<String>,
    pub secs_ago: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ReplicaView {
    pub address: String,
    pub instance: Option<InstanceId>,
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Counted in the split.
    pub member: bool,
    pub reachable: bool,
    pub state: Option<String>,
    pub mode: Option<String>,
    pub rps: Option<f64>,
    /// The share it reported.
    pub share: Option<ShareJson>,
    pub versions: Option<Versions>,
    pub last_seen_secs_ago: Option<f64>,
    pub error: Option<String>,
    /// Why the last change sent to it did not arrive.
    pub fanout_error: Option<String>,
}
