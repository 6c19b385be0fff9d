//! Workloads derived from OpenAPI documents that real frameworks produce at
//! test time — FastAPI (a users API behind an OAuth2 login, under uvicorn)
//! and the demo target's own `GET /openapi.json` — sent at 100 arrivals/s:
//! every derived operation is sent, the answers are the ones the document
//! lists, no generated body is refused (422) and no read of a created
//! resource misses (404). And `OPENAPI_PATH`: the sidecar derives its
//! workload from the target's document at start, waiting while the target
//! is not up yet.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::*;
use crate::real_servers::server_port;
use crate::scripted::{have_tools, metrics_of};

/// How long each derived workload runs at 100 arrivals/s: 2 000 requests,
/// so the rarest operation (a write among a dozen reads, about 2 % of
/// them) is sent about 40 times.
const RUN: Duration = Duration::from_secs(20);

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trafficgen-openapi-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `trafficgen workload from-openapi ARGS`: (exit code, stdout, stderr).
fn from_openapi(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(["workload", "from-openapi"])
        .args(args)
        .env_clear()
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run trafficgen");
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Derives a workload from `doc` (written to `dir`) and checks that
/// `workload check` takes it with the credentials' variables set (`env`):
/// the path of the workload.
fn derive(dir: &Path, doc: &str, env: &[(&str, &str)]) -> PathBuf {
    let spec = dir.join("openapi.json");
    std::fs::write(&spec, doc).unwrap();
    let derived = dir.join("derived.yaml");
    let (code, _, stderr) = from_openapi(&[spec.to_str().unwrap(), "--out", derived.to_str().unwrap()], None);
    assert_eq!(code, 0, "from-openapi: {stderr}");
    assert!(stderr.contains("requests and 1 journey written to") || stderr.contains("journeys written to"), "{stderr}");
    for (name, _) in env {
        assert!(stderr.contains(&format!("{name}=…")), "the summary names {name}: {stderr}");
    }
    let check = Command::new(BIN)
        .args(["workload", "check"])
        .arg(&derived)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(check.status.success(), "workload check: {}", String::from_utf8_lossy(&check.stderr));
    let unset = Command::new(BIN).args(["workload", "check"]).arg(&derived).env_clear().output().unwrap();
    if !env.is_empty() {
        assert_eq!(unset.status.code(), Some(2), "a credential's variable unset is a problem");
        assert!(
            String::from_utf8_lossy(&unset.stderr).contains(&format!("environment variable {} is not set", env[0].0))
        );
    }
    derived
}

/// Runs `workload` at 100 arrivals/s for [`RUN`] against `target`, with
/// `env` set (the credentials); returns the sidecar, paused and settled.
fn run_at_100(target: &str, workload: &Path, env: &[(&str, &str)]) -> Proc {
    let mut all = vec![("WORKLOAD_FILE", workload.to_str().unwrap()), ("INITIAL_MODE", "pause")];
    all.extend_from_slice(env);
    let sidecar = Proc::start(&[], &sidecar_env(target, &all));
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps":100}"#)).status, 200);
    std::thread::sleep(RUN);
    pause_and_settle(&sidecar);
    sidecar
}

/// The operation a request of the running workload sends (its method and
/// path template matched against the document's paths): its operationId.
fn operation_of(doc: &serde_json::Value, method: &str, path: &str) -> Option<String> {
    let segments = |p: &str| p.trim_end_matches('/').split('/').map(str::to_string).collect::<Vec<_>>();
    let sent = segments(path);
    for (doc_path, item) in doc["paths"].as_object()? {
        let documented = segments(doc_path);
        let same = documented.len() == sent.len()
            && documented.iter().zip(&sent).all(|(d, s)| d == s || (d.starts_with('{') && s.contains("{{")));
        if same && let Some(id) = item[method.to_ascii_lowercase()]["operationId"].as_str() {
            return Some(id.to_string());
        }
    }
    None
}

/// The number of a journey's instances that ran every step, and that ended
/// early because a step failed.
fn journeys_of(sidecar: &Proc, journey: &str) -> (f64, f64) {
    let metrics = metrics_of(sidecar);
    (
        sum(&metrics, "trafficgen_journeys_completed_total", &[("journey", journey)]),
        sum(&metrics, "trafficgen_journeys_ended_total", &[("journey", journey), ("reason", "not_success")]),
    )
}

/// The answer codes the document lists for each operation, by
/// (METHOD, path) and by operationId.
struct Documented {
    by_route: BTreeMap<(String, String), Vec<String>>,
    by_id: BTreeMap<String, Vec<String>>,
}

impl Documented {
    fn new(doc: &serde_json::Value) -> Documented {
        let (mut by_route, mut by_id) = (BTreeMap::new(), BTreeMap::new());
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(responses) = op["responses"].as_object() else { continue };
                let codes: Vec<String> = responses.keys().cloned().collect();
                by_route.insert((method.to_ascii_uppercase(), path.clone()), codes.clone());
                if let Some(id) = op["operationId"].as_str() {
                    by_id.insert(id.to_string(), codes);
                }
            }
        }
        Documented { by_route, by_id }
    }
}

