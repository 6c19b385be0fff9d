//! Spans over OTLP (issue 28), against the receiver in `otlp.rs`: the
//! sidecar's client spans and the demo target's server spans make one
//! trace per request; the sampler decides the flag that is sent; a
//! collector in trouble loses spans, never traffic.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use trafficgen::base::otlp::proto::trace::v1::span::SpanKind;

use crate::helpers::*;
use crate::otlp::{Behaviour, Received, Receiver};

/// Settings that send spans to `receiver` quickly (a 100 ms batch delay).
fn otel_env(receiver: &Receiver) -> Vec<(String, String)> {
    vec![("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint()), ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into())]
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn traced_demo_target(receiver: &Receiver, extra: &[(&str, &str)]) -> Proc {
    let mut env = otel_env(receiver);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Proc::start(&["demo-target", "--bind", "127.0.0.1", "--port", "0"], &as_refs(&env))
}

fn traced_sidecar(target: &Proc, receiver: &Receiver, extra: &[(&str, &str)]) -> Proc {
    let mut env = otel_env(receiver);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    start_sidecar(target, &as_refs(&env))
}

fn metric(proc: &Proc, name: &str, labels: &[(&str, &str)]) -> u64 {
    sum(&parse_metrics(&proc.get("/metrics").body), name, labels) as u64
}

fn of(spans: &[Received], service: &str) -> Vec<Received> {
    spans.iter().filter(|s| s.service == service).cloned().collect()
}

/// Waits until the receiver holds `sidecar` spans from the sidecar and
/// `target` from the demo target.
fn settle(receiver: &Receiver, sidecar: u64, target: u64) -> Vec<Received> {
    let done = eventually(Duration::from_secs(15), || {
        let spans = receiver.spans();
        of(&spans, "trafficgen").len() as u64 >= sidecar && of(&spans, "demo-target").len() as u64 >= target
    });
    let spans = receiver.spans();
    assert!(
        done,
        "spans received: {} of the sidecar's {sidecar}, {} of the demo target's {target}",
        of(&spans, "trafficgen").len(),
        of(&spans, "demo-target").len()
    );
    // Nothing more comes (no span twice).
    std::thread::sleep(Duration::from_millis(300));
    receiver.spans()
}

/// Every demo-target span's parent is a sidecar span of the same trace.
fn assert_one_trace_per_request(client: &[Received], server: &[Received]) {
    let by_id: HashMap<Vec<u8>, &Received> = client.iter().map(|s| (s.span.span_id.clone(), s)).collect();
    assert_eq!(by_id.len(), client.len(), "span ids are unique");
    for span in server {
        let parent = by_id
            .get(&span.span.parent_span_id)
            .unwrap_or_else(|| panic!("a demo-target span whose parent is no sidecar span: {:?}", span.span.name));
        assert_eq!(parent.span.trace_id, span.span.trace_id, "parent and child in one trace");
        assert_eq!(span.span.kind, SpanKind::Server as i32);
        assert!(span.span.start_time_unix_nano >= parent.span.start_time_unix_nano.saturating_sub(5_000_000));
    }
}

#[test]
fn one_request_is_one_trace_from_the_sidecar_through_the_demo_target() {
    let _timing = timing_test();
    let receiver = Receiver::start(Behaviour::Accept);
    let target = traced_demo_target(&receiver, &[]);
    let sidecar = traced_sidecar(&target, &receiver, &[("STEADY_RPS", "40")]);
    std::thread::sleep(Duration::from_secs(2));
    // A job's requests carry its id and the custom mode.
    let started = sidecar.post("/jobs", Some(r#"{"scenario": "normal", "duration_secs": 1.5, "max_rps": 40}"#));
    assert_eq!(started.status, 201, "{}", started.body);
    let job_id = started.json()["job_id"].as_str().expect("job id").to_string();
    let job_over = eventually(Duration::from_secs(10), || {
        sidecar.get_json(&format!("/jobs/{job_id}"))["status"].as_str() != Some("running")
    });
    assert!(job_over);
    pause_and_settle(&sidecar);

    let sent = stat(&sidecar, "total");
    let answered = target_count(&target, None);
    assert!(sent >= 40, "only {sent} requests");
    let spans = settle(&receiver, sent, answered);
    let (client, server) = (of(&spans, "trafficgen"), of(&spans, "demo-target"));
    // Sampled by default (parentbased_always_on): a span per request, each
    // once, and the demo target's per request it answered.
    assert_eq!(client.len() as u64, sent, "a client span per request");
    assert_eq!(server.len() as u64, answered, "a server span per answered request");
    assert_eq!(metric(&sidecar, "trafficgen_spans_exported_total", &[]), sent);
    assert_eq!(metric(&sidecar, "trafficgen_spans_dropped_total", &[]), 0);
    assert_eq!(metric(&target, "demo_target_spans_exported_total", &[]), answered);
    assert_one_trace_per_request(&client, &server);
    let traces: HashSet<&Vec<u8>> = client.iter().map(|s| &s.span.trace_id).collect();
    assert_eq!(traces.len(), client.len(), "a trace per request");

    let port = i64::from(target.addr.port());
    let mut modes = HashSet::new();
    for span in &client {
        let s = &span.span;
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert!(s.parent_span_id.is_empty(), "a root");
        assert_eq!(s.flags & 0xff, 1, "sampled");
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
        let method = span.text("http.request.method").expect("http.request.method");
        let template = span.text("url.template").expect("url.template");
        assert_eq!(s.name, format!("{method} {template}"));
        let request = span.text("trafficgen.request").expect("trafficgen.request");
        let (want_method, want_template) = match request.as_str() {
            "create_order" => ("POST", "/orders"),
            "list_orders" => ("GET", "/orders"),
            "get_order" => ("GET", "/orders/{order_ids}"),
            other => panic!("unknown request {other}"),
        };
        assert_eq!((method.as_str(), template.as_str()), (want_method, want_template));
        let url = span.text("url.full").expect("url.full");
        assert!(url.starts_with(&format!("http://127.0.0.1:{port}/orders")), "{url}");
        assert_eq!(span.text("server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(span.int("server.port"), Some(port));
        let status = span.int("http.response.status_code").expect("a status");
        assert_eq!(span.text("error.type").is_some(), status >= 400, "{status}");
        let mode = span.text("trafficgen.mode").expect("trafficgen.mode");
        assert_eq!(span.text("trafficgen.job_id").is_some(), mode == "custom", "{mode}");
        if mode == "custom" {
            assert_eq!(span.text("trafficgen.job_id"), Some(job_id.clone()));
        }
        modes.insert(mode);
    }
    assert_eq!(modes, HashSet::from(["steady".to_string(), "custom".to_string()]));
    for span in &server {
        let route = span.text("http.route").expect("http.route");
        assert_eq!(span.span.name, format!("{} {route}", span.text("http.request.method").unwrap()));
        assert!(span.int("http.response.status_code").is_some());
    }
}

#[test]
fn the_sampled_flag_sent_is_the_samplers_decision() {
    let _timing = timing_test();
    let receiver = Receiver::start(Behaviour::Accept);
    // The demo target follows the flag it is sent (parentbased, the default).
    let target = traced_demo_target(&receiver, &[]);
    let sidecar = traced_sidecar(
        &target,
        &receiver,
        &[("STEADY_RPS", "100"), ("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")],
    );
    std::thread::sleep(Duration::from_secs(4));
    pause_and_settle(&sidecar);
    let sent = stat(&sidecar, "total");
    let exported = eventually(Duration::from_secs(10), || {
        metric(&sidecar, "trafficgen_spans_exported_total", &[]) > 0
            && metric(&target, "demo_target_spans_exported_total", &[])
                == metric(&sidecar, "trafficgen_spans_exported_total", &[])
    });
    let spans = receiver.spans();
    let (client, server) = (of(&spans, "trafficgen"), of(&spans, "demo-target"));
    assert!(exported, "sidecar {} spans, demo target {}", client.len(), server.len());
    assert_binomial_share("sampled requests", client.len() as f64, sent as f64, 0.25);
    // Exactly the sampled ones continue at the demo target.
    assert_eq!(server.len(), client.len());
    assert_one_trace_per_request(&client, &server);
    assert_eq!(metric(&sidecar, "trafficgen_spans_dropped_total", &[]), 0);
}

#[test]
fn with_the_sdk_disabled_or_exporter_none_nothing_is_exported() {
    let receiver = Receiver::start(Behaviour::Accept);
    let target = start_demo_target(&[]);
    let endpoint = receiver.endpoint();
    let disabled = start_sidecar(
        &target,
        &[("STEADY_RPS", "50"), ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_SDK_DISABLED", "true")],
    );
    let none = start_sidecar(
        &target,
        &[("STEADY_RPS", "50"), ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_TRACES_EXPORTER", "none")],
    );
    assert!(eventually(Duration::from_secs(10), || stat(&disabled, "total") >= 50 && stat(&none, "total") >= 50));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!((receiver.posts(), receiver.count()), (0, 0));
    assert_eq!(metric(&disabled, "trafficgen_spans_exported_total", &[]), 0);
}

/// The exporter's drops by reason.
fn dropped(sidecar: &Proc, reason: &str) -> u64 {
    metric(sidecar, "trafficgen_spans_dropped_total", &[("reason", reason)])
}

#[test]
fn a_collector_in_trouble_loses_spans_never_traffic_or_memory() {
    let _heavy = heavy_test();
    const RPS: f64 = 400.0;
    let receiver = Receiver::start(Behaviour::Accept);
    let target = start_demo_target(&["--workers", "2"]);
    let rps = RPS.to_string();
    let sidecar = traced_sidecar(
        &target,
        &receiver,
        &[
            ("STEADY_RPS", &rps),
            ("MAX_RPS", "5000"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "512"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "128"),
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(metric(&sidecar, "trafficgen_spans_exported_total", &[]) > 0, "healthy: spans go out");
    let rss_start = rss_kib(sidecar.pid());
    let phases = [
        ("500", Behaviour::Status(500), "status"),
        ("503", Behaviour::Status(503), "status"),
        ("slow", Behaviour::Slow(Duration::from_secs(1)), "queue_full"),
        ("hanging", Behaviour::Hang, "timeout"),
    ];
    for (name, behaviour, reason) in phases {
        receiver.set(behaviour);
        let before = dropped(&sidecar, reason);
        // The target's rate over the phase: the spans' trouble is not the traffic's.
        let rate = observed_rate(&target, Duration::from_secs(4));
        assert!(rate >= RPS * 0.9, "{name}: the target saw {rate:.0}/s of {RPS}");
        // Counted once the exporter's backoff from the phase before is over.
        let counted = eventually(Duration::from_secs(10), || dropped(&sidecar, reason) > before);
        assert!(counted, "{name}: no span dropped as {reason}:\n{}", sidecar.get("/metrics").body);
    }
    // The queue stays full while posts hang or back off: drops, not memory.
    assert!(dropped(&sidecar, "queue_full") > 0);
    let rss_end = rss_kib(sidecar.pid());
    assert!(rss_end < rss_start + 16 * 1024, "RSS grew from {rss_start} KiB to {rss_end} KiB");
    // Healthy again: spans flow again (after the backoff).
    receiver.set(Behaviour::Accept);
    let exported = metric(&sidecar, "trafficgen_spans_exported_total", &[]);
    assert!(eventually(Duration::from_secs(40), || metric(&sidecar, "trafficgen_spans_exported_total", &[])
        > exported + 100));
}

#[test]
fn a_collector_that_is_down_costs_the_traffic_nothing() {
    let _heavy = heavy_test();
    const RPS: f64 = 400.0;
    let target = start_demo_target(&["--workers", "2"]);
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let rps = RPS.to_string();
    let sidecar = start_sidecar(
        &target,
        &[
            ("STEADY_RPS", &rps),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "256"),
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    let rss_start = rss_kib(sidecar.pid());
    let rate = observed_rate(&target, Duration::from_secs(4));
    assert!(rate >= RPS * 0.9, "the target saw {rate:.0}/s of {RPS}");
    assert!(dropped(&sidecar, "connect") > 0, "{}", sidecar.get("/metrics").body);
    assert!(dropped(&sidecar, "queue_full") > 0);
    assert_eq!(metric(&sidecar, "trafficgen_spans_exported_total", &[]), 0);
    assert!(rss_kib(sidecar.pid()) < rss_start + 16 * 1024);
    // A warning per failed post, no flood: the backoff spaces them.
    let warnings = sidecar.logs_matching(|l| l["message"] == "could not export spans");
    assert!(!warnings.is_empty() && warnings.len() <= 12, "{} warnings in 5 s", warnings.len());
}

#[test]
fn bad_span_settings_stop_start_up_with_one_line_and_exit_2() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], "OTEL_EXPORTER_OTLP_PROTOCOL"),
        (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")], "OTEL_EXPORTER_OTLP_ENDPOINT"),
        (&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        (&[("OTEL_TRACES_SAMPLER", "sometimes")], "OTEL_TRACES_SAMPLER"),
        (&[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "2")], "OTEL_TRACES_SAMPLER"),
        (&[("OTEL_SDK_DISABLED", "maybe")], "OTEL_SDK_DISABLED"),
        (&[("OTEL_TRACES_EXPORTER", "zipkin")], "OTEL_TRACES_EXPORTER"),
        (&[("OTEL_EXPORTER_OTLP_HEADERS", "x=a%0d%0aInjected: 1")], "OTEL_EXPORTER_OTLP_HEADERS"),
        (&[("OTEL_RESOURCE_ATTRIBUTES", "novalue")], "OTEL_RESOURCE_ATTRIBUTES"),
        (&[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")], "OTEL_EXPORTER_OTLP_TIMEOUT"),
        (&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")], "OTEL_BSP_MAX_QUEUE_SIZE"),
        (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("TRACE_SAMPLED", "false")], "TRACE_SAMPLED"),
        (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("TRACE_HEADERS", "false")], "TRACE_HEADERS"),
    ];
    for (env, setting) in cases {
        for args in [&[][..], &["demo-target"][..]] {
            if args == ["demo-target"] && setting.starts_with("TRACE_") {
                continue;
            }
            let mut command = Command::new(BIN);
            command.args(args).env_clear().env("PORT", "0").env("BIND", "127.0.0.1");
            command.envs(env.iter().copied());
            let out = command.output().expect("run trafficgen");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?} {env:?}: one line: {stderr}");
            assert!(stderr.contains(setting), "{args:?} {env:?}: names {setting}: {stderr}");
            assert!(!stderr.contains("Injected: 1\n"), "no header value echoed raw");
        }
    }
}

#[test]
fn the_demo_target_continues_a_trace_it_is_sent_and_starts_one_otherwise() {
    let receiver = Receiver::start(Behaviour::Accept);
    let target = traced_demo_target(&receiver, &[]);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let unsampled = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert_eq!(request(target.addr, "GET", "/orders/error?rate=1", &[("traceparent", parent)], None).status / 100, 5);
    request(target.addr, "GET", "/orders", &[("traceparent", unsampled)], None);
    request(target.addr, "GET", "/orders", &[("traceparent", "garbage")], None);
    request(target.addr, "GET", "/health", &[("traceparent", parent)], None);
    let started = Instant::now();
    assert!(eventually(Duration::from_secs(10), || receiver.count() >= 2));
    std::thread::sleep(Duration::from_millis(300).saturating_sub(started.elapsed()));
    let spans = receiver.spans();
    assert_eq!(spans.len(), 2, "the continued one and a new root; none for the unsampled or /health");
    let continued = spans.iter().find(|s| !s.span.parent_span_id.is_empty()).expect("a continued span");
    assert_eq!(hex(&continued.span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&continued.span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(continued.span.name, "GET /orders/error");
    assert!(continued.text("error.type").is_some(), "a 5xx is a server error");
    assert_eq!(continued.span.flags, 0x301, "sampled, remote parent");
    let root = spans.iter().find(|s| s.span.parent_span_id.is_empty()).expect("a root");
    assert_ne!(hex(&root.span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(root.service, "demo-target");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A journey with three request steps and no pauses, against the demo target.
const JOURNEY: &str = "journeys:
  - name: order_then_read
    weight: 1
    steps:
      - name: create
        method: POST
        path: /orders
        body: {product_id: 3, quantity: 1}
        success: [201]
        capture:
          - {var: id, json: /id}
      - name: read
        method: GET
        path: \"/orders/{{ var(id) }}\"
      - name: list
        method: GET
        path: /orders
";

#[test]
fn a_journey_instance_is_one_trace_its_steps_the_children_of_its_span() {
    let _timing = timing_test();
    let receiver = Receiver::start(Behaviour::Accept);
    let target = traced_demo_target(&receiver, &[]);
    let dir = std::env::temp_dir().join(format!("tg-trace-journey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("journey.yaml");
    std::fs::write(&file, JOURNEY).expect("workload");
    let path = file.to_string_lossy().to_string();
    let sidecar = traced_sidecar(&target, &receiver, &[("STEADY_RPS", "10"), ("WORKLOAD_FILE", &path)]);
    std::thread::sleep(Duration::from_secs(3));
    pause_and_settle(&sidecar);
    let sent = stat(&sidecar, "total");
    let answered = target_count(&target, None);
    assert!(sent >= 9, "only {sent} requests");
    let spans = settle(&receiver, sent, answered);
    let _ = std::fs::remove_dir_all(&dir);
    let sidecar_spans = of(&spans, "trafficgen");
    let (journeys, steps): (Vec<Received>, Vec<Received>) =
        sidecar_spans.into_iter().partition(|s| s.span.kind == SpanKind::Internal as i32);
    assert_eq!(steps.len() as u64, sent, "a client span per step sent");
    assert!(!journeys.is_empty(), "a span per instance");
    let by_id: HashMap<Vec<u8>, &Received> = journeys.iter().map(|j| (j.span.span_id.clone(), j)).collect();
    let mut per_instance: HashMap<Vec<u8>, Vec<String>> = HashMap::new();
    for step in &steps {
        let parent = by_id.get(&step.span.parent_span_id).expect("a step's parent is its instance's span");
        assert_eq!(parent.span.trace_id, step.span.trace_id, "one trace per instance");
        assert_eq!(step.text("trafficgen.journey").as_deref(), Some("order_then_read"));
        let name = step.text("trafficgen.step").expect("trafficgen.step");
        assert_eq!(step.text("trafficgen.request"), Some(format!("order_then_read/{name}")));
        per_instance.entry(step.span.parent_span_id.clone()).or_default().push(name);
    }
    let read = steps.iter().find(|s| s.text("trafficgen.step").as_deref() == Some("read")).expect("a read step");
    assert_eq!(read.span.name, "GET /orders/{id}", "url.template names the variable, not its value");
    for journey in &journeys {
        assert_eq!(journey.span.name, "journey order_then_read");
        assert!(journey.span.parent_span_id.is_empty(), "the instance's span is the root");
        let mut names = per_instance.get(&journey.span.span_id).cloned().unwrap_or_default();
        names.sort();
        // Instances stopped by the pause may end before their last step.
        assert!(!names.is_empty() && names.len() <= 3, "{names:?}");
        if journey.text("error.type").is_none() {
            assert_eq!(names, ["create", "list", "read"], "a completed instance ran every step");
        }
    }
    assert!(journeys.iter().any(|j| j.text("error.type").is_none()), "some instance completed");
    // The demo target's spans hang under the steps.
    assert_one_trace_per_request(&steps, &of(&spans, "demo-target"));
}
