//! Logins that recover (issue 25), against the demo target's own counts: a
//! login that fails while its service starts is tried again with a backoff
//! and the traffic flows once it works; tokens that expire are replaced on
//! the first 401, or before they expire from the answer's `expires_in`;
//! many 401s at once bring one login; a login that never works backs off
//! to its cap without flooding the log; a journey's own login step runs
//! again when a later step is refused. `/status` shows it all meanwhile.

use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::workload::TempFile;

/// A setup login into a pool of one token, and one request that sends it.
/// `every` is a line for `setup:` (or empty); `query` one for the request.
fn login_workload(every: &str, query: &str) -> String {
    format!(
        "pools:\n  token: {{size: 1}}\nsetup:\n{every}  requests:\n    - name: login\n      method: POST\n      path: /login\n      body: {{username: ann, password: demo}}\n      capture: {{pool: token, json: /token}}\nrequests:\n  - name: get_account\n    weight: 1\n    method: GET\n    path: /account\n{query}    headers:\n      Authorization: \"Bearer {{{{ pool(token) }}}}\"\n"
    )
}

fn sidecar_on(target: &Proc, workload: &TempFile, extra: &[(&str, &str)]) -> Proc {
    let mut env = vec![("WORKLOAD_FILE", workload.path())];
    env.extend_from_slice(extra);
    start_sidecar(target, &env)
}

fn target_says(target: &Proc, route: &str, code: &str) -> u64 {
    let samples = parse_metrics(&target.get("/metrics").body);
    sum(&samples, "demo_target_requests_total", &[("route", route), ("code", code)]) as u64
}

/// Successful logins the demo target counted.
fn logins(target: &Proc) -> u64 {
    target.get_json("/stats/logins")["total"].as_u64().expect("total")
}

/// The sidecar's log lines whose message starts with `start`.
fn lines_starting(sidecar: &Proc, start: &str) -> Vec<serde_json::Value> {
    sidecar.logs_matching(|v| v["message"].as_str().is_some_and(|m| m.starts_with(start)))
}

