//! Faults at the target cost failures and drops, never the process, and
//! traffic recovers by itself when the fault ends.

use std::thread::sleep;
use std::time::Duration;

use crate::helpers::*;
use crate::peers::{Behaviour, FakeTarget, answer};

/// Traffic at `target` is back near `rps` (measured over 2 s) within `within`.
fn recovers(target: &Proc, rps: f64, within: Duration) -> bool {
    eventually(within, || (observed_rate(target, Duration::from_secs(2)) - rps).abs() <= rps * 0.2)
}

#[test]
fn a_closed_port_counts_connect_failures_logs_one_line_per_5_s_and_the_sidecar_stays_up() {
    let _timing = timing_test();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let mut sidecar = Proc::start(&[], &sidecar_env(&url, &[("INITIAL_MODE", "overload")]));
    assert!(eventually(Duration::from_secs(5), || stat(&sidecar, "failed") >= 100), "{}", sidecar.output());
    assert!(sidecar.is_running(), "sidecar exited:\n{}", sidecar.output());
    assert_eq!(sidecar.get_json("/health")["status"], "healthy");
    assert_eq!(stat(&sidecar, "successful"), 0);
    // The schedule goes on: failures keep coming at about the rate.
    let failed = stat(&sidecar, "failed");
    sleep(Duration::from_secs(1));
    let later = stat(&sidecar, "failed");
    assert!((60..=140).contains(&(later - failed)), "{} failures in 1 s at 100/s", later - failed);

    // One failure line per 5 s; the next one counts the failures not logged.
    let is_failure = |v: &serde_json::Value| v["message"] == "request failed";
    let lines = sidecar.wait_for_logs(2, is_failure, Duration::from_secs(10));
    assert_eq!(lines.len(), 2, "failure lines:\n{}", sidecar.output());
    pause_and_settle(&sidecar);
    for line in &lines {
        assert_eq!((line["level"].as_str(), line["kind"].as_str()), (Some("warn"), Some("connect")), "{line}");
        assert!(
            ["create_order", "list_orders", "get_order"].contains(&line["endpoint"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(line["error"].as_str().is_some_and(|e| !e.is_empty()), "{line}");
    }
    assert_eq!(lines[0]["suppressed"], 0, "nothing to count before the first line");
    // 100/s for the 5 s between the two lines: about 500 not logged.
    let suppressed = lines[1]["suppressed"].as_u64().expect("suppressed is a count");
    assert!((400..=600).contains(&suppressed), "second line counts {suppressed} suppressed failures");
    let failed = stat(&sidecar, "failed");
    let logged = sidecar.logs_matching(is_failure).len() as u64;
    assert!(logged + suppressed <= failed, "{logged} lines + {suppressed} suppressed > {failed} failures");

    // Every failure is a connect error, counted under code "error".
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "connect")]) as u64, failed);
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[]) as u64, failed);
    assert_eq!(sum(&samples, "trafficgen_requests_total", &[("code", "error")]) as u64, failed);
}

#[test]
fn a_target_that_never_answers_fills_the_in_flight_bound_and_drops_the_excess() {
    let target = FakeTarget::start(Behaviour::Hang);
    let extra = [("INITIAL_MODE", "overload"), ("MAX_IN_FLIGHT", "20"), ("REQUEST_TIMEOUT_MS", "500")];
    let mut sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    // 100/s, each held 500 ms: 50 would be open, so the bound of 20 is full
    // (but for a moment after a timeout frees a slot) and both say so.
    let full = || {
        let samples = parse_metrics(&sidecar.get("/metrics").body);
        let gauge = sum(&samples, "trafficgen_in_flight_requests", &[]);
        let status = sidecar.get_json("/status")["in_flight"].as_u64();
        assert!(gauge <= 20.0 && status <= Some(20), "in-flight bound exceeded: {gauge}, {status:?}");
        gauge == 20.0 && status == Some(20)
    };
    assert!(eventually(Duration::from_secs(3), full), "in flight never reached the bound of 20");
    // ~40/s time out, ~60/s are dropped.
    let both = || stat(&sidecar, "failed") >= 60 && stat(&sidecar, "dropped") >= 100;
    assert!(eventually(Duration::from_secs(6), both), "timeouts and drops: {}", sidecar.get_json("/status"));
    // Still full after all those timeouts. Each timeout leaves a slot free
    // until the next send (up to 10 ms), so a few probes can all land in
    // such gaps: poll (every probe checks the bound again).
    assert!(eventually(Duration::from_secs(3), full), "the bound did not stay full");
    assert!(sidecar.is_running());
    // The two counters of a timeout are bumped one after the other: compared
    // once nothing is in flight, not while timeouts keep coming.
    pause_and_settle(&sidecar);
    let status = sidecar.get_json("/status");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let failed = sum(&samples, "trafficgen_requests_total", &[("code", "error")]);
    assert!(failed >= 60.0, "{status}");
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "timeout")]), failed, "all are timeouts");
    assert_eq!(failed, status["stats"]["failed"].as_f64().unwrap(), "{status}");
}

