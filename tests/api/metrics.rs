//! `/metrics` parses, is self-consistent, and agrees with `/status`.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::*;

#[test]
fn metrics_agree_with_status_and_histograms_are_well_formed() {
    let target = start_demo_target(&["--error-rate", "0.2"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "overload")]);
    assert!(eventually(Duration::from_secs(5), || stat(&sidecar, "total") > 150));
    pause_and_settle(&sidecar);

    let text = sidecar.get("/metrics").body;
    let samples = parse_metrics(&text);
    let status = sidecar.get_json("/status");
    let stats = &status["stats"];
    let total = |labels: &[(&str, &str)]| sum(&samples, "trafficgen_requests_total", labels) as u64;
    assert!(stats["total"].as_u64().unwrap() > 100);
    assert_eq!(total(&[]), stats["total"].as_u64().unwrap());
    for endpoint in ["create_order", "list_orders", "get_order"] {
        assert_eq!(
            total(&[("endpoint", endpoint)]),
            stats["by_endpoint"][endpoint]["total"].as_u64().unwrap(),
            "{endpoint}"
        );
    }
    let ok: u64 = samples
        .iter()
        .filter(|s| s.name == "trafficgen_requests_total" && s.label("code").starts_with('2'))
        .map(|s| s.value as u64)
        .sum();
    assert_eq!(ok, stats["successful"].as_u64().unwrap());
    assert!(total(&[("code", "500")]) > 0, "injected 500s should show");
    assert_eq!(sum(&samples, "trafficgen_dropped_requests_total", &[]) as u64, stats["dropped"].as_u64().unwrap());
    assert_eq!(
        sum(&samples, "trafficgen_order_ids_buffered", &[]) as u64,
        status["order_ids_buffered"].as_u64().unwrap()
    );
    assert_eq!(sum(&samples, "trafficgen_target_rps", &[]), 0.0, "paused");
    assert_eq!(sum(&samples, "trafficgen_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(sum(&samples, "process_resident_memory_bytes", &[]) > 0.0);
    // The latency histogram counted every answered or failed request.
    assert_eq!(
        sum(&samples, "trafficgen_request_duration_seconds_count", &[]) as u64,
        stats["total"].as_u64().unwrap()
    );
    assert_eq!(sum(&samples, "trafficgen_schedule_lag_seconds_count", &[]) as u64, stats["total"].as_u64().unwrap());

    // Buckets never decrease, and +Inf equals _count, for every series.
    let mut buckets: HashMap<(String, String), Vec<(f64, f64)>> = HashMap::new();
    for s in samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let le = if s.label("le") == "+Inf" { f64::INFINITY } else { s.label("le").parse().unwrap() };
        buckets.entry((s.name.clone(), s.label("endpoint").to_string())).or_default().push((le, s.value));
    }
    assert!(buckets.len() >= 4, "expected per-endpoint duration series and the lag series");
    for ((name, endpoint), mut series) in buckets {
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(series.windows(2).all(|w| w[0].1 <= w[1].1), "{name}{{{endpoint}}} decreases");
        let count_name = name.replace("_bucket", "_count");
        let labels: Vec<(&str, &str)> =
            if endpoint.is_empty() { vec![] } else { vec![("endpoint", endpoint.as_str())] };
        assert_eq!(series.last().unwrap().1, sum(&samples, &count_name, &labels), "{name} +Inf vs _count");
    }
    // Labels only ever take values from their fixed sets.
    for s in &samples {
        if let Some(e) = s.labels.get("endpoint") {
            assert!(["create_order", "list_orders", "get_order"].contains(&e.as_str()), "{s:?}");
        }
        if let Some(k) = s.labels.get("kind") {
            assert!(["timeout", "connect", "dns", "tls", "reused", "other"].contains(&k.as_str()), "{s:?}");
        }
        if let Some(r) = s.labels.get("reason") {
            assert!(["closed", "reset", "broken_pipe"].contains(&r.as_str()), "{s:?}");
        }
        if s.name == "trafficgen_requests_total" {
            let code = s.label("code");
            assert!(code == "error" || (code.len() == 3 && code.parse::<u16>().is_ok()), "{s:?}");
        }
    }
    // Every metric of the contract is there with a HELP and TYPE line.
    for (name, kind) in [
        ("trafficgen_requests_total", "counter"),
        ("trafficgen_request_errors_total", "counter"),
        ("trafficgen_request_duration_seconds", "histogram"),
        ("trafficgen_target_rps", "gauge"),
        ("trafficgen_mode", "gauge"),
        ("trafficgen_in_flight_requests", "gauge"),
        ("trafficgen_dropped_requests_total", "counter"),
        ("trafficgen_order_ids_buffered", "gauge"),
        ("trafficgen_mode_switches_total", "counter"),
        ("trafficgen_build_info", "gauge"),
        ("trafficgen_schedule_lag_seconds", "histogram"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "no TYPE line for {name}");
        assert!(text.contains(&format!("# HELP {name} ")), "no HELP line for {name}");
    }
}
