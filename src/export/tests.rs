//! Exports of small workloads, checked for what each tool must be told.

use super::*;
use crate::observe::slo;
use crate::workload::{Options, Target, load_str};

fn workload(text: &str) -> Workload {
    let options = Options {
        target: Target {
            authority: "x".into(),
            path_prefix: String::new(),
            user_agent: "t".into(),
            trace: crate::workload::TraceHeaders::Off,
        },
        default_pool_size: 50,
        data_dir: None,
        env: Default::default(),
    };
    load_str("test.yaml", text, &options).unwrap_or_else(|e| panic!("{e}"))
}

fn spec(traffic: Traffic, slos: &str) -> Spec {
    Spec {
        source: "test.yaml".into(),
        target_url: "http://127.0.0.1:8080".into(),
        traffic,
        slos: slo::parse(slos).unwrap(),
        max_in_flight: 64,
        max_journeys: 100,
        endpoints: None,
        max_bytes: MAX_SCRIPT_BYTES,
        users: None,
    }
}

fn constant(rps: f64) -> Traffic {
    Traffic::new(None, rps, 60.0, 0.0).unwrap()
}

const CRUD: &str = r#"
pools:
  ids:
requests:
  - name: create
    weight: 1
    method: POST
    path: /things
    body: {n: "{{ random_int(1, 3) }}"}
    capture:
      - pool: ids
        json: /id
  - name: read
    weight: 3
    method: GET
    path: "/things/{{ pool(ids) }}"
    fallback: create
"#;

#[test]
fn every_format_is_deterministic_and_names_every_request() {
    let w = workload(CRUD);
    let s = spec(Traffic::new(Some(ScenarioKind::Peak), 40.0, 80.0, 0.0).unwrap(), "p95<250ms,read:p99<1s");
    for format in Format::ALL {
        let a = render(format, &w, &s).unwrap();
        assert_eq!(a, render(format, &w, &s).unwrap(), "{format}");
        for name in ["create", "read"] {
            assert!(a.contains(&format!("\"{name}\"")), "{format}: {name} missing");
        }
        assert!(a.contains("250"), "{format}: the threshold is written");
    }
}

#[test]
fn fractional_rates_get_a_k6_time_unit_and_locust_stages() {
    let w = workload(CRUD);
    let k6 = render(Format::K6, &w, &spec(constant(2.5), "")).unwrap();
    assert!(k6.contains("rate: 25,") && k6.contains("timeUnit: \"10s\""), "{k6}");
    let slow = render(Format::K6, &w, &spec(constant(0.001), "")).unwrap();
    assert!(slow.contains("rate: 1,") && slow.contains("timeUnit: \"1000s\""), "{slow}");
    let locust = render(Format::Locust, &w, &spec(constant(2.5), "")).unwrap();
    assert!(locust.contains("STAGES = [\n    (60, 2.5, 2.5),\n]"), "{locust}");
}

#[test]
fn an_unknown_request_in_an_slo_is_refused_naming_the_clause() {
    let w = workload(CRUD);
    let e = render(Format::K6, &w, &spec(constant(1.0), "p95<1s,nope:p99<1s")).unwrap_err().to_string();
    assert!(e.contains("clause 2") && e.contains("`nope`") && e.contains("create, read"), "{e}");
}

#[test]
fn artillery_sends_the_pool_filler_first_and_scales_arrivals_to_requests() {
    let w = workload(CRUD);
    let yaml = render(Format::Artillery, &w, &spec(constant(10.0), "")).unwrap();
    // `read` (weight 3) sends create then read: 1·1 + 3·2 = 7 requests per 4 arrivals.
    assert!(yaml.contains("Arrivals per request sent: 4/7"), "{yaml}");
    assert!(yaml.contains("arrivalRate: 5.714286"), "{yaml}");
    let read = yaml.split("  - name: \"read\"").nth(1).unwrap();
    let create_at = read.find("name: \"create\"").unwrap();
    let read_at = read.find("name: \"read\"").unwrap();
    assert!(create_at < read_at, "{read}");
    assert!(read.contains("as: \"pool_ids\"") && read.contains("{{ pool_ids }}"));
}

