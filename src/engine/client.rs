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
//! At high rates the engine reads each turn's answers at its next turn; such
//! requests are *quiet* (`Request::quiet`): their socket's receive low-water
//! mark is set above a small answer, so that its arrival does not put the
//! socket on epoll's ready list (that cost as much as a tenth of the CPU at
//! 10 000 req/s), and at the turn the answer is read straight from the
//! socket. One that is not in by then waits as any other; a tally stops
//! quiet requests while the target answers slower than the turns.
//!
//! Redirects are never followed. One thing is retried, as browsers do: a
//! request whose kept-alive connection failed before a single byte of answer
//! came back (the target closed it while idle, just as we sent), once, on a
//! new connection. The target cannot have processed it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use rustls::ClientConnection;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::http::{Answer, AnswerError, AnswerParser, Progress, max_answer_bytes};
use super::quiet_reads::NextTurn;
pub use super::quiet_reads::QuietReads;
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
    /// Its answer is read at the engine's next turn (`QuietReads::read_all`)
    /// rather than when it comes: the socket does not wake the event loop
    /// for it (plain targets only).
    pub quiet: bool,
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// The target answered. `body` and `headers` when they were asked for
    /// (the body only under [`MAX_BODY_BYTES`]).
    /// `received`: when the kernel took in the answer's last bytes (plain
    /// targets), so that an answer read a little after it came still has
    /// its own duration.
    Answered { status: u16, body: Option<Vec<u8>>, headers: Vec<(String, Vec<u8>)>, received: Option<SystemTime> },
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
    /// Its receive low-water mark is high (`QUIET_LOWAT`): answers that
    /// arrive do not wake the event loop.
    quiet: bool,
}

