//! HTTP/1.1 as the engine speaks it: requests rendered into a reusable
//! buffer, answers parsed incrementally as bytes arrive. Pure: no I/O.
//!
//! Only what a load generator needs: one request at a time per connection
//! (no pipelining), answers framed by `Content-Length`, `chunked` or the end
//! of the connection, interim 1xx answers skipped, bodies capped.

/// Most header lines an answer may have (curl has no such limit; the
/// head's total size is what bounds memory).
const MAX_HEADERS: usize = 512;
/// Largest answer head, interim (1xx) heads before it included; a longer one
/// is an error, not a reason to buffer more. The same bytes give the same
/// verdict however they arrive.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE_BYTES: usize = 4096;
/// Largest total of a chunked body's framing: size lines with their
/// extensions, the line ends after each chunk, and the trailers. Only chunk
/// data counts against the body cap, so without this a target could stream
/// extensions or trailers for ever.
pub const MAX_FRAMING_BYTES: usize = 64 * 1024;

/// Most bytes one answer can occupy in a read buffer: everything past this
/// is refused by the parser before it would be needed.
pub const fn max_answer_bytes(max_body: usize) -> usize {
    MAX_HEAD_BYTES + max_body + MAX_FRAMING_BYTES
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
    /// `Keep-Alive: timeout=N`: the target closes the idle connection after
    /// N seconds.
    pub keep_alive_secs: Option<u32>,
    /// The final head's header lines, when asked for (a capture reads one).
    pub headers: Vec<(String, Vec<u8>)>,
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
    #[error("chunked framing (sizes, extensions, trailers) longer than {MAX_FRAMING_BYTES} bytes")]
    FramingTooLong,
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

/// What the final head said about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reuse {
    keep_alive: bool,
    keep_alive_secs: Option<u32>,
}

