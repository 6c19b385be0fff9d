//! Property tests of the SLO syntax and of exports as an attacker would
//! feed them: any text, any numbers, any string in a workload. Nothing
//! panics, every refusal is one line, objectives read back as written, and
//! a workload's text never leaves the string literals of a script.

use proptest::prelude::*;
use trafficgen::export::{self, Format, Spec, Traffic};
use trafficgen::jobs::scenario::ScenarioKind;
use trafficgen::observe::slo;
use trafficgen::workload::{self, Options, Target, TraceHeaders, USER_AGENT};

fn options() -> Options {
    Options {
        target: Target {
            authority: "t:1".into(),
            path_prefix: String::new(),
            user_agent: USER_AGENT.into(),
            trace: TraceHeaders::Off,
        },
        default_pool_size: 4,
        data_dir: None,
        env: Default::default(),
    }
}

fn scenario() -> impl Strategy<Value = Option<ScenarioKind>> {
    prop_oneof![Just(None), proptest::sample::select(ScenarioKind::ALL.to_vec()).prop_map(Some)]
}

/// Any float, the odd ones more often than chance would give them.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        0.0..1e7f64,
        0.0..100f64,
    ]
}

/// A workload whose strings hold `text` everywhere a string can go (where
/// the format refuses control characters, without them).
fn workload_with(text: &str) -> String {
    // `{{` would open a template.
    let no_template = |mut s: String| {
        while s.contains("{{") {
            s = s.replace("{{", "{ {");
        }
        s
    };
    let quoted = serde_json::to_string(&no_template(text.to_string())).unwrap();
    let one_line = no_template(text.chars().filter(|c| !c.is_control()).collect());
    let one_line = serde_json::to_string(if one_line.is_empty() { "x" } else { &one_line }).unwrap();
    format!(
        r#"{{"pools": {{"p": {{"values": [{one_line}]}}}},
  "requests": [
    {{"name": "a", "weight": 1, "method": "POST", "path": "/a",
      "query": {{"q": {quoted}}},
      "headers": {{"X-A": {one_line}}},
      "body": {{"k": {quoted}, {quoted}: [{quoted}, "{{{{ choice(x, 1) }}}}"]}},
      "capture": [{{"pool": "p", "json": "/id"}}]}},
    {{"name": "b", "weight": 2, "method": "PUT", "path": "/b/{{{{ pool(p) }}}}",
      "content_type": "text/plain", "body": {quoted}}}
  ],
  "journeys": [
    {{"name": "j", "weight": 1, "steps": [
      {{"name": "s1", "method": "POST", "path": "/j", "headers": {{"X-J": {one_line}}},
        "body": {{"k": {quoted}}},
        "capture": [{{"var": "v", "json": "/id", "regex": "(.+)"}}, {{"var": "loc", "header": "Location", "path": true}}]}},
      {{"pause": {{"uniform": ["1s", "2s"]}}}},
      {{"name": "s2", "method": "GET", "path": "{{{{ var(loc) }}}}",
        "headers": {{"Authorization": "Basic {{{{ base64(var(v), ':', pool(p)) }}}}", "X-Q": {one_line},
          "X-T": "{{{{ take(p) }}}}"}}}}
    ]}}
  ]}}"#
    )
}

proptest! {
    // A fixed seed: CI runs the same cases every time (the regressions file keeps past finds).
    #![proptest_config(ProptestConfig {
        cases: 200,
        rng_seed: proptest::test_runner::RngSeed::Fixed(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_slo_text_parses_or_is_refused_in_one_line(text in ".{0,120}") {
        match slo::parse(&text) {
            Ok(slos) => {
                // What parses reads back as the same objectives.
                let shown: Vec<String> = slos.iter().map(|s| s.to_string()).collect();
                let again = slo::parse(&shown.join(",")).expect("a normalised list parses");
                prop_assert_eq!(again, slos);
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.contains('\n') && message.starts_with("SLO clause "), "{}", message);
            }
        }
    }

    #[test]
    fn slo_like_text_round_trips(
        scope in proptest::option::of("[a-z_][a-z0-9_]{0,10}"),
        metric in proptest::sample::select(vec!["p50", "p90", "p95", "p99", "max", "error_rate", "rps"]),
        op in proptest::sample::select(vec!["<", "<=", ">", ">="]),
        value in 0u32..100_000,
        unit in proptest::sample::select(vec!["ms", "s", "%", ""]),
    ) {
        let clause = format!("{}{metric}{op}{value}{unit}", scope.map(|s| format!("{s}:")).unwrap_or_default());
        if let Ok(slos) = slo::parse(&clause) {
            prop_assert_eq!(slos.len(), 1);
            prop_assert_eq!(slo::parse(&slos[0].to_string()).unwrap(), slos);
        }
    }

    #[test]
    fn any_numbers_make_a_bounded_story_or_a_clear_refusal(
        kind in scenario(), rps in float(), duration in float(), ramp in float(),
    ) {
        match Traffic::new(kind, rps, duration, ramp) {
            Ok(t) => {
                let secs: f64 = t.stages.iter().map(|s| s.secs).sum();
                prop_assert!((secs - t.duration_secs).abs() < 0.01, "{:?}", t);
                prop_assert!(t.stages.iter().all(|s| s.secs > 0.0 && s.from_rps.is_finite() && s.to_rps.is_finite()));
                prop_assert!(t.peak_rps() <= export::MAX_RATE && t.mean_rps().is_finite());
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    #[test]
    fn any_string_in_a_workload_stays_inside_the_scripts_string_literals(
        text in "\\PC{0,40}|[\"'`\\\\\n\r\t\u{2028}$*/#{}<>]{0,20}",
        endpoints in any::<bool>(),
    ) {
        // A marker after a line break: it must never start a line of a script.
        let text = format!("{text}\nQ7zMarker{text}");
        let w = workload::load_str("w.json", &workload_with(&text), &options()).unwrap_or_else(|e| panic!("{e}"));
        let traffic = Traffic::new(Some(ScenarioKind::ErrorInjection), 3.0, 30.0, 1.0).unwrap();
        let spec = Spec {
            source: text.clone(),
            target_url: "http://127.0.0.1:1".into(),
            traffic,
            slos: slo::parse("p95<1s,a:error_rate<1%,b:rps>=50%").unwrap(),
            max_in_flight: 8,
            max_journeys: 8,
            endpoints: endpoints.then(|| vec!["b".into()]),
            max_bytes: export::MAX_SCRIPT_BYTES,
            users: None,
        };
        for format in Format::ALL {
            let script = export::render(format, &w, &spec).unwrap();
            prop_assert_eq!(&script, &export::render(format, &w, &spec).unwrap());
            // No line break, line separator or NUL of the text reaches the script raw.
            prop_assert!(!script.contains(['\r', '\u{2028}', '\u{2029}', '\0']), "{}", format);
            prop_assert!(!script.lines().any(|l| l.trim_start().starts_with("Q7zMarker")), "{}", format);
        }
    }
}
