//! Jobs, timed modes, ramps, live streams, runtime config and STATE_DIR,
//! as a user sees them: the real binary against the real demo target,
//! whose own counters say what arrived.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// A sidecar that sends nothing until told (so the target counts only the job).
fn paused_sidecar(target: &Proc, extra: &[(&str, &str)]) -> Proc {
    let mut env = vec![("INITIAL_MODE", "pause")];
    env.extend_from_slice(extra);
    start_sidecar(target, &env)
}

fn start_job(sidecar: &Proc, body: &str) -> Value {
    let res = sidecar.post("/jobs", Some(body));
    assert_eq!(res.status, 201, "POST /jobs {body}: {}", res.body);
    let job = res.json();
    let id = job["job_id"].as_str().expect("job_id").to_string();
    assert_eq!(res.headers.get("location"), Some(&format!("/jobs/{id}")));
    assert_eq!(job["status"], "running");
    job
}

fn job_id(job: &Value) -> String {
    job["job_id"].as_str().expect("job_id").to_string()
}

/// Waits for the job to end; returns its record.
fn wait_for_end(sidecar: &Proc, id: &str, timeout: Duration) -> Value {
    let mut record = Value::Null;
    let ended = eventually(timeout, || {
        record = sidecar.get_json(&format!("/jobs/{id}"));
        record["status"] != "running"
    });
    assert!(ended, "job {id} still running after {timeout:?}: {record}");
    record
}

/// Within `fraction` of `expected`, plus `slack` requests for the sampling edges.
fn assert_near(what: &str, observed: f64, expected: f64, fraction: f64, slack: f64) {
    let bound = expected * fraction + slack;
    assert!((observed - expected).abs() <= bound, "{what}: {observed} where {expected} ± {bound:.1} was expected");
}

#[test]
fn a_peak_rises_to_half_of_max_in_its_first_quarter_then_the_mode_before_comes_back() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    // 8 s at up to 40 req/s: 40 requests in the first 2 s (half of max on
    // average), 160 over the 4 s hold, 40 in the last 2 s.
    let job = start_job(&sidecar, r#"{"scenario": "peak", "duration_secs": 8, "max_rps": 40}"#);
    let started = Instant::now();
    let at = |secs: f64| {
        let wait = Duration::from_secs_f64(secs).saturating_sub(started.elapsed());
        sleep(wait);
        target_count(&target, None) as f64
    };
    let (q1, q3) = (at(2.0), at(6.0));
    let record = wait_for_end(&sidecar, &job_id(&job), Duration::from_secs(12));
    let summary = &record["summary"];
    let sent = summary["requests"]["sent"].as_f64().expect("requests sent");
    // The job's last requests may still be on their way when it ends: the
    // target's count must catch up with the summary's (read at once, it
    // could be a request short).
    let caught_up = eventually(Duration::from_secs(3), || target_count(&target, None) as f64 == sent);
    let total = target_count(&target, None) as f64;
    assert!(caught_up, "the target saw {total} requests, the summary says {sent} were sent: {summary}");
    eprintln!("peak at the target: first quarter {q1}, middle {}, total {total}", q3 - q1);
    assert_near("first quarter (≈ half of max × 2 s)", q1, 40.0, 0.2, 5.0);
    assert_near("middle half (max × 4 s)", q3 - q1, 160.0, 0.1, 5.0);
    assert_near("whole peak (¾ of max × 8 s)", total, 240.0, 0.05, 2.0);

    assert_eq!(record["status"], "completed");
    assert_near("target rate of the summary", summary["target_rps"].as_f64().unwrap(), 30.0, 0.05, 0.5);
    let latency = &summary["latency_ms"];
    assert!(latency["from_scheduled"]["count"].as_u64() > Some(200), "{latency}");
    assert!(latency["from_scheduled"]["p50"].as_f64() >= latency["from_sent"]["p50"].as_f64(), "{latency}");
    assert!(summary["by_name"]["create_order"]["successful"].as_u64() > Some(0), "{summary}");
    // The mode before the job is back, and nothing more is sent.
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["job"].is_null()), (Some("pause"), true), "{status}");
    assert_eq!(target_count(&target, None) as f64, total);
    // Both latencies of the last 10 s, overall and per request name.
    let recent = &status["latency"];
    assert!(recent["overall"]["from_sent"]["count"].as_u64() > Some(0), "{recent}");
    assert!(recent["by_name"]["list_orders"]["from_scheduled"]["p99"].as_f64().is_some(), "{recent}");
}

