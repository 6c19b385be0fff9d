//! Attacks from outside (issue 16): each test reproduces one and checks the
//! sidecar survives it with a clear answer, bounded resources, and nothing
//! changed that should not be.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Runs the sidecar with `env` to its exit, bounded: if it wrongly starts,
/// it is killed and the test fails instead of hanging.
fn run_to_exit(program: &[&str], env: &[(&str, &str)]) -> Output {
    let (exe, args) = program.split_first().expect("a program");
    let mut command = Command::new(exe);
    command.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command.env("PORT", "0").env("BIND", "127.0.0.1").env("TARGET_URL", "http://127.0.0.1:9");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run trafficgen");
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!("{program:?} {env:?} did not exit:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    child.wait_with_output().expect("output")
}

/// Asserts `out` is a start-up refusal: exit 2, one line on stderr naming each of `words`.
fn assert_refused(out: &Output, words: &[&str], case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{case}: not one line: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "{case}: {stderr:?} does not name {word}");
    }
}

// --- item 1: a tiny rate must not reach the clock ---------------------------

#[test]
fn a_tiny_custom_rate_is_refused_and_the_slowest_allowed_one_keeps_the_process_up() {
    let target = start_demo_target(&[]);
    let mut sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    for tiny in ["1e-20", "1e-19", "5e-324", "0.00001"] {
        let res = sidecar.post("/mode/custom", Some(&format!(r#"{{"rps": {tiny}}}"#)));
        assert_eq!(res.status, 422, "rps {tiny}: {}", res.body);
        assert!(res.json()["error"].as_str().unwrap().contains("below one request a day"), "{}", res.body);
        assert_eq!(sidecar.get_json("/status")["mode"], "pause", "rps {tiny} changed the mode");
    }
    let slowest = sidecar.get_json("/modes")["custom"]["min_positive_rps"].as_f64();
    assert!(slowest.is_some_and(|r| (r * 86_400.0 - 1.0).abs() < 1e-9), "/modes: slowest rate {slowest:?}");
    // One a day: the first request leaves at once, the next is a day away,
    // and the engine must hold that time without overflowing.
    let res = sidecar.post("/mode/custom", Some(r#"{"rps": 0.0000116}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(eventually(Duration::from_secs(5), || target_count(&target, None) == 1), "the first request");
    sleep(Duration::from_millis(500));
    assert!(sidecar.is_running(), "sidecar died:\n{}", sidecar.output());
    assert_eq!(sidecar.get_json("/status")["state"], "running");
    assert_eq!(target_count(&target, None), 1, "only one request in the first day");
}

#[test]
fn a_tiny_rate_setting_stops_start_up_with_one_line() {
    for (setting, value) in [("STEADY_RPS", "1e-20"), ("BURST_RPS", "1e-19"), ("MAX_RPS", "1e-300")] {
        let out = run_to_exit(&[BIN], &[(setting, value)]);
        assert_refused(&out, &[setting], &format!("{setting}={value}"));
    }
}

// --- items 2 and 3: a flood of slow control connections ---------------------

/// `n` connections to `addr`, each sending a `POST /mode/custom` head with
/// `Content-Length: 4000` and then one body byte a second (slowhttptest's
/// slow-body attack). Every socket is closed on drop.
struct SlowBodyFlood {
    opened: usize,
    stop: Arc<AtomicBool>,
    trickler: Option<thread::JoinHandle<()>>,
}

impl SlowBodyFlood {
    fn start(addr: SocketAddr, n: usize) -> SlowBodyFlood {
        let head = format!(
            "POST /mode/custom HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{{"
        );
        let mut streams = Vec::with_capacity(n);
        // Bounded: a server that stops accepting leaves connects hanging.
        let give_up = Instant::now() + Duration::from_secs(10);
        while streams.len() < n && Instant::now() < give_up {
            let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else { continue };
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = stream.write_all(head.as_bytes());
            streams.push(stream);
        }
        eprintln!("slow-body flood: {} of {n} connections opened", streams.len());
        assert!(streams.len() >= n / 4, "could open only {} of {n} connections", streams.len());
        let opened = streams.len();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let trickler = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for stream in &mut streams {
                    let _ = stream.write(b" ");
                }
                sleep(Duration::from_secs(1));
            }
        });
        SlowBodyFlood { opened, stop, trickler: Some(trickler) }
    }

    /// Waits (up to 15 s) until the sidecar has taken in every connection
    /// of the flood, so what follows measures the flood held, not the
    /// queue of connections still waiting to be accepted. (A sidecar
    /// without the count goes on at once.)
    fn wait_accepted(&self, sidecar: &Proc) {
        // A sidecar that cannot even answer goes on too: the probes say so.
        let accepted = || {
            let Some(status) = try_get_json(sidecar.addr, "/status") else { return true };
            status["control_connections"]["accepted"].as_u64().is_none_or(|n| n as usize >= self.opened)
        };
        assert!(eventually(Duration::from_secs(15), accepted), "the flood was not taken in:\n{}", tail(sidecar));
    }
}

impl Drop for SlowBodyFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.trickler.take() {
            let _ = t.join();
        }
    }
}

