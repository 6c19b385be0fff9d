//! Hostile documents: each ends in bounded time and memory with a clear
//! outcome (a workload that loads, with lines for what was left out, or a
//! one-line refusal), never a panic. The bounds that make it so are counts
//! (values, schema steps, depth, requests, pools), so the assertions are on
//! outcomes; the elapsed times are printed, with a ceiling far above them
//! that only a runaway (exponential) walk would reach.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::*;

/// Far above what any case takes (seconds in a debug build on a busy
/// machine); an unbounded walk of these documents would take years.
const CEILING: Duration = Duration::from_secs(120);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(took < CEILING, "{what} took {took:?}");
    out
}

fn schema_doc(schemas: &str) -> String {
    doc(
        r##"{"/x": {"post": {"operationId": "x", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}}, "responses": {"201": {"description": ""}}}},
            "/ok": {"get": {"operationId": "ok", "responses": {"200": {"description": ""}}}}}"##,
        &format!(r#"{{"schemas": {schemas}}}"#),
    )
}

fn problem_about_x(d: &Derived) -> String {
    d.problems.iter().find(|p| p.pointer.starts_with("#/paths/~1x/post")).map(ToString::to_string).unwrap_or_default()
}

#[test]
fn a_hundred_thousand_operations() {
    let mut paths = String::from("{");
    for i in 0..100_000 {
        let _ = write!(
            paths,
            "{}\"/p{i}\": {{\"get\": {{\"responses\": {{\"200\": {{\"description\": \"\"}}}}}}}}",
            if i > 0 { "," } else { "" }
        );
    }
    paths.push('}');
    let text = doc(&paths, "{}");
    assert!(text.len() < MAX_DOCUMENT_BYTES);
    let d = timed("100 000 operations", || derived(&text));
    assert_eq!(d.requests, MAX_REQUESTS);
    assert_eq!(d.left_out, 100_000 - MAX_REQUESTS);
    assert!(d.text.contains(&format!("  … and {} more", 100_000 - MAX_REQUESTS - MAX_LISTED)), "{}", &d.text[..2000]);
    assert!(d.text.len() < 64 * 1024, "{} bytes", d.text.len());
    // As many that cannot be used: a line each for the first thousand, the
    // rest counted.
    let mut paths = String::from(r#"{"/ok": {"get": {"responses": {"200": {"description": ""}}}}"#);
    for i in 0..100_000 {
        let _ = write!(paths, ",\"p{i}\": {{}}");
    }
    paths.push('}');
    let d = timed("100 000 paths without a leading /", || derived(&doc(&paths, "{}")));
    assert_eq!((d.problems.len(), d.more_problems), (MAX_PROBLEMS, 100_000 - MAX_PROBLEMS));
}

#[test]
fn deep_all_of_chains_stop_at_the_depth_bound() {
    let mut schemas = String::from("{");
    for i in 0..10_000 {
        let _ = write!(schemas, "\"S{i}\": {{\"allOf\": [{{\"$ref\": \"#/components/schemas/S{}\"}}]}},", i + 1);
    }
    schemas.push_str("\"S10000\": {\"type\": \"object\"}}");
    let d = timed("an allOf chain 10 000 deep", || derived(&schema_doc(&schemas)));
    assert!(problem_about_x(&d).contains(&format!("nested more than {} deep", schema::MAX_DEPTH)), "{:?}", d.problems);
    assert_eq!(load(&d).mix(), "ok=4");
}

#[test]
fn exponential_fans_stop_at_the_step_budget() {
    // Each level merges twenty copies of the next: 20^12 steps unbounded.
    let mut schemas = String::from("{");
    for i in 0..12 {
        let refs = vec![format!("{{\"$ref\": \"#/components/schemas/S{}\"}}", i + 1); 20].join(",");
        let _ = write!(
            schemas,
            "\"S{i}\": {{\"allOf\": [{refs}], \"properties\": {{\"p{i}\": {{\"$ref\": \"#/components/schemas/S{}\"}}}}}},",
            i + 1
        );
    }
    schemas.push_str("\"S12\": {\"type\": \"integer\"}}");
    let d = timed("allOf fans 20 wide, 12 deep", || derived(&schema_doc(&schemas)));
    assert!(problem_about_x(&d).contains("too complex"), "{:?}", d.problems);
}

#[test]
fn cycles_through_all_of_and_properties() {
    let d = derived(&schema_doc(
        r##"{"S0": {"allOf": [{"$ref": "#/components/schemas/S1"}]}, "S1": {"allOf": [{"$ref": "#/components/schemas/S0"}]}}"##,
    ));
    assert!(
        problem_about_x(&d)
            .contains("$ref cycle: #/components/schemas/S0 → #/components/schemas/S1 → #/components/schemas/S0"),
        "{:?}",
        d.problems
    );
    // $refs to $refs in a circle.
    let d = derived(&schema_doc(
        r##"{"S0": {"$ref": "#/components/schemas/S1"}, "S1": {"$ref": "#/components/schemas/S0"}}"##,
    ));
    assert!(problem_about_x(&d).contains("more than 32 $refs in a row"), "{:?}", d.problems);
}

#[test]
fn eight_mebibyte_strings() {
    let filler = "x".repeat(MAX_DOCUMENT_BYTES - 2048);
    let text = schema_doc(&format!(
        r#"{{"S0": {{"type": "object", "required": ["s"], "description": "{filler}", "properties": {{"s": {{"type": "string", "maxLength": 4}}}}}}}}"#
    ));
    assert!(text.len() <= MAX_DOCUMENT_BYTES, "{}", text.len());
    let d = timed("an 8 MiB description", || derived(&text));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    // A huge example is not copied into the workload: the schema is used.
    let half = "y".repeat(MAX_DOCUMENT_BYTES / 2);
    let d = derived(&schema_doc(&format!(
        r#"{{"S0": {{"type": "object", "required": ["s"], "properties": {{"s": {{"type": "string", "maxLength": 4, "example": "{half}"}}}}}}}}"#
    )));
    assert!(d.text.contains("s: \"{{ random_string(4) }}\""), "{}", &d.text[..d.text.len().min(3000)]);
    // One byte over is refused, whatever it holds.
    let over = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert!(derive("doc", &over, &Options::default()).unwrap_err().0.contains("larger than 8 MiB"));
}

#[test]
fn huge_lists_are_cut_to_size() {
    let values: Vec<String> = (0..200_000).map(|i| format!("\"v{i}\"")).collect();
    let d = timed("an enum of 200 000", || {
        derived(&schema_doc(&format!(
            r#"{{"S0": {{"type": "object", "required": ["e"], "properties": {{"e": {{"enum": [{}]}}}}}}}}"#,
            values.join(",")
        )))
    });
    let choice = d.text.lines().find(|l| l.trim_start().starts_with("e: ")).unwrap_or_default();
    assert_eq!(choice.matches('\'').count(), 200, "100 items: {choice}");
    let props: Vec<String> = (0..100_000).map(|i| format!("\"p{i}\": {{\"type\": \"integer\"}}")).collect();
    let d = timed("an object of 100 000 properties", || {
        derived(&schema_doc(&format!(r#"{{"S0": {{"properties": {{{}}}}}}}"#, props.join(","))))
    });
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    let body = body_keys(&load(&d), "x");
    assert!(body.len() <= 24, "{}", body.len());
}

#[test]
fn text_from_the_document_cannot_break_the_file() {
    let evil = r#"a\"\n- name: injected\n  weight: 1000000 {{ pool(x) }} }} \r\nX-Evil: 1 \u2028 # not a comment"#;
    // A name cannot hold a line break (refused with a line), but anything else.
    let evil_name = r#"a\" - name: injected }} X-Evil: 1 # not a comment"#;
    let text = doc(
        &format!(
            r##"{{"/e/{{id}}": {{"get": {{"operationId": "{evil}", "summary": "{evil}",
                "parameters": [{{"name": "id", "in": "path", "required": true, "example": "{evil}"}},
                               {{"name": "X-Thing", "in": "header", "required": true, "example": "{evil}"}},
                               {{"name": "{evil_name}", "in": "query", "required": true, "example": "{evil}"}}],
                "responses": {{"200": {{"description": ""}}}}}},
              "post": {{"operationId": "p", "parameters": [{{"name": "id", "in": "path", "required": true}}],
                "requestBody": {{"content": {{"application/json": {{"example": {{"{evil}": "{evil}", "n": [{{"{evil}": null}}]}}}}}}}},
                "responses": {{"200": {{"description": ""}}}}}}}}}}"##
        ),
        "{}",
    );
    let d = derived(&text);
    let w = load(&d);
    assert_eq!(w.requests().count(), 2, "{}\n{:?}", d.text, d.problems);
    assert!(!d.text.contains("\n- name: injected"), "{}", d.text);
    let get = &w.model().requests[0];
    assert!(get.headers.iter().all(|(_, v)| !v.to_string().contains('\n') && !v.to_string().contains('\r')));
}

