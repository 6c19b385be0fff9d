//! A bounded long run at 1 000 req/s: memory and descriptors stay flat, and
//! every count adds up. CI runs it short; `TRAFFICGEN_SOAK_SECS=300 cargo
//! test --release soak -- --nocapture` runs it long by hand.
//!
//! It must pass on a busy 2-core machine, where the engine cannot keep a
//! 1 000 req/s schedule (a newcomer's run reached 248/s): so it judges what
//! holds at any speed — every due request sent or counted as dropped, every
//! sent one seen by the target, no failure but a timeout — and prints the
//! rate, which `bench/` measures on a quiet machine.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::scripted::metrics_of;

#[test]
fn soak_at_1000_rps_keeps_memory_and_descriptors_flat_and_counts_consistent() {
    let _heavy = heavy_test();
    let secs: u64 = std::env::var("TRAFFICGEN_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let rate = 1000.0;
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    let fds_idle = open_fds(sidecar.pid());
    let switch_sent = Instant::now();
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 1000}"#)).status, 200);
    let switch_answered = Instant::now();

    // Let pools and buffers reach their working size before the baseline.
    let settle = Duration::from_secs((secs / 4).clamp(3, 30));
    sleep(settle);
    let (rss0, fds0) = (rss_kib(sidecar.pid()), open_fds(sidecar.pid()));
    let started = Instant::now();
    let (mut peak_rss, mut peak_fds) = (rss0, fds0);
    while started.elapsed() < Duration::from_secs(secs) - settle {
        sleep(Duration::from_secs(1));
        peak_rss = peak_rss.max(rss_kib(sidecar.pid()));
        peak_fds = peak_fds.max(open_fds(sidecar.pid()));
    }
    let (rss1, fds1) = (rss_kib(sidecar.pid()), open_fds(sidecar.pid()));
    let achieved = sidecar.get_json("/status")["achieved_rps"].as_f64().unwrap();
    let pause_sent = Instant::now();
    pause_and_settle(&sidecar);
    // pause_and_settle waits for the answer first: the pause took effect
    // before the first in-flight poll, which is after this bound.
    let pause_answered = Instant::now();

    let status = sidecar.get_json("/status");
    let stats = &status["stats"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let (total, dropped) = (n(&stats["total"]), n(&stats["dropped"]));
    let samples = metrics_of(&sidecar);
    let timeouts = sum(&samples, "trafficgen_request_errors_total", &[("kind", "timeout")]) as u64;
    eprintln!(
        "soak {secs} s at 1000/s: RSS {rss0} -> {rss1} KiB (peak {peak_rss}), fds {fds0} -> {fds1}, \
         achieved {achieved}/s (bench/ measures the rate on a quiet machine), {dropped} dropped, \
         {timeouts} timeouts, stats {stats}"
    );
    // Memory follows the connections open at once, which a starved engine
    // or target raises towards MAX_IN_FLIGHT (about 13 KiB each, measured):
    // beyond that, 2 MiB. A connection that is never freed is caught below.
    let peak_fds = peak_fds.max(fds1);
    let allowed = 2048 + 16 * peak_fds.saturating_sub(fds0) as u64;
    assert!(
        rss1 <= rss0 + allowed,
        "RSS grew from {rss0} to {rss1} KiB, more than the {allowed} KiB that 2 MiB and {} more connections explain",
        peak_fds.saturating_sub(fds0)
    );
    // Open connections follow the peak concurrency while the load runs; in
    // pause every descriptor the run opened must be closed again.
    let back_to_idle = eventually(Duration::from_secs(6), || open_fds(sidecar.pid()) <= fds_idle + 1);
    eprintln!("descriptors: {fds_idle} idle, {fds0}/{fds1} under load, {} after", open_fds(sidecar.pid()));
    assert!(back_to_idle, "descriptors did not return to {fds_idle}: {}", open_fds(sidecar.pid()));

    // Every request the schedule made due was sent or counted as dropped,
    // however slow the machine: the switch took effect between its POST and
    // the answer, the pause likewise, so the due count lies between the
    // shortest and the longest span those allow. A pause may forget a
    // backlog of at most the 250 ms the engine is allowed to fall behind.
    let due_at_least = rate * pause_sent.duration_since(switch_answered).as_secs_f64() - rate * 0.25 - 2.0;
    let due_at_most = rate * pause_answered.duration_since(switch_sent).as_secs_f64() + 2.0;
    let accounted = (total + dropped) as f64;
    assert!(
        (due_at_least..=due_at_most).contains(&accounted),
        "sent {total} + dropped {dropped} = {accounted}, but {due_at_least:.0} to {due_at_most:.0} were due: requests vanished"
    );
    // Something was really sent: even a starved engine sends 5 % of it.
    assert!(total as f64 >= rate * secs as f64 * 0.05, "only {total} sent in {secs} s: {stats}");

    assert_eq!(total, n(&stats["successful"]) + n(&stats["failed"]));
    let by = &stats["by_endpoint"];
    let endpoints = ["create_order", "list_orders", "get_order"];
    for key in ["total", "successful", "failed"] {
        let sum: u64 = endpoints.iter().map(|e| n(&by[e][key])).sum();
        assert_eq!(sum, n(&stats[key]), "by_endpoint {key}");
    }
    // The demo target answers every request with a success: a failure is a
    // bug unless it is a timeout of a machine starved for seconds.
    assert_eq!(n(&stats["failed"]), timeouts, "failures other than timeouts: {stats}");
    // Every request counted reached the target, but one that timed out may
    // have died before it got there.
    let seen = target_count(&target, None);
    assert!((total - timeouts..=total).contains(&seen), "the target saw {seen}, the sidecar sent {total}");
    for e in endpoints {
        let (seen, sent) = (target_count(&target, Some(e)), n(&by[e]["total"]));
        assert!((sent.saturating_sub(timeouts)..=sent).contains(&seen), "{e}: the target saw {seen} of {sent}");
    }
}