/// `GET path` as JSON, or `None` if no answer came within 2 s.
fn try_get_json(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer);
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// How long a fresh client waits for `/health`, or `None` if it got no
/// healthy answer within `limit`.
fn health_latency(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, limit).ok()?;
    stream.set_read_timeout(Some(limit.saturating_sub(t0.elapsed()).max(Duration::from_millis(1)))).ok()?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let healthy = answer.starts_with(b"HTTP/1.1 200") && String::from_utf8_lossy(&answer).contains("healthy");
    (healthy && t0.elapsed() <= limit).then(|| t0.elapsed())
}

/// Asks `/health` from fresh connections for `secs`; returns the latencies,
/// failing the test on any unanswered probe.
fn probe_health(sidecar: &Proc, secs: u64) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        // Generous: a healthy sidecar answers in a millisecond or two; the
        // old one did not answer at all.
        let latency = health_latency(sidecar.addr, Duration::from_secs(2));
        assert!(latency.is_some(), "/health went unanswered during the flood:\n{}", tail(sidecar));
        latencies.extend(latency);
        sleep(Duration::from_millis(50));
    }
    latencies
}

fn percentile(latencies: &mut [Duration], q: f64) -> Duration {
    latencies.sort();
    latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]
}

fn tail(proc: &Proc) -> String {
    let lines = proc.log_lines();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn a_slow_body_flood_is_held_to_the_connection_cap_and_its_memory_stays_bounded() {
    // 3 000 connections: rate and timing tests wait until it is over.
    let _heavy = heavy_test();
    raise_own_open_file_limit();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("CONTROL_MAX_CONNECTIONS", "128")]);
    sleep(Duration::from_millis(300));
    let (rss_start, fds_start) = (rss_kib(sidecar.pid()), open_fds(sidecar.pid()));
    let flood = SlowBodyFlood::start(sidecar.addr, 3000);
    flood.wait_accepted(&sidecar);
    let mut latencies = probe_health(&sidecar, 4);
    let (rss_during, fds_during) = (rss_kib(sidecar.pid()), open_fds(sidecar.pid()));
    let status = sidecar.get_json("/status");
    let connections = &status["control_connections"];
    eprintln!(
        "3000 slow bodies: RSS {rss_start} -> {rss_during} KiB, descriptors {fds_start} -> {fds_during}, \
         /health p50 {:?} p99 {:?}, {connections}",
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99)
    );
    assert!(fds_during <= fds_start + 128 + 4, "descriptors {fds_start} -> {fds_during}");
    // ~20 KiB a held connection: 3000 held (before) were ~60 MiB; 128 are a few.
    assert!(rss_during < rss_start + 16 * 1024, "RSS {rss_start} -> {rss_during} KiB");
    assert_eq!(status["mode"], "pause", "a slow body changed the mode");
    assert!(connections["open"].as_u64().is_some_and(|n| n <= 128), "{connections}");
    assert!(connections["evicted"].as_u64().is_some_and(|n| n >= 2500), "the stalest make room: {connections}");
    drop(flood);
    // Gone, the flood leaves nothing open and no memory growing (the by-hand
    // run with 15 000 measures how much comes back; here the margin must
    // hold on a busy machine).
    assert!(
        eventually(Duration::from_secs(5), || sidecar.get_json("/status")["control_connections"]["open"] == 1),
        "connections left open"
    );
    let settled = eventually(Duration::from_secs(5), || rss_kib(sidecar.pid()) < rss_start + 8 * 1024);
    let rss_after = rss_kib(sidecar.pid());
    eprintln!("after the flood: RSS {rss_after} KiB");
    assert!(settled, "RSS {rss_start} KiB at start, {rss_after} KiB after the flood");
}

