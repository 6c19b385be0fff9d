//! The workload as a whole: loading, the built-in orders workload against
//! the engine's own renderer, drawing, rendering, captures, bad input.

mod old_engine;
mod setup;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::workload::mix::{Endpoint, Mix};
use old_engine::{OrderId, OrderIdRing, RequestTemplate};

/// Counts this thread's allocations, to prove rendering makes none.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter is a const-initialised thread-local without a destructor.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn options() -> Options {
    Options {
        target: Target {
            authority: "shop:8080".into(),
            path_prefix: "/api".into(),
            user_agent: USER_AGENT.into(),
            trace: TraceHeaders::Off,
        },
        default_pool_size: 50,
        data_dir: None,
        env: Default::default(),
    }
}

fn load(text: &str) -> Workload {
    load_str("test.yaml", text, &options()).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(text: &str) -> Vec<String> {
    match load_str("test.yaml", text, &options()) {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

/// Draws and renders one request; `None` when nothing can be sent.
fn next(workload: &Workload, rng: &mut SmallRng, state: &mut RunState) -> Option<(RequestId, String)> {
    let Draw::Send(chosen) = workload.draw(rng, state) else { return None };
    let mut out = Vec::new();
    workload.render(&chosen, rng, state, &mut out);
    Some((chosen.request(), String::from_utf8(out).expect("UTF-8")))
}

fn render_one(workload: &Workload, name: &str, state: &mut RunState) -> String {
    let mut rng = SmallRng::seed_from_u64(7);
    let id = workload.find(name).expect("request");
    let Draw::Send(chosen) = workload.resolve(id, &mut rng, state) else { panic!("{name} cannot be sent") };
    let mut out = Vec::new();
    workload.render(&chosen, &mut rng, state, &mut out);
    String::from_utf8(out).unwrap()
}

/// What the engine's worker did before workloads: draw from the mix, read
/// an id for `get_order` (a create while there is none), render with the
/// engine's `RequestTemplate` and the same order body it formats.
struct EngineToday {
    mix: Mix,
    ids: OrderIdRing,
    template: RequestTemplate,
}

impl EngineToday {
    fn next(&mut self, rng: &mut SmallRng, out: &mut Vec<u8>) -> Endpoint {
        let endpoint = self.mix.pick(rng.random_range(0..self.mix.total()));
        let id = match endpoint {
            Endpoint::GetOrder => {
                let roll = rng.random_range(0..usize::MAX);
                self.ids.pick(roll).cloned()
            }
            _ => None,
        };
        match (endpoint, id) {
            (Endpoint::ListOrders, _) => {
                self.template.get_orders(out, None);
                Endpoint::ListOrders
            }
            (Endpoint::GetOrder, Some(id)) => {
                self.template.get_orders(out, Some(id.as_str()));
                Endpoint::GetOrder
            }
            _ => {
                let product_id: u8 = rng.random_range(1..=10);
                let quantity: u8 = rng.random_range(1..=5);
                let json = format!(r#"{{"product_id":{product_id},"quantity":{quantity}}}"#);
                self.template.post_orders(out, json.as_bytes());
                Endpoint::CreateOrder
            }
        }
    }

    /// What the engine kept from a create answer.
    fn answered(&mut self, status: u16, body: &[u8]) {
        let id = serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| OrderId::from_json(&v["id"]));
        if (200..300).contains(&status)
            && let Some(id) = id
        {
            self.ids.push(id);
        }
    }
}

/// Answers to creates, good and bad, in turn.
fn create_answer(n: u64) -> (u16, Vec<u8>) {
    match n % 9 {
        0 => (201, format!(r#"{{"id":{n},"status":"created"}}"#).into_bytes()),
        1 => (201, format!(r#"{{"status":"created","id":"ord-{n}"}}"#).into_bytes()),
        2 => (500, format!(r#"{{"id":{n}}}"#).into_bytes()),
        3 => (201, b"<html>not json</html>".to_vec()),
        4 => (201, br#"{"id":"../../admin"}"#.to_vec()),
        5 => (201, format!(r#"{{"id":"{}"}}"#, "x".repeat(65)).into_bytes()),
        6 => (201, br#"{"id":null}"#.to_vec()),
        7 => (200, format!(r#"{{"id":{n}.5}}"#).into_bytes()),
        _ => (201, br#"[1,2]"#.to_vec()),
    }
}

/// Renders `requests` requests both ways from the same random stream and
/// compares every byte; `fallbacks`: some `get_order` must have found the
/// pool empty and become a create.
fn assert_same_as_engine(weights: OrderWeights, authority: &str, prefix: &str, requests: usize, fallbacks: bool) {
    let options = Options {
        target: Target {
            authority: authority.into(),
            path_prefix: prefix.into(),
            user_agent: USER_AGENT.into(),
            trace: TraceHeaders::Off,
        },
        default_pool_size: 7,
        data_dir: None,
        env: Default::default(),
    };
    let workload = orders(weights, &options).unwrap();
    let mut state = RunState::new(&workload);
    let mut engine = EngineToday {
        mix: Mix::new([weights.create_order, weights.list_orders, weights.get_order]).unwrap(),
        ids: OrderIdRing::new(7),
        template: RequestTemplate::new(authority, prefix, USER_AGENT),
    };
    let (mut old_rng, mut new_rng) = (SmallRng::seed_from_u64(42), SmallRng::seed_from_u64(42));
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let mut seen = [0u32; 3];
    let mut fell_back = 0;
    for n in 0..requests as u64 {
        let endpoint = engine.next(&mut old_rng, &mut old);
        let Draw::Send(chosen) = workload.draw(&mut new_rng, &state) else { panic!("unmet at {n}") };
        workload.render(&chosen, &mut new_rng, &mut state, &mut new);
        assert_eq!(
            String::from_utf8_lossy(&new),
            String::from_utf8_lossy(&old),
            "request {n} differs from what the engine sends"
        );
        assert_eq!(workload.name(chosen.request()), endpoint.as_str(), "label of request {n}");
        seen[endpoint.index()] += 1;
        fell_back += u32::from(chosen.fell_back());
        if endpoint == Endpoint::CreateOrder {
            let (status, body) = create_answer(n);
            engine.answered(status, &body);
            workload.capture(chosen.request(), status, &[], Some(&body), &mut state);
        }
        let pool = workload.pool_id("order_ids").unwrap();
        assert_eq!(state.pool(pool).len(), engine.ids.len(), "ids remembered after request {n}");
    }
    for (endpoint, count) in Endpoint::ALL.iter().zip(seen) {
        let weight = engine.mix.weight(*endpoint);
        assert_eq!(count > 0, weight > 0, "{endpoint} drawn {count} times with weight {weight}");
    }
    assert_eq!(fell_back > 0, fallbacks, "{fell_back} get_order fell back to create_order");
}

#[test]
fn builtin_renders_byte_for_byte_what_the_engine_sends() {
    assert_same_as_engine(OrderWeights::default(), "nginx", "", 20_000, false);
    assert_same_as_engine(OrderWeights::default(), "shop:8080", "/api/v1", 5_000, false);
    assert_same_as_engine(
        OrderWeights { create_order: 1, list_orders: 0, get_order: 9 },
        "[::1]:8080",
        "",
        5_000,
        true,
    );
    assert_same_as_engine(OrderWeights { create_order: 0, list_orders: 3, get_order: 0 }, "x", "/p", 1_000, false);
}

#[test]
fn orders_yaml_compiles_to_exactly_the_builtin() {
    let file = load_str("orders.yaml", include_str!("../../../examples/workloads/orders.yaml"), &options()).unwrap();
    let builtin = orders(OrderWeights::default(), &options()).unwrap();
    assert_eq!(file.compiled, builtin.compiled);
    assert_eq!(file.mix(), "create_order=60,list_orders=25,get_order=15");
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());
    // And so it renders the same bytes.
    let (mut a, mut b) = (RunState::new(&file), RunState::new(&builtin));
    let (mut ra, mut rb) = (SmallRng::seed_from_u64(3), SmallRng::seed_from_u64(3));
    for n in 0..2_000 {
        let x = next(&file, &mut ra, &mut a).unwrap();
        let y = next(&builtin, &mut rb, &mut b).unwrap();
        assert_eq!(x, y);
        if x.0 == file.find("create_order").unwrap() {
            let (status, body) = create_answer(n);
            file.capture(x.0, status, &[], Some(&body), &mut a);
            builtin.capture(y.0, status, &[], Some(&body), &mut b);
        }
    }
}

#[test]
fn the_examples_load() {
    for (name, text) in [
        ("users-crud.yaml", include_str!("../../../examples/workloads/users-crud.yaml")),
        ("login-then-api.yaml", include_str!("../../../examples/workloads/login-then-api.yaml")),
    ] {
        let workload = load_str(name, text, &options()).unwrap_or_else(|e| panic!("{e}"));
        assert!(workload.warnings().is_empty(), "{name}: {:?}", workload.warnings());
    }
}

#[test]
fn a_request_renders_completely() {
    let workload = load(
        r#"
pools:
  ids: {values: [7, "a/b c"]}
requests:
  - name: update
    weight: 1
    method: patch
    path: "/users/{{ pool(ids) }}"
    query: {q: "x y", n: "{{ random_int(5, 5) }}", "a&b": "=&"}
    headers:
      X-Trace: "t-{{ seq() }}"
      Authorization: "Bearer {{ pool(ids) }}"
    body:
      id: "{{ pool(ids) }}"
      note: "id {{ pool(ids) }} at {{ unix_time() }}"
      tags: [a, 1, true, ~]
"#,
    );
    let mut state = RunState::new(&workload);
    state.set_clock(Clock::Fixed(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    let id = workload.find("update").unwrap();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut seen = Vec::new();
    for _ in 0..40 {
        let Draw::Send(chosen) = workload.resolve(id, &mut rng, &state) else { panic!() };
        let mut out = Vec::new();
        workload.render(&chosen, &mut rng, &mut state, &mut out);
        seen.push(String::from_utf8(out).unwrap());
    }
    let number = seen.iter().find(|r| r.starts_with("PATCH /api/users/7?")).expect("the number 7 drawn");
    let body = r#"{"id":7,"note":"id 7 at 1700000000","tags":["a",1,true,null]}"#;
    let expected = format!(
        "PATCH /api/users/7?q=x%20y&n=5&a%26b=%3D%26 HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: {USER_AGENT}\r\nX-Trace: t-SEQ\r\nAuthorization: Bearer 7\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let seq = number.split("X-Trace: t-").nth(1).unwrap().split("\r\n").next().unwrap();
    assert_eq!(*number, expected.replace("SEQ", seq));
    // A text value: percent-encoded in the path, as is in a header, a JSON
    // string in the body; the same value everywhere in one request.
    let text = seen.iter().find(|r| r.starts_with("PATCH /api/users/a%2Fb%20c?")).expect("the text drawn");
    assert!(text.contains("Authorization: Bearer a/b c\r\n"), "{text}");
    assert!(text.ends_with(r#"{"id":"a/b c","note":"id a/b c at 1700000000","tags":["a",1,true,null]}"#), "{text}");
    // seq() counts across requests.
    let seqs: Vec<u64> =
        seen.iter().map(|r| r.split("X-Trace: t-").nth(1).unwrap()[..2].trim().parse().unwrap()).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
}

#[test]
fn content_length_always_matches_the_body() {
    let workload = load(
        r#"
requests:
  - name: post
    weight: 1
    method: POST
    path: /
    body: {s: "{{ random_string(1) }}{{ choice(a, bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb, 'c\"d') }}", n: "{{ random_int(-100000, 100000000000) }}"}
"#,
    );
    let mut state = RunState::new(&workload);
    let mut rng = SmallRng::seed_from_u64(9);
    for _ in 0..500 {
        let (_, text) = next(&workload, &mut rng, &mut state).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head.split("Content-Length: ").nth(1).unwrap().parse().unwrap();
        assert_eq!(length, body.len(), "{text}");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["n"].is_i64(), "{body}");
    }
}

#[test]
fn rendering_allocates_nothing_once_warm() {
    let workload = load(include_str!("../../../examples/workloads/users-crud.yaml"));
    let mut state = RunState::new(&workload);
    let pool = workload.pool_id("user_ids").unwrap();
    for n in 0..100 {
        state.push(pool, n.to_string().as_bytes(), true);
    }
    let mut rng = SmallRng::seed_from_u64(5);
    let mut out = Vec::new();
    let mut parts = RequestParts::default();
    let render = |rng: &mut SmallRng, state: &mut RunState, out: &mut Vec<u8>, parts: &mut RequestParts| {
        if let Draw::Send(chosen) = workload.draw(rng, state) {
            workload.render(&chosen, rng, state, out);
            workload.render_parts(&chosen, rng, state, parts);
        }
    };
    for _ in 0..1_000 {
        render(&mut rng, &mut state, &mut out, &mut parts);
    }
    let before = allocations();
    for _ in 0..10_000 {
        render(&mut rng, &mut state, &mut out, &mut parts);
    }
    assert_eq!(allocations() - before, 0, "allocations while rendering 10 000 requests");
    // The counter does count: a fresh buffer allocates.
    let before = allocations();
    let fresh: Vec<u8> = Vec::with_capacity(16);
    drop(fresh);
    assert_eq!(allocations() - before, 1);
}

#[test]
fn parts_give_a_client_what_it_needs() {
    let workload = load(
        "requests:\n  - {name: a, weight: 1, method: PUT, path: '/x/{{ random_int(3, 3) }}', query: {k: v}, headers: {X-A: b}, body: {n: 1}}\n  - {name: b, weight: 1, method: GET, path: /, headers: {User-Agent: mine}}\n",
    );
    let mut state = RunState::new(&workload);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut parts = RequestParts::default();
    let a = workload.find("a").unwrap();
    let Draw::Send(chosen) = workload.resolve(a, &mut rng, &state) else { panic!() };
    workload.render_parts(&chosen, &mut rng, &mut state, &mut parts);
    assert_eq!(workload.method(a), Method::Put);
    assert_eq!(parts.target(), b"/api/x/3?k=v");
    let headers: Vec<(&str, &[u8])> = workload.part_headers(&parts).collect();
    assert_eq!(headers, [("User-Agent", USER_AGENT.as_bytes()), ("X-A", &b"b"[..])]);
    assert_eq!(workload.content_type(a), Some("application/json"));
    assert_eq!(parts.body(), Some(&br#"{"n":1}"#[..]));
    let b = workload.find("b").unwrap();
    let Draw::Send(chosen) = workload.resolve(b, &mut rng, &state) else { panic!() };
    workload.render_parts(&chosen, &mut rng, &mut state, &mut parts);
    let headers: Vec<(&str, &[u8])> = workload.part_headers(&parts).collect();
    assert_eq!(headers, [("User-Agent", &b"mine"[..])], "a workload's User-Agent replaces ours");
    assert_eq!(parts.body(), None);
    assert!(render_one(&workload, "b", &mut state).contains("\r\nUser-Agent: mine\r\n\r\n"));
}

#[test]
fn templates_fill_json_by_type() {
    let workload = load(
        r#"
requests:
  - name: a
    weight: 1
    method: POST
    path: /
    body:
      seq: "{{ seq() }}"
      pick: "{{ choice(1, two, 3.5) }}"
      uuid: "{{ uuid() }}"
      now: "{{ now() }}"
      ms: "{{ unix_time_ms() }}"
      s: "{{ random_string(5) }}"
      quoted: "{{ '{{' }}x"
"#,
    );
    let mut state = RunState::new(&workload);
    state.set_clock(Clock::Fixed(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)));
    let mut rng = SmallRng::seed_from_u64(2);
    let mut picks = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (_, text) = next(&workload, &mut rng, &mut state).unwrap();
        let body: serde_json::Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert!(body["seq"].is_u64());
        picks.insert(body["pick"].to_string());
        let uuid = body["uuid"].as_str().unwrap();
        assert!(uuid.len() == 36 && uuid.as_bytes()[14] == b'4', "{uuid}");
        assert_eq!(body["now"], "2023-11-14T22:13:20.123Z");
        assert_eq!(body["ms"], 1_700_000_000_123u64);
        assert!(body["s"].as_str().is_some_and(|s| s.len() == 5 && s.bytes().all(|b| b.is_ascii_alphanumeric())));
        assert_eq!(body["quoted"], "{{x");
    }
    assert_eq!(picks.into_iter().collect::<Vec<_>>(), ["\"two\"", "1", "3.5"]);
}

#[test]
fn text_bodies_keep_json_valid_and_forms_encoded() {
    let workload = load(
        r#"
pools:
  names: {values: ["say \"hi\"", 42]}
requests:
  - name: raw_json
    weight: 1
    method: POST
    path: /
    content_type: application/merge-patch+json
    body: '{"name": "{{ pool(names) }}!", "value": {{ pool(names) }}}'
  - name: form
    weight: 1
    method: POST
    path: /
    content_type: application/x-www-form-urlencoded
    body: "name={{ pool(names) }}&x=1"
  - name: text
    weight: 1
    method: POST
    path: /
    content_type: text/plain
    body: "hello {{ pool(names) }}"
"#,
    );
    let mut state = RunState::new(&workload);
    let mut bodies = std::collections::BTreeSet::new();
    for seed in 0..20 {
        for name in ["raw_json", "form", "text"] {
            let mut rng = SmallRng::seed_from_u64(seed);
            let id = workload.find(name).unwrap();
            let Draw::Send(chosen) = workload.resolve(id, &mut rng, &state) else { panic!() };
            let mut out = Vec::new();
            workload.render(&chosen, &mut rng, &mut state, &mut out);
            let text = String::from_utf8(out).unwrap();
            bodies.insert(text.split_once("\r\n\r\n").unwrap().1.to_string());
        }
    }
    let expected = [
        r#"hello 42"#,
        r#"hello say "hi""#,
        r#"name=42&x=1"#,
        r#"name=say%20%22hi%22&x=1"#,
        r#"{"name": "42!", "value": 42}"#,
        r#"{"name": "say \"hi\"!", "value": "say \"hi\""}"#,
    ];
    assert_eq!(bodies.into_iter().collect::<Vec<_>>(), expected);
}

#[test]
fn fallbacks_follow_empty_pools_and_stop_when_none_is_left() {
    let workload = load(
        r#"
pools: {a: ~, b: ~}
requests:
  - {name: read_b, weight: 1, method: GET, path: "/b/{{ pool(b) }}", fallback: read_a}
  - {name: read_a, weight: 1, method: GET, path: "/a/{{ pool(a) }}", fallback: make}
  - {name: make, weight: 1, method: POST, path: /, capture: {pool: a, json: /id}}
  - {name: stuck, weight: 1, method: GET, path: "/s/{{ pool(b) }}"}
"#,
    );
    let mut state = RunState::new(&workload);
    let mut rng = SmallRng::seed_from_u64(1);
    let id = |name| workload.find(name).unwrap();
    let resolved = |state: &RunState, rng: &mut SmallRng, name| match workload.resolve(id(name), rng, state) {
        Draw::Send(c) => Ok(workload.name(c.request()).to_string()),
        Draw::Unmet { pool, .. } => Err(workload.pool_name(pool).to_string()),
    };
    assert_eq!(resolved(&state, &mut rng, "read_b"), Ok("make".into()), "b and a empty: two hops");
    assert_eq!(resolved(&state, &mut rng, "stuck"), Err("b".into()), "no fallback: not sent");
    let body = br#"{"id": 5}"#;
    let report = workload.capture(id("make"), 201, &[], Some(body), &mut state);
    assert_eq!(report.stored, 1);
    assert_eq!(resolved(&state, &mut rng, "read_b"), Ok("read_a".into()));
    let Draw::Send(chosen) = workload.resolve(id("read_b"), &mut rng, &state) else { panic!() };
    assert!(chosen.fell_back() && chosen.asked() == id("read_b"));
    assert_eq!(resolved(&state, &mut rng, "read_a"), Ok("read_a".into()));
    // Over many draws an unmet request is counted, never sent.
    let unmet = (0..400).filter(|_| matches!(workload.draw(&mut rng, &state), Draw::Unmet { .. })).count();
    assert!((60..140).contains(&unmet), "stuck drawn about a quarter of 400 times: {unmet}");
}

#[test]
fn error_requests_are_never_drawn_by_weight() {
    let workload = load(include_str!("../../../examples/workloads/orders.yaml"));
    let error = workload.find("order_error").unwrap();
    assert_eq!(workload.error_requests().collect::<Vec<_>>(), [error]);
    let mut state = RunState::new(&workload);
    let mut rng = SmallRng::seed_from_u64(1);
    assert!((0..5_000).all(|_| workload.pick(&mut rng) != error));
    assert_eq!(workload.share(error), None);
    let text = render_one(&workload, "order_error", &mut state);
    assert!(text.starts_with("GET /api/orders/error?rate=0.5 HTTP/1.1\r\n"), "{text}");
}

#[test]
fn weights_are_observed_in_proportion() {
    let workload = load(include_str!("../../../examples/workloads/users-crud.yaml"));
    let mut rng = SmallRng::seed_from_u64(11);
    let mut counts = vec![0u32; workload.requests().count()];
    let draws = 100_000;
    for _ in 0..draws {
        counts[workload.pick(&mut rng).index()] += 1;
    }
    for id in workload.requests() {
        let expected = workload.share(id).unwrap_or(0.0) / 100.0;
        let seen = f64::from(counts[id.index()]) / f64::from(draws);
        assert!((seen - expected).abs() < 0.01, "{}: {seen} vs {expected}", workload.name(id));
    }
}

#[test]
fn captures_take_values_from_bodies_and_headers() {
    let workload = load(
        r#"
pools: {ids: ~, urls: ~, tokens: {size: 1}}
requests:
  - name: make
    weight: 1
    method: POST
    path: /
    success: [201, 202]
    capture:
      - {pool: ids, json: /data/0/id}
      - {pool: urls, header: location}
      - {pool: tokens, json: /token, max_len: 8}
"#,
    );
    let mut state = RunState::new(&workload);
    let make = workload.find("make").unwrap();
    let pool = |name| state_len(&workload, name);
    fn state_len(workload: &Workload, name: &str) -> PoolId {
        workload.pool_id(name).unwrap()
    }
    let body = br#"{"data": [{"id": "u-1"}], "token": "abc"}"#;
    let headers: [(&str, &[u8]); 1] = [("Location", b" /users/u-1 ")];
    let report = workload.capture(make, 201, &headers, Some(body), &mut state);
    assert_eq!((report.stored, report.failed()), (3, 0));
    assert_eq!(state.pool(pool("urls")).get(0).unwrap().as_bytes(), b"/users/u-1");
    // Not a success: nothing taken.
    assert_eq!(workload.capture(make, 200, &headers, Some(body), &mut state), CaptureReport::default());
    // Not JSON, counted per capture; a missing header; a refused value.
    let report = workload.capture(make, 202, &[], Some(b"<html>"), &mut state);
    assert_eq!((report.not_json, report.missing, report.stored), (2, 1, 0));
    let long = br#"{"data": [{"id": {"nested": 1}}], "token": "123456789"}"#;
    let report = workload.capture(make, 201, &headers, Some(long), &mut state);
    assert_eq!((report.refused, report.stored), (2, 1));
    assert_eq!(report.last_refusal, Some(pool::Refusal::TooLong));
    let evil: [(&str, &[u8]); 1] = [("location", b"/x\r\nX-Evil: 1")];
    let report = workload.capture(make, 201, &evil, None, &mut state);
    assert_eq!((report.refused, report.no_body), (1, 2));
    assert_eq!(report.last_refusal, Some(pool::Refusal::ControlCharacter));
    assert_eq!(state.pool(pool("tokens")).len(), 1, "a pool of size 1 keeps the newest");
    assert!(workload.wants_body(make));
    assert_eq!(workload.wanted_headers(make).collect::<Vec<_>>(), ["location"]);
    assert!(workload.is_success(make, 202) && !workload.is_success(make, 200));
}

#[test]
fn a_swap_keeps_the_values_of_pools_that_survive() {
    let old = load(
        "pools: {ids: ~, gone: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(ids) }}/{{ pool(gone) }}'}\n",
    );
    let new = load(
        "pools: {fresh: {values: [x]}, ids: {size: 2}}\nrequests:\n  - {name: b, weight: 1, method: GET, path: '/{{ pool(ids) }}/{{ pool(fresh) }}'}\n",
    );
    let mut state = RunState::new(&old);
    for v in [b"1", b"2", b"3"] {
        state.push(old.pool_id("ids").unwrap(), v, true);
    }
    state.push(old.pool_id("gone").unwrap(), b"g", false);
    let mut carried = state.clone();
    carried.carry_over(&old, &new);
    let ids: Vec<&[u8]> = carried.pool(new.pool_id("ids").unwrap()).iter().map(|v| v.as_bytes()).collect();
    assert_eq!(ids, [b"2", b"3"], "the newest that fit");
    assert_eq!(carried.pool(new.pool_id("fresh").unwrap()).len(), 1);
}

/// Issue 21: a swap of 1.6 million pool values dropped requests at
/// 1 000/s, because every value was copied on the engine thread. A
/// surviving pool is moved: its values keep their very buffers.
#[test]
fn a_swap_moves_surviving_pools_without_copying_a_value() {
    let text = |size: usize| {
        format!(
            "pools: {{ids: {{size: {size}}}}}\nrequests:\n  - {{name: a, weight: 1, method: GET, path: '/{{{{ pool(ids) }}}}'}}\n"
        )
    };
    let (old, same, smaller) = (load(&text(100_000)), load(&text(100_000)), load(&text(10)));
    let mut state = RunState::new(&old);
    let ids = old.pool_id("ids").unwrap();
    for v in 0..100_000 {
        state.push(ids, format!("value-{v}").as_bytes(), false);
    }
    let before: Vec<*const u8> = state.pool(ids).iter().map(|v| v.as_bytes().as_ptr()).collect();
    state.carry_over(&old, &same);
    let after: Vec<*const u8> = state.pool(ids).iter().map(|v| v.as_bytes().as_ptr()).collect();
    assert!(before == after, "values were copied");
    state.carry_over(&same, &smaller);
    let kept: Vec<*const u8> = state.pool(ids).iter().map(|v| v.as_bytes().as_ptr()).collect();
    assert_eq!(kept, before[before.len() - 10..], "the newest ten, moved");
}

/// `GET /workload` counts a swapped-in workload's pools this way until the
/// worker has made the state: the counts must be the state's.
#[test]
fn counts_after_a_swap_are_those_of_the_carried_state() {
    let old = load(
        "pools: {ids: {size: 5}, gone: {values: [a, b, c]}}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(ids) }}/{{ pool(gone) }}'}\n",
    );
    let new = load(
        "pools: {fresh: {size: 3, values: [x, y, z]}, ids: {size: 2, values: [q]}, empty: ~}\nrequests:\n  - {name: b, weight: 1, method: GET, path: '/{{ pool(ids) }}/{{ pool(fresh) }}/{{ pool(empty) }}'}\n",
    );
    let counts = |state: &RunState, workload: &Workload| -> Vec<usize> {
        workload.pools().map(|id| state.pool(id).len()).collect()
    };
    let fresh = RunState::new(&old);
    assert_eq!(RunState::starting_counts(&old), counts(&fresh, &old));
    assert_eq!(RunState::starting_counts(&new), [3, 1, 0]);
    for filled in [0, 1, 3] {
        let mut state = fresh.clone();
        for v in 0..filled {
            state.push(old.pool_id("ids").unwrap(), format!("{v}").as_bytes(), true);
        }
        let held = counts(&state, &old);
        state.carry_over(&old, &new);
        assert_eq!(RunState::carried_counts(&old, &held, &new), counts(&state, &new), "{filled} ids held");
    }
    assert_eq!(RunState::carried_counts(&old, &[4, 3], &new), [3, 2, 0], "a kept pool's count, up to the new size");
}

#[test]
fn a_workload_is_shared_across_threads_and_its_state_moves_to_one() {
    fn shared<T: Send + Sync>() {}
    fn moved<T: Send>() {}
    shared::<Workload>();
    moved::<RunState>();
    moved::<RequestParts>();
}

#[test]
fn json_is_accepted_as_well_as_yaml() {
    let workload = load(r#"{"requests": [{"name": "a", "weight": 3, "method": "GET", "path": "/x"}]}"#);
    assert_eq!(workload.mix(), "a=3");
}

#[test]
fn bad_files_get_every_problem_with_its_place() {
    let bad_json = problems(
        "requests:\n  - name: a\n    weight: 1\n    method: POST\n    path: /\n    content_type: application/json\n    body: '{\"a\": {{ seq() }}'\n",
    );
    assert_eq!(bad_json.len(), 1, "{bad_json:?}");
    assert!(bad_json[0].starts_with("test.yaml:7:11: the body of `a` is not valid JSON once rendered"), "{bad_json:?}");

    let big = "#".repeat(MAX_FILE_BYTES + 1);
    assert_eq!(problems(&big), ["test.yaml:1:1: larger than 1048576 bytes (1 MiB); a workload is much smaller"]);
    let err = load_bytes("f.yaml", b"requests:\n  - name: \xff\n", &options()).unwrap_err();
    assert_eq!(err.to_string(), "f.yaml:2:11: not UTF-8 text");
    let syntax = problems("requests: [\n");
    assert_eq!(syntax.len(), 1);
    assert!(syntax[0].starts_with("test.yaml:"), "{syntax:?}");

    let huge: String = (0..200).map(|_| "\"{{ random_string(1024) }}\"").collect::<Vec<_>>().join(", ");
    let huge = problems(&format!("requests:\n  - {{name: a, weight: 1, method: POST, path: /, body: [{huge}]}}\n"));
    assert!(huge.iter().any(|p| p.contains("may render to") && p.starts_with("test.yaml:2:5:")), "{huge:?}");

    let many = problems(
        "pools: {p: ~}\nrequests:\n  - {name: a, weight: 0, method: GET, path: '/{{ pool(q) }}', fallback: zz}\n  - {name: a, weight: 1, method: BREW, path: /}\n",
    );
    assert_eq!(many.len(), 5, "{many:#?}");
    assert!(many.iter().all(|p| p.starts_with("test.yaml:")), "{many:#?}");

    let seeds = problems(
        "pools: {p: {size: 1, values: [a, b]}}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}'}\n",
    );
    assert_eq!(seeds, ["test.yaml:1:9: pool `p` has 2 values but holds 1"]);
}

/// Prints what drawing and rendering a request, and taking the id out of a
/// create's answer, cost: the engine's way and the workload's, measured in
/// one run (a ratio, not a figure for another day).
/// `cargo test --release --lib render_cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement that prints figures; run it in release"]
fn render_cost() {
    use std::hint::black_box;
    use std::time::Instant;

    const N: u64 = 1_000_000;
    let per = |started: Instant| started.elapsed().as_nanos() as f64 / N as f64;
    let options = options();
    let builtin = orders(OrderWeights::default(), &options).unwrap();
    let users = load(include_str!("../../../examples/workloads/users-crud.yaml"));
    let answer = br#"{"id":123456,"product_id":3,"quantity":2,"status":"created"}"#;

    // The engine's way: its mix, ring and renderer, and its create-answer parser.
    #[derive(serde::Deserialize)]
    struct Created {
        id: Option<serde_json::Value>,
    }
    let mut engine = EngineToday {
        mix: Mix::default(),
        ids: OrderIdRing::new(50),
        template: RequestTemplate::new("shop:8080", "/api", USER_AGENT),
    };
    engine.ids.push(OrderId::parse("1").unwrap());
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out = Vec::new();
    let started = Instant::now();
    for _ in 0..N {
        engine.next(&mut rng, &mut out);
        black_box(&out);
    }
    let engine_render = per(started);
    let started = Instant::now();
    for _ in 0..N {
        let created: Option<Created> = serde_json::from_slice(black_box(answer)).ok();
        if let Some(id) = created.and_then(|c| c.id).and_then(|v| OrderId::from_json(&v)) {
            engine.ids.push(id);
        }
    }
    let engine_capture = per(started);

    let run = |workload: &Workload| {
        let mut state = RunState::new(workload);
        let create = workload.requests().find(|id| workload.wants_body(*id)).unwrap();
        workload.capture(create, 201, &[], Some(answer), &mut state);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut out = Vec::new();
        let started = Instant::now();
        for _ in 0..N {
            if let Draw::Send(chosen) = workload.draw(&mut rng, &state) {
                workload.render(&chosen, &mut rng, &mut state, &mut out);
            }
            black_box(&out);
        }
        let render = per(started);
        let started = Instant::now();
        for _ in 0..N {
            workload.capture(create, 201, &[], Some(black_box(answer)), &mut state);
        }
        (render, per(started))
    };
    let (builtin_render, builtin_capture) = run(&builtin);
    let (users_render, users_capture) = run(&users);
    println!(
        "per request, {N} of each ({engine_render:.0} ns to render and {engine_capture:.0} ns to capture the engine's way = 1.00x):"
    );
    println!(
        "  draw and render:     built-in {builtin_render:6.1} ns ({:.2}x)   users-crud {users_render:6.1} ns ({:.2}x)",
        builtin_render / engine_render,
        users_render / engine_render
    );
    println!(
        "  capture of a create: built-in {builtin_capture:6.1} ns ({:.2}x)   users-crud {users_capture:6.1} ns ({:.2}x)",
        builtin_capture / engine_capture,
        users_capture / engine_capture
    );
}

#[test]
fn trace_headers_carry_a_fresh_w3c_traceparent_and_the_synthetic_marker() {
    let text = "requests:\n  - {name: a, weight: 1, method: GET, path: /a}\n  - {name: b, weight: 1, method: GET, path: /b, headers: {traceparent: '00-{{ uuid() }}-01'}}\n";
    let mut opts = options();
    opts.target.trace = TraceHeaders::On { sampled: true, baggage: false };
    let workload = load_str("t.yaml", text, &opts).unwrap();
    let mut state = RunState::new(&workload);
    let mut rng = SmallRng::seed_from_u64(1);
    let id = workload.find("a").unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let Draw::Send(chosen) = workload.resolve(id, &mut rng, &state) else { panic!("a cannot be sent") };
        let mut out = Vec::new();
        workload.render(&chosen, &mut rng, &mut state, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nX-Synthetic-Traffic: trafficgen\r\n"), "{text}");
        let line = text.lines().find(|l| l.starts_with("traceparent: ")).expect("traceparent");
        let value = &line["traceparent: ".len()..];
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!(parts.len(), 4, "{value}");
        assert_eq!((parts[0], parts[3]), ("00", "01"));
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16), "{value}");
        assert!(parts[1..3].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))));
        assert!(parts[1].bytes().any(|b| b != b'0') && parts[2].bytes().any(|b| b != b'0'));
        assert!(seen.insert(parts[1].to_string()), "a trace id repeated: {value}");
    }
    // A workload's own traceparent wins; the marker is still added.
    let b = render_one(&workload, "b", &mut state);
    assert_eq!(b.matches("traceparent:").count(), 1, "{b}");
    assert!(b.contains("\r\ntraceparent: 00-") && b.contains("\r\nX-Synthetic-Traffic: trafficgen\r\n"), "{b}");
    let own = b.lines().find(|l| l.starts_with("traceparent: ")).unwrap_or_default();
    assert_eq!(own.len(), "traceparent: 00-".len() + 36 + 3, "the workload's uuid template, not ours: {own}");
    // Unsampled, and off.
    opts.target.trace = TraceHeaders::On { sampled: false, baggage: false };
    let unsampled = load_str("t.yaml", text, &opts).unwrap();
    let a = render_one(&unsampled, "a", &mut RunState::new(&unsampled));
    assert!(a.lines().any(|l| l.starts_with("traceparent: 00-") && l.ends_with("-00")), "{a}");
    opts.target.trace = TraceHeaders::Off;
    let off = load_str("t.yaml", text, &opts).unwrap();
    let a = render_one(&off, "a", &mut RunState::new(&off));
    assert!(!a.contains("traceparent") && !a.contains("X-Synthetic-Traffic"), "{a}");
    assert!(workload.max_request_bytes() >= a.len() + 49 + 40);
}

#[test]
fn a_given_trace_and_flag_go_into_the_traceparent_and_come_back_out() {
    use crate::base::trace_context::{TraceId, TraceParent};
    use crate::workload::NextTrace;
    let text = "requests:\n  - {name: a, weight: 1, method: GET, path: /a}\n  - {name: b, weight: 1, method: GET, path: /b, headers: {traceparent: x, baggage: mine}}\n";
    let mut opts = options();
    opts.target.trace = TraceHeaders::On { sampled: true, baggage: true };
    let workload = load_str("t.yaml", text, &opts).unwrap();
    let mut state = RunState::new(&workload);
    let header = |text: &str, name: &str| {
        let prefix = format!("{name}: ");
        text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(str::to_string)
    };
    // Nothing asked: a fresh trace with the target's flag, reported back.
    let a = render_one(&workload, "a", &mut state);
    let sent = TraceParent::parse(header(&a, "traceparent").unwrap().as_bytes()).unwrap();
    assert_eq!(state.take_trace(), Some(sent));
    assert!(sent.sampled);
    assert_eq!(header(&a, "baggage").as_deref(), Some("synthetic_request=true"));
    assert_eq!(state.take_trace(), None, "taken once");
    // A trace to join, unsampled: its id and flag, a span id of its own.
    let trace_id = TraceId::new(0xabc).unwrap();
    state.set_trace(Some(NextTrace { trace_id, sampled: false }));
    let a = render_one(&workload, "a", &mut state);
    let value = header(&a, "traceparent").unwrap();
    assert!(value.starts_with("00-00000000000000000000000000000abc-") && value.ends_with("-00"), "{value}");
    let rendered = state.take_trace().unwrap();
    assert_eq!((rendered.trace_id, rendered.sampled), (trace_id, false));
    assert_eq!(value, String::from_utf8(rendered.to_header().to_vec()).unwrap());
    // The next request is on its own again.
    let a = render_one(&workload, "a", &mut state);
    assert!(!header(&a, "traceparent").unwrap().contains("0abc-"));
    state.take_trace();
    // A workload's own traceparent and baggage: nothing of ours, nothing reported.
    state.set_trace(Some(NextTrace { trace_id, sampled: true }));
    let b = render_one(&workload, "b", &mut state);
    assert_eq!((header(&b, "traceparent").as_deref(), header(&b, "baggage").as_deref()), (Some("x"), Some("mine")));
    assert_eq!(state.take_trace(), None);
}

#[test]
fn a_problem_quoting_a_line_break_from_the_file_stays_one_line() {
    // A double-quoted YAML scalar can carry a line break into a template.
    let text = "requests:\n  - {name: a, weight: 1, method: GET, path: \"/x/{{ random_i\\nt(18, 90) }}\"}\n";
    let e = load_str("t.yaml", text, &options()).expect_err("an unknown template function");
    assert_eq!(e.problems.len(), 1, "{e}");
    let message = &e.problems[0].message;
    assert!(!message.contains('\n') && message.contains("random_i\\nt"), "{message}");
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
}
