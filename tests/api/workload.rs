//! Workload files from outside: `trafficgen workload check` as a user runs
//! it, and the example workloads played against the real demo target over
//! loopback (rendered and captured by the workload library, as the engine
//! will; the engine itself still sends the built-in orders traffic).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use trafficgen::workload::{self, Draw, Options, Role, RunState, Target, Workload};

use crate::helpers::*;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workloads").join(name)
}

/// `trafficgen workload check ARGS…`, bounded in time, nothing inherited
/// from the environment.
fn check(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(["workload", "check"])
        .args(args)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run trafficgen");
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        panic!("workload check {args:?} did not exit");
    }
    child.wait_with_output().expect("output")
}

/// A file of ours in the temporary directory, removed on drop.
pub(crate) struct TempFile(pub(crate) PathBuf);

impl TempFile {
    pub(crate) fn new(name: &str, contents: &[u8]) -> TempFile {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("trafficgen-workload-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        TempFile(path)
    }

    pub(crate) fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn check_prints_each_example_normalised_and_sends_nothing() {
    // A target that would see any connection: the check must make none.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://{}/api", listener.local_addr().unwrap());
    let expectations: [(&str, &[&str]); 3] = [
        (
            "orders.yaml",
            &[
                "valid: 4 requests, 0 setup requests, 1 pool",
                "create_order   60.0%  POST    /orders",
                "get_order      15.0%  GET     /orders/{{ pool(order_ids) }}",
                "reads order_ids; while it is empty, create_order is sent instead",
                "order_error    error  GET     /orders/error?rate=0.5",
                "order_ids: holds the newest 50",
                "POST /api/orders HTTP/1.1",
                "GET /api/orders/{{ pool(order_ids) }} HTTP/1.1",
            ],
        ),
        (
            "users-crud.yaml",
            &[
                "update_user   20.0%  PATCH   /users/{{ pool(user_ids) }}",
                "captures JSON /id into user_ids",
                "user_ids: holds the newest 200",
                "PATCH /api/users/{{ pool(user_ids) }} HTTP/1.1",
                "Content-Type: application/json",
            ],
        ),
        (
            "login-then-api.yaml",
            &[
                "Setup (before the traffic, then every 600 s, in this order):",
                "login         setup  POST    /login",
                "Authorization: Bearer {{ pool(token) }}",
                "token: holds the newest 1",
            ],
        ),
    ];
    for (name, fragments) in expectations {
        let out = check(&[example(name).to_str().unwrap(), "--target-url", &target]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        for fragment in fragments {
            assert!(stdout.contains(fragment), "{name}: no {fragment:?} in:\n{stdout}");
        }
        assert!(stdout.contains(&format!("Host: {}", listener.local_addr().unwrap())), "{stdout}");
    }
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "workload check connected to the target");
}

#[test]
fn check_reports_every_problem_with_its_place_and_exits_2() {
    let request = |extra: &str| format!("requests:\n  - {{name: a, weight: 1, method: GET, path: /{extra}}}\n");
    let many_requests: String = std::iter::once("requests:\n".to_string())
        .chain((0..65).map(|i| format!("  - {{name: r{i}, weight: 1, method: GET, path: /}}\n")))
        .collect();
    let many_pools: String = std::iter::once("pools:\n".to_string())
        .chain((0..17).map(|i| format!("  p{i}: ~\n")))
        .chain(std::iter::once(request("")))
        .collect();
    let cycle = "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: b}\n  - {name: b, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: a}\n";
    let cases: Vec<(&str, String, &str)> = vec![
        ("yaml syntax", "requests: [\n  - {name: a\n".into(), ""),
        ("unknown key", request(", colour: red"), "2:48: unknown key `colour`"),
        ("missing name", "requests:\n  - {weight: 1, method: GET, path: /}\n".into(), "2:5: a request needs a `name`"),
        ("missing method", "requests:\n  - {name: a, weight: 1, path: /}\n".into(), "2:5: a request needs a `method`"),
        ("missing path", "requests:\n  - {name: a, weight: 1, method: GET}\n".into(), "2:5: a request needs a `path`"),
        ("duplicate names", format!("{}  - {{name: a, weight: 1, method: GET, path: /x}}\n", request("")), "3:5: request name `a` is used twice"),
        ("zero weight", "requests:\n  - {name: a, weight: 0, method: GET, path: /}\n".into(), "2:23: weight must be a whole number from 1"),
        ("negative weight", "requests:\n  - {name: a, weight: -2, method: GET, path: /}\n".into(), "2:23: weight must be"),
        ("fractional weight", "requests:\n  - {name: a, weight: 2.5, method: GET, path: /}\n".into(), "2:23: weight must be"),
        ("no weight at all", "requests:\n  - {name: a, error: true, method: GET, path: /}\n".into(), "1:1: no request has a weight"),
        ("unknown pool", "requests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(nope) }}'}\n".into(), "2:47: unknown pool `nope`"),
        ("unknown function", "requests:\n  - {name: a, weight: 1, method: GET, path: '/{{ rnd(1) }}'}\n".into(), "2:47: in `{{ rnd(1) }}`: unknown template function `rnd`"),
        ("template not closed", "requests:\n  - {name: a, weight: 1, method: GET, path: '/x/{{ seq()'}\n".into(), "2:49: template `{{ seq()` does not close"),
        ("fallback cycle", cycle.into(), "3:73: fallbacks go round in a circle: a → b → a"),
        ("fallback unknown", request(", fallback: ghost"), "2:58: fallback to unknown request `ghost`"),
        ("body not JSON once rendered", "requests:\n  - {name: a, weight: 1, method: POST, path: /, content_type: application/json, body: '{\"n\": {{ seq() }}'}\n".into(), "2:87: the body of `a` is not valid JSON once rendered"),
        ("header with CR/LF", request(", headers: {X-A: \"1\\r\\nX-Evil: 2\"}"), "2:63: header `X-A` contains the control character '\\r'"),
        ("header name with CR/LF", request(", headers: {\"X\\r\\nEvil\": 1}"), "2:58: header name"),
        ("path without /", "requests:\n  - {name: a, weight: 1, method: GET, path: users}\n".into(), "2:45: path `users` must start with `/`"),
        ("method outside the set", "requests:\n  - {name: a, weight: 1, method: CONNECT, path: /}\n".into(), "2:34: method `CONNECT` is not one of GET"),
        ("too many requests", many_requests, "66:5: more than 64 requests"),
        ("too many pools", many_pools, "18:3: more than 16 pools"),
    ];
    for (what, text, expected) in &cases {
        let file_name: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        let file = TempFile::new(&format!("{file_name}.yaml"), text.as_bytes());
        let out = check(&[file.path()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: printed a workload anyway");
        for line in stderr.lines() {
            let rest = line.strip_prefix(&format!("{}:", file.path())).unwrap_or_else(|| panic!("{what}: {line}"));
            let mut fields = rest.splitn(3, ':');
            let (line_no, col) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
            assert!(line_no.parse::<u32>().is_ok() && col.parse::<u32>().is_ok(), "{what}: no line:column in {line}");
        }
        let found =
            expected.is_empty() || stderr.lines().any(|l| l.starts_with(&format!("{}:{expected}", file.path())));
        assert!(found, "{what}: expected {expected:?} in:\n{stderr}");
    }
    // Every problem, not only the first.
    let file =
        TempFile::new("several.yaml", b"requests:\n  - {name: a, weight: 0, method: BREW, path: x, colour: red}\n");
    let out = check(&[file.path()]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 4, "{}", String::from_utf8_lossy(&out.stderr));
    // Too big, unreadable, not UTF-8: one line each, exit 2.
    let big = TempFile::new("big.yaml", &vec![b'#'; workload::MAX_FILE_BYTES + 1]);
    let missing = format!("{}.missing", big.path());
    let binary = TempFile::new("binary.yaml", b"requests:\n  - \xff\xfe\n");
    for (path, fragment) in [
        (big.path(), "1:1: larger than 1048576 bytes"),
        (&missing, "1:1: cannot read the file"),
        (binary.path(), "2:5: not UTF-8"),
    ] {
        let out = check(&[path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("{path}:{fragment}")), "{stderr}");
    }
}

/// One keep-alive HTTP/1.1 connection, reading answers framed by
/// `Content-Length` (as the demo target sends them).
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Connection {
    fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Connection { stream, buf: Vec::new() }
    }

    fn exchange(&mut self, request: &[u8]) -> Answer {
        self.stream.write_all(request).expect("send");
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
        let headers: Vec<(String, Vec<u8>)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or_else(|| panic!("no Content-Length in {head}"));
        while self.buf.len() < head_end + length {
            self.fill();
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Answer { status, headers, body }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).expect("read");
        assert!(n > 0, "the demo target closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// What a run of a workload saw, per request name.
#[derive(Default)]
struct Seen {
    /// Drawn by weight (before fallbacks).
    asked: BTreeMap<String, u32>,
    /// Sent, by name and answer code.
    answered: BTreeMap<(String, u16), u32>,
    fell_back: u32,
    unmet: u32,
    captured: u32,
    capture_failures: u32,
}

impl Seen {
    fn count(&self, name: &str, code: u16) -> u32 {
        self.answered.get(&(name.to_string(), code)).copied().unwrap_or(0)
    }

    fn sent(&self, name: &str) -> u32 {
        self.answered.iter().filter(|((n, _), _)| n == name).map(|(_, c)| c).sum()
    }
}

/// Sends one request and takes its captures.
fn send(
    workload: &Workload,
    conn: &mut Connection,
    chosen: &workload::Chosen,
    rng: &mut SmallRng,
    state: &mut RunState,
    out: &mut Vec<u8>,
    seen: &mut Seen,
) {
    workload.render(chosen, rng, state, out);
    let answer = conn.exchange(out);
    let id = chosen.request();
    *seen.answered.entry((workload.name(id).to_string(), answer.status)).or_default() += 1;
    let headers: Vec<(&str, &[u8])> = answer.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let body = workload.wants_body(id).then_some(answer.body.as_slice());
    let report = workload.capture(id, answer.status, &headers, body, state);
    seen.captured += report.stored;
    seen.capture_failures += report.failed();
}

/// Plays `requests` requests of an example against `target`: its setup
/// requests first, then draws by weight, as the engine will.
fn play(name: &str, target: &Proc, requests: u32) -> (Workload, Seen) {
    let url = trafficgen::base::url::TargetUrl::parse(&format!("http://{}", target.addr)).unwrap();
    let options = Options::new(Target::new(&url), 50);
    let workload = workload::load_file(&example(name), &options).unwrap_or_else(|e| panic!("{e}"));
    let mut state = RunState::new(&workload);
    let mut rng = SmallRng::seed_from_u64(2024);
    let mut conn = Connection::open(target.addr);
    let mut out = Vec::new();
    let mut seen = Seen::default();
    for id in workload.setup() {
        let Draw::Send(chosen) = workload.resolve(*id, &mut rng, &state) else { panic!("setup {id:?} unmet") };
        send(&workload, &mut conn, &chosen, &mut rng, &mut state, &mut out, &mut seen);
    }
    for _ in 0..requests {
        let asked = workload.pick(&mut rng);
        *seen.asked.entry(workload.name(asked).to_string()).or_default() += 1;
        match workload.resolve(asked, &mut rng, &state) {
            Draw::Send(chosen) => {
                seen.fell_back += u32::from(chosen.fell_back());
                send(&workload, &mut conn, &chosen, &mut rng, &mut state, &mut out, &mut seen);
            }
            Draw::Unmet { .. } => seen.unmet += 1,
        }
    }
    (workload, seen)
}

/// The demo target's own count for a route and code.
fn target_says(target: &Proc, route: &str, code: &str) -> u32 {
    let samples = parse_metrics(&target.get("/metrics").body);
    sum(&samples, "demo_target_requests_total", &[("route", route), ("code", code)]) as u32
}

/// Each request's share of the draws is within `tolerance` of its weight's.
fn assert_weights(workload: &Workload, seen: &Seen, draws: u32, tolerance: f64) {
    for id in workload.requests().filter(|id| matches!(workload.role(*id), Role::Weighted(_))) {
        let name = workload.name(id);
        let expected = workload.share(id).unwrap_or(0.0) / 100.0;
        let observed = f64::from(seen.asked.get(name).copied().unwrap_or(0)) / f64::from(draws);
        assert!((observed - expected).abs() <= tolerance, "{name}: drawn {observed:.3}, weight says {expected:.3}");
    }
}

#[test]
fn users_crud_reuses_captured_ids_against_the_demo_target() {
    let target = start_demo_target(&[]);
    let draws = 2_000;
    let (workload, seen) = play("users-crud.yaml", &target, draws);
    assert_weights(&workload, &seen, draws, 0.03);
    // While no id was known, reads and updates became creates.
    assert!(seen.fell_back >= 1, "no fallback with an empty pool");
    assert_eq!(seen.unmet, 0);
    // Ids captured and reused: GET and PATCH by id found their users.
    for name in ["get_user", "update_user"] {
        assert!(seen.count(name, 200) > 200, "{name}: {:?}", seen.answered);
        assert_eq!(seen.count(name, 200), seen.sent(name), "{name} answered other than 200: {:?}", seen.answered);
    }
    assert_eq!(seen.count("create_user", 201), seen.sent("create_user"));
    assert_eq!(seen.count("list_users", 200), seen.sent("list_users"));
    assert_eq!(seen.capture_failures, 0);
    assert_eq!(seen.captured, seen.sent("create_user"));
    // The target counted the same.
    assert_eq!(target_says(&target, "get_user", "200"), seen.count("get_user", 200));
    assert_eq!(target_says(&target, "update_user", "200"), seen.count("update_user", 200));
    assert_eq!(target_says(&target, "get_user", "404") + target_says(&target, "update_user", "404"), 0);
    // The error request is never drawn by weight.
    assert_eq!(seen.sent("user_error"), 0);
}

#[test]
fn login_then_api_sends_the_token_it_got_and_is_never_refused() {
    let target = start_demo_target(&[]);
    let draws = 1_000;
    let (workload, seen) = play("login-then-api.yaml", &target, draws);
    assert_eq!(seen.count("login", 200), 1, "{:?}", seen.answered);
    assert_eq!(seen.unmet, 0, "the token pool was empty");
    assert_weights(&workload, &seen, draws, 0.04);
    assert!(seen.count("get_account", 200) > 600, "{:?}", seen.answered);
    assert_eq!(target_says(&target, "account", "401"), 0, "requests without a valid token");
    assert_eq!(target_says(&target, "account", "200"), seen.count("get_account", 200));
    assert_eq!(workload.setup_every(), Some(Duration::from_secs(600)));
}

#[test]
fn login_then_api_sends_nothing_while_it_has_no_token() {
    // A login that fails (wrong password): nothing goes to the API.
    let target = start_demo_target(&[]);
    let text =
        std::fs::read_to_string(example("login-then-api.yaml")).unwrap().replace("password: demo", "password: wrong");
    let file = TempFile::new("wrong-password.yaml", text.as_bytes());
    let url = trafficgen::base::url::TargetUrl::parse(&format!("http://{}", target.addr)).unwrap();
    let options = Options::new(Target::new(&url), 50);
    let workload = workload::load_file(Path::new(file.path()), &options).unwrap();
    let mut state = RunState::new(&workload);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut conn = Connection::open(target.addr);
    let (mut out, mut seen) = (Vec::new(), Seen::default());
    let Draw::Send(login) = workload.resolve(workload.setup()[0], &mut rng, &state) else { panic!() };
    send(&workload, &mut conn, &login, &mut rng, &mut state, &mut out, &mut seen);
    assert_eq!(seen.count("login", 401), 1);
    let unmet = (0..100).filter(|_| matches!(workload.draw(&mut rng, &state), Draw::Unmet { .. })).count();
    assert_eq!(unmet, 100);
    assert_eq!(target_says(&target, "account", "401"), 0);
}

#[test]
fn orders_yaml_against_the_demo_target_reads_orders_it_created() {
    let target = start_demo_target(&[]);
    let draws = 1_500;
    let (workload, seen) = play("orders.yaml", &target, draws);
    assert_weights(&workload, &seen, draws, 0.03);
    assert!(seen.count("get_order", 200) > 100, "{:?}", seen.answered);
    assert_eq!(seen.count("get_order", 200), seen.sent("get_order"), "{:?}", seen.answered);
    assert_eq!(target_says(&target, "create_order", "201"), seen.count("create_order", 201));
}

#[test]
fn demo_target_refuses_a_bad_user_bound() {
    let out = Command::new(BIN)
        .args(["demo-target", "--port", "0", "--bind", "127.0.0.1"])
        .env_clear()
        .env("DEMO_MAX_USERS", "0")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DEMO_MAX_USERS"), "{stderr}");
}

#[test]
fn demo_target_serves_users_login_and_errors_over_http() {
    let target = start_demo_target(&["--max-users", "2"]);
    let json = [("Content-Type", "application/json")];
    let created: Vec<u64> = (0..3)
        .map(|i| {
            let res = request(target.addr, "POST", "/users", &json, Some(&format!(r#"{{"name":"u{i}"}}"#)));
            assert_eq!(res.status, 201, "{}", res.body);
            let id = res.json()["id"].as_u64().unwrap();
            assert_eq!(res.headers.get("location"), Some(&format!("/users/{id}")));
            id
        })
        .collect();
    assert_eq!(target.get(&format!("/users/{}", created[0])).status, 404, "bounded: the oldest is forgotten");
    let patched = request(target.addr, "PATCH", &format!("/users/{}", created[2]), &json, Some(r#"{"status":"away"}"#));
    assert_eq!((patched.status, patched.json()["status"].as_str()), (200, Some("away")));
    assert_eq!(target.get_json("/users").as_array().map(Vec::len), Some(2));

    let account = target.get("/account");
    assert_eq!(account.status, 401);
    assert_eq!(account.headers.get("www-authenticate").map(String::as_str), Some("Bearer"));
    let login = request(target.addr, "POST", "/login", &json, Some(r#"{"username":"ann","password":"demo"}"#));
    let token = login.json()["token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    let me = request(target.addr, "GET", "/account", &[("Authorization", &auth)], None);
    assert_eq!((me.status, me.json()["username"].as_str()), (200, Some("ann")));

    let error = target.get("/orders/error?rate=1");
    assert!([500, 502, 503, 504].contains(&error.status), "{}", error.status);
    assert_eq!(target.get("/users/error?rate=0").status, 200);
    assert_eq!(target.get("/orders/error?rate=7").status, 400);
    let started = Instant::now();
    assert_eq!(target.get("/users?delay_ms=200").status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(target.get("/users?delay_ms=999999").status, 400);
    let samples = parse_metrics(&target.get("/metrics").body);
    assert_eq!(sum(&samples, "demo_target_requests_total", &[("route", "error")]), 3.0);
    assert_eq!(sum(&samples, "demo_target_users_stored", &[]), 2.0);
    assert_eq!(sum(&samples, "demo_target_tokens_stored", &[]), 1.0);
}

// The engine itself running workloads: the sidecar with WORKLOAD_FILE, PUT
// /workload and SIGHUP, checked by the demo target's own counts.

/// A sidecar running the workload file `file` against `target`.
fn sidecar_with_workload(target: &Proc, file: &str, extra: &[(&str, &str)]) -> Proc {
    let mut env = vec![("WORKLOAD_FILE", file)];
    env.extend_from_slice(extra);
    start_sidecar(target, &env)
}

fn example_path(name: &str) -> String {
    example(name).to_str().expect("UTF-8 path").to_string()
}

/// Runs the sidecar at `rps` until the target has answered `at_least`
/// requests (at most 15 s), then pauses it and waits for the answers.
fn run_until(sidecar: &Proc, target: &Proc, rps: u32, at_least: u64) {
    let body = format!(r#"{{"rps": {rps}}}"#);
    assert_eq!(sidecar.post("/mode/custom", Some(&body)).status, 200);
    let enough = eventually(Duration::from_secs(15), || target_count(target, None) >= at_least);
    pause_and_settle(sidecar);
    assert!(enough, "the target saw {} requests, wanted {at_least}", target_count(target, None));
}

fn put_workload(sidecar: &Proc, body: &str, headers: &[(&str, &str)]) -> Response {
    request(sidecar.addr, "PUT", "/workload", headers, Some(body))
}

#[test]
fn the_engine_runs_users_crud_and_reads_and_patches_users_it_created() {
    // 200 requests a second: alone, so neither it nor a rate test beside it is starved.
    let _heavy = heavy_test();
    let target = start_demo_target(&[]);
    let sidecar = sidecar_with_workload(&target, &example_path("users-crud.yaml"), &[("INITIAL_MODE", "pause")]);
    // Reads and updates fall back to creates only until the first user
    // exists, so the shares are judged over what was sent after that: there
    // each request is a plain draw by weight.
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 200}"#)).status, 200);
    let pooled = || sum(&parse_metrics(&sidecar.get("/metrics").body), "trafficgen_pool_values", &[]) > 0.0;
    let started = eventually(Duration::from_secs(10), || stat(&sidecar, "total") >= 100 && pooled());
    assert!(started, "no users captured: {}", sidecar.get_json("/status"));
    let early = sidecar.get_json("/status")["stats"]["by_endpoint"].clone();
    run_until(&sidecar, &target, 200, 800);
    let reads = target_says(&target, "get_user", "200");
    let updates = target_says(&target, "update_user", "200");
    assert!(reads > 100 && updates > 50, "GET {reads} and PATCH {updates} by id answered 200");
    assert_eq!(target_says(&target, "get_user", "404"), 0, "every read hit a user that exists");
    assert_eq!(target_says(&target, "update_user", "404"), 0, "every update hit a user that exists");
    assert_eq!(target_says(&target, "update_user", "422"), 0, "every PATCH body was valid");
    // The sidecar labels by request name, and agrees with the target.
    let status = sidecar.get_json("/status");
    let by = &status["stats"]["by_endpoint"];
    let total = status["stats"]["total"].as_u64().unwrap();
    assert_eq!(total, target_count(&target, None), "{status}");
    let weights = [("create_user", 0.2), ("list_users", 0.2), ("get_user", 0.4), ("update_user", 0.2)];
    let since_early = |name: &str| by[name]["total"].as_u64().unwrap() - early[name]["total"].as_u64().unwrap_or(0);
    let drawn: u64 = weights.iter().map(|(name, _)| since_early(name)).sum();
    for (name, share) in weights {
        assert_eq!(by[name]["failed"], 0, "{name}: {status}");
        assert_binomial_share(&format!("share of {name}"), since_early(name) as f64, drawn as f64, share);
    }
    assert_eq!(status["mix"], "create_user=20,list_users=20,get_user=40,update_user=20");
    assert!(by.get("create_order").is_none(), "no orders series: {by}");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let pooled = sum(&samples, "trafficgen_pool_values", &[("pool", "user_ids")]);
    assert!(pooled > 0.0 && pooled <= 200.0, "user_ids holds {pooled}");
    assert_eq!(sum(&samples, "trafficgen_order_ids_buffered", &[]), 0.0, "kept, at 0 without orders");
    assert!(status.get("order_ids_buffered").is_none(), "no orders pool, no order ids in /status: {status}");
    assert!(status["pools"]["user_ids"].as_u64() > Some(0), "{status}");
    let view = sidecar.get_json("/workload");
    assert_eq!(view["source"], example_path("users-crud.yaml"));
    let pool = &view["pools"][0];
    assert_eq!((pool["name"].as_str(), pool["size"].as_u64()), (Some("user_ids"), Some(200)), "{view}");
    assert!(pool["values"].as_u64() > Some(0), "{view}");
    let shares: Vec<(String, f64)> = view["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?.to_string(), r["share_percent"].as_f64()?)))
        .collect();
    assert_eq!(shares.len(), 4, "{view}");
    assert!(shares.contains(&("get_user".to_string(), 40.0)), "{view}");
}

#[test]
fn the_engine_logs_in_first_and_sends_the_token_it_got() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = sidecar_with_workload(&target, &example_path("login-then-api.yaml"), &[("INITIAL_MODE", "pause")]);
    assert_eq!(target_count(&target, None), 0, "nothing before traffic starts, not even the login");
    run_until(&sidecar, &target, 100, 300);
    assert_eq!(target_says(&target, "login", "200"), 1, "one login, before the traffic");
    let accounts = target_says(&target, "account", "200");
    assert!(accounts > 150, "{accounts} accounts read with the token");
    assert_eq!(target_says(&target, "account", "401"), 0, "never refused: the token was there from the first");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_unmet_requests_total", &[]), 0.0, "the traffic waited for the token");
    assert_eq!(sum(&samples, "trafficgen_pool_values", &[("pool", "token")]), 1.0);
    // The token (32 hex digits from the demo target) shows nowhere.
    let looks_like_token = |text: &str| {
        text.as_bytes().windows(32).any(|w| w.iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    };
    for path in ["/status", "/workload", "/metrics"] {
        let body = sidecar.get(path).body;
        assert!(!looks_like_token(&body), "{path} shows a token: {body}");
    }
    assert!(!looks_like_token(&sidecar.output()), "the log shows a token");
}

/// users-crud with its create told to expect a code the demo target never
/// sends: nothing is captured, so the pool stays empty.
const NO_CAPTURE: &str = r#"
pools:
  user_ids: {size: 10}
requests:
  - name: create_user
    weight: 1
    method: POST
    path: /users
    body: {name: "n{{ seq() }}", email: "u{{ seq() }}@example.com", age: 30}
    success: [299]
    capture: [{pool: user_ids, json: /id}]
  - name: get_user
    weight: 3
    method: GET
    path: "/users/{{ pool(user_ids) }}"
    fallback: create_user
  - name: update_user
    weight: 1
    method: PATCH
    path: "/users/{{ pool(user_ids) }}"
    body: {age: 31}
"#;

#[test]
fn with_an_empty_pool_reads_fall_back_and_requests_without_a_fallback_are_not_sent() {
    // 200 requests a second: alone, so neither it nor a rate test beside it is starved.
    let _heavy = heavy_test();
    let target = start_demo_target(&[]);
    let file = TempFile::new("no-capture.yaml", NO_CAPTURE.as_bytes());
    let sidecar = sidecar_with_workload(&target, file.path(), &[("INITIAL_MODE", "pause")]);
    run_until(&sidecar, &target, 200, 600);
    let creates = target_says(&target, "create_user", "201");
    assert_eq!(u64::from(creates), target_count(&target, None), "every request sent was a create");
    assert_eq!(target_says(&target, "get_user", "404") + target_says(&target, "get_user", "200"), 0);
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    let unmet = sum(&samples, "trafficgen_unmet_requests_total", &[("endpoint", "update_user")]);
    // update_user is a fifth of the draws; it has no fallback. Each draw is
    // random: judged as a binomial share (a fixed ±0.08 over ~375 draws was
    // under 4 standard deviations).
    assert_binomial_share("unmet update_user draws", unmet, unmet + f64::from(creates), 0.2);
    let status = sidecar.get_json("/status");
    assert_eq!(status["stats"]["by_endpoint"]["update_user"]["total"], 0, "{status}");
    // 201 is not a success to this file (`success: [299]`): /status counts by the file's rule.
    let creates = &status["stats"]["by_endpoint"]["create_user"];
    assert!(creates["total"].as_u64() >= Some(600), "{status}");
    assert_eq!((creates["successful"].as_u64(), &creates["failed"]), (Some(0), &creates["total"]), "{status}");
}

#[test]
fn a_bad_workload_file_at_start_exits_2_naming_every_problem() {
    let target = start_demo_target(&[]);
    let bad = "requests:\n  - name: a\n    weight: 0\n    method: FETCH\n    path: nope\n";
    let file = TempFile::new("bad.yaml", bad.as_bytes());
    let url = format!("http://{}", target.addr);
    let mut sidecar = Proc::spawn(&[], &sidecar_env(&url, &[("WORKLOAD_FILE", file.path())]));
    let status = sidecar.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(2), "{}", sidecar.output());
    let output = sidecar.output();
    let located: Vec<&str> = output.lines().filter(|l| l.contains(&format!("{}:", file.path()))).collect();
    assert!(located.len() >= 3, "every problem with its place: {output}");
    for needle in [":3:", ":4:", ":5:"] {
        assert!(located.iter().any(|l| l.contains(needle)), "no problem at line {needle}: {output}");
    }
    assert_eq!(target_count(&target, None), 0);
}

#[test]
fn put_workload_refuses_bad_bodies_and_changes_nothing() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("CONTROL_TOKEN", "s3cret-token-123")]);
    let auth = [("Authorization", "Bearer s3cret-token-123")];
    let before = sidecar.get_json("/workload");
    assert_eq!(before["source"], "built-in orders workload");
    let cases: [(&str, &str); 6] = [
        ("requests: [", "1:"),
        ("requests:\n  - {name: a, weight: 1, method: GET, path: /, colour: red}\n", "2:"),
        ("requests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(nope) }}'}\n", "2:"),
        ("requests:\n  - {name: a, weight: 1, method: GET, path: /, headers: {X-A: \"v\\r\\nX-B: 1\"}}\n", "2:"),
        (
            "requests:\n  - {name: a, weight: 1, method: GET, path: /, fallback: b}\n  - {name: b, weight: 1, method: GET, path: /, fallback: a}\n",
            "2:",
        ),
        ("{\"requests\": [{\"name\": \"a\", \"weight\": -1, \"method\": \"GET\", \"path\": \"/\"}]}", "1:"),
    ];
    for (body, place) in cases {
        let res = put_workload(&sidecar, body, &auth);
        assert_eq!(res.status, 422, "{body}: {}", res.body);
        let json = res.json();
        let problems = json["problems"].as_array().expect("problems");
        assert!(!problems.is_empty() && problems.iter().all(|p| p["line"].as_u64() >= Some(1)), "{json}");
        assert!(json["error"].as_str().is_some_and(|e| e.contains(&format!("body:{place}"))), "{body}: {json}");
    }
    let huge = format!("# {}\n", "x".repeat(1024 * 1024));
    let res = put_workload(&sidecar, &huge, &auth);
    assert_eq!(res.status, 422, "{}", res.body);
    assert!(res.body.contains("larger than"), "{}", res.body);
    // Without the token, or from a foreign page: refused before reading.
    let good = "requests:\n  - {name: a, weight: 1, method: GET, path: /orders}\n";
    assert_eq!(put_workload(&sidecar, good, &[]).status, 401);
    let foreign = [auth[0], ("Origin", "https://evil.example")];
    assert_eq!(put_workload(&sidecar, good, &foreign).status, 403);
    assert_eq!(sidecar.get_json("/workload"), before, "nothing changed");
    assert_eq!(target_count(&target, None), 0);
}

/// Requests answered by the target per second over `window`.
fn target_rate(target: &Proc, window: Duration) -> f64 {
    observed_rate(target, window)
}

#[test]
fn put_workload_swaps_without_a_gap_and_pools_that_survive_keep_their_values() {
    // 200 requests a second: alone, so neither it nor a rate test beside it is starved.
    let _heavy = heavy_test();
    let target = start_demo_target(&[]);
    let sidecar = sidecar_with_workload(&target, &example_path("users-crud.yaml"), &[("INITIAL_MODE", "pause")]);
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 200}"#)).status, 200);
    assert!(
        eventually(Duration::from_secs(5), || sidecar.get_json("/workload")["pools"][0]["values"].as_u64() >= Some(20))
    );
    // Only reads and updates now: with user_ids kept, no read can fall
    // back (there is no create to fall back to) and none is unmet.
    let reads_only = r#"
pools:
  user_ids: {size: 200}
requests:
  - {name: read_user, weight: 3, method: GET, path: "/users/{{ pool(user_ids) }}"}
  - {name: touch_user, weight: 1, method: PATCH, path: "/users/{{ pool(user_ids) }}", body: {age: 40}}
"#;
    let before = target_count(&target, None);
    let t0 = Instant::now();
    let res = put_workload(&sidecar, reads_only, &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    let view = res.json();
    assert_eq!(view["source"], "body");
    assert_eq!(view["mix"], "read_user=3,touch_user=1");
    // The rate holds across the swap: the schedule never noticed.
    std::thread::sleep(Duration::from_secs(3));
    let rate = (target_count(&target, None) - before) as f64 / t0.elapsed().as_secs_f64();
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["rps"].as_f64()), (Some("custom"), Some(200.0)), "{status}");
    assert!((rate - 200.0).abs() < 200.0 * 0.1, "{rate:.1}/s across the swap at 200/s");
    let steady = target_rate(&target, Duration::from_secs(1));
    assert!((steady - 200.0).abs() < 200.0 * 0.15, "{steady:.1}/s after the swap");
    pause_and_settle(&sidecar);
    let by = &sidecar.get_json("/status")["stats"]["by_endpoint"];
    assert!(by["read_user"]["total"].as_u64() > Some(300), "{by}");
    assert_eq!(by["read_user"]["failed"], 0, "reads of kept ids all found their user: {by}");
    assert_eq!(by["touch_user"]["failed"], 0, "{by}");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_unmet_requests_total", &[]), 0.0, "the pool came along");
    // The export follows the running workload.
    let script = sidecar.get("/export/k6?rps=10");
    assert_eq!(script.status, 200, "{}", script.body);
    assert!(script.body.contains("read_user") && !script.body.contains("create_user"), "{}", script.body);
}

#[test]
fn put_workload_answers_with_the_new_pools_own_counts() {
    // Paused, so the worker takes nothing over (and captures nothing):
    // every count below is known exactly.
    let target = start_demo_target(&[]);
    let many: Vec<String> = (1..=120).map(|n| n.to_string()).collect();
    let users = format!(
        "pools:\n  user_ids: {{size: 200, values: [{}]}}\nrequests:\n  - {{name: get_user, weight: 1, method: GET, path: \"/users/{{{{ pool(user_ids) }}}}\"}}\n",
        many.join(", ")
    );
    let file = TempFile::new("many-users.yaml", users.as_bytes());
    let sidecar = sidecar_with_workload(&target, file.path(), &[("INITIAL_MODE", "pause")]);
    let pools = |view: &serde_json::Value| -> Vec<(String, u64, u64)> {
        let pools = view["pools"].as_array().cloned().unwrap_or_default();
        pools
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("?").to_string(),
                    p["size"].as_u64().unwrap_or(0),
                    p["values"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let before = sidecar.get_json("/workload");
    assert_eq!(pools(&before), [("user_ids".to_string(), 200, 120)], "{before}");
    // A new pool first (where user_ids was), user_ids kept but smaller.
    let orders = r#"
pools:
  order_ids: {size: 50, values: [1, 2, 3]}
  user_ids: {size: 20}
requests:
  - {name: get_order, weight: 1, method: GET, path: "/orders/{{ pool(order_ids) }}"}
  - {name: get_user, weight: 1, method: GET, path: "/users/{{ pool(user_ids) }}"}
"#;
    let res = put_workload(&sidecar, orders, &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    let expected = [("order_ids".to_string(), 50, 3), ("user_ids".to_string(), 20, 20)];
    assert_eq!(pools(&res.json()), expected, "its own values, and the newest 20 user ids kept: {}", res.body);
    let view = sidecar.get_json("/workload");
    assert_eq!(pools(&view), expected, "{view}");
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_pool_values", &[("pool", "order_ids")]), 3.0);
    assert_eq!(sum(&samples, "trafficgen_pool_values", &[("pool", "user_ids")]), 20.0);
    assert_eq!(target_count(&target, None), 0, "paused: nothing sent");
}

#[test]
fn sighup_reads_the_workload_file_again_and_ignores_a_bad_one() {
    let target = start_demo_target(&[]);
    let orders = "requests:\n  - {name: list, weight: 1, method: GET, path: /orders}\n";
    let file = TempFile::new("live.yaml", orders.as_bytes());
    let sidecar = sidecar_with_workload(&target, file.path(), &[("INITIAL_MODE", "pause")]);
    assert_eq!(sidecar.get_json("/workload")["mix"], "list=1");
    let users = "requests:\n  - {name: users, weight: 2, method: GET, path: /users}\n  - {name: list, weight: 1, method: GET, path: /orders}\n";
    std::fs::write(&file.0, users).unwrap();
    sidecar.signal(libc::SIGHUP);
    let read_again = |v: &serde_json::Value| v["message"].as_str().is_some_and(|m| m.contains("read again"));
    assert!(sidecar.wait_for_log(read_again, Duration::from_secs(5)).is_some(), "{}", sidecar.output());
    assert_eq!(sidecar.get_json("/workload")["mix"], "users=2,list=1");
    run_until(&sidecar, &target, 100, 60);
    assert!(target_says(&target, "list_users", "200") > 20, "the new workload runs");
    std::fs::write(&file.0, "requests:\n  - {name: x, weight: 1, method: GET, path: nope}\n").unwrap();
    sidecar.signal(libc::SIGHUP);
    let refused = |v: &serde_json::Value| v["message"].as_str().is_some_and(|m| m.contains("cannot be used"));
    let line = sidecar.wait_for_log(refused, Duration::from_secs(5)).expect("a refusal logged");
    assert!(line["error"].as_str().is_some_and(|e| e.contains(":2:")), "{line}");
    let mut sidecar = sidecar;
    assert!(sidecar.is_running());
    assert_eq!(sidecar.get_json("/workload")["mix"], "users=2,list=1", "the old workload goes on");
}

/// The jobs layer narrows the draw through `Engine::set_focus`: driven
/// here through the library, against the real demo target.
#[test]
fn a_focus_narrows_the_engines_draw_to_its_requests_and_error_share() {
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;
    use trafficgen::app::config::{TargetUrl, builtin_workload};
    use trafficgen::engine::focus::Focus;
    use trafficgen::engine::mode::{Mode, ModeTable};
    use trafficgen::engine::{Engine, EngineSettings};
    use trafficgen::workload::mix::Mix;

    // 200 requests a second: alone, so neither it nor a rate test beside it is starved.
    let _heavy = heavy_test();
    let demo = start_demo_target(&[]);
    let target = TargetUrl::parse(&format!("http://{}", demo.addr)).unwrap();
    let options = Options::new(Target::new(&target), 50);
    let settings = EngineSettings {
        workload: Arc::new(builtin_workload(Mix::default(), &options).unwrap()),
        target,
        initial_mode: Mode::Pause,
        modes: ModeTable {
            steady: 200.0,
            burst: 400.0,
            overload: 800.0,
            max_rps: 1000.0,
            max_users: 1000,
            user_pause: trafficgen::engine::users::UserPause::fixed(1.0),
        },
        jitter: 0.2,
        workload_file: None,
        id_buffer_size: 50,
        request_timeout: Duration::from_secs(2),
        max_in_flight: 64,
        max_journeys: 100,
        data_dir: None,
        shutdown_grace: Duration::from_secs(1),
        client: Default::default(),
        trace: Default::default(),
        memory: None,
    };
    let engine = Engine::new(settings, Arc::new(trafficgen::observe::metrics::Metrics::new().unwrap()));
    engine.set_focus(Some(Focus { requests: Some(vec!["list_orders".into()]), error_share: 0.5 }));
    let (shutdown, abandon) = (CancellationToken::new(), CancellationToken::new());
    let _task = engine.start(shutdown.clone(), abandon).unwrap();
    engine.switch_to(engine.modes().plan(Mode::Steady).unwrap());
    let enough = eventually(Duration::from_secs(10), || target_count(&demo, None) >= 400);
    engine.switch_to(engine.modes().plan(Mode::Pause).unwrap());
    shutdown.cancel();
    assert!(enough, "{} requests", target_count(&demo, None));
    // One scrape for all three counts: requests still in flight (no fixed
    // wait is sure to outlast them on a busy machine) cannot land between them.
    let samples = parse_metrics(&demo.get("/metrics").body);
    let count = |labels: &[(&str, &str)]| sum(&samples, "demo_target_requests_total", labels);
    let (total, lists, errors) = (count(&[]), count(&[("route", "list_orders")]), count(&[("route", "error")]));
    assert_eq!(lists + errors, total, "only the focused request and the error request");
    // Each request is the error request with probability 0.5.
    assert_binomial_share("share of error requests", errors, total, 0.5);
}

/// The workload shipped for Compose (`compose/workloads`) and Kubernetes
/// (`workload-configmap.yaml`) is the example the tests above run.
#[test]
fn packaged_workloads_are_the_tested_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(example("users-crud.yaml")).unwrap();
    let compose = std::fs::read_to_string(root.join("compose/workloads/users-crud.yaml")).unwrap();
    assert_eq!(compose, example, "compose/workloads/users-crud.yaml differs from the example");
    let configmap = std::fs::read_to_string(root.join("deploy/kubernetes/workload-configmap.yaml")).unwrap();
    let block: String = configmap
        .split("  users-crud.yaml: |\n")
        .nth(1)
        .expect("the users-crud.yaml key")
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert_eq!(block, example, "the ConfigMap's users-crud.yaml differs from the example");
    let deployment = std::fs::read_to_string(root.join("deploy/kubernetes/deployment.yaml")).unwrap();
    assert!(deployment.contains("mountPath: /etc/trafficgen/workloads"), "the ConfigMap is not mounted");
    let kustomization = std::fs::read_to_string(root.join("deploy/kubernetes/kustomization.yaml")).unwrap();
    assert!(kustomization.contains("- workload-configmap.yaml"), "the kustomization does not list it");
}

/// Captures from a header (the plain client hands the answer's headers
/// back), and a JSON capture from an answer that is not JSON: counted, the
/// run goes on.
const HEADER_AND_TEXT: &str = r#"
pools:
  locations: {size: 5}
  ids: {size: 5}
requests:
  - name: create_user
    weight: 1
    method: POST
    path: /users
    body: {name: "n{{ seq() }}"}
    capture: [{pool: locations, header: location}]
  - name: echo_location
    weight: 1
    method: GET
    path: /users
    headers: {X-Seen: "{{ pool(locations) }}"}
    fallback: create_user
  - name: scrape
    weight: 1
    method: GET
    path: /metrics
    capture: [{pool: ids, json: /id}]
"#;

#[test]
fn header_captures_fill_pools_and_non_json_answers_are_counted_not_fatal() {
    let target = start_demo_target(&[]);
    let file = TempFile::new("header.yaml", HEADER_AND_TEXT.as_bytes());
    let sidecar = sidecar_with_workload(&target, file.path(), &[("INITIAL_MODE", "pause")]);
    run_until(&sidecar, &target, 100, 150);
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_pool_values", &[("pool", "locations")]), 5.0, "Location captured");
    assert_eq!(sum(&samples, "trafficgen_pool_values", &[("pool", "ids")]), 0.0);
    let not_json =
        sum(&samples, "trafficgen_capture_failures_total", &[("endpoint", "scrape"), ("reason", "not_json")]);
    let scrapes = sum(&samples, "trafficgen_requests_total", &[("endpoint", "scrape"), ("code", "200")]);
    assert!(scrapes > 20.0 && not_json == scrapes, "{not_json} of {scrapes} scrapes counted as not JSON");
    let echoes = sum(&samples, "trafficgen_requests_total", &[("endpoint", "echo_location"), ("code", "200")]);
    assert!(echoes > 20.0, "requests using the captured header value were sent: {echoes}");
    assert_eq!(sidecar.get_json("/status")["stats"]["failed"], 0);
}