#[test]
fn a_job_with_stages_of_its_own_follows_them_and_exports_them() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    // The issue's story, shortened: 2 s up to 20/s (20 requests), 3 s at
    // 20/s (60), 1 s up to 60/s (40), 2 s down to 0 (60): 180 in 8 s.
    let body = r#"{"stages": [{"duration_secs": 2, "rps": 20}, {"duration_secs": 3, "rps": 20},
        {"duration_secs": 1, "rps": 60}, {"duration_secs": 2, "rps": 0}]}"#;
    let job = start_job(&sidecar, body);
    assert_eq!((job["duration_secs"].as_f64(), job["max_rps"].as_f64()), (Some(8.0), Some(60.0)), "{job}");
    assert_eq!(job["stages"].as_array().map(Vec::len), Some(4), "{job}");
    let started = Instant::now();
    let at = |secs: f64| {
        sleep(Duration::from_secs_f64(secs).saturating_sub(started.elapsed()));
        target_count(&target, None) as f64
    };
    let (first, held) = (at(2.0), at(5.0));
    // Exported while it runs: its own stages, as k6 stages.
    let script = sidecar.get(&format!("/export/k6?job={}", job_id(&job)));
    assert_eq!(script.status, 200, "{}", script.body);
    assert!(script.body.contains("60") && script.body.contains("stages"), "{}", script.body);
    let record = wait_for_end(&sidecar, &job_id(&job), Duration::from_secs(15));
    let sent = record["summary"]["requests"]["sent"].as_f64().expect("requests sent");
    assert!(eventually(Duration::from_secs(3), || target_count(&target, None) as f64 == sent));
    let total = target_count(&target, None) as f64;
    eprintln!("stages at the target: first {first}, hold {}, total {total}", held - first);
    assert_near("first stage (0 → 20/s over 2 s)", first, 20.0, 0.25, 5.0);
    assert_near("hold (20/s × 3 s)", held - first, 60.0, 0.15, 5.0);
    assert_near("the stages' integral", total, 180.0, 0.05, 2.0);
    assert_eq!(record["status"], "completed");

    // Checked like every job field: the stage and field are named, nothing starts.
    for (bad, named) in [
        (r#"{"stages": [{"duration_secs": 2, "rps": -1}]}"#, "stages[0].rps"),
        (r#"{"stages": [{"duration_secs": 2, "rps": 1}, {"duration_secs": 2, "users": 1}]}"#, "stages[1]"),
        (r#"{"stages": [], "scenario": "normal"}"#, "stages"),
    ] {
        let res = sidecar.post("/jobs", Some(bad));
        assert_eq!(res.status, 422, "{bad}: {}", res.body);
        let error = res.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.starts_with(&format!("{named}: ")), "{bad}: {error}");
    }
    assert_eq!(sidecar.get_json("/status")["job"], Value::Null);
}

#[test]
fn stress_holds_max_within_one_percent() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    let job = start_job(&sidecar, r#"{"scenario": "stress", "duration_secs": 5, "max_rps": 60}"#);
    let record = wait_for_end(&sidecar, &job_id(&job), Duration::from_secs(10));
    let sent = record["summary"]["requests"]["sent"].as_f64().unwrap();
    assert_near("requests of 5 s at 60 req/s", sent, 300.0, 0.01, 0.0);
    assert!(eventually(Duration::from_secs(3), || target_count(&target, None) as f64 == sent));
    assert_eq!(record["summary"]["requests"]["dropped"], 0);
}

#[test]
fn a_ramp_up_sends_half_of_max_over_the_ramp_then_holds_max() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    // 6 s at up to 40 req/s, rising from 0 over the first 4 s: 20 requests
    // in the first 2 s, 60 in the next 2 (80 over the ramp, half of max ×
    // 4 s), then 80 over the 2 s hold: 160 in all, where no ramp sends 240.
    let job = start_job(&sidecar, r#"{"scenario": "normal", "duration_secs": 6, "max_rps": 40, "ramp_up_secs": 4}"#);
    assert_eq!(job["ramp_up_secs"], 4.0, "{job}");
    let started = Instant::now();
    let at = |secs: f64| {
        sleep(Duration::from_secs_f64(secs).saturating_sub(started.elapsed()));
        target_count(&target, None) as f64
    };
    let (first, ramp) = (at(2.0), at(4.0));
    let record = wait_for_end(&sidecar, &job_id(&job), Duration::from_secs(10));
    let summary = &record["summary"];
    let requests = &summary["requests"];
    // What the schedule made due: sent, or dropped if the engine fell behind.
    let due = requests["sent"].as_f64().unwrap() + requests["dropped"].as_f64().unwrap();
    let sent = requests["sent"].as_f64().unwrap();
    let caught_up = eventually(Duration::from_secs(3), || target_count(&target, None) as f64 == sent);
    let total = target_count(&target, None) as f64;
    assert!(caught_up, "the target saw {total} requests, the summary says {sent} were sent: {summary}");
    eprintln!(
        "ramp-up at the target: {first} in the first 2 s, {} in the next 2, {} in the hold",
        ramp - first,
        total - ramp
    );
    assert_near("first half of the ramp (a quarter of its requests)", first, 20.0, 0.2, 4.0);
    assert_near("the whole ramp (half of max × 4 s)", ramp, 80.0, 0.1, 5.0);
    assert_near("the whole job (the ramp's 80 and 2 s at max)", due, 160.0, 0.0, 2.0);
    assert_near("the hold (max × 2 s)", total - ramp, 80.0, 0.1, 5.0);
    assert_eq!(record["status"], "completed");
    assert_near("target rate of the summary", summary["target_rps"].as_f64().unwrap(), 160.0 / 6.0, 0.05, 0.5);
}

#[test]
fn latency_degradation_pauses_its_traffic() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    // 20 s at 50 req/s (a request every 20 ms, ±10 % jitter), in active
    // stretches of 0.5-2 s each followed by a pause of 0.1-0.5 s
    // (uniform; src/scenario.rs). The schedule stands still in a pause:
    // nothing is sent during it, nothing is made up after it.
    let (secs, rps) = (20.0, 50.0);
    let job = start_job(&sidecar, r#"{"scenario": "latency_degradation", "duration_secs": 20, "max_rps": 50}"#);
    let id = job_id(&job);
    // The target's count, as often as it can be read, until the job ends.
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sidecar.get_json(&format!("/jobs/{id}"))["status"] == "running" && Instant::now() < deadline {
        samples.push((Instant::now(), target_count(&target, None)));
        sleep(Duration::from_millis(10));
    }
    let record = wait_for_end(&sidecar, &id, Duration::from_secs(5));
    assert_eq!(record["status"], "completed", "{record}");
    let requests = &record["summary"]["requests"];
    let sent = requests["sent"].as_f64().unwrap();
    let due = sent + requests["dropped"].as_f64().unwrap();
    assert!(eventually(Duration::from_secs(3), || target_count(&target, None) as f64 == sent));
    // Certain, whatever the draw: the fewest pauses 20 s can hold come with
    // 2 s stretches and 0.1 s pauses, which begin at 2.0, 4.1, … 18.8 s: 9
    // of them, 0.9 s in all, so at most 50 × 19.1 requests are due (a
    // normal job sends 1 000). And a pause is never longer than the
    // stretch before it, so at least half of 20 s is active.
    let most = rps * (secs - 0.9);
    assert!(due <= most + 1.0 && due >= rps * secs / 2.0 - 1.0, "{due} requests due; at most {most} with pauses");
    // Seen at the target: the longest time its count stood still, between
    // two readings. Beside a pause of P s that is at least P less two
    // reading intervals (a few tens of ms; 50 ms on a busy machine). At
    // least 9 pauses come (about 13 on average), each under 0.25 s with
    // probability 0.375: none of them longer is a chance of 0.375^9 =
    // 1.5e-4 at worst (0.375^13 = 3e-6 on average). 0.15 s is 7 requests
    // due and none arriving: no jitter of the rate does that.
    let still = samples
        .iter()
        .enumerate()
        .map(|(i, (t0, n0))| {
            let last_same = samples[i..].iter().take_while(|(_, n)| n == n0).last().map_or(*t0, |(t, _)| *t);
            last_same.duration_since(*t0)
        })
        .max()
        .unwrap_or_default();
    eprintln!("latency degradation: {due} requests due in 20 s; the target stood still for {still:?} at most");
    assert!(samples.len() > 100, "only {} readings", samples.len());
    assert!(still >= Duration::from_millis(150), "no pause seen: the count never stood still for 150 ms ({still:?})");
}

#[test]
fn presets_one_job_at_a_time_stop_and_a_mode_switch_that_wins() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "burst"), ("BURST_RPS", "5")]);
    let presets = sidecar.get_json("/presets")["presets"].clone();
    let names: Vec<&str> = presets.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["gentle", "moderate", "stress"]);
    assert_eq!(presets[0], json!({"name": "gentle", "scenario": "normal", "max_rps": 10.0, "duration_secs": 30.0}));

    // A preset, a field overridden.
    let job = start_job(&sidecar, r#"{"preset": "gentle", "max_rps": 8}"#);
    let id = job_id(&job);
    assert_eq!(
        (job["preset"].as_str(), job["max_rps"].as_f64(), job["duration_secs"].as_f64()),
        (Some("gentle"), Some(8.0), Some(30.0))
    );
    let second = sidecar.post("/jobs", Some(r#"{"preset": "stress"}"#));
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.json()["running_job_id"], id.as_str());
    assert_eq!(sidecar.get_json("/status")["job"]["job_id"], id.as_str(), "the running job at once");

    let stopped = sidecar.post(&format!("/jobs/{id}/stop"), None);
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    let stopped = stopped.json();
    assert_eq!((stopped["status"].as_str(), stopped["stop_reason"].as_str()), (Some("stopped"), Some("requested")));
    assert!(stopped["summary"]["requests"]["sent"].is_u64(), "{stopped}");
    // Idempotent: the same record again.
    let again = sidecar.post(&format!("/jobs/{id}/stop"), None);
    assert_eq!((again.status, again.json()), (200, stopped.clone()));
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["rps"].as_f64()), (Some("burst"), Some(5.0)), "{status}");

    // Its story as a k6 script: 8 req/s for 30 s.
    let script = sidecar.get(&format!("/export/k6?job={id}"));
    assert_eq!(script.status, 200, "{}", script.body);
    assert!(script.body.contains("30s") && script.body.contains("normal"), "{}", script.body);

    // A mode switch stops the job and wins: nothing comes back.
    let job = start_job(&sidecar, r#"{"scenario": "normal", "duration_secs": 60, "max_rps": 5}"#);
    let switched = sidecar.post("/mode/overload", None);
    assert_eq!(switched.status, 200);
    assert_eq!(switched.json()["stopped_job"], json!({"job_id": job_id(&job), "status": "stopped"}));
    let record = sidecar.get_json(&format!("/jobs/{}", job_id(&job)));
    assert_eq!(record["stop_reason"], "mode_switch");
    assert_eq!(sidecar.get_json("/status")["mode"], "overload");

    // Newest first, each with its summary.
    let jobs = sidecar.get_json("/jobs")["jobs"].clone();
    let ids: Vec<&str> = jobs.as_array().unwrap().iter().filter_map(|j| j["job_id"].as_str()).collect();
    assert_eq!(ids, [job_id(&job).as_str(), id.as_str()]);
    assert!(jobs.as_array().unwrap().iter().all(|j| j["summary"].is_object()));
    for (method, path) in [("GET", "/jobs/job-99-0000"), ("POST", "/jobs/nope/stop"), ("GET", "/jobs/nope/events")] {
        let res = request(sidecar.addr, method, path, &[], None);
        assert_eq!(res.status, 404, "{method} {path}: {}", res.body);
        assert!(res.json()["error"].as_str().is_some_and(|e| e.contains("GET /jobs")), "{}", res.body);
    }
}

