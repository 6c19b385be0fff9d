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
fn a_closed_port_counts_connect_failures_and_the_sidecar_stays_up() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let mut sidecar = Proc::start(&[], &sidecar_env(&url, &[("INITIAL_MODE", "overload")]));
    sleep(Duration::from_secs(2));
    assert!(sidecar.is_running(), "sidecar exited:\n{}", sidecar.output());
    assert_eq!(sidecar.get_json("/health")["status"], "healthy");

    let status = sidecar.get_json("/status");
    let failed = status["stats"]["failed"].as_u64().unwrap();
    assert!(failed >= 100, "expected ~200 failures in 2 s at 100/s, got {status}");
    assert_eq!(status["stats"]["successful"], 0);
    // The schedule went on: failures kept coming at about the rate.
    sleep(Duration::from_secs(1));
    let later = stat(&sidecar, "failed");
    assert!(later >= failed + 60, "schedule stalled: {failed} then {later}");
    // Stopped, the counters hold still and can be compared.
    sidecar.post("/mode/pause", None);
    sleep(Duration::from_millis(300));
    let failed = stat(&sidecar, "failed");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let connect = sum(&samples, "trafficgen_request_errors_total", &[("kind", "connect")]);
    assert_eq!(connect as u64, failed, "every failure is a connect error");
    assert_eq!(sum(&samples, "trafficgen_requests_total", &[("code", "error")]) as u64, failed);
    // Failures are logged, but not one line each.
    let warnings = sidecar.log_lines().iter().filter(|l| l.contains("\"request failed\"")).count();
    assert!((1..=2).contains(&warnings), "{warnings} failure lines for {later} failures");
}

#[test]
fn a_target_that_never_answers_times_out_drops_the_excess_and_keeps_memory_flat() {
    let target = FakeTarget::start(Behaviour::Hang);
    let extra = [("INITIAL_MODE", "overload"), ("MAX_IN_FLIGHT", "20"), ("REQUEST_TIMEOUT_MS", "500")];
    let mut sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    sleep(Duration::from_millis(1500));
    let rss_before = rss_kib(sidecar.pid());
    sleep(Duration::from_millis(2500));
    assert!(sidecar.is_running());
    let status = sidecar.get_json("/status");
    let stats = &status["stats"];
    // 100/s with at most 20 open, each held 500 ms: ~40/s time out, ~60/s are dropped.
    assert!(stats["dropped"].as_u64().unwrap() >= 100, "expected drops: {status}");
    assert!(stats["failed"].as_u64().unwrap() >= 60, "expected timeouts: {status}");
    assert!(status["in_flight"].as_u64().unwrap() <= 20, "in-flight bound exceeded: {status}");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "timeout")]) >= 60.0);
    assert!(sum(&samples, "trafficgen_in_flight_requests", &[]) <= 20.0);
    let rss_after = rss_kib(sidecar.pid());
    eprintln!("hanging target: RSS {rss_before} KiB -> {rss_after} KiB; {}", status["stats"]);
    assert!(rss_after < rss_before + 4096, "RSS grew from {rss_before} to {rss_after} KiB");
}

#[test]
fn a_target_that_is_down_at_first_is_picked_up_when_it_comes_up() {
    let port = closed_port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let sidecar = Proc::start(&[], &sidecar_env(&url, &[("INITIAL_MODE", "burst")]));
    assert!(eventually(Duration::from_secs(3), || stat(&sidecar, "failed") >= 10));
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
    let target = start_demo_target(&["--error-rate", "0.5"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "overload")]);
    sleep(Duration::from_millis(500));
    let rate = observed_rate(&target, Duration::from_secs(2));
    assert!((rate - 100.0).abs() <= 15.0, "rate {rate:.1}");
    sidecar.post("/mode/pause", None);
    sleep(Duration::from_millis(300));
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
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let errors = sum(&samples, "trafficgen_request_errors_total", &[]);
    assert!(errors >= 20.0, "resets should be request errors: {errors}");
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
    let target = FakeTarget::start(Behaviour::HugeBody { len: 200 * 1024 * 1024 });
    let extra = [("INITIAL_MODE", "burst"), ("MIX", "list_orders=1")];
    let mut sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    assert!(eventually(Duration::from_secs(4), || stat(&sidecar, "total") >= 30));
    assert!(sidecar.is_running());
    let status = sidecar.get_json("/status");
    assert_eq!(status["stats"]["successful"], status["stats"]["total"], "the 200s count by their code: {status}");
    let rss = rss_kib(sidecar.pid());
    assert!(rss < 64 * 1024, "RSS {rss} KiB after 30 answers of 200 MiB each");
}

#[test]
fn redirects_are_never_followed() {
    let elsewhere = FakeTarget::start(Behaviour::Answer(answer("200 OK", &[], r#"{"id":1}"#)));
    let location = format!("Location: {}/orders", elsewhere.url());
    let redirecting = FakeTarget::start(Behaviour::Answer(answer("302 Found", &[&location], "")));
    let sidecar = Proc::start(&[], &sidecar_env(&redirecting.url(), &[("INITIAL_MODE", "overload")]));
    assert!(eventually(Duration::from_secs(3), || stat(&sidecar, "total") >= 100));
    sidecar.post("/mode/pause", None);
    sleep(Duration::from_millis(300));
    assert_eq!(elsewhere.requests(), 0, "the load followed a redirect to another host");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_requests_total", &[("code", "302")]) as u64, stat(&sidecar, "total"));
}