#[test]
fn under_a_1024_descriptor_limit_a_connection_flood_leaves_the_engine_and_health_alone() {
    raise_own_open_file_limit();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let env = sidecar_env(&url, &[("INITIAL_MODE", "overload")]);
    let sidecar = start_wrapped(&["prlimit", "--nofile=1024:1024", "--"], &[], &env);
    assert!(eventually(Duration::from_secs(5), || target_count(&target, None) > 50), "no traffic");
    let before = target_count(&target, None);
    let t0 = Instant::now();
    let flood = SlowBodyFlood::start(sidecar.addr, 3000);
    flood.wait_accepted(&sidecar);
    let mut latencies = probe_health(&sidecar, 4);
    let rate = (target_count(&target, None) - before) as f64 / t0.elapsed().as_secs_f64();
    drop(flood);
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let errors = sum(&samples, "trafficgen_request_errors_total", &[]);
    eprintln!(
        "3000 connections at 1024 descriptors: engine {rate:.1} req/s, {errors} request errors, \
         /health p50 {:?} p99 {:?}",
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99)
    );
    assert_eq!(errors, 0.0, "the engine lost connections to the flood:\n{}", tail(&sidecar));
    assert!((70.0..=130.0).contains(&rate), "engine rate {rate:.1}/s during the flood, asked 100/s");
    let limits = sidecar.get_json("/status")["limits"].clone();
    assert_eq!(limits["open_files"], 1024, "{limits}");
}

#[test]
fn a_max_in_flight_that_cannot_fit_the_descriptor_limit_is_refused_naming_both() {
    let prlimit = ["prlimit", "--nofile=1024:1024", "--", BIN];
    // Memory for that many is there: the descriptors are what is short.
    let budget = ("MEMORY_BUDGET_MB", "65536");
    let out = run_to_exit(&prlimit, &[("MAX_IN_FLIGHT", "2000"), budget]);
    assert_refused(&out, &["MAX_IN_FLIGHT", "2000", "1024", "at most 702"], "MAX_IN_FLIGHT=2000 at 1024");
    let out = run_to_exit(&prlimit, &[("MAX_IN_FLIGHT", "100000"), budget]);
    assert_refused(&out, &["MAX_IN_FLIGHT", "100000", "1024"], "MAX_IN_FLIGHT=100000 at 1024");
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_one_and_reported() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let env = sidecar_env(&url, &[("INITIAL_MODE", "pause"), ("MAX_IN_FLIGHT", "1000"), ("MEMORY_BUDGET_MB", "1024")]);
    // 1000 in flight does not fit a soft limit of 256, but fits the hard 4096.
    let sidecar = start_wrapped(&["prlimit", "--nofile=256:4096", "--"], &[], &env);
    let limits = sidecar.get_json("/status")["limits"].clone();
    assert_eq!(limits["open_files"], 4096, "{limits}");
    assert_eq!(limits["open_files_raised_from"], 256, "{limits}");
    assert_eq!(limits["reserved_descriptors"]["engine"], 1000, "{limits}");
    assert_eq!(limits["control_max_connections"], 256, "{limits}");
}

// --- item 4: DNS rebinding ----------------------------------------------------

