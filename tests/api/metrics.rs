//! `/metrics` parses, is self-consistent, and agrees with `/status`.

use std::collections::HashMap;
use std::time::Duration;

use crate::helpers::*;

#[test]
fn metrics_agree_with_status_and_histograms_are_well_formed() {
    let target = start_demo_target(&["--error-rate", "0.2"]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "overload")]);
    assert!(eventually(Duration::from_secs(5), || stat(&sidecar, "total") > 150));
    pause_and_settle(&sidecar);

    let text = sidecar.get("/metrics").body;
    let samples = parse_metrics(&text);
    let status = sidecar.get_json("/status");
    let stats = &status["stats"];
    let total = |labels: &[(&str, &str)]| sum(&samples, "trafficgen_requests_total", labels) as u64;
    assert!(stats["total"].as_u64().unwrap() > 100);
    assert_eq!(total(&[]), stats["total"].as_u64().unwrap());
    for endpoint in ["create_order", "list_orders", "get_order"] {
        assert_eq!(
            total(&[("endpoint", endpoint)]),
            stats["by_endpoint"][endpoint]["total"].as_u64().unwrap(),
            "{endpoint}"
        );
    }
    let ok: u64 = samples
        .iter()
        .filter(|s| s.name == "trafficgen_requests_total" && s.label("code").starts_with('2'))
        .map(|s| s.value as u64)
        .sum();
    assert_eq!(ok, stats["successful"].as_u64().unwrap());
    assert!(total(&[("code", "500")]) > 0, "injected 500s should show");
    assert_eq!(sum(&samples, "trafficgen_dropped_requests_total", &[]) as u64, stats["dropped"].as_u64().unwrap());
    assert_eq!(
        sum(&samples, "trafficgen_order_ids_buffered", &[]) as u64,
        status["order_ids_buffered"].as_u64().unwrap()
    );
    assert_eq!(sum(&samples, "trafficgen_target_rps", &[]), 0.0, "paused");
    assert_eq!(sum(&samples, "trafficgen_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(sum(&samples, "process_resident_memory_bytes", &[]) > 0.0);
    // The latency histogram counted every answered or failed request.
    assert_eq!(
        sum(&samples, "trafficgen_request_duration_seconds_count", &[]) as u64,
        stats["total"].as_u64().unwrap()
    );
    assert_eq!(sum(&samples, "trafficgen_schedule_lag_seconds_count", &[]) as u64, stats["total"].as_u64().unwrap());

    // Buckets never decrease, and +Inf equals _count, for every series.
    let mut buckets: HashMap<(String, String), Vec<(f64, f64)>> = HashMap::new();
    for s in samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let le = if s.label("le") == "+Inf" { f64::INFINITY } else { s.label("le").parse().unwrap() };
        buckets.entry((s.name.clone(), s.label("endpoint").to_string())).or_default().push((le, s.value));
    }
    assert!(buckets.len() >= 4, "expected per-endpoint duration series and the lag series");
    for ((name, endpoint), mut series) in buckets {
        series.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(series.windows(2).all(|w| w[0].1 <= w[1].1), "{name}{{{endpoint}}} decreases");
        let count_name = name.replace("_bucket", "_count");
        let labels: Vec<(&str, &str)> =
            if endpoint.is_empty() { vec![] } else { vec![("endpoint", endpoint.as_str())] };
        assert_eq!(series.last().unwrap().1, sum(&samples, &count_name, &labels), "{name} +Inf vs _count");
    }
    // Labels only ever take values from their fixed sets.
    for s in &samples {
        if let Some(e) = s.labels.get("endpoint") {
            assert!(["create_order", "list_orders", "get_order"].contains(&e.as_str()), "{s:?}");
        }
        if let Some(k) = s.labels.get("kind") {
            assert!(["timeout", "connect", "dns", "tls", "reused", "other"].contains(&k.as_str()), "{s:?}");
        }
        if let Some(r) = s.labels.get("reason") {
            assert!(["closed", "reset", "broken_pipe"].contains(&r.as_str()), "{s:?}");
        }
        if s.name == "trafficgen_requests_total" {
            let code = s.label("code");
            assert!(code == "error" || (code.len() == 3 && code.parse::<u16>().is_ok()), "{s:?}");
        }
    }
    // Every metric of the contract is there with a HELP and TYPE line.
    for (name, kind) in [
        ("trafficgen_requests_total", "counter"),
        ("trafficgen_request_errors_total", "counter"),
        ("trafficgen_request_duration_seconds", "histogram"),
        ("trafficgen_target_rps", "gauge"),
        ("trafficgen_mode", "gauge"),
        ("trafficgen_in_flight_requests", "gauge"),
        ("trafficgen_dropped_requests_total", "counter"),
        ("trafficgen_order_ids_buffered", "gauge"),
        ("trafficgen_mode_switches_total", "counter"),
        ("trafficgen_build_info", "gauge"),
        ("trafficgen_schedule_lag_seconds", "histogram"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "no TYPE line for {name}");
        assert!(text.contains(&format!("# HELP {name} ")), "no HELP line for {name}");
    }
}