/// Whether `status` is one of `codes` (`404`, `4XX` or `default`).
fn listed(codes: &[String], status: &str) -> bool {
    codes
        .iter()
        .any(|c| c == status || c == "default" || (c.len() == 3 && c.ends_with("XX") && status.starts_with(&c[..1])))
}

#[test]
fn the_demo_targets_own_document_derives_a_workload_that_runs_as_documented() {
    // Counts at a rate: not while a heavy test loads the machine.
    let _rate = timing_test();
    let demo = start_demo_target(&[]);
    let served = demo.get("/openapi.json");
    assert_eq!(served.status, 200);
    assert!(served.headers["content-type"].starts_with("application/json"), "{:?}", served.headers);
    let doc = served.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = Documented::new(&doc);

    let dir = dir("demo");
    let credentials = [("TRAFFICGEN_ENV_USERNAME", "tester"), ("TRAFFICGEN_ENV_PASSWORD", "demo")];
    let workload = derive(&dir, &served.body, &credentials);
    let sidecar = run_at_100(&format!("http://{}", demo.addr), &workload, &credentials);

    // Each request and journey step, by the operation it sends.
    let shown = sidecar.get_json("/workload");
    let mut operation: BTreeMap<String, String> = BTreeMap::new();
    for r in shown["requests"].as_array().unwrap() {
        let (name, method, path) =
            (r["name"].as_str().unwrap(), r["method"].as_str().unwrap(), r["path"].as_str().unwrap());
        let id = operation_of(&doc, method, path).unwrap_or_else(|| panic!("{name}: {method} {path} is in no path"));
        operation.insert(name.to_string(), id);
    }
    // By operation and answer code, as trafficgen counted them.
    let mut answers: BTreeMap<(String, String), f64> = BTreeMap::new();
    for s in metrics_of(&sidecar).iter().filter(|s| s.name == "trafficgen_requests_total" && s.value > 0.0) {
        let id = operation[s.label("endpoint")].clone();
        *answers.entry((id, s.label("code").to_string())).or_default() += s.value;
    }
    let sent: BTreeSet<&str> = answers.keys().map(|(e, _)| e.as_str()).collect();
    let mut every: BTreeSet<&str> = documented.by_id.keys().map(String::as_str).collect();
    every.remove("delete_user"); // DELETE is left out unless --include-delete
    every.remove("revoke_tokens"); // x-internal: an operator's route, never derived
    assert_eq!(sent, every, "every operation of the document is sent, and nothing else");
    let total: f64 = answers.values().sum();
    let as_documented: f64 =
        answers.iter().filter(|((id, code), _)| listed(&documented.by_id[id], code)).map(|(_, n)| n).sum();
    eprintln!("demo target: {total} answers, {as_documented} as documented: {answers:?}");
    assert!(total >= 800.0, "too few requests in {RUN:?} at 100/s: {total}");
    assert!(as_documented / total >= 0.95, "{as_documented} of {total} as documented: {answers:?}");
    let count = |id: &str, code: &str| answers.get(&(id.to_string(), code.to_string())).copied().unwrap_or(0.0);
    for body in ["create_order", "create_user", "update_user", "login"] {
        assert_eq!(count(body, "422") + count(body, "400"), 0.0, "{body}: a generated body was refused: {answers:?}");
    }
    for read in ["get_order", "get_user", "update_user"] {
        assert_eq!(count(read, "404"), 0.0, "{read} missed a created resource: {answers:?}");
        assert!(count(read, "200") > 0.0, "{read}: {answers:?}");
    }
    // The login's token (from the environment's credentials) reached the
    // route behind it; the journeys ran through.
    assert!(count("account", "200") > 0.0 && count("account", "401") == 0.0, "{answers:?}");
    for journey in ["orders_lifecycle", "users_lifecycle"] {
        let (completed, failed) = journeys_of(&sidecar, journey);
        assert!(completed > 0.0 && failed == 0.0, "{journey}: {completed} completed, {failed} ended by a failed step");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// uvicorn serving tests/fixtures/openapi/users_api.py, killed on drop.
struct FastApi {
    child: Child,
    addr: SocketAddr,
}

impl Drop for FastApi {
    fn drop(&mut self) {
        // The child is `timeout`, which passes SIGTERM on to uvicorn.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a plain system call on a child of ours not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// FastAPI and what it needs (its form login needs python-multipart), in
/// uvicorn's own environment; in CI a missing one is a failure.
fn have_fastapi() -> bool {
    if !have_tools(&["uvicorn"]) {
        return false;
    }
    let check = r#"d=$(dirname "$(command -v uvicorn)"); "$d/python" -c "import fastapi, multipart""#;
    let ok = Command::new("sh").args(["-c", check]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs FastAPI beside uvicorn (ci/install-test-servers.sh installs it)"
        );
        eprintln!("SKIPPED: FastAPI is not installed beside uvicorn (ci/install-test-servers.sh installs it)");
    }
    ok
}

fn start_fastapi(dir: &Path) -> FastApi {
    let port = server_port();
    let log = dir.join("uvicorn.log");
    let mut child = Command::new("timeout")
        .args(["300", "uvicorn", "users_api:app", "--app-dir"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openapi"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--no-access-log"])
        .env("USERS_API_USERNAME", "ann")
        .env("USERS_API_PASSWORD", "s3cret-pw")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start uvicorn");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let up = eventually(Duration::from_secs(30), || {
        std::net::TcpStream::connect(addr).is_ok() || !matches!(child.try_wait(), Ok(None))
    });
    if !up || !matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        panic!("uvicorn did not start on {addr}: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    FastApi { child, addr }
}

#[test]
fn a_fastapi_users_api_behind_a_login_runs_as_its_document_says() {
    if !have_fastapi() {
        return;
    }
    let _rate = timing_test();
    let dir = dir("fastapi");
    let api = start_fastapi(&dir);
    let served = request(api.addr, "GET", "/openapi.json", &[], None);
    assert_eq!(served.status, 200, "{}", served.body);
    let doc = served.json();
    let documented = Documented::new(&doc);
    let credentials = [("TRAFFICGEN_ENV_USERNAME", "ann"), ("TRAFFICGEN_ENV_PASSWORD", "s3cret-pw")];
    let workload = derive(&dir, &served.body, &credentials);
    let text = std::fs::read_to_string(&workload).unwrap();
    // The OAuth2 password flow's tokenUrl is the setup login; DELETE and the
    // deprecated search are left out, and say so.
    assert!(text.contains("setup:") && text.contains("path: \"/token\""), "{text}");
    assert!(
        text.contains("DELETE /users/{user_id} (delete_user_users__user_id__delete): DELETE is left out"),
        "{text}"
    );
    assert!(text.contains("GET /users/search (search_users_users_search_get): deprecated"), "{text}");

    let sidecar = run_at_100(&format!("http://{}", api.addr), &workload, &credentials);
    let status = sidecar.get_json("/status");
    let shown = sidecar.get_json("/workload");
    let names: Vec<&str> = shown["requests"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    // 8 operations, the login, and the users journey's 3 steps.
    assert_eq!(names.len(), 12, "{shown}");
    let (completed, failed) = journeys_of(&sidecar, "users_lifecycle");
    assert!(
        completed > 0.0 && failed == 0.0,
        "users_lifecycle: {completed} completed, {failed} ended by a failed step"
    );
    for name in &names {
        let sent = status["stats"]["by_endpoint"][name]["total"].as_u64().unwrap_or(0);
        assert!(sent > 0, "{name} was never sent: {}", status["stats"]);
    }

    // What the server answered, by route: the ground truth.
    let seen = request(api.addr, "GET", "/_answers", &[], None).json();
    let mut total = 0u64;
    let mut as_documented = 0u64;
    let mut missed_reads = 0u64;
    let mut unprocessable = 0u64;
    for answer in seen["answers"].as_array().unwrap() {
        let (method, route) = (answer["method"].as_str().unwrap(), answer["route"].as_str().unwrap());
        let (code, n) = (answer["status"].as_u64().unwrap(), answer["count"].as_u64().unwrap());
        if route == "(no route)" {
            continue; // this test's own GET /openapi.json
        }
        total += n;
        if documented
            .by_route
            .get(&(method.to_string(), route.to_string()))
            .is_some_and(|c| listed(c, &code.to_string()))
        {
            as_documented += n;
        }
        if route.contains("{user_id}") && code == 404 {
            missed_reads += n;
        }
        if code == 422 {
            unprocessable += n;
        }
    }
    eprintln!(
        "FastAPI: {total} answers, {as_documented} as documented; trafficgen: {}; server: {seen}",
        status["stats"]
    );
    assert_eq!(total, status["stats"]["total"].as_u64().unwrap(), "the server's count and trafficgen's differ");
    assert!(total >= 800, "too few requests in {RUN:?} at 100/s: {total}");
    assert!(as_documented as f64 / total as f64 >= 0.95, "{as_documented} of {total} as documented: {seen}");
    assert_eq!(unprocessable, 0, "generated bodies refused: {}", seen["unprocessable"]);
    assert_eq!(missed_reads, 0, "reads of created users missed: {seen}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn openapi_path_derives_the_workload_once_the_target_is_up() {
    let port = server_port();
    let target = format!("http://127.0.0.1:{port}");
    let url = format!("{target}/openapi.json");
    let env = sidecar_env(
        &target,
        &[
            ("OPENAPI_PATH", "/openapi.json"),
            ("STEADY_RPS", "20"),
            ("TRAFFICGEN_ENV_USERNAME", "sidecar"),
            ("TRAFFICGEN_ENV_PASSWORD", "demo"),
        ],
    );
    let sidecar = Proc::start(&[], &env);
    // The target is not up: the sidecar says why, waits, and sends nothing.
    let waiting = sidecar.wait_for_log(
        |v| {
            v["message"].as_str().is_some_and(|m| m.starts_with("cannot derive the workload from the OpenAPI document"))
        },
        Duration::from_secs(10),
    );
    let waiting = waiting.unwrap_or_else(|| panic!("no waiting line:\n{}", sidecar.output()));
    assert_eq!(waiting["level"], "warn", "{waiting}");
    assert!(waiting["error"].as_str().unwrap().contains("cannot connect"), "{waiting}");
    assert_eq!(sidecar.get_json("/workload")["source"], format!("waiting for the OpenAPI document at {url}"));
    let status = sidecar.get_json("/status");
    assert_eq!(
        (status["state"].as_str(), status["stats"]["total"].as_u64()),
        (Some("warming_up"), Some(0)),
        "{status}"
    );

    let demo = start_demo_target(&["--port", &port.to_string()]);
    let derived = sidecar.wait_for_log(
        |v| v["message"].as_str().is_some_and(|m| m.starts_with("workload derived from the OpenAPI document")),
        Duration::from_secs(40),
    );
    let derived = derived.unwrap_or_else(|| panic!("not derived:\n{}", sidecar.output()));
    assert_eq!(derived["url"], url.as_str());
    assert_eq!(derived["requests"], 15, "{derived}");
    let shown = sidecar.get_json("/workload");
    assert_eq!(shown["source"], url.as_str(), "GET /workload names where it came from");
    assert!(shown["requests"].as_array().unwrap().iter().any(|r| r["name"] == "get_user"), "{shown}");
    // Traffic starts: reads of created users succeed.
    let reading = eventually(Duration::from_secs(20), || {
        sidecar.get_json("/status")["stats"]["by_endpoint"]["get_user"]["successful"].as_u64().unwrap_or(0) > 0
    });
    assert!(reading, "{}", sidecar.get_json("/status"));
    assert!(target_count(&demo, Some("get_user")) > 0);
    // The login's credentials came from the sidecar's environment.
    let logins = demo.get_json("/stats/logins");
    assert!(logins["by_user"]["sidecar"].as_u64() >= Some(1), "{logins}");
    let account_ok = eventually(Duration::from_secs(20), || {
        sidecar.get_json("/status")["stats"]["by_endpoint"]["account"]["successful"].as_u64().unwrap_or(0) > 0
    });
    assert!(account_ok, "{}", sidecar.get_json("/status"));

    // Without them the derived workload cannot be used: said once, nothing sent.
    let bare = Proc::start(&[], &sidecar_env(&target, &[("OPENAPI_PATH", "/openapi.json")]));
    let refused = bare
        .wait_for_log(|v| v["message"].as_str().is_some_and(|m| m.contains("cannot be used")), Duration::from_secs(20));
    let refused = refused.unwrap_or_else(|| panic!("no line:\n{}", bare.output()));
    assert_eq!(refused["level"], "error");
    assert!(
        refused["error"].as_str().unwrap().contains("environment variable TRAFFICGEN_ENV_USERNAME is not set"),
        "{refused}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(bare.get_json("/status")["stats"]["total"], 0);
}

#[test]
fn documents_that_cannot_be_used_are_refused_in_a_line() {
    let dir = dir("bad");
    let swagger = dir.join("swagger.json");
    std::fs::write(&swagger, r#"{"swagger": "2.0", "info": {"title": "old", "version": "1"}, "paths": {}}"#).unwrap();
    let (code, stdout, stderr) = from_openapi(&[swagger.to_str().unwrap()], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("swagger.json: this is a Swagger 2.0 document") && stderr.contains("convert it first"),
        "{stderr}"
    );

    let (code, _, stderr) = from_openapi(&["-"], Some(&vec![b' '; 8 * 1024 * 1024 + 1]));
    assert_eq!(code, 2);
    assert!(stderr.contains("stdin: larger than 8 MiB"), "{stderr}");

    // Parts that cannot be used: a line each, with their place; the rest is derived.
    let partly = r##"{"openapi": "3.1.0", "info": {"title": "p", "version": "1"}, "paths": {
        "/users": {"post": {"requestBody": {"required": true, "content": {"multipart/form-data": {}}}, "responses": {"201": {"description": ""}}},
                   "get": {"responses": {"200": {"description": ""}}}},
        "/ext": {"post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "https://example.com/s.json"}}}}, "responses": {"201": {"description": ""}}}}}}"##;
    let (code, stdout, stderr) = from_openapi(&["-"], Some(partly.as_bytes()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("stdin#/paths/~1users/post/requestBody: no body trafficgen can write"), "{stderr}");
    assert!(
        stderr.contains("stdin#/paths/~1ext/post/requestBody: $ref `https://example.com/s.json` points outside"),
        "{stderr}"
    );
    assert!(stdout.contains("name: get_users") && stdout.contains("# Left out (2):"), "{stdout}");

    // The sidecar's settings.
    for (env, fragment) in [
        (vec![("OPENAPI_PATH", "/openapi.json"), ("WORKLOAD_FILE", "x.yaml")], "not both"),
        (vec![("OPENAPI_PATH", "http://elsewhere.example/openapi.json")], "never another host"),
    ] {
        let mut all = sidecar_env("http://127.0.0.1:9", &[]);
        all.extend(env);
        let mut proc = Proc::spawn(&[], &all);
        let exit = proc.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!(exit.code(), Some(2), "{}", proc.output());
        let line = proc.wait_for_line("OPENAPI_PATH", Duration::from_secs(5)).unwrap_or_default();
        assert!(line.contains(fragment), "{line:?}: {}", proc.output());
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// (path, method) of every route in src/demo_target/mod.rs's `fn routes`.
fn demo_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/demo_target/mod.rs")).unwrap();
    let body = source.split("fn routes(").nth(1).unwrap().split("\n}\n").next().unwrap();
    let mut routes = BTreeSet::new();
    for line in body.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let path = line.split('"').nth(1).unwrap().to_string();
        let method = line.split("web::").nth(1).unwrap().split('(').next().unwrap().to_string();
        routes.insert((path, method));
    }
    routes
}

#[test]
fn the_demo_targets_document_describes_every_route_and_nothing_else() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../src/demo_target/openapi.json")).expect("openapi.json is JSON");
    let mut described: BTreeSet<(String, String)> = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            described.insert((path.clone(), method.clone()));
        }
    }
    described.insert(("/openapi.json".to_string(), "get".to_string()));
    let routes = demo_routes();
    assert!(routes.len() >= 15, "{routes:?}");
    assert_eq!(routes, described, "src/demo_target/openapi.json must describe the routes of fn routes");
}