#[test]
fn the_origin_guard_holds_against_dns_rebinding_and_checks_every_origin_header() {
    let target = start_demo_target(&[]);
    let sidecar =
        start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("ALLOWED_ORIGINS", "http://panel.example:8089")]);
    let port = sidecar.addr.port();
    let refused: &[&[(&str, &str)]] = &[
        // A rebinding page: its Host and Origin agree, both the attacker's.
        &[("Host", "evil.example:8089"), ("Origin", "http://evil.example:8089")],
        &[("Origin", "http://evil.example")],
        // An allowed origin first does not let a second one through.
        &[("Origin", "http://localhost:8089"), ("Origin", "http://evil.example")],
        &[("Origin", "http://panel.example:8089"), ("Origin", "null")],
        &[("Origin", "http://localhost.evil.example")],
    ];
    for headers in refused {
        let raw = raw_post("/mode/burst", headers, port);
        let res = raw_request(sidecar.addr, raw.as_bytes());
        assert_eq!(res.status, 403, "{headers:?}: {}", res.body);
        assert!(res.json()["error"].as_str().unwrap().contains("cross-origin"), "{}", res.body);
        assert_eq!(sidecar.get_json("/status")["mode"], "pause", "{headers:?} changed the mode");
    }
    // The control panel (served at / later) from localhost, and an allowed origin.
    let own = format!("http://localhost:{port}");
    let host = format!("localhost:{port}");
    let allowed: &[(&str, &[(&str, &str)])] = &[
        ("burst", &[("Host", &host), ("Origin", &own)]),
        ("overload", &[("Origin", "http://panel.example:8089")]),
        ("steady", &[("Origin", "http://127.0.0.1:3000"), ("Origin", "http://[::1]:8089")]),
    ];
    for (mode, headers) in allowed {
        let raw = raw_post(&format!("/mode/{mode}"), headers, port);
        let res = raw_request(sidecar.addr, raw.as_bytes());
        assert_eq!(res.status, 200, "{headers:?}: {}", res.body);
        assert_eq!(sidecar.get_json("/status")["mode"], *mode);
    }
}

