//! Journeys in the language: reading, the checks with their places,
//! compiling, drawing arrivals, rendering and capturing with an instance's
//! own variables and data row, pauses.

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::workload::{
    Arrival, Draw, EnvSource, JourneyId, Locals, Missing, NoRow, Options, RunState, Secret, Step, Target, TraceHeaders,
    USER_AGENT, Workload, load_file, load_str,
};

fn options() -> Options {
    let target = Target {
        authority: "api:8000".into(),
        path_prefix: String::new(),
        user_agent: USER_AGENT.into(),
        trace: TraceHeaders::Off,
    };
    let env = vec![("TRAFFICGEN_ENV_PASSWORD".to_string(), Secret("s3cret pw".to_string()))];
    Options::new(target, 8).with_env(EnvSource::Fixed(Arc::new(env)))
}

fn load(text: &str) -> Workload {
    load_str("j.yaml", text, &options()).unwrap_or_else(|e| panic!("{e}"))
}

/// `line:col: message` of every problem of `text`.
fn problems(text: &str) -> Vec<String> {
    match load_str("j.yaml", text, &options()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.iter().map(|p| format!("{}: {}", p.pos, p.message)).collect(),
    }
}

fn assert_problem(text: &str, at: &str, fragment: &str) {
    let found = problems(text);
    assert!(
        found.iter().any(|p| p.starts_with(&format!("{at}: ")) && p.contains(fragment)),
        "expected `{at}: …{fragment}…` in {found:#?}\nfor:\n{text}"
    );
}

const USERS: &str = r#"
requests:
  - name: list
    weight: 1
    method: GET
    path: /users
journeys:
  - name: lifecycle
    weight: 3
    steps:
      - name: create
        method: POST
        path: /users
        body: {name: "u-{{ seq() }}"}
        success: [201]
        capture:
          - {var: user_id, json: /id}
          - {var: user_path, header: Location, path: true}
      - pause: 10ms
      - name: read
        method: GET
        path: "/users/{{ var(user_id) }}"
      - pause: {uniform: [1s, 3s]}
      - name: follow
        method: GET
        path: "{{ var(user_path) }}"
        on_failure: continue
      - pause: {exponential: 2s}
      - name: delete
        method: DELETE
        path: "/users/{{ var(user_id) }}"
        headers:
          Authorization: "Basic {{ base64('ann:', env(TRAFFICGEN_ENV_PASSWORD)) }}"
"#;

