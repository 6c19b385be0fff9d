//! `TargetClient`: the engine's own HTTP/1.1 client, the only place that
//! opens connections to the target.
//!
//! Built for one job, sending a small fixed set of requests as cheaply as
//! possible: each request renders into its connection's buffer (no per-request
//! URL parsing or header maps), goes out in one `write`, and the answer is read
//! straight into a reused buffer. Connections are pooled last-in-first-out so
//! the working set stays as small as the load needs and the rest age out.
//! Redirects are never followed; nothing is retried.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::http::{AnswerError, AnswerParser, Progress, RequestTemplate};
use super::mix::Endpoint;
use super::ring::OrderId;
use crate::config::TargetUrl;
use crate::metrics::ErrorKind;

/// Largest answer body read; a longer one ends the exchange unread and the
/// connection is closed, so a target sending huge bodies cannot grow our memory.
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Idle connections older than this are closed rather than reused: below the
/// 5 s keep-alive of common servers, so we rarely meet one they closed.
const IDLE_KEEP: Duration = Duration::from_secs(4);
/// How long a name lookup of the target is trusted.
const DNS_TTL: Duration = Duration::from_secs(5);
/// Read buffer of a new connection; it grows for big answers (up to the
/// body cap) and is shrunk back to this afterwards.
const BUFFER_START: usize = 8 * 1024;

/// One request of the mix, with its data drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateOrder { product_id: u8, quantity: u8 },
    ListOrders,
    GetOrder(OrderId),
}

impl Request {
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Request::CreateOrder { .. } => Endpoint::CreateOrder,
            Request::ListOrders => Endpoint::ListOrders,
            Request::GetOrder(_) => Endpoint::GetOrder,
        }
    }
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The target answered. `created` is the id of a successful create.
    Answered { status: u16, created: Option<OrderId> },
    /// No answer.
    Failed { kind: ErrorKind, error: ClientError },
}

/// Why no answer came; for the log only (never a metric label).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve the target host: {0}")]
    Resolve(io::Error),
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("could not send the request: {0}")]
    Send(io::Error),
    #[error("could not read the answer: {0}")]
    Receive(io::Error),
    #[error("{0}")]
    Answer(AnswerError),
}

impl ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Resolve(_) | ClientError::Connect(_) => ErrorKind::Connect,
            ClientError::Send(e) | ClientError::Receive(e) if e.kind() == io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        }
    }
}

/// A connection with its buffers. Readiness is managed by hand (`AsyncFd`):
/// once an answer is complete its read readiness is cleared without the
/// extra `read` that would otherwise be needed to see "would block", so a
/// request costs one `write` and (usually) one `read`.
struct Connection {
    io: AsyncFd<TcpStream>,
    /// The request being sent.
    out: Vec<u8>,
    /// The answer being read: `buf[..filled]`; `buf` is always initialised.
    buf: Vec<u8>,
    filled: usize,
    idle_since: Instant,
}

