//! The binary as a command: bad settings, healthcheck, signals.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Runs the binary to its exit, bounded: a setting wrongly accepted would
/// start a sidecar, which is killed and reported instead of hanging the suite.
/// It listens on a free loopback port unless the case sets PORT/BIND itself.
fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(args).env_clear().env("PORT", "0").env("BIND", "127.0.0.1");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run trafficgen");
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!("trafficgen {args:?} {env:?} did not exit:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    child.wait_with_output().expect("output")
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
        (&[("TARGET_URL", "http://")], "TARGET_URL"),
        (&[("TARGET_URL", "http://x:99999")], "TARGET_URL"),
        (&[("STEADY_RPS", "-1")], "STEADY_RPS"),
        (&[("OVERLOAD_RPS", "NaN")], "OVERLOAD_RPS"),
        (&[("MAX_RPS", "0")], "MAX_RPS"),
        (&[("MAX_RPS", "inf")], "MAX_RPS"),
        (&[("MAX_IN_FLIGHT", "0")], "MAX_IN_FLIGHT"),
        (&[("REQUEST_TIMEOUT_MS", "-5")], "REQUEST_TIMEOUT_MS"),
        (&[("WARMUP_SECS", "-1")], "WARMUP_SECS"),
        (&[("SHUTDOWN_GRACE_SECS", "-1")], "SHUTDOWN_GRACE_SECS"),
        (&[("ID_BUFFER_SIZE", "-3")], "ID_BUFFER_SIZE"),
        (&[("MIX", "create_order=abc")], "MIX"),
        (&[("MIX", "create_order=60;list_orders=40")], "MIX"),
        (&[("CONTROL_TOKEN", "two words")], "CONTROL_TOKEN"),
        (&[("CONTROL_TOKEN_FILE", "/nonexistent/token")], "CONTROL_TOKEN_FILE"),
        // An empty token fails closed: a secret that did not render never
        // leaves the control API open.
        (&[("CONTROL_TOKEN", "")], "CONTROL_TOKEN"),
        (&[("CONTROL_TOKEN_FILE", "")], "CONTROL_TOKEN_FILE"),
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

/// Compose files write `STATE_DIR: ${STATE_DIR:-}`: an optional setting
/// set empty is as if unset (its default, or none), never a start-up error.
#[test]
fn empty_optional_settings_are_unset() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let empty = [
        "STATE_DIR",
        "TLS_CA_FILE",
        "WARMUP_SECS",
        "STATS_INTERVAL_SECS",
        "WORKLOAD_FILE",
        "PEERS",
        "SLO",
        "SLO_WINDOW",
        "ALLOWED_ORIGINS",
    ];
    let mut env = sidecar_env(&url, &[("INITIAL_MODE", "pause")]);
    env.retain(|(k, _)| !empty.contains(k));
    env.extend(empty.iter().map(|k| (*k, "")));
    // Panics with the output if it does not start.
    let sidecar = Proc::start(&[], &env);
    assert_eq!(sidecar.get_json("/health")["status"], "healthy");
    let status = sidecar.get_json("/status");
    // WARMUP_SECS empty: the default 10 s warm-up.
    assert_eq!(status["state"], "warming_up", "{status}");
    assert_eq!(
        status["mix"], "create_order=60,list_orders=25,get_order=15",
        "WORKLOAD_FILE empty: the built-in workload"
    );
    // The other commands read the same variables the same way.
    let port = sidecar.addr.port().to_string();
    let out = run(&["healthcheck"], &[("HEALTHCHECK_URL", ""), ("PORT", &port)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["export", "--format", "k6"], &[("WORKLOAD_FILE", ""), ("SLO", "")]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("built-in orders workload"));
}

#[test]
fn help_lists_every_setting_with_its_env_name() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // `[env: NAME]` without `=` for a value --help must not show (the token).
    let has_env = |env: &str| help.contains(&format!("[env: {env}=")) || help.contains(&format!("[env: {env}]"));
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
        "SHUTDOWN_GRACE_SECS",
        "STATS_INTERVAL_SECS",
        "CONTROL_TOKEN",
        "CONTROL_TOKEN_FILE",
    ] {
        assert!(has_env(env), "--help lacks {env}");
    }
    assert!(!help.contains("[env: CONTROL_TOKEN="), "--help must not show the token's value");
    let secret = run(&["--help"], &[("CLUSTER_SECRET", "s3cret-of-the-replicas")]);
    let shown = String::from_utf8_lossy(&secret.stdout);
    assert!(shown.contains("[env: CLUSTER_SECRET]") && !shown.contains("s3cret"), "--help shows the cluster secret");
    // Every setting is a flag and an environment variable; only --demo is a flag alone.
    let options: Vec<&str> = help.lines().map(str::trim_start).filter(|l| l.starts_with("--")).collect();
    assert!(options.len() >= 20, "{options:?}");
    for (i, option) in options.iter().enumerate() {
        let flag = option.split_whitespace().next().unwrap_or_default();
        if ["--demo", "--help", "--version"].contains(&flag) {
            continue;
        }
        // Long help puts the description, with [env: …], on the next line.
        let text = help.split(option).nth(1).unwrap_or_default();
        let entry = options.get(i + 1).map_or(text, |next| text.split(next).next().unwrap_or_default());
        assert!(entry.contains("[env: "), "{flag} has no environment variable");
    }
    assert!(help.contains("--demo"), "--help lacks --demo");
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
    let dead_port = closed_port().to_string();
    assert_eq!(run(&["healthcheck"], &[("PORT", &dead_port)]).status.code(), Some(1), "PORT with nothing behind it");
    let dead = format!("http://127.0.0.1:{}/health", closed_port());
    let out = run(&["healthcheck", "--url", &dead, "--timeout-ms", "500"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("unhealthy: "));
    let not_health = format!("http://{}/status", sidecar.addr);
    assert_eq!(run(&["healthcheck", "--url", &not_health], &[]).status.code(), Some(1), "200 without status healthy");
}