#[test]
fn a_timed_mode_comes_back_and_a_custom_ramp_starts_from_the_current_rate() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[("BURST_RPS", "20")]);
    let res = sidecar.post("/mode/burst?duration_secs=2", None);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json(), json!({"mode": "burst", "rps": 20, "returns_in_secs": 2.0}));
    sleep(Duration::from_millis(1000));
    assert_eq!(sidecar.get_json("/status")["mode"], "burst");
    assert!(eventually(Duration::from_secs(3), || sidecar.get_json("/status")["mode"] == "pause"));
    // About 2 s of burst arrived (first slot at once, the return within the driver's tick).
    let burst = target_count(&target, None) as f64;
    assert_near("requests of a 2 s burst at 20 req/s", burst, 40.0, 0.1, 3.0);

    // From 0 to 40 req/s in 4 s: 20 requests in the first 2 s, 60 in the next.
    let res = sidecar.post("/mode/custom", Some(r#"{"rps": 40, "ramp_secs": 4}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["ramp"], json!({"from_rps": 0.0, "secs": 4.0}));
    let started = Instant::now();
    let at = |secs: f64| {
        sleep(Duration::from_secs_f64(secs).saturating_sub(started.elapsed()));
        target_count(&target, None) as f64 - burst
    };
    let (half, whole) = (at(2.0), at(4.0));
    let held = at(5.0) - whole;
    eprintln!("ramp at the target: {half} in the first 2 s, {} in the next 2, {held} in the next second", whole - half);
    assert_near("first half of the ramp", half, 20.0, 0.2, 4.0);
    assert_near("second half of the ramp", whole - half, 60.0, 0.15, 4.0);
    assert_near("the rate held after it", held, 40.0, 0.15, 3.0);
    let res = sidecar.post("/mode/custom", Some(r#"{"rps": 10, "ramp_secs": 2}"#));
    assert_eq!(res.json()["ramp"]["from_rps"], 40.0, "a new ramp starts where the rate is");
}

/// An open `text/event-stream`: the events as they arrive, with their time.
pub(crate) struct EventStream {
    stream: TcpStream,
    buffer: String,
}

impl EventStream {
    fn open(sidecar: &Proc, path: &str) -> (u16, EventStream) {
        EventStream::open_from(sidecar, path, [127, 0, 0, 1])
    }

    /// From the loopback address `source` (each client address has a share
    /// of the streams).
    pub(crate) fn open_from(sidecar: &Proc, path: &str, source: [u8; 4]) -> (u16, EventStream) {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        socket.bind(&std::net::SocketAddr::from((source, 0)).into()).expect("bind the source address");
        socket.connect(&sidecar.addr.into()).expect("connect");
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n", sidecar.addr).unwrap();
        let mut events = EventStream { stream, buffer: String::new() };
        while !events.buffer.contains("\r\n\r\n") {
            assert!(events.fill(), "no answer head");
        }
        let (head, rest) = events.buffer.split_once("\r\n\r\n").map(|(h, r)| (h.to_string(), r.to_string())).unwrap();
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
        assert!(status != 200 || head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");
        events.buffer = rest;
        (status, events)
    }

    /// Reads more; false at the end of the stream.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
                true
            }
            Err(e) => panic!("reading the stream: {e}"),
        }
    }

    /// The next event (name, data) and when it arrived; `None` when the
    /// stream ends. Chunked framing lines are skipped (they hold no colon).
    fn next(&mut self) -> Option<(String, Value, Instant)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n").filter(|_| self.buffer.contains("data: ")) {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if !name.is_empty() {
                    let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("event data {data:?}: {e}"));
                    return Some((name, data, Instant::now()));
                }
                continue;
            }
            if !self.fill() {
                return None;
            }
        }
    }
}