#[test]
fn artillery_says_what_it_leaves_out() {
    let w = workload(
        r#"
pools:
  tokens:
  seeded:
    values: [a, 1]
requests:
  - name: ok
    weight: 1
    method: GET
    path: "/s/{{ pool(seeded) }}"
  - name: stuck
    weight: 1
    method: GET
    path: /t
    headers:
      Authorization: "Bearer {{ pool(tokens) }}"
"#,
    );
    let yaml = render(Format::Artillery, &w, &spec(constant(1.0), "")).unwrap();
    assert!(
        yaml.contains("`stuck` reads tokens that nothing fills within one virtual user and has no fallback"),
        "{yaml}"
    );
    assert!(!yaml.contains("- name: \"stuck\""), "{yaml}");
    assert!(yaml.contains("pool_seeded: [\"a\", 1]"), "a seeded pool is a variable list: {yaml}");
}

#[test]
fn setup_goes_to_each_tools_setup_with_its_repeat_explained() {
    let w = workload(
        r#"
pools:
  token:
    size: 1
setup:
  every_secs: 60
  requests:
    - name: login
      method: POST
      path: /login
      body: {user: demo}
      capture:
        - pool: token
          json: /token
requests:
  - name: me
    weight: 1
    method: GET
    path: /me
    headers:
      Authorization: "Bearer {{ pool(token) }}"
"#,
    );
    let s = spec(constant(1.0), "");
    let k6 = render(Format::K6, &w, &s).unwrap();
    assert!(k6.contains("export function setup()") && k6.contains("SETUP_EVERY_MS = 60000"), "{k6}");
    assert!(k6.contains("\"token\": POOLS[\"token\"].values.slice()"), "{k6}");
    let locust = render(Format::Locust, &w, &s).unwrap();
    assert!(locust.contains("            gevent.sleep(60)\n            self.run_setup()"), "{locust}");
    let yaml = render(Format::Artillery, &w, &s).unwrap();
    assert!(yaml.contains("before:\n  flow:\n    - post:"), "{yaml}");
    assert!(yaml.contains("Artillery runs `before` once"), "{yaml}");
}

#[test]
fn hostile_text_stays_inside_its_string_literals() {
    let hostile = r#"x\"y'z`${a}*/\\n</script>"#;
    let w = workload(&format!(
        r#"
requests:
  - name: a
    weight: 1
    method: POST
    path: /a
    headers:
      X-Evil: "{hostile}"
    body:
      k: "line\nbreak\u2028{hostile}"
"#
    ));
    let s = spec(constant(1.0), "");
    for format in Format::ALL {
        let script = render(format, &w, &s).unwrap();
        // Every line of the script is either code the writer made or holds
        // the text inside a string literal: the text never starts a line.
        assert!(!script.contains('\u{2028}'), "{format}");
        assert!(!script.lines().any(|l| l.trim_start().starts_with("break")), "{format}: {script}");
    }
}

#[test]
fn odd_numbers_never_panic_an_export() {
    let w = workload(CRUD);
    for x in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e-300, f64::MAX, 0.0015, 999_999.999, 604_800.0] {
        for kind in [None, Some(ScenarioKind::Peak), Some(ScenarioKind::Stress)] {
            if let Ok(traffic) = Traffic::new(kind, x, x, 0.0) {
                for format in Format::ALL {
                    let _ = render(format, &w, &spec(traffic.clone(), "rps>=95%"));
                }
            }
        }
    }
}

#[test]
fn endpoints_narrow_the_draw_and_keep_the_other_requests_as_fallbacks() {
    let w = workload(&format!("{CRUD}  - name: boom\n    error: true\n    method: GET\n    path: /error\n"));
    let only_read = vec!["read".to_string()];
    let script = Script::new(w.model(), &[50], 0.3, Some(&only_read));
    let share = |name: &str| script.share(script.find(name).unwrap());
    assert_eq!((share("create"), share("read")), (0.0, 0.7), "the error share stays; create is out");
    assert!((share("boom") - 0.3).abs() < 1e-9);
    let all = Script::new(w.model(), &[50], 0.0, None);
    assert_eq!(all.share(all.find("create").unwrap()), 0.25);

    let mut narrowed = spec(constant(4.0), "");
    narrowed.endpoints = Some(only_read);
    for format in Format::ALL {
        let text = render(format, &w, &narrowed).unwrap();
        assert!(text.contains("Only read is drawn by weight (the job's endpoints)"), "{format}: {text}");
        assert!(text.contains("\"create\""), "{format}: create stays as read's fallback");
        assert_ne!(text, render(format, &w, &spec(constant(4.0), "")).unwrap(), "{format}");
    }
    for (endpoints, expected) in [
        (vec!["nope".to_string()], "'nope' not among the workload's weighted requests: create, read"),
        (vec!["boom".to_string()], "'boom' not among"),
        (vec![], "at least one"),
    ] {
        narrowed.endpoints = Some(endpoints);
        let e = render(Format::K6, &w, &narrowed).unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
}

/// A workload read from `dir`, where its data files are; `env()` reads `secret`.
fn workload_in(dir: &std::path::Path, text: &str, secret: &str) -> Workload {
    let options = Options {
        target: Target {
            authority: "x".into(),
            path_prefix: String::new(),
            user_agent: "t".into(),
            trace: crate::workload::TraceHeaders::Off,
        },
        default_pool_size: 50,
        data_dir: Some(dir.to_path_buf()),
        env: crate::workload::EnvSource::Fixed(std::sync::Arc::new(vec![(
            "TRAFFICGEN_ENV_PASSWORD".to_string(),
            crate::workload::Secret(secret.to_string()),
        )])),
    };
    load_str("test.yaml", text, &options).unwrap_or_else(|e| panic!("{e}"))
}

fn data_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trafficgen-export-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("accounts.csv"), "username,password\nann,SeCrEtRoW\n").unwrap();
    std::fs::write(dir.join("items.json"), r#"[{"sku": "a", "price": 1}]"#).unwrap();
    dir
}

