//! A small HTTP/1.1 client for the control APIs of peers: one exchange per
//! connection (`Connection: close`), a deadline on the whole of it, answers
//! read with the engine's bounded parser, no redirects, no pool.
//!
//! Every request is signed with the cluster key and every 200 answer must
//! carry the peer's signature bound to that request (see [`super::auth`]):
//! the secret itself never leaves the process.
//!
//! Peers are few and asked every few seconds; a connection each keeps
//! nothing open between polls and nothing to go stale.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ASKER_HEADER;
use super::auth::{AUTH_HEADER, AuthError, ClusterKey, RequestParts, Stamp};
use super::version::now_ms;
use crate::engine::http::{AnswerError, AnswerParser, Progress, max_answer_bytes};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("connection failed: {0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Answer(AnswerError),
    #[error("answer body over {0} bytes")]
    TooLarge(usize),
    #[error("answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("{0}")]
    Unproven(AuthError),
}

/// Asks peers, signing each request with the cluster key.
#[derive(Clone)]
pub struct PeerClient {
    key: ClusterKey,
    timeout: Duration,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// A request ready to send, and the stamp its answer must be signed for.
struct Signed {
    bytes: Vec<u8>,
    stamp: Stamp,
}

impl PeerClient {
    pub fn new(key: ClusterKey, timeout: Duration) -> Self {
        PeerClient { key, timeout }
    }

    /// `GET path` (with the asker header when given): the body of a signed
    /// 200 answer, at most `max_body` bytes.
    pub async fn get(
        &self,
        address: SocketAddr,
        path: &str,
        asker: Option<&str>,
        max_body: usize,
    ) -> Result<Vec<u8>, PeerError> {
        self.exchange(address, "GET", path, asker, None, max_body).await
    }

    /// `PUT path` with a JSON body: the body of a signed 200 answer.
    pub async fn put(
        &self,
        address: SocketAddr,
        path: &str,
        body: &[u8],
        max_body: usize,
    ) -> Result<Vec<u8>, PeerError> {
        self.exchange(address, "PUT", path, None, Some(body), max_body).await
    }

    async fn exchange(
        &self,
        address: SocketAddr,
        method: &str,
        path: &str,
        asker: Option<&str>,
        body: Option<&[u8]>,
        max_body: usize,
    ) -> Result<Vec<u8>, PeerError> {
        let request = self.render(address, method, path, asker, body, Stamp::now(now_ms()));
        let answer = tokio::time::timeout(self.timeout, exchange(address, request.bytes, max_body))
            .await
            .map_err(|_| PeerError::Timeout(self.timeout))??;
        let (headers, body) = answer;
        let signature = headers.iter().find(|(name, _)| name.eq_ignore_ascii_case(AUTH_HEADER)).map(|(_, v)| &v[..]);
        self.key.check_answer(signature, request.stamp, 200, &body).map_err(PeerError::Unproven)?;
        Ok(body)
    }

    /// Names and values are ours (the asker is our id), never from the network.
    fn render(
        &self,
        address: SocketAddr,
        method: &str,
        path: &str,
        asker: Option<&str>,
        body: Option<&[u8]>,
        stamp: Stamp,
    ) -> Signed {
        let parts =
            RequestParts { method, target: path, asker: asker.unwrap_or_default(), body: body.unwrap_or_default() };
        let signature = self.key.sign_request(&parts, stamp);
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: trafficgen/{} (cluster)\r\nAccept: application/json\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(asker) = asker {
            head.push_str(&format!("{ASKER_HEADER}: {asker}\r\n"));
        }
        head.push_str(&format!("{AUTH_HEADER}: {signature}\r\n"));
        if let Some(body) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        Signed { bytes, stamp }
    }
}

/// The headers and body of a 200 answer.
type Answer = (Vec<(String, Vec<u8>)>, Vec<u8>);

async fn exchange(address: SocketAddr, request: Vec<u8>, max_body: usize) -> Result<Answer, PeerError> {
    let mut stream = TcpStream::connect(address).await.map_err(PeerError::Connect)?;
    stream.write_all(&request).await.map_err(PeerError::Io)?;
    let mut parser = AnswerParser::new(true, max_body).keeping_headers(true);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let answer = loop {
        let n = stream.read(&mut chunk).await.map_err(PeerError::Io)?;
        buf.extend_from_slice(&chunk[..n]);
        // The parser refuses more than this before it is read; a peer that
        // keeps sending is cut off here all the same.
        if buf.len() > max_answer_bytes(max_body) {
            return Err(PeerError::TooLarge(max_body));
        }
        match parser.advance(&buf, n == 0).map_err(PeerError::Answer)? {
            Progress::Incomplete => {}
            Progress::Complete(answer) => break answer,
        }
    };
    let body = answer.body.ok_or(PeerError::TooLarge(max_body))?;
    if answer.status != 200 {
        return Err(PeerError::Status { status: answer.status, message: error_message(&body) });
    }
    Ok((answer.headers, body))
}

/// The `error` of a JSON error answer, or the start of the body.
fn error_message(body: &[u8]) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClusterKey {
        ClusterKey::derive(b"s3cret-of-sixteen-plus")
    }

