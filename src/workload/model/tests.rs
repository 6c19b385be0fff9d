use super::*;
use crate::workload::yaml;

fn read_str(text: &str) -> Result<Model, Vec<Problem>> {
    let (model, problems, _) = read(&yaml::parse(text).expect("YAML"));
    if problems.is_empty() { Ok(model) } else { Err(problems) }
}

/// The problems of `text`, as `line:col: message`.
fn problems(text: &str) -> Vec<String> {
    let (model, mut all, _) = read(&yaml::parse(text).expect("YAML"));
    all.extend(model.check_references());
    all.sort();
    all.dedup();
    all.iter().map(|p| format!("{}: {}", p.pos, p.message)).collect()
}

fn assert_problem(text: &str, at: &str, fragment: &str) {
    let found = problems(text);
    assert!(
        found.iter().any(|p| p.starts_with(&format!("{at}: ")) && p.contains(fragment)),
        "expected `{at}: …{fragment}…` in {found:#?}\nfor:\n{text}"
    );
}

const MINIMAL: &str = "requests:\n  - name: a\n    weight: 1\n    method: GET\n    path: /\n";

#[test]
fn a_minimal_workload_reads() {
    let model = read_str(MINIMAL).unwrap();
    assert_eq!(model.requests.len(), 1);
    assert_eq!(model.requests[0].role, Role::Weighted(1));
    assert_eq!(model.requests[0].success, StatusSet::success());
    assert!(model.check_references().is_empty());
}

#[test]
fn unknown_keys_are_refused_everywhere_with_a_suggestion() {
    assert_problem("requets: []\n", "1:1", "unknown key `requets` in the workload (did you mean `requests`?");
    assert_problem(
        "requests:\n  - name: a\n    wieght: 1\n    method: GET\n    path: /\n",
        "3:5",
        "did you mean `weight`",
    );
    assert_problem("pools:\n  p: {sise: 3}\nrequests: []\n", "2:7", "unknown key `sise` in a pool");
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: GET, path: /, capture: [{pool: p, jsn: /id}]}\n",
        "2:68",
        "unknown key `jsn`",
    );
    assert_problem("setup: {requests: [], every: 3}\nrequests: []\n", "1:23", "unknown key `every`");
    assert_problem(
        "setup:\n  requests:\n    - {name: s, method: GET, path: /, weight: 3}\nrequests: []\n",
        "3:39",
        "unknown key `weight` in a setup request",
    );
}

#[test]
fn missing_name_method_or_path_is_named() {
    assert_problem("requests:\n  - {weight: 1, method: GET, path: /}\n", "2:5", "needs a `name`");
    assert_problem("requests:\n  - {name: a, weight: 1, path: /}\n", "2:5", "needs a `method`");
    assert_problem("requests:\n  - {name: a, weight: 1, method: GET}\n", "2:5", "needs a `path`");
    assert_problem("pools: {}\n", "1:1", "needs `requests`");
}

#[test]
fn names_must_be_label_safe_and_unique() {
    assert_problem("requests:\n  - {name: 'a b', weight: 1, method: GET, path: /}\n", "2:12", "must be a letter");
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: GET, path: /}\n  - {name: a, weight: 1, method: GET, path: /x}\n",
        "3:5",
        "request name `a` is used twice",
    );
    assert_problem(
        "setup:\n  requests: [{name: a, method: GET, path: /}]\nrequests:\n  - {name: a, weight: 1, method: GET, path: /}\n",
        "2:14",
        "used twice",
    );
    assert_problem("pools:\n  p: ~\n  p: ~\nrequests: []\n", "3:3", "declared twice");
}

#[test]
fn weights_are_whole_positive_numbers() {
    for (weight, fragment) in [
        ("0", "not `0` (to keep a request out"),
        ("-3", "not `-3`"),
        ("1.5", "not `1.5`"),
        ("'7'", "not `7`"),
        ("1000001", "from 1 to 1000000"),
        ("[1]", "not a list"),
    ] {
        let text = format!("requests:\n  - {{name: a, weight: {weight}, method: GET, path: /}}\n");
        assert_problem(&text, "2:23", fragment);
    }
    assert_problem("requests:\n  - {name: a, method: GET, path: /}\n", "2:5", "needs a `weight`");
    assert_problem(
        "requests:\n  - {name: a, weight: 0, method: GET, path: /}\n  - {name: b, weight: 0, method: GET, path: /}\n",
        "3:23",
        "from 1 to",
    );
    assert_problem("requests:\n  - {name: e, error: true, method: GET, path: /}\n", "1:1", "no request has a weight");
    assert_problem(
        "requests:\n  - {name: e, error: true, weight: 2, method: GET, path: /}\n",
        "2:36",
        "remove `weight`",
    );
}