const JOURNEYS: &str = r#"
pools:
  ids:
data:
  accounts: {file: accounts.csv, order: unique}
  items: {file: items.json, order: random}
requests:
  - name: list
    weight: 3
    method: GET
    path: /users
  - name: drop
    weight: 1
    method: DELETE
    path: "/users/{{ take(ids) }}"
  - name: boom
    error: true
    method: GET
    path: /error
journeys:
  - name: member
    weight: 2
    steps:
      - name: login
        method: POST
        path: /login
        headers:
          Authorization: "Basic {{ base64(data(accounts, username), ':', env(TRAFFICGEN_ENV_PASSWORD)) }}"
        capture:
          - {var: token, json: /token}
          - {var: session, header: Set-Session, regex: "(?i)id=([0-9a-f]+)"}
      - pause: 2s
      - name: create
        method: POST
        path: /users
        headers: {Authorization: "Bearer {{ var(token) }}"}
        body: {sku: "{{ data(items, sku) }}"}
        success: [201]
        capture:
          - {var: user_path, header: Location, path: true}
          - {var: user_id, json: /id}
          - {pool: ids, json: /id}
      - pause: {uniform: [500ms, 1500ms]}
      - name: read
        method: GET
        path: "{{ var(user_path) }}"
        on_failure: continue
      - pause: {exponential: 1s}
      - name: remove
        method: DELETE
        path: "/users/{{ var(user_id) }}"
        success: [204]
"#;

