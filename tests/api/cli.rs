//! The binary as a command: bad settings, healthcheck, signals.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(args).env_clear();
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run trafficgen")
}

#[test]
fn bad_settings_stop_start_up_with_one_line_naming_them_and_exit_2() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("TARGET_URL", "not a url")], "TARGET_URL"),
        (&[("TARGET_URL", "ftp://x")], "TARGET_URL"),
        (&[("PORT", "70000")], "PORT"),
        (&[("PORT", "abc")], "PORT"),
        (&[("BIND", "localhost:1")], "BIND"),
        (&[("MAX_RPS", "abc")], "MAX_RPS"),
        (&[("MAX_RPS", "-5")], "MAX_RPS"),
        (&[("STEADY_RPS", "2000")], "STEADY_RPS"),
        (&[("INITIAL_MODE", "turbo")], "INITIAL_MODE"),
        (&[("JITTER", "2")], "JITTER"),
        (&[("MIX", "create_order=60,delete_order=40")], "MIX"),
        (&[("MIX", "create_order=0,list_orders=0,get_order=0")], "MIX"),
        (&[("ID_BUFFER_SIZE", "0")], "ID_BUFFER_SIZE"),
        (&[("REQUEST_TIMEOUT_MS", "0")], "REQUEST_TIMEOUT_MS"),
        (&[("MAX_IN_FLIGHT", "-1")], "MAX_IN_FLIGHT"),
        (&[("WARMUP_SECS", "soon")], "WARMUP_SECS"),
        (&[("LOG_FORMAT", "xml")], "LOG_FORMAT"),
    ];
    for (env, setting) in cases {
        let out = run(&[], env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{env:?}: not one line: {stderr}");
        assert!(stderr.contains(setting), "{env:?}: {stderr:?} does not name {setting}");
        assert!(out.stdout.is_empty(), "{env:?}: started anyway");
    }
    let out = run(&["demo-target"], &[("DEMO_ERROR_RATE", "1.5")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DEMO_ERROR_RATE"));
}

#[test]
fn help_lists_every_setting_with_its_env_name() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for env in [
        "TARGET_URL",
        "PORT",
        "BIND",
        "WARMUP_SECS",
        "INITIAL_MODE",
        "STEADY_RPS",
        "BURST_RPS",
        "OVERLOAD_RPS",
        "MAX_RPS",
        "JITTER",
        "MIX",
        "ID_BUFFER_SIZE",
        "REQUEST_TIMEOUT_MS",
        "MAX_IN_FLIGHT",
        "LOG_FORMAT",
    ] {
        assert!(help.contains(&format!("[env: {env}=")), "--help lacks {env}");
    }
    for sub in ["demo-target", "healthcheck"] {
        assert!(help.contains(sub), "--help lacks {sub}");
    }
}

#[test]
fn healthcheck_exits_0_for_a_healthy_sidecar_and_1_otherwise() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("WARMUP_SECS", "30")]);
    let url = format!("http://{}/health", sidecar.addr);
    assert_eq!(run(&["healthcheck", "--url", &url], &[]).status.code(), Some(0));
    // The default URL follows PORT, so one image HEALTHCHECK fits both services.
    let port = target.addr.port().to_string();
    assert_eq!(run(&["healthcheck"], &[("PORT", &port)]).status.code(), Some(0), "demo target via PORT");
    let dead = format!("http://127.0.0.1:{}/health", closed_port());
    let out = run(&["healthcheck", "--url", &dead, "--timeout-ms", "500"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("unhealthy: "));
    let not_health = format!("http://{}/status", sidecar.addr);
    assert_eq!(run(&["healthcheck", "--url", &not_health], &[]).status.code(), Some(1), "200 without status healthy");
}

#[test]
fn sigterm_stops_sending_and_exits_0() {
    let target = start_demo_target(&["--latency-ms", "300"]);
    let mut sidecar = start_sidecar(&target, &[("INITIAL_MODE", "overload"), ("SHUTDOWN_GRACE_SECS", "3")]);
    std::thread::sleep(Duration::from_millis(1500));
    let asked = Instant::now();
    let status = sidecar.terminate(Duration::from_secs(6)).expect("did not exit within the grace period");
    assert!(status.success(), "exit {status:?}:\n{}", sidecar.output());
    let took = asked.elapsed();
    // In-flight requests (300 ms each) were let finish: nothing failed.
    let stopped = sidecar
        .wait_for_log(|v| v["message"] == "stopped", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no stopped line:\n{}", sidecar.output()));
    assert_eq!(stopped["failed"], 0, "{stopped}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Nothing was sent after the signal: the target's count stops at the sidecar's total.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(target_count(&target, None), stopped["total"].as_u64().unwrap());
}

#[test]
fn text_log_format_is_plain_lines() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let mut env = sidecar_env(&url, &[("LOG_FORMAT", "text")]);
    env.push(("PORT", "0"));
    let mut child =
        Command::new(BIN).env_clear().envs(env.iter().copied()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains(" INFO  control server listening on 127.0.0.1:"), "{text}");
    assert!(!first.starts_with('{'));
}