/// A reader of `GET /events` that never reads: once the socket buffers and
/// its 64-frame buffer are full, the events it misses are counted in
/// `trafficgen_events_dropped_total`, and the sidecar goes on as before.
#[test]
fn events_a_slow_reader_misses_are_counted_and_the_sidecar_goes_on() {
    use std::io::{Read, Write};
    use std::time::Instant;

    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    let dropped = || sum(&parse_metrics(&sidecar.get("/metrics").body), "trafficgen_events_dropped_total", &[]);
    let text = sidecar.get("/metrics").body;
    assert!(text.contains("# TYPE trafficgen_events_dropped_total counter\n"), "no events_dropped counter");
    assert_eq!(dropped(), 0.0, "at 0");
    // A small receive buffer and small segments, set before connecting: the
    // window is small from the start, and the server's send buffer, which
    // Linux grows by the segment size (64 KiB on loopback), stays at tens
    // of KiB instead of megabytes.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    set_mss(&socket, 536);
    socket.connect(&sidecar.addr.into()).unwrap();
    let mut stuck = std::net::TcpStream::from(socket);
    write!(stuck, "GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n", sidecar.addr).unwrap();
    // Each POST /mode publishes a mode event (about 150 bytes): a few
    // thousand fill the server's socket and write buffers, then the stream's
    // own. Bounded: at most 60 s of switching.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut posts = 0;
    let mut seen = 0.0;
    while seen == 0.0 && Instant::now() < deadline {
        for _ in 0..100 {
            assert_eq!(sidecar.post("/mode/pause", None).status, 200);
        }
        posts += 100;
        seen = dropped();
    }
    assert!(seen > 0.0, "no event counted as dropped after {posts} mode events");
    // The counter goes on rising while the reader stays stuck. (On a busy
    // machine the first drops can come before the socket is full, while the
    // stream's writer has not yet run: it then drains the buffer into the
    // socket, and the next events fit until the socket fills.)
    let mut later = seen;
    let mut more = 0;
    while later <= seen && Instant::now() < deadline {
        for _ in 0..100 {
            assert_eq!(sidecar.post("/mode/pause", None).status, 200);
        }
        more += 100;
        later = dropped();
    }
    assert!(later > seen, "{seen} then {later} after {more} more events");
    eprintln!("{posts} mode events before the first drop; {later} dropped");
    // Healthy, and a stream that reads gets its events.
    assert_eq!(sidecar.get_json("/health")["status"], "healthy");
    let mut reader = std::net::TcpStream::connect(sidecar.addr).unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(reader, "GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n", sidecar.addr).unwrap();
    let mut got = String::new();
    let mut chunk = [0u8; 4096];
    while !got.contains(": trafficgen events") {
        let n = reader.read(&mut chunk).expect("the stream opens");
        assert!(n > 0, "the stream ended: {got}");
        got.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert_eq!(sidecar.post("/mode/steady", None).status, 200);
    while !got.contains("event: mode") {
        let n = reader.read(&mut chunk).expect("a mode event in time");
        assert!(n > 0, "the stream ended: {got}");
        got.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    drop(stuck);
}

/// TCP_MAXSEG on a socket not yet connected: the largest segment it asks for.
fn set_mss(socket: &socket2::Socket, mss: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor, and an option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&raw const mss).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
}