#[test]
fn a_login_that_fails_while_its_service_starts_is_retried_and_the_traffic_flows_within_7_s() {
    let _timing = timing_test();
    // The auth service answers 503 for the first 5 s of its life.
    let target = start_demo_target(&["--login-fail-secs", "5"]);
    let start = Instant::now();
    let workload = TempFile::new("login.yaml", login_workload("", "").as_bytes());
    let sidecar = sidecar_on(&target, &workload, &[("STEADY_RPS", "50"), ("STATS_INTERVAL_SECS", "1")]);
    let mut failing_seen: Option<serde_json::Value> = None;
    let mut flowing_after = None;
    while start.elapsed() < Duration::from_secs(10) {
        let status = sidecar.get_json("/status");
        if status["setup"]["state"] == "failing" && failing_seen.is_none() {
            failing_seen = Some(status.clone());
        }
        if target_says(&target, "account", "200") > 0 {
            flowing_after = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let flowing_after = flowing_after.unwrap_or_else(|| panic!("no traffic in 10 s:\n{}", sidecar.output()));
    assert!(flowing_after <= Duration::from_secs(7), "traffic flowed {flowing_after:?} after the start");
    // Meanwhile /status said so, with the reason and the next try.
    let failing = failing_seen.unwrap_or_else(|| panic!("/status never showed the failing setup"));
    let setup = &failing["setup"];
    assert!(setup["last_error"].as_str().is_some_and(|e| e.contains("503")), "{setup}");
    assert!(setup["attempts"].as_u64().is_some_and(|n| n >= 1), "{setup}");
    assert!(setup["next_try_in_secs"].as_f64().is_some_and(|s| s <= 1.5), "{setup}");
    assert!(failing["stats"]["unmet"].as_u64().is_some_and(|n| n > 0), "requests were unmet: {failing}");
    // Once a request went through with the token, the setup shows as working.
    let ok = eventually(Duration::from_secs(5), || {
        let s = sidecar.get_json("/status")["setup"].clone();
        s["state"] == "ok" && s["attempts"] == 0 && s["runs_ok"] == 1
    });
    assert!(ok, "{}", sidecar.get_json("/status")["setup"]);
    // A line per failed try, and no more; the unmet traffic and the
    // stats line said it too.
    let failed_tries = target_says(&target, "login", "503");
    assert!(failed_tries >= 3, "{failed_tries} tries in 5 s");
    assert_eq!(lines_starting(&sidecar, "setup failed").len() as u64, failed_tries, "{}", sidecar.output());
    assert!(!lines_starting(&sidecar, "requests not sent").is_empty(), "{}", sidecar.output());
    let stats = sidecar.logs_matching(|v| v["message"] == "stats" && v["setup"] == "failing");
    assert!(stats.iter().any(|l| l["unmet"].as_u64().is_some_and(|n| n > 0)), "{}", sidecar.output());
    assert_eq!(logins(&target), 1);
}

#[test]
fn expired_tokens_are_replaced_on_their_first_401_or_refreshed_before_they_expire() {
    let _timing = timing_test();
    // Tokens live 3 s; a run of 13 s sees four expiries. JITTER=0: the
    // requests are 20 ms apart, so one is in flight when a token expires.
    let on_401 = start_demo_target(&["--token-ttl-secs", "3"]);
    let refreshed = start_demo_target(&["--token-ttl-secs", "3"]);
    let plain = TempFile::new("relogin.yaml", login_workload("", "").as_bytes());
    let every = "  every_secs: {json: /expires_in, fraction: 0.8}\n";
    let refresh = TempFile::new("refresh.yaml", login_workload(every, "").as_bytes());
    let env = [("STEADY_RPS", "50"), ("JITTER", "0")];
    let a = sidecar_on(&on_401, &plain, &env);
    let b = sidecar_on(&refreshed, &refresh, &env);
    std::thread::sleep(Duration::from_secs(13));
    pause_and_settle(&a);
    pause_and_settle(&b);

    let (setup_a, refused_a) = (a.get_json("/status")["setup"].clone(), target_says(&on_401, "account", "401"));
    let relogins = setup_a["relogins"].as_u64().expect("relogins");
    assert!(relogins >= 3, "tokens expired at least 3 times in 13 s: {setup_a}");
    assert_eq!(logins(&on_401), relogins + 1, "one login per expiry: {setup_a}");
    assert!(refused_a <= relogins, "{refused_a} answers 401 for {relogins} expiries");
    assert!(target_says(&on_401, "account", "200") > 500, "the traffic went on");

    let setup_b = b.get_json("/status")["setup"].clone();
    assert_eq!(target_says(&refreshed, "account", "401"), 0, "refreshed before expiry: {setup_b}");
    assert_eq!(setup_b["relogins"], 0);
    assert_eq!(setup_b["every_secs"].as_f64(), Some(2.4), "0.8 of expires_in 3: {setup_b}");
    assert!(logins(&refreshed) >= 5, "refreshed every 2.4 s: {setup_b}");
    assert!(target_says(&refreshed, "account", "200") > 500);
}

#[test]
fn a_thousand_requests_refused_at_once_bring_exactly_one_new_login() {
    let _heavy = heavy_test();
    raise_own_open_file_limit();
    let target = start_demo_target(&[]);
    // Each answer takes 2 s: at 600/s, about 1 200 are in flight.
    let slow = "    query: {delay_ms: 2000}\n";
    let workload = TempFile::new("slow.yaml", login_workload("", slow).as_bytes());
    let env = [("INITIAL_MODE", "pause"), ("MAX_IN_FLIGHT", "2000"), ("MEMORY_BUDGET_MB", "1024")];
    let sidecar = sidecar_on(&target, &workload, &env);
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 600}"#)).status, 200);
    // The token has been taken (answers came back with it), and a thousand
    // requests that carry it are waiting for their answers.
    let loaded = eventually(Duration::from_secs(15), || {
        target_says(&target, "account", "200") > 0
            && sidecar.get_json("/status")["in_flight"].as_u64().is_some_and(|n| n >= 1_000)
    });
    assert!(loaded, "{}", sidecar.get_json("/status"));
    // The auth service forgets every token: all in flight will be refused.
    assert_eq!(target.post("/admin/revoke-tokens", None).status, 200);
    let refused = eventually(Duration::from_secs(10), || target_says(&target, "account", "401") >= 1_000);
    assert!(refused, "{} refused", target_says(&target, "account", "401"));
    // Every request sent with the old token has been answered 2 s later.
    std::thread::sleep(Duration::from_millis(2_500));
    pause_and_settle(&sidecar);
    assert_eq!(logins(&target), 2, "the first login and exactly one more");
    let setup = sidecar.get_json("/status")["setup"].clone();
    assert_eq!((setup["relogins"].as_u64(), setup["state"].as_str()), (Some(1), Some("ok")), "{setup}");
    assert!(target_says(&target, "account", "200") > 500, "the new token is used");
}

#[test]
fn a_login_that_never_works_backs_off_to_its_cap_with_a_line_per_try_and_flat_memory() {
    let _timing = timing_test();
    let target = start_demo_target(&["--login-fail-secs", "100000"]);
    let workload = TempFile::new("never.yaml", login_workload("", "").as_bytes());
    let sidecar = sidecar_on(&target, &workload, &[("STEADY_RPS", "100")]);
    assert!(
        eventually(Duration::from_secs(10), || lines_starting(&sidecar, "setup failed").len() >= 4),
        "{}",
        sidecar.output()
    );
    let rss_before = rss_kib(sidecar.pid());
    // Nominal tries at 0, 1, …, 6, 8, 12, 20, 36 s: the try at 36 s waits the cap.
    let capped = |l: &serde_json::Value| l["retry_in_secs"].as_f64().is_some_and(|s| s >= 27.0);
    let reached = eventually(Duration::from_secs(60), || lines_starting(&sidecar, "setup failed").iter().any(capped));
    assert!(reached, "{}", sidecar.output());
    let rss_after = rss_kib(sidecar.pid());

    let tries = lines_starting(&sidecar, "setup failed");
    let nominal = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0];
    assert_eq!(tries.len(), nominal.len(), "{tries:#?}");
    for (i, (line, want)) in tries.iter().zip(nominal).enumerate() {
        assert_eq!(line["attempt"].as_u64(), Some(i as u64 + 1), "{line}");
        let wait = line["retry_in_secs"].as_f64().expect("retry_in_secs");
        assert!(
            (wait - want).abs() <= want * 0.1 + 0.05 && wait <= 30.0,
            "try {}: waits {wait} s, not {want} s",
            i + 1
        );
    }
    // Each try came when the previous line said.
    for pair in tries.windows(2) {
        let (said, gap) = (pair[0]["retry_in_secs"].as_f64().unwrap(), secs_between(&pair[0], &pair[1]));
        assert!((gap - said).abs() < 0.5, "said {said} s, came after {gap} s");
    }
    // A line per try and no more: the target saw as many.
    assert_eq!(target_says(&target, "login", "503"), tries.len() as u64);
    let warnings = sidecar.logs_matching(|v| v["level"] == "warn").len();
    let notices = 1 + secs_between(&tries[0], &tries[tries.len() - 1]) as usize / 10;
    assert!(warnings <= tries.len() + notices, "{warnings} warnings:\n{}", sidecar.output());
    let status = sidecar.get_json("/status");
    let setup = &status["setup"];
    assert_eq!((setup["state"].as_str(), setup["attempts"].as_u64()), (Some("failing"), Some(11)), "{setup}");
    assert!(setup["next_try_in_secs"].as_f64().is_some_and(|s| s <= 30.0), "{setup}");
    assert!(status["stats"]["unmet"].as_u64().is_some_and(|n| n > 3_000), "{status}");
    // 3 000 unmet requests and 30 s later, memory is where it was.
    assert!(rss_after <= rss_before + 3 * 1024, "RSS {rss_before} KiB → {rss_after} KiB");
}

