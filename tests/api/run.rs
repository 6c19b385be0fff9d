//! `trafficgen run`, the one-shot CI mode: exit 0 when every SLO holds, 1
//! when one is missed, 2 on bad input; a summary table on stdout and a JSON
//! summary that parses; the demo target sees what the summary says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::helpers::{
    BIN, Proc, closed_port, eventually, request, start_demo_target, start_sidecar, target_count, timing_test,
};

fn run(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(BIN)
        .arg("run")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run trafficgen run");
    (output, started.elapsed())
}

fn summary_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("trafficgen-run-{}-{name}.json", std::process::id()))
}

/// The `--summary-json` file a run wrote, read and then removed.
fn take_summary(path: &Path) -> serde_json::Value {
    let summary = serde_json::from_slice(&std::fs::read(path).expect("summary written")).expect("summary is JSON");
    let _ = std::fs::remove_file(path);
    summary
}

#[test]
fn an_easy_slo_passes_with_exit_0_and_the_summary_matches_the_target() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let json = summary_path("easy");
    let (out, took) = run(&[
        "--scenario",
        "stress",
        "--duration",
        "4s",
        "--max-rps",
        "30",
        "--slo",
        "p95<2s,error_rate<5%,create_order:p99<3s,rps>=80%",
        "--summary-json",
        json.to_str().unwrap(),
        "--progress",
        "plain",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(took < Duration::from_secs(15), "a 4 s run took {took:?}");
    for needle in ["request", "create_order", "list_orders", "p95<2s", "✓ met", "PASSED"] {
        assert!(stdout.contains(needle), "no {needle:?} in:\n{stdout}");
    }
    assert!(stderr.lines().filter(|l| l.contains("/4 s")).count() >= 2, "progress lines on stderr:\n{stderr}");

    let summary = take_summary(&json);
    assert_eq!(summary["passed"], true);
    assert_eq!(summary["scenario"], "stress");
    let sent = summary["summary"]["requests"]["sent"].as_u64().unwrap();
    assert!((110..=130).contains(&sent), "stress at 30/s for 4 s sends ~120, sent {sent}");
    // Everything the run sent reached the target (nothing else aims at it).
    // Compared with `sent`, not with the answered count: a request still in
    // flight when the job ended is answered in no count of the summary, yet
    // the drain before the exit lets it reach the target.
    assert_eq!(target_count(&target, None), sent, "{summary}");
    let by_name = summary["summary"]["by_name"].as_object().unwrap();
    assert!(by_name.contains_key("create_order") && by_name.contains_key("list_orders"), "{summary}");
    let objectives = summary["slo"].as_array().unwrap();
    assert_eq!(objectives.len(), 4);
    assert!(objectives.iter().all(|o| o["outcome"] == "met"), "{summary}");
    // rps counts answers: a target that answers all of them meets it.
    assert!(objectives[3]["value"].as_f64().is_some_and(|v| v > 80.0), "{summary}");
    assert!(summary["summary"]["latency_ms"]["from_scheduled"]["p99"].as_f64().is_some());
}

#[test]
fn an_impossible_slo_fails_with_exit_1_and_abort_on_fail_stops_early() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let json = summary_path("impossible");
    let (out, _) = run(&[
        "--duration",
        "3s",
        "--max-rps",
        "20",
        "--slo",
        "p50<0.001ms",
        "--summary-json",
        json.to_str().unwrap(),
        "--progress",
        "none",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("✗ missed") && stdout.contains("FAILED"), "{stdout}");
    let summary = take_summary(&json);
    assert_eq!(summary["passed"], false);
    assert_eq!(summary["slo"][0]["outcome"], "missed");
    assert!(summary["slo"][0]["value"].as_f64().unwrap() > 0.001);

    // Missed from the first second, with a 10 s window: stopped after ~10 s, not 60.
    let (out, took) = run(&[
        "--duration",
        "60s",
        "--max-rps",
        "10",
        "--slo",
        "p50<0.001ms",
        "--slo-window",
        "10s",
        "--abort-on-fail",
        "--progress",
        "none",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ABORTED"), "{stdout}");
    assert!(took < Duration::from_secs(30), "abort-on-fail took {took:?}");
}

#[test]
fn bad_input_exits_2_with_one_line_and_sends_nothing() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let cases: &[(&[&str], &str)] = &[
        (&["--scenario", "nope"], "unknown scenario"),
        (&["--duration", "10 minutes"], "--duration"),
        (&["--max-rps", "0"], "--max-rps"),
        (&["--max-rps", "NaN"], "--max-rps"),
        (&["--slo", "p95<300"], "SLO"),
        (&["--slo", "nosuch:p95<1s"], "SLO"),
        (&["--slo-window", "1s"], "SLO_WINDOW"),
        (&["--endpoints", "create_order,nosuch"], "nosuch"),
        (&["--workload", "/nonexistent/w.yaml"], "/nonexistent/w.yaml"),
        (&["--progress", "loud"], "--progress"),
        (&["--duration", "0s"], "duration"),
        (&["--duration", "0.5s"], "--duration: must be from 1"),
        (&["--summary-json", "/nonexistent/dir/summary.json"], "--summary-json"),
    ];
    for (args, needle) in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.push(&url);
        let (out, _) = run(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr:?}");
        assert!(out.stdout.is_empty(), "{args:?}: printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
    // A summary file from before stays as it was when the run never starts.
    let kept = summary_path("kept");
    std::fs::write(&kept, b"{\"from\": \"an earlier run\"}").unwrap();
    let (out, _) = run(&["--slo", "p95<300", "--summary-json", kept.to_str().unwrap(), &url]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(&kept).unwrap(), b"{\"from\": \"an earlier run\"}", "exit 2 touched the old summary");
    let _ = std::fs::remove_file(&kept);
    let (out, _) = run(&["--duration", "2s", "not a url"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(target_count(&target, None), 0, "bad input sent nothing");
}

/// `trafficgen run --port 0 …` started, and its control address once it says it.
fn run_with_control(args: &[&str]) -> Proc {
    let mut all = vec!["run", "--port", "0", "--progress", "none"];
    all.extend_from_slice(args);
    let mut run = Proc::spawn(&all, &[]);
    let line = run.wait_for_line("control API on http://", Duration::from_secs(15));
    let line = line.unwrap_or_else(|| panic!("no control address:\n{}", run.output()));
    let addr = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("an address");
    run.addr = addr.parse().unwrap_or_else(|e| panic!("{addr:?}: {e}"));
    run
}

#[test]
fn a_run_watched_on_its_port_shows_the_rate_it_achieves() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let mut run = run_with_control(&["--duration", "60s", "--max-rps", "20", &url]);
    let mut last = serde_json::Value::Null;
    let shown = eventually(Duration::from_secs(20), || {
        last = run.get_json("/status");
        last["achieved_rps"].as_f64().is_some_and(|r| r > 0.0)
    });
    assert!(shown, "achieved_rps stayed at {} while the run sent {}", last["achieved_rps"], last["stats"]["total"]);
    assert!(run.terminate(Duration::from_secs(10)).is_some(), "the run did not stop on SIGTERM");
}

#[test]
fn an_slo_flip_is_logged_with_its_value_as_a_json_number() {
    let target = start_demo_target(&[]);
    // One objective every answer misses, one every answer meets: both flip from no data.
    let sidecar = start_sidecar(&target, &[("SLO", "p50<0.001ms,p50<60s"), ("STEADY_RPS", "20")]);
    let flips = sidecar.wait_for_logs(
        2,
        |v| v["slo"].as_str().is_some_and(|s| s.starts_with("p50<")) && v.get("value").is_some(),
        Duration::from_secs(15),
    );
    assert_eq!(flips.len(), 2, "two flip lines:\n{}", sidecar.output());
    for flip in &flips {
        assert!(flip["value"].is_number(), "value is a JSON number (ms): {flip}");
    }
    assert!(flips.iter().any(|f| f["level"] == "warn" && f["slo"] == "p50<0.001ms"), "{flips:?}");
    assert!(flips.iter().any(|f| f["level"] == "info" && f["slo"] == "p50<60s" && f["outcome"] == "met"), "{flips:?}");
}

#[test]
fn a_dead_target_fails_the_run_and_an_objective_without_data_says_why() {
    // Nothing listens there: every request fails at once without an answer.
    let url = format!("http://127.0.0.1:{}", closed_port());
    let json = summary_path("dead");
    let (out, _) = run(&[
        "--duration",
        "2s",
        "--max-rps",
        "20",
        "--slo",
        "p99<1s,rps>=95%",
        "--summary-json",
        json.to_str().unwrap(),
        "--progress",
        "none",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stdout.contains("PASSED") && stdout.contains("FAILED"), "{stdout}");
    let summary = take_summary(&json);
    assert_eq!(summary["passed"], false, "{summary}");
    assert!(summary["summary"]["requests"]["sent"].as_u64() > Some(0), "it did send: {summary}");
    // No answer, so no latency: no data, and that fails the run.
    let p99 = &summary["slo"][0];
    assert_eq!((p99["slo"].as_str(), p99["outcome"].as_str()), (Some("p99<1s"), Some("no_data")), "{summary}");
    assert!(p99["reason"].as_str().is_some_and(|r| r.contains("no request was answered")), "{summary}");
    // Requests sent but never answered do not meet a rate objective.
    let rps = &summary["slo"][1];
    assert_eq!((rps["slo"].as_str(), rps["outcome"].as_str()), (Some("rps>=95%"), Some("missed")), "{summary}");
    assert_eq!(rps["value"].as_f64(), Some(0.0), "{summary}");
    assert!(
        stdout.lines().any(|l| l.contains("p99<1s") && l.contains("no data") && l.contains("no request was answered")),
        "the table says which objective had no data and why:\n{stdout}"
    );

    // No data alone fails the run too: a gate must not pass because nothing could be judged.
    let (out, _) = run(&["--duration", "2s", "--max-rps", "20", "--slo", "p99<1s", "--progress", "none", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let verdict = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(verdict.starts_with("FAILED") && verdict.contains("p99<1s") && verdict.contains("no data"), "{stdout}");
}

#[test]
fn a_workload_swap_that_leaves_an_slo_without_its_request_is_warned_about() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("SLO", "create_order:p95<1s,p95<1s"), ("INITIAL_MODE", "pause")]);
    let reads_only = r#"
requests:
  - {name: list_orders, weight: 1, method: GET, path: /orders}
"#;
    let res = request(sidecar.addr, "PUT", "/workload", &[], Some(reads_only));
    assert_eq!(res.status, 200, "{}", res.body);
    let warning =
        sidecar.wait_for_log(|v| v["level"] == "warn" && v["slo"] == "create_order:p95<1s", Duration::from_secs(10));
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", sidecar.output()));
    let message = warning["message"].as_str().unwrap_or_default();
    assert!(message.contains("create_order") && message.contains("list_orders"), "{warning}");
    assert!(
        sidecar.logs_matching(|v| v["level"] == "warn" && v["slo"] == "p95<1s").is_empty(),
        "an objective for all traffic still has requests:\n{}",
        sidecar.output()
    );
}

#[test]
fn the_summary_adds_up_with_a_setup_login_and_equals_the_target_counts() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let json = summary_path("setup");
    let workload = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/workloads/login-then-api.yaml");
    let (out, _) = run(&[
        "--workload",
        workload,
        "--duration",
        "3s",
        "--max-rps",
        "20",
        "--summary-json",
        json.to_str().unwrap(),
        "--progress",
        "none",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = take_summary(&json);
    let requests = &summary["summary"]["requests"];
    let count = |k: &str| requests[k].as_u64().unwrap_or_else(|| panic!("no {k} in {summary}"));
    // The setup login is sent like any request: it is in `sent` as in
    // `successful` (it was in `successful` only).
    assert_eq!(count("sent"), count("successful") + count("failed"), "{summary}");
    assert_eq!(target_count(&target, Some("login")), 1);
    assert_eq!(target_count(&target, None), count("sent"), "{summary}");
}

#[test]
fn stages_of_ones_own_and_virtual_users_run_as_written_and_bad_ones_exit_2() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    // 2 s up to 20/s (20), 2 s at 20/s (40), 1 s down to 0 (10): 70 requests.
    let json = summary_path("stages");
    let (out, _) =
        run(&["--stages", "2s:20,2s:20,1s:0", "--summary-json", json.to_str().unwrap(), "--progress", "none", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary = take_summary(&json);
    let sent = summary["summary"]["requests"]["sent"].as_f64().expect("sent");
    assert!((sent - 70.0).abs() <= 3.0, "sent {sent} where the stages' integral is 70: {stdout}");
    assert!(eventually(Duration::from_secs(3), || target_count(&target, None) as f64 == sent), "{stdout}");
    assert_eq!((summary["duration_secs"].as_f64(), summary["max_rps"].as_f64()), (Some(5.0), Some(20.0)));

    // Virtual users: the closed model says so, and no rate is due.
    let json = summary_path("user-stages");
    let (out, _) =
        run(&["--user-stages", "1s:3,2s:3", "--summary-json", json.to_str().unwrap(), "--progress", "none", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("up to 3 virtual users") && stdout.contains("no rate due"), "{stdout}");
    let summary = take_summary(&json);
    assert_eq!(summary["users"], 3, "{summary}");
    assert!(summary["summary"]["requests"]["sent"].as_u64() > Some(0), "{summary}");

    for (args, words) in [
        (vec!["--stages", "2s:x"], "invalid --stages item \"2s:x\""),
        (vec!["--stages", "2s"], "write DURATION:TARGET"),
        (vec!["--stages", "0.01s:5,2s:5"], "stages[0].duration_secs"),
        // Never a complaint about a MAX_RPS the user did not set.
        (vec!["--stages", "2s:0,1s:0"], "every target is 0"),
        (vec!["--stages", "2s:1e308"], "stages[0].rps"),
        (vec!["--stages", "2s:5", "--max-rps", "3"], "cannot be used with"),
        (vec!["--user-stages", "2s:1.5"], "stages[0].users"),
        (vec!["--users", "5", "--max-rps", "3"], "cannot be used with"),
    ] {
        let mut all = args.clone();
        all.push(&url);
        let (out, _) = run(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line, not {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr:?} lacks {words:?}");
    }
}
