//! Property test of the replication rule: whatever happens to the messages
//! between replicas (reordered, repeated, lost) and however their clocks
//! disagree, once every replica has caught up from the others they all
//! hold the latest change, and on the way no replica ever goes back to an
//! older version or holds a value with another change's version. Changes
//! go to any of the sections (the plan, the workload, the runtime config),
//! each of which converges on its own latest change.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use trafficgen::cluster::document::{ConfigSection, Document, PlanSpec, Section, WorkloadSection};
use trafficgen::cluster::version::{Clock, InstanceId, Version};
use trafficgen::engine::mode::Mode;

#[derive(Debug, Clone)]
enum Event {
    /// Replica `at` makes a change to `section` (as `POST /mode/…`,
    /// `PUT /workload` or `PUT /config` does) and sends its document to
    /// every other replica.
    Change { at: usize, section: usize, mode: usize, rps: u16 },
    /// The network delivers the message at this index (modulo the queue),
    /// and keeps a copy of it to deliver again when `repeat`.
    Deliver { pick: usize, repeat: bool },
    /// The network loses a message.
    Lose { pick: usize },
    /// Wall time passes.
    Tick { ms: u16 },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (0usize..5, 0usize..SECTIONS.len(), 0usize..5, 0u16..1000)
            .prop_map(|(at, section, mode, rps)| Event::Change { at, section, mode, rps }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, repeat)| Event::Deliver { pick, repeat }),
        1 => any::<usize>().prop_map(|pick| Event::Lose { pick }),
        2 => (0u16..3000).prop_map(|ms| Event::Tick { ms }),
    ]
}

struct Replica {
    id: InstanceId,
    /// How far this replica's clock is off, in ms (positive: ahead).
    skew: i64,
    clock: Clock,
    document: Document,
}

const MODES: [Mode; 5] = [Mode::Steady, Mode::Burst, Mode::Overload, Mode::Pause, Mode::Custom];
const SECTIONS: [&str; 3] = ["plan", "workload", "config"];