#[test]
fn yaml_bombs_and_deep_nesting_are_refused() {
    let laughs = "openapi: 3.0.0\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n";
    assert!(derive("doc", laughs.as_bytes(), &Options::default()).unwrap_err().0.contains("aliases"));
    let deep = format!("{{\"openapi\": \"3.0.0\", \"x\": {}{}}}", "[".repeat(50_000), "]".repeat(50_000));
    assert!(derive("doc", deep.as_bytes(), &Options::default()).unwrap_err().0.contains("not valid JSON"));
}

/// Random documents from a small grammar of what OpenAPI allows and what
/// an attacker would add, from a fixed seed: every one is refused in a
/// line or derives a workload that loads.
#[test]
fn random_documents_from_a_fixed_seed() {
    let mut rng = SmallRng::seed_from_u64(27);
    let started = Instant::now();
    let (mut derived_count, mut refused) = (0, 0);
    for case in 0..400 {
        let text = random_document(&mut rng);
        match derive("doc", text.as_bytes(), &Options { include_delete: rng.random_bool(0.3), ..Options::default() }) {
            Ok(d) => {
                if let Err(e) = workload::load_str("derived.yaml", &d.text, &options_for(&d)) {
                    panic!(
                        "case {case}: the derived workload does not load:\n{e}\n--- document:\n{text}\n--- workload:\n{}",
                        d.text
                    );
                }
                for p in &d.problems {
                    assert!(p.pointer.starts_with("#/paths/") && !p.message.contains('\n'), "case {case}: {p:?}");
                }
                derived_count += 1;
            }
            Err(refusal) => {
                assert!(!refusal.0.contains('\n'), "case {case}: {refusal}");
                refused += 1;
            }
        }
    }
    eprintln!("400 random documents: {derived_count} derived, {refused} refused, in {:?}", started.elapsed());
    assert!(derived_count > 200, "the grammar should mostly make usable documents: {derived_count}");
    assert!(started.elapsed() < CEILING);
}