#[test]
fn methods_come_from_the_standard_set() {
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: BREW, path: /}\n",
        "2:34",
        "method `BREW` is not one of GET",
    );
    assert_problem("requests:\n  - {name: a, weight: 1, method: TRACE, path: /}\n", "2:34", "not one of");
    let model = read_str("requests:\n  - {name: a, weight: 1, method: patch, path: /}\n").unwrap();
    assert_eq!(model.requests[0].method, Method::Patch);
}

#[test]
fn paths_start_with_a_slash_and_hold_only_path_characters() {
    let at = |path: &str| format!("requests:\n  - {{name: a, weight: 1, method: GET, path: {path}}}\n");
    assert_problem(&at("users"), "2:45", "must start with `/`");
    // Only a captured path may begin a path (see journey tests).
    assert_problem(&at("'{{ pool(p) }}/x'"), "2:46", "only when every capture into it has `path: true`");
    assert_problem(&at("'/a?b=1'"), "2:45", "put its parameters under `query`");
    assert_problem(&at("'/a#top'"), "2:45", "fragment");
    assert_problem(&at("'/a b'"), "2:45", "may not contain ' '");
    assert_problem(&at("'/a%zz'"), "2:45", "two hex digits");
    assert_problem(&at("\"/a\\r\\nX: y\""), "2:45", "may not contain '\\r'");
    assert!(read_str(&at("'/a/%20/{{ seq() }}/x:y@z'")).is_ok());
}

#[test]
fn header_injection_and_reserved_headers_are_refused() {
    let at =
        |headers: &str| format!("requests:\n  - {{name: a, weight: 1, method: GET, path: /, headers: {headers}}}\n");
    assert_problem(&at("{X-A: \"v\\r\\nEvil: 1\"}"), "2:63", "control character '\\r'");
    assert_problem(&at("{X-A: \"v\\nEvil: 1\"}"), "2:63", "control character '\\n'");
    assert_problem(&at("{\"X-A\\r\\nEvil\": v}"), "2:58", "not a valid HTTP header name");
    assert_problem(&at("{'X A': v}"), "2:58", "not a valid HTTP header name");
    assert_problem(&at("{Host: evil}"), "2:58", "set by trafficgen");
    assert_problem(&at("{Content-Length: 5}"), "2:58", "set by trafficgen");
    assert_problem(&at("{Transfer-Encoding: chunked}"), "2:58", "set by trafficgen");
    assert_problem(&at("{Content-Type: x/y}"), "2:58", "content_type");
    assert_problem(&at("{X-A: 1, x-a: 2}"), "2:66", "given twice");
    assert!(read_str(&at("{Authorization: 'Bearer {{ pool(t) }}', X-Count: 3}")).is_ok());
}

#[test]
fn templates_are_checked_where_they_are_written() {
    let at = |path: &str| format!("requests:\n  - {{name: a, weight: 1, method: GET, path: {path}}}\n");
    assert_problem(&at("'/u/{{ pool(ids)'"), "2:49", "does not close");
    assert_problem(&at("'/u/{{ random(1) }}'"), "2:49", "unknown template function `random`");
    // Unquoted, YAML reads `{{ … }}` as a mapping: say how to fix it,
    // in a body, a header, a query parameter and a path alike.
    assert_problem(
        "requests:\n  - name: a\n    weight: 1\n    method: POST\n    path: /\n    body:\n      n: {{ seq() }}\n",
        "7:11",
        "must be quoted",
    );
    let request = "requests:\n  - name: a\n    weight: 1\n    method: GET\n";
    for (extra, place) in [
        ("    path: /\n    headers:\n      Authorization: {{ pool(t) }}\n", "8:22"),
        ("    path: /\n    query:\n      q: {{ seq() }}\n", "8:10"),
        ("    path: {{ seq() }}\n", "6:11"),
    ] {
        let text = format!("pools: {{t: ~}}\n{request}{extra}");
        assert_problem(&text, place, "a template used as a value must be quoted");
    }
}

#[test]
fn references_to_pools_and_requests_are_checked() {
    let text = "pools:\n  ids: ~\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(idz) }}', fallback: b}\n  - {name: b, weight: 1, method: POST, path: /, capture: {pool: idx, json: /id}}\n";
    assert_problem(text, "4:47", "unknown pool `idz` (pools: ids)");
    assert_problem(text, "5:58", "capture into unknown pool `idx`");
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: GET, path: /, fallback: nobody}\n",
        "2:58",
        "fallback to unknown request `nobody` (requests: a)",
    );
}

#[test]
fn fallback_cycles_are_found_at_load() {
    let text = "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: b}\n  - {name: b, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: c}\n  - {name: c, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: a}\n";
    assert_problem(text, "3:73", "fallbacks go round in a circle: a → b → c → a");
    assert_eq!(problems(text).len(), 1, "one cycle, reported once: {:?}", problems(text));
    let own = "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: a}\n";
    assert_problem(own, "3:73", "circle: a → a");
    let error_target = "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: e}\n  - {name: e, error: true, method: GET, path: /}\n";
    assert_problem(error_target, "3:73", "is an error request");
}