#[test]
fn sigterm_under_heavy_traffic_lets_in_flight_finish_sends_nothing_more_and_exits_0() {
    let _heavy = heavy_test();
    let target = start_demo_target(&["--latency-ms", "300", "--workers", "2"]);
    let mut sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("SHUTDOWN_GRACE_SECS", "3")]);
    sidecar.post("/mode/custom", Some(r#"{"rps": 1000}"#));
    // 1 000/s with 300 ms answers: about 300 open at once.
    let in_flight = || sidecar.get_json("/status")["in_flight"].as_u64().unwrap();
    assert!(eventually(Duration::from_secs(5), || in_flight() >= 100), "not heavy enough: {} in flight", in_flight());
    let in_flight = in_flight();
    let asked = Instant::now();
    let status = sidecar.terminate(Duration::from_secs(6)).expect("did not exit within the grace period");
    let took = asked.elapsed();
    assert!(status.success(), "exit {status:?}:\n{}", sidecar.output());
    // In-flight requests (300 ms each) were let finish: nothing failed.
    let stopped = sidecar
        .wait_for_log(|v| v["message"] == "stopped", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no stopped line:\n{}", sidecar.output()));
    assert_eq!(stopped["failed"], 0, "{stopped}");
    assert!(took < Duration::from_secs(3), "took {took:?} with {in_flight} in flight");
    eprintln!("SIGTERM with {in_flight} in flight: exited 0 after {took:?}");
    // Nothing was started after the signal: the target saw exactly what the
    // sidecar counted (it counts an answer just before sending it, so poll).
    let total = stopped["total"].as_u64().unwrap();
    assert!(eventually(Duration::from_secs(2), || target_count(&target, None) == total));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(target_count(&target, None), total, "requests reached the target after the signal");
}

#[test]
fn sigint_stops_like_sigterm() {
    let target = start_demo_target(&["--latency-ms", "300"]);
    let mut sidecar = start_sidecar(&target, &[("INITIAL_MODE", "overload"), ("SHUTDOWN_GRACE_SECS", "3")]);
    assert!(eventually(Duration::from_secs(5), || sidecar.get_json("/status")["in_flight"].as_u64() >= Some(10)));
    sidecar.signal(libc::SIGINT);
    let status = sidecar.wait_exit(Duration::from_secs(6)).unwrap_or_else(|| panic!("no exit:\n{}", sidecar.output()));
    assert!(status.success(), "exit {status:?}:\n{}", sidecar.output());
    assert!(
        sidecar.wait_for_log(|v| v["message"] == "received SIGINT", Duration::ZERO).is_some(),
        "{}",
        sidecar.output()
    );
    let stopped = sidecar
        .wait_for_log(|v| v["message"] == "stopped", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no stopped line:\n{}", sidecar.output()));
    // The requests in flight (300 ms each) were let finish.
    assert_eq!(stopped["failed"], 0, "{stopped}");
    let total = stopped["total"].as_u64().unwrap();
    assert!(eventually(Duration::from_secs(2), || target_count(&target, None) == total), "{stopped}");
}

#[test]
fn sigterm_with_a_stuck_target_exits_0_after_the_grace_period() {
    let target = crate::peers::FakeTarget::start(crate::peers::Behaviour::Hang);
    let url = target.url();
    let mut sidecar = Proc::start(&[], &sidecar_env(&url, &[("INITIAL_MODE", "burst"), ("SHUTDOWN_GRACE_SECS", "1")]));
    // Requests stuck at the target, for the drain to wait on (a fixed sleep
    // assumed they were there by then).
    let stuck = || sidecar.get_json("/status")["in_flight"].as_u64().unwrap_or(0);
    assert!(eventually(Duration::from_secs(5), || stuck() >= 10), "only {} requests in flight", stuck());
    let asked = Instant::now();
    let status = sidecar.terminate(Duration::from_secs(5)).expect("did not exit");
    assert!(status.success(), "exit {status:?}");
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "took {took:?}");
    assert!(sidecar.output().contains("grace period over"), "{}", sidecar.output());
}

#[test]
fn text_log_format_is_plain_lines() {
    let target = start_demo_target(&[]);
    let url = format!("http://{}", target.addr);
    let sidecar = Proc::spawn(&[], &sidecar_env(&url, &[("LOG_FORMAT", "text")]));
    let listening = sidecar.wait_for_line("control server listening on", Duration::from_secs(15));
    let text = sidecar.output();
    let first = text.lines().next().unwrap_or_default();
    assert_eq!(listening.as_deref(), Some(first), "{text}");
    assert!(first.contains(" INFO  control server listening on 127.0.0.1:"), "{text}");
    assert!(!first.starts_with('{'));
}
