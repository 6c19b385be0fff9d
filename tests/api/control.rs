//! The control API: every bad input gets a JSON 4xx and changes nothing.

use std::time::Duration;

use crate::helpers::*;

/// (method, path, headers, body, expected status, words the error must contain)
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Option<&'a str>, u16, &'a str);

#[test]
fn bad_input_gets_a_json_error_and_changes_nothing() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "burst"), ("MAX_RPS", "500")]);
    let big = format!(r#"{{"rps": 1, "pad": "{}"}}"#, "x".repeat(10_000));
    let cases: &[Case] = &[
        ("POST", "/mode/turbo", &[], None, 404, "valid modes: steady, burst, overload, pause, custom, users"),
        ("POST", "/mode/", &[], None, 404, "no such endpoint"),
        ("POST", "/mode/custom", &[], None, 400, "needs a body"),
        ("POST", "/mode/custom", &[], Some("{\"rps\": 25"), 400, "not valid JSON"),
        ("POST", "/mode/custom", &[], Some("rps=25"), 400, "not valid JSON"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": NaN}"#), 400, "not valid JSON"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": Infinity}"#), 400, "not valid JSON"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": 1e999}"#), 400, "rps"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": -5}"#), 422, "negative"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": 501}"#), 422, "MAX_RPS (500)"),
        // Quoted short, not as 309 digits.
        ("POST", "/mode/custom", &[], Some(r#"{"rps": 1e308}"#), 422, "rps 1e308 exceeds MAX_RPS (500)"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": 10, "ramp_secs": 1e300}"#), 422, "not 1e300"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": "25"}"#), 422, "invalid type"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": null}"#), 422, "invalid type"),
        ("POST", "/mode/custom", &[], Some(r#"{"rate": 25}"#), 422, "unknown field"),
        ("POST", "/mode/custom", &[], Some(r#"{"rps": 25, "extra": 1}"#), 422, "unknown field"),
        ("POST", "/mode/custom", &[], Some("[25]"), 422, "JSON object"),
        ("POST", "/mode/custom", &[], Some(&big), 413, "larger than 4096 bytes"),
        ("POST", "/mode/steady", &[], Some(r#"{"rps": 50}"#), 422, "takes no body"),
        ("GET", "/mode/steady", &[], None, 405, "allowed: POST"),
        ("DELETE", "/status", &[], None, 405, "allowed: GET"),
        ("POST", "/health", &[], None, 405, "allowed: GET"),
        ("PUT", "/mode/custom", &[], Some(r#"{"rps": 5}"#), 405, "allowed: POST"),
        ("GET", "/admin", &[], None, 404, "no such endpoint"),
        ("POST", "/mode/overload", &[("Origin", "http://evil.example")], None, 403, "cross-origin"),
        ("POST", "/mode/overload", &[("Origin", "null")], None, 403, "cross-origin"),
        (
            "POST",
            "/mode/custom",
            &[("Origin", "http://evil.example"), ("Content-Type", "text/plain")],
            Some(r#"{"rps": 5}"#),
            403,
            "cross-origin",
        ),
    ];
    for (method, path, headers, body, status, words) in cases {
        let res = request(sidecar.addr, method, path, headers, *body);
        assert_eq!(res.status, *status, "{method} {path} {body:?}: {}", res.body);
        assert_no_cors_headers(&res, &format!("{method} {path}"));
        if *status == 405 {
            let allowed = if path.starts_with("/mode/") { "POST" } else { "GET, HEAD" };
            assert_eq!(res.headers.get("allow").map(String::as_str), Some(allowed), "{method} {path}: Allow header");
        }
        assert!(
            res.headers.get("content-type").is_some_and(|c| c.contains("application/json")),
            "{method} {path}: not JSON"
        );
        let error = res.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no error field: {}", res.body))
            .to_string();
        assert!(error.contains(words), "{method} {path}: error {error:?} should mention {words:?}");
        let status = sidecar.get_json("/status");
        assert_eq!(
            (status["mode"].as_str(), status["rps"].as_f64()),
            (Some("burst"), Some(20.0)),
            "after {method} {path}"
        );
    }
    let switches = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&switches, "trafficgen_mode_switches_total", &[]), 0.0);
}

/// "No CORS headers are ever sent" (README): a browser page on another
/// origin can neither read an answer nor be told it may send more.
fn assert_no_cors_headers(res: &Response, what: &str) {
    let cors: Vec<&String> = res.headers.keys().filter(|k| k.starts_with("access-control-")).collect();
    assert!(cors.is_empty(), "{what}: CORS headers {cors:?}");
}

#[test]
fn no_cors_headers_even_for_a_preflight_or_a_good_request() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    let evil = [("Origin", "http://evil.example"), ("Access-Control-Request-Method", "POST")];
    for (method, path) in
        [("OPTIONS", "/mode/overload"), ("OPTIONS", "/status"), ("GET", "/status"), ("GET", "/metrics")]
    {
        let res = request(sidecar.addr, method, path, &evil, None);
        assert_no_cors_headers(&res, &format!("{method} {path}"));
        if method == "OPTIONS" {
            assert_eq!(res.status, 405, "{method} {path}: {}", res.body);
        }
    }
    let res = sidecar.post("/mode/burst", None);
    assert_eq!(res.status, 200);
    assert_no_cors_headers(&res, "POST /mode/burst");
    assert_no_cors_headers(&sidecar.get("/health"), "GET /health");
}

#[test]
fn good_input_switches_and_is_reported() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    // Same origin is fine (a future embedded dashboard); so is any content type.
    let own_origin = format!("http://{}", sidecar.addr);
    let res = request(
        sidecar.addr,
        "POST",
        "/mode/custom",
        &[("Origin", &own_origin), ("Content-Type", "text/plain")],
        Some(r#"{"rps": 12.5}"#),
    );
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json(), serde_json::json!({"mode": "custom", "rps": 12.5}));
    for (mode, rps) in [("steady", 2), ("burst", 20), ("overload", 100), ("pause", 0)] {
        let res = sidecar.post(&format!("/mode/{mode}"), None);
        assert_eq!(res.json(), serde_json::json!({"mode": mode, "rps": rps}));
        let status = sidecar.get_json("/status");
        assert_eq!(status["mode"], mode);
        assert_eq!(status["rps"], rps);
    }
    // Repeating the current mode changes nothing and is not a switch.
    sidecar.post("/mode/pause", None);
    let samples = parse_metrics(&sidecar.get("/metrics").body);
    assert_eq!(sum(&samples, "trafficgen_mode_switches_total", &[]), 5.0);
    assert_eq!(sum(&samples, "trafficgen_mode", &[("mode", "pause")]), 1.0);
    assert_eq!(sum(&samples, "trafficgen_mode", &[]), 1.0, "exactly one mode is current");
    let modes = sidecar.get_json("/modes");
    assert_eq!(modes["modes"]["burst"], 20);
    assert_eq!(modes["custom"]["max_rps"], 1000);
}

#[test]
fn status_and_health_have_the_contract_shape() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("WARMUP_SECS", "30")]);
    // Byte for byte, as the contract and the README print it.
    assert_eq!(sidecar.get("/health").body, r#"{"status":"healthy","service":"traffic-generator"}"#);
    let mut status = sidecar.get_json("/status");
    let uptime = status["uptime_secs"].take().as_f64().expect("uptime_secs is a number");
    assert!((0.0..10.0).contains(&uptime), "uptime {uptime}");
    // The control port's own bounds and counters, checked on their own.
    let limits = status.as_object_mut().and_then(|s| s.remove("limits")).expect("limits");
    assert_eq!(limits["control_max_connections"], 256, "{limits}");
    assert_eq!(limits["control_request_timeout_ms"], 5000, "{limits}");
    assert_eq!(limits["reserved_descriptors"]["engine"], 512, "{limits}");
    assert!(limits["open_files"].as_u64() >= Some(512 + 258 + 64), "{limits}");
    let connections = status.as_object_mut().and_then(|s| s.remove("control_connections")).expect("connections");
    assert!(connections["open"].as_u64() >= Some(1) && connections["accepted"].as_u64() >= Some(2), "{connections}");
    assert_eq!((connections["evicted"].clone(), connections["timed_out"].clone()), (0.into(), 0.into()));
    // Latency of the last 10 s: nothing answered yet, every name present.
    let latency = status.as_object_mut().and_then(|s| s.remove("latency")).expect("latency");
    assert_eq!(latency["overall"]["from_scheduled"]["count"], 0, "{latency}");
    assert_eq!(latency["overall"]["from_sent"]["p99"], serde_json::Value::Null, "{latency}");
    for name in ["create_order", "list_orders", "get_order"] {
        assert_eq!(latency["by_name"][name]["from_sent"]["count"], 0, "{latency}");
    }
    // The per-request table: every request of the workload, nothing yet.
    let requests = status.as_object_mut().and_then(|s| s.remove("requests")).expect("requests");
    assert_eq!(
        (requests["total_rps"].as_f64(), requests["window_secs"].as_f64()),
        (Some(0.0), Some(0.0)),
        "{requests}"
    );
    for name in ["create_order", "list_orders", "get_order"] {
        let row = &requests["by_name"][name];
        assert_eq!(
            (row["rps"].as_f64(), row["successful"].as_u64(), row["failed"].as_u64()),
            (Some(0.0), Some(0), Some(0))
        );
        assert!(row["failures"].as_object().is_some_and(|f| f.values().all(|n| n == 0)), "{row}");
    }
    let zero = serde_json::json!({"total": 0, "successful": 0, "failed": 0});
    // Every value, not only the keys: the settings as configured, nothing sent yet.
    assert_eq!(
        status,
        serde_json::json!({
            "mode": "steady", "model": "open", "rps": 2, "state": "warming_up", "uptime_secs": null,
            // Nothing asked during the warm-up; alone, the cluster is this replica.
            "target_rps": 0.0, "cluster_target_rps": 0.0, "cluster_achieved_rps": 0.0, "replicas": 1,
            "target_url": format!("http://{}", target.addr), "order_ids_buffered": 0, "pools": {"order_ids": 0},
            "achieved_rps": 0.0, "in_flight": 0, "max_in_flight": 512, "max_rps": 1000,
            "mix": "create_order=60,list_orders=25,get_order=15",
            "stats": {"total": 0, "successful": 0, "failed": 0, "dropped": 0, "unmet": 0, "capture_failures": 0,
                      "by_endpoint": {"create_order": zero, "list_orders": zero, "get_order": zero}},
            "setup": {"state": "none", "running": false, "attempts": 0, "runs_ok": 0, "runs_failed": 0,
                      "relogins": 0, "last_error": null, "next_try_in_secs": null, "every_secs": null},
            "job": null,
            "journeys": {"arrivals": 0, "active": 0, "max_active": 10000, "started": 0, "completed": 0,
                         "ended_early": {"no_answer": 0, "not_success": 0, "stopped": 0, "unmet": 0},
                         "dropped": {"max_journeys": 0, "no_data": 0}, "relogins": 0,
                         "duration_ms": {"count": 0, "p50": null, "p90": null, "p95": null, "p99": null, "max": null},
                         "mean_duration_ms": null, "by_journey": {}},
            "users": {"target": 0, "target_here": 0, "active": 0, "finishing": 0, "max_users": 1000, "pause": "1s"}
        })
    );
    // The same sidecar, running: the values follow what happened.
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps": 50}"#)).status, 200);
    assert!(eventually(Duration::from_secs(5), || stat(&sidecar, "total") >= 40));
    pause_and_settle(&sidecar);
    let status = sidecar.get_json("/status");
    let stats = &status["stats"];
    assert_eq!(
        (status["mode"].as_str(), status["rps"].as_f64(), status["state"].as_str()),
        (Some("pause"), Some(0.0), Some("paused"))
    );
    assert!(status["uptime_secs"].as_f64() > Some(uptime), "{status}");
    assert_eq!(stats["total"], target_count(&target, None), "{status}");
    assert_eq!(
        (stats["successful"].clone(), stats["failed"].clone(), stats["dropped"].clone()),
        (stats["total"].clone(), 0.into(), 0.into())
    );
    let by = |e: &str| stats["by_endpoint"][e]["total"].as_u64().unwrap();
    assert_eq!(by("create_order") + by("list_orders") + by("get_order"), stats["total"].as_u64().unwrap());
    assert_eq!(by("create_order"), target_count(&target, Some("create_order")));
    let ids = status["order_ids_buffered"].as_u64().unwrap();
    assert!(ids > 0 && ids <= 50 && ids <= by("create_order"), "{status}");
}

#[test]
fn with_a_control_token_only_bearers_may_change_state() {
    let target = start_demo_target(&[]);
    let token = "t0ken-for-tests-7f3a";
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("CONTROL_TOKEN", token)]);
    let bearer = format!("Bearer {token}");
    // A missing token is asked for; a wrong one is said to be rejected.
    for (headers, says) in [
        (vec![], "Authorization: Bearer"),
        (vec![("Authorization", "Bearer wrong")], "token rejected"),
        (vec![("Authorization", token)], "Authorization: Bearer"),
        (vec![("Authorization", "Basic dXNlcjpwdw==")], "Authorization: Bearer"),
    ] {
        let res = request(sidecar.addr, "POST", "/mode/burst", &headers, None);
        assert_eq!(res.status, 401, "{headers:?}");
        assert_eq!(res.headers.get("www-authenticate").map(String::as_str), Some(r#"Bearer realm="trafficgen""#));
        assert!(res.json()["error"].as_str().unwrap().contains(says), "{headers:?}: {}", res.body);
        assert_eq!(sidecar.get_json("/status")["mode"], "pause");
    }
    // Read-only endpoints stay open for probes and scrapers.
    for path in ["/health", "/metrics", "/status", "/modes"] {
        assert_eq!(sidecar.get(path).status, 200, "{path}");
    }
    let res = request(sidecar.addr, "POST", "/mode/custom", &[("Authorization", &bearer)], Some(r#"{"rps": 5}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    let res = request(sidecar.addr, "POST", "/mode/burst", &[("authorization", &format!("bearer {token}"))], None);
    assert_eq!(res.status, 200, "the scheme is case-insensitive");
    // A browser page on another origin is refused even with the token.
    let res = request(
        sidecar.addr,
        "POST",
        "/mode/pause",
        &[("Authorization", &bearer), ("Origin", "http://evil.example")],
        None,
    );
    assert_eq!(res.status, 403);
    let logs = sidecar.output();
    assert!(!logs.contains(token), "the token appeared in the log");
    assert!(logs.contains(r#""control_token":"required""#), "start-up line should say a token is required");
}
