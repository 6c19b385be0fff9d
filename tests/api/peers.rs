//! Misbehaving targets on 127.0.0.1 that the demo target cannot imitate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub enum Behaviour {
    /// Answers every request with these raw bytes, keeping the connection.
    Answer(Vec<u8>),
    /// Answers with a head declaring `len` body bytes, then streams them.
    HugeBody { len: usize },
    /// Answers with a head without a length, streams `len` bytes and closes:
    /// the client cannot know the size before it has read it.
    HugeUnframedBody { len: usize },
    /// Closes each connection with unread data, which makes the kernel send RST.
    Reset,
    /// Accepts, reads whatever comes and never answers; closes when the
    /// peer does, noting how long the peer kept the connection.
    Hang,
}

/// What a fake target saw, shared with its connection threads.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    /// When each complete request arrived.
    arrivals: Mutex<Vec<Instant>>,
    /// The request line of each complete request (`GET /orders HTTP/1.1`).
    request_lines: Mutex<Vec<String>>,
    /// For `Hang`: how long each connection stayed open before the peer closed it.
    held_for: Mutex<Vec<Duration>>,
}

pub struct FakeTarget {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
}

impl FakeTarget {
    pub fn start(behaviour: Behaviour) -> FakeTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_here, stopped) = (Arc::clone(&seen), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (behaviour, seen, stopped) = (behaviour.clone(), Arc::clone(&seen_here), Arc::clone(&stopped));
                match behaviour {
                    Behaviour::Hang => thread::spawn(move || hold(conn, &seen)),
                    other => thread::spawn(move || serve(conn, &other, &seen, &stopped)),
                };
            }
        });
        FakeTarget { addr, seen, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests read completely so far.
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// When each complete request arrived, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.seen.arrivals.lock().unwrap().clone()
    }

    /// The request line of each complete request, in order.
    pub fn request_lines(&self) -> Vec<String> {
        self.seen.request_lines.lock().unwrap().clone()
    }

    /// For `Hang`: how long each closed connection was held by the peer.
    pub fn held_for(&self) -> Vec<Duration> {
        self.seen.held_for.lock().unwrap().clone()
    }
}

impl Drop for FakeTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Reads until the peer closes (never answering) and notes for how long.
fn hold(mut conn: TcpStream, seen: &Seen) {
    let accepted = Instant::now();
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = [0u8; 4096];
    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
    seen.held_for.lock().unwrap().push(accepted.elapsed());
}

fn serve(mut conn: TcpStream, behaviour: &Behaviour, seen: &Seen, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    if let Behaviour::Reset = behaviour {
        // Wait for the request to arrive, then close without reading it.
        let mut probe = [0u8; 1];
        let _ = conn.peek(&mut probe);
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        let Some(request_line) = read_request(&mut conn) else { return };
        seen.arrivals.lock().unwrap().push(Instant::now());
        seen.request_lines.lock().unwrap().push(request_line);
        seen.requests.fetch_add(1, Ordering::SeqCst);
        let written = match behaviour {
            Behaviour::Answer(bytes) => conn.write_all(bytes),
            Behaviour::HugeBody { len } => write_huge(&mut conn, *len, true),
            Behaviour::HugeUnframedBody { len } => {
                let _ = write_huge(&mut conn, *len, false);
                return;
            }
            Behaviour::Reset | Behaviour::Hang => return,
        };
        if written.is_err() {
            return;
        }
    }
}

fn write_huge(conn: &mut TcpStream, len: usize, framed: bool) -> std::io::Result<()> {
    let head = if framed {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n")
    } else {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".to_string()
    };
    conn.write_all(head.as_bytes())?;
    let chunk = vec![b' '; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n])?;
        left -= n;
    }
    Ok(())
}

/// Reads one request (head and Content-Length body) and returns its request
/// line; `None` at EOF or error.
fn read_request(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let len = text
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_string))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    Some(text.lines().next().unwrap_or_default().to_string())
}

/// A complete HTTP/1.1 answer with `body`.
pub fn answer(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}
