//! Issue 21, items 6, 9, 10 and 11: what the control API shows and to
//! whom, the files it reads, and the smaller holes (event streams per
//! client, a `STATE_DIR` that cannot be written, SIGUSR1, a body of white
//! space). Each test reproduces the hole from outside.

use std::time::Duration;

use crate::helpers::*;
use crate::hostile::{TempDir, run_to_exit};
use crate::jobs::EventStream;

const TOKEN: &str = "exposure-test-token";

fn start_paused(target: &Proc, extra: &[(&str, &str)]) -> Proc {
    let mut env = vec![("INITIAL_MODE", "pause")];
    env.extend_from_slice(extra);
    start_sidecar(target, &env)
}

fn with_token(sidecar: &Proc, method: &str, path: &str) -> Response {
    let bearer = format!("Bearer {TOKEN}");
    request(sidecar.addr, method, path, &[("Authorization", &bearer)], None)
}

fn mkfifo(path: &str) {
    let c_path = std::ffi::CString::new(path).expect("a path");
    // SAFETY: a plain system call on a NUL-terminated path we own.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {path}: {}", std::io::Error::last_os_error());
}

// --- item 6: what logs and reads show ----------------------------------------

#[test]
fn a_rejected_workload_never_logs_its_rendered_body() {
    let dir = TempDir::new("leak");
    let good = "requests:\n  - {name: a, weight: 1, method: GET, path: /orders}\n";
    let file = dir.write("w.yaml", good);
    let target = start_demo_target(&[]);
    let sidecar = start_paused(&target, &[("WORKLOAD_FILE", &file)]);
    // A JSON text body with a trailing comma, holding a password.
    let leaky = "requests:\n  - name: login\n    weight: 1\n    method: POST\n    path: /login\n    content_type: application/json\n    body: '{\"user\": \"admin\", \"password\": \"hunter2-s3cret\",}'\n";
    std::fs::write(&file, leaky).unwrap();
    sidecar.signal(libc::SIGHUP);
    let logged = sidecar
        .wait_for_log(|v| v["message"].as_str().is_some_and(|m| m.contains("cannot be used")), Duration::from_secs(10));
    let logged = logged.unwrap_or_else(|| panic!("no refusal logged:\n{}", sidecar.output()));
    assert!(
        logged["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON once rendered (key must be a string at line 1 column 48 of the rendered body)"),
        "{logged}"
    );
    assert!(!sidecar.output().contains("hunter2"), "the password reached stdout:\n{}", sidecar.output());
    let logs = sidecar.get("/logs?limit=1000");
    assert_eq!(logs.status, 200);
    assert!(!logs.body.contains("hunter2"), "the password is in GET /logs");
    // A PUT of it says where, not what.
    let res = request(sidecar.addr, "PUT", "/workload", &[], Some(leaky));
    assert_eq!(res.status, 422);
    assert!(!res.body.contains("hunter2"), "{}", res.body);
}

#[test]
fn with_a_token_reads_that_may_hold_secrets_need_it_and_probes_do_not() {
    let target = start_demo_target(&[]);
    let sidecar = start_paused(&target, &[("CONTROL_TOKEN", TOKEN)]);
    let protected = [
        ("GET", "/logs"),
        ("GET", "/workload"),
        ("GET", "/jobs"),
        ("GET", "/jobs/job-1-missing"),
        ("HEAD", "/events"),
        ("HEAD", "/jobs/job-1-missing/events"),
        ("GET", "/export/k6?rps=1"),
    ];
    for (method, path) in protected {
        let res = request(sidecar.addr, method, path, &[], None);
        assert_eq!(res.status, 401, "{method} {path} without the token: {}", res.body);
        let with = with_token(&sidecar, method, path);
        let expected = if path.contains("missing") { 404 } else { 200 };
        assert_eq!(with.status, expected, "{method} {path} with the token: {}", with.body);
    }
    for path in ["/health", "/status", "/metrics", "/modes", "/config", "/presets", "/openapi.json", "/"] {
        assert_eq!(sidecar.get(path).status, 200, "{path} stays open for probes and scrapers");
    }
}

// --- item 9: files are read when asked, and only regular ones ---------------

