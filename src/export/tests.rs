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
        endpoints: None,
        max_bytes: MAX_SCRIPT_BYTES,
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
fn fractional_rates_get_a_k6_time_unit_and_locust_users() {
    let w = workload(CRUD);
    let k6 = render(Format::K6, &w, &spec(constant(2.5), "")).unwrap();
    assert!(k6.contains("rate: 25,") && k6.contains("timeUnit: \"10s\""), "{k6}");
    let slow = render(Format::K6, &w, &spec(constant(0.001), "")).unwrap();
    assert!(slow.contains("rate: 1,") && slow.contains("timeUnit: \"1000s\""), "{slow}");
    let locust = render(Format::Locust, &w, &spec(constant(2.5), "")).unwrap();
    assert!(locust.contains("PEAK_RPS = 2.5\nUSERS = 3\nUSER_RPS = PEAK_RPS / USERS\n"), "{locust}");
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
    assert!(locust.contains("Traffic.setup_due = time.monotonic() + 60"), "{locust}");
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
