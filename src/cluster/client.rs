//! A small HTTP/1.1 client for the control APIs of peers: one exchange per
//! connection (`Connection: close`), a deadline on the whole of it, answers
//! read with the engine's bounded parser, no redirects, no pool.
//!
//! Peers are few and asked every few seconds; a connection each keeps
//! nothing open between polls and nothing to go stale.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::base::token::ControlToken;
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
}

/// Asks peers, with the control token when one is set.
#[derive(Clone)]
pub struct PeerClient {
    authorization: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl PeerClient {
    pub fn new(token: Option<&ControlToken>, timeout: Duration) -> Self {
        PeerClient { authorization: token.map(ControlToken::bearer), timeout }
    }

    /// `GET path`: the body of a 200 answer, at most `max_body` bytes.
    pub async fn get(&self, address: SocketAddr, path: &str, max_body: usize) -> Result<Vec<u8>, PeerError> {
        self.exchange(address, "GET", path, &[], None, max_body).await
    }

    /// `GET path` with more headers (names and values of our own, never
    /// from the network).
    pub async fn get_with(
        &self,
        address: SocketAddr,
        path: &str,
        headers: &[(&str, String)],
        max_body: usize,
    ) -> Result<Vec<u8>, PeerError> {
        self.exchange(address, "GET", path, headers, None, max_body).await
    }

    /// `PUT path` with a JSON body: the body of a 200 answer.
    pub async fn put(
        &self,
        address: SocketAddr,
        path: &str,
        body: &[u8],
        max_body: usize,
    ) -> Result<Vec<u8>, PeerError> {
        self.exchange(address, "PUT", path, &[], Some(body), max_body).await
    }

    async fn exchange(
        &self,
        address: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
        max_body: usize,
    ) -> Result<Vec<u8>, PeerError> {
        let request = self.render(address, method, path, headers, body);
        tokio::time::timeout(self.timeout, exchange(address, request, max_body))
            .await
            .map_err(|_| PeerError::Timeout(self.timeout))?
    }

    fn render(
        &self,
        address: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: trafficgen/{} (cluster)\r\nAccept: application/json\r\nConnection: close\r\n",
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(authorization) = &self.authorization {
            head.push_str("Authorization: ");
            head.push_str(authorization);
            head.push_str("\r\n");
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body.unwrap_or_default());
        request
    }
}

async fn exchange(address: SocketAddr, request: Vec<u8>, max_body: usize) -> Result<Vec<u8>, PeerError> {
    let mut stream = TcpStream::connect(address).await.map_err(PeerError::Connect)?;
    stream.write_all(&request).await.map_err(PeerError::Io)?;
    let mut parser = AnswerParser::new(true, max_body);
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
    Ok(body)
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

    #[test]
    fn requests_carry_the_token_and_a_length_and_ask_for_close() {
        let token = ControlToken::parse("s3cret").unwrap();
        let client = PeerClient::new(Some(&token), Duration::from_secs(1));
        let address = SocketAddr::from(([10, 1, 2, 3], 8089));
        let request = String::from_utf8(client.render(address, "PUT", "/cluster/state", &[], Some(b"{}"))).unwrap();
        assert!(request.starts_with("PUT /cluster/state HTTP/1.1\r\nHost: 10.1.2.3:8089\r\n"), "{request}");
        assert!(request.contains("Authorization: Bearer s3cret\r\n"));
        assert!(request.contains("Connection: close\r\n"));
        assert!(request.ends_with("Content-Length: 2\r\n\r\n{}"));
        assert!(!request.contains("Origin"), "peers send no Origin");
        let without = PeerClient::new(None, Duration::from_secs(1));
        let request = String::from_utf8(without.render(
            address,
            "GET",
            "/cluster/member",
            &[("trafficgen-replica", "00000000000000ab".into())],
            None,
        ))
        .unwrap();
        assert!(
            !request.contains("Authorization") && request.ends_with("trafficgen-replica: 00000000000000ab\r\n\r\n")
        );
        assert!(!format!("{client:?}").contains("s3cret"), "the token is never in Debug output");
    }

    #[test]
    fn error_messages_are_short_single_lines() {
        assert_eq!(error_message(br#"{"error":"no"}"#), "no");
        assert_eq!(error_message(b"plain\r\ntext"), "plaintext");
        assert_eq!(error_message(&[b'x'; 1000]).len(), 200);
    }

    #[test]
    fn answers_over_the_bound_and_dead_peers_are_errors() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                for answer in [
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_string(),
                    format!("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}", "x".repeat(5000)),
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 15\r\n\r\n{\"error\":\"who\"}".to_string(),
                ] {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let mut head = [0u8; 1024];
                    let _ = socket.read(&mut head).await;
                    socket.write_all(answer.as_bytes()).await.unwrap();
                }
                // Accepts and says nothing.
                let (_socket, _) = listener.accept().await.unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
            let client = PeerClient::new(None, Duration::from_millis(300));
            assert_eq!(client.get(address, "/", 100).await.unwrap(), b"hello");
            assert!(matches!(client.get(address, "/", 100).await, Err(PeerError::TooLarge(100))));
            let err = client.get(address, "/", 100).await.unwrap_err();
            assert_eq!(err.to_string(), "answered 401: who");
            assert!(matches!(client.get(address, "/", 100).await, Err(PeerError::Timeout(_))));
            server.abort();
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            assert!(matches!(client.get(closed, "/", 100).await, Err(PeerError::Connect(_))));
        });
    }
}
