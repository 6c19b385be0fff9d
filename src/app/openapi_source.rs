//! `OPENAPI_PATH`: the sidecar derives its workload from the target's own
//! OpenAPI document at start. The document is fetched from `TARGET_URL`'s
//! host only (its path appended to `TARGET_URL`'s, as every workload path
//! is), over http or https with the engine's trust settings, with a
//! bounded size and time and no redirect followed.
//!
//! A target often starts after its sidecar: until the document is read,
//! the sidecar waits — its control API answers, the warm-up does not end,
//! nothing is sent — and tries again after 1, 2, 4… up to 30 seconds,
//! logging why each time. The running workload meanwhile sends nothing
//! (a mode switch that ends the warm-up early finds every request unmet).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::base::url::TargetUrl;
use crate::engine::Engine;
use crate::engine::http::{AnswerError, AnswerParser, Progress, max_answer_bytes};
use crate::openapi::{self, MAX_DOCUMENT_BYTES};
use crate::workload::{self, Workload};

/// How long one attempt to fetch the document may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before trying again, doubled after each failure up to the most.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// Most problem lines logged for one derivation.
const MAX_LOGGED_PROBLEMS: usize = 20;

/// `OPENAPI_PATH`, checked: a path on the target, starting with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiPath(String);

impl OpenApiPath {
    pub fn parse(raw: &str) -> Result<OpenApiPath, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%?".contains(c);
        if !raw.starts_with('/') || raw.starts_with("//") {
            return Err(
                "must be a path on the target starting with `/`, such as /openapi.json (never another host)".into()
            );
        }
        if raw.len() > 2048 {
            return Err("is longer than 2048 characters".into());
        }
        if let Some(c) = raw.chars().find(|c| !ok_char(*c)) {
            return Err(format!("may not contain {c:?}; write it percent-encoded"));
        }
        Ok(OpenApiPath(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the document is: `TARGET_URL` with the path appended.
    pub fn url(&self, target: &TargetUrl) -> String {
        format!("{}{}", target.as_str(), self.0)
    }
}

/// The workload the sidecar holds until the document is read: one request
/// that needs a pool nothing fills, so it is never sent (counted unmet if
/// a mode switch ends the warm-up early).
pub fn waiting_workload(url: &str, options: &workload::Options) -> Result<Workload, workload::LoadError> {
    const WAITING: &str = "# Nothing is sent until the OpenAPI document is read.
pools:
  openapi_pending:
    size: 1
requests:
  - name: openapi_pending
    weight: 1
    method: GET
    path: \"/{{ pool(openapi_pending) }}\"
";
    workload::load_str(&format!("waiting for the OpenAPI document at {url}"), WAITING, options)
}

/// Fetches and derives until it works, then runs the derived workload and
/// cancels `derived`. Runs until then or until dropped (aborted).
pub async fn derive_at_start(engine: Engine, path: OpenApiPath, derived: CancellationToken) {
    let target = engine.settings().target.clone();
    let tls = engine.settings().client.tls.clone();
    let url = path.url(&target);
    let mut wait = FIRST_RETRY;
    for attempt in 1u64.. {
        let fetch_target = target.clone();
        let fetch_path = path.clone();
        let fetch_tls = tls.clone();
        let fetched =
            actix_rt::task::spawn_blocking(move || fetch(&fetch_target, &fetch_path, fetch_tls, FETCH_TIMEOUT)).await;
        let result = match fetched {
            Ok(Ok(bytes)) => derive(&url, &bytes, &engine),
            Ok(Err(e)) => Err(Failed::Again(e.to_string())),
            Err(e) => Err(Failed::Again(format!("the fetch did not finish: {e}"))),
        };
        match result {
            Ok((workload, derived_from)) => {
                for problem in derived_from.problems.iter().take(MAX_LOGGED_PROBLEMS) {
                    log::warn!(url = url.as_str(), problem:% = problem; "OpenAPI document: {problem}");
                }
                if derived_from.problems.len() > MAX_LOGGED_PROBLEMS {
                    log::warn!(url = url.as_str();
                        "OpenAPI document: {} more problems not logged (`trafficgen workload from-openapi` lists them all)",
                        derived_from.problems.len() - MAX_LOGGED_PROBLEMS);
                }
                log::info!(url = url.as_str(), openapi_version = derived_from.version.as_str(),
                    requests = derived_from.requests, left_out = derived_from.left_out, mix:% = workload.mix(), attempt = attempt;
                    "workload derived from the OpenAPI document at {url}: {} requests, {} operations left out",
                    derived_from.requests, derived_from.left_out);
                engine.replace_workload(workload);
                derived.cancel();
                return;
            }
            Err(Failed::ForGood(reason)) => {
                // Trying again fetches the same document into the same
                // workload: a setting must change, so say so once and wait.
                log::error!(url = url.as_str(), error = reason.as_str();
                    "the workload derived from the OpenAPI document at {url} cannot be used: {reason}; nothing is sent until the sidecar is restarted with that fixed");
                return;
            }
            Err(Failed::Again(reason)) => {
                log::warn!(url = url.as_str(), attempt = attempt, retry_in_secs = wait.as_secs(), error = reason.as_str();
                    "cannot derive the workload from the OpenAPI document at {url} yet: {reason}; nothing is sent meanwhile; trying again in {} s",
                    wait.as_secs());
                actix_rt::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_RETRY);
            }
        }
    }
}

/// Why a derivation did not give a workload.
enum Failed {
    /// Perhaps not next time: the target is not up, or not serving its
    /// document yet.
    Again(String),
    /// The same each time: the derived workload cannot be loaded here (a
    /// credential's environment variable is not set).
    ForGood(String),
}

/// The document's bytes into a workload for this sidecar, set against its
/// memory budget as a workload put over the API is.
fn derive(url: &str, bytes: &[u8], engine: &Engine) -> Result<(Workload, openapi::Derived), Failed> {
    let derived =
        openapi::derive(url, bytes, &openapi::Options::default()).map_err(|e| Failed::Again(e.to_string()))?;
    let workload = workload::load_str(url, &derived.text, &engine.workload_options()).map_err(|e| {
        let problems: Vec<String> = e.problems.iter().map(|p| p.message.clone()).collect();
        Failed::ForGood(problems.join("; "))
    })?;
    if let Some(budget) = engine.settings().memory
        && let Err(e) = budget.check(&workload, engine.max_in_flight())
    {
        return Err(Failed::ForGood(format!("the workload {e}")));
    }
    Ok((workload, derived))
}

/// Why the document could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: std::io::Error },
    #[error("no complete answer within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Io(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the answer is not usable HTTP: {0}")]
    Answer(AnswerError),
    #[error("answered {status}{location}: redirects are not followed (set OPENAPI_PATH to where the document is)")]
    Redirect { status: u16, location: String },
    #[error("answered {0} (is OPENAPI_PATH right, and is the target up?)")]
    Status(u16),
    #[error("the document is larger than {} MiB", MAX_DOCUMENT_BYTES / (1024 * 1024))]
    TooLarge,
}

