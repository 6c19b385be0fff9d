//! `trafficgen export` and `GET /export/{format}` from outside: the
//! scripts for every example workload, the built-in one and a hostile one
//! against checked-in snapshots (same input, same bytes), every bad input,
//! and the API following the running mode.
//!
//! Snapshots live in `tests/snapshots/export/`; after a deliberate change,
//! regenerate them with
//! `UPDATE_SNAPSHOTS=1 cargo test --test api export_snapshots` and review
//! the diff. (The scripts are run and parsed by the real tools in
//! `ci/export-checks.sh`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

const FORMATS: [(&str, &str); 3] = [("k6", ".k6.js"), ("locust", ".locustfile.py"), ("artillery", ".artillery.yml")];

/// Each snapshot case: its name, the workload file (none: the built-in)
/// and the rest of the arguments.
const CASES: [(&str, Option<&str>, &[&str]); 9] = [
    ("builtin", None, &[]),
    (
        "orders",
        Some("examples/workloads/orders.yaml"),
        &["--scenario", "error_injection", "--max-rps", "20", "--ramp-up", "10s", "--slo", "p95<300ms,error_rate<40%"],
    ),
    (
        "users-crud",
        Some("examples/workloads/users-crud.yaml"),
        &[
            "--scenario",
            "peak",
            "--duration",
            "2m",
            "--max-rps",
            "50",
            "--slo",
            "p95<300ms,p99<1s,error_rate<1%,rps>=95%,create_user:p95<200ms",
        ],
    ),
    (
        "login-then-api",
        Some("examples/workloads/login-then-api.yaml"),
        &["--scenario", "latency_degradation", "--max-rps", "10", "--slo", "get_account:p99<500ms,error_rate<1%"],
    ),
    (
        "hostile",
        Some("tests/fixtures/export/hostile.yaml"),
        &[
            "--scenario",
            "error_injection",
            "--max-rps",
            "7.5",
            "--ramp-up",
            "1.5s",
            "--duration",
            "90s",
            "--slo",
            "p50<=20ms,max<2s,create:error_rate<1%,read:rps>=50%,broken:rps>=1%,login:rps>=1%,raw:p90>1ms",
        ],
    ),
    (
        "journeys",
        Some("tests/fixtures/export/journeys.yaml"),
        &["--scenario", "error_injection", "--max-rps", "10", "--slo", "p95<300ms,rps>=90%,browse:p99<1s"],
    ),
    (
        "journey-users",
        Some("examples/workloads/journey-users.yaml"),
        &["--scenario", "peak", "--duration", "2m", "--max-rps", "20"],
    ),
    // Users mode (the closed model): a ramp of users with a pause between
    // arrivals, and stages of users of one's own over a journey workload.
    (
        "builtin-users",
        None,
        &["--users", "20", "--ramp-up", "10s", "--duration", "2m", "--pause", "1s..3s", "--slo", "p95<300ms,rps>=90%"],
    ),
    (
        "journey-user-stages",
        Some("examples/workloads/journey-users.yaml"),
        &["--user-stages", "1m:20,5m:20,30s:0", "--pause", "2s"],
    ),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `trafficgen export ARGS…` from the repository root, bounded in time,
/// nothing inherited from the environment.
fn export(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("export")
        .args(args)
        .current_dir(repo())
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run trafficgen");
    let deadline = Instant::now() + Duration::from_secs(20);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        panic!("export {args:?} did not exit");
    }
    child.wait_with_output().expect("output")
}

fn case_args<'a>(format: &'a str, workload: Option<&'a str>, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--format", format];
    if let Some(file) = workload {
        args.extend(["--workload", file]);
    }
    args.extend_from_slice(rest);
    args
}

fn snapshot_path(name: &str, suffix: &str) -> PathBuf {
    repo().join("tests/snapshots/export").join(format!("{name}{suffix}"))
}

