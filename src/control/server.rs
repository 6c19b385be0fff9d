//! The control API's own connection handling, in front of actix-web's
//! HTTP/1 service.
//!
//! actix-web's `HttpServer` stops accepting when it reaches its connection
//! limit, so a few hundred slow clients park every newcomer in the kernel's
//! backlog: a health probe then waits behind the attackers. Here the accept
//! loop never stops: it holds at most `max_connections`, and when full it
//! closes, among the connections of the peer address that holds the most,
//! the one that has gone longest without an answer from us (a slow-body
//! attacker never gets one; a keep-alive client got one recently). So a
//! fresh client always gets in and is answered at once, and a flood from
//! one address cannot push out a probe or a scraper from another. A connection
//! that goes `request_timeout` without an answer is closed too: that bounds
//! a slow head, a slow body and a request that holds its handler, together.
//! Memory and descriptors are therefore bounded by `max_connections`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_http::HttpService;
use actix_service::{IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt, map_config};
use actix_web::App;
use actix_web::dev::AppConfig;
use slab::Slab;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{ControlState, ServerInfo, configure};

/// Limits of the control server, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections held at once; the next one pushes out the stalest.
    pub max_connections: usize,
    /// A connection that goes this long without an answer from us is closed.
    pub request_timeout: Duration,
}

impl ServerLimits {
    /// An idle keep-alive connection is closed after this (or sooner, by
    /// the request timeout).
    fn keep_alive(&self) -> Duration {
        self.request_timeout.min(Duration::from_secs(5))
    }
}

/// Pending connections the kernel may queue for us (capped by
/// `net.core.somaxconn`, 4096 by default). The accept loop drains the queue
/// as fast as connections come, so it only absorbs bursts; but when it is
/// full the kernel drops the handshake's last packet and that client
/// (perhaps a health probe) retries only after a second. A queued
/// connection costs kernel memory, not ours.
const LISTEN_BACKLOG: i32 = 4096;

/// Live counts of the control connections, for `/status`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicUsize,
    accepted: AtomicU64,
    evicted: AtomicU64,
    timed_out: AtomicU64,
}