#[derive(Debug, Clone)]
enum State {
    Head,
    Body { status: u16, framing: Framing, reuse: Reuse, body_start: usize },
    Chunked { status: u16, reuse: Reuse, pos: usize, phase: ChunkPhase },
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
    /// Framing bytes of the chunked body so far.
    framing_len: usize,
    keep_headers: bool,
    /// The request was a HEAD: the answer has no body, whatever its
    /// `Content-Length` says (RFC 9110 §9.3.2).
    head_request: bool,
    /// The final head's headers, when kept.
    headers: Vec<(String, Vec<u8>)>,
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
            framing_len: 0,
            keep_headers: false,
            head_request: false,
            headers: Vec::new(),
        }
    }

    /// The answer is to a HEAD request.
    pub fn answering_head(mut self, head: bool) -> Self {
        self.head_request = head;
        self
    }

    /// Also hands back the answer's header lines (bounded with the head).
    pub fn keeping_headers(mut self, keep: bool) -> Self {
        self.keep_headers = keep;
        self
    }

    /// `buf` holds every byte read for this answer so far; `eof` says the
    /// connection has closed.
    pub fn advance(&mut self, buf: &[u8], eof: bool) -> Result<Progress, AnswerError> {
        let progress = self.advance_inner(buf, eof)?;
        Ok(match progress {
            Progress::Complete(mut answer) if self.keep_headers => {
                answer.headers = std::mem::take(&mut self.headers);
                Progress::Complete(answer)
            }
            other => other,
        })
    }

    fn advance_inner(&mut self, buf: &[u8], eof: bool) -> Result<Progress, AnswerError> {
        loop {
            match self.state.clone() {
                State::Head => match self.parse_head(buf)? {
                    Some(next) => self.state = next,
                    None if eof => return Err(AnswerError::Truncated),
                    None => return Ok(Progress::Incomplete),
                },
                State::Body { status, framing, reuse, body_start } => {
                    return self.body(buf, eof, status, framing, reuse, body_start);
                }
                State::Chunked { status, reuse, pos, phase } => {
                    return self.chunked(buf, eof, status, reuse, pos, phase);
                }
            }
        }
    }

    /// Parses a head starting at `head_start`: the next state, or `None`
    /// when the head is not complete yet. Interim (1xx) answers are skipped.
    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<State>, AnswerError> {
        let bytes = &buf[self.head_start..];
        // Uninitialised header slots: zeroing them per answer shows in profiles.
        let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        // Lenient where RFC 9112 asks a client to be (obsolete line folding,
        // §5.2) and where curl is (a space before the colon).
        let parsed = httparse::ParserConfig::default()
            .allow_obsolete_multiline_headers_in_responses(true)
            .allow_spaces_after_header_name_in_responses(true)
            .parse_response_with_uninit_headers(&mut response, bytes, &mut headers);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            // Every byte so far belongs to the head: bound them all, so a head
            // is refused whether it arrives in one read or many.
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(AnswerError::HeadTooLong),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(AnswerError::BadHead("too many header lines")),
            Err(_) => return Err(AnswerError::BadHead("not an HTTP/1.x answer")),
        };
        let body_start = self.head_start + len;
        if body_start > MAX_HEAD_BYTES {
            return Err(AnswerError::HeadTooLong);
        }
        let status = response.code.ok_or(AnswerError::BadHead("no status"))?;
        if (100..200).contains(&status) && status != 101 {
            self.head_start = body_start;
            return Ok(Some(State::Head));
        }

        if self.keep_headers {
            self.headers = response.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
        }
        let mut keep_alive = response.version == Some(1);
        let mut keep_alive_secs = None;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for header in response.headers.iter() {
            let value = header.value;
            if header.name.eq_ignore_ascii_case("content-length") {
                // A list of identical values is one value (RFC 9110 §8.6).
                for item in value.split(|b| *b == b',') {
                    let n = std::str::from_utf8(item)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .ok_or(AnswerError::BadHead("bad Content-Length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(AnswerError::BadHead("conflicting Content-Length"));
                    }
                    length = Some(n);
                }
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
            } else if header.name.eq_ignore_ascii_case("keep-alive") {
                keep_alive_secs = keep_alive_timeout(value).or(keep_alive_secs);
            }
        }
        let framing = if status == 204 || status == 304 || self.head_request {
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
        let reuse = Reuse { keep_alive, keep_alive_secs };
        Ok(Some(match framing {
            Framing::Chunked => State::Chunked { status, reuse, pos: body_start, phase: ChunkPhase::Size },
            _ => State::Body { status, framing, reuse, body_start },
        }))
    }

    fn body(
        &self,
        buf: &[u8],
        eof: bool,
        status: u16,
        framing: Framing,
        reuse: Reuse,
        body_start: usize,
    ) -> Result<Progress, AnswerError> {
        let available = buf.len() - body_start;
        let (end, reusable) = match framing {
            Framing::Empty => (body_start, reuse.keep_alive),
            Framing::Length(n) if n > self.max_body => return Ok(self.too_long(status)),
            Framing::Length(n) if available >= n => (body_start + n, reuse.keep_alive),
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
            keep_alive_secs: reuse.keep_alive_secs,
            headers: Vec::new(),
        }))
    }

    fn too_long(&self, status: u16) -> Progress {
        Progress::Complete(Answer { status, body: None, reusable: false, keep_alive_secs: None, headers: Vec::new() })
    }

    /// Counts `n` framing bytes against [`MAX_FRAMING_BYTES`].
    fn framing(&mut self, n: usize) -> Result<(), AnswerError> {
        self.framing_len += n;
        if self.framing_len > MAX_FRAMING_BYTES {
            return Err(AnswerError::FramingTooLong);
        }
        Ok(())
    }

    fn chunked(
        &mut self,
        buf: &[u8],
        eof: bool,
        status: u16,
        reuse: Reuse,
        mut pos: usize,
        mut phase: ChunkPhase,
    ) -> Result<Progress, AnswerError> {
        loop {
            match phase {
                ChunkPhase::Size => {
                    let Some((line_end, next)) = next_line(buf, pos)? else { break };
                    let size = chunk_size(&buf[pos..line_end])?;
                    self.framing(next - pos)?;
                    pos = next;
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
                    // CRLF, or a bare LF (RFC 9112 §2.2 lets a recipient take it as a line end).
                    let end = match buf.get(pos..(pos + 2).min(buf.len())) {
                        Some(b"\r\n") => 2,
                        Some([b'\n', ..]) => 1,
                        Some(b"\r") | Some(b"") | None => break,
                        Some(_) => return Err(AnswerError::BadChunk("no CRLF after chunk data")),
                    };
                    self.framing(end)?;
                    pos += end;
                    phase = ChunkPhase::Size;
                }
                ChunkPhase::Trailer => {
                    let Some((line_end, next)) = next_line(buf, pos)? else { break };
                    let empty = line_end == pos;
                    self.framing(next - pos)?;
                    pos = next;
                    if empty {
                        return Ok(Progress::Complete(Answer {
                            status,
                            body: self.keep_body.then(|| std::mem::take(&mut self.chunked_body)),
                            reusable: reuse.keep_alive && pos == buf.len(),
                            keep_alive_secs: reuse.keep_alive_secs,
                            headers: Vec::new(),
                        }));
                    }
                }
            }
        }
        if eof {
            return Err(AnswerError::Truncated);
        }
        self.state = State::Chunked { status, reuse, pos, phase };
        Ok(Progress::Incomplete)
    }
}

