//! An OTLP/HTTP receiver written for the tests: it takes `POST /v1/traces`
//! with protobuf bodies on 127.0.0.1, decodes them with the official
//! OpenTelemetry protobuf definitions (the `opentelemetry-proto` crate,
//! through `prost`), and keeps every span. It can be told to answer an
//! error status, to be slow, or to hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use prost::Message;
use trafficgen::base::otlp::proto::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use trafficgen::base::otlp::proto::common::v1::any_value::Value;
use trafficgen::base::otlp::proto::trace::v1::Span;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Accept,
    /// Reads the batch, answers this status, keeps nothing.
    Status(u16),
    /// Waits this long before it accepts the batch.
    Slow(Duration),
    /// Reads the batch and never answers.
    Hang,
}

/// A span with the service that sent it.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    pub fn attr(&self, key: &str) -> Option<Value> {
        self.span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()).and_then(|v| v.value)
    }

    pub fn text(&self, key: &str) -> Option<String> {
        match self.attr(key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key) {
            Some(Value::IntValue(n)) => Some(n),
            _ => None,
        }
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Posts seen, whatever was answered.
    posts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start(behaviour: Behaviour) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let posts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, b, p, st) = (Arc::clone(&spans), Arc::clone(&behaviour), Arc::clone(&posts), Arc::clone(&stop));
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, b, p, st) = (Arc::clone(&s), Arc::clone(&b), Arc::clone(&p), Arc::clone(&st));
                        thread::spawn(move || serve(stream, &s, &b, &p, &st));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver { addr, spans, behaviour, posts, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.spans.lock().unwrap().len()
    }

    pub fn posts(&self) -> u64 {
        self.posts.load(Ordering::Relaxed)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut stream: TcpStream,
    spans: &Mutex<Vec<Received>>,
    behaviour: &Mutex<Behaviour>,
    posts: &AtomicU64,
    stop: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // A whole request: head, then Content-Length bytes of body.
        let request = loop {
            if let Some(request) = take_request(&mut buffer) {
                break request;
            }
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        };
        posts.fetch_add(1, Ordering::Relaxed);
        let (path, body) = request;
        let now = *behaviour.lock().unwrap();
        let status = match now {
            Behaviour::Hang => {
                // Holds the connection without a word until the test ends.
                while !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            Behaviour::Status(code) => code,
            Behaviour::Slow(wait) => {
                thread::sleep(wait);
                200
            }
            Behaviour::Accept => 200,
        };
        if status == 200 {
            assert_eq!(path, "/v1/traces", "the spec's path for traces");
            let decoded = ExportTraceServiceRequest::decode(&body[..]).expect("an OTLP protobuf body");
            let mut kept = spans.lock().unwrap();
            for resource_spans in decoded.resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| r.attributes.iter())
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.clone())
                    .and_then(|v| v.value)
                    .map(|v| match v {
                        Value::StringValue(s) => s,
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    kept.extend(scope.spans.into_iter().map(|span| Received { service: service.clone(), span }));
                }
            }
        }
        let answer = if status == 200 { ExportTraceServiceResponse::default().encode_to_vec() } else { Vec::new() };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&answer)).is_err() {
            return;
        }
    }
}

/// The first complete request in `buffer` (removed from it): its path and body.
fn take_request(buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let head_end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if buffer.len() < head_end + length {
        return None;
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some((path, body))
}