/// Each section a document holds: its name, version and value.
fn sections(document: &Document) -> Vec<(&'static str, Version, Value)> {
    let value = |v| serde_json::to_value(v).unwrap();
    let mut held = vec![("plan", document.plan.version, value(&document.plan.value))];
    if let Some(w) = &document.workload {
        held.push(("workload", w.version, serde_json::to_value(&w.value).unwrap()));
    }
    if let Some(c) = &document.config {
        held.push(("config", c.version, serde_json::to_value(&c.value).unwrap()));
    }
    held
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_converges_to_the_latest_change(
        count in 2usize..=5,
        skews in proptest::collection::vec(-30_000i64..30_000, 5),
        ids in proptest::collection::vec(any::<u64>(), 5),
        order in Just((1u64..=5).collect::<Vec<_>>()).prop_shuffle(),
        events in proptest::collection::vec(event(), 0..80),
    ) {
        let mut replicas: Vec<Replica> = (0..count)
            .map(|i| Replica {
                // Distinct, as random 64-bit ids are: the top byte is a
                // shuffled index, the rest random.
                id: InstanceId((order[i] << 56) | (ids[i] >> 8)),
                skew: skews[i],
                clock: Clock::default(),
                document: Document::initial(Mode::Steady, 2.0),
            })
            .collect();
        // Every change ever made, by section and version: what it must carry.
        let mut made: HashMap<(&str, Version), Value> = HashMap::new();
        made.insert(("plan", Version::INITIAL), serde_json::to_value(replicas[0].document.plan.value).unwrap());
        // In flight: (to, document).
        let mut network: Vec<(usize, Document)> = Vec::new();
        let mut wall: i64 = 1_800_000_000_000;

        for event in events {
            match event {
                Event::Change { at, section, mode, rps } => {
                    let at = at % count;
                    let r = &mut replicas[at];
                    let now = (wall + r.skew) as u64;
                    let seen = r.document.versions().latest();
                    let version = r.clock.next(now, r.id);
                    // A change made after hearing of another one is newer than it.
                    prop_assert!(version > seen, "{version} not after {seen}");
                    let mut change = r.document.clone();
                    let name = SECTIONS[section];
                    let value = match name {
                        "plan" => {
                            let mode = MODES[mode];
                            let rps = if mode == Mode::Pause { 0.0 } else { f64::from(rps) + 1.0 };
                            let value = PlanSpec::constant(mode, rps, now);
                            change.plan = Section { version, value };
                            serde_json::to_value(value).unwrap()
                        }
                        "workload" => {
                            let value = WorkloadSection { source: "body".into(), text: format!("# {rps}\n") };
                            change.workload = Some(Section { version, value: value.clone() });
                            serde_json::to_value(value).unwrap()
                        }
                        _ => {
                            let overrides = json!({"steady_rps": rps}).as_object().unwrap().clone();
                            let value = ConfigSection { overrides };
                            change.config = Some(Section { version, value: value.clone() });
                            serde_json::to_value(value).unwrap()
                        }
                    };
                    prop_assert!(made.insert((name, version), value).is_none(), "version {version} made twice");
                    let changed = r.document.merge(change);
                    prop_assert_eq!(changed.names(), vec![name], "a local change must apply, alone");
                    for to in (0..count).filter(|&to| to != at) {
                        network.push((to, r.document.clone()));
                    }
                }
                Event::Deliver { pick, repeat } if !network.is_empty() => {
                    let i = pick % network.len();
                    let (to, message) = if repeat { network[i].clone() } else { network.swap_remove(i) };
                    let r = &mut replicas[to];
                    let before = r.document.versions().latest();
                    for version in message.versions().each() {
                        r.clock.observe(version);
                    }
                    r.document.merge(message);
                    let after = r.document.versions().latest();
                    prop_assert!(after >= before, "replica {to} went back from {before} to {after}");
                }
                Event::Lose { pick } if !network.is_empty() => {
                    let i = pick % network.len();
                    network.swap_remove(i);
                }
                Event::Tick { ms } => wall += i64::from(ms),
                _ => {}
            }
            // No replica ever holds a value under another change's version.
            for r in &replicas {
                for (name, version, value) in sections(&r.document) {
                    prop_assert_eq!(made.get(&(name, version)), Some(&value), "{} {}", name, version);
                }
            }
        }

        // Catch-up, as the poll does: each replica fetches the document of
        // every peer that is ahead and merges it.
        for at in 0..count {
            for from in 0..count {
                let theirs = replicas[from].document.clone();
                if replicas[at].document.versions().behind(&theirs.versions()) {
                    replicas[at].document.merge(theirs);
                }
            }
        }
        for name in SECTIONS {
            let latest = made.keys().filter(|(n, _)| *n == name).map(|(_, v)| *v).max();
            for r in &replicas {
                let held = sections(&r.document).into_iter().find(|(n, _, _)| *n == name);
                match latest {
                    Some(latest) => {
                        let (_, version, value) = held.expect("a section some replica changed is everywhere");
                        prop_assert_eq!(version, latest, "{}", name);
                        prop_assert_eq!(&value, &made[&(name, latest)], "{}", name);
                    }
                    None => prop_assert!(held.is_none(), "{} appeared unchanged", name),
                }
            }
        }
    }
}

mod peer_endpoint {
    //! `PUT /cluster/state` as a hostile peer would use it, in process (no
    //! request leaves the test): random bodies and asker headers never get
    //! a 5xx, every refusal is a JSON error, a request not signed with the
    //! cluster's key changes nothing, and only a valid signed document with
    //! a newer version changes the plan; its workload and config sections,
    //! valid or not, are taken or refused with it, each by its own version.

    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use actix_web::App;
    use actix_web::test as actix_test;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use serde_json::{Value, json};
    use trafficgen::app::config::{TargetUrl, builtin_workload};
    use trafficgen::cluster::auth::{AUTH_HEADER, ClusterKey, RequestParts, Stamp};
    use trafficgen::cluster::peers::PeersSetting;
    use trafficgen::cluster::version::MAX_AHEAD_MS;
    use trafficgen::cluster::{Cluster, Peers};
    use trafficgen::control::origin::AllowedOrigins;
    use trafficgen::control::server::ServerLimits;
    use trafficgen::control::{ControlState, ServerInfo, configure};
    use trafficgen::engine::mode::{Mode, ModeTable};
    use trafficgen::engine::{Engine, EngineSettings};
    use trafficgen::observe::metrics::Metrics;
    use trafficgen::observe::rate::SentRate;
    use trafficgen::workload::mix::Mix;
    use trafficgen::workload::{Options, Target};

