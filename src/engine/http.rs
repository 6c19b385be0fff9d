//! HTTP/1.1 as the engine speaks it: requests rendered into a reusable
//! buffer, answers parsed incrementally as bytes arrive. Pure: no I/O.
//!
//! Only what a load generator needs: one request at a time per connection
//! (no pipelining), answers framed by `Content-Length`, `chunked` or the end
//! of the connection, interim 1xx answers skipped, bodies capped.

use std::fmt::Write as _;

/// Most header lines an answer may have.
const MAX_HEADERS: usize = 64;
/// Largest answer head; a longer one is an error, not a reason to buffer more.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE_BYTES: usize = 4096;

/// The fixed parts of every request to one target, rendered once.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// `/prefix/orders`, the path every request starts with.
    orders_path: String,
    /// `Host`, `User-Agent` lines, ending in CRLF.
    common_headers: String,
}

impl RequestTemplate {
    pub fn new(authority: &str, path_prefix: &str, user_agent: &str) -> Self {
        RequestTemplate {
            orders_path: format!("{path_prefix}/orders"),
            common_headers: format!("Host: {authority}\r\nUser-Agent: {user_agent}\r\n"),
        }
    }

    /// `POST {prefix}/orders` with a JSON body.
    pub fn post_orders(&self, out: &mut Vec<u8>, json: &[u8]) {
        self.head(out, "POST", None);
        let _ = write!(Buf(out), "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", json.len());
        out.extend_from_slice(json);
    }

    /// `GET {prefix}/orders` or `GET {prefix}/orders/{id}`.
    pub fn get_orders(&self, out: &mut Vec<u8>, id: Option<&str>) {
        self.head(out, "GET", id);
        out.extend_from_slice(b"\r\n");
    }

    fn head(&self, out: &mut Vec<u8>, method: &str, id: Option<&str>) {
        out.clear();
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.orders_path.as_bytes());
        if let Some(id) = id {
            out.push(b'/');
            out.extend_from_slice(id.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        out.extend_from_slice(self.common_headers.as_bytes());
    }
}

/// `write!` into a byte vector.
struct Buf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The body, when it was asked for and fit under the cap.
    pub body: Option<Vec<u8>>,
    /// The connection may carry another request: keep-alive, fully read,
    /// nothing after the answer.
    pub reusable: bool,
}