#[test]
fn a_job_stream_sends_progress_every_half_second_then_its_summary_and_closes() {
    let _timing = timing_test();
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    let (status, mut life) = EventStream::open(&sidecar, "/events");
    assert_eq!(status, 200);
    let job = start_job(&sidecar, r#"{"scenario": "normal", "duration_secs": 3, "max_rps": 20}"#);
    let id = job_id(&job);
    let (status, mut stream) = EventStream::open(&sidecar, &format!("/jobs/{id}/events"));
    assert_eq!(status, 200);
    let mut events = Vec::new();
    while let Some(event) = stream.next() {
        events.push(event);
    }
    let names: Vec<&str> = events.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"summary"), "{names:?}");
    let progress: Vec<&(String, Value, Instant)> = events.iter().filter(|(n, _, _)| n == "progress").collect();
    assert!((4..=8).contains(&progress.len()), "{} progress events in 3 s: {names:?}", progress.len());
    let gaps: Vec<f64> = progress.windows(2).map(|w| w[1].2.duration_since(w[0].2).as_secs_f64()).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    assert!((0.35..=0.7).contains(&mean), "progress every {mean:.3} s on average: {gaps:?}");
    let last = &progress.last().unwrap().1;
    assert_eq!(last["job_id"], id.as_str());
    assert!(last["target_rps"] == 20.0 && last["latency_ms"]["from_scheduled"].is_object(), "{last}");
    let summary = &events.last().unwrap().1;
    assert_eq!((summary["job_id"].as_str(), summary["status"].as_str()), (Some(id.as_str()), Some("completed")));
    assert!(summary["summary"]["requests"]["sent"].as_u64() > Some(50), "{summary}");
    // The stream of an ended job: its summary alone, then the end.
    let (_, mut ended) = EventStream::open(&sidecar, &format!("/jobs/{id}/events"));
    assert_eq!(ended.next().map(|(n, d, _)| (n, d["status"].clone())), Some(("summary".into(), json!("completed"))));
    assert!(ended.next().is_none());

    // The sidecar's stream saw the job start and end, mode changes, stats.
    let mut seen = Vec::new();
    while !seen.iter().any(|n| n == "stats") || !seen.iter().any(|n| n == "job_ended") {
        let Some((name, _, _)) = life.next() else { panic!("sidecar stream ended: {seen:?}") };
        seen.push(name);
    }
    for expected in ["job_started", "mode", "job_ended", "stats"] {
        assert!(seen.iter().any(|n| n == expected), "no {expected} in {seen:?}");
    }
    // Shutdown ends it cleanly, with a last `shutdown` event.
    let mut sidecar = sidecar;
    sidecar.signal(libc::SIGTERM);
    let mut last = None;
    while let Some((name, _, _)) = life.next() {
        last = Some(name);
    }
    assert_eq!(last.as_deref(), Some("shutdown"));
    assert!(sidecar.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()), "{}", sidecar.output());
}

