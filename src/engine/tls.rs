//! `https://` targets: the engine's own HTTP/1.1 client (see
//! [`super::client`]) over a rustls session on the same non-blocking socket.
//!
//! So https has exactly the plain path's rules, not a second client's: the
//! one retry (a *reused* connection that died before any answer byte),
//! bodies framed by length, chunks or the close, interim 1xx answers
//! skipped, the same bounds and error kinds, plus `tls` for a failed
//! handshake. Only HTTP/1.1 is offered (ALPN), never 0-RTT data (a POST
//! must not be replayable), and sessions are resumed from rustls' in-memory
//! cache when a new connection is needed.
//!
//! A body that ends at the close may end with the TCP close alone, without
//! TLS `close_notify`: many servers close that way, and curl and browsers
//! take it as the end (a truncation shows in a declared length or chunked
//! framing, as on plain targets).
//!
//! Trust: Mozilla's roots compiled in (a scratch image has no CA store), or
//! exactly the CAs of `TLS_CA_FILE`; `TLS_INSECURE` accepts any certificate
//! (signatures of the handshake are still checked) and is logged loudly.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};

use crate::observe::metrics::ErrorKind;

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
    // rustls' defaults, said out loud: sessions resumed from an in-memory
    // cache, and no early data (it could be replayed).
    config.enable_early_data = false;
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

/// How every connection to one https target starts its session.
#[derive(Debug)]
pub(super) struct TlsTarget {
    config: Arc<ClientConfig>,
    /// The target's host: a name (sent as SNI, matched against the
    /// certificate's DNS names) or an IP address (its IP entries; no SNI).
    name: ServerName<'static>,
}

impl TlsTarget {
    pub(super) fn new(config: Arc<ClientConfig>, host: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| TlsError::Setup(format!("{host} cannot be checked against a certificate: {e}")))?;
        Ok(TlsTarget { config, name })
    }

    /// A new session on a connected socket, its handshake done. The
    /// client's last flight (its `Finished`) is left queued: it goes out
    /// with the request, in the same write.
    pub(super) async fn handshake(&self, io: &AsyncFd<TcpStream>) -> Result<ClientConnection, TlsError> {
        let mut tls = ClientConnection::new(Arc::clone(&self.config), self.name.clone())
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        while tls.is_handshaking() {
            flush(io, &mut tls).await.map_err(TlsError::Handshake)?;
            let mut ready = io.readable().await.map_err(TlsError::Handshake)?;
            match ready.try_io(|io| tls.read_tls(&mut io.get_ref())) {
                Ok(Ok(0)) => {
                    let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "the target closed the connection");
                    return Err(TlsError::Handshake(closed));
                }
                Ok(Ok(_)) => process(io, &mut tls).map_err(TlsError::Handshake)?,
                Ok(Err(e)) => return Err(TlsError::Handshake(e)),
                Err(_would_block) => {}
            }
        }
        Ok(tls)
    }
}

/// Decrypts what came in; a TLS error (bad record, alert, certificate)
/// sends its alert if the socket takes it at once and ends the connection.
fn process(io: &AsyncFd<TcpStream>, tls: &mut ClientConnection) -> io::Result<()> {
    match tls.process_new_packets() {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = tls.write_tls(&mut io.get_ref());
            Err(io::Error::new(io::ErrorKind::InvalidData, e))
        }
    }
}

/// Writes out what the session has queued (records, alerts).
async fn flush(io: &AsyncFd<TcpStream>, tls: &mut ClientConnection) -> io::Result<()> {
    while tls.wants_write() {
        let mut ready = io.writable().await?;
        match ready.try_io(|io| tls.write_tls(&mut io.get_ref())) {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// Sends `request`: encrypted, and written with whatever was queued before
/// it (the handshake's last flight), usually in one `writev`.
pub(super) async fn write_all(io: &AsyncFd<TcpStream>, tls: &mut ClientConnection, request: &[u8]) -> io::Result<()> {
    let mut rest = request;
    loop {
        // rustls takes as much as its send buffer allows (64 KiB).
        let taken = tls.writer().write(rest)?;
        if taken == 0 && !rest.is_empty() && !tls.wants_write() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        rest = &rest[taken..];
        flush(io, tls).await?;
        if rest.is_empty() {
            return Ok(());
        }
    }
}

/// Reads answer bytes into `out`: how many, or 0 at the end of the stream
/// (`close_notify`, or the TCP close without it, as the module's note
/// says). `last` keeps the readiness of the latest socket read, for the
/// caller to clear once its answer is complete.
pub(super) async fn read<'a>(
    io: &'a AsyncFd<TcpStream>,
    tls: &mut ClientConnection,
    out: &mut [u8],
    last: &mut Option<AsyncFdReadyGuard<'a, TcpStream>>,
) -> io::Result<usize> {
    loop {
        match tls.reader().read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut ready = io.readable().await?;
        match ready.try_io(|io| tls.read_tls(&mut io.get_ref())) {
            Ok(Ok(_)) => {
                process(io, tls)?;
                *last = Some(ready);
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}

/// Whether the session holds nothing after a complete answer: no
/// plaintext nobody asked for, no `close_notify`. (A connection with
/// either cannot carry the next request.)
pub(super) fn is_quiet(tls: &mut ClientConnection) -> bool {
    matches!(tls.reader().read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// An idle connection read as ready: reads what came in and says whether
/// the connection is still good. Post-handshake messages (a session ticket,
/// a key update) are; plaintext, `close_notify`, the close or an error are
/// not. Reads until the socket is drained, which clears its readiness.
pub(super) fn still_open_after(mut ready: AsyncFdReadyGuard<'_, TcpStream>, tls: &mut ClientConnection) -> bool {
    // A few records' worth; a target that keeps writing to an idle
    // connection is not one to reuse.
    for _ in 0..4 {
        match ready.try_io(|io| tls.read_tls(&mut io.get_ref())) {
            Err(_would_block) => return true,
            Ok(Ok(0) | Err(_)) => return false,
            Ok(Ok(_)) => {
                if tls.process_new_packets().is_err() || !is_quiet(tls) {
                    return false;
                }
            }
        }
    }
    false
}

/// Says goodbye on a connection we close (`close_notify`), if the socket
/// takes it at once; a courtesy, so servers do not log an unclean close.
pub(super) fn close(io: &AsyncFd<TcpStream>, tls: &mut ClientConnection) {
    tls.send_close_notify();
    let _ = tls.write_tls(&mut io.get_ref());
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

    #[test]
    fn names_get_sni_and_addresses_are_matched_as_addresses() {
        let config = client_config(&TlsSettings::default()).unwrap();
        let by_name = TlsTarget::new(Arc::clone(&config), "shop.example").unwrap();
        assert!(matches!(by_name.name, ServerName::DnsName(_)));
        for address in ["127.0.0.1", "::1"] {
            let by_address = TlsTarget::new(Arc::clone(&config), address).unwrap();
            assert!(matches!(by_address.name, ServerName::IpAddress(_)), "{address}");
        }
    }
}