/// One GET of the document (blocking: run it off the async threads).
pub fn fetch(
    target: &TargetUrl,
    path: &OpenApiPath,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<SocketAddr> = (target.host(), target.port())
        .to_socket_addrs()
        .map_err(|e| FetchError::Resolve { host: target.host().to_string(), reason: e.to_string() })?
        .collect();
    let mut last_error = None;
    let mut connected = None;
    for addr in &addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FetchError::Timeout(timeout));
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(e) => last_error = Some((addr.to_string(), e)),
        }
    }
    let tcp = match (connected, last_error) {
        (Some(stream), _) => stream,
        (None, Some((addr, reason))) => return Err(FetchError::Connect { addr, reason }),
        (None, None) => {
            return Err(FetchError::Resolve { host: target.host().to_string(), reason: "no address".into() });
        }
    };
    let request = format!(
        "GET {}{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: application/json, application/yaml;q=0.9, */*;q=0.1\r\nConnection: close\r\n\r\n",
        target.path_prefix(),
        path.as_str(),
        target.authority(),
        workload::USER_AGENT
    );
    if target.is_https() {
        let config = match tls {
            Some(config) => config,
            None => crate::engine::tls::client_config(&crate::engine::tls::TlsSettings::default())
                .map_err(|e| FetchError::Tls(e.to_string()))?,
        };
        let name = rustls::pki_types::ServerName::try_from(target.host().to_string())
            .map_err(|e| FetchError::Tls(e.to_string()))?;
        let connection = rustls::ClientConnection::new(config, name).map_err(|e| FetchError::Tls(e.to_string()))?;
        exchange(
            rustls::StreamOwned::new(connection, tcp.try_clone().map_err(FetchError::Io)?),
            &tcp,
            &request,
            deadline,
            timeout,
        )
    } else {
        exchange(tcp.try_clone().map_err(FetchError::Io)?, &tcp, &request, deadline, timeout)
    }
}