#[test]
fn a_target_that_never_answers_costs_no_memory_per_request() {
    let _heavy = heavy_test();
    let target = FakeTarget::start(Behaviour::Hang);
    let extra = [("INITIAL_MODE", "pause"), ("MAX_IN_FLIGHT", "50"), ("REQUEST_TIMEOUT_MS", "100")];
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    // 1 000/s with 50 open for 100 ms each: ~500 timeouts and ~500 drops a second.
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 1000}"#)).status, 200);
    let requests = || stat(&sidecar, "failed") + stat(&sidecar, "dropped");
    // Buffers and pools reach their working size over the first requests…
    assert!(eventually(Duration::from_secs(10), || requests() >= 1000), "{}", sidecar.get_json("/status"));
    let (rss0, n0) = (rss_kib(sidecar.pid()), requests());
    // …and then stay there, however many more come.
    assert!(eventually(Duration::from_secs(30), || requests() >= n0 + 5000), "{}", sidecar.get_json("/status"));
    let (rss1, n1) = (rss_kib(sidecar.pid()), requests());
    let timeouts = stat(&sidecar, "failed");
    eprintln!("hanging target: RSS {rss0} KiB -> {rss1} KiB over {} requests ({timeouts} timeouts so far)", n1 - n0);
    assert!(timeouts >= 2000, "too few timeouts to judge: {timeouts}");
    // 1 MiB over 5 000 requests: a leak of 200 bytes a request shows.
    assert!(rss1 <= rss0 + 1024, "RSS grew from {rss0} to {rss1} KiB over {} requests", n1 - n0);
}

#[test]
fn a_target_that_is_down_at_first_is_picked_up_when_it_comes_up() {
    let port = closed_port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let sidecar = Proc::start(&[], &sidecar_env(&url, &[("INITIAL_MODE", "burst")]));
    assert!(eventually(Duration::from_secs(3), || stat(&sidecar, "failed") >= 10));
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert!(
        sum(&samples, "trafficgen_request_errors_total", &[("kind", "connect")]) >= 10.0,
        "refused is a connect error"
    );
    let target = start_demo_target(&["--port", &port]);
    assert!(recovers(&target, 20.0, Duration::from_secs(6)), "traffic did not recover:\n{}", sidecar.output());
}

#[test]
fn a_target_killed_and_restarted_gets_its_traffic_back() {
    let port = closed_port().to_string();
    let target = start_demo_target(&["--port", &port]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "burst")]);
    assert!(recovers(&target, 20.0, Duration::from_secs(5)));
    drop(target); // SIGKILL: connections die mid-flight.
    let failed_before = stat(&sidecar, "failed");
    assert!(
        eventually(Duration::from_secs(3), || stat(&sidecar, "failed") >= failed_before + 10),
        "no failures while down"
    );
    let target = start_demo_target(&["--port", &port]);
    assert!(recovers(&target, 20.0, Duration::from_secs(6)), "traffic did not recover:\n{}", sidecar.output());
    assert_eq!(sidecar.get_json("/health")["status"], "healthy");
}

#[test]
fn a_slow_target_gets_its_full_rate_with_more_requests_open() {
    let _timing = timing_test();
    // Open model: 200 ms answers at 100/s means about 20 open at once, not a lower rate.
    let target = start_demo_target(&["--latency-ms", "200"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "overload")]);
    sleep(Duration::from_millis(800));
    let rate = observed_rate(&target, Duration::from_secs(3));
    assert!((rate - 100.0).abs() <= 15.0, "slow target got {rate:.1} req/s");
    let in_flight = sidecar.get_json("/status")["in_flight"].as_u64().unwrap();
    assert!((10..=40).contains(&in_flight), "in flight {in_flight}");
    assert_eq!(stat(&sidecar, "dropped"), 0);
    assert_eq!(stat(&sidecar, "failed"), 0);
}

#[test]
fn server_errors_are_failures_by_code_and_the_rate_holds() {
    let _timing = timing_test();
    let target = start_demo_target(&["--error-rate", "0.5"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "overload")]);
    sleep(Duration::from_millis(500));
    let rate = observed_rate(&target, Duration::from_secs(2));
    assert!((rate - 100.0).abs() <= 15.0, "rate {rate:.1}");
    pause_and_settle(&sidecar);
    let (failed, total) = (stat(&sidecar, "failed"), stat(&sidecar, "total"));
    let share = failed as f64 / total as f64;
    assert!((0.35..0.65).contains(&share), "{failed} of {total} failed");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_requests_total", &[("code", "500")]) as u64, failed);
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[]), 0.0, "5xx are answers, not errors");
}

#[test]
fn connection_resets_are_counted_and_nothing_breaks() {
    let target = FakeTarget::start(Behaviour::Reset);
    let mut sidecar = Proc::start(&[], &sidecar_env(&target.url(), &[("INITIAL_MODE", "burst")]));
    assert!(eventually(Duration::from_secs(3), || stat(&sidecar, "failed") >= 20));
    assert!(sidecar.is_running());
    assert_eq!(stat(&sidecar, "successful"), 0);
    pause_and_settle(&sidecar);
    let failed = stat(&sidecar, "failed") as f64;
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    // The README's table: a reset is kind="other", not a timeout or a refused connect.
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "other")]), failed, "resets are kind=other");
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[]), failed);
    assert_eq!(sum(&samples, "trafficgen_requests_total", &[("code", "error")]), failed);
}