    fn state() -> ControlState {
        let target = TargetUrl::parse("http://127.0.0.1:9").unwrap();
        let options = Options::new(Target::new(&target), 50);
        let workload = builtin_workload(Mix::default(), &options).unwrap();
        let settings = EngineSettings {
            target,
            initial_mode: Mode::Steady,
            modes: ModeTable {
                steady: 2.0,
                burst: 20.0,
                overload: 100.0,
                max_rps: 1000.0,
                max_users: 1000,
                user_pause: trafficgen::engine::users::UserPause::fixed(1.0),
            },
            jitter: 0.2,
            workload: Arc::new(workload),
            workload_file: None,
            id_buffer_size: 50,
            request_timeout: Duration::from_secs(1),
            max_in_flight: 8,
            max_journeys: 100,
            data_dir: None,
            shutdown_grace: Duration::ZERO,
            client: Default::default(),
            trace: Default::default(),
            memory: None,
        };
        // Never started: no request leaves this test, and the cluster never
        // polls (a peer's change is merged, never sent on).
        let engine = Engine::new(settings, Arc::new(Metrics::new().unwrap()));
        let setting = PeersSetting::Static(vec!["127.0.0.1:9".parse().unwrap()]);
        let cluster = Cluster::new(Peers { setting, key: key() }, engine.clone());
        ControlState {
            live: trafficgen::control::live::Live::detached(engine.clone(), Some(cluster.clone())),
            engine,
            started: Instant::now(),
            sent_rate: Arc::new(SentRate::new(Duration::from_secs(10))),
            token: None,
            origins: Arc::new(AllowedOrigins::default()),
            server: Arc::new(ServerInfo::new(
                ServerLimits { max_connections: 16, request_timeout: Duration::from_secs(5) },
                None,
            )),
            cluster: Some(cluster),
        }
    }

    fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    fn key() -> ClusterKey {
        ClusterKey::derive(b"cluster-props-secret")
    }