#[test]
fn a_journey_logs_in_again_when_a_later_step_is_refused_and_completes() {
    let _timing = timing_test();
    // Tokens live 2 s; a journey reads its account at about 1.2, 2.4 and
    // 3.6 s after its login, so every instance meets an expired token.
    let target = start_demo_target(&["--token-ttl-secs", "2"]);
    let account = "      - pause: 1200ms\n      - name: account\n        method: GET\n        path: /account\n        headers: {Authorization: 'Bearer {{ var(token) }}'}\n";
    let text = format!(
        "journeys:\n  - name: member\n    weight: 1\n    steps:\n      - name: login\n        method: POST\n        path: /login\n        body: {{username: ann, password: demo}}\n        capture: {{var: token, json: /token}}\n{}",
        account.repeat(3).replacen("name: account", "name: first", 1).replacen("name: account", "name: second", 1)
    );
    let workload = TempFile::new("journey-login.yaml", text.as_bytes());
    let sidecar = sidecar_on(&target, &workload, &[("STEADY_RPS", "5")]);
    std::thread::sleep(Duration::from_secs(7));
    // Paused, the instances still running end as `stopped`.
    pause_and_settle(&sidecar);
    let journeys = sidecar.get_json("/status")["journeys"].clone();
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("not a count in {journeys}"));
    let (started, completed, stopped) =
        (count(&journeys["started"]), count(&journeys["completed"]), count(&journeys["ended_early"]["stopped"]));
    assert!(completed >= 5, "{journeys}");
    assert_eq!(started, completed + stopped, "none ended on a 401: {journeys}");
    let relogins = count(&journeys["relogins"]);
    assert!(relogins >= completed, "each completed instance logged in again: {journeys}");
    // One login again per 401; a 401 that came after the pause ended its
    // instance starts none (at most one step of a stopped instance was in flight).
    let refused = target_says(&target, "account", "401");
    assert!((relogins..=relogins + stopped).contains(&refused), "{refused} answers 401: {journeys}");
    let logged_in = logins(&target);
    assert!((started + relogins - stopped..=started + relogins).contains(&logged_in), "{logged_in} logins: {journeys}");
}
