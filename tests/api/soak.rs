//! A bounded long run at 1 000 req/s: memory and descriptors stay flat, and
//! every count adds up. CI runs it short; `TRAFFICGEN_SOAK_SECS=300 cargo
//! test --release soak -- --nocapture` runs it long by hand.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::helpers::*;

#[test]
fn soak_at_1000_rps_keeps_memory_and_descriptors_flat_and_counts_consistent() {
    let _heavy = heavy_test();
    let secs: u64 = std::env::var("TRAFFICGEN_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    let fds_idle = open_fds(sidecar.pid());
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 1000}"#)).status, 200);

    // Let pools and buffers reach their working size before the baseline.
    let settle = Duration::from_secs((secs / 4).clamp(3, 30));
    sleep(settle);
    let (rss0, fds0) = (rss_kib(sidecar.pid()), open_fds(sidecar.pid()));
    let started = Instant::now();
    let mut peak_rss = rss0;
    while started.elapsed() < Duration::from_secs(secs) - settle {
        sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(rss_kib(sidecar.pid()));
    }
    let (rss1, fds1) = (rss_kib(sidecar.pid()), open_fds(sidecar.pid()));
    let achieved = sidecar.get_json("/status")["achieved_rps"].as_f64().unwrap();
    pause_and_settle(&sidecar);

    let status = sidecar.get_json("/status");
    let stats = &status["stats"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    eprintln!(
        "soak {secs} s at 1000/s: RSS {rss0} -> {rss1} KiB (peak {peak_rss}), fds {fds0} -> {fds1}, achieved {achieved}/s, stats {stats}"
    );
    assert!((achieved - 1000.0).abs() < 20.0, "achieved {achieved}/s");
    assert!(rss1 <= rss0 + 2048, "RSS grew from {rss0} to {rss1} KiB");
    // Open connections follow the peak concurrency while the load runs; in
    // pause every descriptor the run opened must be closed again.
    let back_to_idle = eventually(Duration::from_secs(6), || open_fds(sidecar.pid()) <= fds_idle + 1);
    eprintln!("descriptors: {fds_idle} idle, {fds0}/{fds1} under load, {} after", open_fds(sidecar.pid()));
    assert!(back_to_idle, "descriptors did not return to {fds_idle}: {}", open_fds(sidecar.pid()));
    assert_eq!(n(&stats["total"]), n(&stats["successful"]) + n(&stats["failed"]));
    let by = &stats["by_endpoint"];
    let endpoints = ["create_order", "list_orders", "get_order"];
    for key in ["total", "successful", "failed"] {
        let sum: u64 = endpoints.iter().map(|e| n(&by[e][key])).sum();
        assert_eq!(sum, n(&stats[key]), "by_endpoint {key}");
    }
    assert_eq!(n(&stats["failed"]), 0, "{stats}");
    assert_eq!(n(&stats["dropped"]), 0, "{stats}");
    assert_eq!(target_count(&target, None), n(&stats["total"]), "target and sidecar disagree");
    for e in endpoints {
        assert_eq!(target_count(&target, Some(e)), n(&by[e]["total"]), "{e}");
    }
}
