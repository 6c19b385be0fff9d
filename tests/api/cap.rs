//! `MAX_RPS` is a promise over every window, whatever the control API is
//! asked to do: switches made faster than the rate must not add requests.
//! Counted at the demo target, per 100 ms (`GET /stats/arrivals`).

use std::thread;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// The target's arrivals per 100 ms over the last minute.
fn arrivals(target: &Proc) -> Vec<u64> {
    let answer = target.get_json("/stats/arrivals");
    answer["counts"].as_array().expect("counts").iter().map(|c| c.as_u64().expect("a count")).collect()
}

/// Spams the control API from `clients` threads for `secs`, each client
/// cycling through `calls` (method, path, body).
fn spam(
    sidecar: &Proc,
    clients: usize,
    secs: f64,
    calls: &'static [(&'static str, &'static str, Option<&'static str>)],
) {
    let addr = sidecar.addr;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            thread::spawn(move || {
                let mut i = c;
                while Instant::now() < until {
                    let (method, path, body) = calls[i % calls.len()];
                    let res = request(addr, method, path, &[], body);
                    assert!(res.status < 500, "{method} {path}: {}", res.body);
                    i += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("spam thread");
    }
}

/// The largest count of any 100 ms bucket and of any ten consecutive ones.
fn peaks(counts: &[u64]) -> (u64, u64) {
    let per_100ms = counts.iter().copied().max().unwrap_or(0);
    let per_second = counts.windows(10).map(|w| w.iter().sum()).max().unwrap_or(0);
    (per_100ms, per_second)
}

#[test]
fn switch_spam_never_puts_more_than_max_rps_on_the_target() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(
        &target,
        &[("MAX_RPS", "100"), ("INITIAL_MODE", "pause"), ("BURST_RPS", "100"), ("OVERLOAD_RPS", "99")],
    );
    // Every way of switching the issue found, from 8 clients at once.
    const CALLS: &[(&str, &str, Option<&str>)] = &[
        ("POST", "/mode/custom", Some(r#"{"rps": 100}"#)),
        ("POST", "/mode/custom", Some(r#"{"rps": 99}"#)),
        ("POST", "/mode/burst", None),
        ("POST", "/mode/overload", None),
        ("PUT", "/config", Some(r#"{"burst_rps": 98}"#)),
        ("PUT", "/config", Some(r#"{"burst_rps": 100}"#)),
        ("POST", "/mode/custom", Some(r#"{"rps": 0.001}"#)),
        ("POST", "/mode/custom", Some(r#"{"rps": 0.002}"#)),
        ("POST", "/jobs", Some(r#"{"scenario": "stress", "duration_secs": 5, "max_rps": 100}"#)),
        ("POST", "/mode/custom", Some(r#"{"rps": 100}"#)),
    ];
    spam(&sidecar, 8, 4.0, CALLS);
    let counts = arrivals(&target);
    let (per_100ms, per_second) = peaks(&counts[counts.len().saturating_sub(50)..]);
    let switches = stat_metric(&sidecar, "trafficgen_mode_switches_total");
    assert!(switches > 100.0, "the spam switched only {switches} times");
    // The cap holds over every window the sidecar sees; at the target, on
    // a busy machine, a request can arrive later than it left, which moves
    // it across a bucket edge: the bounds allow for that (bench/cap_spam.py
    // measures it at full scale). Before the cap held, the target saw
    // 140-430 per 100 ms.
    assert!(per_100ms <= 20, "{per_100ms} requests in 100 ms under MAX_RPS=100: {counts:?}");
    assert!(per_second <= 105, "{per_second} requests in one second under MAX_RPS=100: {counts:?}");
    let waits = stat_metric(&sidecar, "trafficgen_max_rps_waits_total");
    assert!(waits > 0.0, "the cap never held a request back, so it was not tested");
}

fn stat_metric(sidecar: &Proc, name: &str) -> f64 {
    sum(&parse_metrics(&sidecar.get("/metrics").body), name, &[])
}

#[test]
fn a_rate_at_its_cap_gets_its_rate_and_no_more() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    // The default cap's case (1 000 req/s at MAX_RPS 1 000), scaled down:
    // the engine sends in cells of the cap's window there (docs/traffic.md).
    let sidecar = start_sidecar(&target, &[("MAX_RPS", "500"), ("INITIAL_MODE", "pause")]);
    let set = sidecar.post("/mode/custom", Some(r#"{"rps": 500}"#));
    assert_eq!(set.status, 200, "{}", set.body);
    thread::sleep(Duration::from_secs(3));
    let counts = arrivals(&target);
    // The last two full seconds (the newest bucket is still filling).
    let recent = &counts[counts.len().saturating_sub(21)..counts.len().saturating_sub(1)];
    let (per_100ms, per_second) = peaks(recent);
    let total: u64 = recent.iter().sum();
    // As above, a request can arrive at the target later than it left and
    // cross a bucket's edge: the bounds allow for a stall of the target.
    assert!(per_100ms <= 75, "{per_100ms} requests in 100 ms under MAX_RPS=500: {recent:?}");
    assert!(per_second <= 525, "{per_second} requests in one second under MAX_RPS=500: {recent:?}");
    // Not held below it either: a window that always held a little more
    // than its share would leave requests waiting and, past 250 ms, dropped.
    assert!(total >= 900, "{total} requests in two seconds at 500 req/s: {recent:?}");
    assert_eq!(stat_metric(&sidecar, "trafficgen_dropped_requests_total"), 0.0);
}