#[test]
fn bounds_on_requests_and_pools() {
    let mut text = String::from("requests:\n");
    for i in 0..=MAX_REQUESTS {
        text.push_str(&format!("  - {{name: r{i}, weight: 1, method: GET, path: /}}\n"));
    }
    assert_problem(&text, "66:5", "more than 64 requests");
    let mut pools = String::from("pools:\n");
    for i in 0..=MAX_POOLS {
        pools.push_str(&format!("  p{i}: ~\n"));
    }
    pools.push_str(MINIMAL);
    assert_problem(&pools, "18:3", "more than 16 pools");
}

#[test]
fn bodies_become_json_or_stay_text() {
    let model = read_str(
        "requests:\n  - name: a\n    weight: 1\n    method: POST\n    path: /\n    body:\n      n: 1\n      f: 2.50\n      ok: true\n      none: ~\n      s: '{{ seq() }}'\n      list: [x, 2]\n",
    )
    .unwrap();
    let Some(Body::Json(Json::Object(entries))) = &model.requests[0].body else { panic!() };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["n", "f", "ok", "none", "s", "list"], "file order kept");
    assert_eq!(entries[1].1, Json::Number("2.5".into()));
    assert_problem(
        "requests:\n  - {name: a, weight: 1, method: POST, path: /, body: 'x'}\n",
        "2:55",
        "needs `content_type`",
    );
    assert_problem("requests:\n  - {name: a, weight: 1, method: POST, path: /, body: {x: .inf}}\n", "2:59", "infinity");
}

#[test]
fn captures_take_a_pointer_or_a_header() {
    let at = |capture: &str| {
        format!("pools: {{p: ~}}\nrequests:\n  - {{name: a, weight: 1, method: POST, path: /, capture: {capture}}}\n")
    };
    assert_problem(&at("{pool: p, json: id}"), "3:74", "not a JSON pointer");
    assert_problem(&at("{pool: p, json: /a~2b}"), "3:74", "not a JSON pointer");
    assert_problem(&at("{pool: p}"), "3:58", "takes one of `json`");
    assert_problem(&at("{pool: p, json: /id, header: Location}"), "3:58", "takes one of");
    assert_problem(&at("{pool: p, header: 'Lo cation'}"), "3:76", "not a valid HTTP header name");
    assert_problem(&at("{pool: p, json: /id, max_len: 300}"), "3:88", "from 1 to 256");
    let model =
        read_str(&at("[{pool: p, json: /data/0/id, max_len: 64, url_safe: true}, {pool: p, header: Location}]"))
            .unwrap();
    let captures = &model.requests[0].captures;
    assert_eq!(captures[0].source, CaptureSource::Json("/data/0/id".into()));
    assert_eq!((captures[0].max_len, captures[0].url_safe), (64, true));
    assert_eq!(captures[1].source, CaptureSource::Header("Location".into()));
}

#[test]
fn success_sets_take_codes_and_classes() {
    let model = read_str("requests:\n  - {name: a, weight: 1, method: GET, path: /, success: [2xx, 404]}\n").unwrap();
    let set = model.requests[0].success;
    assert!(set.contains(200) && set.contains(299) && set.contains(404));
    assert!(!set.contains(301) && !set.contains(500));
    assert_eq!(set.to_string(), "2xx, 404");
    assert_problem("requests:\n  - {name: a, weight: 1, method: GET, path: /, success: [600]}\n", "2:58", "100 to 599");
    assert_problem("requests:\n  - {name: a, weight: 1, method: GET, path: /, success: 6xx}\n", "2:57", "classes");
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = "requests:\n  - {name: a, weight: 0, method: BREW, path: x}\n  - {name: b, weight: 1, method: GET, path: /, colour: red}\n";
    let found = problems(text);
    assert_eq!(found.len(), 4, "{found:#?}");
}

#[test]
fn pools_read_and_warnings() {
    let model = read_str(
        "pools:\n  ids: ~\n  unused: {size: 3, values: [1, two]}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(ids) }}/{{ pool(ids) }}', fallback: b}\n  - {name: b, weight: 1, method: GET, path: /, fallback: a}\n",
    )
    .unwrap();
    assert_eq!(model.requests[0].pools_read().collect::<Vec<_>>(), ["ids"]);
    assert_eq!(model.pools[1].values[0], Item { text: "1".into(), number: true });
    let warnings: Vec<String> = model.warnings().iter().map(|w| w.message.clone()).collect();
    assert!(warnings.iter().any(|w| w.contains("`unused` is never read")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("`ids` has no `values`")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("its fallback `a` is never used")), "{warnings:?}");
}
