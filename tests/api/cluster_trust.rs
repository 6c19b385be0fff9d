//! Replicas against an attacker on their network (issue 21): a listener on
//! a vacant address of `PEERS`, a forged version from the future, a
//! peer's job out of bounds. Each replica is the real binary on its own
//! loopback address (see `cluster.rs`); the attacker is this test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Replicas, SECRET, TOKEN, now_ms, post_with_token, signed_put};
use crate::helpers::*;

/// A listener that answers like a replica would, without the secret:
/// its `GET /cluster/member` says it is a running replica with a newer
/// version, its `GET /cluster/state` is a paused plan of that version, a
/// `PUT` is "merged", and each answer carries the request's own signature
/// header back (the best it can do). It keeps every request it gets.
struct Impostor {
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl Impostor {
    fn start(addr: &str) -> Impostor {
        let listener = TcpListener::bind(addr).expect("bind the vacant address");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let Some(request) = read_request(&mut conn) else { continue };
                let answer = impostor_answer(&request);
                seen.lock().unwrap().push(request);
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        Impostor { requests, stop, addr }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// One request, head and body, as text; `None` if it never completes.
fn read_request(conn: &mut TcpStream) -> Option<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&raw).into_owned());
            }
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

fn impostor_answer(request: &str) -> String {
    let version = json!({"clock": now_ms() + 500, "replica": "00000000000000ff"});
    let body = if request.starts_with("GET /cluster/member") {
        json!({"instance": "00000000000000ff", "state": "running", "mode": "pause", "rps": 0,
               "share": {"index": 0, "count": 3}, "versions": {"plan": version}})
    } else if request.starts_with("GET /cluster/state") {
        json!({"plan": {"version": version, "value": {"mode": "pause", "rps": 0, "start_ms": now_ms()}}})
    } else {
        json!({"applied": ["plan"], "versions": {"plan": version}})
    }
    .to_string();
    let echoed = request
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("trafficgen-peer-auth:"))
        .map(|l| format!("{l}\r\n"))
        .unwrap_or_default();
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{echoed}Content-Length: {}\r\n\r\n{body}", body.len())
}