#[test]
fn export_snapshots_match_for_every_format_and_workload() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut stale = Vec::new();
    for (name, workload, rest) in CASES {
        for (format, suffix) in FORMATS {
            let args = case_args(format, workload, rest);
            let first = export(&args);
            assert!(first.status.success(), "{args:?}: {}", String::from_utf8_lossy(&first.stderr));
            assert!(first.stderr.is_empty(), "{args:?}: {}", String::from_utf8_lossy(&first.stderr));
            let again = export(&args);
            assert_eq!(first.stdout, again.stdout, "{args:?}: the same input must give the same bytes");
            let path = snapshot_path(name, suffix);
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &first.stdout).unwrap();
                continue;
            }
            let expected = std::fs::read(&path).unwrap_or_default();
            if expected != first.stdout {
                let got = String::from_utf8_lossy(&first.stdout).into_owned();
                let want = String::from_utf8_lossy(&expected).into_owned();
                let line = got.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(0);
                stale.push(format!(
                    "{} differs from line {}:\n  got:  {}\n  want: {}",
                    path.display(),
                    line + 1,
                    got.lines().nth(line).unwrap_or("<end>"),
                    want.lines().nth(line).unwrap_or("<end>")
                ));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{}\n(if the change is meant, regenerate: UPDATE_SNAPSHOTS=1 cargo test --test api export_snapshots)",
        stale.join("\n")
    );
}

