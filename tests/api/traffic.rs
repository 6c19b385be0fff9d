//! Traffic as the target sees it: warm-up, rates per mode, mix, pause.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Observed rate within `tolerance` (fraction) of `expected`, plus one
/// request of slack for the edges of the window.
fn assert_rate(observed: f64, expected: f64, window: Duration, tolerance: f64) {
    let slack = expected * tolerance + 1.0 / window.as_secs_f64();
    assert!((observed - expected).abs() <= slack, "observed {observed:.2} req/s, expected {expected} ± {slack:.2}");
}

#[test]
fn nothing_is_sent_during_warm_up_then_steady_traffic_starts() {
    let _timing = timing_test();
    // A raw listener notes when the first request comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sidecar = Proc::start(&[], &sidecar_env(&url, &[("WARMUP_SECS", "2"), ("STEADY_RPS", "5")]));
    let up = Instant::now();
    let status = sidecar.get_json("/status");
    assert_eq!((status["state"].as_str(), status["mode"].as_str()), (Some("warming_up"), Some("steady")));
    let first = std::thread::spawn(move || {
        let _conn = listener.accept();
        Instant::now()
    });
    let first = first.join().unwrap().duration_since(up);

    let listening =
        sidecar.wait_for_log(|v| v["message"].as_str().is_some_and(|m| m.contains("listening")), Duration::ZERO);
    let started = sidecar
        .wait_for_log(|v| v["message"] == "traffic started in steady mode", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no start line:\n{}", sidecar.output()));
    let warmup = secs_between(&listening.expect("listening line"), &started);
    eprintln!("warm-up: {warmup:.3} s by the log, first request {first:?} after the listening line was read");
    // 2 s, not 1 or 5: by the process's own clock, and as the target saw it.
    assert!((1.95..=2.3).contains(&warmup), "the log says the warm-up took {warmup:.3} s");
    // (Measured from when the test read the listening line, a little late.)
    assert!(
        first >= Duration::from_millis(1700) && first <= Duration::from_millis(3500),
        "first request after {first:?}"
    );
    assert_eq!(started["target"], url);
    assert_eq!((started["level"].as_str(), started["service"].as_str()), (Some("info"), Some("traffic-generator")));
    assert_eq!((started["mode"].as_str(), started["rps"].as_f64()), (Some("steady"), Some(5.0)));
    assert_eq!(sidecar.get_json("/status")["state"], "running");
}

#[test]
fn a_mode_switch_during_warm_up_ends_it_at_once() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("WARMUP_SECS", "60")]);
    let res = sidecar.post("/mode/burst", None);
    assert_eq!(res.status, 200);
    assert_eq!(res.json(), serde_json::json!({"mode": "burst", "rps": 20}));
    assert!(eventually(Duration::from_secs(2), || target_count(&target, None) > 0), "no traffic after the switch");
    assert_eq!(sidecar.get_json("/status")["state"], "running");
}