/// Renders `id` as the instance `locals` would send it.
fn render(workload: &Workload, name: &str, state: &mut RunState, locals: &Locals) -> String {
    let mut rng = SmallRng::seed_from_u64(3);
    let id = workload.find(name).unwrap_or_else(|| panic!("no request {name}"));
    let chosen = workload.resolve_step(id, &mut rng, state, locals).unwrap_or_else(|m| panic!("{name}: {m:?}"));
    let mut out = Vec::new();
    workload.render_in(&chosen, &mut rng, state, Some(locals), &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn a_journey_compiles_to_steps_with_its_own_variables() {
    let w = load(USERS);
    let j = w.find_journey("lifecycle").unwrap();
    assert_eq!(w.journey_vars(j), ["user_id", "user_path"]);
    let names: Vec<String> = w
        .steps(j)
        .iter()
        .map(|s| match s {
            Step::Request { id, go_on } => format!("{}{}", w.name(*id), if *go_on { "+" } else { "" }),
            Step::Pause(p) => format!("pause {p}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "lifecycle/create",
            "pause 0.01 s",
            "lifecycle/read",
            "pause 1 to 3 s",
            "lifecycle/follow+",
            "pause exponential, mean 2 s",
            "lifecycle/delete"
        ]
    );
    assert_eq!(w.mix(), "list=1,lifecycle=3");
    assert_eq!(w.share(w.find("list").unwrap()), Some(25.0));
    assert_eq!(w.journey_share(j), 75.0);
}

#[test]
fn each_instance_renders_with_its_own_values() {
    let w = load(USERS);
    let j = w.find_journey("lifecycle").unwrap();
    let mut state = RunState::new(&w);
    let mut rng = SmallRng::seed_from_u64(1);
    let (mut a, mut b) = (Locals::new(), Locals::new());
    w.begin(j, &mut rng, &mut state, &mut a).unwrap();
    w.begin(j, &mut rng, &mut state, &mut b).unwrap();
    let create = w.find("lifecycle/create").unwrap();
    let read = w.find("lifecycle/read").unwrap();
    // Nothing captured yet: the read cannot be sent.
    assert_eq!(w.resolve_step(read, &mut rng, &state, &a), Err(Missing::Var(0)));
    let answer = |id: u32, path: &str| (format!(r#"{{"id":{id}}}"#), path.to_string());
    for (locals, (body, location)) in [(&mut a, answer(12, "/users/12")), (&mut b, answer(13, "/users/13"))] {
        let headers: [(&str, &[u8]); 1] = [("location", location.as_bytes())];
        let report = w.capture_in(create, 201, &headers, Some(body.as_bytes()), &mut state, Some(locals));
        assert_eq!((report.stored, report.failed()), (2, 0));
    }
    assert!(render(&w, "lifecycle/read", &mut state, &a).starts_with("GET /users/12 HTTP/1.1\r\n"));
    assert!(render(&w, "lifecycle/read", &mut state, &b).starts_with("GET /users/13 HTTP/1.1\r\n"));
    // A captured path keeps its slashes.
    assert!(render(&w, "lifecycle/follow", &mut state, &b).starts_with("GET /users/13 HTTP/1.1\r\n"));
    let delete = render(&w, "lifecycle/delete", &mut state, &a);
    // base64("ann:s3cret pw")
    assert!(delete.contains("\r\nAuthorization: Basic YW5uOnMzY3JldCBwdw==\r\n"), "{delete}");
    assert!(delete.starts_with("DELETE /users/12 "), "{delete}");
}

#[test]
fn a_path_from_an_answer_must_be_safe_to_follow() {
    let w = load(USERS);
    let j = w.find_journey("lifecycle").unwrap();
    let mut state = RunState::new(&w);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut locals = Locals::new();
    w.begin(j, &mut rng, &mut state, &mut locals).unwrap();
    let create = w.find("lifecycle/create").unwrap();
    for evil in ["/users/1/../../admin", "//evil.example/x", "/a b HTTP/1.1\r\nX: y", "/a?x#y", "http://evil/x"] {
        let headers: [(&str, &[u8]); 1] = [("location", evil.as_bytes())];
        let report = w.capture_in(create, 201, &headers, Some(br#"{"id":1}"#), &mut state, Some(&mut locals));
        assert_eq!((report.stored, report.refused), (1, 1), "{evil:?} refused, the id kept");
    }
    let follow = w.find("lifecycle/follow").unwrap();
    assert_eq!(w.resolve_step(follow, &mut rng, &state, &locals), Err(Missing::Var(1)));
}

#[test]
fn arrivals_are_drawn_among_requests_and_journeys_by_weight() {
    let w = load(USERS);
    let state = RunState::new(&w);
    let mut rng = SmallRng::seed_from_u64(9);
    let journeys = (0..20_000).filter(|_| matches!(w.draw_arrival(&mut rng, &state), Arrival::Journey(_))).count();
    let share = journeys as f64 / 20_000.0;
    assert!((share - 0.75).abs() < 0.02, "{share}");
}

#[test]
fn without_journeys_an_arrival_is_the_draw_it_always_was() {
    let w = crate::workload::orders(crate::workload::OrderWeights::default(), &options()).unwrap();
    let mut state = RunState::new(&w);
    state.push(w.pool_id("order_ids").unwrap(), b"7", true);
    let (mut a, mut b) = (SmallRng::seed_from_u64(5), SmallRng::seed_from_u64(5));
    for _ in 0..5000 {
        let old = w.draw(&mut a, &state);
        assert_eq!(w.draw_arrival(&mut b, &state), Arrival::Request(old));
    }
}

#[test]
fn a_variable_is_read_only_after_a_step_captures_it() {
    let text = |steps: &str| format!("journeys:\n  - name: j\n    weight: 1\n    steps:\n{steps}");
    // Read in the same step that captures it.
    assert_problem(
        &text("      - {name: a, method: POST, path: '/u/{{ var(id) }}', capture: {var: id, json: /id}}\n"),
        "5:43",
        "variable `id` is read before any step captures it: step `a` captures it",
    );
    // Read before the step that captures it.
    assert_problem(
        &text(
            "      - {name: a, method: GET, path: '/u/{{ var(id) }}'}\n      - {name: b, method: POST, path: /, capture: {var: id, json: /id}}\n",
        ),
        "5:42",
        "step `b` captures it, later",
    );
    assert_problem(
        &text("      - {name: a, method: GET, path: '/u/{{ var(nope) }}'}\n"),
        "5:42",
        "variable `nope` is never captured in journey `j`",
    );
    // Outside journeys.
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: GET, path: '/{{ var(x) }}'}\n",
        "2:47",
        "can only be read in a journey's steps",
    );
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: GET, path: /, capture: {var: x, json: /id}}\n",
        "2:57",
        "a capture into a variable (`var`) is a journey step's",
    );
    assert!(problems(&text("      - {name: a, method: POST, path: /, capture: {var: id, json: /id}}\n      - {name: b, method: GET, path: '/u/{{ var(id) }}'}\n")).is_empty());
}

#[test]
fn journeys_and_pauses_are_checked_with_their_places() {
    let journey = |steps: &str| format!("journeys:\n  - name: j\n    weight: 1\n    steps: {steps}\n");
    assert_problem(&journey("[]"), "4:12", "a journey with no steps");
    assert_problem(&journey("[{pause: 1s}]"), "2:5", "at least one request step");
    assert_problem(&journey("[{pause: 1000000000}]"), "4:21", "a pause must be a duration from 0 to 1h");
    assert_problem(&journey("[{pause: 1e9s}]"), "4:21", "a pause must be a duration");
    assert_problem(&journey("[{pause: -1s}]"), "4:21", "a pause must be a duration");
    assert_problem(&journey("[{pause: {uniform: [3s, 1s]}}]"), "4:31", "the first duration is the shortest");
    assert_problem(&journey("[{pause: {exponential: 0s}}]"), "4:35", "must be above 0");
    assert_problem(&journey("[{pause: {between: [1s, 2s]}}]"), "4:22", "unknown key `between`");
    assert_problem(&journey("[{pause: 1s, name: x}]"), "4:25", "unknown key `name` in a pause step");
    assert_problem(
        &journey("[{name: a, method: GET, path: /, on_failure: retry}]"),
        "4:57",
        "on_failure must be `end` or `continue`",
    );
    assert_problem(
        &journey("[{name: a, method: GET, path: /, weight: 2}]"),
        "4:45",
        "unknown key `weight` in a journey step",
    );
    assert_problem("journeys:\n  - {name: j, steps: [{name: a, method: GET, path: /}]}\n", "2:5", "needs a `weight`");
    assert_problem(
        "requests:\n  - {name: j, weight: 1, method: GET, path: /}\njourneys:\n  - {name: j, weight: 1, steps: [{name: a, method: GET, path: /}]}\n",
        "4:5",
        "has the name of a request",
    );
    let many: String =
        (0..=crate::workload::model::MAX_STEPS).map(|i| format!("{{name: s{i}, method: GET, path: /}},")).collect();
    assert!(problems(&journey(&format!("[{many}]"))).iter().any(|p| p.contains("more than 32 steps")));
}

#[test]
fn pauses_stay_in_their_bounds() {
    use crate::workload::PauseDef;
    let mut rng = SmallRng::seed_from_u64(11);
    let pos = Default::default();
    let uniform = PauseDef::Uniform { min: 1.0, max: 3.0, pos };
    let draws: Vec<f64> = (0..10_000).map(|_| uniform.draw(&mut rng).as_secs_f64()).collect();
    assert!(draws.iter().all(|d| (1.0..=3.0).contains(d)));
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((mean - 2.0).abs() < 0.03, "{mean}");
    let exponential = PauseDef::Exponential { mean: 2.0, pos };
    let draws: Vec<f64> = (0..20_000).map(|_| exponential.draw(&mut rng).as_secs_f64()).collect();
    let mean = draws.iter().sum::<f64>() / draws.len() as f64;
    assert!((mean - 2.0).abs() < 0.08, "{mean}");
    let long = PauseDef::Exponential { mean: 3000.0, pos };
    assert!((0..10_000).all(|_| long.draw(&mut rng) <= Duration::from_secs(3600)), "capped at an hour");
    assert_eq!(PauseDef::Fixed { secs: 0.25, pos }.draw(&mut rng), Duration::from_millis(250));
}

#[test]
fn env_reads_only_prefixed_names_and_never_shows_the_value() {
    let at = |path: &str| {
        format!("requests:\n  - {{name: a, weight: 1, method: GET, path: /, headers: {{X-Key: '{path}'}}}}\n")
    };
    assert_problem(
        &at("{{ env(CONTROL_TOKEN) }}"),
        "2:66",
        "only environment variables whose names start with TRAFFICGEN_ENV_",
    );
    assert_problem(
        &at("{{ env(TRAFFICGEN_ENV_MISSING) }}"),
        "2:66",
        "environment variable TRAFFICGEN_ENV_MISSING is not set",
    );
    let w = load(&at("{{ env(TRAFFICGEN_ENV_PASSWORD) }}"));
    let report = crate::workload::check::report(&w, "http://api:8000");
    assert!(report.contains("X-Key: {{ env(TRAFFICGEN_ENV_PASSWORD) }}"), "{report}");
    assert!(!report.contains("s3cret"), "{report}");
    assert!(!format!("{w:?}").contains("s3cret"), "Debug shows no value");
}

#[test]
fn take_removes_the_value_it_sends() {
    let w = load(
        "pools: {ids: {values: [1, 2, 3]}}\nrequests:\n  - {name: del, weight: 1, method: DELETE, path: '/users/{{ take(ids) }}'}\n",
    );
    let mut state = RunState::new(&w);
    let mut rng = SmallRng::seed_from_u64(2);
    let mut sent = Vec::new();
    for _ in 0..4 {
        match w.draw(&mut rng, &state) {
            Draw::Send(chosen) => {
                let mut out = Vec::new();
                w.render(&chosen, &mut rng, &mut state, &mut out);
                sent.push(String::from_utf8(out).unwrap().split(' ').nth(1).unwrap().to_string());
            }
            Draw::Unmet { .. } => sent.push("unmet".into()),
        }
    }
    let mut ids = sent[..3].to_vec();
    ids.sort();
    assert_eq!(ids, ["/users/1", "/users/2", "/users/3"], "each id once");
    assert_eq!(sent[3], "unmet");
}

#[test]
fn regex_captures_keep_their_one_group() {
    let w = load(
        r#"
journeys:
  - name: j
    weight: 1
    steps:
      - name: make
        method: POST
        path: /users
        capture:
          - {var: id, header: Location, regex: '/users/(\d+)$'}
          - {var: csrf, regex: 'name="csrf" value="([a-f0-9]+)"'}
      - {name: read, method: GET, path: "/u/{{ var(id) }}/{{ var(csrf) }}"}
"#,
    );
    let mut state = RunState::new(&w);
    let mut rng = SmallRng::seed_from_u64(2);
    let mut locals = Locals::new();
    w.begin(JourneyId(0), &mut rng, &mut state, &mut locals).unwrap();
    let make = w.find("j/make").unwrap();
    let headers: [(&str, &[u8]); 1] = [("location", b"/api/v1/users/12")];
    let body = br#"<input name="csrf" value="beef01">"#;
    let report = w.capture_in(make, 200, &headers, Some(body), &mut state, Some(&mut locals));
    assert_eq!((report.stored, report.failed()), (2, 0));
    assert!(render(&w, "j/read", &mut state, &locals).starts_with("GET /u/12/beef01 "));
    let report = w.capture_in(make, 200, &[("location", b"/x")], Some(b"no"), &mut state, Some(&mut locals));
    assert_eq!(report.missing, 2, "no match is missing");
    for (regex, fragment) in
        [("'(a)(b)'", "exactly one group"), ("'abc'", "it has 0"), ("'(unclosed'", "not a regular expression")]
    {
        let text = format!(
            "pools: {{p: ~}}\nrequests:\n  - {{name: a, weight: 1, method: GET, path: /, capture: {{pool: p, header: X, regex: {regex}}}}}\n"
        );
        assert_problem(&text, "3:85", fragment);
    }
    let long = format!("'({})'", "a".repeat(300));
    let text = format!(
        "pools: {{p: ~}}\nrequests:\n  - {{name: a, weight: 1, method: GET, path: /, capture: {{pool: p, regex: {long}}}}}\n"
    );
    assert!(problems(&text).iter().any(|p| p.contains("longer than 256")), "{:?}", problems(&text));
}

#[test]
fn a_path_may_begin_only_with_a_captured_path() {
    assert_problem(
        "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '{{ pool(p) }}'}\n  - {name: b, weight: 1, method: POST, path: /, capture: {pool: p, header: Location}}\n",
        "3:46",
        "only when every capture into it has `path: true`",
    );
    assert!(
        problems("pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '{{ take(p) }}'}\n  - {name: b, weight: 1, method: POST, path: /, capture: {pool: p, header: Location, path: true}}\n")
            .is_empty()
    );
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: GET, path: '{{ seq() }}'}\n",
        "2:45",
        "must start with `/`",
    );
}

const ACCOUNTS: &str = "username,password\nann,pw-a\nbob,pw-b\ncid,pw-c\n";

/// A directory with `accounts.csv` and the workload file `w.yaml`.
fn data_dir(name: &str, order: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trafficgen-journey-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("accounts.csv"), ACCOUNTS).unwrap();
    let workload = format!(
        r#"
data:
  accounts: {{file: accounts.csv, order: {order}}}
journeys:
  - name: login
    weight: 1
    steps:
      - name: login
        method: POST
        path: /login
        body: {{username: "{{{{ data(accounts, username) }}}}", password: "{{{{ data(accounts, password) }}}}"}}
"#
    );
    std::fs::write(dir.join("w.yaml"), workload).unwrap();
    dir
}