impl Connection {
    async fn write_all(&self) -> io::Result<()> {
        let mut rest = &self.out[..];
        while !rest.is_empty() {
            let mut ready = self.io.writable().await?;
            match ready.try_io(|io| io.get_ref().write(rest)) {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Reads until `parser` has a complete answer.
    async fn read_answer(&mut self, parser: &mut AnswerParser) -> Result<super::http::Answer, ClientError> {
        self.filled = 0;
        loop {
            if self.buf.len() - self.filled < 1024 {
                let grown = (self.buf.len() * 2).max(BUFFER_START);
                self.buf.resize(grown, 0);
            }
            let mut ready = self.io.readable().await.map_err(ClientError::Receive)?;
            let read = ready.try_io(|io| io.get_ref().read(&mut self.buf[self.filled..]));
            let n = match read {
                Ok(result) => result.map_err(ClientError::Receive)?,
                Err(_would_block) => continue,
            };
            self.filled += n;
            match parser.advance(&self.buf[..self.filled], n == 0).map_err(ClientError::Answer)? {
                Progress::Incomplete => {}
                Progress::Complete(answer) => {
                    // Nothing more is due on this connection until the next
                    // request; a later close or stray byte sets it again.
                    ready.clear_ready_matching(tokio::io::Ready::READABLE);
                    return Ok(answer);
                }
            }
        }
    }
}

pub struct TargetClient {
    template: RequestTemplate,
    host: String,
    port: u16,
    literal: Option<IpAddr>,
    resolved: RefCell<Option<(Vec<SocketAddr>, Instant)>>,
    next_address: Cell<usize>,
    /// Idle connections, most recently used at the back.
    idle: RefCell<VecDeque<Connection>>,
    /// A clock the worker sets now and then, so pooling costs no clock read
    /// per request; ageing connections needs no finer time.
    clock: Cell<Instant>,
}

impl fmt::Debug for TargetClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetClient").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

impl TargetClient {
    pub fn new(target: &TargetUrl) -> Self {
        let user_agent = concat!("trafficgen/", env!("CARGO_PKG_VERSION"));
        TargetClient {
            template: RequestTemplate::new(target.authority(), target.path_prefix(), user_agent),
            host: target.host().to_string(),
            port: target.port(),
            literal: target.host().parse().ok(),
            resolved: RefCell::new(None),
            next_address: Cell::new(0),
            idle: RefCell::new(VecDeque::new()),
            clock: Cell::new(Instant::now()),
        }
    }

    /// Tells the client the time (see `clock`).
    pub fn set_clock(&self, now: Instant) {
        self.clock.set(now);
    }

    /// Sends `request` and reads its answer. Not bounded in time: the
    /// caller puts a deadline on it.
    pub async fn send(self: Rc<Self>, request: Request) -> Outcome {
        match self.exchange(&request).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Failed { kind: error.kind(), error },
        }
    }

    async fn exchange(&self, request: &Request) -> Result<Outcome, ClientError> {
        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match request {
            Request::CreateOrder { product_id, quantity } => {
                let mut json = [0u8; 40];
                let len = render_order(&mut json, *product_id, *quantity);
                self.template.post_orders(&mut conn.out, &json[..len]);
            }
            Request::ListOrders => self.template.get_orders(&mut conn.out, None),
            Request::GetOrder(id) => self.template.get_orders(&mut conn.out, Some(id.as_str())),
        }
        conn.write_all().await.map_err(ClientError::Send)?;
        let wants_body = matches!(request, Request::CreateOrder { .. });
        let mut parser = AnswerParser::new(wants_body, MAX_BODY_BYTES);
        let answer = conn.read_answer(&mut parser).await?;
        if answer.reusable {
            self.put_idle(conn);
        }
        let created = match answer.body {
            Some(body) if (200..300).contains(&answer.status) => created_id(&body),
            _ => None,
        };
        Ok(Outcome::Answered { status: answer.status, created })
    }

    /// The most recently used idle connection that is still open.
    fn take_idle(&self) -> Option<Connection> {
        let now = self.clock.get();
        let mut idle = self.idle.borrow_mut();
        while let Some(conn) = idle.pop_back() {
            if now.saturating_duration_since(conn.idle_since) > IDLE_KEEP {
                // The rest are older still.
                idle.clear();
                return None;
            }
            // A connection the target closed (or wrote to unasked) reads as
            // ready; an open, quiet one is pending. No system call needed:
            // the readiness is what the event loop last saw.
            let mut cx = Context::from_waker(Waker::noop());
            if conn.io.poll_read_ready(&mut cx).is_pending() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after a complete, reusable answer.
    fn put_idle(&self, mut conn: Connection) {
        if conn.buf.len() > BUFFER_START {
            conn.buf = vec![0; BUFFER_START];
        }
        conn.idle_since = self.clock.get();
        self.idle.borrow_mut().push_back(conn);
    }

    /// Closes idle connections past their keep time; call now and then.
    pub fn close_stale(&self) {
        let now = self.clock.get();
        let mut idle = self.idle.borrow_mut();
        while idle.front().is_some_and(|c| now.saturating_duration_since(c.idle_since) > IDLE_KEEP) {
            idle.pop_front();
        }
    }

    pub fn idle_connections(&self) -> usize {
        self.idle.borrow().len()
    }

    async fn connect(&self) -> Result<Connection, ClientError> {
        let address = self.address().await.map_err(ClientError::Resolve)?;
        // A plain non-blocking socket registered once with the reactor: going
        // through tokio's `TcpStream` would register it, deregister it for
        // `into_std` and register it again, three epoll changes per connection,
        // which at start-up of a high rate delays every first request.
        let socket = socket2::Socket::new(socket2::Domain::for_address(address), socket2::Type::STREAM, None)
            .map_err(ClientError::Connect)?;
        socket.set_nonblocking(true).map_err(ClientError::Connect)?;
        // Requests go out in one write; never hold one back waiting for an ACK.
        socket.set_tcp_nodelay(true).map_err(ClientError::Connect)?;
        match socket.connect(&address.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(ClientError::Connect(e)),
        }
        let stream = TcpStream::from(socket);
        // SAFETY: a `TcpStream` owns its descriptor and always reports the
        // same one, open until the `AsyncFd` (its only owner) drops it.
        let io = unsafe { AsyncFd::register_with_interest(stream, Interest::READABLE | Interest::WRITABLE) }
            .map_err(|e| ClientError::Connect(e.into()))?;
        // The connection is made (or refused) when the socket turns writable.
        let mut ready = io.writable().await.map_err(ClientError::Connect)?;
        if let Some(e) = io.get_ref().take_error().map_err(ClientError::Connect)? {
            return Err(ClientError::Connect(e));
        }
        // Writable it stays: the request write that follows needs no new wake-up.
        ready.retain_ready();
        Ok(Connection {
            io,
            out: Vec::with_capacity(256),
            buf: vec![0; BUFFER_START],
            filled: 0,
            idle_since: self.clock.get(),
        })
    }

    /// The address to connect to: the literal one, or the next of the
    /// host's addresses (round robin), looked up again after `DNS_TTL`.
    async fn address(&self) -> io::Result<SocketAddr> {
        if let Some(ip) = self.literal {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let cached = self.pick(|(addrs, at)| (at.elapsed() < DNS_TTL).then_some(addrs));
        if let Some(address) = cached {
            return Ok(address);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port)).await?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
        }
        *self.resolved.borrow_mut() = Some((addrs, Instant::now()));
        self.pick(|(addrs, _)| Some(addrs)).ok_or_else(|| io::Error::other("no addresses"))
    }

    fn pick(&self, usable: impl Fn(&(Vec<SocketAddr>, Instant)) -> Option<&Vec<SocketAddr>>) -> Option<SocketAddr> {
        let resolved = self.resolved.borrow();
        let addrs = resolved.as_ref().and_then(usable)?;
        let i = self.next_address.get();
        self.next_address.set(i.wrapping_add(1));
        addrs.get(i % addrs.len()).copied()
    }
}

/// `{"product_id":N,"quantity":N}` into `out`; returns its length.
fn render_order(out: &mut [u8; 40], product_id: u8, quantity: u8) -> usize {
    use std::io::Write;
    let mut cursor = io::Cursor::new(&mut out[..]);
    let _ = write!(cursor, r#"{{"product_id":{product_id},"quantity":{quantity}}}"#);
    usize::try_from(cursor.position()).unwrap_or(0)
}

/// The `id` of a create answer, if it has a usable one: a string of URL-safe
/// characters, or a number kept as the target wrote it (an id above 2^64
/// must not turn into `1.8446744073709552e19`). With a repeated `id` key the
/// last one counts, as in JavaScript's and Python's JSON parsers.
fn created_id(body: &[u8]) -> Option<OrderId> {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde_json::value::RawValue;
    use std::borrow::Cow;

    struct LastId;
    impl<'de> Visitor<'de> for LastId {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut id = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "id" {
                    id = Some(map.next_value::<&'de RawValue>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(id)
        }
    }

    let mut de = serde_json::Deserializer::from_slice(body);
    let raw = (&mut de).deserialize_map(LastId).ok()??;
    de.end().ok()?;
    let text = raw.get();
    match text.as_bytes().first()? {
        b'"' => OrderId::parse(&serde_json::from_str::<Cow<'_, str>>(text).ok()?),
        b'-' | b'0'..=b'9' => OrderId::parse(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_id_reads_the_id_of_a_create_answer() {
        assert_eq!(created_id(br#"{"id":42,"status":"created"}"#).unwrap().as_str(), "42");
        assert_eq!(created_id(br#"{"status":"created","id":"ord-7"}"#).unwrap().as_str(), "ord-7");
        assert_eq!(created_id(br#"{"status":"created"}"#), None);
        assert_eq!(created_id(b"<html>not json</html>"), None);
        assert_eq!(created_id(br#"{"id":"../../admin"}"#), None);
        assert_eq!(created_id(br#"[1,2]"#), None);
        assert_eq!(created_id(br#"{"id":null}"#), None);
        assert_eq!(created_id(br#"{"id":{"nested":1}}"#), None);
        assert_eq!(created_id(br#"{"id":1} trailing"#), None);
    }

    #[test]
    fn created_id_keeps_the_ids_own_text_and_takes_the_last_of_repeated_keys() {
        let big = br#"{"id":18446744073709551616,"status":"created"}"#;
        assert_eq!(created_id(big).unwrap().as_str(), "18446744073709551616");
        assert_eq!(created_id(br#"{"id":-7}"#).unwrap().as_str(), "-7");
        assert_eq!(created_id(br#"{"id":1,"status":"created","id":2}"#).unwrap().as_str(), "2");
        assert_eq!(created_id(br#"{"id":"a-1","id":"b-2"}"#).unwrap().as_str(), "b-2");
        assert_eq!(created_id(br#"{"i\u0064":"esc"}"#).unwrap().as_str(), "esc");
        assert_eq!(created_id(br#"{"id":"o\u0072d"}"#).unwrap().as_str(), "ord");
    }

    #[test]
    fn order_bodies_render_without_allocating() {
        let mut buf = [0u8; 40];
        let n = render_order(&mut buf, 10, 5);
        assert_eq!(&buf[..n], br#"{"product_id":10,"quantity":5}"#);
    }
}