/// What the bytes so far amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    Incomplete,
    /// The answer is complete.
    Complete(Answer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("malformed answer head ({0})")]
    BadHead(&'static str),
    #[error("answer head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLong,
    #[error("malformed chunked body ({0})")]
    BadChunk(&'static str),
    #[error("connection closed before the answer was complete")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (204, 304).
    Empty,
    Length(usize),
    Chunked,
    /// Read until the connection closes.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkPhase {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

#[derive(Debug, Clone)]
enum State {
    Head,
    Body { status: u16, framing: Framing, keep_alive: bool, body_start: usize },
    Chunked { status: u16, keep_alive: bool, pos: usize, phase: ChunkPhase },
}

/// Parses one answer from a buffer that grows as bytes arrive: call
/// [`AnswerParser::advance`] with the whole buffer each time.
#[derive(Debug, Clone)]
pub struct AnswerParser {
    state: State,
    /// Where the current head starts (after skipped 1xx answers).
    head_start: usize,
    keep_body: bool,
    max_body: usize,
    /// Decoded chunked body (only when kept).
    chunked_body: Vec<u8>,
    chunked_len: usize,
}

impl AnswerParser {
    /// `keep_body`: hand the body back (up to `max_body` bytes). Bodies over
    /// `max_body` end the exchange as soon as that is known: the status
    /// counts, the rest is never read, the connection is not reused.
    pub fn new(keep_body: bool, max_body: usize) -> Self {
        AnswerParser {
            state: State::Head,
            head_start: 0,
            keep_body,
            max_body,
            chunked_body: Vec::new(),
            chunked_len: 0,
        }
    }

    /// `buf` holds every byte read for this answer so far; `eof` says the
    /// connection has closed.
    pub fn advance(&mut self, buf: &[u8], eof: bool) -> Result<Progress, AnswerError> {
        loop {
            match self.state.clone() {
                State::Head => match self.parse_head(buf)? {
                    Some(next) => self.state = next,
                    None if eof => return Err(AnswerError::Truncated),
                    None => return Ok(Progress::Incomplete),
                },
                State::Body { status, framing, keep_alive, body_start } => {
                    return self.body(buf, eof, status, framing, keep_alive, body_start);
                }
                State::Chunked { status, keep_alive, pos, phase } => {
                    return self.chunked(buf, eof, status, keep_alive, pos, phase);
                }
            }
        }
    }

    /// Parses a head starting at `head_start`: the next state, or `None`
    /// when the head is not complete yet. Interim (1xx) answers are skipped.
    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<State>, AnswerError> {
        let bytes = &buf[self.head_start..];
        // Uninitialised header slots: zeroing 64 of them per answer shows in profiles.
        let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            bytes,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD_BYTES => return Err(AnswerError::HeadTooLong),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(AnswerError::BadHead("too many header lines")),
            Err(_) => return Err(AnswerError::BadHead("not an HTTP/1.x answer")),
        };
        let status = response.code.ok_or(AnswerError::BadHead("no status"))?;
        let body_start = self.head_start + len;
        if (100..200).contains(&status) && status != 101 {
            self.head_start = body_start;
            return Ok(Some(State::Head));
        }

        let mut keep_alive = response.version == Some(1);
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for header in response.headers.iter() {
            let value = header.value;
            if header.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or(AnswerError::BadHead("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(AnswerError::BadHead("conflicting Content-Length"));
                }
                length = Some(n);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding decides; anything but chunked means "until close".
                chunked = last_token(value).eq_ignore_ascii_case(b"chunked");
                if !chunked {
                    keep_alive = false;
                }
            } else if header.name.eq_ignore_ascii_case("connection") {
                for token in value.split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && response.version == Some(0) {
                        keep_alive = true;
                    }
                }
            }
        }
        let framing = if status == 204 || status == 304 {
            Framing::Empty
        } else if status == 101 {
            // A protocol switch we never asked for: the connection is gone to us.
            keep_alive = false;
            Framing::Empty
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            keep_alive = false;
            Framing::UntilClose
        };
        Ok(Some(match framing {
            Framing::Chunked => State::Chunked { status, keep_alive, pos: body_start, phase: ChunkPhase::Size },
            _ => State::Body { status, framing, keep_alive, body_start },
        }))
    }

    fn body(
        &self,
        buf: &[u8],
        eof: bool,
        status: u16,
        framing: Framing,
        keep_alive: bool,
        body_start: usize,
    ) -> Result<Progress, AnswerError> {
        let available = buf.len() - body_start;
        let (end, reusable) = match framing {
            Framing::Empty => (body_start, keep_alive),
            Framing::Length(n) if n > self.max_body => return Ok(self.too_long(status)),
            Framing::Length(n) if available >= n => (body_start + n, keep_alive),
            Framing::Length(_) if eof => return Err(AnswerError::Truncated),
            Framing::Length(_) => return Ok(Progress::Incomplete),
            Framing::UntilClose if available > self.max_body => return Ok(self.too_long(status)),
            Framing::UntilClose if eof => (buf.len(), false),
            Framing::UntilClose => return Ok(Progress::Incomplete),
            Framing::Chunked => unreachable!("chunked bodies have their own state"),
        };
        Ok(Progress::Complete(Answer {
            status,
            body: self.keep_body.then(|| buf[body_start..end].to_vec()),
            // Bytes after the answer mean the peer is out of step with us.
            reusable: reusable && end == buf.len(),
        }))
    }

    fn too_long(&self, status: u16) -> Progress {
        Progress::Complete(Answer { status, body: None, reusable: false })
    }

    fn chunked(
        &mut self,
        buf: &[u8],
        eof: bool,
        status: u16,
        keep_alive: bool,
        mut pos: usize,
        mut phase: ChunkPhase,
    ) -> Result<Progress, AnswerError> {
        loop {
            match phase {
                ChunkPhase::Size => {
                    let Some(line) = next_line(buf, pos)? else { break };
                    let size = chunk_size(&buf[pos..line])?;
                    pos = line + 2;
                    phase = if size == 0 { ChunkPhase::Trailer } else { ChunkPhase::Data(size) };
                }
                ChunkPhase::Data(left) => {
                    let take = left.min(buf.len() - pos);
                    if take == 0 {
                        break;
                    }
                    self.chunked_len += take;
                    if self.chunked_len > self.max_body {
                        return Ok(self.too_long(status));
                    }
                    if self.keep_body {
                        self.chunked_body.extend_from_slice(&buf[pos..pos + take]);
                    }
                    pos += take;
                    phase = if take == left { ChunkPhase::DataEnd } else { ChunkPhase::Data(left - take) };
                }
                ChunkPhase::DataEnd => {
                    if buf.len() < pos + 2 {
                        break;
                    }
                    if &buf[pos..pos + 2] != b"\r\n" {
                        return Err(AnswerError::BadChunk("no CRLF after chunk data"));
                    }
                    pos += 2;
                    phase = ChunkPhase::Size;
                }
                ChunkPhase::Trailer => {
                    let Some(line) = next_line(buf, pos)? else { break };
                    let empty = line == pos;
                    pos = line + 2;
                    if empty {
                        return Ok(Progress::Complete(Answer {
                            status,
                            body: self.keep_body.then(|| std::mem::take(&mut self.chunked_body)),
                            reusable: keep_alive && pos == buf.len(),
                        }));
                    }
                }
            }
        }
        if eof {
            return Err(AnswerError::Truncated);
        }
        self.state = State::Chunked { status, keep_alive, pos, phase };
        Ok(Progress::Incomplete)
    }
}