const NASTY: [&str; 12] =
    ["plain", "a b", "it's", "say \\\"hi\\\"", "{{ uuid() }}", "}}", "a\\nb", "100", "", "ü/ö?#&=", "-", "null"];

fn pick<'a>(rng: &mut SmallRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn random_schema(rng: &mut SmallRng, depth: u32) -> String {
    let n_schemas = 6;
    if depth > 3 || rng.random_bool(0.2) {
        return format!("{{\"$ref\": \"#/components/schemas/C{}\"}}", rng.random_range(0..n_schemas + 1));
    }
    match rng.random_range(0..10) {
        0 => format!(
            "{{\"type\": \"string\", \"format\": \"{}\"}}",
            pick(rng, &["uuid", "email", "date-time", "date", "uri", "ipv4", "byte", "weird"])
        ),
        1 => format!(
            "{{\"type\": \"string\", \"pattern\": \"{}\", \"minLength\": {}, \"maxLength\": {}}}",
            pick(rng, &["^[a-z]+$", "^(a|b)$", "[0-9]{3}", "^\\\\d+-x$", "^[^@]+@x$", "a{9999}", "["]),
            rng.random_range(0..5),
            rng.random_range(0..40)
        ),
        2 => format!(
            "{{\"type\": \"{}\", \"minimum\": {}, \"maximum\": {}, \"exclusiveMinimum\": {}}}",
            pick(rng, &["integer", "number"]),
            rng.random_range(-5..5),
            rng.random_range(-5..50),
            pick(rng, &["true", "false", "3"])
        ),
        3 => format!(
            "{{\"enum\": [\"{}\", \"{}\", {}]}}",
            pick(rng, &NASTY),
            pick(rng, &NASTY),
            pick(rng, &["1", "null", "true", "\"x\""])
        ),
        4 => {
            let props: Vec<String> = (0..rng.random_range(0..5))
                .map(|i| format!("\"{}{i}\": {}", pick(rng, &NASTY), random_schema(rng, depth + 1)))
                .collect();
            format!(
                "{{\"type\": \"object\", \"required\": [\"{}0\"], \"properties\": {{{}}}}}",
                pick(rng, &NASTY),
                props.join(",")
            )
        }
        5 => format!(
            "{{\"type\": \"array\", \"minItems\": {}, \"items\": {}}}",
            rng.random_range(0..3),
            random_schema(rng, depth + 1)
        ),
        6 => format!("{{\"allOf\": [{}, {}]}}", random_schema(rng, depth + 1), random_schema(rng, depth + 1)),
        7 => format!(
            "{{\"{}\": [{{\"type\": \"null\"}}, {}]}}",
            pick(rng, &["oneOf", "anyOf"]),
            random_schema(rng, depth + 1)
        ),
        8 => format!("{{\"type\": [\"string\", \"null\"], \"example\": \"{}\"}}", pick(rng, &NASTY)),
        _ => "{}".to_string(),
    }
}