/// Sends the request and reads one answer, with every read bounded by the
/// deadline (set on `socket`, the stream's own connection).
fn exchange(
    mut stream: impl Read + Write,
    socket: &TcpStream,
    request: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, FetchError> {
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(FetchError::Timeout(timeout)) } else { Ok(left) }
    };
    let timed_out = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => FetchError::Timeout(timeout),
        _ => FetchError::Io(e),
    };
    socket.set_write_timeout(Some(left()?)).map_err(FetchError::Io)?;
    stream.write_all(request.as_bytes()).map_err(timed_out)?;
    stream.flush().map_err(timed_out)?;
    let mut parser = AnswerParser::new(true, MAX_DOCUMENT_BYTES).keeping_headers(true);
    let bound = max_answer_bytes(MAX_DOCUMENT_BYTES);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        socket.set_read_timeout(Some(left()?)).map_err(FetchError::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: the end.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(timed_out(e)),
        };
        if buf.len() + n > bound {
            return Err(FetchError::TooLarge);
        }
        buf.extend_from_slice(&chunk[..n]);
        match parser.advance(&buf, n == 0).map_err(FetchError::Answer)? {
            Progress::Incomplete => {}
            Progress::Complete(answer) => {
                return match answer.status {
                    200..=299 => answer.body.ok_or(FetchError::TooLarge),
                    300..=399 => {
                        let location = answer
                            .headers
                            .iter()
                            .find(|(name, _)| name.eq_ignore_ascii_case("location"))
                            .map(|(_, v)| {
                                let shown: String =
                                    String::from_utf8_lossy(v).chars().take(200).filter(|c| !c.is_control()).collect();
                                format!(" to {shown}")
                            })
                            .unwrap_or_default();
                        Err(FetchError::Redirect { status: answer.status, location })
                    }
                    status => Err(FetchError::Status(status)),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_must_stay_on_the_target() {
        assert!(OpenApiPath::parse("/openapi.json").is_ok());
        assert!(OpenApiPath::parse("/api/v1/openapi.yaml?format=yaml").is_ok());
        for bad in
            ["openapi.json", "//evil.example/openapi.json", "http://evil.example/x", "/a b", "/a#b", "/a\r\nX: y"]
        {
            assert!(OpenApiPath::parse(bad).is_err(), "{bad}");
        }
    }

    /// A one-shot server on 127.0.0.1 answering `answer` to the first request.
    fn serve_once(answer: Vec<u8>) -> (TargetUrl, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = TargetUrl::parse(&format!("http://{}/base", listener.local_addr().unwrap())).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = vec![0u8; 4096];
            let n = socket.read(&mut head).unwrap();
            let _ = socket.write_all(&answer);
            String::from_utf8_lossy(&head[..n]).into_owned()
        });
        (url, handle)
    }

    #[test]
    fn fetches_from_the_target_and_refuses_redirects_errors_and_oversize() {
        let path = OpenApiPath::parse("/openapi.json").unwrap();
        let (url, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec());
        assert_eq!(fetch(&url, &path, None, Duration::from_secs(5)).unwrap(), b"{}");
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /base/openapi.json HTTP/1.1\r\n"), "{head}");

        let (url, _server) =
            serve_once(b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/x\r\nContent-Length: 0\r\n\r\n".to_vec());
        let err = fetch(&url, &path, None, Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("302 to http://elsewhere/x: redirects are not followed"), "{err}");

        let (url, _server) = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        assert!(matches!(fetch(&url, &path, None, Duration::from_secs(5)), Err(FetchError::Status(404))));

        let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_DOCUMENT_BYTES + 1);
        let (url, _server) = serve_once(huge.into_bytes());
        assert!(matches!(fetch(&url, &path, None, Duration::from_secs(5)), Err(FetchError::TooLarge)));
    }

    #[test]
    fn a_silent_target_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = TargetUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let path = OpenApiPath::parse("/openapi.json").unwrap();
        let started = Instant::now();
        let err = fetch(&url, &path, None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, FetchError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }
}
