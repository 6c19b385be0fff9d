//! The control panel at `GET /`: served from the binary with a self-only
//! Content-Security-Policy, every file it names is there, it is small, and
//! nothing in it points off the machine. (ci/panel-checks.sh drives it in
//! a real browser.)

use std::collections::BTreeSet;

use crate::helpers::*;

/// The page and everything it loads, at most (issue 13: "say under 100 KB").
const MAX_PANEL_BYTES: usize = 100 * 1024;

fn paused_sidecar() -> (Proc, Proc) {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    (target, sidecar)
}

/// The values of `attr="…"` in `html`.
fn attribute_values(html: &str, attr: &str) -> Vec<String> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .collect()
}

fn assert_strict_csp(res: &Response, what: &str) {
    let csp = res.headers.get("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"] {
        assert!(csp.contains(directive), "{what}: CSP {csp:?} lacks {directive:?}");
    }
    assert!(!csp.contains("unsafe") && !csp.contains('*') && !csp.contains("http"), "{what}: CSP {csp:?} is loose");
    assert_eq!(res.headers.get("x-content-type-options").map(String::as_str), Some("nosniff"), "{what}");
    assert!(res.headers.get("cache-control").is_some_and(|c| c.contains("no-cache")), "{what}: {:?}", res.headers);
}

#[test]
fn the_page_and_its_files_are_served_with_a_strict_policy_and_weigh_under_100_kb() {
    let (_target, sidecar) = paused_sidecar();
    let page = sidecar.get("/");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers.get("content-type").map(String::as_str), Some("text/html; charset=utf-8"));
    assert_strict_csp(&page, "GET /");
    assert!(page.body.starts_with("<!doctype html>") && page.body.contains("<title>"), "{}", page.body);

    let mut assets: Vec<String> = attribute_values(&page.body, "src");
    assets.extend(attribute_values(&page.body, "href").into_iter().filter(|h| !h.starts_with('#')));
    let expected: BTreeSet<&str> = ["/panel.js", "/panel.css", "/favicon.svg"].into();
    assert_eq!(assets.iter().map(String::as_str).collect::<BTreeSet<_>>(), expected, "files the page loads");
    let mut total = page.body.len();
    for path in &assets {
        let res = sidecar.get(path);
        assert_eq!(res.status, 200, "GET {path}: {}", res.body);
        let content_type = res.headers.get("content-type").cloned().unwrap_or_default();
        let wanted = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            _ => "image/svg+xml",
        };
        assert_eq!(content_type, wanted, "GET {path}");
        assert_strict_csp(&res, path);
        assert!(!res.body.is_empty(), "GET {path} is empty");
        total += res.body.len();
    }
    eprintln!("control panel weight: {total} bytes (page and {} files)", assets.len());
    assert!(total < MAX_PANEL_BYTES, "the panel weighs {total} bytes, more than {MAX_PANEL_BYTES}");

    let head = request(sidecar.addr, "HEAD", "/", &[], None);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = sidecar.post("/", None);
    assert_eq!(post.status, 405, "{}", post.body);
    assert!(post.json()["error"].as_str().is_some_and(|e| e.contains("allowed: GET")), "{}", post.body);
    let etag = sidecar.get("/panel.js").headers.get("etag").cloned().expect("an ETag");
    let again = request(sidecar.addr, "GET", "/panel.js", &[("If-None-Match", &etag)], None);
    assert_eq!((again.status, again.body.as_str()), (304, ""), "a cached copy is revalidated, not resent");
}