#[test]
fn put_config_reads_no_workload_file_and_a_fifo_never_hangs_anything() {
    let dir = TempDir::new("files");
    let file = dir.write("w.yaml", "requests:\n  - {name: a, weight: 1, method: GET, path: /orders}\n");
    // At start: a FIFO is refused at once, not waited on.
    let fifo = dir.path("fifo.yaml");
    mkfifo(&fifo);
    let out = run_to_exit(&[("WORKLOAD_FILE", &fifo)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("a FIFO (named pipe), not a regular file"), "{stderr}");
    let target = start_demo_target(&[]);
    let sidecar = start_paused(&target, &[("WORKLOAD_FILE", &file)]);
    // Edited badly, then deleted: PUT /config does not read it.
    std::fs::write(&file, "requests: [oops").unwrap();
    let res = request(sidecar.addr, "PUT", "/config", &[], Some(r#"{"steady_rps": 3}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    std::fs::remove_file(&file).unwrap();
    let res = request(sidecar.addr, "PUT", "/config", &[], Some(r#"{"steady_rps": 4}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    // A FIFO put in its place, then SIGHUP: refused, and /health answers.
    mkfifo(&file);
    sidecar.signal(libc::SIGHUP);
    let refused = sidecar.wait_for_log(
        |v| {
            v["message"].as_str().is_some_and(|m| m.contains("cannot be used"))
                && v["error"].to_string().contains("FIFO")
        },
        Duration::from_secs(5),
    );
    assert!(refused.is_some(), "{}", sidecar.output());
    for _ in 0..5 {
        assert_eq!(sidecar.get("/health").status, 200);
    }
    assert_eq!(request(sidecar.addr, "PUT", "/config", &[], Some(r#"{"steady_rps": 5}"#)).status, 200);
    assert_eq!(sidecar.get_json("/workload")["requests"][0]["name"], "a", "the running workload goes on");
}

#[test]
fn a_fifo_as_the_state_file_is_set_aside_and_the_sidecar_starts() {
    let dir = TempDir::new("state-fifo");
    mkfifo(&dir.path("trafficgen-state.json"));
    let target = start_demo_target(&[]);
    // Proc::start fails the test if the listening line does not come.
    let sidecar = start_paused(&target, &[("STATE_DIR", dir.0.to_str().unwrap())]);
    let warned = sidecar.wait_for_log(
        |v| v["message"].as_str().is_some_and(|m| m.contains("state file") && m.contains("not a regular file")),
        Duration::from_secs(2),
    );
    assert!(warned.is_some(), "{}", sidecar.output());
    assert_eq!(sidecar.get("/health").status, 200);
}

// --- item 10: smaller holes ---------------------------------------------------

#[test]
fn one_client_address_holds_at_most_16_event_streams() {
    let target = start_demo_target(&[]);
    let sidecar = start_paused(&target, &[]);
    let held: Vec<EventStream> = (0..16)
        .map(|i| {
            let (status, stream) = EventStream::open_from(&sidecar, "/events", [127, 0, 0, 1]);
            assert_eq!(status, 200, "stream {i}");
            stream
        })
        .collect();
    let (status, _) = EventStream::open_from(&sidecar, "/events", [127, 0, 0, 1]);
    assert_eq!(status, 503, "a 17th stream from one address");
    let (status, _) = EventStream::open_from(&sidecar, "/events", [127, 0, 0, 2]);
    assert_eq!(status, 200, "another address is not held back");
    drop(held);
}

#[test]
fn an_export_is_refused_to_a_foreign_web_page() {
    let target = start_demo_target(&[]);
    let sidecar = start_paused(&target, &[]);
    let res = request(sidecar.addr, "GET", "/export/k6?rps=1", &[("Origin", "http://evil.example")], None);
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.json()["error"].as_str().unwrap().contains("cross-origin"), "{}", res.body);
    let own = format!("http://localhost:{}", sidecar.addr.port());
    assert_eq!(request(sidecar.addr, "GET", "/export/k6?rps=1", &[("Origin", &own)], None).status, 200);
}

#[test]
fn a_change_state_dir_cannot_keep_says_so_and_is_in_force() {
    let dir = TempDir::new("state-full");
    let target = start_demo_target(&[]);
    let sidecar = start_paused(&target, &[("STATE_DIR", dir.0.to_str().unwrap())]);
    let res = request(sidecar.addr, "PUT", "/config", &[], Some(r#"{"steady_rps": 3}"#));
    assert_eq!((res.status, &res.json()["persisted"]), (200, &serde_json::json!(true)), "{}", res.body);
    // Its temporary file's name taken by a directory: the write fails, as
    // on a full or read-only disk.
    let blocker = dir.0.join(format!(".trafficgen-state.json.tmp-{}", sidecar.pid()));
    std::fs::create_dir(&blocker).unwrap();
    let res = request(sidecar.addr, "PUT", "/config", &[], Some(r#"{"steady_rps": 4}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    let answer = res.json();
    assert_eq!(answer["persisted"], false, "{answer}");
    assert!(answer["persist_error"].as_str().unwrap().contains("will not survive a restart"), "{answer}");
    assert_eq!(sidecar.get_json("/config")["steady_rps"], 4.0, "the change is in force");
    std::fs::remove_dir(&blocker).unwrap();
    let res = request(sidecar.addr, "POST", "/config/reset", &[], None);
    assert_eq!(res.json()["persisted"], true, "{}", res.body);
}

#[test]
fn sigusr1_logs_a_stats_line_and_the_sidecar_keeps_running() {
    let target = start_demo_target(&[]);
    let mut sidecar = start_paused(&target, &[]);
    for _ in 0..2 {
        sidecar.signal(libc::SIGUSR1);
    }
    let line =
        sidecar.wait_for_log(|v| v["message"] == "stats on request (counts since start-up)", Duration::from_secs(3));
    assert!(line.is_some_and(|l| l["total"].is_u64()), "{}", sidecar.output());
    std::thread::sleep(Duration::from_millis(200));
    assert!(sidecar.is_running(), "SIGUSR1 ended the sidecar");
    assert_eq!(sidecar.get("/health").status, 200);
}

// --- item 11: a body of white space -------------------------------------------

#[test]
fn a_body_of_white_space_on_a_built_in_mode_is_refused_like_any_body() {
    let target = start_demo_target(&[]);
    let sidecar = start_paused(&target, &[]);
    for body in [" ", "\n", "x"] {
        let res = request(sidecar.addr, "POST", "/mode/burst?duration_secs=1.5", &[], Some(body));
        assert_eq!(res.status, 422, "body {body:?}: {}", res.body);
        assert!(res.json()["error"].as_str().unwrap().contains("takes no body"), "{}", res.body);
        assert_eq!(sidecar.get_json("/status")["mode"], "pause", "body {body:?} changed the mode");
    }
    let res = request(sidecar.addr, "POST", "/mode/burst?duration_secs=1.5", &[], Some(""));
    assert_eq!(res.status, 200, "{}", res.body);
}
