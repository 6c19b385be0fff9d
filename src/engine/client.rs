//! `TargetClient`: the engine's HTTP/1.1 client, the only place that opens
//! connections to the target.
//!
//! Built for one job: sending a small fixed set of requests as cheaply as
//! possible. Each request renders into its connection's buffer (no
//! per-request URL parsing or header maps), goes out in one `write`, and the
//! answer is read straight into a reused, bounded buffer. Connections are
//! pooled last-in-first-out so the working set stays as small as the load
//! needs and the rest age out. `https://` is the same client over a rustls
//! session (see [`super::tls`]): the same rules, bounds and error kinds.
//!
//! Redirects are never followed. One thing is retried, as browsers do: a
//! request whose kept-alive connection failed before a single byte of answer
//! came back (the target closed it while idle, just as we sent), once, on a
//! new connection. The target cannot have processed it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::http::{Answer, AnswerError, AnswerParser, Progress, max_answer_bytes};
use super::resolve::{ResolveError, Resolver};
use super::tls::{self, TlsError, TlsSettings, TlsTarget, client_config};
use crate::base::url::TargetUrl;
use crate::observe::metrics::{ErrorKind, RetryCounters, RetryReason};

/// Largest answer body read; a longer one ends the exchange unread and the
/// connection is closed, so a target sending huge bodies cannot grow our memory.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most bytes a connection's read buffer ever holds: the parser refuses an
/// answer before it needs more (head, body cap, chunk framing).
const MAX_BUFFER: usize = max_answer_bytes(MAX_BODY_BYTES);
/// Read buffer of a new connection; it grows for big answers (up to
/// `MAX_BUFFER`) and is shrunk back to this afterwards.
const BUFFER_START: usize = 8 * 1024;
/// Default of `KEEP_ALIVE_MS`: below the 2 s idle timeout of gunicorn,
/// lighttpd's defaults under load and other common servers.
pub const DEFAULT_IDLE_KEEP: Duration = Duration::from_millis(1500);

/// How the client talks to the target, beyond its URL.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// How long an idle connection is kept for reuse (0: never reused).
    pub idle_keep: Duration,
    /// The in-flight bound. A request holds one connection, so no more are
    /// ever open; the idle pool is capped at it too.
    pub max_connections: usize,
    /// How https targets are trusted, checked once at start; `None` for
    /// plain targets (an https target then gets the compiled-in roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// `TLS_INSECURE` is on (said loudly whenever traffic starts).
    pub tls_insecure: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings { idle_keep: DEFAULT_IDLE_KEEP, max_connections: 512, tls: None, tls_insecure: false }
    }
}

/// One request of the workload, rendered, and what its answer must hand
/// back. Its buffer comes back with the outcome, to be reused.
#[derive(Debug)]
pub struct Request {
    /// The complete HTTP/1.1 request.
    pub rendered: Vec<u8>,
    /// Hand the answer's body back (a JSON capture reads it).
    pub keep_body: bool,
    /// Hand the answer's headers back (a header capture reads one).
    pub keep_headers: bool,
    /// A HEAD request: its answer has no body.
    pub head: bool,
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The target answered. `body` and `headers` when they were asked for
    /// (the body only under [`MAX_BODY_BYTES`]).
    Answered { status: u16, body: Option<Vec<u8>>, headers: Vec<(String, Vec<u8>)> },
    /// No answer.
    Failed { kind: ErrorKind, error: ClientError },
}

/// Why no answer came; for the log only (never a metric label).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Resolve(ResolveError),
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("could not send the request: {0}")]
    Send(io::Error),
    #[error("could not read the answer: {0}")]
    Receive(io::Error),
    #[error("{0}")]
    Answer(AnswerError),
    #[error("{0}")]
    Tls(TlsError),
    /// A kept-alive connection broke after its answer had begun.
    #[error("{0} (on a reused connection)")]
    Reused(Box<ClientError>),
}

