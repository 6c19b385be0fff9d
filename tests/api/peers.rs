//! Misbehaving targets on 127.0.0.1 that the demo target cannot imitate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

#[derive(Clone)]
pub enum Behaviour {
    /// Answers every request with these raw bytes, keeping the connection.
    Answer(Vec<u8>),
    /// Answers with a head declaring `len` body bytes, then streams them.
    HugeBody { len: usize },
    /// Closes each connection with unread data, which makes the kernel send RST.
    Reset,
    /// Accepts and never answers.
    Hang,
}

pub struct FakeTarget {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeTarget {
    pub fn start(behaviour: Behaviour) -> FakeTarget {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                match &behaviour {
                    Behaviour::Hang => held.push(conn),
                    other => {
                        let (other, count, stopped) = (other.clone(), Arc::clone(&count), Arc::clone(&stopped));
                        thread::spawn(move || serve(conn, &other, &count, &stopped));
                    }
                }
            }
        });
        FakeTarget { addr, requests, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests read completely so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(mut conn: TcpStream, behaviour: &Behaviour, count: &AtomicUsize, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    if let Behaviour::Reset = behaviour {
        // Wait for the request to arrive, then close without reading it.
        let mut probe = [0u8; 1];
        let _ = conn.peek(&mut probe);
        return;
    }
    while !stop.load(Ordering::SeqCst) {
        if !read_request(&mut conn) {
            return;
        }
        count.fetch_add(1, Ordering::SeqCst);
        let written = match behaviour {
            Behaviour::Answer(bytes) => conn.write_all(bytes),
            Behaviour::HugeBody { len } => write_huge(&mut conn, *len),
            Behaviour::Reset | Behaviour::Hang => return,
        };
        if written.is_err() {
            return;
        }
    }
}

fn write_huge(conn: &mut TcpStream, len: usize) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n");
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