fn random_document(rng: &mut SmallRng) -> String {
    let mut paths = Vec::new();
    for i in 0..rng.random_range(1..8) {
        let path = pick(
            rng,
            &["/users", "/users/{id}", "/users/{id}/notes", "/a b/{x}", "/{id}", "/items/{item_id}", "/login", "/é"],
        );
        let mut ops = Vec::new();
        for method in ["get", "post", "put", "patch", "delete", "trace"] {
            if !rng.random_bool(0.4) {
                continue;
            }
            let mut params: Vec<String> = Vec::new();
            for p in ["id", "x", "item_id"] {
                if path.contains(&format!("{{{p}}}")) && rng.random_bool(0.9) {
                    let schema = random_schema(rng, 2);
                    params.push(format!(
                        "{{\"name\": \"{p}\", \"in\": \"path\", \"required\": true, \"schema\": {schema}}}"
                    ));
                }
            }
            for _ in 0..rng.random_range(0..3) {
                let (name, place, required) =
                    (pick(rng, &NASTY), pick(rng, &["query", "header", "cookie"]), rng.random_bool(0.5));
                let schema = random_schema(rng, 2);
                params.push(format!(
                    "{{\"name\": \"{name}\", \"in\": \"{place}\", \"required\": {required}, \"schema\": {schema}}}"
                ));
            }
            let body = if rng.random_bool(0.5) {
                format!(
                    ", \"requestBody\": {{\"required\": {}, \"content\": {{\"{}\": {{\"schema\": {}}}}}}}",
                    rng.random_bool(0.5),
                    pick(
                        rng,
                        &[
                            "application/json",
                            "application/x-www-form-urlencoded",
                            "text/plain",
                            "image/png",
                            "application/merge-patch+json"
                        ]
                    ),
                    random_schema(rng, 0)
                )
            } else {
                String::new()
            };
            let security = pick(
                rng,
                &[
                    "",
                    ", \"security\": [{\"bearer\": []}]",
                    ", \"security\": [{\"key\": []}]",
                    ", \"security\": [{\"oauth\": []}]",
                    ", \"security\": [{}]",
                ],
            );
            ops.push(format!(
                "\"{method}\": {{\"operationId\": \"{}{i}\", \"deprecated\": {}, \"parameters\": [{}]{body}{security}, \"responses\": {{\"{}\": {{\"description\": \"\", \"content\": {{\"application/json\": {{\"schema\": {}}}}}}}}}}}",
                pick(rng, &NASTY), rng.random_bool(0.1), params.join(","), pick(rng, &["200", "201", "2XX", "204", "default"]), random_schema(rng, 1)
            ));
        }
        paths.push(format!("\"{path}\": {{{}}}", ops.join(",")));
    }
    let schemas: Vec<String> = (0..6).map(|i| format!("\"C{i}\": {}", random_schema(rng, 1))).collect();
    format!(
        r#"{{"openapi": "{}", "info": {{"title": "R", "version": "1"}}, "paths": {{{}}}, "components": {{"schemas": {{{}}}, "securitySchemes": {{"bearer": {{"type": "http", "scheme": "bearer"}}, "key": {{"type": "apiKey", "in": "header", "name": "{}"}}, "oauth": {{"type": "oauth2", "flows": {{"password": {{"tokenUrl": "{}"}}}}}}}}}}}}"#,
        pick(rng, &["3.0.3", "3.1.0"]),
        paths.join(","),
        schemas.join(","),
        pick(rng, &["X-Key", "bad name", ""]),
        pick(rng, &["token", "/login", "https://auth.example.com/token"])
    )
}