#[test]
fn config_and_the_job_history_survive_a_restart_with_state_dir_and_a_corrupt_file_does_not_stop_it() {
    let target = start_demo_target(&[]);
    let dir = std::env::temp_dir().join(format!("trafficgen-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir_str = dir.to_str().unwrap().to_string();
    let env = [("INITIAL_MODE", "pause"), ("STATE_DIR", dir_str.as_str())];

    let mut sidecar = start_sidecar(&target, &env);
    let startup = sidecar.get_json("/config");
    assert_eq!(startup["steady_rps"], 2.0);
    // A second sidecar on the same directory would overwrite the first's
    // state: it stops at start with one line and exit 2.
    let mut second = std::process::Command::new(BIN)
        .envs(sidecar_env(&format!("http://{}", target.addr), &env))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run a second sidecar");
    let exited = eventually(Duration::from_secs(5), || matches!(second.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = second.kill();
    }
    let second = second.wait_with_output().expect("the second sidecar's output");
    assert!(exited, "a second sidecar on the same STATE_DIR started");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("STATE_DIR") && stderr.contains("in use"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    let res = request(sidecar.addr, "PUT", "/config", &[], Some(r#"{"steady_rps": 7, "jitter": 0.1}"#));
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!((res.json()["steady_rps"].as_f64(), res.json()["jitter"].as_f64()), (Some(7.0), Some(0.1)));
    let job = start_job(&sidecar, r#"{"scenario": "normal", "duration_secs": 1, "max_rps": 5}"#);
    wait_for_end(&sidecar, &job_id(&job), Duration::from_secs(5));
    assert!(sidecar.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));

    let mut sidecar = start_sidecar(&target, &env);
    let config = sidecar.get_json("/config");
    assert_eq!((config["steady_rps"].as_f64(), config["jitter"].as_f64()), (Some(7.0), Some(0.1)), "{config}");
    let res = sidecar.post("/mode/steady", None);
    assert_eq!(res.json()["rps"], 7, "the restored rate is the mode's rate");
    let jobs = sidecar.get_json("/jobs")["jobs"].clone();
    assert_eq!(jobs[0]["job_id"], job_id(&job).as_str(), "{jobs}");
    assert_eq!(jobs[0]["status"], "completed");
    // Reset: the start-up values, kept as such (and the answer says so).
    let res = sidecar.post("/config/reset", None);
    let mut kept = startup.clone();
    kept["persisted"] = json!(true);
    assert_eq!((res.status, res.json()), (200, kept));
    assert!(sidecar.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()));
    let sidecar = start_sidecar(&target, &env);
    assert_eq!(sidecar.get_json("/config"), startup);
    drop(sidecar);

    // A corrupt file is reported, set aside, and the sidecar runs.
    let file = dir.join("trafficgen-state.json");
    std::fs::write(&file, b"{\"version\": 1, \"jobs\": [tru").unwrap();
    let sidecar = start_sidecar(&target, &env);
    assert_eq!(sidecar.get_json("/config"), startup);
    assert_eq!(sidecar.get_json("/jobs")["jobs"], json!([]));
    let warned = sidecar.wait_for_log(
        |v| v["level"] == "warn" && v["message"].as_str().is_some_and(|m| m.contains("state file not used")),
        Duration::from_secs(2),
    );
    assert!(warned.is_some(), "{}", sidecar.output());
    let set_aside = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
    assert!(set_aside, "the corrupt file is kept aside for a look");
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_job_config_and_timed_mode_requests_get_4xx_and_change_nothing() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "burst"), ("MAX_RPS", "100")]);
    let config = sidecar.get_json("/config");
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("POST", "/jobs", None, 400, "needs a JSON body"),
        ("POST", "/jobs", Some("{"), 400, "not valid JSON"),
        ("POST", "/jobs", Some("[1]"), 422, "body"),
        ("POST", "/jobs", Some(r#"{"scenario": "tsunami", "duration_secs": 5, "max_rps": 5}"#), 422, "scenario"),
        ("POST", "/jobs", Some(r#"{"preset": "wild"}"#), 422, "preset"),
        ("POST", "/jobs", Some(r#"{"scenario": "peak", "max_rps": 5}"#), 422, "duration_secs"),
        ("POST", "/jobs", Some(r#"{"scenario": "peak", "duration_secs": 0.5, "max_rps": 5}"#), 422, "duration_secs"),
        ("POST", "/jobs", Some(r#"{"scenario": "peak", "duration_secs": 86401, "max_rps": 5}"#), 422, "duration_secs"),
        ("POST", "/jobs", Some(r#"{"scenario": "peak", "duration_secs": 5, "max_rps": 101}"#), 422, "MAX_RPS"),
        ("POST", "/jobs", Some(r#"{"scenario": "peak", "duration_secs": 5, "max_rps": 0}"#), 422, "max_rps"),
        (
            "POST",
            "/jobs",
            Some(r#"{"scenario": "peak", "duration_secs": 5, "max_rps": 5, "ramp_up_secs": 6}"#),
            422,
            "ramp_up_secs",
        ),
        (
            "POST",
            "/jobs",
            Some(r#"{"scenario": "normal", "duration_secs": 5, "max_rps": 5, "endpoints": ["list_orders", "nope"]}"#),
            422,
            "'nope'",
        ),
        ("POST", "/jobs", Some(r#"{"preset": "gentle", "turbo": true}"#), 422, "turbo"),
        ("PUT", "/config", None, 400, "JSON object"),
        ("PUT", "/config", Some(r#"{"steady_rps": 101}"#), 422, "steady_rps"),
        ("PUT", "/config", Some(r#"{"jitter": 2}"#), 422, "jitter"),
        ("PUT", "/config", Some(r#"{"request_timeout_ms": 0}"#), 422, "request_timeout_ms"),
        ("PUT", "/config", Some(r#"{"max_in_flight": 100000}"#), 422, "max_in_flight"),
        ("PUT", "/config", Some(r#"{"target_url": "http://x"}"#), 422, "cannot be changed at runtime"),
        ("PUT", "/config", Some(r#"{"steady_rps": "7"}"#), 422, "steady_rps"),
        ("POST", "/mode/burst?duration_secs=0", None, 422, "duration_secs"),
        ("POST", "/mode/burst?duration=60", None, 422, "duration_secs"),
        ("POST", "/mode/custom", Some(r#"{"rps": 5, "ramp_secs": -1}"#), 422, "ramp_secs"),
        ("POST", "/mode/custom", Some(r#"{"rps": 5, "ramp_secs": 1e9}"#), 422, "ramp_secs"),
        ("GET", "/logs?limit=0", None, 422, "limit"),
        ("GET", "/logs?lines=5", None, 422, "limit"),
        ("DELETE", "/jobs", None, 405, "allowed"),
        ("GET", "/config/reset", None, 405, "allowed"),
        ("POST", "/jobs", Some(&format!(r#"{{"preset": "gentle", "pad": "{}"}}"#, "x".repeat(20_000))), 413, "larger"),
    ];
    for (method, path, body, status, words) in cases {
        let res = request(sidecar.addr, method, path, &[], *body);
        assert_eq!(res.status, *status, "{method} {path} {body:?}: {}", res.body);
        let error = res.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(words), "{method} {path} {body:?}: {error:?} should mention {words:?}");
    }
    assert_eq!(sidecar.get_json("/jobs")["jobs"], json!([]));
    assert_eq!(sidecar.get_json("/config"), config);
    let status = sidecar.get_json("/status");
    assert_eq!((status["mode"].as_str(), status["rps"].as_f64()), (Some("burst"), Some(20.0)));
    let logs = sidecar.get_json("/logs?limit=5")["lines"].clone();
    assert!(!logs.as_array().unwrap().is_empty() && logs.as_array().unwrap().len() <= 5, "{logs}");
}

#[test]
fn jobs_and_config_need_the_token_and_refuse_foreign_origins() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause"), ("CONTROL_TOKEN", "s3cret-token")]);
    let job = r#"{"preset": "gentle"}"#;
    let auth = [("Authorization", "Bearer s3cret-token")];
    for (method, path, body) in [
        ("POST", "/jobs", Some(job)),
        ("PUT", "/config", Some(r#"{"steady_rps": 3}"#)),
        ("POST", "/config/reset", None),
    ] {
        assert_eq!(request(sidecar.addr, method, path, &[], body).status, 401, "{method} {path}");
        let foreign = [("Origin", "http://evil.example"), auth[0]];
        assert_eq!(request(sidecar.addr, method, path, &foreign, body).status, 403, "{method} {path}");
    }
    assert_eq!(sidecar.get_json("/jobs")["jobs"], json!([]));
    let res = request(sidecar.addr, "POST", "/jobs", &auth, Some(job));
    assert_eq!(res.status, 201, "{}", res.body);
    let id = job_id(&res.json());
    assert_eq!(sidecar.post(&format!("/jobs/{id}/stop"), None).status, 401);
    assert_eq!(request(sidecar.addr, "POST", &format!("/jobs/{id}/stop"), &auth, None).status, 200);
    // Reading jobs needs it too (they may hold what an operator would not
    // publish); the settings, numbers only, stay open.
    assert_eq!(sidecar.get(&format!("/jobs/{id}")).status, 401);
    assert_eq!(request(sidecar.addr, "GET", &format!("/jobs/{id}"), &auth, None).status, 200);
    assert_eq!(sidecar.get("/config").status, 200);
}

/// Needs the workload engine (branch workload-engine), which makes the
/// draw honour the job's focus; this branch only sets it.
#[test]
fn focus_endpoints_narrow_the_requests_to_those_named() {
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    let body = r#"{"scenario": "normal", "duration_secs": 2, "max_rps": 30, "endpoints": ["list_orders"]}"#;
    let job = start_job(&sidecar, body);
    let record = wait_for_end(&sidecar, &job_id(&job), Duration::from_secs(6));
    // Once the target has everything the job sent, one scrape gives both
    // counts (a straggler landing between two scrapes would differ them).
    let sent = record["summary"]["requests"]["sent"].as_u64().expect("requests sent");
    let arrived = eventually(Duration::from_secs(3), || target_count(&target, None) == sent);
    assert!(arrived, "the target saw {} of the {sent} requests the job sent", target_count(&target, None));
    let samples = parse_metrics(&target.get("/metrics").body);
    let listed = sum(&samples, "demo_target_requests_total", &[("route", "list_orders")]) as u64;
    assert!(listed >= 55, "{listed} list_orders of about 60: {record}");
    assert_eq!(sum(&samples, "demo_target_requests_total", &[]) as u64, listed, "only list_orders was asked for");
    // Its script draws the same way; the story alone would draw from all.
    let script = sidecar.get(&format!("/export/k6?job={}", job_id(&job)));
    assert_eq!(script.status, 200, "{}", script.body);
    assert!(script.body.contains("Only list_orders is drawn by weight"), "{}", script.body);
    let story = sidecar.get("/export/k6?scenario=normal&duration_secs=2&max_rps=30");
    assert!(!story.body.contains("Only list_orders"), "{}", story.body);
    let asked = sidecar.get("/export/k6?scenario=normal&duration_secs=2&max_rps=30&endpoints=list_orders");
    assert_eq!(asked.body, script.body, "endpoints= asks for what the job did");
}

/// Error injection sends 30 % of the requests to the workload's error request.
#[test]
fn focus_error_injection_sends_a_third_to_the_error_request() {
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    // Each request goes to the error request with probability 0.3, so the
    // shares are judged as binomial draws, not against a fixed margin (one of
    // ±0.06 over 200 requests was under 2 standard deviations and flaked).
    let job = start_job(&sidecar, r#"{"scenario": "error_injection", "duration_secs": 4, "max_rps": 100}"#);
    let record = wait_for_end(&sidecar, &job_id(&job), Duration::from_secs(8));
    // Both counts from one scrape, once the job's last requests arrived.
    let requests = &record["summary"]["requests"];
    let sent = requests["sent"].as_u64().expect("requests sent");
    let arrived = eventually(Duration::from_secs(3), || target_count(&target, None) == sent);
    assert!(arrived, "the target saw {} of the {sent} requests the job sent", target_count(&target, None));
    let samples = parse_metrics(&target.get("/metrics").body);
    let errors = sum(&samples, "demo_target_requests_total", &[("route", "error")]);
    let total = sum(&samples, "demo_target_requests_total", &[]);
    assert_binomial_share("share of error requests", errors, total, 0.3);
    // Half of the error requests fail (rate=0.5): 15 % of the answered ones
    // (the summary's error_ratio is failed over answered, rounded).
    let (failed, successful) = (requests["failed"].as_f64().unwrap(), requests["successful"].as_f64().unwrap());
    assert_binomial_share("failed share of the summary", failed, failed + successful, 0.15);
    let ratio = record["summary"]["error_ratio"].as_f64().unwrap();
    assert!((ratio - failed / (failed + successful)).abs() < 1e-3, "error_ratio {ratio}: {record}");
}

#[test]
fn at_most_64_streams_are_open_and_a_reader_that_left_or_a_head_holds_none() {
    let target = start_demo_target(&[]);
    let sidecar = paused_sidecar(&target, &[]);
    for _ in 0..70 {
        assert_eq!(request(sidecar.addr, "HEAD", "/events", &[], None).status, 200);
    }
    // Four client addresses, each within its share of 16.
    let open: Vec<EventStream> = (0..64)
        .map(|i| {
            let (status, stream) = EventStream::open_from(&sidecar, "/events", [127, 0, 0, 1 + i / 16]);
            assert_eq!(status, 200, "stream {i}");
            stream
        })
        .collect();
    let (status, _) = EventStream::open_from(&sidecar, "/events", [127, 0, 0, 9]);
    assert_eq!(status, 503, "the 65th stream");
    drop(open);
    // A stream whose reader left is freed at its next event (stats, every second).
    let reopened = eventually(Duration::from_secs(5), || EventStream::open(&sidecar, "/events").0 == 200);
    assert!(reopened, "the streams of readers that left were never freed");
}