/// A body-less POST with exactly these headers (a default `Host` unless given).
fn raw_post(path: &str, headers: &[(&str, &str)], port: u16) -> String {
    let mut raw = format!("POST {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        raw.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw + "\r\n"
}

// --- item 5: signals ------------------------------------------------------------

/// A sidecar with ~`stuck` requests stuck at a target that never answers.
fn sidecar_with_stuck_requests(target: &crate::peers::FakeTarget, grace: &str) -> Proc {
    let url = target.url();
    let env = sidecar_env(
        &url,
        &[("INITIAL_MODE", "pause"), ("SHUTDOWN_GRACE_SECS", grace), ("REQUEST_TIMEOUT_MS", "60000")],
    );
    let sidecar = Proc::start(&[], &env);
    sidecar.post("/mode/custom", Some(r#"{"rps": 300}"#));
    assert!(
        eventually(Duration::from_secs(5), || sidecar.get_json("/status")["in_flight"].as_u64().unwrap() >= 200),
        "requests did not pile up"
    );
    sidecar
}

fn stopped_line(sidecar: &Proc) -> serde_json::Value {
    sidecar
        .wait_for_log(|v| v["message"] == "stopped", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no stopped line:\n{}", tail(sidecar)))
}

#[test]
fn a_second_stop_signal_ends_the_drain_at_once_and_counts_what_it_abandons() {
    let target = crate::peers::FakeTarget::start(crate::peers::Behaviour::Hang);
    for (first, second) in
        [(libc::SIGTERM, libc::SIGTERM), (libc::SIGINT, libc::SIGTERM), (libc::SIGTERM, libc::SIGINT)]
    {
        let mut sidecar = sidecar_with_stuck_requests(&target, "30");
        sidecar.signal(first);
        assert!(
            sidecar
                .wait_for_log(
                    |v| v["message"].as_str().is_some_and(|m| m.starts_with("shutting down")),
                    Duration::from_secs(2)
                )
                .is_some(),
            "first signal not taken"
        );
        sleep(Duration::from_millis(500));
        assert!(sidecar.is_running(), "the first signal must drain, not exit");
        let in_flight = sidecar.get_json("/status")["in_flight"].as_u64().unwrap();
        let asked = Instant::now();
        sidecar.signal(second);
        let status = sidecar
            .wait_exit(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("{first} then {second}: still draining (grace 30 s):\n{}", tail(&sidecar)));
        let took = asked.elapsed();
        assert!(status.success(), "{first} {second}: exit {status:?}");
        let stopped = stopped_line(&sidecar);
        let abandoned = stopped["abandoned"].as_u64().unwrap_or_else(|| panic!("no abandoned count: {stopped}"));
        assert!(abandoned + 10 >= in_flight && abandoned > 0, "abandoned {abandoned}, {in_flight} were in flight");
        eprintln!("signal {first} then {second}: exited {took:?} after the second with {abandoned} abandoned");
    }
}

#[test]
fn requests_left_when_the_grace_period_ends_are_counted_as_abandoned() {
    let target = crate::peers::FakeTarget::start(crate::peers::Behaviour::Hang);
    let mut sidecar = sidecar_with_stuck_requests(&target, "1");
    sidecar.signal(libc::SIGTERM);
    assert!(sidecar.wait_exit(Duration::from_secs(5)).is_some_and(|s| s.success()), "{}", tail(&sidecar));
    let stopped = stopped_line(&sidecar);
    assert!(stopped["abandoned"].as_u64().is_some_and(|n| n >= 200), "{stopped}");
    assert_eq!(stopped["total"], 0, "abandoned requests are not answers: {stopped}");
}

#[test]
fn sighup_is_a_reload_that_keeps_the_sidecar_running() {
    let target = start_demo_target(&[]);
    let mut sidecar = start_sidecar(&target, &[("INITIAL_MODE", "burst")]);
    for _ in 0..2 {
        sidecar.signal(libc::SIGHUP);
        let reloaded = |v: &serde_json::Value| v["message"].as_str().is_some_and(|m| m.contains("nothing to reload"));
        assert!(sidecar.wait_for_log(reloaded, Duration::from_secs(2)).is_some(), "{}", tail(&sidecar));
    }
    sleep(Duration::from_millis(200));
    assert!(sidecar.is_running(), "SIGHUP ended the sidecar");
    assert_eq!(sidecar.get_json("/status")["mode"], "burst");
    let sent = target_count(&target, None);
    assert!(eventually(Duration::from_secs(3), || target_count(&target, None) > sent + 5), "traffic stopped");
    sidecar.signal(libc::SIGTERM);
    assert!(sidecar.wait_exit(Duration::from_secs(5)).is_some_and(|s| s.success()));
}

// --- item 8: smaller holes ----------------------------------------------------

#[test]
fn a_port_in_use_or_an_address_not_on_this_machine_exits_2_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run_to_exit(&[BIN], &[("PORT", &port)]);
    assert_refused(&out, &["cannot listen on", &port, "PORT/BIND"], "port in use");
    // TEST-NET-1 is on no machine; binding fails locally, nothing is sent.
    let out = run_to_exit(&[BIN], &[("BIND", "192.0.2.1")]);
    assert_refused(&out, &["cannot listen on 192.0.2.1"], "address not here");
    let out = run_to_exit(&[BIN, "demo-target", "--port", &port, "--bind", "127.0.0.1"], &[]);
    assert_refused(&out, &["cannot listen on"], "demo target, port in use");
}

#[test]
fn malformed_http_gets_the_documented_json_error_and_changes_nothing() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    let cases: &[(&str, u16, &str)] = &[
        // curl -0 -X POST :8089/mode/burst
        (
            "POST /mode/burst HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
            400,
            "Content-Length",
        ),
        ("POST /mode/burst HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, "Host"),
        (
            "POST /mode/burst HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "malformed",
        ),
    ];
    for (raw, status, words) in cases {
        let res = raw_request(sidecar.addr, raw.as_bytes());
        assert_eq!(res.status, *status, "{raw:?}");
        assert!(res.headers.get("content-type").is_some_and(|c| c.contains("application/json")), "{raw:?}: {res:?}");
        let error = res.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(words), "{raw:?}: {error:?}");
        assert_eq!(sidecar.get_json("/status")["mode"], "pause");
    }
}

#[test]
fn a_slow_body_or_an_upgrade_that_holds_its_handler_is_cut_off_with_a_json_408() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("CONTROL_REQUEST_TIMEOUT_MS", "500")]);
    let heads = [
        "POST /mode/custom HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        "POST /mode/custom HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n{",
    ];
    for head in heads {
        let t0 = Instant::now();
        let mut stream = TcpStream::connect(sidecar.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        // The server answers and closes; the client never sends the rest.
        let _ = stream.read_to_end(&mut answer);
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(4), "{head:?}: held for {took:?}");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{head:?}: {text:?}");
        assert!(text.contains("did not arrive within"), "{head:?}: {text:?}");
    }
    assert_eq!(sidecar.get_json("/status")["mode"], "pause");
}

#[test]
fn a_token_file_larger_than_4_kib_is_refused() {
    let dir = std::env::temp_dir().join(format!("trafficgen-harden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, vec![b'a'; 10 * 1024 * 1024]).unwrap();
    let path = file.to_str().unwrap();
    let out = run_to_exit(&[BIN], &[("CONTROL_TOKEN_FILE", path)]);
    assert_refused(&out, &["CONTROL_TOKEN_FILE", "larger than 4096 bytes"], "10 MB token file");
    std::fs::remove_dir_all(&dir).unwrap();
}
