//! Connection reuse against targets that close kept-alive connections: the
//! one retry, the `reused` kind, Keep-Alive: timeout=N, and the rate of new
//! connections.
//!
//! They must pass on a busy 2-core machine: a starved engine sends late
//! requests together (more connections at once), and a starved target
//! answers late. So no test takes a slow answer for a failure (a request
//! timeout far beyond any stall), none runs beside a heavy test, and reuse is
//! judged by proportions that hold however requests bunch.

use std::time::Duration;

use crate::helpers::*;
use crate::scripted::{Action, ScriptedTarget, metrics_of, ok_answer};

fn created() -> Vec<u8> {
    ok_answer("201 Created", &["Content-Type: application/json"], r#"{"id":1}"#)
}

/// A request timeout no stall of a busy machine reaches: here a failure
/// is the client's, never the machine's.
const PATIENT: (&str, &str) = ("REQUEST_TIMEOUT_MS", "30000");

/// Pauses the sidecar and waits until nothing is in flight, so counts hold still.
fn settle(sidecar: &Proc) {
    sidecar.post("/mode/pause", None);
    assert!(eventually(Duration::from_secs(10), || sidecar.get_json("/status")["in_flight"] == 0));
}

#[test]
fn a_target_closing_kept_alive_connections_as_requests_arrive_costs_no_failures() {
    let _timing = timing_test();
    for (action, reason) in [(Action::Close, "closed"), (Action::Reset, "reset")] {
        // Every connection answers its first request, then closes just as the
        // second arrives: the race between an idle close and our next request.
        let target = ScriptedTarget::start(move |_, i| if i == 0 { Action::Answer(created()) } else { action.clone() });
        let extra = [("INITIAL_MODE", "burst"), ("MIX", "create_order=1"), PATIENT];
        let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
        assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "total") >= 40), "{}", sidecar.output());
        settle(&sidecar);
        let status = sidecar.get_json("/status");
        let total = status["stats"]["total"].as_u64().unwrap();
        assert_eq!(status["stats"]["failed"], 0, "{reason}: the target's idle closes counted as failures: {status}");
        // The target counts an answer just after writing it, so its count may
        // trail ours by the last answers for a moment: poll.
        let answered = eventually(Duration::from_secs(5), || target.answered() as u64 == total);
        assert!(answered, "{reason}: every request answered once: {} answers, {total} requests", target.answered());
        let samples = metrics_of(&sidecar);
        let retries = sum(&samples, "trafficgen_connection_retries_total", &[("reason", reason)]);
        assert!(retries >= (total / 4) as f64, "{reason}: {retries} retries for {total} requests");
        assert_eq!(sum(&samples, "trafficgen_connection_retries_total", &[]), retries, "{reason}: other reasons");
    }
}

#[test]
fn a_kept_alive_connection_breaking_mid_answer_is_kind_reused_and_never_resent() {
    let _timing = timing_test();
    let partial = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec();
    let script_partial = partial.clone();
    let target = ScriptedTarget::start(move |_, i| {
        if i == 0 { Action::Answer(created()) } else { Action::AnswerAndClose(script_partial.clone()) }
    });
    let extra = [("INITIAL_MODE", "burst"), ("MIX", "create_order=1"), PATIENT];
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "failed") >= 10), "{}", sidecar.output());
    settle(&sidecar);
    let samples = metrics_of(&sidecar);
    let failed = stat(&sidecar, "failed") as f64;
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "reused")]), failed, "all reused");
    assert_eq!(sum(&samples, "trafficgen_connection_retries_total", &[]), 0.0, "an answer had begun: no resend");
    assert_eq!(target.request_lines().len() as u64, stat(&sidecar, "total"), "each request sent once");
    drop(sidecar);

    // The same break on a fresh connection is the target's: kind="other".
    let target = ScriptedTarget::start(move |_, _| Action::AnswerAndClose(partial.clone()));
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "failed") >= 10));
    settle(&sidecar);
    let samples = metrics_of(&sidecar);
    let failed = stat(&sidecar, "failed") as f64;
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "other")]), failed);
    assert_eq!(sum(&samples, "trafficgen_request_errors_total", &[("kind", "reused")]), 0.0);
}

#[test]
fn idle_connections_are_reused_at_2_per_second_and_closed_ahead_of_keep_alive_timeout() {
    let _timing = timing_test();
    // At 2/s (gaps of 0.4-0.6 s) one connection carries the load; a stall
    // that bunches requests opens a few more, but most requests reuse one.
    let target = ScriptedTarget::start(|_, _| Action::Answer(created()));
    let extra = [("INITIAL_MODE", "steady"), ("MIX", "create_order=1"), PATIENT];
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    assert!(eventually(Duration::from_secs(15), || stat(&sidecar, "total") >= 12));
    settle(&sidecar);
    let (total, connections) = (stat(&sidecar, "total"), target.connections());
    eprintln!("2 req/s: {total} requests over {connections} connections");
    assert!(connections as u64 * 3 <= total, "{connections} connections for {total} requests at 2/s");
    assert_eq!(stat(&sidecar, "failed"), 0);
    drop(sidecar);

    // `Keep-Alive: timeout=1`: closed after 0.75 s idle, so at 1/s (no
    // jitter) every request needs a new connection; one kept for the
    // default 1.5 s would carry them all. Two requests a stall sent
    // together may share one, so judge the share, not every request.
    let with_timeout = ok_answer("201 Created", &["Keep-Alive: timeout=1"], r#"{"id":1}"#);
    let target = ScriptedTarget::start(move |_, _| Action::Answer(with_timeout.clone()));
    let extra = [("INITIAL_MODE", "steady"), ("STEADY_RPS", "1"), ("JITTER", "0"), ("MIX", "create_order=1"), PATIENT];
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    assert!(eventually(Duration::from_secs(15), || stat(&sidecar, "total") >= 6));
    settle(&sidecar);
    let (total, connections) = (stat(&sidecar, "total") as usize, target.connections());
    eprintln!("1 req/s, Keep-Alive: timeout=1: {total} requests over {connections} connections");
    assert!(
        connections * 4 >= total * 3,
        "{connections} connections for {total} requests: connections were kept past 3/4 of the target's Keep-Alive timeout"
    );
    assert_eq!(stat(&sidecar, "failed"), 0);
    drop(sidecar);

    // KEEP_ALIVE_MS=0: never reused.
    let target = ScriptedTarget::start(|_, _| Action::Answer(created()));
    let extra = [("INITIAL_MODE", "burst"), ("KEEP_ALIVE_MS", "0"), ("MIX", "create_order=1"), PATIENT];
    let sidecar = Proc::start(&[], &sidecar_env(&target.url(), &extra));
    assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "total") >= 20));
    settle(&sidecar);
    assert_eq!(target.connections(), stat(&sidecar, "total") as usize);
}