#[test]
fn nothing_in_the_panel_points_off_the_machine_or_runs_inline() {
    let (_target, sidecar) = paused_sidecar();
    let files: Vec<(&str, String)> =
        ["/", "/panel.js", "/panel.css", "/favicon.svg"].iter().map(|p| (*p, sidecar.get(p).body)).collect();
    for (path, body) in &files {
        assert!(!body.is_empty(), "{path} is empty");
        // An SVG file must name its XML namespace: an identifier, never fetched.
        let body = body.replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
        for scheme in ["http://", "https://", "ftp://", "ws://", "wss://"] {
            assert!(!body.to_ascii_lowercase().contains(scheme), "{path} names a {scheme} URL");
        }
        // A protocol-relative reference (`src="//cdn…"`, `url(//…)`, `"//…"`).
        for lead in ["\"//", "'//", "`//", "(//", "=//"] {
            assert!(!body.contains(lead), "{path} has a protocol-relative reference ({lead})");
        }
        assert!(!body.contains("@import"), "{path} imports a style sheet");
    }
    let html = &files[0].1;
    // The policy forbids inline code and styles: the page must not need them.
    assert!(!html.contains(" style=\""), "inline style in the page");
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains(" onclick=") && !lower.contains(" onload=") && !lower.contains("javascript:"));
    assert_eq!(lower.matches("<script").count(), lower.matches("<script src=\"/panel.js\"").count(), "inline script");
    assert!(!lower.contains("<style"), "inline style element in the page");
}

#[test]
fn every_element_the_script_looks_up_is_in_the_page() {
    let (_target, sidecar) = paused_sidecar();
    let html = sidecar.get("/").body;
    let script = sidecar.get("/panel.js").body;
    let ids: BTreeSet<String> = attribute_values(&html, "id").into_iter().collect();
    let mut looked_up = BTreeSet::new();
    for call in ["$(\"", "setText(\"", "message(\""] {
        for (at, _) in script.match_indices(call) {
            let rest = &script[at + call.len()..];
            let end = rest.find('"').expect("closing quote");
            looked_up.insert(rest[..end].to_string());
        }
    }
    // Looked up by a name made at run time: `chart-${id}`.
    for chart in ["rate", "latency", "errors", "load"] {
        looked_up.insert(format!("chart-{chart}"));
        looked_up.insert(format!("now-{chart}"));
    }
    assert!(looked_up.len() > 30, "the script's look-ups were not found: {looked_up:?}");
    let missing: Vec<&String> = looked_up.difference(&ids).collect();
    assert!(missing.is_empty(), "the script looks up ids the page lacks: {missing:?}");
    for label_for in attribute_values(&html, "for") {
        assert!(ids.contains(&label_for), "a label for a missing control: {label_for}");
    }
}