#[test]
fn data_rows_are_one_per_instance_in_their_order() {
    let dir = data_dir("unique", "unique");
    let w = load_file(&dir.join("w.yaml"), &options()).unwrap_or_else(|e| panic!("{e}"));
    let mut state = RunState::new(&w);
    let mut rng = SmallRng::seed_from_u64(2);
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let mut locals = Locals::new();
        w.begin(JourneyId(0), &mut rng, &mut state, &mut locals).unwrap();
        let text = render(&w, "login/login", &mut state, &locals);
        bodies.push(text.split("\r\n\r\n").nth(1).unwrap().to_string());
    }
    assert_eq!(
        bodies,
        [
            r#"{"username":"ann","password":"pw-a"}"#,
            r#"{"username":"bob","password":"pw-b"}"#,
            r#"{"username":"cid","password":"pw-c"}"#
        ]
    );
    assert_eq!(w.begin(JourneyId(0), &mut rng, &mut state, &mut Locals::new()), Err(NoRow { table: 0 }));
    assert_eq!(w.rows_left(&state), [("accounts".to_string(), Some(0))]);
    let report = crate::workload::check::report(&w, "http://api:8000");
    assert!(!report.contains("pw-a"), "data values are never shown: {report}");

    let dir = data_dir("sequential", "sequential");
    let w = load_file(&dir.join("w.yaml"), &options()).unwrap();
    let mut state = RunState::new(&w);
    for expected in ["ann", "bob", "cid", "ann"] {
        let mut locals = Locals::new();
        w.begin(JourneyId(0), &mut rng, &mut state, &mut locals).unwrap();
        assert!(render(&w, "login/login", &mut state, &locals).contains(expected));
    }
}

