//! `https://` targets, through awc (the design card's client) over rustls.
//!
//! Behind the same face as the plain client and with the same rules: awc's
//! connection limit is the in-flight bound (its default of 100 would be a
//! hidden queue), its own timeouts are off (the engine's deadline covers
//! connect, handshake and answer), redirects are never followed, bodies are
//! read up to the same cap, names are resolved by the engine's one resolver
//! and failures get the same kinds, plus `tls` for a failed handshake.
//!
//! The one retry: awc does not say whether a request went out on a pooled
//! connection, but every new connection asks the engine's resolver for an
//! address first. A request during which no connection was opened at all
//! (by it or by any other request) certainly used a pooled one; only such a
//! request is resent, once, when it failed before its answer began, and on
//! a connection that is certainly new (a second awc client that never reuses
//! one). With other requests opening connections meanwhile it is not resent
//! (a real failure must never be hidden), so the retry is certain at low
//! rates, where idle connections and the idle-close race live.
//!
//! Trust: Mozilla's roots compiled in (a scratch image has no CA store), or
//! exactly the CAs of `TLS_CA_FILE`; `TLS_INSECURE` accepts any certificate
//! (signatures of the handshake are still checked) and is logged loudly.

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use actix_rt::net::{ActixStream, Ready, TcpStream};
use actix_service::Service;
use actix_tls::connect::{ConnectInfo, Connection, Resolve, Resolver as ActixResolver};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::client::{ClientError, ClientSettings, MAX_BODY_BYTES, Outcome, RequestParts};
use super::http::{AnswerError, max_answer_bytes};
use super::resolve::{ResolveError, Resolver};
use crate::base::url::TargetUrl;
use crate::observe::metrics::{ErrorKind, RetryCounters};

/// How certificates are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the CAs to trust instead of the compiled-in roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (self-signed staging). Never the default.
    pub insecure: bool,
}

/// A TLS failure, or a setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS_CA_FILE {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

impl TlsError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Tls
    }
}

/// The rustls configuration for these settings, built once at start (so a
/// bad CA file stops start-up).
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let mut config = if settings.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))).with_no_client_auth()
    } else {
        builder.with_root_certificates(roots(settings.ca_file.as_ref())?).with_no_client_auth()
    };
    // HTTP/1.1 only: the same protocol, framing and bounds as plain targets.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn roots(ca_file: Option<&PathBuf>) -> Result<RootCertStore, TlsError> {
    let Some(path) = ca_file else {
        return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    };
    let bad = |reason: String| TlsError::CaFile { path: path.display().to_string(), reason };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
    for cert in certs {
        store.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(store)
}

/// `TLS_INSECURE`: any certificate is taken as valid, but the handshake's
/// signatures are still verified with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// awc with our rules (see the module's note), `idle_keep` as its
/// keep-alive, lending it the engine's resolver.
fn awc_client(
    settings: &ClientSettings,
    config: Arc<ClientConfig>,
    resolver: &Rc<Resolver>,
    count_connections: Option<Rc<Cell<u64>>>,
    idle_keep: Duration,
) -> awc::Client {
    let lent = EngineResolver { resolver: Rc::clone(resolver), connections: count_connections };
    let tcp = BoundedConnector(actix_tls::connect::Connector::new(ActixResolver::custom(lent)).service());
    let connector = awc::Connector::new()
        .connector(tcp)
        .rustls_0_23(config)
        .limit(settings.max_connections)
        // The engine's deadline bounds every request; awc's own timeouts
        // would only add timers (and a second, different timeout).
        .timeout(Duration::from_secs(3600))
        .handshake_timeout(Duration::from_secs(3600))
        .conn_keep_alive(idle_keep.max(Duration::from_millis(1)))
        .conn_lifetime(Duration::from_secs(3600));
    awc::Client::builder().connector(connector).disable_redirects().disable_timeout().no_default_headers().finish()
}

/// Most bytes read on a connection between two writes: one answer's worth
/// as the plain path bounds it (heads, body cap, chunk framing), plus TLS
/// records' overhead. awc bounds the head and the body itself, but consumes
/// chunk extensions and trailers without end; this makes every part of an
/// answer bounded on https too, in bytes and so in time.
const MAX_READ_PER_ANSWER: usize = max_answer_bytes(MAX_BODY_BYTES) + 32 * 1024;

