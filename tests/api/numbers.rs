//! The numbers the panel shows, from outside: the rate asked now (not a
//! job's maximum), this replica against the cluster, the last minutes'
//! history, the per-request table, the lateness of a starved engine.

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Replicas;
use crate::helpers::*;
use crate::peers::{Behaviour, FakeTarget, answer};

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

#[test]
fn during_a_peak_the_target_is_the_rate_asked_now_and_rises() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    // 40 s up to 40 req/s: the first 10 s rise from 0 to 40, 4/s per second.
    let res = sidecar.post("/jobs", Some(r#"{"scenario": "peak", "duration_secs": 40, "max_rps": 40}"#));
    assert_eq!(res.status, 201, "{}", res.body);
    let started = Instant::now();
    let id = res.json()["job_id"].as_str().expect("job_id").to_string();

    sleep(Duration::from_secs(2));
    let early = sidecar.get_json("/status");
    let early_secs = started.elapsed().as_secs_f64();
    sleep(Duration::from_secs(3));
    let later = sidecar.get_json("/status");
    let later_secs = started.elapsed().as_secs_f64();
    for (status, secs) in [(&early, early_secs), (&later, later_secs)] {
        // The headline is the job's maximum; the target what the schedule asks now.
        assert_eq!(status["rps"], 40, "{status}");
        let target_rps = num(status, "target_rps");
        // Read between the POST's answer and now: 4/s per second, with a
        // second of slack either way for a busy machine.
        assert!(
            target_rps >= 4.0 * (secs - 1.5) && target_rps <= 4.0 * (secs + 0.5),
            "target {target_rps} at {secs:.1} s into the peak: {status}"
        );
        assert_eq!((num(status, "cluster_target_rps"), status["replicas"].as_u64()), (target_rps, Some(1)), "{status}");
    }
    assert!(num(&early, "target_rps") < 20.0, "early in the rise, below half the maximum: {early}");
    assert!(num(&later, "target_rps") > num(&early, "target_rps") + 6.0, "the target rises: {early} then {later}");
    // The gauge says the same: the rate asked now, not the maximum.
    let gauge = sum(&parse_metrics(&sidecar.get("/metrics").body), "trafficgen_target_rps", &[]);
    assert!(
        gauge >= num(&later, "target_rps") && gauge < 40.0,
        "trafficgen_target_rps {gauge} during the rise: {later}"
    );

    // The history has a point a second, with the target rising under it,
    // and never the maximum during the rise.
    let history = sidecar.get_json("/history");
    let points = history["points"].as_array().expect("points");
    assert!(points.len() >= 4 && points.len() <= 300, "{history}");
    let times: Vec<u64> = points.iter().filter_map(|p| p["t_ms"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let targets: Vec<f64> = points.iter().map(|p| num(p, "target_rps")).collect();
    assert!(targets.iter().all(|t| *t < 40.0), "{targets:?}");
    assert!(targets.windows(2).all(|w| w[1] >= w[0]), "the target only rises in the first quarter: {targets:?}");
    assert_eq!(sidecar.post(&format!("/jobs/{id}/stop"), None).status, 200);
}

#[test]
fn the_per_request_table_adds_up_and_says_how_requests_fail() {
    let _timing = timing_test();
    let target = start_demo_target(&["--error-rate", "0.2"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "burst")]);
    let table = |s: &Value| s["requests"].clone();
    // Burst: 20/s over three request names; wait for a few seconds of answers.
    let mut status = Value::Null;
    let flowing = eventually(Duration::from_secs(15), || {
        status = sidecar.get_json("/status");
        num(&table(&status), "total_rps") >= 10.0 && status["stats"]["failed"].as_u64().unwrap_or(0) >= 5
    });
    assert!(flowing, "no traffic in the table: {status}");
    sleep(Duration::from_secs(2));
    let status = sidecar.get_json("/status");
    let requests = table(&status);
    let by_name = requests["by_name"].as_object().expect("by_name");
    let names: Vec<&str> = by_name.keys().map(String::as_str).collect();
    assert_eq!(names, ["create_order", "get_order", "list_orders"], "{requests}");
    let total = num(&requests, "total_rps");
    let rates: f64 = by_name.values().map(|r| num(r, "rps")).sum();
    let shares: f64 = by_name.values().map(|r| num(r, "share")).sum();
    assert!((rates - total).abs() <= total * 0.02, "names add up to {rates}, total {total}: {requests}");
    assert!((shares - 1.0).abs() <= 0.01, "shares add up to {shares}: {requests}");
    // About burst's 20/s (completions lag sends by the answers in flight).
    assert!((total - 20.0).abs() <= 5.0, "{total}/s in the table at burst: {requests}");
    for (name, row) in by_name {
        let failures = row["failures"].as_object().expect("failures");
        let by_kind: u64 = failures.values().filter_map(Value::as_u64).sum();
        // Every failure is of one kind; the demo target's injected ones are 5xx.
        assert_eq!(Some(by_kind), row["failed"].as_u64(), "{name}: {row}");
        assert_eq!(row["failed"], status["stats"]["by_endpoint"][name]["failed"], "{name}: {row}");
        assert!(row["latency_ms"]["p50"].as_f64().is_some_and(|p| p > 0.0), "{name}: {row}");
    }
    let server_errors: u64 = by_name.values().filter_map(|r| r["failures"]["http_5xx"].as_u64()).sum();
    assert!(server_errors > 0, "the target's 5xx answers show as http_5xx: {requests}");

    // The history: a point a second since start, answers counted once.
    let history = sidecar.get_json("/history");
    let points = history["points"].as_array().expect("points");
    assert!(points.len() >= 3, "{history}");
    let latest = points.last().expect("a point");
    assert_eq!(num(latest, "target_rps"), 20.0, "{latest}");
    assert!((num(latest, "achieved_rps") - 20.0).abs() <= 5.0, "{latest}");
    assert!(latest["p99_ms"].as_f64().is_some(), "{latest}");
    let answered: u64 =
        points.iter().map(|p| p["successful"].as_u64().unwrap_or(0) + p["failed"].as_u64().unwrap_or(0)).sum();
    let total_answers = status["stats"]["total"].as_u64().unwrap_or(0);
    assert!(
        answered > 0 && answered <= total_answers + 40,
        "{answered} answers in the history, {total_answers} since start"
    );
}

#[test]
fn replicas_show_their_share_and_the_whole_cluster() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let replicas = Replicas::start(3, &format!("http://{}", target.addr), &[("INITIAL_MODE", "pause")]);
    replicas.wait_for_split(3, Duration::from_secs(15));
    let res = replicas.get(0).post("/mode/custom", Some(r#"{"rps": 30}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    // Each is asked a third, the cluster the whole; once 10 s of sending
    // are behind every replica, the achieved rates add up to about 30.
    let mut statuses = Vec::new();
    let settled = eventually(Duration::from_secs(25), || {
        statuses = replicas.running().map(|p| p.get_json("/status")).collect();
        statuses.iter().all(|s| {
            s["target_rps"] == 10.0
                && s["cluster_target_rps"] == 30.0
                && s["replicas"] == 3
                && (num(s, "cluster_achieved_rps") - 30.0).abs() <= 3.0
        })
    });
    assert!(settled, "{statuses:#?}");
    for s in &statuses {
        let cluster = &s["cluster"];
        assert_eq!((num(cluster, "target_rps"), cluster["members"].as_u64()), (30.0, Some(3)), "{cluster}");
        let members = cluster["replicas"].as_array().expect("replicas");
        assert_eq!(members.len(), 3, "{cluster}");
        for m in members {
            assert_eq!((m["state"].as_str(), m["target_rps"].as_f64()), (Some("running"), Some(10.0)), "{m}");
            assert!(m["achieved_rps"].as_f64().is_some_and(|a| (a - 10.0).abs() <= 2.0), "{m}");
        }
        // This replica's achieved rate is its own, about a third.
        assert!((num(s, "achieved_rps") - 10.0).abs() <= 2.0, "{s}");
    }
}

#[test]
fn a_starved_engine_shows_its_lateness_from_the_scheduled_send_and_not_from_the_actual_one() {
    let _timing = timing_test();
    let target = FakeTarget::start(Behaviour::Answer(answer("200 OK", &["Content-Type: application/json"], "{}")));
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &[("INITIAL_MODE", "pause"), ("JITTER", "0")]));
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 100}"#)).status, 200);
    assert!(eventually(Duration::from_secs(5), || target.requests() >= 100), "traffic did not start");
    // Off the CPU for a second: the slots of that second leave late (those
    // over 250 ms late are dropped, the rest sent at once on waking), while
    // the target answers each one as fast as before.
    sidecar.signal(libc::SIGSTOP);
    sleep(Duration::from_secs(1));
    sidecar.signal(libc::SIGCONT);
    sleep(Duration::from_millis(1500));
    let latency = &sidecar.get_json("/status")["latency"]["overall"];
    let p99 = |which: &str| latency[which]["p99"].as_f64().unwrap_or_else(|| panic!("{which} p99: {latency}"));
    let (scheduled, sent) = (p99("from_scheduled"), p99("from_sent"));
    eprintln!("after a 1 s stall at 100/s: p99 from the scheduled send {scheduled} ms, from the actual send {sent} ms");
    // About 25 requests up to 250 ms late among about 1000: the p99 from
    // the schedule is one of them; the answers themselves stayed fast.
    assert!(scheduled >= 100.0, "the lateness does not show from the scheduled send: {latency}");
    assert!(sent * 2.0 < scheduled, "the actual send's latency shows the lateness too: {latency}");
}
