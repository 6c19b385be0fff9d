//! Attacks from outside (issue 16): each test reproduces one and checks the
//! sidecar survives it with a clear answer, bounded resources, and nothing
//! changed that should not be.

use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Runs the sidecar with `env` to its exit, bounded: if it wrongly starts,
/// it is killed and the test fails instead of hanging.
fn run_to_exit(program: &[&str], env: &[(&str, &str)]) -> Output {
    let (exe, args) = program.split_first().expect("a program");
    let mut command = Command::new(exe);
    command.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command.env("PORT", "0").env("BIND", "127.0.0.1").env("TARGET_URL", "http://127.0.0.1:9");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run trafficgen");
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!("{program:?} {env:?} did not exit:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    child.wait_with_output().expect("output")
}

/// Asserts `out` is a start-up refusal: exit 2, one line on stderr naming each of `words`.
fn assert_refused(out: &Output, words: &[&str], case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{case}: not one line: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "{case}: {stderr:?} does not name {word}");
    }
}

// --- item 1: a tiny rate must not reach the clock ---------------------------

#[test]
fn a_tiny_custom_rate_is_refused_and_the_slowest_allowed_one_keeps_the_process_up() {
    let target = start_demo_target(&[]);
    let mut sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    for tiny in ["1e-20", "1e-19", "5e-324", "0.00001"] {
        let res = sidecar.post("/mode/custom", Some(&format!(r#"{{"rps": {tiny}}}"#)));
        assert_eq!(res.status, 422, "rps {tiny}: {}", res.body);
        assert!(res.json()["error"].as_str().unwrap().contains("below one request a day"), "{}", res.body);
        assert_eq!(sidecar.get_json("/status")["mode"], "pause", "rps {tiny} changed the mode");
    }
    // One a day: the first request leaves at once, the next is a day away,
    // and the engine must hold that time without overflowing.
    let res = sidecar.post("/mode/custom", Some(r#"{"rps": 0.0000116}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(eventually(Duration::from_secs(5), || target_count(&target, None) == 1), "the first request");
    sleep(Duration::from_millis(500));
    assert!(sidecar.is_running(), "sidecar died:\n{}", sidecar.output());
    assert_eq!(sidecar.get_json("/status")["state"], "running");
    assert_eq!(target_count(&target, None), 1, "only one request in the first day");
}

#[test]
fn a_tiny_rate_setting_stops_start_up_with_one_line() {
    for (setting, value) in [("STEADY_RPS", "1e-20"), ("BURST_RPS", "1e-19"), ("MAX_RPS", "1e-300")] {
        let out = run_to_exit(&[BIN], &[(setting, value)]);
        assert_refused(&out, &[setting], &format!("{setting}={value}"));
    }
}