/// A TCP stream that fails a read once [`MAX_READ_PER_ANSWER`] bytes came
/// in since the last write (the request).
#[derive(Debug)]
struct BoundedIo {
    tcp: TcpStream,
    read_since_write: usize,
}

impl AsyncRead for BoundedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.read_since_write > MAX_READ_PER_ANSWER {
            let message = format!("answer longer than {MAX_READ_PER_ANSWER} bytes on the wire");
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, message)));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.tcp).poll_read(cx, buf);
        self.read_since_write += buf.filled().len() - before;
        result
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.tcp).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write = 0;
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl ActixStream for BoundedIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(&self.tcp, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(&self.tcp, cx)
    }
}

/// actix-tls's connector (resolve, then connect), handing out [`BoundedIo`].
#[derive(Clone)]
struct BoundedConnector(actix_tls::connect::ConnectorService);

impl Service<ConnectInfo<Uri>> for BoundedConnector {
    type Response = Connection<Uri, BoundedIo>;
    type Error = actix_tls::connect::ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_service::always_ready!();

    fn call(&self, info: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.0.call(info);
        Box::pin(async move {
            let (tcp, connection) = connecting.await?.replace_io(());
            Ok(connection.replace_io(BoundedIo { tcp, read_since_write: 0 }).1)
        })
    }
}

/// The engine's resolver, lent to awc's connector; it may count the
/// connections awc opens (each asks for an address once).
struct EngineResolver {
    resolver: Rc<Resolver>,
    connections: Option<Rc<Cell<u64>>>,
}

impl Resolve for EngineResolver {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn StdError>>> {
        if let Some(connections) = &self.connections {
            connections.set(connections.get() + 1);
        }
        Box::pin(async move { self.resolver.addresses().await.map_err(|e| Box::new(e) as Box<dyn StdError>) })
    }
}