impl ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Resolve(_) => ErrorKind::Dns,
            ClientError::Connect(_) => ErrorKind::Connect,
            ClientError::Send(e) | ClientError::Receive(e) if e.kind() == io::ErrorKind::TimedOut => ErrorKind::Timeout,
            ClientError::Tls(e) => e.kind(),
            ClientError::Reused(inner) if inner.kind() == ErrorKind::Timeout => ErrorKind::Timeout,
            ClientError::Reused(_) => ErrorKind::Reused,
            _ => ErrorKind::Other,
        }
    }

    /// Whether the request may be resent on a new connection: the
    /// connection failed before any answer byte, so the target cannot have
    /// processed it. Only asked of a reused connection.
    fn retry_reason(&self, answer_bytes: usize) -> Option<RetryReason> {
        if answer_bytes > 0 {
            return None;
        }
        let dropped = |e: &io::Error| match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Some(RetryReason::Reset),
            io::ErrorKind::BrokenPipe => Some(RetryReason::BrokenPipe),
            io::ErrorKind::UnexpectedEof => Some(RetryReason::Closed),
            _ => None,
        };
        match self {
            ClientError::Send(e) => {
                dropped(e).map(|r| if r == RetryReason::Closed { RetryReason::BrokenPipe } else { r })
            }
            ClientError::Receive(e) => dropped(e),
            ClientError::Answer(AnswerError::Truncated) => Some(RetryReason::Closed),
            _ => None,
        }
    }
}

/// A connection with its buffers, and its TLS session on an https target.
/// Readiness is managed by hand (`AsyncFd`): once an answer is complete its
/// read readiness is cleared without the extra `read` that would otherwise
/// be needed to see "would block", so a request costs one `write` and
/// (usually) one `read`.
struct Connection {
    io: AsyncFd<TcpStream>,
    tls: Option<Box<ClientConnection>>,
    /// The answer being read: `buf[..filled]` (plaintext); `buf` is always
    /// initialised.
    buf: Vec<u8>,
    filled: usize,
    /// When it is closed rather than reused.
    expires: Instant,
}

impl Connection {
    async fn write_all(&mut self, request: &[u8]) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            return tls::write_all(&self.io, tls, request).await;
        }
        let mut rest = request;
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

    /// Reads until `parser` has a complete answer. The buffer grows as the
    /// answer needs, never past `MAX_BUFFER`.
    async fn read_answer(&mut self, parser: &mut AnswerParser) -> Result<Answer, ClientError> {
        let Connection { io, tls, buf, filled, .. } = self;
        *filled = 0;
        // The readiness of the latest socket read.
        let mut last_ready = None;
        loop {
            if buf.len() - *filled < 1024 {
                if buf.len() >= MAX_BUFFER {
                    // The parser refuses every answer before this; a guard, not a path.
                    return Err(ClientError::Answer(AnswerError::HeadTooLong));
                }
                let grown = (buf.len() * 2).clamp(BUFFER_START, MAX_BUFFER);
                buf.resize(grown, 0);
            }
            let n = match tls {
                Some(tls) => tls::read(io, tls, &mut buf[*filled..], &mut last_ready).await,
                None => {
                    let mut ready = io.readable().await.map_err(ClientError::Receive)?;
                    match ready.try_io(|io| io.get_ref().read(&mut buf[*filled..])) {
                        Ok(result) => {
                            last_ready = Some(ready);
                            result
                        }
                        Err(_would_block) => continue,
                    }
                }
            }
            .map_err(ClientError::Receive)?;
            *filled += n;
            match parser.advance(&buf[..*filled], n == 0).map_err(ClientError::Answer)? {
                Progress::Incomplete => {}
                Progress::Complete(mut answer) => {
                    // Nothing more is due on this connection until the next
                    // request; a later close or stray byte sets it again.
                    if let Some(ready) = &mut last_ready {
                        ready.clear_ready_matching(tokio::io::Ready::READABLE);
                    }
                    if let Some(tls) = tls {
                        answer.reusable &= tls::is_quiet(tls);
                    }
                    return Ok(answer);
                }
            }
        }
    }

    /// Whether an idle connection is still open and quiet. A connection the
    /// target closed (or wrote to unasked) reads as ready; an open, quiet
    /// one is pending. No system call needed: the readiness is what the
    /// event loop last saw. (On https, what made it ready is read: a
    /// session ticket leaves it good.) A close that crosses our request on
    /// the wire is what the one retry is for.
    fn still_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match (self.io.poll_read_ready(&mut cx), &mut self.tls) {
            (Poll::Pending, _) => true,
            (Poll::Ready(Ok(ready)), Some(tls)) => tls::still_open_after(ready, tls),
            (Poll::Ready(_), _) => false,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls::close(&self.io, tls);
        }
    }
}