impl ConnectionStats {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closed to make room for a newer connection.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Closed for going `request_timeout` without an answer.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// Binds the control address with our backlog.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The running control server; stop it with [`ControlServer::stop`].
pub struct ControlServer {
    stop_accepting: CancellationToken,
    accept_loop: Option<oneshot::Receiver<()>>,
    connections: Rc<RefCell<Registry>>,
}

/// Starts serving on `listener`. Must run inside the actix system whose
/// thread will serve the connections (everything here is single-threaded).
pub async fn start(listener: TcpListener, state: ControlState) -> io::Result<ControlServer> {
    let info = Arc::clone(&state.server);
    let limits = info.limits;
    let local_addr = listener.local_addr()?;
    let app = App::new().configure(configure(state));
    let factory = app.into_factory().map_err(|e| e.error_response());
    let h1 = HttpService::build()
        .keep_alive(limits.keep_alive())
        .client_request_timeout(limits.request_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(local_addr)
        .h1(map_config(factory, |_| AppConfig::default()));
    let service = h1.new_service(()).await.map_err(|()| io::Error::other("cannot build the control service"))?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let connections = Rc::new(RefCell::new(Registry { slots: Slab::new(), next_id: 0, info }));
    let stop_accepting = CancellationToken::new();
    let (done_tx, done_rx) = oneshot::channel();
    let serve = AcceptLoop {
        listener,
        service: Rc::new(service),
        limits,
        connections: Rc::clone(&connections),
        accepted_at_last_trim: Cell::new(0),
    };
    actix_rt::spawn(serve.run(stop_accepting.clone(), done_tx));
    Ok(ControlServer { stop_accepting, accept_loop: Some(done_rx), connections })
}

impl ControlServer {
    /// Stops accepting and closes every connection. With `graceful`, a
    /// connection in the middle of a request gets up to a second to answer.
    pub async fn stop(mut self, graceful: bool) {
        self.stop_accepting.cancel();
        if let Some(done) = self.accept_loop.take() {
            let _ = done.await;
        }
        if graceful {
            let give_up = Instant::now() + Duration::from_secs(1);
            while self.connections.borrow().any_busy() && Instant::now() < give_up {
                actix_rt::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.connections.borrow_mut().close_all();
        // Let the closed connections' tasks run and release their sockets.
        actix_rt::task::yield_now().await;
    }
}

struct AcceptLoop<S> {
    listener: tokio::net::TcpListener,
    service: Rc<S>,
    limits: ServerLimits,
    connections: Rc<RefCell<Registry>>,
    /// Connections accepted when free memory was last given back.
    accepted_at_last_trim: Cell<u64>,
}

/// After this many connections have come and mostly gone, free memory is
/// given back to the system.
const TRIM_AFTER_CONNECTIONS: u64 = 256;

impl<S> AcceptLoop<S>
where
    S: Service<(TrackedStream, Option<SocketAddr>)> + 'static,
{
    async fn run(self, stop: CancellationToken, done: oneshot::Sender<()>) {
        let sweep_every = (self.limits.request_timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut sweep = actix_rt::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut accept_errors = ErrorThrottle::default();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = sweep.tick() => self.sweep(),
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if self.serve(stream, peer) {
                            // The pushed-out connection's task closes its
                            // socket when it next runs: let it, before the
                            // next accept, so descriptors stay within the bound.
                            actix_rt::task::yield_now().await;
                        }
                    }
                    Err(e) => {
                        // Out of descriptors (or memory): the listener stays
                        // readable, so back off instead of spinning.
                        accept_errors.note(&e);
                        actix_rt::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        // Closing the listener now refuses new connections at once.
        drop(self.listener);
        let _ = done.send(());
    }

    /// Starts serving one connection; returns true if another was closed to
    /// make room for it.
    fn serve(&self, stream: tokio::net::TcpStream, peer: SocketAddr) -> bool {
        let _ = stream.set_nodelay(true);
        let now = Instant::now();
        let mut connections = self.connections.borrow_mut();
        let evicted = connections.make_room(self.limits.max_connections);
        let activity = Rc::new(Activity { peer: peer.ip(), last_answer: Cell::new(now), busy: Cell::new(false) });
        let (close_tx, close_rx) = oneshot::channel::<()>();
        let (key, id) = connections.insert(Rc::clone(&activity), close_tx);
        drop(connections);
        let exchange = self.service.call((TrackedStream::new(stream, activity), Some(peer)));
        let registry = Rc::clone(&self.connections);
        actix_rt::spawn(async move {
            // Dropping the exchange closes the socket.
            tokio::select! {
                _ = exchange => {}
                _ = close_rx => {}
            }
            registry.borrow_mut().remove(key, id);
        });
        evicted
    }

    fn sweep(&self) {
        // A little past the request timeout, so the HTTP layer's own 408
        // for a slow head or body normally comes first and says why.
        let limit = self.limits.request_timeout + Duration::from_secs(1);
        let mut connections = self.connections.borrow_mut();
        connections.close_stale(Instant::now(), limit);
        // Once a burst has passed (most of its connections closed), give
        // its memory back; during one, the cap bounds it.
        let accepted = connections.stats().accepted();
        if connections.slots.len() <= self.limits.max_connections / 4
            && accepted - self.accepted_at_last_trim.get() >= TRIM_AFTER_CONNECTIONS
        {
            self.accepted_at_last_trim.set(accepted);
            release_free_memory();
            log::debug!(accepted = accepted; "gave free memory back after a burst of control connections");
        }
    }
}

/// What the server knows of a connection's progress, updated by its stream.
#[derive(Debug)]
struct Activity {
    peer: IpAddr,
    /// When we last wrote to it (or accepted it).
    last_answer: Cell<Instant>,
    /// The client has sent bytes we have not answered yet.
    busy: Cell<bool>,
}

struct Slot {
    id: u64,
    activity: Rc<Activity>,
    /// Dropping it closes the connection.
    _close: oneshot::Sender<()>,
}

struct Registry {
    slots: Slab<Slot>,
    next_id: u64,
    info: Arc<ServerInfo>,
}

impl Registry {
    fn stats(&self) -> &ConnectionStats {
        &self.info.connections
    }

    fn insert(&mut self, activity: Rc<Activity>, close: oneshot::Sender<()>) -> (usize, u64) {
        let id = self.next_id;
        self.next_id += 1;
        let key = self.slots.insert(Slot { id, activity, _close: close });
        self.stats().accepted.fetch_add(1, Ordering::Relaxed);
        self.stats().open.store(self.slots.len(), Ordering::Relaxed);
        (key, id)
    }

    /// Forgets a connection that ended (unless its slot was already
    /// closed and reused).
    fn remove(&mut self, key: usize, id: u64) {
        if self.slots.get(key).is_some_and(|s| s.id == id) {
            self.slots.remove(key);
            self.stats().open.store(self.slots.len(), Ordering::Relaxed);
        }
    }

    /// Below `max` connections, nothing; otherwise closes, among the
    /// connections of the peer address holding the most, the one that has
    /// gone longest without an answer. Returns whether one was closed.
    fn make_room(&mut self, max: usize) -> bool {
        let mut evicted = false;
        while self.slots.len() >= max.max(1) {
            let mut per_peer: HashMap<IpAddr, usize> = HashMap::new();
            for (_, slot) in &self.slots {
                *per_peer.entry(slot.activity.peer).or_default() += 1;
            }
            let Some((&greediest, _)) = per_peer.iter().max_by_key(|(_, n)| **n) else { break };
            let Some(stalest) = self
                .slots
                .iter()
                .filter(|(_, s)| s.activity.peer == greediest)
                .min_by_key(|(_, s)| s.activity.last_answer.get())
                .map(|(k, _)| k)
            else {
                break;
            };
            self.slots.remove(stalest);
            self.stats().evicted.fetch_add(1, Ordering::Relaxed);
            evicted = true;
        }
        self.stats().open.store(self.slots.len(), Ordering::Relaxed);
        evicted
    }

    fn close_stale(&mut self, now: Instant, limit: Duration) {
        let before = self.slots.len();
        self.slots.retain(|_, s| now.saturating_duration_since(s.activity.last_answer.get()) < limit);
        let closed = before - self.slots.len();
        if closed > 0 {
            self.stats().timed_out.fetch_add(closed as u64, Ordering::Relaxed);
            self.stats().open.store(self.slots.len(), Ordering::Relaxed);
        }
    }

    fn any_busy(&self) -> bool {
        self.slots.iter().any(|(_, s)| s.activity.busy.get())
    }

    fn close_all(&mut self) {
        self.slots.clear();
        self.stats().open.store(0, Ordering::Relaxed);
    }
}

/// Logs accept failures at most once per 5 s.
#[derive(Default)]
struct ErrorThrottle {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorThrottle {
    fn note(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(5)) {
            self.suppressed += 1;
            return;
        }
        log::warn!(error:% = error, suppressed = self.suppressed; "control server cannot accept a connection");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// A control connection's socket, recording when we answer, and turning the
/// HTTP layer's bare error answers into the API's JSON errors.
pub struct TrackedStream {
    inner: tokio::net::TcpStream,
    activity: Rc<Activity>,
    /// A JSON answer being written in place of a bare one, and how much of
    /// it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl TrackedStream {
    fn new(inner: tokio::net::TcpStream, activity: Rc<Activity>) -> Self {
        TrackedStream { inner, activity, replacement: None }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.busy.set(true);
        }
        result
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none()
            && let Some(json) = json_for_bare_error(buf)
        {
            this.replacement = Some((json, 0));
        }
        let result = match &mut this.replacement {
            Some((json, sent)) => loop {
                if *sent == json.len() {
                    // The bare answer it stands for counts as written.
                    this.replacement = None;
                    break Poll::Ready(Ok(buf.len()));
                }
                match Pin::new(&mut this.inner).poll_write(cx, &json[*sent..]) {
                    Poll::Ready(Ok(n)) if n > 0 => *sent += n,
                    other => break other,
                }
            },
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        };
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.last_answer.set(Instant::now());
            this.activity.busy.set(false);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// actix-http answers a request it cannot parse, or whose head is too slow
/// or too big, with an empty `400`/`408`/`431` before any handler runs. The
/// API promises a JSON error for every refusal, so such an answer (recognised
/// by its status line and `content-length: 0`; our own errors always have a
/// body) is replaced by the same status with a JSON body saying why. The
/// connection is closed after it either way.
fn json_for_bare_error(buf: &[u8]) -> Option<Vec<u8>> {
    const BARE: [(&[u8], u16, &str, &str); 3] = [
        (
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            400,
            "Bad Request",
            "malformed HTTP request; for example an HTTP/1.0 POST needs a Content-Length header (0 for no body), \
             HTTP/1.1 needs a Host header, and Content-Length and Transfer-Encoding may not be combined",
        ),
        (
            b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n",
            408,
            "Request Timeout",
            "the request head did not arrive in time; send the whole request at once",
        ),
        (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n",
            431,
            "Request Header Fields Too Large",
            "the request head is too large",
        ),
    ];
    let (_, status, reason, message) = BARE.iter().find(|(prefix, ..)| buf.starts_with(prefix))?;
    // Only a whole bare answer, never one followed by a body or another answer.
    if buf.windows(4).position(|w| w == b"\r\n\r\n") != Some(buf.len() - 4) {
        return None;
    }
    let body = serde_json::json!({ "error": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// Gives back to the system the memory a burst of connections left free.
/// glibc keeps freed heap pages mapped (fragmented between live blocks, they
/// are never trimmed from the top), so without this the peak of an attack
/// would stay resident after it.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages to the kernel; it is
    // safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(at: Instant) -> Rc<Activity> {
        activity_from(at, [127, 0, 0, 1])
    }

    fn activity_from(at: Instant, peer: [u8; 4]) -> Rc<Activity> {
        Rc::new(Activity { peer: IpAddr::from(peer), last_answer: Cell::new(at), busy: Cell::new(false) })
    }

    fn registry() -> Registry {
        let limits = ServerLimits { max_connections: 3, request_timeout: Duration::from_secs(5) };
        Registry { slots: Slab::new(), next_id: 0, info: Arc::new(ServerInfo::new(limits, None)) }
    }

    #[test]
    fn a_full_registry_closes_the_connection_longest_without_an_answer() {
        let t0 = Instant::now();
        let mut r = registry();
        let (tx_a, mut rx_a) = oneshot::channel();
        let (tx_b, mut rx_b) = oneshot::channel();
        let (tx_c, mut rx_c) = oneshot::channel();
        r.insert(activity(t0 + Duration::from_secs(2)), tx_a);
        r.insert(activity(t0), tx_b); // answered longest ago
        r.insert(activity(t0 + Duration::from_secs(1)), tx_c);
        assert!(!r.make_room(4));
        assert!(r.make_room(3));
        assert_eq!(r.slots.len(), 2);
        assert!(rx_b.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed), "b closed");
        assert!(rx_a.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty), "a kept");
        assert!(rx_c.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty), "c kept");
        assert_eq!(r.stats().evicted(), 1);
        assert_eq!(r.stats().open(), 2);
    }

    #[test]
    fn a_flood_from_one_address_pushes_out_its_own_connections_not_others() {
        let t0 = Instant::now();
        let mut r = registry();
        let (tx_probe, mut rx_probe) = oneshot::channel();
        // The probe is the stalest of all, but its address holds only one.
        r.insert(activity_from(t0, [10, 0, 0, 1]), tx_probe);
        let mut attackers = Vec::new();
        for i in 1..=2 {
            let (tx, rx) = oneshot::channel();
            r.insert(activity_from(t0 + Duration::from_secs(i), [10, 0, 0, 9]), tx);
            attackers.push(rx);
        }
        assert!(r.make_room(3));
        assert!(rx_probe.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty), "probe kept");
        assert!(attackers[0].try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed), "stalest attacker");
        assert!(attackers[1].try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Empty));
    }

    #[test]
    fn stale_connections_are_closed_and_a_reused_slot_is_not_forgotten_by_mistake() {
        let t0 = Instant::now();
        let mut r = registry();
        let (tx, _rx) = oneshot::channel();
        let (old_key, old_id) = r.insert(activity(t0), tx);
        r.close_stale(t0 + Duration::from_secs(10), Duration::from_secs(6));
        assert_eq!((r.slots.len(), r.stats().timed_out()), (0, 1));
        let (tx, _rx) = oneshot::channel();
        let (key, _) = r.insert(activity(t0), tx);
        assert_eq!(key, old_key, "the slab reuses the slot");
        r.remove(old_key, old_id);
        assert_eq!(r.slots.len(), 1, "the old connection's end must not close the new one");
    }

    #[test]
    fn bare_http_errors_become_json_and_nothing_else_is_touched() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Thu, 26 Nov 2026 10:49:02 GMT\r\n\r\n";
        let json = String::from_utf8(json_for_bare_error(bare).expect("replaced")).unwrap();
        let (head, body) = json.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(value["error"].as_str().unwrap().contains("HTTP/1.0 POST needs a Content-Length"));
        let timeout = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert!(json_for_bare_error(timeout).is_some());
        // Our own answers, and anything with more after the head, pass as they are.
        let ours =
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n{\"error\":\"\"}";
        assert!(json_for_bare_error(ours).is_none());
        let more = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
        assert!(json_for_bare_error(more).is_none());
    }
}
