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
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("trafficgen-workload-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        TempFile(path)
    }

    fn path(&self) -> &str {
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
    let url = trafficgen::config::TargetUrl::parse(&format!("http://{}", target.addr)).unwrap();
    let options = Options { target: Target::new(&url), default_pool_size: 50 };
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
    let url = trafficgen::config::TargetUrl::parse(&format!("http://{}", target.addr)).unwrap();
    let options = Options { target: Target::new(&url), default_pool_size: 50 };
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