#[test]
fn a_listener_on_a_vacant_peers_address_gets_no_token_no_document_and_no_share() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    // Two replicas of three listed addresses; the control token is their
    // shared secret (no CLUSTER_SECRET), the case where it used to travel.
    let replicas = Replicas::start_listing(2, 3, &url, &[("INITIAL_MODE", "pause"), ("CONTROL_TOKEN", TOKEN)]);
    let impostor = Impostor::start(&format!("{}:{}", replicas.ips[2], replicas.port));

    // Both replicas poll it a few times, and it answers each.
    let polled = eventually(Duration::from_secs(15), || {
        let asks = impostor.requests().iter().filter(|r| r.starts_with("GET /cluster/member")).count();
        asks >= 4
    });
    assert!(polled, "the vacant address was not polled: {:?}", impostor.requests());
    for request in impostor.requests() {
        assert!(!request.contains(TOKEN), "the token reached the listener:\n{request}");
        assert!(!request.to_ascii_lowercase().contains("authorization"), "{request}");
        assert!(request.to_ascii_lowercase().contains("trafficgen-peer-auth: v1 "), "polls are signed:\n{request}");
    }
    replicas.wait_for_split(2, Duration::from_secs(15));
    let res = post_with_token(replicas.get(0), "/mode/custom", Some(r#"{"rps": 40}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    // A poll round or two (every 2 s): time to fetch its document, were it trusted.
    thread::sleep(Duration::from_secs(3));

    // It never got the token, nor anything but polls: no document was sent
    // to it and none fetched from it.
    for request in impostor.requests() {
        assert!(!request.contains(TOKEN), "the token reached the listener:\n{request}");
        assert!(request.starts_with("GET /cluster/member "), "only polls reach an unproven address:\n{request}");
    }
    // It did not pause the cluster and takes no share: the two split 40/s.
    let vacant = impostor.addr.to_string();
    for replica in replicas.running() {
        let status = replica.get_json("/status");
        assert_eq!((status["mode"].as_str(), status["rps"].as_f64()), (Some("custom"), Some(40.0)), "{status:#}");
        let cluster = &status["cluster"];
        assert_eq!(cluster["share"]["count"], 2, "{cluster:#}");
        let entry = cluster["replicas"].as_array().unwrap().iter().find(|r| r["address"] == vacant.as_str()).cloned();
        let entry = entry.unwrap_or_else(|| panic!("{vacant} not in the view: {cluster:#}"));
        assert_eq!(entry["member"], false, "{entry:#}");
        assert!(
            entry["error"].as_str().is_some_and(|e| e.contains("not a replica of this cluster")),
            "the view says why: {entry:#}"
        );
    }
}

#[test]
fn a_forged_version_from_the_future_does_not_hold_the_cluster() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let replicas = Replicas::start(2, &url, &[("INITIAL_MODE", "pause")]);
    replicas.wait_for_split(2, Duration::from_secs(15));

    // A plan version 59.9 s ahead, signed as a peer would (a holder of the
    // secret with a bad clock, or worse), sent to one replica: refused.
    let now = now_ms();
    let forged = json!({"plan": {"version": {"clock": now + 59_900, "replica": "00000000000000ab"},
                                 "value": {"mode": "custom", "rps": 30, "start_ms": now}}});
    let res = signed_put(replicas.get(0), SECRET, &forged.to_string(), &[]);
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(res.json()["error"].as_str().is_some_and(|e| e.contains("ahead")), "{}", res.body);

    // A change made afterwards on the other replica stands on both.
    let res = replicas.get(1).post("/mode/custom", Some(r#"{"rps": 24}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    let both = |rps: f64| replicas.running().all(|p| p.get_json("/status")["rps"] == rps);
    assert!(eventually(Duration::from_secs(3), || both(24.0)), "{:#}", replicas.views());
    // Past a poll and a catch-up: still the later change everywhere.
    thread::sleep(Duration::from_secs(3));
    assert!(both(24.0), "the forged version came back: {:#}", replicas.views());
    let versions: Vec<Value> = replicas.running().map(|p| p.get_json("/cluster/member")["versions"].clone()).collect();
    assert_eq!(versions[0], versions[1]);
    assert!(versions[0]["plan"]["clock"].as_u64().unwrap() < now + 59_900, "{versions:?}");
}

#[test]
fn a_peer_job_is_bounded_as_a_local_post_jobs_and_a_bad_one_changes_nothing() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let replicas = Replicas::start(1, &url, &[("INITIAL_MODE", "pause")]);
    let me = replicas.get(0);
    let with_job = |spec: Value| {
        let mut document = me.get_json("/cluster/state");
        let now = now_ms();
        document["job"] = json!({"version": {"clock": now, "replica": "00000000000000ab"},
            "value": {"running": {"job_id": "job-9-forged", "spec": spec, "seed": 1, "start_ms": now}}});
        document.to_string()
    };
    let spec = |more: Value| {
        let mut spec = json!({"scenario": "normal", "duration_secs": 2, "max_rps": 10, "ramp_up_secs": 0});
        spec.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        spec
    };
    let huge = "x".repeat(1_900_000);
    for (more, field) in [
        (json!({"preset": huge}), "preset"),
        (json!({"preset": "turbo"}), "preset"),
        (json!({"endpoints": [huge]}), "endpoints"),
        (json!({"endpoints": (0..65).map(|i| format!("r{i}")).collect::<Vec<_>>()}), "endpoints"),
        (json!({"duration_secs": 1e9}), "duration_secs"),
    ] {
        let res = signed_put(me, SECRET, &with_job(spec(more)), &[]);
        assert_eq!(res.status, 422, "{field}: {}", &res.body[..res.body.len().min(300)]);
        let error = res.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.starts_with(&format!("job: {field}")), "{error}");
        assert!(res.body.len() < 1024, "the answer quotes at most a little: {} bytes", res.body.len());
    }
    let jobs = me.get_json("/jobs");
    assert_eq!(jobs["jobs"], json!([]), "a refused job changed the history: {jobs}");
    assert!(me.get_json("/status")["job"].is_null());
    assert!(me.get_json("/cluster/state").get("job").is_none(), "a refused job entered the document");

    // Within the bounds, a peer's job is taken and played.
    let res = signed_put(me, SECRET, &with_job(spec(json!({"preset": "gentle"}))), &[]);
    assert_eq!((res.status, res.json()["applied"].clone()), (200, json!(["job"])), "{}", res.body);
    assert!(
        eventually(Duration::from_secs(3), || me.get("/jobs/job-9-forged").status == 200),
        "the job was not played"
    );
}