#[test]
fn data_files_stay_inside_their_directory() {
    let dir = data_dir("bounds", "random");
    let table = |file: &str| {
        format!(
            "data:\n  t: {{file: '{file}'}}\njourneys:\n  - {{name: j, weight: 1, steps: [{{name: a, method: GET, path: '/{{{{ data(t, a) }}}}'}}]}}\n"
        )
    };
    // Written outside: refused as written, with the place.
    assert_problem(&table("../secret.csv"), "2:13", "`..` is refused");
    assert_problem(&table("/etc/passwd"), "2:13", "not absolute");
    // No directory (a workload put over the API): refused.
    assert_problem(&table("accounts.csv"), "2:3", "set DATA_DIR");
    // Through a symbolic link out of the directory: refused when read.
    let outside = dir.with_extension("outside.csv");
    std::fs::write(&outside, "a\nsecret\n").unwrap();
    let _ = std::os::unix::fs::symlink(&outside, dir.join("link.csv"));
    let options = options().with_data_dir(Some(dir.clone()));
    let error = load_str("j.yaml", &table("link.csv"), &options).unwrap_err().to_string();
    assert!(error.contains("j.yaml:2:13: data file \"link.csv\" leads outside the data directory"), "{error}");
    // A column that is not there, and a problem inside the data file.
    let error = load_str("j.yaml", &table("accounts.csv"), &options).unwrap_err().to_string();
    assert!(error.contains("has no column `a` (columns: username, password)"), "{error}");
    std::fs::write(dir.join("bad.csv"), "a,b\n1,2\n3\n").unwrap();
    let error = load_str("j.yaml", &table("bad.csv"), &options).unwrap_err().to_string();
    assert!(error.contains("j.yaml:2:13: bad.csv:3:1: 1 fields where the header names 2 columns"), "{error}");
    let _ = std::fs::remove_file(outside);
}