#[test]
fn create_answers_without_a_usable_id_count_as_success_and_buffer_nothing() {
    for body in ["<html>not json</html>", r#"{"status":"created"}"#, r#"{"id":{"nested":1}}"#, r#"{"id":"../admin"}"#] {
        let target =
            FakeTarget::start(Behaviour::Answer(answer("201 Created", &["Content-Type: application/json"], body)));
        let extra = [("INITIAL_MODE", "overload"), ("MIX", "create_order=1,get_order=1")];
        let mut sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
        assert!(eventually(Duration::from_secs(3), || stat(&sidecar, "total") >= 50), "{body}");
        let status = sidecar.get_json("/status");
        assert!(sidecar.is_running());
        assert_eq!(status["stats"]["failed"], 0, "{body}: {status}");
        assert_eq!(status["order_ids_buffered"], 0, "{body}: {status}");
        // With no id to read, every get_order became a create.
        assert_eq!(status["stats"]["by_endpoint"]["get_order"]["total"], 0, "{body}: {status}");
    }
}

#[test]
fn huge_answer_bodies_are_not_read_into_memory() {
    let len = 200 * 1024 * 1024;
    for behaviour in [Behaviour::HugeBody { len }, Behaviour::HugeUnframedBody { len }] {
        let target = FakeTarget::start(behaviour);
        // Creates keep their bodies (for the id); only 256 KiB of one may be read.
        let extra = [("INITIAL_MODE", "pause"), ("MIX", "create_order=1,list_orders=1")];
        let mut sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
        let idle = rss_kib(sidecar.pid());
        assert_eq!(sidecar.post("/mode/burst", None).status, 200);
        assert!(
            eventually(Duration::from_secs(10), || stat(&sidecar, "total") >= 30),
            "{}",
            sidecar.get_json("/status")
        );
        assert!(sidecar.is_running());
        pause_and_settle(&sidecar);
        let status = sidecar.get_json("/status");
        assert_eq!(status["stats"]["successful"], status["stats"]["total"], "the 200s count by their code: {status}");
        // The peak, not the end: a body read whole and freed again shows there.
        let peak = peak_rss_kib(sidecar.pid());
        eprintln!("huge bodies: RSS {idle} KiB idle, peak {peak} KiB over {} answers", status["stats"]["total"]);
        assert!(peak <= idle + 4096, "RSS peaked at {peak} KiB from {idle} KiB idle, over answers of 200 MiB each");
    }
}

#[test]
fn redirects_are_never_followed() {
    let elsewhere = FakeTarget::start(Behaviour::Answer(answer("200 OK", &[], r#"{"id":1}"#)));
    let location = format!("Location: {}/orders", elsewhere.url());
    let redirecting = FakeTarget::start(Behaviour::Answer(answer("302 Found", &[&location], "")));
    let sidecar = Proc::start(&[], &sidecar_env(&redirecting.url(), &[("INITIAL_MODE", "overload")]));
    assert!(eventually(Duration::from_secs(3), || stat(&sidecar, "total") >= 100));
    pause_and_settle(&sidecar);
    assert_eq!(elsewhere.requests(), 0, "the load followed a redirect to another host");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_requests_total", &[("code", "302")]) as u64, stat(&sidecar, "total"));
}

#[test]
fn a_target_slower_than_the_turns_is_read_when_it_answers_with_its_own_latency() {
    let _timing = timing_test();
    // From 1 000/s the answers to a turn are read at the next turn, without
    // a wake-up each (quiet requests). Answers 20 ms away miss that: they
    // must be read when they come, each with its own latency, every one.
    let target = start_demo_target(&["--latency-ms", "20"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("MAX_RPS", "2000")]);
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 1000}"#)).status, 200);
    sleep(Duration::from_millis(1500));
    let rate = observed_rate(&target, Duration::from_secs(2));
    assert!((rate - 1000.0).abs() <= 150.0, "slow target got {rate:.0} req/s");
    let status = sidecar.get_json("/status");
    // About 20 open at once (1 000/s of 20 ms answers), not answers left unread.
    let in_flight = status["in_flight"].as_u64().unwrap_or(u64::MAX);
    assert!((5..=150).contains(&in_flight), "in flight {in_flight}: {status}");
    let by_name = status["requests"]["by_name"].as_object().expect("requests by name");
    for (name, row) in by_name {
        let p50 = row["latency_ms"]["p50"].as_f64().unwrap_or(0.0);
        assert!((19.0..250.0).contains(&p50), "{name}: p50 {p50} ms for 20 ms answers: {row}");
    }
    pause_and_settle(&sidecar);
    assert_eq!(stat(&sidecar, "failed"), 0, "{}", sidecar.get_json("/status"));
    assert_eq!(stat(&sidecar, "dropped"), 0, "{}", sidecar.get_json("/status"));
}
