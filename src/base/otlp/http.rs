//! The exporter's own HTTP/1.1 client: one kept-alive connection to the
//! collector, blocking, every step bounded by the post's deadline. It
//! runs on the exporter's thread only.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::settings::Endpoint;

/// Largest answer head and body read; a collector's answer is a few bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A connection idle longer than this is not reused: the collector may
/// have closed it, and a post on it would be lost.
const MAX_IDLE: Duration = Duration::from_secs(4);

/// What came back.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    /// Empty unless the answer had a `Content-Length` body.
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub(super) enum PostError {
    /// No address, or no connection could be made.
    Connect(io::Error),
    Timeout,
    /// The connection broke or the answer was not HTTP.
    Io(io::Error),
}

pub(super) struct Client {
    endpoint: Endpoint,
    /// The head before the body's length, written once.
    head: Vec<u8>,
    connection: Option<(TcpStream, Instant)>,
    buffer: Vec<u8>,
}

impl Client {
    pub(super) fn new(endpoint: Endpoint, headers: &[(String, String)]) -> Client {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: trafficgen/{}\r\nContent-Type: application/x-protobuf\r\n",
            endpoint.path,
            endpoint.authority,
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        Client { endpoint, head: head.into_bytes(), connection: None, buffer: Vec::new() }
    }

    /// Posts `body`; the whole exchange ends by `deadline`. A kept-alive
    /// connection that turns out closed before any answer byte is replaced
    /// once (the collector cannot have read the batch on it).
    pub(super) fn post(&mut self, body: &[u8], deadline: Instant) -> Result<Answer, PostError> {
        let reused = self.connection.as_ref().is_some_and(|(_, idle_since)| idle_since.elapsed() < MAX_IDLE);
        if !reused {
            self.connection = None;
        }
        match self.exchange(body, deadline) {
            Err(Exchange::Unanswered(_)) if reused => {
                self.connection = None;
                self.exchange(body, deadline).map_err(Exchange::into_error)
            }
            other => other.map_err(Exchange::into_error),
        }
    }

    fn exchange(&mut self, body: &[u8], deadline: Instant) -> Result<Answer, Exchange> {
        let (mut stream, _) = match self.connection.take() {
            Some(connection) => connection,
            None => (self.connect(deadline).map_err(Exchange::Failed)?, Instant::now()),
        };
        let mut request = Vec::with_capacity(self.head.len() + 32 + body.len());
        request.extend_from_slice(&self.head);
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        set_timeouts(&stream, deadline).map_err(Exchange::Failed)?;
        stream.write_all(&request).map_err(|e| Exchange::Unanswered(timeout_or(e)))?;
        let (answer, keep) = self.read_answer(&mut stream, deadline)?;
        if keep {
            self.connection = Some((stream, Instant::now()));
        }
        Ok(answer)
    }

    fn connect(&self, deadline: Instant) -> Result<TcpStream, PostError> {
        let addrs = (self.endpoint.host.as_str(), self.endpoint.port).to_socket_addrs().map_err(PostError::Connect)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for addr in addrs {
            let left = remaining(deadline).ok_or(PostError::Timeout)?;
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(PostError::Timeout),
                Err(e) => last = e,
            }
        }
        Err(PostError::Connect(last))
    }

    /// The answer, and whether the connection may be used again.
    fn read_answer(&mut self, stream: &mut TcpStream, deadline: Instant) -> Result<(Answer, bool), Exchange> {
        self.buffer.clear();
        let mut chunk = [0u8; 8192];
        loop {
            set_timeouts(stream, deadline).map_err(Exchange::Failed)?;
            let n = match stream.read(&mut chunk) {
                Ok(0) if self.buffer.is_empty() => {
                    return Err(Exchange::Unanswered(PostError::Io(io::ErrorKind::UnexpectedEof.into())));
                }
                Ok(0) => return Err(Exchange::Failed(PostError::Io(io::ErrorKind::UnexpectedEof.into()))),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if self.buffer.is_empty() => return Err(Exchange::Unanswered(timeout_or(e))),
                Err(e) => return Err(Exchange::Failed(timeout_or(e))),
            };
            self.buffer.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(&self.buffer) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if self.buffer.len() < MAX_ANSWER_BYTES => continue,
                _ => return Err(Exchange::Failed(PostError::Io(io::ErrorKind::InvalidData.into()))),
            };
            let status = response.code.unwrap_or(0);
            if (100..200).contains(&status) {
                // `100 Continue` and the like: the real answer follows.
                self.buffer.drain(..head_len);
                continue;
            }
            let header = |name: &str| {
                response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.to_vec())
            };
            let length = header("content-length")
                .and_then(|v| std::str::from_utf8(&v).ok().and_then(|s| s.trim().parse::<usize>().ok()));
            let close =
                header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close")) || response.version == Some(0);
            let body = match length {
                Some(len) if len <= MAX_ANSWER_BYTES => {
                    self.read_body(stream, head_len, len, deadline)?;
                    self.buffer[head_len..head_len + len].to_vec()
                }
                // Nothing to read in 204 or 304; a body of unknown or
                // large size is not read: the connection is closed instead.
                None if status == 204 || status == 304 => Vec::new(),
                _ => return Ok((Answer { status, body: Vec::new() }, false)),
            };
            return Ok((Answer { status, body }, !close));
        }
    }

    fn read_body(
        &mut self,
        stream: &mut TcpStream,
        head_len: usize,
        len: usize,
        deadline: Instant,
    ) -> Result<(), Exchange> {
        let mut chunk = [0u8; 8192];
        while self.buffer.len() < head_len + len {
            set_timeouts(stream, deadline).map_err(Exchange::Failed)?;
            match stream.read(&mut chunk) {
                Ok(0) => return Err(Exchange::Failed(PostError::Io(io::ErrorKind::UnexpectedEof.into()))),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Exchange::Failed(timeout_or(e))),
            }
        }
        Ok(())
    }
}

/// How an exchange failed: before any answer byte (the post may be tried
/// on a fresh connection) or after.
enum Exchange {
    Unanswered(PostError),
    Failed(PostError),
}

impl Exchange {
    fn into_error(self) -> PostError {
        match self {
            Exchange::Unanswered(e) | Exchange::Failed(e) => e,
        }
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
}

fn set_timeouts(stream: &TcpStream, deadline: Instant) -> Result<(), PostError> {
    let left = remaining(deadline).ok_or(PostError::Timeout)?;
    stream.set_read_timeout(Some(left)).map_err(PostError::Io)?;
    stream.set_write_timeout(Some(left)).map_err(PostError::Io)
}

fn timeout_or(e: io::Error) -> PostError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => PostError::Timeout,
        _ => PostError::Io(e),
    }
}