#[test]
fn export_writes_to_a_file_what_it_prints() {
    let dir = std::env::temp_dir().join(format!("trafficgen-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out.py");
    let out = export(&["--format", "locust", "-o", file.to_str().unwrap()]);
    assert!(out.status.success() && out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = export(&["--format", "locust"]);
    assert_eq!(std::fs::read(&file).unwrap(), printed.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn export_bad_input_exits_2_with_one_line_naming_it() {
    let dir = std::env::temp_dir().join(format!("trafficgen-export-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, "requests:\n  - name: a\n    weight: 0\n    method: GET\n    path: x\n").unwrap();
    let broken = broken.to_str().unwrap();
    let drawn_base64 = dir.join("base64.yaml");
    std::fs::write(
        &drawn_base64,
        "requests:\n  - name: a\n    weight: 1\n    method: GET\n    path: /a\n    headers:\n      X-Key: \"{{ base64(random_string(8)) }}\"\n",
    )
    .unwrap();
    let drawn_base64 = drawn_base64.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--format", "jmeter"], "unknown export format 'jmeter'; formats: k6, locust, artillery"),
        (&["--format", "k6", "--scenario", "tsunami", "--max-rps", "5"], "unknown scenario 'tsunami'"),
        (&["--format", "k6", "--scenario", "peak"], "--scenario needs --max-rps"),
        (&["--format", "k6", "--scenario", "peak", "--max-rps", "5", "--rps", "2"], "--rps is the constant rate"),
        (&["--format", "k6", "--max-rps", "5"], "--max-rps is the peak of a --scenario"),
        (&["--format", "k6", "--rps", "0"], "rps must be a number from 0.001"),
        (&["--format", "k6", "--rps", "NaN"], "rps must be a number from 0.001"),
        (&["--format", "k6", "--rps", "1e300"], "rps must be a number from 0.001 to 1000000 requests/s, not 1e300"),
        (&["--format", "k6", "--duration", "forever"], "invalid --duration \"forever\""),
        (&["--format", "k6", "--duration", "5y"], "unknown unit `y`"),
        (&["--format", "k6", "--duration", "9999h"], "a week"),
        (&["--format", "k6", "--duration", "10s", "--ramp-up", "20s"], "ramp-up must be from 0 to the duration"),
        (&["--format", "k6", "--scenario", "peak", "--max-rps", "5", "--ramp-up", "5s"], "own ramp"),
        (&["--format", "k6", "--slo", "p95<300ms,p99<1"], "SLO clause 2 \"p99<1\": give the latency a unit"),
        (&["--format", "k6", "--slo", "create_ordr:p95<1s"], "no request is named `create_ordr`"),
        (&["--format", "k6", "--endpoints", "list_orders,nope"], "invalid --endpoints: 'nope' not among"),
        (&["--format", "k6", "--endpoints", ","], "invalid --endpoints: must name at least one request"),
        (&["--format", "k6", "--endpoints", "a\nb"], "'a\\nb' not among"),
        (&["--format", "k6", "--target-url", "ftp://x"], "invalid --target-url"),
        (&["--format", "k6", "--mix", "buy=1"], "invalid --mix"),
        (&["--format", "k6", "--id-buffer-size", "0"], "invalid --id-buffer-size"),
        (&["--format", "k6", "--max-in-flight", "0"], "invalid --max-in-flight"),
        (&["--format", "k6", "--workload", "/nonexistent/w.yaml"], "cannot read the file"),
        (&["--format", "k6", "--workload", broken], "and 1 more"),
        (&["--format", "artillery", "--workload", drawn_base64], "Artillery has no base64 template: `a` uses base64"),
        (&["--format", "k6", "-o", "/nonexistent/dir/x.js"], "cannot write /nonexistent/dir/x.js"),
        (&["--format", "k6", "--users", "0"], "invalid --users \"0\": must be a whole number from 1 to 100000"),
        (&["--format", "k6", "--users", "2.5"], "invalid --users \"2.5\""),
        (&["--format", "k6", "--users", "-1"], "invalid --users \"-1\""),
        (&["--format", "k6", "--users", "100001"], "invalid --users \"100001\""),
        (&["--format", "k6", "--users", "5", "--rps", "2"], "--users counts virtual users"),
        (
            &["--format", "locust", "--users", "5", "--scenario", "peak", "--max-rps", "9"],
            "leave out --rps and --max-rps",
        ),
        (&["--format", "k6", "--pause", "1s"], "--pause is the users' pause: give it with --users or --user-stages"),
        (&["--format", "k6", "--users", "5", "--pause", "3s..1s"], "invalid --pause \"3s..1s\""),
        (&["--format", "k6", "--users", "5", "--pause", "2h"], "invalid --pause \"2h\""),
        (&["--format", "k6", "--users", "5", "--user-stages", "1m:5"], "give --users or --user-stages, not both"),
        (&["--format", "k6", "--user-stages", "1m:5", "--duration", "2m"], "leave out --duration and --ramp-up"),
        (&["--format", "k6", "--user-stages", "1m:5,1m:2.5"], "invalid --user-stages item 2: users must be a whole"),
        (&["--format", "k6", "--user-stages", "1m"], "invalid --user-stages item \"1m\": write DURATION:TARGET"),
        (&["--format", "k6", "--user-stages", "1m:0"], "invalid --user-stages: every target is 0"),
        (&["--format", "k6", "--user-stages", "10s:5", "--scenario", "peak"], "the stages are the shape"),
        (&["--format", "artillery", "--user-stages", "5s:5", "--rps", "1"], "--user-stages counts virtual users"),
        (&["--frmat", "k6"], "unexpected argument"),
        (&[], "--format"),
    ];
    for (args, expected) in cases {
        let out = export(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line, not: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn export_writes_users_mode_for_every_tool_from_the_command_line() {
    let text = |args: &[&str]| {
        let out = export(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let users = ["--users", "20", "--pause", "1s..3s", "--duration", "2m"];
    let k6 = text(&[&["--format", "k6"], &users[..]].concat());
    assert!(k6.contains("executor: \"constant-vus\",\n      vus: 20,\n      duration: \"120s\""), "{k6}");
    let locust = text(&[&["--format", "locust"], &users[..]].concat());
    assert!(locust.contains("    wait_time = between(1, 3)\n"), "{locust}");
    assert!(locust.contains("STAGES = [\n    (120, 20, 20),\n]"), "{locust}");
    let artillery = text(&[&["--format", "artillery"], &users[..]].concat());
    assert!(artillery.contains("    - duration: 1\n      arrivalCount: 20\n"), "{artillery}");
    assert!(artillery.contains("      - loop:\n") && artillery.contains("            jitter: 1000\n"), "{artillery}");
    // Stages of users, and the default pause of 1 s.
    let staged = text(&["--format", "locust", "--user-stages", "1m:20,5m:20,30s:0"]);
    assert!(staged.contains("STAGES = [\n    (60, 0, 20),\n    (300, 20, 20),\n    (30, 20, 0),\n]"), "{staged}");
    assert!(staged.contains("    wait_time = constant(1)\n"), "{staged}");
    // A rate without users is a rate, as ever.
    assert!(text(&["--format", "locust", "--rps", "3"]).contains("def arrival_time(n):"));
}

/// The sidecar, aimed at a port nothing listens on, in a long warm-up:
/// it sends nothing while the tests ask for scripts.
fn quiet_sidecar(extra: &[(&str, &str)]) -> Proc {
    let target = format!("http://127.0.0.1:{}", closed_port());
    let mut env = sidecar_env(&target, &[("WARMUP_SECS", "3600")]);
    env.extend_from_slice(extra);
    Proc::start(&[], &env)
}

#[test]
fn the_api_exports_the_running_mode_as_the_command_line_does() {
    let sidecar = quiet_sidecar(&[]);
    let target = sidecar.get_json("/status")["target_url"].as_str().unwrap().to_string();
    for (format, suffix) in FORMATS {
        let res = sidecar.get(&format!("/export/{format}"));
        assert_eq!(res.status, 200, "{}", res.body);
        assert!(res.headers["content-type"].contains("charset=utf-8"), "{:?}", res.headers);
        assert!(res.headers["content-disposition"].contains(suffix), "{:?}", res.headers);
        // The steady mode (2/s) of the built-in workload, for this sidecar's target.
        let cli = export(&["--format", format, "--rps", "2", "--target-url", &target]);
        assert_eq!(res.body, String::from_utf8_lossy(&cli.stdout), "{format}: API and command line differ");
    }
    assert!(sidecar.get("/export/k6").body.contains("rate: 2,"));
    assert_eq!(sidecar.post("/mode/burst", None).status, 200);
    assert!(sidecar.get("/export/k6").body.contains("rate: 20,"), "follows the mode");
    let peak = sidecar.get("/export/k6?scenario=peak&duration_secs=120&max_rps=50&slo=p95%3C300ms");
    assert_eq!(peak.status, 200, "{}", peak.body);
    assert!(peak.body.contains("ramping-arrival-rate") && peak.body.contains("{ duration: \"30s\", target: 50 }"));
    assert!(peak.body.contains("\"http_req_duration\": [\"p(95)<300\"]"), "{}", peak.body);
    let head = request(sidecar.addr, "HEAD", "/export/locust", &[], None);
    assert_eq!(head.status, 200);
}

#[test]
fn the_api_refuses_bad_exports_with_json_errors() {
    let sidecar = quiet_sidecar(&[]);
    let cases: &[(&str, u16, &str)] = &[
        ("/export/jmeter", 404, "formats: /export/k6, /export/locust, /export/artillery"),
        ("/export/k6?scenario=tsunami&max_rps=5", 422, "unknown scenario 'tsunami'"),
        ("/export/k6?scenario=peak", 422, "needs max_rps"),
        ("/export/k6?scenario=peak&max_rps=5000", 422, "above MAX_RPS"),
        ("/export/k6?max_rps=5", 422, "peak of a scenario"),
        ("/export/k6?rps=0", 422, "rps must be a number from 0.001"),
        ("/export/k6?rps=abc", 422, "invalid float"),
        ("/export/k6?duration_secs=NaN", 422, "duration must be"),
        ("/export/k6?duration_secs=1e308", 422, "duration must be"),
        ("/export/k6?ramp_up_secs=-1", 422, "ramp-up"),
        ("/export/k6?slo=p95%3C3", 422, "SLO clause 1 \\\"p95<3\\\": give the latency a unit"),
        ("/export/k6?slo=nope:p95%3C3ms", 422, "no request is named `nope`"),
        ("/export/k6?job=1", 422, "no job '1'"),
        ("/export/k6?job=1&max_rps=5", 422, "give none of them"),
        ("/export/k6?job=1&endpoints=list_orders", 422, "give none of them"),
        ("/export/k6?endpoints=list_orders,nope", 422, "'nope' not among the workload's weighted requests"),
        ("/export/k6?turbo=1", 422, "unknown field `turbo`"),
    ];
    for (path, status, expected) in cases {
        let res = sidecar.get(path);
        assert_eq!(res.status, *status, "{path}: {}", res.body);
        let error = res.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(res.body.contains(expected) || error.contains(expected), "{path}: {}", res.body);
    }
    let post = sidecar.post("/export/k6", None);
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    assert_eq!(sidecar.post("/mode/pause", None).status, 200);
    let paused = sidecar.get("/export/artillery");
    assert_eq!(paused.status, 422);
    assert!(paused.body.contains("sends nothing"), "{}", paused.body);
    assert_eq!(sidecar.get("/export/artillery?rps=3").status, 200);
}

#[test]
fn the_api_export_needs_the_control_token_when_one_is_set() {
    let sidecar = quiet_sidecar(&[("CONTROL_TOKEN", "s3cret")]);
    let refused = sidecar.get("/export/k6");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.json()["error"].as_str().unwrap().contains("control token"));
    let wrong = request(sidecar.addr, "GET", "/export/k6", &[("Authorization", "Bearer nope")], None);
    assert_eq!(wrong.status, 401);
    let allowed = request(sidecar.addr, "GET", "/export/k6", &[("Authorization", "Bearer s3cret")], None);
    assert_eq!(allowed.status, 200, "{}", allowed.body);
}

#[test]
fn the_api_exports_a_running_journey_workload_as_each_tools_flow() {
    let file = repo().join("examples/workloads/journey-users.yaml");
    let sidecar = quiet_sidecar(&[("WORKLOAD_FILE", file.to_str().unwrap())]);
    let expected = [
        ("k6", "function journey_user_lifecycle() {"),
        ("locust", "    def journey_user_lifecycle(self):"),
        ("artillery", "  - name: \"user_lifecycle\"\n    weight: 1\n    flow:\n"),
    ];
    for (format, flow) in expected {
        let res = sidecar.get(&format!("/export/{format}?rps=5"));
        assert_eq!(res.status, 200, "{format}: {}", res.body);
        assert!(res.body.contains(flow), "{format}: {}", res.body);
        // Data values stay in the data file: the script reads it where it runs.
        assert!(res.body.contains("accounts.csv") && !res.body.contains("user001"), "{format}: {}", res.body);
    }
}

#[test]
fn env_values_are_read_where_the_script_runs_never_written_into_it() {
    let dir = std::env::temp_dir().join(format!("trafficgen-export-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("env.yaml");
    std::fs::write(
        &file,
        "requests:\n  - name: a\n    weight: 1\n    method: GET\n    path: /a\n    headers:\n      Authorization: \"Basic {{ base64('me:', env(TRAFFICGEN_ENV_PASSWORD)) }}\"\n",
    )
    .unwrap();
    // The exporting process has no such variable: the script reads the tool's own.
    for (format, read) in [
        ("k6", "requireEnv(\"TRAFFICGEN_ENV_PASSWORD\")"),
        ("locust", "require_env(\"TRAFFICGEN_ENV_PASSWORD\")"),
        ("artillery", "{{ $env.TRAFFICGEN_ENV_PASSWORD }}"),
    ] {
        let out = export(&["--format", format, "--workload", file.to_str().unwrap()]);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(read), "{format}");
    }
    // With the variable set, its value still stays out of the script.
    let file_text = file.to_str().unwrap().to_string();
    let sidecar = quiet_sidecar(&[("WORKLOAD_FILE", &file_text), ("TRAFFICGEN_ENV_PASSWORD", "Only-In-The-Env-9")]);
    for (format, _) in FORMATS {
        let res = sidecar.get(&format!("/export/{format}?rps=1"));
        assert_eq!(res.status, 200, "{format}: {}", res.body);
        assert!(!res.body.contains("Only-In-The-Env-9") && res.body.contains("TRAFFICGEN_ENV_PASSWORD"), "{format}");
    }
    drop(sidecar);
    std::fs::remove_dir_all(&dir).unwrap();
}