pub struct TargetClient {
    resolver: Rc<Resolver>,
    /// How connections to an https target start their session.
    tls: Option<TlsTarget>,
    idle_keep: Duration,
    /// Most idle connections kept.
    max_idle: usize,
    /// Idle connections, most recently used at the back.
    idle: RefCell<VecDeque<Connection>>,
    /// A clock the worker sets now and then (at every send and every sweep),
    /// so pooling costs no clock read per request. It runs at most a sweep
    /// interval behind, which only makes connections expire a little early.
    clock: Cell<Instant>,
    retries: RetryCounters,
}

impl fmt::Debug for TargetClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetClient")
            .field("https", &self.tls.is_some())
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl TargetClient {
    /// A client for `target`. Fails only for https settings that cannot be
    /// used (a CA file that cannot be read, which the configuration checks
    /// at start already, or a host that cannot be a TLS server name).
    pub fn new(target: &TargetUrl, settings: &ClientSettings, retries: RetryCounters) -> Result<Self, TlsError> {
        let tls = if target.is_https() {
            if settings.tls_insecure {
                log::warn!(target = target.as_str();
                    "TLS_INSECURE is on: the target's certificate is NOT checked; anyone on the path can read and change this traffic");
            }
            let config = match &settings.tls {
                Some(config) => Arc::clone(config),
                None => client_config(&TlsSettings::default())?,
            };
            Some(TlsTarget::new(config, target.host())?)
        } else {
            None
        };
        Ok(TargetClient {
            resolver: Rc::new(Resolver::new(target.host(), target.port())),
            tls,
            idle_keep: settings.idle_keep,
            max_idle: settings.max_connections,
            idle: RefCell::new(VecDeque::new()),
            clock: Cell::new(Instant::now()),
            retries,
        })
    }

    /// Tells the client the time (see `TargetClient::clock`).
    pub fn set_clock(&self, now: Instant) {
        self.clock.set(now);
    }

    /// Sends `request` and reads its answer; hands the request back (its
    /// buffer is reused). Not bounded in time: the caller puts a deadline
    /// on it.
    pub async fn send(self: Rc<Self>, request: Request) -> (Outcome, Request) {
        let parser = AnswerParser::new(request.keep_body, MAX_BODY_BYTES)
            .keeping_headers(request.keep_headers)
            .answering_head(request.head);
        let outcome = match self.exchange(&request.rendered, parser).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Failed { kind: error.kind(), error },
        };
        (outcome, request)
    }

    /// Closes idle connections past their keep time; call now and then.
    pub fn close_stale(&self) {
        let now = self.clock.get();
        self.idle.borrow_mut().retain(|c| c.expires > now);
    }

    pub fn idle_connections(&self) -> usize {
        self.idle.borrow().len()
    }

    /// When the first idle connection is past its keep time, if any is idle.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.idle.borrow().iter().map(|c| c.expires).min()
    }

    async fn exchange(&self, request: &[u8], fresh_parser: AnswerParser) -> Result<Outcome, ClientError> {
        let mut reused = self.take_idle();
        loop {
            let is_reused = reused.is_some();
            let mut conn = match reused.take() {
                Some(conn) => conn,
                None => self.connect().await?,
            };
            // No byte of this answer yet (a failed write must not see the last one's).
            conn.filled = 0;
            let mut parser = fresh_parser.clone();
            #[cfg(feature = "syscall-probe")]
            // SAFETY: getpid takes no arguments and cannot fail.
            unsafe {
                libc::syscall(libc::SYS_getpid);
            }
            let result = match conn.write_all(request).await {
                Ok(()) => conn.read_answer(&mut parser).await,
                Err(e) => Err(ClientError::Send(e)),
            };
            match result {
                Ok(answer) => {
                    if answer.reusable {
                        self.put_idle(conn, answer.keep_alive_secs);
                    }
                    return Ok(Outcome::Answered { status: answer.status, body: answer.body, headers: answer.headers });
                }
                Err(error) if is_reused => match error.retry_reason(conn.filled) {
                    // Once: the new connection is not reused, so this cannot loop.
                    Some(reason) => self.retries.count(reason),
                    None => return Err(ClientError::Reused(Box::new(error))),
                },
                Err(error) => return Err(error),
            }
        }
    }

    /// The most recently used idle connection that is still open.
    fn take_idle(&self) -> Option<Connection> {
        let now = self.clock.get();
        let mut idle = self.idle.borrow_mut();
        while let Some(mut conn) = idle.pop_back() {
            if conn.expires > now && conn.still_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Returns a connection after a complete, reusable answer. It is kept for
    /// `idle_keep`, or less when the target says it closes sooner
    /// (`Keep-Alive: timeout=N`: we close at 3/4 of N, ahead of the target).
    fn put_idle(&self, mut conn: Connection, keep_alive_secs: Option<u32>) {
        let keep = match keep_alive_secs {
            Some(secs) => self.idle_keep.min(Duration::from_secs(u64::from(secs)) * 3 / 4),
            None => self.idle_keep,
        };
        let mut idle = self.idle.borrow_mut();
        if keep.is_zero() || idle.len() >= self.max_idle {
            return;
        }
        if conn.buf.len() > BUFFER_START {
            conn.buf = vec![0; BUFFER_START];
        }
        conn.expires = self.clock.get() + keep;
        idle.push_back(conn);
    }

    async fn connect(&self) -> Result<Connection, ClientError> {
        let address = self.resolver.address().await.map_err(ClientError::Resolve)?;
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
        drop(ready);
        let tls = match &self.tls {
            Some(target) => Some(Box::new(target.handshake(&io).await.map_err(ClientError::Tls)?)),
            None => None,
        };
        Ok(Connection { io, tls, buf: vec![0; BUFFER_START], filled: 0, expires: self.clock.get() })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_that_died_before_any_answer_byte_is_retried() {
        let io = |kind: io::ErrorKind| io::Error::new(kind, "test");
        let cases = [
            (ClientError::Send(io(io::ErrorKind::BrokenPipe)), 0, Some(RetryReason::BrokenPipe)),
            (ClientError::Send(io(io::ErrorKind::ConnectionReset)), 0, Some(RetryReason::Reset)),
            (ClientError::Receive(io(io::ErrorKind::ConnectionReset)), 0, Some(RetryReason::Reset)),
            (ClientError::Answer(AnswerError::Truncated), 0, Some(RetryReason::Closed)),
            (ClientError::Answer(AnswerError::Truncated), 5, None),
            (ClientError::Receive(io(io::ErrorKind::ConnectionReset)), 1, None),
            (ClientError::Receive(io(io::ErrorKind::TimedOut)), 0, None),
            (ClientError::Answer(AnswerError::BadHead("x")), 0, None),
            (ClientError::Connect(io(io::ErrorKind::ConnectionRefused)), 0, None),
        ];
        for (error, bytes, expected) in cases {
            assert_eq!(error.retry_reason(bytes), expected, "{error:?} after {bytes} bytes");
        }
    }

    #[test]
    fn failures_on_reused_connections_have_their_own_kind() {
        let io = |kind: io::ErrorKind| io::Error::new(kind, "test");
        let reused = |e: ClientError| ClientError::Reused(Box::new(e));
        assert_eq!(reused(ClientError::Answer(AnswerError::Truncated)).kind(), ErrorKind::Reused);
        assert_eq!(ClientError::Answer(AnswerError::Truncated).kind(), ErrorKind::Other);
        assert_eq!(reused(ClientError::Receive(io(io::ErrorKind::TimedOut))).kind(), ErrorKind::Timeout);
        assert_eq!(ClientError::Resolve(ResolveError::default()).kind(), ErrorKind::Dns);
        assert_eq!(ClientError::Connect(io(io::ErrorKind::ConnectionRefused)).kind(), ErrorKind::Connect);
    }
}
