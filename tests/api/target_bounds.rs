//! What a target can send: answers curl accepts are accepted (RFC 9112
//! leniency), and no part of an answer can grow our memory (issue 16 item 7).

use std::time::Duration;

use crate::helpers::*;
use crate::scripted::{Action, ScriptedTarget, metrics_of, ok_answer};

/// Runs a sidecar at 20/s of `GET /orders` against a target answering every
/// request with `answer`, until `n` requests completed; returns the stats.
fn stats_against(answer: Vec<u8>, n: u64) -> serde_json::Value {
    let target = ScriptedTarget::start(move |_, _| Action::Answer(answer.clone()));
    let extra = [("INITIAL_MODE", "burst"), ("MIX", "list_orders=1"), ("REQUEST_TIMEOUT_MS", "1000")];
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "total") >= n), "{}", sidecar.output());
    sidecar.post("/mode/pause", None);
    assert!(eventually(Duration::from_secs(5), || sidecar.get_json("/status")["in_flight"] == 0));
    sidecar.get_json("/status")["stats"].clone()
}

fn head_with_pad(len: usize) -> Vec<u8> {
    let start = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: ";
    let end = "\r\n\r\nok";
    format!("{start}{}{end}", "a".repeat(len - start.len() - end.len() + 2)).into_bytes()
}

#[test]
fn answers_that_curl_accepts_are_answers() {
    let many_lines: String = (0..100).map(|i| format!("X-Line-{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("obsolete line folding", b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        ("100 header lines", format!("HTTP/1.1 200 OK\r\n{many_lines}Content-Length: 2\r\n\r\nok").into_bytes()),
        ("Content-Length: 2, 2", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok".to_vec()),
        ("a space before the colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok".to_vec()),
        ("chunk lines ending in LF", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n".to_vec()),
        ("a 60 KB head", head_with_pad(60_000)),
    ];
    for (case, answer) in cases {
        let stats = stats_against(answer, 10);
        assert_eq!(stats["failed"], 0, "{case}: {stats}");
    }
    // Over the 64 KiB head limit: refused, however the bytes arrive.
    let stats = stats_against(head_with_pad(70_000), 10);
    assert_eq!(stats["successful"], 0, "a 70 KB head: {stats}");
}

#[test]
fn created_ids_keep_their_text_and_the_last_repeated_key_counts() {
    let answer = ok_answer("201 Created", &[], r#"{"id":1,"status":"created","id":18446744073709551616}"#);
    let target = ScriptedTarget::start(move |_, _| Action::Answer(answer.clone()));
    let extra = [("INITIAL_MODE", "burst"), ("MIX", "create_order=1,get_order=3")];
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    let wanted = "GET /orders/18446744073709551616 HTTP/1.1";
    let found = eventually(Duration::from_secs(10), || target.request_lines().iter().any(|l| l == wanted));
    let other_reads: Vec<String> =
        target.request_lines().into_iter().filter(|l| l.starts_with("GET /orders/") && l != wanted).collect();
    assert!(found, "no {wanted:?} among {:?}", target.request_lines());
    assert!(other_reads.is_empty(), "reads of other ids: {other_reads:?}");
    drop(sidecar);
}

#[test]
fn no_part_of_an_answer_grows_memory() {
    let x_pad = |n: usize| format!("X-Pad-{n}: {}\r\n", "a".repeat(200)).into_bytes();
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("interim 100 Continue heads", Vec::new(), b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
        ("an endless head", b"HTTP/1.1 200 OK\r\n".to_vec(), x_pad(0).repeat(10)),
        (
            "endless trailers",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec(),
            x_pad(1).repeat(10),
        ),
        (
            "endless chunk extensions",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            format!("1;ext={}\r\nx\r\n", "e".repeat(1000)).into_bytes().repeat(4),
        ),
    ];
    for (case, head, unit) in cases {
        let target = ScriptedTarget::start(move |_, _| Action::Stream { head: head.clone(), unit: unit.clone() });
        let extra = [("INITIAL_MODE", "burst"), ("MIX", "list_orders=1"), ("REQUEST_TIMEOUT_MS", "3000")];
        let mut sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
        assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "total") >= 10), "{case}");
        let baseline = rss_kib(sidecar.pid());
        assert!(eventually(Duration::from_secs(15), || stat(&sidecar, "total") >= 70), "{case}");
        let after = rss_kib(sidecar.pid());
        assert!(sidecar.is_running(), "{case}");
        let status = sidecar.get_json("/status");
        eprintln!("{case}: RSS {baseline} -> {after} KiB; {}", status["stats"]);
        assert_eq!(status["stats"]["successful"], 0, "{case}: {status}");
        let samples = metrics_of(&sidecar);
        let other = sum(&samples, "trafficgen_request_errors_total", &[("kind", "other")]);
        assert!(other >= 60.0, "{case}: refused as malformed, not timed out: {other} of {}", status["stats"]);
        assert!(after < baseline + 4096, "{case}: RSS grew from {baseline} to {after} KiB");
    }
}
