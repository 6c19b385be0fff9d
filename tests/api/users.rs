//! Users mode, the closed model: virtual users against the demo target,
//! each sending after its previous answer and a pause.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crate::helpers::*;

/// A workload file of ours, removed on drop.
struct WorkloadFile(PathBuf);

impl WorkloadFile {
    fn new(text: &str) -> WorkloadFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("trafficgen-users-{}-{n}.yaml", std::process::id()));
        std::fs::write(&path, text).expect("write workload");
        WorkloadFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 path")
    }
}

impl Drop for WorkloadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// CPU time (user + system) a process of ours has used, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(')').expect("comm").1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf only reads a constant of the system.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A journey of two requests with a pause of `pause` between them.
fn two_step_journey(pause: &str) -> String {
    format!(
        "journeys:\n  - name: browse\n    weight: 1\n    steps:\n      - {{name: first, method: GET, path: /orders}}\n      - pause: {pause}\n      - {{name: second, method: GET, path: /orders}}\n"
    )
}

fn users(sidecar: &Proc) -> serde_json::Value {
    sidecar.get_json("/status")["users"].clone()
}

fn switch_users(sidecar: &Proc, body: &str) -> serde_json::Value {
    let res = sidecar.post("/mode/users", Some(body));
    assert_eq!(res.status, 200, "{body}: {}", res.body);
    res.json()
}

/// 20 users, a 1 s pause, a target answering in 100 ms: each user's cycle
/// is 1.1 s, so the target sees 20 / 1.1 = 18.2 requests a second. Bounds
/// are generous below (a busy machine only stretches the cycle) and tight
/// above (nothing can make the closed model send faster).
#[test]
fn users_with_a_fixed_pause_send_their_number_over_their_cycle_time() {
    let _timing = timing_test();
    let target = start_demo_target(&["--latency-ms", "100"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("USER_PAUSE", "1s")]);
    let answer = switch_users(&sidecar, r#"{"users": 20}"#);
    assert_eq!(answer, serde_json::json!({"mode": "users", "rps": 0, "model": "closed", "users": 20, "pause": "1s"}));
    assert!(eventually(Duration::from_secs(5), || users(&sidecar)["active"] == 20), "{}", users(&sidecar));
    // Past the first cycles, whose start all 20 users share.
    thread::sleep(Duration::from_secs(3));
    let rate = observed_rate(&target, Duration::from_secs(8));
    eprintln!("20 users, 1 s pause, 100 ms answers: {rate:.2} requests/s at the target (model: 18.18)");
    assert!((12.0..=19.5).contains(&rate), "{rate} requests/s where 20 / 1.1 = 18.2 was expected");
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["model"].as_str()), (Some("users"), Some("closed")), "{status}");
    assert_eq!(status["state"], "running");
    assert_eq!(status["users"]["target"], 20);
    // The users' latency is measured from the send, as the open model's.
    let p50 = status["latency"]["overall"]["from_sent"]["p50"].as_f64().expect("p50");
    assert!((95.0..1000.0).contains(&p50), "p50 {p50} ms for 100 ms answers");
    let metrics = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&metrics, "trafficgen_virtual_users", &[]), 20.0);
    assert_eq!(sum(&metrics, "trafficgen_virtual_users_target", &[]), 20.0);
    // Back to the open model: the users stop.
    assert_eq!(sidecar.post("/mode/steady", None).status, 200);
    assert!(eventually(Duration::from_secs(2), || users(&sidecar)["active"] == 0), "{}", users(&sidecar));
    assert_eq!(sidecar.get_json("/status")["model"], "open");
}