/// Index of the CRLF ending the line at `from`, if it has arrived.
fn next_line(buf: &[u8], from: usize) -> Result<Option<usize>, AnswerError> {
    let rest = &buf[from..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i > MAX_LINE_BYTES => Err(AnswerError::BadChunk("line too long")),
        Some(i) => Ok(Some(from + i)),
        None if rest.len() > MAX_LINE_BYTES => Err(AnswerError::BadChunk("line too long")),
        None => Ok(None),
    }
}

/// The hex size at the start of a chunk-size line (extensions ignored).
fn chunk_size(line: &[u8]) -> Result<usize, AnswerError> {
    let digits = line.split(|b| *b == b';').next().unwrap_or_default().trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(AnswerError::BadChunk("bad chunk size"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| AnswerError::BadChunk("bad chunk size"))?;
    usize::from_str_radix(text, 16).map_err(|_| AnswerError::BadChunk("bad chunk size"))
}

fn last_token(value: &[u8]) -> &[u8] {
    value.rsplit(|b| *b == b',').next().unwrap_or_default().trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `raw` in every possible two-part split and in single bytes;
    /// every way must give the same result.
    fn parse_all_ways(raw: &[u8], keep_body: bool, max_body: usize, eof_at_end: bool) -> Result<Progress, AnswerError> {
        let whole = run(raw, &[raw.len()], keep_body, max_body, eof_at_end);
        for split in 0..=raw.len() {
            let parts = run(raw, &[split, raw.len()], keep_body, max_body, eof_at_end);
            assert_eq!(parts, whole, "split at {split} of {:?}", String::from_utf8_lossy(raw));
        }
        let bytewise: Vec<usize> = (1..=raw.len()).collect();
        assert_eq!(run(raw, &bytewise, keep_body, max_body, eof_at_end), whole, "byte by byte");
        whole
    }

    /// Feeds growing prefixes ending at each of `cuts`; stops at the first
    /// complete answer or error.
    fn run(
        raw: &[u8],
        cuts: &[usize],
        keep_body: bool,
        max_body: usize,
        eof_at_end: bool,
    ) -> Result<Progress, AnswerError> {
        let mut parser = AnswerParser::new(keep_body, max_body);
        let mut result = Ok(Progress::Incomplete);
        for (i, &cut) in cuts.iter().enumerate() {
            let eof = eof_at_end && i == cuts.len() - 1;
            result = parser.advance(&raw[..cut], eof);
            if !matches!(result, Ok(Progress::Incomplete)) {
                return result;
            }
        }
        result
    }

    fn complete(status: u16, body: Option<&[u8]>, reusable: bool) -> Result<Progress, AnswerError> {
        Ok(Progress::Complete(Answer { status, body: body.map(<[u8]>::to_vec), reusable }))
    }

    #[test]
    fn renders_requests_with_the_contract_headers() {
        let t = RequestTemplate::new("shop:8080", "/api", "trafficgen/1.0");
        let mut out = Vec::new();
        t.post_orders(&mut out, br#"{"product_id":3,"quantity":2}"#);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /api/orders HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: trafficgen/1.0\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"product_id\":3,\"quantity\":2}"
        );
        t.get_orders(&mut out, Some("17"));
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "GET /api/orders/17 HTTP/1.1\r\nHost: shop:8080\r\nUser-Agent: trafficgen/1.0\r\n\r\n"
        );
        let t = RequestTemplate::new("nginx", "", "ua");
        t.get_orders(&mut out, None);
        assert!(out.starts_with(b"GET /orders HTTP/1.1\r\nHost: nginx\r\n"));
    }

    #[test]
    fn content_length_answers_complete_exactly_at_their_length() {
        let raw = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"id\":42}";
        assert_eq!(parse_all_ways(raw, true, 1024, false), complete(201, Some(b"{\"id\":42}"), true));
        assert_eq!(parse_all_ways(raw, false, 1024, false), complete(201, None, true));
    }

    #[test]
    fn chunked_answers_are_decoded_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"id\r\nA\r\n\":\"ab-12\"}\r\n0\r\nX-Trailer: yes\r\n\r\n";
        assert_eq!(parse_all_ways(raw, true, 1024, false), complete(200, Some(b"{\"id\":\"ab-12\"}"), true));
        let upper = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n";
        assert_eq!(parse_all_ways(upper, false, 1024, false), complete(200, None, true));
    }

    #[test]
    fn close_delimited_answers_end_at_eof_and_are_not_reused() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello";
        assert_eq!(parse_all_ways(raw, true, 1024, true), complete(200, Some(b"hello"), false));
        assert_eq!(run(raw, &[raw.len()], true, 1024, false), Ok(Progress::Incomplete));
    }

    #[test]
    fn connection_close_and_http_1_0_are_not_reused() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse_all_ways(close, false, 1024, false), complete(200, None, false));
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(parse_all_ways(old, false, 1024, false), complete(200, None, false));
        let old_keep = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(parse_all_ways(old_keep, false, 1024, false), complete(200, None, true));
    }

    #[test]
    fn interim_answers_are_skipped_and_bodiless_codes_have_no_body() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_all_ways(raw, true, 1024, false), complete(204, Some(b""), true));
        let not_modified = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n";
        assert_eq!(parse_all_ways(not_modified, false, 1024, false), complete(304, None, true));
    }

    #[test]
    fn bodies_over_the_cap_end_the_exchange_unread() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n";
        assert_eq!(parse_all_ways(raw, true, 1024, false), complete(200, None, false));
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n".to_vec();
        chunked.extend(std::iter::repeat_n(b'x', 0x800));
        assert_eq!(run(&chunked, &[chunked.len()], true, 1024, false), complete(200, None, false));
        let mut open = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        open.extend(std::iter::repeat_n(b'x', 2000));
        assert_eq!(run(&open, &[open.len()], true, 1024, false), complete(200, None, false));
    }

    #[test]
    fn bytes_after_the_answer_make_the_connection_unusable() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
        assert_eq!(run(raw, &[raw.len()], false, 1024, false), complete(200, None, false));
    }

    #[test]
    fn broken_answers_are_errors_never_panics() {
        let cases: &[(&[u8], bool, AnswerError)] = &[
            (b"<html>hello</html>\r\n\r\n", false, AnswerError::BadHead("not an HTTP/1.x answer")),
            (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, AnswerError::BadHead("bad Content-Length")),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false,
                AnswerError::BadHead("conflicting Content-Length"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
                AnswerError::BadChunk("bad chunk size"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
                false,
                AnswerError::BadChunk("no CRLF after chunk data"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
                false,
                AnswerError::BadChunk("bad chunk size"),
            ),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true, AnswerError::Truncated),
            (b"HTTP/1.1 200 O", true, AnswerError::Truncated),
            (b"", true, AnswerError::Truncated),
        ];
        for (raw, eof, expected) in cases {
            assert_eq!(run(raw, &[raw.len()], true, 1024, *eof), Err(*expected), "{:?}", String::from_utf8_lossy(raw));
        }
        let mut long_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        while long_head.len() <= MAX_HEAD_BYTES {
            long_head
                .extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let result = run(&long_head, &[long_head.len()], false, 1024, false);
        assert!(matches!(result, Err(AnswerError::HeadTooLong) | Err(AnswerError::BadHead(_))), "{result:?}");
    }
}