impl Connection {
    async fn write_all(&mut self, request: &[u8]) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            // Boxed: the TLS state machine would make every request's future
            // (plain ones too) that much larger (see `exchange`).
            return Box::pin(tls::write_all(&self.io, tls, request)).await;
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
    /// With the answer, when its last bytes came in (plain connections).
    /// `next_turn`: the answer is read (first) at the engine's next turn.
    async fn read_answer(
        &mut self,
        parser: &mut AnswerParser,
        next_turn: Option<(&QuietReads, Instant)>,
    ) -> Result<(Answer, Option<SystemTime>), ClientError> {
        let Connection { io, tls, buf, filled, quiet, .. } = self;
        *filled = 0;
        // The readiness of the latest socket read.
        let mut last_ready = None;
        let mut received = None;
        // Quiet: read at the next turn, straight from the socket until it
        // would block, without a wake-up from the event loop; the tally of
        // quiet reads while that lasts (a miss if it must wait after all).
        let mut tally = None;
        if let (Some((quiet_reads, now)), None) = (next_turn, &tls) {
            if !*quiet && set_receive_lowat(io.get_ref().as_raw_fd(), QUIET_LOWAT) {
                *quiet = true;
            }
            if *quiet {
                NextTurn { quiet: quiet_reads, now, queued: None }.await;
                tally = Some(&quiet_reads.tally);
            }
        }
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
                Some(tls) => Box::pin(tls::read(io, tls, &mut buf[*filled..], &mut last_ready)).await,
                None if tally.is_some() => {
                    let fd = io.get_ref().as_raw_fd();
                    match read_stamped(fd, &mut buf[*filled..], &mut received) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            // Not (all) in yet: waited for as a loud request's.
                            if let Some(tally) = tally.take() {
                                tally.borrow_mut().note(false);
                            }
                            continue;
                        }
                        result => result,
                    }
                }
                None => {
                    // Awaiting the answer's bytes: they must wake the loop.
                    if *quiet && set_receive_lowat(io.get_ref().as_raw_fd(), 1) {
                        *quiet = false;
                    }
                    let mut ready = io.readable().await.map_err(ClientError::Receive)?;
                    match ready.try_io(|io| read_stamped(io.get_ref().as_raw_fd(), &mut buf[*filled..], &mut received))
                    {
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
                    if let Some(tally) = tally {
                        tally.borrow_mut().note(true);
                        // Read quietly: an answer over `QUIET_LOWAT` made it readable.
                        let mut cx = Context::from_waker(Waker::noop());
                        if let Poll::Ready(Ok(mut ready)) = io.poll_read_ready(&mut cx) {
                            ready.clear_ready_matching(tokio::io::Ready::READABLE);
                        }
                    }
                    if let Some(tls) = tls {
                        answer.reusable &= tls::is_quiet(tls);
                    }
                    return Ok((answer, received));
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
    /// The latest answer came with its time of arrival (`stamps_answers`).
    stamped: Cell<bool>,
    /// Quiet requests waiting for the engine's next turn, and how often
    /// their answers were there by then: the engine's, shared with every
    /// client it builds, so that a client it has let go strands none.
    quiet: Rc<QuietReads>,
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
            stamped: Cell::new(false),
            quiet: Rc::new(QuietReads::default()),
        })
    }

    /// The client, its quiet requests waiting in `quiet` (the engine's).
    pub fn sharing_quiet_reads(mut self, quiet: Rc<QuietReads>) -> Self {
        self.quiet = quiet;
        self
    }

    /// Tells the client the time (see `TargetClient::clock`).
    pub fn set_clock(&self, now: Instant) {
        self.clock.set(now);
    }

    /// Sends `request` and reads its answer; hands the request back (its
    /// buffer is reused). Not bounded in time: the caller puts a deadline
    /// on it.
    pub async fn send(self: Rc<Self>, request: Request) -> (Outcome, Request) {
        let outcome = match self.exchange(&request).await {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Failed { kind: error.kind(), error },
        };
        (outcome, request)
    }

    /// Whether requests sent now should be quiet: plain target, and most
    /// quiet answers lately were in by the next turn (`QuietTally`).
    pub fn quiet_pays(&self) -> bool {
        self.tls.is_none() && self.quiet.tally.borrow_mut().allows(self.clock.get())
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

    async fn exchange(&self, request: &Request) -> Result<Outcome, ClientError> {
        // Connecting (resolving, a TLS handshake) is boxed: it is rare with
        // kept-alive connections, and inline its state would be most of
        // every request's future, copied into its box at each send.
        let (mut conn, mut is_reused) = match self.take_idle() {
            Some(conn) => (conn, true),
            None => (Box::pin(self.connect()).await?, false),
        };
        loop {
            // No byte of this answer yet (a failed write must not see the last one's).
            conn.filled = 0;
            // Made here, not kept from the start: the parser would then be
            // held twice across every await of every request's future.
            let mut parser = AnswerParser::new(request.keep_body, MAX_BODY_BYTES)
                .keeping_headers(request.keep_headers)
                .answering_head(request.head);
            #[cfg(feature = "syscall-probe")]
            // SAFETY: getpid takes no arguments and cannot fail.
            unsafe {
                libc::syscall(libc::SYS_getpid);
            }
            let result = match conn.write_all(&request.rendered).await {
                Ok(()) => conn.read_answer(&mut parser, request.quiet.then(|| (&*self.quiet, self.clock.get()))).await,
                Err(e) => Err(ClientError::Send(e)),
            };
            match result {
                Ok((answer, received)) => {
                    if answer.reusable {
                        self.put_idle(conn, answer.keep_alive_secs);
                    }
                    self.stamped.set(received.is_some());
                    let Answer { status, body, headers, .. } = answer;
                    return Ok(Outcome::Answered { status, body, headers, received });
                }
                Err(error) if is_reused => match error.retry_reason(conn.filled) {
                    Some(reason) => self.retries.count(reason),
                    None => return Err(ClientError::Reused(Box::new(error))),
                },
                Err(error) => return Err(error),
            }
            // Once: the new connection is not reused, so this cannot loop.
            // The broken one is closed first.
            drop(conn);
            conn = Box::pin(self.connect()).await?;
            is_reused = false;
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
        if self.tls.is_none() {
            // Refused: the answers say so (`stamps_answers`).
            stamp_answers(socket.as_raw_fd());
        }
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
        Ok(Connection { io, tls, buf: vec![0; BUFFER_START], filled: 0, expires: self.clock.get(), quiet: false })
    }

    /// Whether answers come with the time they were received
    /// (`Outcome::Answered::received`): the latest one did. (The kernel
    /// starts stamping a little after the first socket asks, from a work
    /// queue; https answers never are.)
    pub fn stamps_answers(&self) -> bool {
        self.stamped.get()
    }
}

/// A quiet connection's receive low-water mark: an answer shorter than
/// this does not make its socket readable (the kernel does not wake the
/// event loop), while a read still returns what came; a longer one wakes
/// it as before, and is read at the turn all the same. Kept well under the
/// receive buffer: for a mark that needs more, the kernel would grow the
/// buffer and clamp the connection's receive window to the mark for good.
const QUIET_LOWAT: libc::c_int = 16 * 1024;

/// Sets the socket's `SO_RCVLOWAT`; false if refused. Setting it lower
/// wakes the event loop at once for bytes already in.
fn set_receive_lowat(fd: RawFd, bytes: libc::c_int) -> bool {
    set_socket_int(fd, libc::SO_RCVLOWAT, bytes)
}

/// Sets a `SOL_SOCKET` option that takes an int; false if refused.
fn set_socket_int(fd: RawFd, option: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: a valid descriptor and a pointer to an int of the size given.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    set == 0
}

/// Asks the kernel to stamp what the socket receives with the time it came
/// in (`SO_TIMESTAMPNS`); false if it will not.
fn stamp_answers(fd: RawFd) -> bool {
    set_socket_int(fd, libc::SO_TIMESTAMPNS, 1)
}

/// One `recvmsg` into `buf`; `received` becomes the time the kernel took in
/// the last bytes read, when it says (`SO_TIMESTAMPNS`).
fn read_stamped(fd: RawFd, buf: &mut [u8], received: &mut Option<SystemTime>) -> io::Result<usize> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for a few control messages; u64s for their alignment.
    let mut control = [0u64; 8];
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (into `buf`, of its length) and at
    // `control`, both alive for the call.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, 0) };
    let Ok(n) = usize::try_from(n) else {
        return Err(io::Error::last_os_error());
    };
    // SAFETY: the kernel filled `msg`; the cmsg macros stay within
    // `msg_controllen` bytes of `control`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null, within `control`, written by the kernel.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS message holds a timespec.
            let at: libc::timespec = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            if let (Ok(secs), Ok(nanos)) = (u64::try_from(at.tv_sec), u32::try_from(at.tv_nsec))
                && nanos < 1_000_000_000
            {
                *received = SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
            }
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&raw const msg, cmsg) };
    }
    Ok(n)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::quiet_reads::QuietTally;

    #[test]
    fn a_read_tells_when_the_kernel_took_the_bytes_in() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        assert!(stamp_answers(client.as_raw_fd()), "SO_TIMESTAMPNS refused");
        // The kernel turns stamping on a little after the first socket asks
        // (from a work queue): until then reads come without a stamp.
        let mut buf = [0u8; 64];
        let (received, written, read) = (0..100)
            .find_map(|_| {
                let written = SystemTime::now();
                server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").expect("write");
                std::thread::sleep(Duration::from_millis(30));
                let mut received = None;
                let n = read_stamped(client.as_raw_fd(), &mut buf, &mut received).expect("read");
                let read = SystemTime::now();
                assert_eq!(&buf[..n], b"HTTP/1.1 200 OK\r\n\r\n");
                received.map(|received| (received, written, read))
            })
            .expect("no stamp in 100 reads");
        // Taken in before the 30 ms sleep, not when read.
        let age = read.duration_since(received).expect("stamped before the read");
        assert!(age >= Duration::from_millis(29), "{age:?}");
        // And not before it was written (a stamp, not a guess).
        assert!(received >= written - Duration::from_millis(1), "{received:?} before {written:?}");
        // Nothing more to read: would block, the stamp untouched.
        client.set_nonblocking(true).expect("non-blocking");
        let err = read_stamped(client.as_raw_fd(), &mut buf, &mut None).expect_err("nothing to read");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

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

    /// A target on loopback answering each request on one connection when
    /// told (the answers' order), saying when it has.
    /// (The body's length is sent with each go.)
    fn answering_target() -> (std::net::SocketAddr, std::sync::mpsc::Sender<usize>, std::sync::mpsc::Receiver<()>) {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let address = listener.local_addr().expect("address");
        let (answer, go) = std::sync::mpsc::channel::<usize>();
        let (done, answered) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else { return };
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while let Ok(length) = go.recv_timeout(Duration::from_secs(20)) {
                // One whole request head before each answer.
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                seen.clear();
                let mut answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n").into_bytes();
                answer.resize(answer.len() + length, b'x');
                if conn.write_all(&answer).is_err() || done.send(()).is_err() {
                    return;
                }
            }
        });
        (address, answer, answered)
    }

    #[test]
    fn a_quiet_request_reads_its_answer_at_the_next_turn_and_a_late_one_when_it_comes() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (address, answer, answered) = answering_target();
            let metrics = crate::observe::metrics::Metrics::new().expect("metrics");
            let target = TargetUrl::parse(&format!("http://{address}")).expect("url");
            // The engine's waiting list, as it hands it to every client it builds.
            let quiet = Rc::new(QuietReads::default());
            let client = Rc::new(
                TargetClient::new(&target, &ClientSettings::default(), metrics.retry_counters())
                    .expect("client")
                    .sharing_quiet_reads(Rc::clone(&quiet)),
            );
            let request = |quiet| Request {
                rendered: format!("GET / HTTP/1.1\r\nhost: {address}\r\n\r\n").into_bytes(),
                keep_body: false,
                keep_headers: false,
                head: false,
                quiet,
            };
            let status = |outcome: Outcome| match outcome {
                Outcome::Answered { status, .. } => status,
                Outcome::Failed { error, .. } => panic!("no answer: {error}"),
            };
            let wait = Duration::from_secs(20);

            // Answered while it waits for the turn: the answer is in, but
            // nothing wakes the request for it until the turn.
            let send = Rc::clone(&client).send(request(true));
            tokio::pin!(send);
            answer.send(2).expect("target");
            let early = tokio::time::timeout(Duration::from_millis(300), &mut send).await;
            assert!(early.is_err(), "a quiet request completed before the turn");
            answered.recv_timeout(wait).expect("the target answered");
            quiet.read_all();
            let (outcome, _) = tokio::time::timeout(wait, send).await.expect("read at the turn");
            assert_eq!(status(outcome), 200);
            assert_eq!(client.quiet.tally.borrow().clone(), QuietTally { reads: 1, ..QuietTally::default() });

            // Not answered by the turn: the request goes on waiting, woken
            // by the answer itself, on the same (kept-alive) connection.
            let send = Rc::clone(&client).send(request(true));
            tokio::pin!(send);
            assert!(tokio::time::timeout(Duration::from_millis(100), &mut send).await.is_err());
            quiet.read_all();
            assert!(tokio::time::timeout(Duration::from_millis(100), &mut send).await.is_err());
            answer.send(2).expect("target");
            let (outcome, _) = tokio::time::timeout(wait, send).await.expect("read when it came");
            assert_eq!(status(outcome), 200);
            let tally = client.quiet.tally.borrow().clone();
            assert_eq!((tally.reads, tally.misses), (2, 1));

            // A loud request on the connection a quiet one left: woken by its answer.
            answer.send(2).expect("target");
            let (outcome, _) = tokio::time::timeout(wait, Rc::clone(&client).send(request(false)))
                .await
                .expect("a loud request is read when its answer comes");
            assert_eq!(status(outcome), 200);
            assert_eq!(client.idle_connections(), 1, "one connection throughout");

            // An answer larger than the read buffer, in by the turn: read
            // in several reads at the turn, still quietly.
            let send = Rc::clone(&client).send(request(true));
            tokio::pin!(send);
            answer.send(3 * BUFFER_START).expect("target");
            assert!(tokio::time::timeout(Duration::from_millis(300), &mut send).await.is_err());
            answered.recv_timeout(wait).expect("the target answered");
            quiet.read_all();
            let (outcome, _) = tokio::time::timeout(wait, send).await.expect("read at the turn");
            assert_eq!(status(outcome), 200);
            let tally = client.quiet.tally.borrow().clone();
            assert_eq!((tally.reads, tally.misses), (3, 1));
        });
    }

    #[test]
    fn a_request_future_stays_small() {
        // Every request's future is moved into a box of its own at each
        // send: at 1 024 bytes or more, glibc takes it from its slower
        // bins, and the copy grows with it (issue 30). Connecting and TLS
        // are boxed for that; this keeps them so.
        let metrics = crate::observe::metrics::Metrics::new().expect("metrics");
        let target = TargetUrl::parse("http://127.0.0.1:9").expect("url");
        let client =
            Rc::new(TargetClient::new(&target, &ClientSettings::default(), metrics.retry_counters()).expect("client"));
        let request =
            Request { rendered: Vec::new(), keep_body: false, keep_headers: false, head: false, quiet: false };
        let send = client.send(request);
        let size = std::mem::size_of_val(&send);
        assert!(size <= 768, "a request's future is {size} bytes");
    }
}
