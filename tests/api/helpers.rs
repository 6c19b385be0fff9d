//! Starting the real binary and talking HTTP to it, like a user with curl.
//! Everything listens on 127.0.0.1 and every process is killed on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_trafficgen");

/// A process of ours, with its stdout lines collected as they come.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// How many of the two output readers reached the end of their pipe.
    readers_done: Arc<std::sync::atomic::AtomicUsize>,
    pub addr: SocketAddr,
    /// `CONTROL_TOKEN` it was started with: [`Proc::get_json`] reads state
    /// as the operator does, with it (reads of logs, jobs and the workload
    /// need it when one is set).
    token: Option<String>,
}

impl Proc {
    /// Starts `trafficgen args…` with exactly `env` (nothing inherited but
    /// PATH) and waits for its "listening" log line to learn the port.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut proc = Proc::spawn(args, env);
        let listening = |v: &serde_json::Value| v["message"].as_str().is_some_and(|m| m.contains("listening"));
        let deadline = Instant::now() + Duration::from_secs(15);
        let port = loop {
            if let Some(line) = proc.wait_for_log(listening, Duration::ZERO) {
                break line["port"].as_u64();
            }
            if !proc.is_running() || Instant::now() >= deadline {
                thread::sleep(Duration::from_millis(50)); // let the last lines in
                panic!("no listening line; output so far:\n{}", proc.output());
            }
            thread::sleep(Duration::from_millis(20));
        }
        .expect("port in the listening line");
        proc.addr.set_port(u16::try_from(port).expect("port"));
        proc
    }

    /// Starts `trafficgen args…` like [`Proc::start`] but returns at once,
    /// without learning the port (`addr` has port 0): for runs that exit by
    /// themselves or log in text.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(BIN);
        command.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start trafficgen");
        let (lines, readers_done) = drain_output(&mut child);
        let token = env.iter().find(|(k, _)| *k == "CONTROL_TOKEN").map(|(_, v)| v.to_string());
        Proc { child, lines, readers_done, addr: SocketAddr::from(([127, 0, 0, 1], 0)), token }
    }

    /// Every JSON log line matching `pred` so far.
    pub fn logs_matching(&self, pred: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| pred(v))
            .collect()
    }

    /// Waits up to `timeout` until at least `n` JSON log lines match `pred`;
    /// returns those there are (fewer on timeout).
    pub fn wait_for_logs(
        &self,
        n: usize,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.logs_matching(&pred);
            if found.len() >= n || Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first raw output line (text logs, stderr lines are prefixed
    /// `stderr: `) containing `needle`, waiting up to `timeout`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.lines.lock().unwrap().iter().find(|l| l.contains(needle)).cloned();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to this process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.pid()).expect("pid");
        // SAFETY: a plain system call on a child of ours that has not been reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Its last lines may still be in the pipes: wait for the
                // readers to reach their end (on a busy machine they lag).
                let done = &self.readers_done;
                eventually(Duration::from_secs(5), || done.load(std::sync::atomic::Ordering::Acquire) == 2);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first JSON log line matching `pred`, waiting up to `timeout`.
    pub fn wait_for_log(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| pred(v));
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line so far (stderr lines prefixed), for failure messages.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: Option<&str>) -> Response {
        request(self.addr, "POST", path, &[], body)
    }

    /// `GET path` as JSON, asserting a 200; with the sidecar's control
    /// token, if it has one.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
        let res = request(self.addr, "GET", path, &headers, None);
        assert_eq!(res.status, 200, "GET {path}: {}", res.body);
        res.json()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sidecar's usual test settings, aimed at `target`; `extra` overrides.
pub fn sidecar_env<'a>(target: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> =
        vec![("TARGET_URL", target), ("PORT", "0"), ("BIND", "127.0.0.1"), ("WARMUP_SECS", "0"), ("JITTER", "0.2")];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v));
    }
    env
}

/// A demo target on 127.0.0.1, on a free port unless `args` names one.
pub fn start_demo_target(args: &[&str]) -> Proc {
    let mut all = vec!["demo-target", "--bind", "127.0.0.1"];
    if !args.contains(&"--port") {
        all.extend(["--port", "0"]);
    }
    all.extend_from_slice(args);
    Proc::start(&all, &[])
}