/// Users run journeys to their end, pauses included: 10 users, a journey
/// of two requests 300 ms apart, then a 500 ms pause. Going down to 2,
/// the retired users finish the journey they are in (none is cut off as
/// stopped) and start no new one; going up, the new users start at once.
#[test]
fn users_run_journeys_and_a_change_of_their_number_takes_effect_at_once() {
    let _timing = timing_test();
    let workload = WorkloadFile::new(&two_step_journey("300ms"));
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(
        &target,
        &[("INITIAL_MODE", "pause"), ("USER_PAUSE", "500ms"), ("WORKLOAD_FILE", workload.path())],
    );
    switch_users(&sidecar, r#"{"users": 10}"#);
    assert!(eventually(Duration::from_secs(3), || users(&sidecar)["active"] == 10), "{}", users(&sidecar));
    thread::sleep(Duration::from_secs(3));
    let journeys = sidecar.get_json("/status")["journeys"].clone();
    // A cycle is at least 0.8 s: 10 users in 3 s complete at most ~40.
    let completed = journeys["completed"].as_u64().unwrap();
    assert!((10..=45).contains(&completed), "{completed} journeys completed by 10 users in ~3 s: {journeys}");
    assert!(journeys["active"].as_u64().unwrap() <= 10, "{journeys}");
    // Down to 2: the change shows at once in /status.
    switch_users(&sidecar, r#"{"users": 2}"#);
    let now = users(&sidecar);
    assert_eq!((now["target"].clone(), now["active"].clone()), (2.into(), 2.into()), "{now}");
    // The retired finish their journey (at most 300 ms and two answers away), then stop.
    assert!(
        eventually(Duration::from_secs(5), || {
            let s = sidecar.get_json("/status");
            s["users"]["finishing"] == 0 && s["journeys"]["active"].as_u64() <= Some(2)
        }),
        "{}",
        sidecar.get_json("/status")
    );
    let journeys = sidecar.get_json("/status")["journeys"].clone();
    assert_eq!(journeys["ended_early"]["stopped"], 0, "a retiring user's journey was cut off: {journeys}");
    let (started, completed, active) = (
        journeys["started"].as_u64().unwrap(),
        journeys["completed"].as_u64().unwrap(),
        journeys["active"].as_u64().unwrap(),
    );
    assert_eq!(started, completed + active, "every journey started completed or runs: {journeys}");
    // 2 users: a journey per ~0.8 s each; 4 s of it is at most ~12 more.
    let before = completed;
    thread::sleep(Duration::from_secs(4));
    let after = sidecar.get_json("/status")["journeys"]["completed"].as_u64().unwrap();
    assert!((2..=13).contains(&(after - before)), "{} journeys by 2 users in 4 s", after - before);
    // Up to 30: at once.
    switch_users(&sidecar, r#"{"users": 30}"#);
    let now = users(&sidecar);
    assert_eq!(now["active"], 30, "{now}");
    assert!(
        eventually(Duration::from_secs(3), || sidecar.get_json("/status")["journeys"]["active"].as_u64() > Some(10))
    );
    // 0 users is a pause.
    switch_users(&sidecar, r#"{"users": 0}"#);
    assert_eq!(sidecar.get_json("/status")["state"], "paused");
    assert!(eventually(Duration::from_secs(3), || sidecar.get_json("/status")["in_flight"] == 0));
    let settled = target_count(&target, None);
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(target_count(&target, None), settled, "0 users sent something");
}

/// A ramp adds users evenly: half-way through, about half of them.
#[test]
fn a_ramp_adds_users_in_a_straight_line() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("USER_PAUSE", "1s")]);
    let answer = switch_users(&sidecar, r#"{"users": 40, "ramp_secs": 4}"#);
    assert_eq!(answer["ramp"], serde_json::json!({"from_users": 0, "secs": 4.0}), "{answer}");
    thread::sleep(Duration::from_secs(2));
    let mid = users(&sidecar);
    let active = mid["active"].as_u64().unwrap();
    // 20 at 2 s; a busy machine reads /status late or early by a second.
    assert!((8..=32).contains(&active), "{active} users half-way up a ramp to 40: {mid}");
    assert!(eventually(Duration::from_secs(5), || users(&sidecar)["active"] == 40), "{}", users(&sidecar));
}

/// `MAX_RPS` caps users too: 100 users without a pause would send
/// hundreds a second; under MAX_RPS=20 the target sees at most ~20.
#[test]
fn max_rps_still_caps_requests_in_users_mode() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(
        &target,
        &[
            ("INITIAL_MODE", "pause"),
            ("USER_PAUSE", "0s"),
            ("MAX_RPS", "20"),
            ("BURST_RPS", "20"),
            ("OVERLOAD_RPS", "20"),
            ("MAX_USERS", "100"),
        ],
    );
    switch_users(&sidecar, r#"{"users": 100}"#);
    thread::sleep(Duration::from_secs(2));
    let cpu_before = cpu_secs(sidecar.pid());
    let rate = observed_rate(&target, Duration::from_secs(5));
    let cpu = cpu_secs(sidecar.pid()) - cpu_before;
    eprintln!("100 users under MAX_RPS=20: {rate:.2}/s, {cpu:.2} s of CPU in 5 s");
    // Users waiting for room wait for the cap, not in a busy loop (which
    // took a whole core once): 20 requests a second cost next to nothing.
    assert!(cpu < 2.0, "{cpu:.2} s of CPU in 5 s for 20 requests/s: the engine spins");
    assert!(rate <= 22.0, "{rate} requests/s under MAX_RPS=20");
    assert!(rate >= 10.0, "the cap is a cap, not a brake: only {rate}/s");
    let counts: Vec<u64> = target.get_json("/stats/arrivals")["counts"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    let recent = &counts[counts.len().saturating_sub(50)..];
    let per_second: u64 = recent.windows(10).map(|w| w.iter().sum()).max().unwrap_or(0);
    assert!(per_second <= 26, "{per_second} requests in one second under MAX_RPS=20: {recent:?}");
    // Users wait for room rather than being dropped.
    assert_eq!(users(&sidecar)["active"], 100);
}

/// Bad bodies are refused with the field named, and nothing changes.
#[test]
fn bad_users_bodies_are_refused_and_change_nothing() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("MAX_USERS", "50")]);
    switch_users(&sidecar, r#"{"users": 3}"#);
    let cases: [(&str, u16, &str); 10] = [
        (r#"{"users": -1}"#, 422, "users must be a whole number"),
        (r#"{"users": 2.5}"#, 422, "users must be a whole number"),
        (r#"{"users": 51}"#, 422, "exceeds MAX_USERS (50)"),
        (r#"{"users": 1e300}"#, 422, "exceeds MAX_USERS"),
        (r#"{"users": "NaN"}"#, 422, "users"),
        (r#"{"users": 5, "ramp_secs": -1}"#, 422, "ramp_secs"),
        (r#"{"users": 5, "pause": "3s..1s"}"#, 422, "pause"),
        (r#"{"users": 5, "speed": 2}"#, 422, "unknown field `speed`"),
        (r#"[5]"#, 422, "JSON object"),
        ("", 400, "needs a body"),
    ];
    for (body, status, says) in cases {
        let res = sidecar.post("/mode/users", Some(body));
        assert_eq!(res.status, status, "{body}: {}", res.body);
        let error = res.json()["error"].as_str().map(str::to_string).unwrap_or_default();
        assert!(error.contains(says), "{body}: {error}");
    }
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["users"]["target"].as_u64()), (Some("users"), Some(3)), "{status}");
    let modes = sidecar.get_json("/modes");
    assert_eq!(modes["users"]["max_users"], 50, "{modes}");
    // The running users export as virtual users to every tool (Artillery: the nearest it has).
    let k6 = sidecar.get("/export/k6");
    assert_eq!(k6.status, 200, "{}", k6.body);
    assert!(k6.body.contains("executor: \"constant-vus\",\n      vus: 3,"), "{}", k6.body);
    let locust = sidecar.get("/export/locust");
    assert_eq!(locust.status, 200, "{}", locust.body);
    assert!(locust.body.contains("    wait_time = constant(1)\n"), "{}", locust.body);
    assert!(locust.body.contains("STAGES = [\n    (60, 3, 3),\n]"), "{}", locust.body);
    assert!(locust.body.contains("class TrafficShape(LoadTestShape):"), "{}", locust.body);
    let artillery = sidecar.get("/export/artillery");
    assert_eq!(artillery.status, 200, "{}", artillery.body);
    assert!(artillery.body.replace("\n# ", " ").contains("Artillery has no closed model"), "{}", artillery.body);
    assert!(artillery.body.contains("arrivalCount: 3\n"), "{}", artillery.body);
    assert!(artillery.body.contains("      - loop:\n") && artillery.body.contains("        count: "));
    // A rate given in the query exports a rate, as ever.
    let rate = sidecar.get("/export/locust?rps=5");
    assert_eq!(rate.status, 200, "{}", rate.body);
    assert!(rate.body.contains("def arrival_time(n):") && !rate.body.contains("wait_time = constant(1)"));
}

/// MAX_USERS and USER_PAUSE are checked at start: one line, exit 2.
#[test]
fn bad_user_settings_stop_start_up() {
    for (key, value) in [("MAX_USERS", "0"), ("MAX_USERS", "many"), ("USER_PAUSE", "3s..1s"), ("USER_PAUSE", "2h")] {
        let mut proc = Proc::spawn(&[], &sidecar_env("http://127.0.0.1:9", &[(key, value)]));
        let status = proc.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(2), "{key}={value}: {}", proc.output());
        assert!(proc.output().contains(key), "{key}={value}: {}", proc.output());
    }
}

/// Replicas split users as they split a rate, so that the parts add up to
/// the total (10 over 3: 4 + 3 + 3), and split them again when one goes
/// (5 + 5).
#[test]
fn replicas_split_users_so_their_sum_is_the_total_and_again_when_one_leaves() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let mut replicas = crate::cluster::Replicas::start(3, &url, &[("INITIAL_MODE", "pause"), ("USER_PAUSE", "1s")]);
    replicas.wait_for_split(3, Duration::from_secs(15));
    let res = replicas.get(1).post("/mode/users", Some(r#"{"users": 10}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    let parts = |replicas: &crate::cluster::Replicas| {
        let mut parts: Vec<u64> =
            replicas.running().map(|p| p.get_json("/status")["users"]["active"].as_u64().unwrap_or(0)).collect();
        parts.sort_unstable();
        parts
    };
    assert!(eventually(Duration::from_secs(5), || parts(&replicas) == [3, 3, 4]), "{:?}", parts(&replicas));
    for p in replicas.running() {
        assert_eq!(p.get_json("/status")["users"]["target"], 10, "every replica knows the total");
    }
    let mut gone = replicas.procs[2].take().expect("replica 2");
    gone.signal(libc::SIGKILL);
    gone.wait_exit(Duration::from_secs(5)).expect("killed replica exits");
    replicas.wait_for_split(2, Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(5), || parts(&replicas) == [5, 5]), "{:?}", parts(&replicas));
}

/// A job of users: the scenario's shape in users (here 10 users, no
/// ramp, for 4 s), then the mode before comes back and the users stop.
#[test]
fn a_users_job_runs_its_users_for_its_duration_then_the_mode_before_comes_back() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("USER_PAUSE", "200ms"), ("MAX_USERS", "50")]);
    let res = sidecar.post("/jobs", Some(r#"{"scenario": "normal", "duration_secs": 4, "users": 10}"#));
    assert_eq!(res.status, 201, "{}", res.body);
    let job = res.json();
    assert_eq!((job["users"].as_u64(), job["max_rps"].as_f64()), (Some(10), Some(0.0)), "{job}");
    assert!(eventually(Duration::from_secs(3), || users(&sidecar)["active"] == 10), "{}", users(&sidecar));
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["model"].as_str()), (Some("users"), Some("closed")), "{status}");
    // Active users have sent (a first answer may still be on its way when they count as active).
    assert!(eventually(Duration::from_secs(2), || target_count(&target, None) > 0), "the users sent nothing");
    // Ended by its duration: back to pause, no users.
    assert!(
        eventually(Duration::from_secs(8), || sidecar.get_json("/status")["mode"] == "pause"),
        "{}",
        sidecar.get_json("/status")
    );
    assert_eq!(users(&sidecar)["active"], 0);
    let id = job["job_id"].as_str().expect("job_id");
    assert_eq!(sidecar.get_json(&format!("/jobs/{id}"))["status"], "completed");
    // Its story as scripts: 10 users for 4 s, each pausing USER_PAUSE.
    let k6 = sidecar.get(&format!("/export/k6?job={id}"));
    assert_eq!(k6.status, 200, "{}", k6.body);
    assert!(k6.body.contains("executor: \"constant-vus\",\n      vus: 10,\n      duration: \"4s\""), "{}", k6.body);
    let locust = sidecar.get(&format!("/export/locust?job={id}"));
    assert_eq!(locust.status, 200, "{}", locust.body);
    assert!(
        locust.body.contains("wait_time = constant(0.2)") && locust.body.contains("(4, 10, 10)"),
        "{}",
        locust.body
    );
    // Over MAX_USERS: refused, naming the field.
    let res = sidecar.post("/jobs", Some(r#"{"scenario": "normal", "duration_secs": 4, "users": 51}"#));
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(res.body.contains("users") && res.body.contains("MAX_USERS"), "{}", res.body);
}

/// The closed model slows down with the target: 10 users with a 500 ms
/// pause send ~19/s to a target answering in 10 ms, but only ~10/s to one
/// answering in 500 ms (each cycle doubles), where the open model would
/// keep its rate.
#[test]
fn users_slow_down_with_a_slow_target_as_the_closed_model_says() {
    let _timing = timing_test();
    let rate_against = |latency_ms: &str| {
        let target = start_demo_target(&["--latency-ms", latency_ms]);
        let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("USER_PAUSE", "500ms")]);
        switch_users(&sidecar, r#"{"users": 10}"#);
        thread::sleep(Duration::from_secs(2));
        observed_rate(&target, Duration::from_secs(5))
    };
    let fast = rate_against("10");
    let slow = rate_against("500");
    eprintln!("10 users, 500 ms pause: {fast:.2}/s at 10 ms answers (model 19.6), {slow:.2}/s at 500 ms (model 10)");
    assert!((12.0..=20.5).contains(&fast), "{fast}/s against a 10 ms target, model 19.6");
    assert!((6.0..=10.8).contains(&slow), "{slow}/s against a 500 ms target, model 10");
    assert!(slow < fast * 0.75, "the users did not slow down with the target: {fast} then {slow}");
}

/// A switch's ramp and users' pause go to every replica with the switch:
/// the replica not asked plays the same pause, and ramps its share along
/// the same line instead of jumping to it (or not switching at all).
#[test]
fn a_switch_brings_its_pause_and_its_ramp_to_every_replica() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let replicas = crate::cluster::Replicas::start(2, &url, &[("INITIAL_MODE", "pause"), ("USER_PAUSE", "1s")]);
    replicas.wait_for_split(2, Duration::from_secs(15));
    let other = replicas.get(1);
    let res = replicas.get(0).post("/mode/users", Some(r#"{"users": 4, "pause": "300ms..400ms"}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(
        eventually(Duration::from_secs(5), || users(other)["pause"] == "0.3s..0.4s" && users(other)["active"] == 2),
        "{}",
        users(other)
    );
    // A ramp from 0 to 40/s over 60 s: the other replica's share rises
    // from 0 towards 20/s, and is far below it in the first seconds.
    let res = replicas.get(0).post("/mode/custom", Some(r#"{"rps": 40, "ramp_secs": 60}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(eventually(Duration::from_secs(5), || other.get_json("/status")["mode"] == "custom"));
    let status = other.get_json("/status");
    let now = status["target_rps"].as_f64().unwrap_or(-1.0);
    assert_eq!(status["rps"].as_f64(), Some(40.0), "{status}");
    assert!((0.0..5.0).contains(&now), "the other replica ramps its share instead of jumping to 20/s: {status}");
    // A pause outside users mode is not sent; a plain switch ends the ramp.
    let res = replicas.get(0).post("/mode/custom", Some(r#"{"rps": 40}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(
        eventually(Duration::from_secs(5), || other.get_json("/status")["target_rps"].as_f64() == Some(20.0)),
        "{}",
        other.get_json("/status")
    );
}
