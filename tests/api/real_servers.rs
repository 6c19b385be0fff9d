//! Servers nobody on this project wrote, on 127.0.0.1: nginx (Debian) and
//! uvicorn (PyPI) with short keep-alive timeouts. Their own counts must match
//! ours, with no false failures. `ci/install-test-servers.sh` installs them.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::*;
use crate::scripted::{have_tools, metrics_of};

/// A loopback port outside the ephemeral range (so no connection of ours
/// can take it meanwhile) that is free now.
pub fn server_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let start = NEXT.fetch_add(37, std::sync::atomic::Ordering::SeqCst);
    let seed = u64::from(std::process::id()) * 7919 + start;
    for i in 0..200u64 {
        let port = 20_000 + ((seed + i * 104_729) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// A server process of ours, killed by its PID on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        // The child is `timeout`, which passes SIGTERM on to the server; a
        // SIGKILL would end `timeout` alone and leave the server running.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a plain system call on a child of ours not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str, log: &Path) {
    let up = eventually(Duration::from_secs(15), || std::net::TcpStream::connect(addr).is_ok());
    if !up || !matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
        panic!("{what} did not start on {addr}: {}", std::fs::read_to_string(log).unwrap_or_default());
    }
}

fn private_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trafficgen-{name}-{}-{}", std::process::id(), server_port()));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    dir
}

