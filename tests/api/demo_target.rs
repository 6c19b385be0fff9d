//! The demo target as a user of its orders API sees it.

use crate::helpers::*;

#[test]
fn orders_api_creates_lists_and_reads_orders() {
    let target = start_demo_target(&["--max-orders", "3"]);
    let mut ids = Vec::new();
    for q in 1..=4 {
        let res = request(
            target.addr,
            "POST",
            "/orders",
            &[("Content-Type", "application/json")],
            Some(&format!(r#"{{"product_id":5,"quantity":{q}}}"#)),
        );
        assert_eq!(res.status, 201, "{}", res.body);
        let order = res.json();
        assert_eq!(order["status"], "created");
        assert_eq!(order["quantity"], q);
        ids.push(order["id"].as_u64().unwrap());
    }
    let unique: std::collections::HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 4, "ids {ids:?}");
    // Only the last 3 are kept.
    assert_eq!(target.get(&format!("/orders/{}", ids[0])).status, 404);
    assert_eq!(target.get_json(&format!("/orders/{}", ids[3]))["id"], ids[3]);
    let listed = target.get_json("/orders");
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert_eq!(listed[0]["id"], ids[3], "newest first");
    let missing = target.get("/orders/123456");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().unwrap().contains("not found"));
    assert_eq!(target.get("/health").body, r#"{"status":"healthy","service":"demo-target"}"#);

    let samples = parse_metrics(&target.get("/metrics").body);
    assert_eq!(sum(&samples, "demo_target_requests_total", &[("route", "create_order"), ("code", "201")]), 4.0);
    assert_eq!(sum(&samples, "demo_target_requests_total", &[("route", "get_order"), ("code", "404")]), 2.0);
    assert_eq!(sum(&samples, "demo_target_requests_total", &[("route", "list_orders"), ("code", "200")]), 1.0);
}

#[test]
fn injected_latency_and_errors_show_in_answers() {
    let target = start_demo_target(&["--latency-ms", "200", "--error-rate", "1"]);
    let started = std::time::Instant::now();
    let res = target.get("/orders");
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert_eq!(res.status, 500);
    assert_eq!(res.json()["error"], "injected failure");
    // Health is never faulted: orchestrators must see it up.
    assert_eq!(target.get("/health").status, 200);
}
