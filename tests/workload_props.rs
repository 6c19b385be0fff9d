//! Property tests of workload files as an attacker would write them, and of
//! answers as a hostile target would send them: nothing panics, every
//! refusal names a place in the file, and nothing a capture stores can
//! break a request rendered from it.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use trafficgen::workload::{self, Draw, Options, RunState, Target, TraceHeaders, USER_AGENT};

const EXAMPLES: [&str; 3] = [
    include_str!("../examples/workloads/orders.yaml"),
    include_str!("../examples/workloads/users-crud.yaml"),
    include_str!("../examples/workloads/login-then-api.yaml"),
];

fn options() -> Options {
    Options {
        target: Target {
            authority: "t:1".into(),
            path_prefix: "/p".into(),
            user_agent: USER_AGENT.into(),
            trace: TraceHeaders::Off,
        },
        default_pool_size: 4,
        data_dir: None,
        env: Default::default(),
    }
}

/// Loads `text`; on refusal, every problem has a line and column within
/// the text (or 1:1) and a message of its own.
fn load_checked(text: &str) -> Option<workload::Workload> {
    match workload::load_str("f.yaml", text, &options()) {
        Ok(w) => Some(w),
        Err(e) => {
            assert!(!e.problems.is_empty());
            // YAML breaks lines at LF, CRLF and a lone CR.
            let lines = text.replace("\r\n", "\n").matches(['\r', '\n']).count() as u32 + 1;
            for p in &e.problems {
                assert!(p.pos.line >= 1 && p.pos.line <= lines, "{}:{} out of the text", p.pos.line, p.pos.col);
                assert!(p.pos.col >= 1, "{p:?}");
                assert!(!p.message.is_empty() && !p.message.contains('\n'), "{p:?}");
            }
            None
        }
    }
}

/// Renders a few requests of a loaded workload; each must be one HTTP/1.1
/// request whose head has no bare CR or LF and whose length is announced.
fn render_some(workload: &workload::Workload, seed: u64) {
    let mut state = RunState::new(workload);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..8 {
        let Draw::Send(chosen) = workload.draw(&mut rng, &state) else { continue };
        workload.render(&chosen, &mut rng, &mut state, &mut out);
        assert_head_is_sound(&out);
    }
}

fn assert_head_is_sound(request: &[u8]) {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n").expect("head ends") + 4;
    let head = &request[..end];
    // Every CR is followed by LF and every LF preceded by CR: no injected lines.
    for (i, b) in head.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR in {:?}", String::from_utf8_lossy(head)),
            b'\n' => assert_eq!(head.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF"),
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(head);
    let body = &request[end..];
    match text.split("Content-Length: ").nth(1) {
        Some(rest) => assert_eq!(rest.split("\r\n").next().unwrap().parse::<usize>().unwrap(), body.len()),
        None => assert!(body.is_empty()),
    }
}

fn mutated_example() -> impl Strategy<Value = String> {
    (0..EXAMPLES.len(), proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6)).prop_map(
        |(which, edits)| {
            let mut bytes = EXAMPLES[which].as_bytes().to_vec();
            for (at, byte, kind) in edits {
                let i = at.index(bytes.len().max(1));
                match kind {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 => bytes.insert(i.min(bytes.len()), byte),
                    _ if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_loaded_or_refused_with_places(text in ".{0,300}") {
        if let Some(w) = load_checked(&text) {
            render_some(&w, 1);
        }
    }

    #[test]
    fn edited_examples_are_loaded_or_refused_with_places(text in mutated_example(), seed in any::<u64>()) {
        if let Some(w) = load_checked(&text) {
            render_some(&w, seed);
        }
    }

    #[test]
    fn templates_of_any_text_never_panic(path in "/[ -~]{0,80}", header in "[ -~\t\r\n]{0,40}") {
        let text = format!(
            "pools: {{p: {{values: [x]}}}}\nrequests:\n  - name: a\n    weight: 1\n    method: GET\n    path: {}\n    headers:\n      X-A: {}\n",
            serde_json::to_string(&path).unwrap(),
            serde_json::to_string(&header).unwrap(),
        );
        if let Some(w) = load_checked(&text) {
            render_some(&w, 2);
        }
    }

    #[test]
    fn hostile_answers_never_break_a_rendered_request(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        id in any::<String>(),
        location in proptest::collection::vec(any::<u8>(), 0..60),
        status in 100u16..600,
    ) {
        let w = workload::load_str(
            "f.yaml",
            "pools: {ids: ~, urls: ~}\nrequests:\n  - name: make\n    weight: 1\n    method: POST\n    path: /\n    capture: [{pool: ids, json: /id}, {pool: urls, header: Location}]\n  - name: use\n    weight: 1\n    method: POST\n    path: '/{{ pool(ids) }}'\n    headers: {X-Url: '{{ pool(urls) }}', X-Id: '{{ pool(ids) }}'}\n    body: {id: '{{ pool(ids) }}', note: 'at {{ pool(urls) }}'}\n    fallback: make\n",
            &options(),
        ).unwrap();
        let mut state = RunState::new(&w);
        let make = w.find("make").unwrap();
        let json = serde_json::json!({"id": id}).to_string();
        for answer_body in [&body[..], json.as_bytes()] {
            let headers: [(&str, &[u8]); 1] = [("location", &location)];
            w.capture(make, status, &headers, Some(answer_body), &mut state);
        }
        let mut rng = SmallRng::seed_from_u64(3);
        let mut out = Vec::new();
        let use_id = w.find("use").unwrap();
        for _ in 0..6 {
            let Draw::Send(chosen) = w.resolve(use_id, &mut rng, &state) else { continue };
            w.render(&chosen, &mut rng, &mut state, &mut out);
            assert_head_is_sound(&out);
            if chosen.request() != use_id {
                // Nothing was captured: the fallback, without a body, went instead.
                continue;
            }
            let start = out.windows(4).position(|x| x == b"\r\n\r\n").unwrap() + 4;
            let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out[start..]);
            prop_assert!(parsed.is_ok(), "body not JSON: {:?}", String::from_utf8_lossy(&out[start..]));
            let line = out.split(|b| *b == b'\r').next().unwrap();
            prop_assert!(line.iter().filter(|b| **b == b' ').count() == 2, "request line {:?}", String::from_utf8_lossy(line));
        }
    }
}