pub struct TlsClient {
    client: awc::Client,
    /// For the one resend: a client whose connections are never reused.
    fresh: awc::Client,
    /// Connections `client` has opened (see the module's note on the retry).
    connections: Rc<Cell<u64>>,
    /// `https://host[:port]`, each request's target (prefix, path, query) appended.
    base: String,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl TlsClient {
    pub fn new(
        target: &TargetUrl,
        settings: &ClientSettings,
        config: Arc<ClientConfig>,
        resolver: Rc<Resolver>,
    ) -> Self {
        let connections = Rc::new(Cell::new(0));
        let counted = Some(Rc::clone(&connections));
        let client = awc_client(settings, Arc::clone(&config), &resolver, counted, settings.idle_keep);
        // Its connections are never reused (idle for a moment, they are too
        // old), so a resent request always goes out on a new one.
        let fresh = awc_client(settings, config, &resolver, None, Duration::from_millis(1));
        TlsClient { client, fresh, connections, base: format!("https://{}", target.authority()) }
    }

    /// Sends one request, resent once if it certainly went out on a pooled
    /// connection and that failed before any answer; the status and, when
    /// asked for and under the cap, the body.
    pub async fn exchange(&self, parts: RequestParts<'_>, retries: &RetryCounters) -> Result<Outcome, ClientError> {
        let mut resent = false;
        loop {
            let opened_before = self.connections.get();
            let client = if resent { &self.fresh } else { &self.client };
            let error = match self.attempt(client, parts).await {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            let pooled = !resent && self.connections.get() == opened_before;
            if !pooled || matches!(error, ClientError::Tls(_) | ClientError::Resolve(_) | ClientError::Connect(_)) {
                return Err(error);
            }
            match error.retry_reason(0) {
                Some(reason) => {
                    retries.count(reason);
                    resent = true;
                }
                None => return Err(ClientError::Reused(Box::new(error))),
            }
        }
    }

    async fn attempt(&self, client: &awc::Client, parts: RequestParts<'_>) -> Result<Outcome, ClientError> {
        let invalid =
            |e: &dyn fmt::Display| ClientError::Send(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()));
        // The workload's path and query are percent-encoded ASCII already.
        let target = std::str::from_utf8(parts.target).map_err(|e| invalid(&e))?;
        let mut url = String::with_capacity(self.base.len() + target.len());
        url.push_str(&self.base);
        url.push_str(target);
        let method = awc::http::Method::from_bytes(parts.method.as_bytes()).map_err(|e| invalid(&e))?;
        let mut request = client.request(method, url);
        // `User-Agent` first, then the workload's own headers.
        for (name, value) in parts.workload.part_headers(parts.parts) {
            let value = awc::http::header::HeaderValue::from_bytes(value).map_err(|e| invalid(&e))?;
            request = request.insert_header((name, value));
        }
        let sent = match (parts.parts.body(), parts.parts.request().and_then(|id| parts.workload.content_type(id))) {
            (Some(body), content_type) => {
                if let Some(content_type) = content_type {
                    request = request.insert_header(("Content-Type", content_type));
                }
                request.send_body(body.to_vec()).await
            }
            (None, _) => request.send().await,
        };
        let mut response = sent.map_err(send_error)?;
        let status = response.status().as_u16();
        if (100..200).contains(&status) && status != 101 {
            // awc hands an interim answer back as the answer and cannot read
            // past it; the plain path skips it. Not the target's status.
            return Err(ClientError::Answer(AnswerError::BadHead("an interim 1xx answer (awc cannot read past it)")));
        }
        let headers = if parts.keep_headers {
            response
                .headers()
                .iter()
                .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
                .collect()
        } else {
            Vec::new()
        };
        let body = match response.body().limit(MAX_BODY_BYTES).await {
            Ok(body) => Some(body.to_vec()),
            // Over the cap: the status counts, the rest is not read (and
            // awc closes the connection), as on the plain path.
            Err(awc::error::PayloadError::Overflow) => None,
            Err(e) => return Err(ClientError::Receive(io::Error::other(e.to_string()))),
        };
        Ok(Outcome::Answered { status, body: body.filter(|_| parts.keep_body), headers })
    }
}

/// awc's error as ours, with the same kinds as the plain path.
fn send_error(error: awc::error::SendRequestError) -> ClientError {
    use awc::error::{ConnectError, SendRequestError};
    match error {
        SendRequestError::Connect(ConnectError::Resolver(e)) => match e.downcast::<ResolveError>() {
            Ok(e) => ClientError::Resolve(*e),
            Err(e) => ClientError::Connect(io::Error::other(e.to_string())),
        },
        SendRequestError::Connect(ConnectError::Io(e)) if is_tls(&e) => ClientError::Tls(TlsError::Handshake(e)),
        SendRequestError::Connect(ConnectError::Io(e)) => ClientError::Connect(e),
        // The answer stream ended before a head: closed without a byte of answer.
        SendRequestError::Connect(ConnectError::Disconnected) => {
            ClientError::Receive(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before the answer"))
        }
        SendRequestError::Connect(ConnectError::Timeout) => {
            ClientError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
        }
        SendRequestError::Connect(e) => ClientError::Connect(io::Error::other(e.to_string())),
        SendRequestError::Send(e) => ClientError::Send(e),
        SendRequestError::Timeout => ClientError::Receive(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
        SendRequestError::Response(actix_web::error::ParseError::Io(e)) => ClientError::Receive(e),
        other => ClientError::Receive(io::Error::other(other.to_string())),
    }
}

/// Whether an I/O error of the connect step came from rustls (the
/// handshake), not from TCP.
fn is_tls(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) || error.kind() == io::ErrorKind::InvalidData
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_comes_from_the_compiled_in_roots_or_exactly_the_ca_file() {
        assert!(client_config(&TlsSettings::default()).is_ok());
        assert!(client_config(&TlsSettings { ca_file: None, insecure: true }).is_ok());
        let missing = TlsSettings { ca_file: Some("/nonexistent/ca.pem".into()), insecure: false };
        assert!(matches!(client_config(&missing), Err(TlsError::CaFile { .. })));
        let dir = std::env::temp_dir().join(format!("trafficgen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        let err = client_config(&TlsSettings { ca_file: Some(not_pem), insecure: false }).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
