//! A target on 127.0.0.1 whose every answer is scripted per request: raw
//! bytes, closes and resets at exact points of a connection's life, and
//! endless streams. It counts connections and answers and keeps the request
//! lines it saw, so a test can compare them with the sidecar's counts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What to do with one request.
#[derive(Clone)]
pub enum Action {
    /// Write these bytes and keep the connection.
    Answer(Vec<u8>),
    /// Write these bytes and close.
    AnswerAndClose(Vec<u8>),
    /// Close without a byte of answer (FIN).
    Close,
    /// Close without a byte of answer, with unread data and no linger: RST.
    Reset,
    /// Write `head` once, then `unit` until the peer goes away.
    Stream { head: Vec<u8>, unit: Vec<u8> },
}

/// Decides the action for a request from its request line and its index on
/// its connection (0 = the first request of a fresh connection).
pub type Script = dyn Fn(&str, usize) -> Action + Send + Sync;

pub struct ScriptedTarget {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedTarget {
    pub fn start(script: impl Fn(&str, usize) -> Action + Send + Sync + 'static) -> ScriptedTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target = ScriptedTarget {
            addr,
            connections: Arc::default(),
            answered: Arc::default(),
            lines: Arc::default(),
            stop: Arc::default(),
        };
        let script: Arc<Script> = Arc::new(script);
        let (connections, answered, lines, stop) =
            (target.connections.clone(), target.answered.clone(), target.lines.clone(), target.stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                let (script, answered, lines) = (script.clone(), answered.clone(), lines.clone());
                thread::spawn(move || serve(conn, &*script, &answered, &lines));
            }
        });
        target
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests answered with an `Answer` or `AnswerAndClose` so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Request lines seen so far (`GET /orders/7 HTTP/1.1`).
    pub fn request_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for ScriptedTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(mut conn: TcpStream, script: &Script, answered: &AtomicUsize, lines: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    for index in 0.. {
        // Wait for the next request to start arriving before deciding, so a
        // close happens exactly as the request comes in.
        let mut probe = [0u8; 1];
        if !matches!(conn.peek(&mut probe), Ok(1)) {
            return;
        }
        let action = {
            let Some(line) = peek_request_line(&conn) else { return };
            lines.lock().unwrap().push(line.clone());
            script(&line, index)
        };
        match action {
            Action::Reset => {
                // Unread data and a zero linger: the kernel answers with RST.
                let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
                return;
            }
            Action::Close => {
                let _ = read_request(&mut conn);
                let _ = conn.shutdown(std::net::Shutdown::Both);
                return;
            }
            _ => {}
        }
        if !read_request(&mut conn) {
            return;
        }
        match action {
            Action::Answer(bytes) => {
                if conn.write_all(&bytes).is_err() {
                    return;
                }
                answered.fetch_add(1, Ordering::SeqCst);
            }
            Action::AnswerAndClose(bytes) => {
                if conn.write_all(&bytes).is_ok() {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                let _ = conn.shutdown(std::net::Shutdown::Write);
                // Let the peer read it all before the socket goes.
                let mut sink = [0u8; 1024];
                while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
            Action::Stream { head, unit } => {
                let _ = conn.write_all(&head);
                // Bounded, as every test traffic must be: 64 MiB at most.
                let mut sent = 0;
                while sent < 64 * 1024 * 1024 && conn.write_all(&unit).is_ok() {
                    sent += unit.len();
                }
                return;
            }
            Action::Close | Action::Reset => unreachable!(),
        }
    }
}

/// The first line of the request at the front of the socket, unread.
fn peek_request_line(conn: &TcpStream) -> Option<String> {
    let mut buf = [0u8; 2048];
    for _ in 0..200 {
        let n = conn.peek(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].windows(2).position(|w| w == b"\r\n") {
            return Some(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
        thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Reads one request (head and Content-Length body); false at EOF or error.
fn read_request(conn: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).is_ok()
}

/// `HTTP/1.1 {status}` with `headers`, a Content-Length and `body`.
pub fn ok_answer(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

/// Samples of the sidecar's `/metrics`.
pub fn metrics_of(sidecar: &crate::helpers::Proc) -> Vec<crate::helpers::Sample> {
    crate::helpers::parse_metrics(&sidecar.get("/metrics").body)
}

/// Whether tools a test needs are installed; in CI (`CI` set) a missing one
/// is a failure, elsewhere the test says so and passes over it.
pub fn have_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI needs {missing:?} (ci/install-test-servers.sh installs them)");
    eprintln!("SKIPPED: {missing:?} not installed (ci/install-test-servers.sh installs them)");
    false
}