    /// How a request is signed: as a replica would, not at all, or with
    /// another secret.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Signer {
        Cluster,
        Nobody,
        Stranger,
    }

    /// `request` with the signature `signer` gives it.
    fn signed(
        request: actix_test::TestRequest,
        signer: Signer,
        method: &str,
        target: &str,
        asker: &str,
        body: &[u8],
    ) -> actix_test::TestRequest {
        let key = match signer {
            Signer::Cluster => key(),
            Signer::Stranger => ClusterKey::derive(b"a-stranger-s-secret"),
            Signer::Nobody => return request,
        };
        let parts = RequestParts { method, target, asker, body };
        request.insert_header((AUTH_HEADER, key.sign_request(&parts, Stamp::now(now_ms()))))
    }

    /// A body to send, and for a valid document its version and sections.
    type Case = (Vec<u8>, Option<(u64, String, Vec<&'static str>)>);

    /// A document from its parts (`clock` and `start` as offsets from now,
    /// `workload` and `config` as variants, see [`body`]), and whether a
    /// peer must take it.
    #[allow(clippy::too_many_arguments)]
    fn document_case(
        mode: &str,
        rps: f64,
        clock: i64,
        start: i64,
        replica: String,
        extra: bool,
        workload: usize,
        config: usize,
    ) -> Case {
        let now = now_ms() as i64;
        let (clock, start_ms) = ((now + clock).max(0) as u64, now.saturating_add(start).max(0) as u64);
        let mut value = json!({"mode": mode, "rps": rps, "start_ms": start_ms});
        if extra {
            value["ramp"] = json!(1);
        }
        let version = json!({"clock": clock, "replica": replica});
        let mut doc = json!({"plan": {"version": version, "value": value}});
        let mut present = vec!["plan"];
        let workload_value = match workload {
            1 => Some(json!({"source": "body", "text": "requests:\n  - {name: a, weight: 1, method: GET, path: /}\n"})),
            2 => Some(json!({"source": "", "text": "x"})),
            3 => Some(json!({"source": "body", "text": "x", "mixed": true})),
            _ => None,
        };
        if let Some(value) = workload_value {
            doc["workload"] = json!({"version": version, "value": value});
            present.push("workload");
        }
        let config_value = match config {
            1 => Some(json!({"overrides": {"steady_rps": 5, "jitter": 0.1}})),
            2 => Some(json!({"overrides": {"target_url": 1}})),
            3 => Some(json!({"overrides": {"jitter": "0.1"}})),
            _ => None,
        };
        if let Some(value) = config_value {
            doc["config"] = json!({"version": version, "value": value});
            present.push("config");
        }
        let rate_ok = rps == 0.0 || rps >= 1.0 / 86_400.0;
        let valid = ["steady", "burst", "overload", "pause", "custom"].contains(&mode)
            && rate_ok
            && (mode != "pause" || rps == 0.0)
            && clock <= now as u64 + MAX_AHEAD_MS
            && start_ms <= now as u64 + MAX_AHEAD_MS
            && replica.len() == 16
            && replica.bytes().all(|b| b.is_ascii_hexdigit())
            && !extra
            && workload < 2
            && config < 2;
        (doc.to_string().into_bytes(), valid.then(|| (clock, replica.to_ascii_lowercase(), present)))
    }

    /// Documents near the valid ones (each part valid or not), and noise.
    fn body() -> impl Strategy<Value = Case> {
        let mode = prop_oneof![
            Just("steady"),
            Just("burst"),
            Just("overload"),
            Just("pause"),
            Just("custom"),
            Just("turbo"),
            Just("")
        ];
        let rps = prop_oneof![
            Just(0.0),
            0.0f64..2000.0,
            any::<f64>().prop_filter("JSON numbers", |f| f.is_finite()),
            Just(1e-20),
            Just(-1.0)
        ];
        // Offsets from now, in ms, away from the 1 s bound (the server's
        // now is a little later than ours).
        let clock = prop_oneof![Just(-1_000_000_000i64), -100_000i64..500, 5_000i64..10_000_000];
        let start = prop_oneof![Just(i64::MIN / 2), -10_000_000i64..0, 5_000i64..i64::MAX / 4];
        let replica = prop_oneof![Just("00000000000000ab".to_string()), "[0-9a-fA-Fxg]{0,18}"];
        // 0: no section; 1: a valid one; 2 and 3: ones a peer must refuse
        // (rarer, so that enough documents are valid).
        let variant = || prop_oneof![3 => Just(0usize), 3 => Just(1), 1 => Just(2), 1 => Just(3)];
        let sections = (variant(), variant());
        let document = (mode, rps, clock, start, replica, any::<bool>(), sections).prop_map(
            |(mode, rps, clock, start, replica, extra, (workload, config))| {
                document_case(mode, rps, clock, start, replica, extra, workload, config)
            },
        );
        // Valid plans from two replicas, versions close together, with
        // sections: older and newer ones of each section come in turn.
        let two = prop_oneof![Just("00000000000000ab".to_string()), Just("00000000000000cd".to_string())];
        let sectioned = (-30_000i64..500, two, variant(), variant()).prop_map(|(clock, replica, workload, config)| {
            document_case("steady", 2.0, clock, 0, replica, false, workload, config)
        });
        prop_oneof![
            4 => document,
            3 => sectioned,
            1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| (b, None)),
            1 => "[{}\\[\\]\":,a-z0-9 ]{0,60}".prop_map(|s| (s.into_bytes(), None)),
        ]
    }

    #[test]
    fn random_documents_never_break_the_peer_api_and_only_newer_valid_ones_apply() {
        let system = actix_rt::System::new();
        let state = state();
        let cluster = state.cluster.clone().unwrap();
        let app = system.block_on(actix_test::init_service(App::new().configure(configure(state.clone()))));
        let mut runner = TestRunner::new(Config { cases: 600, ..Config::default() });
        let signer = prop_oneof![8 => Just(Signer::Cluster), 1 => Just(Signer::Nobody), 1 => Just(Signer::Stranger)];
        runner
            .run(&(body(), "[0-9a-f; stoping]{0,30}", signer), |((body, valid), asker, signer)| {
                let before = (state.engine.plan(), cluster.versions());
                let request = actix_test::TestRequest::put()
                    .uri("/cluster/state")
                    .insert_header(("trafficgen-replica", asker.clone()))
                    .set_payload(body.clone());
                let request = signed(request, signer, "PUT", "/cluster/state", &asker, &body).to_request();
                let (status, answer) = system.block_on(async {
                    let res = actix_test::call_service(&app, request).await;
                    (res.status().as_u16(), actix_test::read_body(res).await)
                });
                let answer: Value = serde_json::from_slice(&answer).expect("every answer is JSON");
                let member = actix_test::TestRequest::get()
                    .uri("/cluster/member")
                    .insert_header(("trafficgen-replica", asker.clone()));
                let member = signed(member, signer, "GET", "/cluster/member", &asker, b"").to_request();
                let member_status = system.block_on(async { actix_test::call_service(&app, member).await.status() });
                let shown = String::from_utf8_lossy(&body).into_owned();
                if signer == Signer::Stranger {
                    prop_assert_eq!(member_status.as_u16(), 401, "a bad signature is refused");
                } else {
                    prop_assert_eq!(member_status.as_u16(), 200);
                }
                if signer != Signer::Cluster {
                    prop_assert_eq!(status, 401, "{:?} signature: {} -> {}", signer, shown, answer);
                    prop_assert!(answer["error"].as_str().is_some_and(|e| e.contains("peer authentication")));
                    prop_assert_eq!(
                        (state.engine.plan(), cluster.versions()),
                        before,
                        "an unsigned document changed something"
                    );
                    return Ok(());
                }
                match valid {
                    Some((clock, replica, present)) => {
                        prop_assert_eq!(status, 200, "{} -> {}", shown, answer);
                        let held = before.1;
                        let newer_than = |held: Option<trafficgen::cluster::version::Version>| {
                            held.is_none_or(|h| (clock, replica.clone()) > (h.clock, h.replica.to_string()))
                        };
                        let applied: Vec<&str> = present
                            .iter()
                            .copied()
                            .filter(|section| match *section {
                                "plan" => newer_than(Some(held.plan)),
                                "workload" => newer_than(held.workload),
                                _ => newer_than(held.config),
                            })
                            .collect();
                        prop_assert_eq!(&answer["applied"], &json!(applied), "{} -> {}", shown, answer);
                        let after = cluster.versions();
                        for (section, was, now) in
                            [("workload", held.workload, after.workload), ("config", held.config, after.config)]
                        {
                            // Taken: its version is the document's; not: as it was.
                            let expected = if applied.contains(&section) { Some(clock) } else { was.map(|v| v.clock) };
                            prop_assert_eq!(now.map(|v| v.clock), expected, "{}", section);
                        }
                        let newer = applied.contains(&"plan");
                        if newer {
                            prop_assert_eq!(cluster.versions().plan.clock, clock);
                            let plan = state.engine.plan();
                            prop_assert!(plan.rps.is_finite() && (0.0..=1000.0).contains(&plan.rps), "{:?}", plan);
                        } else {
                            prop_assert_eq!(
                                (state.engine.plan(), cluster.versions().plan),
                                (before.0, before.1.plan),
                                "an older document changed the plan"
                            );
                        }
                    }
                    None => {
                        prop_assert!([400, 413, 422].contains(&status), "status {} for {}", status, shown);
                        prop_assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", answer);
                        prop_assert_eq!(
                            (state.engine.plan(), cluster.versions()),
                            before,
                            "a refusal changed something"
                        );
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