    #[test]
    fn requests_are_signed_never_carry_the_secret_and_ask_for_close() {
        let client = PeerClient::new(key(), Duration::from_secs(1));
        let address = SocketAddr::from(([10, 1, 2, 3], 8089));
        let stamp = Stamp { at_ms: 1_800_000_000_000, nonce: 9 };
        let put = client.render(address, "PUT", "/cluster/state", None, Some(b"{}"), stamp);
        let request = String::from_utf8(put.bytes).unwrap();
        assert!(request.starts_with("PUT /cluster/state HTTP/1.1\r\nHost: 10.1.2.3:8089\r\n"), "{request}");
        let signature = key()
            .sign_request(&RequestParts { method: "PUT", target: "/cluster/state", asker: "", body: b"{}" }, stamp);
        assert!(request.contains(&format!("trafficgen-peer-auth: {signature}\r\n")), "{request}");
        assert!(request.contains("Connection: close\r\n"));
        assert!(request.ends_with("Content-Length: 2\r\n\r\n{}"));
        assert!(!request.contains("Origin") && !request.contains("Authorization"), "{request}");
        assert!(!request.contains("s3cret"), "the secret never travels");
        let get = client.render(address, "GET", "/cluster/member", Some("00000000000000ab"), None, stamp);
        let request = String::from_utf8(get.bytes).unwrap();
        assert!(request.contains("trafficgen-replica: 00000000000000ab\r\ntrafficgen-peer-auth: v1 "), "{request}");
        assert!(request.ends_with("\r\n\r\n"));
        assert!(!format!("{client:?}").contains("s3cret"), "the secret is never in Debug output");
    }

    #[test]
    fn error_messages_are_short_single_lines() {
        assert_eq!(error_message(br#"{"error":"no"}"#), "no");
        assert_eq!(error_message(b"plain\r\ntext"), "plaintext");
        assert_eq!(error_message(&[b'x'; 1000]).len(), 200);
    }

    /// The signature header a peer holding `key` puts on its answer to
    /// `request` (the stamp read back from the request's header).
    fn sign_answer_to(key: &ClusterKey, request: &[u8], status: u16, body: &str) -> String {
        let text = String::from_utf8_lossy(request);
        let header = text.lines().find_map(|l| l.strip_prefix("trafficgen-peer-auth: ")).unwrap();
        let stamp = super::super::auth::precheck(header.as_bytes(), now_ms()).unwrap();
        key.sign_answer(stamp, status, body.as_bytes())
    }

    #[test]
    fn only_answers_signed_for_the_request_count_and_dead_peers_are_errors() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let other = ClusterKey::derive(b"another-secret-entirely");
                for (signer, body) in [
                    (Some(key()), "hello".to_string()),
                    (None, "hello".to_string()),
                    (Some(other), "hello".to_string()),
                    (Some(key()), "x".repeat(5000)),
                    (None, "{\"error\":\"who\"}".to_string()),
                ] {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let mut head = [0u8; 1024];
                    let n = socket.read(&mut head).await.unwrap();
                    let status = if body.contains("error") { "401 Unauthorized" } else { "200 OK" };
                    let code = if body.contains("error") { 401 } else { 200 };
                    let signature = signer
                        .map(|k| format!("trafficgen-peer-auth: {}\r\n", sign_answer_to(&k, &head[..n], code, &body)))
                        .unwrap_or_default();
                    let answer =
                        format!("HTTP/1.1 {status}\r\n{signature}Content-Length: {}\r\n\r\n{body}", body.len());
                    socket.write_all(answer.as_bytes()).await.unwrap();
                }
                // Accepts and says nothing.
                let (_socket, _) = listener.accept().await.unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
            let client = PeerClient::new(key(), Duration::from_millis(300));
            assert_eq!(client.get(address, "/", None, 100).await.unwrap(), b"hello");
            let unsigned = client.get(address, "/", None, 100).await.unwrap_err();
            assert!(matches!(unsigned, PeerError::Unproven(AuthError::UnsignedAnswer)), "{unsigned}");
            assert!(unsigned.to_string().contains("not a replica of this cluster"), "{unsigned}");
            let other = client.get(address, "/", None, 100).await.unwrap_err();
            assert!(matches!(other, PeerError::Unproven(_)), "signed with another secret: {other}");
            assert!(matches!(client.get(address, "/", None, 100).await, Err(PeerError::TooLarge(100))));
            let err = client.get(address, "/", None, 100).await.unwrap_err();
            assert_eq!(err.to_string(), "answered 401: who");
            assert!(matches!(client.get(address, "/", None, 100).await, Err(PeerError::Timeout(_))));
            server.abort();
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            assert!(matches!(client.get(closed, "/", None, 100).await, Err(PeerError::Connect(_))));
        });
    }
}