#[test]
fn each_mode_sends_its_rate_to_the_target() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[]);
    let window = Duration::from_secs(4);
    // Steady first (2/s): over 4 s that is 8 requests, ±1 at the edges.
    sleep(Duration::from_millis(300));
    assert_rate(observed_rate(&target, window), 2.0, window, 0.15);
    for (mode, rps) in [("burst", 20.0), ("overload", 100.0)] {
        let res = sidecar.post(&format!("/mode/{mode}"), None);
        assert_eq!(res.status, 200, "{}", res.body);
        sleep(Duration::from_millis(300));
        let observed = observed_rate(&target, window);
        eprintln!("{mode}: observed {observed:.2} req/s at the target (asked {rps})");
        assert_rate(observed, rps, window, 0.15);
        assert_eq!(sidecar.get_json("/status")["mode"], mode);
    }
    let res = sidecar.post("/mode/custom", Some(r#"{"rps": 250}"#));
    assert_eq!(res.json(), serde_json::json!({"mode": "custom", "rps": 250}));
    sleep(Duration::from_millis(300));
    assert_rate(observed_rate(&target, window), 250.0, window, 0.15);
    let status = sidecar.get_json("/status");
    assert_eq!(status["stats"]["failed"], 0, "{status}");
    assert_eq!(status["stats"]["dropped"], 0, "{status}");
}

#[test]
fn the_mix_is_about_60_25_15_and_reads_hit_existing_orders() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    sidecar.post("/mode/custom", Some(r#"{"rps": 200}"#));
    assert!(eventually(Duration::from_secs(15), || stat(&sidecar, "total") >= 1000));
    pause_and_settle(&sidecar);

    let stats = sidecar.get_json("/status")["stats"].clone();
    let total = stats["total"].as_u64().unwrap() as f64;
    // Each request draws its endpoint at random, so the shares are judged
    // as binomial draws (a fixed ±0.06 over 600 was 3 standard deviations
    // for create_order); over 1 000 a share off by half still fails.
    assert!(total >= 1000.0, "too few requests to judge the mix: {total}");
    for (endpoint, share) in [("create_order", 0.60), ("list_orders", 0.25), ("get_order", 0.15)] {
        let n = stats["by_endpoint"][endpoint]["total"].as_u64().unwrap() as f64;
        assert_binomial_share(&format!("share of {endpoint}"), n, total, share);
        // The target saw the same requests under the same names.
        assert_eq!(target_count(&target, Some(endpoint)) as f64, n, "{endpoint} at the target");
    }
    let reads = target_count(&target, Some("get_order"));
    let misses = parse_metrics(&target.get("/metrics").body)
        .iter()
        .filter(|s| {
            s.name == "demo_target_requests_total" && s.label("route") == "get_order" && s.label("code") == "404"
        })
        .map(|s| s.value)
        .sum::<f64>();
    assert!(reads > 50 && misses == 0.0, "get_order: {reads} reads, {misses} not found");
    assert!(sidecar.get_json("/status")["order_ids_buffered"].as_u64().unwrap() == 50, "ring should be full (50)");
}

#[test]
fn pause_sends_nothing_and_a_slow_rate_still_switches_at_once() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    // 0.1/s: the next send is 10 s away when we switch.
    let sidecar = start_sidecar(&target, &[("STEADY_RPS", "0.1")]);
    assert!(eventually(Duration::from_secs(2), || target_count(&target, None) == 1), "first request at once");

    let before = target_count(&target, None);
    let asked = Instant::now();
    assert_eq!(sidecar.post("/mode/burst", None).status, 200);
    assert!(
        eventually(Duration::from_secs(1), || target_count(&target, None) > before),
        "switch did not land within 1 s"
    );
    eprintln!("mode switch seen at the target after {:?}", asked.elapsed());

    assert_eq!(sidecar.post("/mode/pause", None).json(), serde_json::json!({"mode": "pause", "rps": 0}));
    assert!(eventually(Duration::from_secs(5), || sidecar.get_json("/status")["in_flight"] == 0));
    let paused_at = target_count(&target, None);
    sleep(Duration::from_secs(2));
    assert_eq!(target_count(&target, None), paused_at, "requests reached the target in pause");
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["state"].as_str()), (Some("pause"), Some("paused")));
}

#[test]
fn requests_carry_the_contract_headers() {
    // A raw listener records the first request the sidecar sends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _sidecar = Proc::start(&[], &sidecar_env(&url, &[("MIX", "create_order=1")]));
    listener.set_nonblocking(false).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("}") {
        let n = std::io::Read::read(&mut conn, &mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("post /orders http/1.1\r\n"), "{text}");
    assert!(text.contains(&format!("user-agent: trafficgen/{}\r\n", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("content-type: application/json\r\n"), "{text}");
    let body: serde_json::Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let (p, q) = (body["product_id"].as_u64().unwrap(), body["quantity"].as_u64().unwrap());
    assert!((1..=10).contains(&p) && (1..=5).contains(&q), "{body}");
}

#[test]
fn answers_read_at_the_next_turn_keep_their_own_time() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    // 250 req/s: a request per turn, turns about 4 ms apart. The engine
    // sleeps until the next turn and reads the answer then, stamped with the
    // time it came in (docs/traffic.md).
    let set = sidecar.post("/mode/custom", Some(r#"{"rps": 250}"#));
    assert_eq!(set.status, 200, "{}", set.body);
    sleep(Duration::from_secs(2));
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let under = sum(&samples, "trafficgen_request_duration_seconds_bucket", &[("le", "0.0025")]);
    let all = sum(&samples, "trafficgen_request_duration_seconds_count", &[]);
    assert!(all >= 200.0, "{all} answers in 2 s at 250 req/s");
    // Timed to the read, nearly every answer would take 3-5 ms (the gap to
    // the next turn); the demo target answers well under 2.5 ms.
    assert!(under >= 0.5 * all, "{under} of {all} answers under 2.5 ms");
}
