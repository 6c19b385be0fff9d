//! Replicas (`PEERS`): they split the rate, switch together, take over a
//! killed one's share and catch a restarted one up.
//!
//! Each replica is the real binary bound to an address of its own in
//! 127.0.0.0/8 (all on one port, as replicas behind a name are), listed in
//! `PEERS=static:…`; the name form (`dns:`) is tested in a private mount
//! namespace whose /etc/hosts lists the replicas, under strace, so no
//! lookup leaves the machine.

use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;
use crate::peers::{Behaviour, FakeTarget, answer};
use crate::scripted::have_tools;
use crate::workload::TempFile;

pub const TOKEN: &str = "cluster-test-token";
/// What replicas share to prove themselves to each other (`CLUSTER_SECRET`).
pub const SECRET: &str = "cluster-test-secret-0123";

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The `trafficgen-peer-auth` header a replica holding `secret` puts on a
/// request, written here from the format README describes (not with the
/// code under test): HMAC-SHA256, keyed by HMAC-SHA256(secret, "trafficgen
/// cluster key v1"), over the method, path, asker header, time, nonce and
/// the body's SHA-256.
pub fn peer_signature(secret: &str, method: &str, target: &str, asker: &str, body: &[u8]) -> String {
    use ring::{digest, hmac};
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), b"trafficgen cluster key v1");
    let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
    let (at, nonce) = (now_ms(), rand::random::<u128>());
    let digest = hex(digest::digest(&digest::SHA256, body).as_ref());
    let message = format!("trafficgen peer request v1\n{method}\n{target}\n{asker}\n{at}\n{nonce:032x}\n{digest}");
    format!("v1 {at} {nonce:032x} {}", hex(hmac::sign(&key, message.as_bytes()).as_ref()))
}

/// `PUT /cluster/state` with `body`, signed as a replica holding `secret` would.
pub fn signed_put(proc: &Proc, secret: &str, body: &str, more: &[(&str, &str)]) -> Response {
    let signature = peer_signature(secret, "PUT", "/cluster/state", "", body.as_bytes());
    let mut headers = vec![("trafficgen-peer-auth", signature.as_str())];
    headers.extend_from_slice(more);
    request(proc.addr, "PUT", "/cluster/state", &headers, Some(body))
}

/// `n` loopback addresses no other test of this run uses.
pub fn fresh_ips(n: u32) -> Vec<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let block = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    (0..n).map(|i| format!("127.{}.{}.{}", 80 + block % 100, pid % 250 + 1, i + 1)).collect()
}

pub struct Replicas {
    pub ips: Vec<String>,
    pub port: u16,
    pub peers: String,
    target_url: String,
    extra: Vec<(String, String)>,
    pub procs: Vec<Option<Proc>>,
}

impl Replicas {
    /// `n` replicas aimed at `target_url`, with `extra` settings; they
    /// share [`SECRET`] unless `extra` gives a secret or a control token.
    pub fn start(n: u32, target_url: &str, extra: &[(&str, &str)]) -> Replicas {
        Self::start_listing(n, n, target_url, extra)
    }

    /// `n` replicas, and `PEERS` lists `listed` addresses: the last
    /// `listed - n` ones (`ips[n..]`, on `port`) are vacant.
    pub fn start_listing(n: u32, listed: u32, target_url: &str, extra: &[(&str, &str)]) -> Replicas {
        let ips = fresh_ips(listed);
        let port = closed_port();
        let peers = format!("static:{}", ips.iter().map(|ip| format!("{ip}:{port}")).collect::<Vec<_>>().join(","));
        let mut replicas = Replicas {
            ips,
            port,
            peers,
            target_url: target_url.to_string(),
            extra: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            procs: Vec::new(),
        };
        if !extra.iter().any(|(k, _)| ["CLUSTER_SECRET", "CONTROL_TOKEN"].contains(k)) {
            replicas.extra.push(("CLUSTER_SECRET".into(), SECRET.into()));
        }
        for i in 0..n as usize {
            let proc = replicas.spawn(i, &[]);
            replicas.procs.push(Some(proc));
        }
        replicas
    }

    fn spawn(&self, i: usize, more: &[(&str, &str)]) -> Proc {
        let port = self.port.to_string();
        let mut env: Vec<(&str, &str)> =
            vec![("BIND", &self.ips[i]), ("PORT", &port), ("PEERS", &self.peers), ("STATS_INTERVAL_SECS", "0")];
        env.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        env.extend_from_slice(more);
        let mut proc = Proc::start(&[], &sidecar_env(&self.target_url, &env));
        proc.addr = format!("{}:{}", self.ips[i], self.port).parse().unwrap();
        proc
    }

    pub fn get(&self, i: usize) -> &Proc {
        self.procs[i].as_ref().expect("replica is running")
    }

    pub fn running(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter().flatten()
    }

    fn cluster(&self, i: usize) -> Value {
        self.get(i).get_json("/status")["cluster"].clone()
    }