/// The fields panel.js reads, where it reads them: if the API moves one,
/// this fails here rather than as a blank card in a browser.
#[test]
fn the_answers_the_panel_reads_have_the_fields_it_reads() {
    let (_target, sidecar) = paused_sidecar();
    let number = |v: &serde_json::Value, what: &str| assert!(v.is_number(), "{what}: {v}");
    let status = sidecar.get_json("/status");
    for key in [
        "rps",
        "achieved_rps",
        "uptime_secs",
        "max_rps",
        "in_flight",
        "target_rps",
        "cluster_target_rps",
        "cluster_achieved_rps",
        "replicas",
    ] {
        number(&status[key], key);
    }
    // The per-request table: every request of the workload, with its numbers.
    let table = &status["requests"];
    number(&table["total_rps"], "requests total_rps");
    let rows = table["by_name"].as_object().expect("requests by_name");
    assert!(!rows.is_empty(), "{table}");
    for row in rows.values() {
        for key in ["rps", "share", "successful", "failed"] {
            number(&row[key], key);
        }
        assert!(row["failures"].is_object() && row["latency_ms"].get("p99").is_some(), "{row}");
    }
    assert!(status["journeys"]["by_journey"].is_object(), "{status}");
    // The charts' history: points with the fields they plot.
    let history = eventually_json(&sidecar, "/history", |h| h["points"].as_array().is_some_and(|p| !p.is_empty()));
    let point = &history["points"][0];
    for key in
        ["t_ms", "cluster_target_rps", "cluster_achieved_rps", "achieved_rps", "error_ratio", "dropped", "in_flight"]
    {
        number(&point[key], key);
    }
    assert!(point.get("p50_ms").is_some() && point.get("p99_ms").is_some(), "{point}");
    for key in ["mode", "state", "target_url", "mix"] {
        assert!(status[key].is_string(), "/status {key}: {status}");
    }
    for key in ["successful", "failed", "dropped", "unmet"] {
        number(&status["stats"][key], key);
    }
    assert!(status["setup"]["state"].is_string(), "/status setup: {status}");
    for key in ["attempts", "relogins"] {
        number(&status["setup"][key], key);
    }
    let scheduled = &status["latency"]["overall"]["from_scheduled"];
    assert!(["p50", "p95", "p99"].iter().all(|p| scheduled.get(p).is_some()), "/status latency: {status}");
    assert!(status["job"].is_null(), "no job yet: {}", status["job"]);
    number(&sidecar.get_json("/modes")["modes"]["burst"], "/modes burst");

    let presets = sidecar.get_json("/presets");
    let presets = presets["presets"].as_array().expect("presets");
    assert!(!presets.is_empty());
    for preset in presets {
        assert!(preset["name"].is_string() && preset["scenario"].is_string(), "{preset}");
        number(&preset["max_rps"], "preset max_rps");
        number(&preset["duration_secs"], "preset duration_secs");
    }
    let workload = sidecar.get_json("/workload");
    let requests = workload["requests"].as_array().expect("workload requests");
    assert!(requests.iter().any(|r| r["role"] == "weighted" && r["name"].is_string()), "{workload}");
    let logs = sidecar.get_json("/logs?limit=50");
    let lines = logs["lines"].as_array().expect("log lines");
    assert!(lines.iter().any(|l| l["message"].is_string() && l["timestamp"].is_string()), "{logs}");

    // A job as the scenario card starts it, and as it ends.
    let body = r#"{"scenario": "normal", "duration_secs": 30, "max_rps": 5, "ramp_up_secs": 0}"#;
    let started = sidecar.post("/jobs", Some(body));
    assert_eq!(started.status, 201, "{}", started.body);
    let job = started.json();
    let id = job["job_id"].as_str().expect("job_id").to_string();
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)) && id.len() <= 64, "{id}");
    assert_eq!((job["status"].as_str(), job["scenario"].as_str()), (Some("running"), Some("normal")));
    let again = sidecar.post("/jobs", Some(body));
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["running_job_id"].as_str(), Some(id.as_str()), "a 409 names the running job");
    assert_eq!(sidecar.get_json("/status")["job"]["job_id"].as_str(), Some(id.as_str()));
    let listed = sidecar.get_json("/jobs");
    assert_eq!(listed["jobs"][0]["job_id"].as_str(), Some(id.as_str()), "newest first: {listed}");
    let stopped = sidecar.post(&format!("/jobs/{id}/stop"), None);
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    let record = stopped.json();
    assert_eq!(record["status"].as_str(), Some("stopped"));
    let summary = &record["summary"];
    for key in ["elapsed_secs", "achieved_rps", "target_rps", "error_ratio"] {
        number(&summary[key], key);
    }
    number(&summary["requests"]["sent"], "summary sent");
    assert!(summary["latency_ms"]["from_sent"].is_object(), "{summary}");

    // A switch with a ramp says where from and over how long.
    let ramp = sidecar.post("/mode/custom", Some(r#"{"rps": 4, "ramp_secs": 2}"#));
    assert_eq!(ramp.status, 200, "{}", ramp.body);
    number(&ramp.json()["ramp"]["secs"], "ramp secs");
    number(&ramp.json()["ramp"]["from_rps"], "ramp from_rps");
}

/// `path`'s answer once `ready` holds (within 5 s), else the last one.
fn eventually_json(sidecar: &Proc, path: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut answer = serde_json::Value::Null;
    eventually(std::time::Duration::from_secs(5), || {
        answer = sidecar.get_json(path);
        ready(&answer)
    });
    answer
}