#[test]
fn journeys_become_each_tools_own_flow() {
    let dir = data_dir("flow");
    let w = workload_in(&dir, JOURNEYS, "pw");
    let s = spec(constant(10.0), "");
    let k6 = render(Format::K6, &w, &s).unwrap();
    for expected in [
        "function journey_member() {",
        "  rows[0] = rowOf(0, \"unique\");",
        "  if (ends(\"member\", step_member__login(v, rows), false)) return;\n  sleep(2);\n",
        "  sleep(pauseUniform(0.5, 1.5));\n",
        "  sleep(pauseExponential(1));\n",
        "  if (ends(\"member\", step_member__read(v, rows), true)) return;",
        "BASE_URL + pathValue(v[\"user_path\"])",
        "const MAX_VUS = 64 + 100; // MAX_IN_FLIGHT + MAX_JOURNEYS",
        "new SharedArray(\"accounts\"",
        "JSON.parse(open(path))",
        "  [3, send_list],\n  [1, send_drop],\n  [2, journey_member],\n",
    ] {
        assert!(k6.contains(expected), "k6: {expected}\n{k6}");
    }
    let locust = render(Format::Locust, &w, &s).unwrap();
    for expected in [
        "    def journey_member(self):",
        "        rows[0] = row_of(0, \"unique\")\n        if rows[0] is None:",
        "        gevent.sleep(2)\n",
        "        gevent.sleep(random.uniform(0.5, 1.5))\n",
        "        gevent.sleep(pause_exponential(1))\n",
        "        if ends(\"member\", self.step_member__read(v, rows), True):",
        "    (3, Traffic.send_list, False),\n    (1, Traffic.send_drop, False),\n    (2, Traffic.journey_member, True),\n",
        "read_table(\"items\", \"items.json\", [\"sku\"])",
    ] {
        assert!(locust.contains(expected), "locust: {expected}\n{locust}");
    }
    let yaml = render(Format::Artillery, &w, &s).unwrap();
    for expected in [
        "  - name: \"member\"\n    weight: 2\n    flow:\n",
        "      - think: 2\n",
        "      - think: 1\n        jitter: 500\n",
        "    - path: \"accounts.csv\"\n      fields: [\"data_accounts_username\", \"data_accounts_password\"]\n      skipHeader: true\n      order: sequence\n      cast: false\n",
        "write the rows of items.json as items.csv",
        "          auth:\n            user: \"{{ data_accounts_username }}\"\n            pass: \"{{ $env.TRAFFICGEN_ENV_PASSWORD }}\"\n",
        "              as: \"var_token\"",
        "url: \"{{ var_user_path }}\"",
        "an exponential pause around 1 s is a",
    ] {
        assert!(yaml.contains(expected), "artillery: {expected}\n{yaml}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn secrets_and_data_stay_out_of_every_script() {
    let dir = data_dir("secrets");
    let w = workload_in(&dir, JOURNEYS, "Pa55Word-Only-In-Env");
    for format in Format::ALL {
        let script = render(format, &w, &spec(constant(1.0), "")).unwrap();
        assert!(!script.contains("Pa55Word-Only-In-Env"), "{format}: an env() value is in the script");
        assert!(!script.contains("SeCrEtRoW"), "{format}: a data value is in the script");
        assert!(script.contains("TRAFFICGEN_ENV_PASSWORD"), "{format}: reads the variable by name");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_k6_script_needs_nothing_from_the_internet() {
    let dir = data_dir("offline");
    for (name, w) in [("crud", workload(CRUD)), ("journeys", workload_in(&dir, JOURNEYS, "pw"))] {
        let k6 = render(Format::K6, &w, &spec(constant(1.0), "")).unwrap();
        let imports: Vec<&str> = k6.lines().filter(|l| l.starts_with("import ")).collect();
        assert!(
            imports.iter().all(|l| l.contains(" from \"k6") && !l.contains("://")),
            "{name}: only k6's own modules: {imports:?}"
        );
        assert!(!k6.contains("jslib") && !k6.contains("https://"), "{name}");
    }
    let k6 = render(Format::K6, &workload(CRUD), &spec(constant(1.0), "")).unwrap();
    assert!(k6.contains("function randomIntBetween(min, max) {"), "{k6}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn arrivals_are_drawn_among_requests_and_journeys_as_trafficgen_draws_them() {
    let dir = data_dir("mix");
    let w = workload_in(&dir, JOURNEYS, "pw");
    let script = Script::new(w.model(), &[50], 0.0, None);
    let member = script::Entry::Journey(0);
    assert_eq!(script.entry_share(member), 2.0 / 6.0);
    // A journey's steps are sent once per instance: 3/6·1 + 1/6·1 + 2/6·4 requests per arrival.
    assert!((script.sends_per_arrival() - 12.0 / 6.0).abs() < 1e-9);
    assert_eq!(script.share(script.find("member/create").unwrap()), 2.0 / 6.0);
    // Error injection takes its share of the arrivals, the rest keep their proportions.
    let injected = Script::new(w.model(), &[50], 0.3, None);
    assert!((injected.share(injected.find("boom").unwrap()) - 0.3).abs() < 1e-9);
    assert!((injected.entry_share(member) - 0.7 * 2.0 / 6.0).abs() < 1e-9);
    // A job's endpoints draw only those requests: no journey.
    let focused = Script::new(w.model(), &[50], 0.0, Some(&["list".to_string()]));
    assert_eq!(focused.entry_share(member), 0.0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn artillery_refuses_a_base64_it_cannot_write_and_says_why() {
    let dir = data_dir("base64");
    let text = JOURNEYS.replace("Authorization: \"Basic {{", "X-Token: \"Basic {{");
    let w = workload_in(&dir, &text, "pw");
    let e = render(Format::Artillery, &w, &spec(constant(1.0), "")).unwrap_err().to_string();
    assert!(e.contains("Artillery has no base64 template") && e.contains("`member/login`"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    for format in [Format::K6, Format::Locust] {
        let script = render(format, &w, &spec(constant(1.0), "")).unwrap();
        assert!(script.contains("b64encode"), "{format}");
    }
    // Constant text is encoded at export.
    let constant_auth = workload(
        "requests:\n  - name: a\n    weight: 1\n    method: GET\n    path: /a\n    headers:\n      X-Auth: \"{{ base64('u', ':', 'p') }}\"\n",
    );
    let yaml = render(Format::Artillery, &constant_auth, &spec(constant(1.0), "")).unwrap();
    assert!(yaml.contains("\"X-Auth\": \"dTpw\""), "{yaml}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn regexes_and_takes_map_to_each_tools_own() {
    let dir = data_dir("regex");
    let w = workload_in(&dir, JOURNEYS, "pw");
    let s = spec(constant(1.0), "");
    let k6 = render(Format::K6, &w, &s).unwrap();
    assert!(k6.contains("const RE_1 = new RegExp(\"id=([0-9a-f]+)\", \"i\");"), "{k6}");
    assert!(k6.contains("setVar(v, \"session\", group(headerOf(res, \"set-session\"), RE_1), 256, false);"), "{k6}");
    assert!(k6.contains("  poolTake(\"ids\", pool_ids);"), "{k6}");
    let locust = render(Format::Locust, &w, &s).unwrap();
    assert!(locust.contains("RE_1 = re.compile(\"(?i)id=([0-9a-f]+)\")"), "{locust}");
    assert!(locust.contains("take(self.pools[\"ids\"], pool_ids)"), "{locust}");
    let yaml = render(Format::Artillery, &w, &s).unwrap();
    assert!(yaml.contains("its regex is not applied"), "{yaml}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn locust_paces_arrivals_evenly_instead_of_users_in_step() {
    let locust = render(Format::Locust, &workload(CRUD), &spec(constant(50.0), "")).unwrap();
    assert!(!locust.contains("constant_throughput"), "{locust}");
    assert!(locust.contains("def arrival_time(n):") && locust.contains("return (1, 1)"), "{locust}");
    assert!(locust.contains("self.in_flight.spawn(send, self)"), "{locust}");
}

#[test]
fn users_mode_exports_to_k6_as_virtual_users_with_their_pause() {
    let workload = workload(CRUD);
    let closed = ClosedModel { min_pause_secs: 1.0, max_pause_secs: 3.0 };
    let constant_users = Spec { users: Some(closed), ..spec(constant(20.0), "p95<500ms,rps>=90%") };
    let script = render(Format::K6, &workload, &constant_users).unwrap();
    assert!(script.contains("executor: \"constant-vus\",\n      vus: 20,\n      duration: \"60s\""), "{script}");
    assert!(!script.contains("arrival-rate") && !script.contains("preAllocatedVUs"), "{script}");
    assert!(script.contains("import { sleep } from \"k6\";"), "{script}");
    assert!(script.contains("const USER_PAUSE = [1, 3];"), "{script}");
    assert!(
        script.contains("  draw()();\n  sleep(USER_PAUSE[0] + Math.random() * (USER_PAUSE[1] - USER_PAUSE[0]));\n}")
    );
    assert!(script.contains("Traffic: virtual users over 60 s: 20 users for 60 s."), "{script}");
    assert!(script.contains("hides its queueing"), "{script}");
    assert!(script.contains("\"p(95)<500\"") && script.contains("no target rate"), "{script}");
    // A ramp of users: ramping-vus over the stages.
    let ramp = Traffic::new(None, 50.0, 60.0, 10.0).unwrap();
    let ramping = Spec { users: Some(closed), ..spec(ramp, "") };
    let script = render(Format::K6, &workload, &ramping).unwrap();
    assert!(script.contains("executor: \"ramping-vus\",\n      startVUs: 0,"), "{script}");
    assert!(
        script.contains("{ duration: \"10s\", target: 50 },") && script.contains("{ duration: \"50s\", target: 50 },")
    );
}

#[test]
fn users_mode_exports_to_locust_as_users_that_wait_and_a_shape_that_follows_the_stages() {
    let workload = workload(CRUD);
    let closed = ClosedModel { min_pause_secs: 1.0, max_pause_secs: 3.0 };
    let constant_users = Spec { users: Some(closed), ..spec(constant(20.0), "p95<500ms,rps>=90%") };
    let script = render(Format::Locust, &workload, &constant_users).unwrap();
    assert!(script.contains("Traffic: virtual users over 60 s: 20 users for 60 s."), "{script}");
    assert!(script.replace("\n# ", " ").contains("coordinated omission"), "{script}");
    // Each user: one arrival per task, then Locust's own wait of the users' pause.
    assert!(script.contains("from locust import HttpUser, LoadTestShape, between, events, task"), "{script}");
    assert!(script.contains("    wait_time = between(1, 3)\n"), "{script}");
    assert!(script.contains("    def arrival(self):") && script.contains("        send(self)\n"), "{script}");
    // No pacer: no schedule of arrivals, no pools of greenlets.
    assert!(!script.contains("arrival_time(") && !script.contains("Pool(MAX_IN_FLIGHT)"), "{script}");
    // The shape: a constant number, all at once.
    assert!(script.contains("STAGES = [\n    (60, 20, 20),\n]\nDURATION = 60\nPEAK_USERS = 20\n"), "{script}");
    assert!(script.contains("return (users(b), SPAWN_AT_ONCE)") && script.contains("SPAWN_AT_ONCE = 20"));
    // A rise at its own pace: the stage's change over its duration.
    assert!(script.contains("return (users(b), abs(b - a) / secs)"), "{script}");
    // An rps objective has no target rate in a closed model.
    assert!(script.contains("users mode has no target rate") && !script.contains("\"rps\", \">=\""), "{script}");
    assert!(script.contains("\"p95\""), "{script}");
    // A fixed pause is Locust's constant.
    let fixed = Spec { users: Some(ClosedModel { min_pause_secs: 0.5, max_pause_secs: 0.5 }), ..constant_users };
    let script = render(Format::Locust, &workload, &fixed).unwrap();
    assert!(script.contains("    wait_time = constant(0.5)\n"), "{script}");
    assert!(script.contains("from locust import HttpUser, LoadTestShape, constant, events, task"), "{script}");
}

#[test]
fn users_mode_exports_to_artillery_as_the_nearest_it_has_and_says_how_it_differs() {
    let workload = workload(CRUD);
    let closed = ClosedModel { min_pause_secs: 1.0, max_pause_secs: 3.0 };
    let constant_users = Spec { users: Some(closed), ..spec(constant(20.0), "p95<500ms,rps>=90%") };
    let script = render(Format::Artillery, &workload, &constant_users).unwrap();
    let header = script.replace("\n# ", " ");
    assert!(header.contains("Artillery has no closed model"), "{script}");
    assert!(header.contains("users cannot retire when the stages go down"), "{script}");
    assert!(header.contains("coordinated omission"), "{script}");
    // 20 users within a second, then none added for the rest of the minute.
    assert!(script.contains("    - duration: 1\n      arrivalCount: 20\n      maxVusers: 20\n    - pause: 59\n"));
    // Each scenario loops with the users' pause (mean 2 s, ±1000 ms) after each iteration. A user
    // lives 20 × 60 / 20 = 60 s: `create` (one request, 0.1 + 2 s) loops 60 / 2.1 ≈ 29 times,
    // `read` (create, then read: 0.2 + 2 s) 60 / 2.2 ≈ 27 times.
    // Weights: 1 × 2.1 s and 3 × 2.2 s, over their common divisor (0.3 s): 7 and 22.
    let create =
        script.find("  - name: \"create\"\n    weight: 7\n    flow:\n      - loop:\n          - post:").expect(&script);
    let read =
        script.find("  - name: \"read\"\n    weight: 22\n    flow:\n      - loop:\n          - post:").expect(&script);
    let pause_then = |count: u64| {
        format!(
            "          # The users' pause after each arrival.\n          - think: 2\n            jitter: 1000\n        count: {count}\n"
        )
    };
    assert!(script[create..read].ends_with(&pause_then(29)), "{script}");
    assert!(script[read..].ends_with(&pause_then(27)), "{script}");
    assert!(script.contains("users mode has no target rate"), "{script}");
    // Stages that rise, hold, fall and rise: users are added by the rises only.
    let stages = Traffic::of_stages(None, &[(10.0, 20.0), (20.0, 20.0), (10.0, 0.0), (10.0, 5.0)]).unwrap();
    let staged = Spec { users: Some(closed), ..spec(stages, "") };
    let script = render(Format::Artillery, &workload, &staged).unwrap();
    assert!(
        script.contains(
            "    - duration: 10\n      arrivalCount: 20\n      maxVusers: 20\n    - pause: 30\n    - duration: 10\n      arrivalCount: 5\n"
        ),
        "{script}"
    );
    // The user-seconds (100 + 400 + 100 + 25 = 625) over the users added (25): 25 s a user.
    let header = script.replace("\n# ", " ");
    assert!(header.contains("user-seconds (625)") && header.contains("life (25 s)"), "{script}");
}