/// The line starting at `from`, if it has arrived: where its content ends
/// and where the next line starts. A line ends in CRLF or a bare LF.
fn next_line(buf: &[u8], from: usize) -> Result<Option<(usize, usize)>, AnswerError> {
    let rest = &buf[from..];
    match rest.iter().position(|b| *b == b'\n') {
        Some(i) if i > MAX_LINE_BYTES => Err(AnswerError::BadChunk("line too long")),
        Some(i) => {
            let content_end = if i > 0 && rest[i - 1] == b'\r' { i - 1 } else { i };
            Ok(Some((from + content_end, from + i + 1)))
        }
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

/// `timeout=N` from a `Keep-Alive` header value.
fn keep_alive_timeout(value: &[u8]) -> Option<u32> {
    value.split(|b| *b == b',').find_map(|param| {
        let (name, n) = std::str::from_utf8(param).ok()?.split_once('=')?;
        name.trim().eq_ignore_ascii_case("timeout").then_some(())?;
        n.trim().trim_matches('"').parse().ok()
    })
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
        Ok(Progress::Complete(Answer {
            status,
            body: body.map(<[u8]>::to_vec),
            reusable,
            keep_alive_secs: None,
            headers: Vec::new(),
        }))
    }

    #[test]
    fn headers_are_handed_back_only_when_asked_for() {
        let raw = b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\nHTTP/1.1 201 Created\r\nLocation: /users/7\r\nContent-Length: 2\r\n\r\nok";
        let mut parser = AnswerParser::new(false, 1024).keeping_headers(true);
        let Ok(Progress::Complete(answer)) = parser.advance(raw, false) else { panic!("incomplete") };
        let names: Vec<&str> = answer.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Location", "Content-Length"], "the final head's headers only");
        assert_eq!(answer.headers[0].1, b"/users/7");
        let Ok(Progress::Complete(answer)) = AnswerParser::new(false, 1024).advance(raw, false) else { panic!() };
        assert!(answer.headers.is_empty());
    }

    #[test]
    fn an_answer_to_head_has_no_body_whatever_its_length_says() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
        let mut parser = AnswerParser::new(true, 4096).answering_head(true);
        let Ok(Progress::Complete(answer)) = parser.advance(raw, false) else {
            panic!("a HEAD answer ends with its head")
        };
        assert_eq!((answer.status, answer.body.as_deref(), answer.reusable), (200, Some(&b""[..]), true));
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
        let too_many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{too_many}\r\n");
        assert_eq!(
            run(raw.as_bytes(), &[raw.len()], false, 1024, false),
            Err(AnswerError::BadHead("too many header lines"))
        );
    }

    /// `raw` fed whole, at each of `splits`, and in 1 KiB reads.
    fn parse_some_ways(raw: &[u8], splits: &[usize]) -> Result<Progress, AnswerError> {
        let whole = run(raw, &[raw.len()], false, 1024, false);
        for &split in splits {
            assert_eq!(run(raw, &[split, raw.len()], false, 1024, false), whole, "split at {split}");
        }
        let reads: Vec<usize> = (1..=raw.len().div_ceil(1024)).map(|i| (i * 1024).min(raw.len())).collect();
        assert_eq!(run(raw, &reads, false, 1024, false), whole, "in 1 KiB reads");
        whole
    }

    /// A head of `len` bytes: a status line, a long header and an empty body.
    fn head_of(len: usize) -> Vec<u8> {
        let fixed = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: \r\n\r\n".len();
        let pad = "a".repeat(len - fixed);
        format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: {pad}\r\n\r\n").into_bytes()
    }

    #[test]
    fn the_head_limit_holds_however_the_bytes_arrive() {
        let at_limit = head_of(MAX_HEAD_BYTES);
        let splits = [1, 100, MAX_HEAD_BYTES - 4, MAX_HEAD_BYTES - 1];
        assert_eq!(parse_some_ways(&at_limit, &splits), complete(200, None, true));
        // 70 KB: refused in one read and in many alike (once it was accepted whole).
        let over = head_of(70_000);
        let splits = [1, 100, MAX_HEAD_BYTES - 1, MAX_HEAD_BYTES, MAX_HEAD_BYTES + 1, 69_999];
        assert_eq!(parse_some_ways(&over, &splits), Err(AnswerError::HeadTooLong));
        let just_over = head_of(MAX_HEAD_BYTES + 1);
        assert_eq!(parse_some_ways(&just_over, &[MAX_HEAD_BYTES]), Err(AnswerError::HeadTooLong));
    }

    #[test]
    fn many_header_lines_are_fine_within_the_head_limit() {
        let lines: String = (0..300).map(|i| format!("X-Header-{i}: value {i}\r\n")).collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{lines}Content-Length: 2\r\n\r\nok");
        assert_eq!(parse_all_ways(raw.as_bytes(), false, 1024, false), complete(200, None, true));
    }

    #[test]
    fn obsolete_line_folding_and_a_space_before_the_colon_are_accepted() {
        let folded = b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\n\tthird\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(parse_all_ways(folded, true, 1024, false), complete(200, Some(b"ok"), true));
        let spaced = b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\nConnection : close\r\n\r\nok";
        assert_eq!(parse_all_ways(spaced, true, 1024, false), complete(200, Some(b"ok"), false));
    }

    #[test]
    fn a_list_of_equal_content_lengths_is_one_length() {
        let same = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok";
        assert_eq!(parse_all_ways(same, true, 1024, false), complete(200, Some(b"ok"), true));
        let repeated = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2,2\r\n\r\nok";
        assert_eq!(parse_all_ways(repeated, true, 1024, false), complete(200, Some(b"ok"), true));
        let different = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok";
        assert_eq!(
            run(different, &[different.len()], true, 1024, false),
            Err(AnswerError::BadHead("conflicting Content-Length"))
        );
        let empty_item = b"HTTP/1.1 200 OK\r\nContent-Length: 2,\r\n\r\nok";
        assert_eq!(
            run(empty_item, &[empty_item.len()], true, 1024, false),
            Err(AnswerError::BadHead("bad Content-Length"))
        );
    }

    #[test]
    fn chunk_lines_may_end_in_a_bare_lf() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\n{\"id\n4;x=y\r\n\":7}\n0\nX-T: 1\n\n";
        assert_eq!(parse_all_ways(raw, true, 1024, false), complete(200, Some(b"{\"id\":7}"), true));
    }

    #[test]
    fn keep_alive_timeout_is_read_from_the_answer() {
        let raw = b"HTTP/1.1 200 OK\r\nKeep-Alive: max=100, timeout=2\r\nContent-Length: 0\r\n\r\n";
        let Ok(Progress::Complete(answer)) = parse_all_ways(raw, false, 1024, false) else { panic!() };
        assert_eq!(answer.keep_alive_secs, Some(2));
        assert_eq!(keep_alive_timeout(b"timeout=5"), Some(5));
        assert_eq!(keep_alive_timeout(b"Timeout = \"7\""), Some(7));
        assert_eq!(keep_alive_timeout(b"max=5"), None);
        assert_eq!(keep_alive_timeout(b"timeout=-1, timeout"), None);
        assert_eq!(keep_alive_timeout(b"timeout=99999999999"), None);
    }

    /// Streams `head` then `unit` repeated, in 4 KiB reads, the way a hostile
    /// target would; returns the parser's verdict and how many bytes it took.
    fn stream(head: &[u8], unit: &[u8]) -> (Result<Progress, AnswerError>, usize) {
        let mut parser = AnswerParser::new(true, 256 * 1024);
        let mut buf = head.to_vec();
        let mut next_read = 0;
        while buf.len() < 64 * 1024 * 1024 {
            buf.extend_from_slice(unit);
            if buf.len() < next_read {
                continue;
            }
            next_read = buf.len() + 4096;
            match parser.advance(&buf, false) {
                Ok(Progress::Incomplete) => {}
                result => return (result, buf.len()),
            }
        }
        (Ok(Progress::Incomplete), buf.len())
    }

    #[test]
    fn no_part_of_an_answer_can_grow_without_bound() {
        let limit = max_answer_bytes(256 * 1024) + 8 * 1024;
        let cases: &[(&[u8], &[u8], AnswerError)] = &[
            (b"", b"HTTP/1.1 100 Continue\r\n\r\n", AnswerError::HeadTooLong),
            (b"HTTP/1.1 200 OK\r\n", &[b'a'; 1000], AnswerError::HeadTooLong),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
                b"X-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
                AnswerError::FramingTooLong,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"1;ext=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nx\r\n",
                AnswerError::FramingTooLong,
            ),
        ];
        for (head, unit, expected) in cases {
            let (result, taken) = stream(head, unit);
            assert_eq!(result, Err(*expected), "{:?}", String::from_utf8_lossy(unit));
            assert!(taken <= limit, "{taken} bytes read before refusing {:?}", String::from_utf8_lossy(unit));
        }
    }
}