pub fn start_sidecar(target: &Proc, extra: &[(&str, &str)]) -> Proc {
    let url = format!("http://{}", target.addr);
    Proc::start(&[], &sidecar_env(&url, extra))
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 exchange with `Connection: close`.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body.unwrap_or("").as_bytes());
    raw_request(addr, &raw)
}

/// Sends `raw` bytes as they are and parses the answer.
pub fn raw_request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(raw).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer");
    parse_response(&answer)
}

fn parse_response(answer: &[u8]) -> Response {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers.get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response { status, headers, body }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Prometheus text exposition as (name{labels}) → value, e.g.
/// `demo_target_requests_total{code="201",route="create_order"}`.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, HashMap::new()),
            };
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            }
        })
        .collect()
}

fn parse_labels(s: &str) -> HashMap<String, String> {
    s.split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: HashMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }
}

/// Sum of the samples named `name` whose labels include all of `labels`.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples.iter().filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == *v)).map(|s| s.value).sum()
}

/// Requests the demo target has answered, in total or for one route.
pub fn target_count(target: &Proc, route: Option<&str>) -> u64 {
    let samples = parse_metrics(&target.get("/metrics").body);
    let labels: Vec<(&str, &str)> = route.map(|r| vec![("route", r)]).unwrap_or_default();
    sum(&samples, "demo_target_requests_total", &labels) as u64
}

/// Rate seen at the target over `window`.
pub fn observed_rate(target: &Proc, window: Duration) -> f64 {
    let (t0, n0) = (Instant::now(), target_count(target, None));
    thread::sleep(window);
    let (t1, n1) = (Instant::now(), target_count(target, None));
    (n1 - n0) as f64 / t1.duration_since(t0).as_secs_f64()
}

/// A loopback port nothing listens on, below the ephemeral port range.
///
/// Outside that range the OS never hands the port out on its own (neither to
/// a `bind` to port 0 elsewhere, nor as the source port of a connection), so
/// it stays closed until a test binds it by number. An ephemeral port that
/// was bound and released could be reused meanwhile, or be picked as the
/// source port of a connection to itself: a TCP self-connect, which turns
/// the expected connect error into something else.
pub fn closed_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static TRIES: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()))
        .unwrap_or(32768)
        .clamp(2048, 65535);
    let span = (low - 1024).min(10_000);
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    for _ in 0..1000 {
        let n = TRIES.fetch_add(1, Ordering::Relaxed);
        let port = low - 1 - (seed.wrapping_add(n.wrapping_mul(7919)) % span);
        let port = u16::try_from(port).expect("port below 65536");
        // Without SO_REUSEADDR a bind fails if anything uses the port at all.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        if socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into()).is_ok() {
            return port;
        }
    }
    panic!("no free port below {low}");
}

/// Tests that load the machine (1 000 req/s and more, starving a process)
/// run one at a time, and not while a test that measures a rate or a time
/// runs: on a busy 2-core machine they would disturb each other.
static LOAD: RwLock<()> = RwLock::new(());

/// Taken by a test that puts heavy load on the machine.
pub fn heavy_test() -> RwLockWriteGuard<'static, ()> {
    LOAD.write().unwrap_or_else(PoisonError::into_inner)
}

/// Taken by a test whose rates or times would be skewed by a heavy test.
pub fn timing_test() -> RwLockReadGuard<'static, ()> {
    LOAD.read().unwrap_or_else(PoisonError::into_inner)
}

/// Pauses the sidecar and waits until nothing is in flight, so its counters
/// (and the target's) hold still and can be compared exactly.
pub fn pause_and_settle(sidecar: &Proc) {
    let res = sidecar.post("/mode/pause", None);
    assert_eq!(res.status, 200, "pause: {}", res.body);
    let settled = eventually(Duration::from_secs(10), || sidecar.get_json("/status")["in_flight"] == 0);
    assert!(settled, "requests still in flight 10 s after pause: {}", sidecar.get_json("/status"));
}

