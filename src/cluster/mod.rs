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
//! Replicas prove to each other that they share the cluster secret before
//! anything they say counts: every request and answer between them is
//! signed (see [`auth`]). An address of `PEERS` that cannot sign is never
//! counted, never sent a document, and nothing it sends is merged.
//!
//! Layout: [`version`] (versions and the clock), [`document`] (the
//! replicated state and its merge rule), [`split`] (membership and shares),
//! [`peers`] (the `PEERS` setting), [`auth`] (signatures), [`client`] (HTTP
//! to peers); this file ties them to the engine and runs the poll loop and
//! the fan-out.

pub mod auth;
pub mod client;
pub mod document;
pub mod peers;
pub mod split;
pub mod version;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::stream::{FuturesUnordered, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;

use crate::engine::Engine;
use crate::engine::mode::{Mode, Plan, Shape};
use crate::engine::users::UserPause;
use crate::workload::Workload;
use auth::{AuthError, ClusterKey, Nonces, RequestParts, Stamp};
use client::PeerClient;
use document::{
    Changed, ConfigSection, Document, DocumentError, JobSection, PauseSpec, PlanSpec, RampSpec, Section, Versions,
    WorkloadSection,
};
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
/// Requests to peers at once (polls, fan-out, catch-up together): their
/// sockets come out of the process's small share of descriptors.
const MAX_PEER_REQUESTS: usize = 16;
/// Largest `GET /cluster/member` answer read.
const MAX_MEMBER_BYTES: usize = 16 * 1024;
/// Largest document read or accepted: a workload text at its bound, and
/// room for the other sections.
pub const MAX_DOCUMENT_BYTES: usize = document::MAX_WORKLOAD_JSON_BYTES + 64 * 1024;
/// Polls without finding our own address before saying so.
const SELF_SEARCH_POLLS: u32 = 10;
/// Least time between polls, however often peers ask for one.
const MIN_POLL_GAP: Duration = Duration::from_millis(100);
/// The header a replica's poll carries: its instance id, and `; stopping`
/// when it is leaving. A replica polled by one it does not count yet (or by
/// one that is leaving) polls at once, so a join or a leave is seen by all
/// within moments, not at their next poll.
pub const ASKER_HEADER: &str = "trafficgen-replica";

/// Most characters of a peer's error message kept (in logs and answers):
/// a peer's document can be 2 MiB, and a parse error may quote it.
const MAX_ERROR_CHARS: usize = 300;

/// The replicas (`PEERS`) and the key they prove themselves with.
#[derive(Debug, Clone)]
pub struct Peers {
    pub setting: PeersSetting,
    pub key: ClusterKey,
}

/// `text` cut to [`MAX_ERROR_CHARS`] characters, on one line.
pub fn clip(text: &str) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).take(MAX_ERROR_CHARS).collect();
    if text.chars().filter(|c| !c.is_control()).nth(MAX_ERROR_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Asks in flight, each with its number: an answer to an ask that a newer
/// one to the same address has replaced is dropped.
type Asking = FuturesUnordered<Pin<Box<dyn Future<Output = (SocketAddr, u64, Result<MemberInfo, String>)>>>>;
type CatchUp = Pin<Box<dyn Future<Output = (SocketAddr, Result<(), String>)>>>;

/// What the poll loop acts on.
enum PollEvent {
    Round,
    Wake,
    Resolved(Result<Vec<SocketAddr>, String>),
    Answer(SocketAddr, u64, Result<MemberInfo, String>),
    CaughtUp(SocketAddr, Result<(), String>),
}

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
    pub fn as_str(self) -> &'static str {
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
    key: ClusterKey,
    /// Signed requests seen lately: a second one with the same stamp is a replay.
    nonces: Mutex<Nonces>,
    replicated: Mutex<Replicated>,
    membership: Mutex<Membership>,
    lookup: Mutex<LookupStatus>,
    /// Fan-out to each peer: at most one request in flight per peer.
    links: Mutex<HashMap<SocketAddr, Link>>,
    /// Set at shutdown: peers stop counting this replica at their next poll.
    stopping: std::sync::atomic::AtomicBool,
    /// Wakes the poll loop early (see [`ASKER_HEADER`]).
    wake: tokio::sync::Notify,
    /// Bounds the requests to peers in flight.
    requests: tokio::sync::Semaphore,
    /// Addresses of replicas that asked us and that we do not count yet:
    /// asked at once, even if an older ask to them still waits.
    probes: Mutex<Vec<std::net::IpAddr>>,
    /// The job section as peers changed it, for the jobs layer to play
    /// (it sits above the cluster: it watches, the cluster never calls it).
    jobs: tokio::sync::watch::Sender<Option<(JobSection, Source)>>,
    /// Where the last change of the config section a peer made came from,
    /// for the control side (which holds the settings) to apply the
    /// document's config section.
    config: tokio::sync::watch::Sender<Option<Source>>,
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
    pub fn new(peers: Peers, engine: Engine) -> Cluster {
        let me = InstanceId::random();
        let plan = engine.plan();
        let document = Document::initial(plan.mode, plan.rps);
        let Peers { setting, key } = peers;
        let inner = Inner {
            me,
            setting,
            client: PeerClient::new(key.clone(), PEER_TIMEOUT),
            key,
            nonces: Mutex::new(Nonces::default()),
            replicated: Mutex::new(Replicated { document: document.clone(), clock: Clock::default() }),
            membership: Mutex::new(Membership::new(me)),
            lookup: Mutex::new(LookupStatus::default()),
            links: Mutex::new(HashMap::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            requests: tokio::sync::Semaphore::new(MAX_PEER_REQUESTS),
            probes: Mutex::new(Vec::new()),
            jobs: tokio::sync::watch::channel(None).0,
            config: tokio::sync::watch::channel(None).0,
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

    /// A peer polled us saying who it is ([`ASKER_HEADER`], in a signed
    /// request), from `from`: if it is one we do not count yet, ask it (at
    /// the addresses of `PEERS` with its IP, as replicas reach each other
    /// without NAT) and poll the rest now; if it is leaving, stop counting
    /// it at once.
    pub fn asked_by(&self, asker: &str, from: Option<std::net::IpAddr>) {
        let (id, stopping) = match asker.split_once(';') {
            Some((id, flag)) => (id.trim(), flag.trim() == MemberInfo::STOPPING),
            None => (asker.trim(), false),
        };
        let Ok(id) = id.parse::<InstanceId>() else { return };
        if id == self.inner.me {
            return;
        }
        let mut membership = self.inner.membership.lock();
        let wake = if stopping {
            membership.stopping(id);
            true
        } else {
            !membership.members().contains(&id)
        };
        drop(membership);
        if let Some(ip) = from.filter(|_| wake) {
            let mut probes = self.inner.probes.lock();
            // Bounded: a flood of strangers costs one poll, not a queue.
            if probes.len() < peers::MAX_PEERS && !probes.contains(&ip) {
                probes.push(ip);
            }
        }
        if wake {
            self.inner.wake.notify_one();
        }
    }

    /// Checks a peer's signed request (see [`auth`]): its signature, its
    /// time, and that it was not seen before.
    pub fn check_peer_request(&self, header: &[u8], parts: &RequestParts) -> Result<Stamp, AuthError> {
        let now = now_ms();
        let stamp = self.inner.key.check_request(header, parts, now)?;
        self.inner.nonces.lock().admit(stamp, now)?;
        Ok(stamp)
    }

    /// The cheap checks of a peer's request, before its body is read.
    pub fn precheck_peer_request(&self, header: &[u8]) -> Result<(), AuthError> {
        auth::precheck(header, now_ms()).map(|_| ())
    }

    /// The signature of the answer to a peer's signed request.
    pub fn sign_answer(&self, stamp: Stamp, status: u16, body: &[u8]) -> String {
        self.inner.key.sign_answer(stamp, status, body)
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
    /// A ramp goes with it (every replica ramps its share along the same
    /// line, from the same start), and so does users mode's pause; a job's
    /// story does not come here (the job section carries it).
    pub fn propose_plan(&self, plan: Plan) -> bool {
        let warming_up = self.inner.engine.plan().warming_up;
        let ramp = match plan.shape {
            Shape::Ramp { from_rps, secs } => Some(RampSpec { from: from_rps, secs }),
            Shape::Constant | Shape::Story { .. } => None,
        };
        let pause = plan.user_pause.filter(|_| plan.is_users()).map(PauseSpec::from);
        self.propose(|document, version, now_ms| {
            if document.plan.value.is_same_plan(plan.mode, plan.rps, ramp, pause) && !warming_up {
                return None;
            }
            let mut change = document.clone();
            change.plan =
                Section { version, value: PlanSpec { ramp, pause, ..PlanSpec::constant(plan.mode, plan.rps, now_ms) } };
            Some(change)
        })
    }

    /// A job started, stopped or switched away from on this replica: a new
    /// version of the job section, sent to every peer, which play it too.
    pub fn propose_job(&self, section: JobSection) -> bool {
        self.propose(|document, version, _| {
            let mut change = document.clone();
            change.job = Some(Section { version, value: section });
            Some(change)
        })
    }

    /// A workload put on this replica (`PUT /workload`, SIGHUP), loaded and
    /// checked already: a new version of the workload section, put in force
    /// here (`loaded`, not loaded again) and sent to every peer, which load
    /// the text against their own target.
    pub fn propose_workload(&self, section: WorkloadSection, loaded: Workload) -> bool {
        let edit = |document: &Document, version, _| {
            let mut change = document.clone();
            change.workload = Some(Section { version, value: section });
            Some(change)
        };
        self.propose_loaded(edit, Some(loaded))
    }

    /// The runtime settings changed on this replica (applied here
    /// already): what now differs from start-up, sent to every peer.
    pub fn propose_config(&self, overrides: serde_json::Map<String, serde_json::Value>) -> bool {
        self.propose(|document, version, _| {
            let mut change = document.clone();
            change.config = Some(Section { version, value: ConfigSection { overrides } });
            Some(change)
        })
    }

    /// Changes each time a peer changes the config section (the section
    /// itself is read from [`Cluster::document`], so a change made here
    /// meanwhile is never undone by an older one).
    pub fn watch_config(&self) -> tokio::sync::watch::Receiver<Option<Source>> {
        self.inner.config.subscribe()
    }

    /// The job section each time a peer changes it (not when this replica
    /// does: it has played its own change already), with where it came from.
    pub fn watch_jobs(&self) -> tokio::sync::watch::Receiver<Option<(JobSection, Source)>> {
        self.inner.jobs.subscribe()
    }

    /// Puts the document's plan back in force on this replica alone: a
    /// job's plan, which the document does not carry, has ended here.
    pub fn reapply_plan(&self) {
        let replicated = self.inner.replicated.lock();
        self.apply_plan(&replicated.document.plan, Source::Local);
    }

    /// A change asked of this replica: `edit` gets the document, the
    /// version a change made now has and the time (its start, for anything
    /// scheduled), and returns the document with the changed section set to
    /// that version, or `None` when nothing is to change. The change is
    /// merged (and so applied) here, then sent to every peer. Every
    /// replicated feature goes through here: a job started or stopped, a
    /// workload or a runtime setting changed is one more `propose_…` like
    /// [`Cluster::propose_plan`] (see [`document`] for the section it sets).
    pub fn propose(&self, edit: impl FnOnce(&Document, Version, u64) -> Option<Document>) -> bool {
        self.propose_loaded(edit, None)
    }

    /// [`Cluster::propose`], with the workload a change of the workload
    /// section puts in force here.
    fn propose_loaded(
        &self,
        edit: impl FnOnce(&Document, Version, u64) -> Option<Document>,
        loaded: Option<Workload>,
    ) -> bool {
        let now = now_ms();
        let changed = {
            let mut replicated = self.inner.replicated.lock();
            let mut clock = replicated.clock;
            let version = clock.next(now, self.inner.me);
            let Some(change) = edit(&replicated.document, version, now) else { return false };
            replicated.clock = clock;
            self.merge_locked(&mut replicated, change, Source::Local, loaded)
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
        Ok(self.merge_locked(&mut replicated, incoming, source, None))
    }

    /// The one apply path. The lock is held while the engine takes the
    /// change, so the engine sees versions in order. `loaded`: the
    /// workload of a local change of the workload section.
    fn merge_locked(
        &self,
        replicated: &mut Replicated,
        incoming: Document,
        source: Source,
        loaded: Option<Workload>,
    ) -> Changed {
        for version in incoming.versions().each() {
            replicated.clock.observe(version);
        }
        let changed = replicated.document.merge(incoming);
        if changed.plan {
            self.apply_plan(&replicated.document.plan, source);
        }
        if changed.job
            && source != Source::Local
            && let Some(job) = &replicated.document.job
        {
            self.inner.jobs.send_replace(Some((job.value.clone(), source)));
        }
        if changed.workload
            && let Some(workload) = &replicated.document.workload
        {
            self.apply_workload(workload, source, loaded);
        }
        if changed.config && source != Source::Local {
            self.inner.config.send_replace(Some(source));
        }
        // Extension point: each further section is applied here the same
        // way, with `source` deciding as for the plan.
        changed
    }

    /// Swaps the workload in (pools carried over, as for `PUT /workload`).
    /// A text this replica cannot load (it was checked where it was put:
    /// another release, or a setting that differs here) is logged; the
    /// running workload goes on.
    fn apply_workload(&self, section: &Section<WorkloadSection>, source: Source, loaded: Option<Workload>) {
        let engine = &self.inner.engine;
        let value = &section.value;
        let workload = match loaded {
            Some(workload) => workload,
            None => {
                match crate::workload::load_bytes(&value.source, value.text.as_bytes(), &engine.workload_options()) {
                    Ok(workload) => workload,
                    Err(e) => {
                        log::error!(version:% = section.version, by:% = section.version.replica,
                            source = source.as_str(), problems = e.count(), error:% = e;
                            "cluster: workload version {} cannot be used on this replica; the running workload goes on",
                            section.version);
                        return;
                    }
                }
            }
        };
        // Checked where it was put, against that replica's budget: this
        // one's may be smaller.
        if let Err(e) = engine.memory_fits(&workload, engine.max_in_flight()) {
            log::error!(version:% = section.version, by:% = section.version.replica, source = source.as_str();
                "cluster: workload version {} does not fit this replica's MEMORY_BUDGET_MB ({e}); the running workload goes on",
                section.version);
            return;
        }
        engine.replace_workload(workload);
        log::info!(version:% = section.version, by:% = section.version.replica, source = source.as_str(),
            workload = value.source.as_str(), bytes = value.text.len();
            "cluster: workload version {} in force", section.version);
    }

    fn apply_plan(&self, section: &Section<PlanSpec>, source: Source) {
        let spec = section.value;
        let engine = &self.inner.engine;
        let modes = engine.modes();
        // In users mode the plan's number is of users, bounded by MAX_USERS.
        let (max_rps, what) =
            if spec.mode == Mode::Users { (modes.max_users as f64, "users") } else { (modes.max_rps, "rate") };
        let rps = if spec.mode == Mode::Users && spec.rps.fract() != 0.0 {
            spec.rps.floor().min(max_rps)
        } else if spec.rps > max_rps {
            log::warn!(rps = spec.rps, max = max_rps, what = what, version:% = section.version;
                "cluster: the plan's {what} is above this replica's bound (MAX_RPS or MAX_USERS); keeping to it (give every replica the same settings)");
            max_rps
        } else {
            spec.rps
        };
        let mut plan = Plan::new(spec.mode, rps);
        plan.anchor = UNIX_EPOCH.checked_add(Duration::from_millis(spec.start_ms));
        if let Some(ramp) = spec.ramp {
            // From where the asking replica was, held to this one's bound.
            let from = if spec.mode == Mode::Users { ramp.from.floor() } else { ramp.from };
            plan.shape = Shape::Ramp { from_rps: from.min(max_rps), secs: ramp.secs };
        }
        if spec.mode == Mode::Users {
            // Checked when merged: never an error here.
            plan.user_pause = spec.pause.and_then(|p| UserPause::new(p.min_secs, p.max_secs).ok());
        }
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
            target_rps: Some(round_hundredth(plan.share.of(plan.rate_at(SystemTime::now())))),
            achieved_rps: Some(self.inner.engine.sent_rate().rate()),
        }
    }

    /// Sends the document to every peer that proved itself at its last poll
    /// (never to an address that did not: the document may hold a
    /// workload's credentials), without waiting for any. A peer still busy
    /// with the previous one gets the newest once it is done; one not yet
    /// proven catches up at its next poll.
    fn fan_out(&self) {
        let peers = self.inner.membership.lock().proven_others();
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
                let result = match cluster.inner.requests.acquire().await {
                    Ok(_permit) => cluster.inner.client.put(address, "/cluster/state", &body, MAX_MEMBER_BYTES).await,
                    Err(_) => break,
                };
                let result = result.map(|_| ()).map_err(|e| clip(&e.to_string()));
                let failing = result.as_ref().err().cloned();
                let was_failing = cluster.inner.membership.lock().fanned_out(address, result);
                match (failing, was_failing) {
                    (Some(error), false) => {
                        log::warn!(peer:% = address, error = error.as_str(); "cluster: could not send the change to {address}");
                    }
                    (None, true) => log::info!(peer:% = address; "cluster: changes reach {address} again"),
                    _ => {}
                }
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

    /// Polls the peers for ever. Every answer is taken in as it comes (a
    /// peer that does not answer delays nobody else's), a round starts
    /// every few seconds or when a peer asks for one, and an address still
    /// being asked is not asked again.
    async fn poll_loop(self) {
        let mut lookup: Option<actix_rt::task::JoinHandle<Result<Vec<SocketAddr>, String>>> = None;
        let mut asking: Asking = FuturesUnordered::new();
        let mut in_flight: HashMap<SocketAddr, (u64, Instant)> = HashMap::new();
        let mut asks = 0u64;
        let mut catching_up: Option<CatchUp> = None;
        let mut catch_up_error: Option<String> = None;
        let mut rounds_without_self = 0u32;
        let mut last_round: Option<actix_rt::time::Instant> = None;
        let mut next_round = actix_rt::time::Instant::now();
        loop {
            let event = tokio::select! {
                biased;
                Some((address, number, answer)) = asking.next(), if !asking.is_empty() => {
                    PollEvent::Answer(address, number, answer)
                }
                (address, result) = async {
                    match catching_up.as_mut() {
                        Some(catch_up) => catch_up.await,
                        None => std::future::pending().await,
                    }
                } => PollEvent::CaughtUp(address, result),
                resolved = async {
                    match lookup.as_mut() {
                        Some(handle) => handle.await.unwrap_or_else(|e| Err(format!("lookup failed: {e}"))),
                        None => std::future::pending().await,
                    }
                } => PollEvent::Resolved(resolved),
                _ = actix_rt::time::sleep_until(next_round) => PollEvent::Round,
                _ = self.inner.wake.notified() => PollEvent::Wake,
            };
            let now = actix_rt::time::Instant::now();
            let mut resplit = false;
            match event {
                PollEvent::Round => {
                    last_round = Some(now);
                    match &self.inner.setting {
                        PeersSetting::Static(list) => {
                            self.note_lookup(Ok(list.clone()));
                        }
                        PeersSetting::Dns { .. } if lookup.is_none() => {
                            let setting = self.inner.setting.clone();
                            lookup = Some(actix_rt::task::spawn_blocking(move || setting.resolve()));
                        }
                        // One lookup at a time: a slow resolver is not asked twice.
                        PeersSetting::Dns { .. } => {}
                    }
                    let addresses: Vec<SocketAddr> = self.inner.membership.lock().addresses().collect();
                    self.ask_each(addresses, false, &mut asking, &mut in_flight, &mut asks);
                    if self.inner.membership.lock().own_address().is_none() {
                        rounds_without_self = rounds_without_self.saturating_add(1);
                        if rounds_without_self == SELF_SEARCH_POLLS {
                            log::warn!(peers:% = self.inner.setting, instance:% = self.inner.me;
                                "cluster: none of the addresses of PEERS answers as this replica; \
                                 its share overlaps the others' unless PEERS lists it (check the name and port)");
                        }
                    } else {
                        rounds_without_self = 0;
                    }
                    next_round = now + POLL_EVERY;
                }
                PollEvent::Wake => {
                    let earliest = last_round.map_or(now, |t| (t + MIN_POLL_GAP).max(now));
                    next_round = next_round.min(earliest);
                    let probes = std::mem::take(&mut *self.inner.probes.lock());
                    let addresses: Vec<SocketAddr> =
                        self.inner.membership.lock().addresses().filter(|a| probes.contains(&a.ip())).collect();
                    self.ask_each(addresses, true, &mut asking, &mut in_flight, &mut asks);
                }
                PollEvent::Resolved(result) => {
                    lookup = None;
                    let known: HashSet<SocketAddr> = self.inner.membership.lock().addresses().collect();
                    if let Some(addresses) = self.note_lookup(result) {
                        let new: Vec<SocketAddr> = addresses.into_iter().filter(|a| !known.contains(a)).collect();
                        self.ask_each(new, false, &mut asking, &mut in_flight, &mut asks);
                    }
                    resplit = self.resplit();
                }
                PollEvent::Answer(address, number, answer) => {
                    if in_flight.get(&address).is_some_and(|(n, _)| *n == number) {
                        in_flight.remove(&address);
                        self.take_answer(address, answer);
                        resplit = self.resplit();
                    }
                }
                PollEvent::CaughtUp(address, result) => {
                    catching_up = None;
                    match result {
                        Ok(()) => catch_up_error = None,
                        Err(error) => {
                            if catch_up_error.as_deref() != Some(error.as_str()) {
                                log::warn!(peer:% = address, error = error.as_str(); "cluster: cannot catch up from {address}");
                            }
                            catch_up_error = Some(error);
                        }
                    }
                }
            }
            // Behind a peer: fetch its state, one fetch at a time.
            let mine = self.versions();
            if catching_up.is_none()
                && let Some(address) = self.inner.membership.lock().ahead_of(&mine, now_ms())
            {
                let cluster = self.clone();
                catching_up = Some(Box::pin(async move { (address, cluster.catch_up(address).await) }));
            }
            // Joining replicas that already send (and caught up with them):
            // the target is up and this replica's share is missing, so its
            // warm-up has no reason left.
            if catching_up.is_none()
                && self.inner.membership.lock().a_peer_is_sending()
                && self.inner.engine.end_warmup().is_some()
            {
                log::info!("cluster: warm-up ended early: the other replicas are already sending");
            }
            // Unsettled (warming up, a member missed, the split just
            // changed): the next round comes soon after the last one.
            if resplit || self.unsettled() {
                let soon = last_round.map_or(now, |t| t + POLL_SOON).max(now);
                next_round = next_round.min(soon);
            }
        }
    }

    /// Asks each of `addresses` not being asked already, or (`again`) anew
    /// if the ask in flight is older than [`MIN_POLL_GAP`]: the answer to
    /// the older one no longer counts. Asks waiting are bounded, however
    /// often peers poke.
    fn ask_each(
        &self,
        addresses: Vec<SocketAddr>,
        again: bool,
        asking: &mut Asking,
        in_flight: &mut HashMap<SocketAddr, (u64, Instant)>,
        asks: &mut u64,
    ) {
        let now = Instant::now();
        for address in addresses {
            let busy = in_flight.get(&address).map(|(_, since)| now.duration_since(*since));
            if busy.is_some_and(|age| !again || age < MIN_POLL_GAP) || asking.len() >= 2 * peers::MAX_PEERS {
                continue;
            }
            *asks += 1;
            let number = *asks;
            in_flight.insert(address, (number, now));
            let cluster = self.clone();
            asking.push(Box::pin(async move { (address, number, cluster.ask(address).await) }));
        }
    }

    /// Takes a lookup's outcome in; the addresses, if it found some.
    fn note_lookup(&self, result: Result<Vec<SocketAddr>, String>) -> Option<Vec<SocketAddr>> {
        let addresses = match &result {
            Ok(addresses) => addresses.len(),
            Err(_) => self.inner.lookup.lock().addresses,
        };
        let previous = {
            let mut status = self.inner.lookup.lock();
            status.at = Some(Instant::now());
            status.addresses = addresses;
            std::mem::replace(&mut status.error, result.as_ref().err().cloned())
        };
        match (result, previous) {
            (Ok(addresses), previous) => {
                if previous.is_some() {
                    log::info!(peers:% = self.inner.setting; "cluster: PEERS resolves again");
                }
                self.inner.membership.lock().set_addresses(&addresses);
                self.inner.links.lock().retain(|a, link| link.sending || addresses.contains(a));
                Some(addresses)
            }
            (Err(error), None) => {
                log::warn!(peers:% = self.inner.setting, error = error.as_str();
                    "cluster: cannot resolve PEERS; keeping the addresses known so far");
                None
            }
            (Err(_), Some(_)) => None,
        }
    }

    /// Takes an answer (or its absence) from `address` in. A signed answer
    /// counts its replica as a member whatever its versions; versions too
    /// far ahead of this clock are not observed (they would push this
    /// replica's next versions out of its peers' bounds) and not caught up
    /// from (see [`Membership::ahead_of`]).
    fn take_answer(&self, address: SocketAddr, answer: Result<MemberInfo, String>) {
        let mut membership = self.inner.membership.lock();
        match answer {
            Ok(info) => {
                if info.versions.check(now_ms()).is_ok() {
                    let mut replicated = self.inner.replicated.lock();
                    for version in info.versions.each() {
                        replicated.clock.observe(version);
                    }
                }
                let was_unreachable = membership.peers().any(|(a, p)| *a == address && p.misses > 0);
                if was_unreachable && info.instance != self.inner.me {
                    log::info!(peer:% = address, instance:% = info.instance; "cluster: {address} answers again");
                }
                membership.answered(address, info, Instant::now());
            }
            Err(error) => {
                if membership.missed(address, error.clone()) {
                    log::warn!(peer:% = address, error = error.as_str(); "cluster: {address} does not answer");
                }
            }
        }
    }

    /// Gives the engine this replica's share as the membership now says;
    /// true when it changed.
    fn resplit(&self) -> bool {
        let (share, members) = {
            let membership = self.inner.membership.lock();
            (membership.share(), membership.members().len())
        };
        let engine = &self.inner.engine;
        let resplit = engine.set_share(share);
        if resplit {
            let plan = engine.plan();
            log::info!(index = share.index, count = share.count, members = members, rps = plan.rps,
                share_rps = share.of(plan.rps);
                "cluster: {} replicas; this one sends share {} of {}", share.count, share.index + 1, share.count);
        }
        resplit
    }

    /// The next round should come soon: warming up, or a member missed.
    fn unsettled(&self) -> bool {
        self.inner.engine.plan().warming_up
            || self.inner.membership.lock().peers().any(|(_, p)| p.is_member() && p.misses > 0)
    }

    /// Asks `address` who it is: a signed answer, within bounds, or why not.
    async fn ask(&self, address: SocketAddr) -> Result<MemberInfo, String> {
        let _permit = self.inner.requests.acquire().await.map_err(|e| e.to_string())?;
        let asker = self.asker();
        let body = self
            .inner
            .client
            .get(address, "/cluster/member", Some(&asker), MAX_MEMBER_BYTES)
            .await
            .map_err(|e| clip(&e.to_string()))?;
        let info: MemberInfo =
            serde_json::from_slice(&body).map_err(|e| clip(&format!("not an answer of a trafficgen replica: {e}")))?;
        info.check().map_err(|e| format!("not an answer of a trafficgen replica: {e}"))?;
        Ok(info)
    }

    /// Fetches a peer's document and merges it: its answer signed for this
    /// request, the document checked as `PUT /cluster/state` checks one.
    async fn catch_up(&self, address: SocketAddr) -> Result<(), String> {
        let permit = self.inner.requests.acquire().await.map_err(|e| e.to_string())?;
        let body = self.inner.client.get(address, "/cluster/state", None, MAX_DOCUMENT_BYTES).await;
        drop(permit);
        let body = body.map_err(|e| clip(&e.to_string()))?;
        let document: Document =
            serde_json::from_slice(&body).map_err(|e| clip(&format!("not a replicated document: {e}")))?;
        let changed = self.merge(document, Source::CatchUp).map_err(|e| clip(&e.to_string()))?;
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
        let own_target = plan.share.of(plan.rate_at(SystemTime::now()));
        let own_achieved = self.inner.engine.sent_rate().rate();
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
                rps: peer.last.as_ref().map(|i| crate::base::json::rate_value(i.rps)),
                share: peer.last.as_ref().map(|i| i.share),
                versions: peer.last.as_ref().map(|i| i.versions),
                // This replica's own numbers are read now, not from its last poll.
                target_rps: if peer.is_self {
                    Some(round_hundredth(own_target))
                } else {
                    peer.last.as_ref().and_then(|i| i.target_rps)
                },
                achieved_rps: if peer.is_self {
                    Some(own_achieved)
                } else {
                    peer.last.as_ref().and_then(|i| i.achieved_rps)
                },
                last_seen_secs_ago: peer.last_seen.map(|t| round_tenth(now.duration_since(t).as_secs_f64())),
                error: peer.error.clone(),
                fanout_error: peer.fanout_error.clone(),
            })
            .collect();
        // The whole cluster: this replica, and every other member that
        // answered its last poll (one gone quiet no longer sends its share).
        // Counted once per instance, however many addresses it answers on.
        let others: HashMap<InstanceId, f64> = replicas
            .iter()
            .filter(|r| !r.is_self && r.member && r.reachable && r.instance != Some(self.inner.me))
            .filter_map(|r| Some((r.instance?, r.achieved_rps?)))
            .collect();
        let others_achieved: f64 = others.values().sum();
        let members = membership.members().len();
        ClusterView {
            target_rps: round_hundredth(plan.rate_at(SystemTime::now())),
            achieved_rps: round_hundredth(own_achieved + others_achieved),
            peers: self.inner.setting.to_string(),
            instance: self.inner.me,
            address: membership.own_address().map(|a| a.to_string()),
            share: ShareView { index: plan.share.index, count: plan.share.count, rps: plan.sending_rps() },
            members,
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

fn round_hundredth(rps: f64) -> f64 {
    (rps * 100.0).round() / 100.0
}

/// The cluster in `/status` and `GET /cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// The `PEERS` setting.
    pub peers: String,
    pub instance: InstanceId,
    /// This replica's address among the resolved ones, once found.
    pub address: Option<String>,
    /// The rate the schedule asks of every replica together now (a ramp's
    /// or a job's rate at this moment, not its maximum).
    pub target_rps: f64,
    /// What every replica together sent over the last 10 s: this one's
    /// rate and each other member's as it said at its last poll.
    pub achieved_rps: f64,
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
    #[serde(serialize_with = "crate::base::json::serialize_rate")]
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
    pub rps: Option<serde_json::Value>,
    /// The share it reported.
    pub share: Option<ShareJson>,
    pub versions: Option<Versions>,
    /// The rate its schedule asks of it now, and what it sent over the
    /// last 10 s (as it said at its last poll; this replica's, now).
    pub target_rps: Option<f64>,
    pub achieved_rps: Option<f64>,
    pub last_seen_secs_ago: Option<f64>,
    pub error: Option<String>,
    /// Why the last change sent to it did not arrive.
    pub fanout_error: Option<String>,
}
