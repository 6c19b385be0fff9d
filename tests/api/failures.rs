//! A dead or stuck target costs failures and drops, never the process.

use std::net::TcpListener;
use std::thread::sleep;
use std::time::Duration;

use crate::helpers::*;

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
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let connect = sum(&samples, "trafficgen_request_errors_total", &[("kind", "connect")]);
    assert!(connect as u64 >= failed, "connect errors {connect} < failed {failed}");
    assert_eq!(sum(&samples, "trafficgen_requests_total", &[("code", "error")]) as u64, failed);
    // The schedule went on: failures kept coming at about the rate.
    sleep(Duration::from_secs(1));
    let later = sidecar.get_json("/status")["stats"]["failed"].as_u64().unwrap();
    assert!(later >= failed + 60, "schedule stalled: {failed} then {later}");
    // Failures are logged, but not one line each.
    let warnings = sidecar.log_lines().iter().filter(|l| l.contains("\"request failed\"")).count();
    assert!((1..=2).contains(&warnings), "{warnings} failure lines for {later} failures");
}

#[test]
fn a_target_that_never_answers_times_out_and_full_in_flight_drops() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for conn in listener.incoming().take(200).flatten() {
            conns.push(conn);
        }
        sleep(Duration::from_secs(30));
    });
    let extra = [("INITIAL_MODE", "burst"), ("MAX_IN_FLIGHT", "5"), ("REQUEST_TIMEOUT_MS", "500")];
    let mut sidecar = Proc::start(&[], &sidecar_env(&url, &extra));
    sleep(Duration::from_millis(2500));
    assert!(sidecar.is_running());
    let status = sidecar.get_json("/status");
    let stats = &status["stats"];
    assert!(stats["dropped"].as_u64().unwrap() >= 10, "expected drops with 5 in flight at 20/s: {status}");
    assert!(stats["failed"].as_u64().unwrap() >= 5, "expected timeouts: {status}");
    assert!(status["in_flight"].as_u64().unwrap() <= 5, "in-flight bound exceeded: {status}");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "timeout")]) >= 5.0);
    assert_eq!(sum(&samples, "trafficgen_dropped_requests_total", &[]), stats["dropped"].as_f64().unwrap());
    assert!(sum(&samples, "trafficgen_in_flight_requests", &[]) <= 5.0);
    drop(held);
}