/// nginx with one process, `keepalive_timeout` as given, answering the
/// orders API with fixed JSON; with `tls` (certificate and key PEM) on https.
pub fn start_nginx(keepalive_timeout: &str, tls: Option<(&str, &str)>) -> Server {
    let dir = private_dir("nginx");
    let port = server_port();
    let (ssl, ssl_files) = match tls {
        Some((cert, key)) => {
            std::fs::write(dir.join("cert.pem"), cert).unwrap();
            std::fs::write(dir.join("key.pem"), key).unwrap();
            (" ssl", format!("ssl_certificate {0}/cert.pem; ssl_certificate_key {0}/key.pem;", dir.display()))
        }
        None => ("", String::new()),
    };
    let conf = format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    keepalive_timeout {keepalive_timeout};
    keepalive_requests 1000000;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    map $request_method $orders_answer {{
        POST '{{"id":1,"status":"created"}}';
        default '[]';
    }}
    server {{
        listen 127.0.0.1:{port}{ssl};
        {ssl_files}
        location = /orders {{ return 200 $orders_answer; }}
        location /orders/ {{ return 200 '{{"id":1}}'; }}
        location = /nginx_status {{ stub_status; }}
    }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let log = dir.join("logs/error.log");
    let mut child = Command::new("timeout")
        .args(["300", "nginx", "-p"])
        .arg(&dir)
        .args(["-c", "nginx.conf", "-e", "logs/error.log"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(&mut child, addr, "nginx", &log);
    Server { child, addr, dir }
}

impl Server {
    /// nginx's `stub_status` counters (requests, accepted connections),
    /// each counting this poll itself. Only for a plain-http nginx.
    pub fn nginx_counts(&self) -> (u64, u64) {
        let body = request(self.addr, "GET", "/nginx_status", &[], None).body;
        let numbers: Vec<u64> =
            body.lines().nth(2).unwrap_or_default().split_whitespace().filter_map(|n| n.parse().ok()).collect();
        assert_eq!(numbers.len(), 3, "stub_status: {body}");
        (numbers[2], numbers[0])
    }
}

const UVICORN_APP: &str = r#"
import json
count = 0

async def app(scope, receive, send):
    global count
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if scope["path"] == "/count":
        status, body = 200, json.dumps({"requests": count}).encode()
    else:
        count += 1
        post = scope["method"] == "POST"
        status, body = (201, b'{"id":1}') if post else (200, b"[]")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"#;

/// uvicorn serving a tiny orders app that counts its requests, with
/// `--timeout-keep-alive` as given.
pub fn start_uvicorn(keep_alive_secs: u32) -> Server {
    let dir = private_dir("uvicorn");
    std::fs::File::create(dir.join("orders_app.py")).unwrap().write_all(UVICORN_APP.as_bytes()).unwrap();
    let port = server_port();
    let log = dir.join("logs/uvicorn.log");
    let mut child = Command::new("timeout")
        .args(["300", "uvicorn", "orders_app:app", "--app-dir"])
        .arg(&dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--lifespan", "off", "--no-access-log"])
        .args(["--timeout-keep-alive", &keep_alive_secs.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start uvicorn");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(&mut child, addr, "uvicorn", &log);
    Server { child, addr, dir }
}

/// uvicorn serving `module:app` from `files` (name, contents) written into a
/// private directory, with `env` set (and `PATH`), on a free loopback port.
pub fn start_uvicorn_app(files: &[(&str, &str)], module: &str, env: &[(&str, &str)]) -> Server {
    let dir = private_dir("uvicorn-app");
    for (name, contents) in files {
        std::fs::write(dir.join(name), contents).unwrap();
    }
    let port = server_port();
    let log = dir.join("logs/uvicorn.log");
    let mut command = Command::new("timeout");
    command
        .args(["300", "uvicorn", &format!("{module}:app"), "--app-dir"])
        .arg(&dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--lifespan", "off", "--no-access-log"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("APP_DIR", &dir);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child =
        command.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().expect("start uvicorn");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_listening(&mut child, addr, "uvicorn", &log);
    Server { child, addr, dir }
}

/// Runs the sidecar against `url` at 2/s for `fast`, then at `slow_rps` (gaps
/// near the server's keep-alive timeout) for `slow`; returns it paused.
fn steady_then_slow(url: &str, fast: Duration, slow_rps: &str, slow: Duration) -> Proc {
    let extra = [("INITIAL_MODE", "steady"), ("JITTER", "0.1")];
    let sidecar = Proc::start(&[], &sidecar_env(url, &extra));
    std::thread::sleep(fast);
    let answer = sidecar.post("/mode/custom", Some(&format!(r#"{{"rps":{slow_rps}}}"#)));
    assert_eq!(answer.status, 200, "{}", answer.body);
    std::thread::sleep(slow);
    sidecar.post("/mode/pause", None);
    assert!(eventually(Duration::from_secs(10), || sidecar.get_json("/status")["in_flight"] == 0));
    sidecar
}

#[test]
fn nginx_with_a_1s_keepalive_sees_every_request_and_no_false_failures() {
    if !have_tools(&["nginx"]) {
        return;
    }
    let nginx = start_nginx("1s", None);
    let url = format!("http://{}", nginx.addr);
    let (requests_0, accepts_0) = nginx.nginx_counts();
    // 2/s for 5 s: one connection carries it.
    let sidecar = Proc::start(&[], &sidecar_env(&url, &[("INITIAL_MODE", "steady"), ("JITTER", "0.1")]));
    std::thread::sleep(Duration::from_secs(5));
    let (_, accepts_1) = nginx.nginx_counts();
    let new_connections = accepts_1 - accepts_0 - 1; // less the second poll's own
    eprintln!("nginx 2 req/s: {} requests over {new_connections} new connections in 5 s", stat(&sidecar, "total"));
    assert!(new_connections <= 2, "{new_connections} new connections in 5 s at 2/s");

    // Gaps of 0.9-1.1 s against a 1 s keep-alive: the idle closes race our sends.
    assert_eq!(sidecar.post("/mode/custom", Some(r#"{"rps":1}"#)).status, 200);
    std::thread::sleep(Duration::from_secs(8));
    sidecar.post("/mode/pause", None);
    assert!(eventually(Duration::from_secs(10), || sidecar.get_json("/status")["in_flight"] == 0));
    let (requests_2, _) = nginx.nginx_counts();
    let status = sidecar.get_json("/status");
    let retries = sum(&metrics_of(&sidecar), "trafficgen_connection_retries_total", &[]);
    eprintln!("nginx then 1 req/s against keepalive_timeout 1s: {}; {retries} retries", status["stats"]);
    assert_eq!(status["stats"]["failed"], 0, "false failures: {status}");
    // Every request reached nginx exactly once (the polls in between excluded).
    let seen = requests_2 - requests_0 - 2; // less the second and third polls
    assert_eq!(seen, status["stats"]["total"].as_u64().unwrap(), "nginx's count and ours differ");
}

#[test]
fn uvicorn_with_a_2s_keepalive_sees_every_request_and_no_false_failures() {
    if !have_tools(&["uvicorn"]) {
        return;
    }
    let uvicorn = start_uvicorn(2);
    let url = format!("http://{}", uvicorn.addr);
    let sidecar = steady_then_slow(&url, Duration::from_secs(4), "0.55", Duration::from_secs(8));
    let status = sidecar.get_json("/status");
    let counted = request(uvicorn.addr, "GET", "/count", &[], None).json()["requests"].as_u64().unwrap();
    let retries = sum(&metrics_of(&sidecar), "trafficgen_connection_retries_total", &[]);
    eprintln!("uvicorn keep-alive 2 s: {}; the app counted {counted}; {retries} retries", status["stats"]);
    assert_eq!(status["stats"]["failed"], 0, "false failures: {status}");
    assert_eq!(counted, status["stats"]["total"].as_u64().unwrap(), "the app's count and ours differ");
}