/// Seconds between two JSON log lines, by their own `timestamp`s (the
/// process's clock, not when the test read them).
pub fn secs_between(earlier: &serde_json::Value, later: &serde_json::Value) -> f64 {
    let secs = |v: &serde_json::Value| {
        let ts = v["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp in {v}"));
        let time = ts.split('T').nth(1).unwrap_or_else(|| panic!("no time in {ts}")).trim_end_matches('Z');
        time.split(':').map(|p| p.parse::<f64>().expect("a number")).fold(0.0, |acc, p| acc * 60.0 + p)
    };
    (secs(later) - secs(earlier)).rem_euclid(86_400.0)
}

/// `hits` of `n` independent draws that each hit with probability `p`:
/// the share must lie within 4.5 standard deviations of `p` (a false alarm
/// about once in 150 000 runs), yet a share that is off by the amount a bug
/// would cause still fails once `n` is a few hundred.
pub fn assert_binomial_share(what: &str, hits: f64, n: f64, p: f64) {
    assert!(n >= 50.0, "{what}: only {n} draws, too few to judge a share");
    let share = hits / n;
    let bound = 4.5 * (p * (1.0 - p) / n).sqrt();
    assert!((share - p).abs() <= bound, "{what}: {hits} of {n} = {share:.3} where {p} ± {bound:.3} was expected");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// Resident memory of a process of ours, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

/// The most resident memory a process of ours has had so far, in KiB: a
/// buffer freed again before a test looks still shows here.
pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM:")
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// Open file descriptors of a process of ours.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// The `stats` of `/status`, and one counter of it.
pub fn stat(sidecar: &Proc, key: &str) -> u64 {
    sidecar.get_json("/status")["stats"][key].as_u64().unwrap_or_else(|| panic!("no stats.{key}"))
}

/// Reads the child's stdout and stderr (stderr lines marked) into lines for
/// the whole life of the process, so it never blocks on a full pipe; the
/// counter says how many of the two reached their end.
fn drain_output(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, Arc<std::sync::atomic::AtomicUsize>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let readers_done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pipes = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as _),
    ];
    for (i, pipe) in pipes.into_iter().enumerate() {
        let (sink, done) = (Arc::clone(&lines), Arc::clone(&readers_done));
        let pipe = pipe.expect("pipe");
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(if i == 0 { line } else { format!("stderr: {line}") });
            }
            done.fetch_add(1, std::sync::atomic::Ordering::Release);
        });
    }
    (lines, readers_done)
}

/// Starts `wrapper… trafficgen args…` (a namespace, a tracer) with exactly
/// `env`, like [`Proc::start`]; the process is the wrapper, which must exec
/// trafficgen or stay its parent.
pub fn start_wrapped(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut command = Command::new(wrapper[0]);
    command.args(&wrapper[1..]).arg(BIN).args(args).env_clear();
    command.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start wrapper");
    let (lines, readers_done) = drain_output(&mut child);
    let token = env.iter().find(|(k, _)| *k == "CONTROL_TOKEN").map(|(_, v)| v.to_string());
    let mut proc = Proc { child, lines, readers_done, addr: SocketAddr::from(([127, 0, 0, 1], 0)), token };
    let listening = |v: &serde_json::Value| v["message"].as_str().is_some_and(|m| m.contains("listening"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let port = loop {
        if let Some(line) = proc.wait_for_log(listening, Duration::ZERO) {
            break line["port"].as_u64();
        }
        if !proc.is_running() || Instant::now() >= deadline {
            thread::sleep(Duration::from_millis(50));
            panic!("no listening line; output so far:\n{}", proc.output());
        }
        thread::sleep(Duration::from_millis(20));
    }
    .expect("port in the listening line");
    proc.addr.set_port(u16::try_from(port).expect("port"));
    proc
}

/// Threads of a process of ours.
pub fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// Raises this test process's soft open-file limit to its hard limit (for
/// tests that hold thousands of sockets); returns the limit now in force.
pub fn raise_own_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max.min(1 << 20);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}