    /// Waits until every running replica counts `count` members and their
    /// shares are 0..count; panics with the views after `timeout`.
    pub fn wait_for_split(&self, count: u64, timeout: Duration) {
        let settled = eventually(timeout, || {
            let views: Vec<Value> = self.running().map(|p| p.get_json("/status")["cluster"].clone()).collect();
            let mut indexes: Vec<u64> = views.iter().filter_map(|v| v["share"]["index"].as_u64()).collect();
            indexes.sort_unstable();
            views.iter().all(|v| v["share"]["count"] == count) && indexes == (0..count).collect::<Vec<_>>()
        });
        assert!(settled, "no {count}-way split within {timeout:?}: {:#}", self.views());
    }

    /// Whether every running replica's answer to `GET path` passes
    /// `check` within a few seconds.
    fn all_show(&self, path: &str, check: &dyn Fn(&Value) -> bool) -> bool {
        eventually(Duration::from_secs(5), || self.running().all(|p| check(&p.get_json(path))))
    }

    fn answers(&self, path: &str) -> Value {
        Value::Array(self.running().map(|p| p.get_json(path)).collect())
    }

    pub fn views(&self) -> Value {
        Value::Array(self.running().map(|p| p.get_json("/status")["cluster"].clone()).collect())
    }
}

pub fn post_with_token(proc: &Proc, path: &str, body: Option<&str>) -> Response {
    request(proc.addr, "POST", path, &[("Authorization", &format!("Bearer {TOKEN}"))], body)
}

/// Requests per second the demo target answers over `window`.
fn target_rate(target: &Proc, window: Duration) -> f64 {
    observed_rate(target, window)
}

#[test]
fn replicas_split_the_rate_interleave_and_switch_together() {
    let _timing = timing_test();
    let target = FakeTarget::start(Behaviour::Answer(answer("201 Created", &[], r#"{"id":1}"#)));
    // JITTER 0: each replica's requests fall exactly on its own slots, so
    // the arrivals show whether the three interleave or go in step.
    let replicas = Replicas::start(
        3,
        &target.url(),
        &[("INITIAL_MODE", "pause"), ("JITTER", "0"), ("CONTROL_TOKEN", TOKEN), ("MIX", "list_orders=1")],
    );
    replicas.wait_for_split(3, Duration::from_secs(15));

    // One POST, with the token, to the second replica: all three switch.
    let posted = Instant::now();
    let res = post_with_token(replicas.get(1), "/mode/custom", Some(r#"{"rps": 30}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    let mut version = Value::Null;
    let switched = eventually(Duration::from_secs(5), || {
        let statuses: Vec<Value> = replicas.running().map(|p| p.get_json("/status")).collect();
        version = statuses[1]["cluster"]["versions"].clone();
        statuses.iter().all(|s| s["mode"] == "custom" && s["rps"] == 30 && s["cluster"]["versions"] == version)
    });
    let took = posted.elapsed();
    assert!(switched, "not all replicas switched: {:#}", replicas.views());
    eprintln!("one POST switched all three replicas within {took:?} (polled)");
    assert!(took < Duration::from_secs(1), "switching all three took {took:?}");
    // Pushed to them (a fan-out), not fetched at their next poll.
    for i in [0, 2] {
        let applied = replicas.get(i).wait_for_log(
            |l| l["message"].as_str().is_some_and(|m| m.contains("plan version")) && l["rps"] == 30.0,
            Duration::from_secs(2),
        );
        let applied = applied.unwrap_or_else(|| panic!("replica {i} logged no change:\n{}", replicas.get(i).output()));
        assert_eq!(applied["source"], "peer", "replica {i}: {applied}");
    }

    // Each sends a third, and says so in its gauge (per replica: sum() is the whole).
    for p in replicas.running() {
        let samples = parse_metrics(&p.get("/metrics").body);
        assert_eq!(sum(&samples, "trafficgen_target_rps", &[]), 10.0, "{}", p.addr);
    }

    // Together: the whole rate, as one stream, not three bursts in step.
    thread::sleep(Duration::from_millis(1500));
    let from = target.arrivals().len();
    thread::sleep(Duration::from_secs(4));
    let arrivals: Vec<Instant> = target.arrivals()[from..].to_vec();
    let rate = arrivals.len() as f64 / 4.0;
    let mut gaps: Vec<f64> = arrivals.windows(2).map(|w| w[1].saturating_duration_since(w[0]).as_secs_f64()).collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or(0.0);
    let bunched = gaps.iter().filter(|&&g| g < 0.005).count();
    eprintln!(
        "at the target: {rate:.1}/s; median gap {:.1} ms; {bunched} of {} gaps under 5 ms",
        median * 1e3,
        gaps.len()
    );
    assert!((rate - 30.0).abs() <= 3.0, "{rate}/s at the target, want 30");
    // In step, two gaps of three would be about 0 and the median 0.
    assert!(median > 0.5 / 30.0, "median gap {median} s: the replicas send in step, not interleaved");
    assert!(bunched * 5 < gaps.len(), "{bunched} of {} gaps under 5 ms", gaps.len());
    let even = gaps.iter().filter(|&&g| (g - 1.0 / 30.0).abs() < 0.012).count();
    assert!(even * 10 >= gaps.len() * 7, "only {even} of {} gaps near 1/30 s", gaps.len());
}

#[test]
fn a_killed_replica_is_taken_over_and_a_restarted_one_catches_up() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let mut replicas = Replicas::start(3, &url, &[("STEADY_RPS", "30")]);
    replicas.wait_for_split(3, Duration::from_secs(15));
    thread::sleep(Duration::from_secs(1));
    let three = target_rate(&target, Duration::from_secs(4));

    // SIGKILL: no goodbye. The other two take its share over.
    let killed_addr = replicas.get(2).addr.to_string();
    let mut gone = replicas.procs[2].take().unwrap();
    gone.signal(libc::SIGKILL);
    gone.wait_exit(Duration::from_secs(5)).expect("killed replica exits");
    let killed = Instant::now();
    replicas.wait_for_split(2, Duration::from_secs(10));
    let resplit = killed.elapsed();
    let view = replicas.cluster(0);
    assert!(view["unreachable"].as_array().unwrap().iter().any(|a| a == killed_addr.as_str()), "{view:#}");
    thread::sleep(Duration::from_secs(1));
    let two = target_rate(&target, Duration::from_secs(4));

    // A change while it is down: it must catch up when it comes back.
    let res = replicas.get(0).post("/mode/custom", Some(r#"{"rps": 45}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(eventually(Duration::from_secs(5), || replicas.get(1).get_json("/status")["rps"] == 45));
    let version = replicas.cluster(0)["versions"].clone();

    // Back, with a long warm-up it will not need: the others are sending.
    let restarted = Instant::now();
    replicas.procs[2] = Some(replicas.spawn(2, &[("WARMUP_SECS", "60")]));
    replicas.wait_for_split(3, Duration::from_secs(10));
    let rejoined = restarted.elapsed();
    let status = replicas.get(2).get_json("/status");
    assert_eq!(status["cluster"]["versions"], version, "caught up: {status:#}");
    assert_eq!((status["mode"].as_str(), status["rps"].as_f64()), (Some("custom"), Some(45.0)));
    assert_eq!(status["state"], "running", "warm-up ended on joining replicas that send");
    thread::sleep(Duration::from_secs(1));
    let back = target_rate(&target, Duration::from_secs(4));
    eprintln!(
        "at the target: 3 replicas {three:.1}/s; killed one, re-split in {resplit:?}: {two:.1}/s; \
         45/s set meanwhile; restarted, 3-way again in {rejoined:?}: {back:.1}/s"
    );
    assert!((three - 30.0).abs() <= 3.0, "3 replicas: {three}/s, want 30");
    assert!((two - 30.0).abs() <= 3.0, "2 replicas after the kill: {two}/s, want 30");
    assert!((back - 45.0).abs() <= 4.5, "3 replicas again: {back}/s, want 45");

    // SIGTERM: it says goodbye, and the others take over at once.
    let mut leaving = replicas.procs[2].take().unwrap();
    let stopped = Instant::now();
    leaving.terminate(Duration::from_secs(10)).expect("stops on SIGTERM");
    replicas.wait_for_split(2, Duration::from_secs(3));
    eprintln!("SIGTERM: the other two split the rate {:?} after the signal", stopped.elapsed());
}

#[test]
fn peer_changes_are_versioned_checked_and_guarded() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let replicas = Replicas::start(1, &url, &[("CONTROL_TOKEN", TOKEN), ("INITIAL_MODE", "pause")]);
    let me = replicas.get(0);
    let auth = format!("Bearer {TOKEN}");
    // Without CLUSTER_SECRET the control token is the replicas' secret: a
    // peer signs with it, and never sends it.
    let put = |body: &str, headers: &[(&str, &str)]| signed_put(me, TOKEN, body, headers);
    let with_token = [("Authorization", auth.as_str())];
    let mode = || me.get_json("/status")["mode"].as_str().unwrap().to_string();

    // Anyone may ask who it is; the document needs the token.
    let member = me.get_json("/cluster/member");
    assert_eq!(member["state"], "paused");
    assert!(member["instance"].as_str().is_some_and(|i| i.len() == 16), "{member}");
    assert_eq!(me.get("/cluster/state").status, 401);
    let doc = request(me.addr, "GET", "/cluster/state", &with_token, None);
    assert_eq!(doc.status, 200, "{}", doc.body);
    assert_eq!(doc.json()["plan"]["version"]["clock"], 0, "the initial version: {}", doc.body);

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let document = |clock: u64, mode: &str, rps: f64| {
        json!({"plan": {"version": {"clock": clock, "replica": "00000000000000ab"},
                        "value": {"mode": mode, "rps": rps, "start_ms": now_ms}}})
        .to_string()
    };
    let newer = document(now_ms, "burst", 20.0);

    // Refused, changing nothing: no signature (the control token is not
    // one), another secret's, a foreign web page, bad bodies.
    let bearer = request(me.addr, "PUT", "/cluster/state", &with_token, Some(&newer));
    for unsigned in [request(me.addr, "PUT", "/cluster/state", &[], Some(&newer)), bearer] {
        assert_eq!(unsigned.status, 401, "{}", unsigned.body);
        assert!(unsigned.json()["error"].as_str().unwrap().contains("peer authentication failed"), "{}", unsigned.body);
    }
    let stranger = signed_put(me, "another-secret-entirely", &newer, &[]);
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    assert!(stranger.body.contains("the signature does not match"), "{}", stranger.body);
    let foreign = put(&newer, &[("Origin", "http://evil.example")]);
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let bad: &[(String, u16, &str)] = &[
        ("{not json".into(), 400, "not valid JSON"),
        (r#"{"plan": 5}"#.into(), 422, "expected a replicated document"),
        (document(now_ms, "turbo", 20.0), 422, "turbo"),
        (document(now_ms, "custom", -1.0), 422, "negative"),
        (document(now_ms, "custom", 1e-20), 422, "one request a day"),
        (document(now_ms, "pause", 5.0), 422, "pause has rps 0"),
        (document(now_ms + 600_000, "burst", 20.0), 422, "ahead"),
        (document(now_ms + 59_900, "burst", 20.0), 422, "ahead"),
        (document(now_ms, "burst", 20.0).replace(r#""start_ms""#, r#""jitter":1,"start_ms""#), 422, "jitter"),
        (
            document(now_ms, "burst", 20.0).replace(r#""start_ms""#, r#""ramp":{"from":1,"secs":-5},"start_ms""#),
            422,
            "ramp",
        ),
        (
            document(now_ms, "burst", 20.0)
                .replace(r#""start_ms""#, r#""pause":{"min_secs":1,"max_secs":2},"start_ms""#),
            422,
            "only users mode",
        ),
        // Past the bound, which is a workload text's at its own bound, escaped.
        (format!(r#"{{"pad":"{}"}}"#, "x".repeat(2_200_000)), 413, "larger than"),
    ];
    for (body, status, needle) in bad {
        let res = put(body, &[]);
        assert_eq!(res.status, *status, "{}: {}", &body[..body.len().min(120)], res.body);
        let error = res.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
    }
    assert_eq!(mode(), "pause", "a refused document changed the plan");

    // A newer version applies (once); an older one, or the same again, does not.
    let res = put(&newer, &[]);
    assert_eq!((res.status, res.json()["applied"].clone()), (200, json!(["plan"])), "{}", res.body);
    assert!(res.headers.contains_key("trafficgen-peer-auth"), "a signed request gets a signed answer");
    assert_eq!((mode(), me.get_json("/status")["rps"].clone()), ("burst".to_string(), json!(20)));
    assert_eq!(put(&newer, &[]).json()["applied"], json!([]), "repeated");
    assert_eq!(put(&document(now_ms - 1000, "overload", 100.0), &[]).json()["applied"], json!([]), "late");
    assert_eq!(mode(), "burst");

    // A version from a clock a little ahead (under a second: allowed) is
    // taken; a change made here afterwards still wins over it, clocks or not.
    let ahead_of = self::now_ms() + 800;
    let ahead = document(ahead_of, "custom", 7.0);
    assert_eq!(put(&ahead, &[]).json()["applied"], json!(["plan"]));
    let res = post_with_token(me, "/mode/overload", None);
    assert_eq!(res.status, 200, "{}", res.body);
    let versions = me.get_json("/cluster/member")["versions"]["plan"].clone();
    assert!(versions["clock"].as_u64().unwrap() > ahead_of, "{versions}");
    assert_eq!(versions["replica"], me.get_json("/cluster/member")["instance"]);
    assert_eq!(mode(), "overload");

    let res = request(me.addr, "POST", "/cluster/state", &with_token, Some("{}"));
    assert_eq!((res.status, res.headers.get("allow").map(String::as_str)), (405, Some("GET, HEAD, PUT")));

    // A signed request is good once: played again, it is a replay.
    let once = document(self::now_ms(), "steady", 2.0);
    let signature = peer_signature(TOKEN, "PUT", "/cluster/state", "", once.as_bytes());
    let again = || request(me.addr, "PUT", "/cluster/state", &[("trafficgen-peer-auth", &signature)], Some(&once));
    assert_eq!(again().status, 200);
    let replayed = again();
    assert_eq!(replayed.status, 401, "{}", replayed.body);
    assert!(replayed.body.contains("replay"), "{}", replayed.body);
}

#[test]
fn a_peer_that_never_answers_is_reported_and_never_waited_on() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    // Accepts connections and never says a word.
    let silent = FakeTarget::start(Behaviour::Hang);
    let ip = fresh_ips(1).remove(0);
    let port = closed_port();
    let peers = format!("static:{ip}:{port},{}", silent.addr);
    let port_text = port.to_string();
    let env = [
        ("BIND", ip.as_str()),
        ("PORT", &port_text),
        ("PEERS", &peers),
        ("INITIAL_MODE", "pause"),
        ("CLUSTER_SECRET", SECRET),
    ];
    let mut me = Proc::start(&[], &sidecar_env(&url, &env));
    me.addr = format!("{ip}:{port}").parse().unwrap();
    let silent_addr = silent.addr.to_string();
    let reported = eventually(Duration::from_secs(10), || {
        let view = me.get_json("/status")["cluster"].clone();
        view["replicas"].as_array().unwrap().iter().any(|r| {
            r["address"] == silent_addr.as_str()
                && r["reachable"] == false
                && r["error"].as_str().is_some_and(|e| e.contains("no answer"))
        }) && view["unreachable"] == json!([silent_addr])
    });
    assert!(reported, "{:#}", me.get_json("/status")["cluster"]);

    // A switch answers at once and applies here; the silent peer, which
    // never proved it is a replica, is never sent it.
    let asked = Instant::now();
    let res = me.post("/mode/burst", None);
    let took = asked.elapsed();
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(took < Duration::from_millis(500), "the POST waited for the peer: {took:?}");
    assert_eq!(me.get_json("/status")["mode"], "burst");
    let view = me.get_json("/status")["cluster"].clone();
    assert_eq!(view["share"]["count"], 1, "a peer that never answered has no share: {view:#}");
    thread::sleep(Duration::from_secs(2));
    let view = me.get_json("/status")["cluster"].clone();
    let entry = view["replicas"].as_array().unwrap().iter().find(|r| r["address"] == silent_addr.as_str()).cloned();
    assert_eq!(entry.map(|r| r["fanout_error"].clone()), Some(Value::Null), "never sent a change: {view:#}");
}

#[test]
fn a_job_started_on_one_replica_runs_on_all_and_ends_on_all() {
    let target = start_demo_target(&[]);
    let replicas = Replicas::start(2, &format!("http://{}", target.addr), &[("INITIAL_MODE", "pause")]);
    replicas.wait_for_split(2, Duration::from_secs(15));
    let job = replicas.get(0).post("/jobs", Some(r#"{"scenario": "normal", "duration_secs": 2, "max_rps": 10}"#));
    assert_eq!(job.status, 201, "{}", job.body);
    let id = job.json()["job_id"].as_str().unwrap().to_string();
    let path = format!("/jobs/{id}");
    // The other replica plays it too, under the same id, …
    let shared = eventually(Duration::from_secs(2), || replicas.get(1).get(&path).status == 200);
    assert!(shared, "the job did not reach replica 1: {}", replicas.get(1).get_json("/jobs"));
    // … each its share, so the target sees the job's whole rate, …
    for i in 0..2 {
        let ended = eventually(Duration::from_secs(6), || replicas.get(i).get_json(&path)["status"] == "completed");
        assert!(ended, "replica {i}: {}", replicas.get(i).get_json(&path));
    }
    // A job's last requests may still be on their way when it ends: the
    // target is counted once neither replica has any in flight.
    let idle =
        eventually(Duration::from_secs(5), || (0..2).all(|i| replicas.get(i).get_json("/status")["in_flight"] == 0));
    assert!(idle, "requests still in flight after the job: {}", replicas.answers("/status"));
    let sent = target_count(&target, None);
    assert!((19..=21).contains(&sent), "{sent} requests of a 2 s job at 10 req/s");
    // … and both end into the mode they shared before it.
    for i in 0..2 {
        assert_eq!(replicas.get(i).get_json("/status")["mode"], "pause", "replica {i}");
    }

    // Stopped on the other replica: stopped on both, the mode before back.
    let job = replicas.get(0).post("/jobs", Some(r#"{"scenario": "normal", "duration_secs": 60, "max_rps": 10}"#));
    let id = job.json()["job_id"].as_str().unwrap().to_string();
    let path = format!("/jobs/{id}");
    assert!(eventually(Duration::from_secs(2), || replicas.get(1).get_json("/status")["job"]["job_id"] == id.as_str()));
    assert_eq!(replicas.get(1).post(&format!("{path}/stop"), None).status, 200);
    for i in 0..2 {
        let stopped = eventually(Duration::from_secs(2), || replicas.get(i).get_json(&path)["status"] == "stopped");
        assert!(stopped, "replica {i}: {}", replicas.get(i).get_json(&path));
        assert_eq!(replicas.get(i).get_json("/status")["mode"], "pause", "replica {i}");
    }

    // A mode switch on either replica stops the job on both and wins.
    let job = replicas.get(0).post("/jobs", Some(r#"{"scenario": "normal", "duration_secs": 60, "max_rps": 10}"#));
    let id = job.json()["job_id"].as_str().unwrap().to_string();
    assert!(eventually(Duration::from_secs(2), || replicas.get(1).get_json("/status")["job"]["job_id"] == id.as_str()));
    let res = replicas.get(1).post("/mode/burst", None);
    assert_eq!(res.json()["stopped_job"]["job_id"], id.as_str(), "{}", res.body);
    for i in 0..2 {
        let switched = eventually(Duration::from_secs(2), || {
            let status = replicas.get(i).get_json("/status");
            status["mode"] == "burst" && status["job"].is_null()
        });
        assert!(switched, "replica {i}: {}", replicas.get(i).get_json("/status"));
        assert_eq!(replicas.get(i).get_json(&format!("/jobs/{id}"))["stop_reason"], "mode_switch", "replica {i}");
    }
    // Both send their share of burst's 20 req/s again.
    let before = target_count(&target, None);
    assert!(eventually(Duration::from_secs(3), || target_count(&target, None) >= before + 20));
}

#[test]
fn a_workload_or_config_put_on_one_replica_reaches_every_replica_and_a_restarted_one() {
    let target = start_demo_target(&[]);
    let mut replicas = Replicas::start(
        3,
        &format!("http://{}", target.addr),
        &[("INITIAL_MODE", "pause"), ("CONTROL_TOKEN", TOKEN), ("MAX_RPS", "500")],
    );
    replicas.wait_for_split(3, Duration::from_secs(15));
    let auth = format!("Bearer {TOKEN}");
    let with_token = [("Authorization", auth.as_str())];
    let put = |i: usize, path: &str, body: &str| request(replicas.get(i).addr, "PUT", path, &with_token, Some(body));

    // A workload PUT on the second replica runs on all three.
    let users = "requests:\n  - {name: users, weight: 2, method: GET, path: /users}\n  - {name: list, weight: 1, method: GET, path: /orders}\n";
    let res = put(1, "/workload", users);
    assert_eq!(res.status, 200, "{}", res.body);
    let new_workload = |v: &Value| v["mix"] == "users=2,list=1" && v["source"] == "body";
    assert!(replicas.all_show("/workload", &new_workload), "{:#}", replicas.answers("/workload"));
    for i in [0, 2] {
        let applied = replicas.get(i).wait_for_log(
            |l| l["message"].as_str().is_some_and(|m| m.contains("workload version")),
            Duration::from_secs(2),
        );
        let applied =
            applied.unwrap_or_else(|| panic!("replica {i} logged no workload:\n{}", replicas.get(i).output()));
        assert_eq!(applied["source"], "peer", "replica {i}: {applied}");
    }
    // A workload refused where it is PUT changes nothing anywhere.
    let res = put(0, "/workload", "requests:\n  - {name: x, weight: 1, method: GET, path: nope}\n");
    assert_eq!(res.status, 422, "{}", res.body);
    thread::sleep(Duration::from_millis(500));
    assert!(replicas.running().all(|p| new_workload(&p.get_json("/workload"))), "{:#}", replicas.answers("/workload"));
    // Every request the target sees comes from the new workload.
    assert_eq!(post_with_token(replicas.get(0), "/mode/custom", Some(r#"{"rps": 30}"#)).status, 200);
    assert!(eventually(Duration::from_secs(10), || target_count(&target, None) >= 45), "the target saw too little");
    assert_eq!(post_with_token(replicas.get(0), "/mode/pause", None).status, 200);
    thread::sleep(Duration::from_millis(500));
    // One scrape, so a straggler cannot land between the counts.
    let samples = parse_metrics(&target.get("/metrics").body);
    let count = |labels: &[(&str, &str)]| sum(&samples, "demo_target_requests_total", labels) as u64;
    let (total, users_seen) = (count(&[]), count(&[("route", "list_users")]));
    let orders_seen = count(&[("route", "list_orders")]);
    assert_eq!(users_seen + orders_seen, total, "requests outside the new workload reached the target");
    // Both of its requests, and list_users is in no other workload of this test.
    assert!(users_seen > 0 && orders_seen > 0, "users {users_seen}, orders {orders_seen}");

    // Runtime settings PUT on the third replica are in force on all three.
    let res = put(2, "/config", r#"{"steady_rps": 12, "jitter": 0.1}"#);
    assert_eq!(res.status, 200, "{}", res.body);
    let tuned = |v: &Value| v["steady_rps"] == 12.0 && v["jitter"] == 0.1 && v["burst_rps"] == 20.0;
    assert!(replicas.all_show("/config", &tuned), "{:#}", replicas.answers("/config"));
    // A refused change (over MAX_RPS) changes nothing anywhere.
    assert_eq!(put(0, "/config", r#"{"steady_rps": 501}"#).status, 422);
    thread::sleep(Duration::from_millis(500));
    assert!(replicas.running().all(|p| tuned(&p.get_json("/config"))), "{:#}", replicas.answers("/config"));

    // Restarted, a replica catches up with both (it asks a peer that is ahead).
    let mut gone = replicas.procs[2].take().unwrap();
    gone.terminate(Duration::from_secs(10)).expect("stops on SIGTERM");
    replicas.procs[2] = Some(replicas.spawn(2, &[]));
    replicas.wait_for_split(3, Duration::from_secs(15));
    let back = replicas.get(2);
    assert!(
        eventually(Duration::from_secs(5), || new_workload(&back.get_json("/workload"))
            && tuned(&back.get_json("/config"))),
        "{:#} {:#}",
        back.get_json("/workload"),
        back.get_json("/config")
    );

    // A reset on one replica is a change like another: start-up everywhere.
    let res = request(replicas.get(0).addr, "POST", "/config/reset", &with_token, None);
    assert_eq!(res.status, 200, "{}", res.body);
    let startup = |v: &Value| v["steady_rps"] == 2.0 && v["jitter"] == 0.2;
    assert!(replicas.all_show("/config", &startup), "{:#}", replicas.answers("/config"));
}

#[test]
fn sighup_on_one_replica_reloads_the_workload_on_all_and_a_text_a_peer_cannot_load_is_only_logged() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let orders = "requests:\n  - {name: list, weight: 1, method: GET, path: /orders}\n";
    let file = TempFile::new("replicated.yaml", orders.as_bytes());
    // Only the first replica has the file; the second runs the built-in workload.
    let mut replicas = Replicas::start(1, &url, &[("INITIAL_MODE", "pause")]);
    let ip = fresh_ips(1).remove(0);
    replicas.ips.push(ip);
    replicas.peers = format!("{},{}:{}", replicas.peers, replicas.ips[1], replicas.port);
    replicas.procs[0].take().unwrap().terminate(Duration::from_secs(10)).expect("stops");
    replicas.procs[0] = Some(replicas.spawn(0, &[("WORKLOAD_FILE", file.path())]));
    replicas.procs.push(Some(replicas.spawn(1, &[])));
    replicas.wait_for_split(2, Duration::from_secs(15));
    assert_eq!(replicas.get(0).get_json("/workload")["mix"], "list=1");
    assert_ne!(replicas.get(1).get_json("/workload")["mix"], "list=1", "nothing replicated before a change");

    let users = "requests:\n  - {name: users, weight: 3, method: GET, path: /users}\n";
    std::fs::write(&file.0, users).unwrap();
    replicas.get(0).signal(libc::SIGHUP);
    let reloaded = |v: &Value| v["mix"] == "users=3" && v["source"] == file.path();
    assert!(replicas.all_show("/workload", &reloaded), "{:#}", replicas.answers("/workload"));

    // A peer's text this replica cannot load (checked where it was put, so
    // only another release's could be): logged, and the workload goes on.
    let mut document = request(replicas.get(1).addr, "GET", "/cluster/state", &[], None).json();
    document["workload"] = json!({"version": {"clock": now_ms() + 1, "replica": "00000000000000ab"},
                                 "value": {"source": "body", "text": "requests: [1, 2"}});
    let res = signed_put(replicas.get(1), SECRET, &document.to_string(), &[]);
    assert_eq!((res.status, res.json()["applied"].clone()), (200, json!(["workload"])), "{}", res.body);
    let logged = replicas.get(1).wait_for_log(
        |l| l["message"].as_str().is_some_and(|m| m.contains("cannot be used on this replica")),
        Duration::from_secs(2),
    );
    assert!(logged.is_some_and(|l| l["level"] == "error"), "{}", replicas.get(1).output());
    assert!(reloaded(&replicas.get(1).get_json("/workload")), "{}", replicas.get(1).get_json("/workload"));
    let mut second = replicas.procs[1].take().unwrap();
    assert!(second.is_running(), "a bad peer text is never fatal");
    // Bounded and checked like user input: refused whole, nothing applied.
    document["workload"]["version"]["clock"] = json!(now_ms() + 1);
    document["workload"]["value"]["source"] = json!("");
    let res = signed_put(&second, SECRET, &document.to_string(), &[]);
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(res.json()["error"].as_str().is_some_and(|e| e.starts_with("workload: source")), "{}", res.body);
    document["config"] = json!({"version": {"clock": now_ms() + 1, "replica": "00000000000000ab"},
                               "value": {"overrides": {"target_url": 1}}});
    document["workload"]["value"]["source"] = json!("body");
    let res = signed_put(&second, SECRET, &document.to_string(), &[]);
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(res.json()["error"].as_str().is_some_and(|e| e.contains("not a runtime setting")), "{}", res.body);
    second.terminate(Duration::from_secs(10)).expect("stops on SIGTERM");
}

#[test]
fn a_sidecar_alone_has_no_cluster_bad_peers_stop_start_up_and_no_secret_means_alone() {
    let target = start_demo_target(&[]);
    let alone = start_sidecar(&target, &[]);
    for path in ["/cluster", "/cluster/member", "/cluster/state"] {
        let res = alone.get(path);
        assert_eq!(res.status, 404, "{path}");
        assert!(res.json()["error"].as_str().unwrap().contains("PEERS"), "{}", res.body);
    }
    assert!(alone.get_json("/status").get("cluster").is_none(), "no cluster view when alone");

    for bad in ["traffic-generator:8089", "dns:traffic-generator", "static:10.0.0.1", "dns:a b:1"] {
        let mut proc = Proc::spawn(&[], &[("PEERS", bad), ("PORT", "0"), ("BIND", "127.0.0.1")]);
        let status = proc.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(2), "PEERS={bad}: {}", proc.output());
        let output = proc.output();
        assert_eq!(output.lines().count(), 1, "one line: {output}");
        assert!(output.contains("PEERS"), "{output}");
    }
    // Replicas must share a secret to prove themselves: one too short to
    // resist guessing stops start-up; without one the replica runs alone.
    let peers = "static:127.0.0.1:9,127.0.0.2:9";
    for env in [vec![("PEERS", peers)], vec![("PEERS", peers), ("CLUSTER_SECRET", "")]] {
        let alone = start_sidecar(&target, &env);
        assert_eq!(alone.get("/cluster").status, 404, "{env:?}: runs alone");
        let warned = alone.wait_for_line("runs alone", Duration::from_secs(5));
        assert!(warned.is_some_and(|l| l.contains("CLUSTER_SECRET")), "{env:?}: {}", alone.output());
    }
    for (env, named) in [
        (vec![("PEERS", peers), ("CLUSTER_SECRET", "too-short")], "CLUSTER_SECRET"),
        (vec![("PEERS", peers), ("CONTROL_TOKEN", "s3cret")], "CLUSTER_SECRET"),
    ] {
        let mut env = env;
        env.extend([("PORT", "0"), ("BIND", "127.0.0.1")]);
        let mut proc = Proc::spawn(&[], &env);
        let status = proc.wait_exit(Duration::from_secs(10)).expect("exits");
        let output = proc.output();
        assert_eq!(status.code(), Some(2), "{env:?}: {output}");
        assert_eq!(output.lines().count(), 1, "one line: {output}");
        assert!(output.contains(named) && !output.contains("too-short") && !output.contains("s3cret"), "{output}");
    }
}

#[test]
fn peers_by_name_are_looked_up_again_and_never_off_the_machine() {
    if !have_tools(&["unshare", "strace", "mount"]) {
        return;
    }
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let ips = fresh_ips(3);
    let port = closed_port();
    let dir = std::env::temp_dir().join(format!("trafficgen-cluster-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts");
    let name = "replicas.trafficgen-test.invalid";
    let write_hosts = |ips: &[String]| {
        // In place: the bind mounts see the same file.
        let lines: String = ips.iter().map(|ip| format!("{ip} {name}\n")).collect();
        std::fs::write(&hosts, format!("127.0.0.1 localhost\n{lines}")).unwrap();
    };
    write_hosts(&ips);
    let nsswitch = dir.join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files\n").unwrap();
    // No name server at all: a lookup that tried one would fail, not leave.
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n").unwrap();
    let peers = format!("dns:{name}:{port}");
    let port_text = port.to_string();
    let mut replicas: Vec<Proc> = Vec::new();
    // strace is the process we hold; the sidecars are its children, ended
    // by their PIDs however the test ends.
    let mut sidecars = Reaper(Vec::new());
    for (i, ip) in ips.iter().enumerate() {
        let trace = dir.join(format!("trace-{i}"));
        let script = format!(
            "mount --bind {} /etc/hosts && mount --bind {} /etc/nsswitch.conf && mount --bind {} /etc/resolv.conf && \
             exec strace -f -qq -e trace=connect,sendto,sendmsg,sendmmsg -o {} \"$@\"",
            hosts.display(),
            nsswitch.display(),
            resolv.display(),
            trace.display()
        );
        let env = sidecar_env(
            &url,
            &[
                ("BIND", ip),
                ("PORT", &port_text),
                ("PEERS", &peers),
                ("STATS_INTERVAL_SECS", "0"),
                ("STEADY_RPS", "9"),
                ("CLUSTER_SECRET", SECRET),
            ],
        );
        let mut proc = start_wrapped(&["unshare", "-m", "sh", "-c", &script, "sh"], &[], &env);
        proc.addr = format!("{ip}:{port}").parse().unwrap();
        let mut pid = 0;
        assert!(eventually(Duration::from_secs(5), || {
            pid = children(proc.pid()).first().copied().unwrap_or(0);
            pid != 0
        }));
        sidecars.0.push(pid);
        replicas.push(proc);
    }
    let split_of = |p: &Proc| p.get_json("/status")["cluster"]["share"]["count"].clone();
    let all_three = eventually(Duration::from_secs(20), || replicas.iter().all(|p| split_of(p) == 3));
    let views: Vec<Value> = replicas.iter().map(|p| p.get_json("/status")["cluster"].clone()).collect();
    assert!(all_three, "{views:#?}");
    assert_eq!(views[0]["peers"], peers.as_str());
    assert_eq!(views[0]["address"], format!("{}:{port}", ips[0]), "found itself among the name's addresses");

    // The third leaves the name (it keeps running): the name is looked up
    // again and the first two split the rate between them.
    write_hosts(&ips[..2]);
    let two = eventually(Duration::from_secs(10), || replicas[..2].iter().all(|p| split_of(p) == 2));
    assert!(two, "{:#?}", replicas.iter().map(|p| p.get_json("/status")["cluster"].clone()).collect::<Vec<_>>());

    // Every connection and datagram of every replica went to loopback.
    for (proc, pid) in replicas.iter_mut().zip(&sidecars.0) {
        let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let _ = proc.wait_exit(Duration::from_secs(10));
    }
    for i in 0..3 {
        let trace = std::fs::read_to_string(dir.join(format!("trace-{i}"))).expect("strace output");
        let contacted: Vec<&str> =
            trace.lines().filter(|l| l.contains("sin_addr") || l.contains("sin6_addr")).collect();
        assert!(contacted.iter().any(|l| l.contains(&ips[(i + 1) % 3])), "replica {i} never asked a peer:\n{trace}");
        let elsewhere: Vec<&&str> = contacted
            .iter()
            .filter(|l| !(l.contains("inet_addr(\"127.") || l.contains("\"::1\"") || l.contains("::ffff:127.")))
            .collect();
        assert!(elsewhere.is_empty(), "replica {i} contacted more than loopback: {elsewhere:#?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Kills processes of ours by PID when dropped (sidecars under strace,
/// which the `Proc` we hold does not end).
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            // SAFETY: a plain system call on a process this test started (gone already is fine).
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

/// Process ids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.flatten().collect::<Vec<_>>());
    tasks
        .unwrap_or_default()
        .iter()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}
