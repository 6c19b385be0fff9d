//! `https://` targets: nginx with `ssl` on 127.0.0.1 and certificates made
//! here (a CA of the test's own and a certificate for localhost/127.0.0.1).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::helpers::*;
use crate::real_servers::start_nginx;
use crate::scripted::{have_tools, metrics_of};

/// A CA (PEM) and a server certificate and key it signed for localhost and 127.0.0.1.
fn certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

struct Files(std::path::PathBuf);

impl Files {
    fn new() -> Files {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("trafficgen-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_until(sidecar: &Proc, key: &str, n: u64) {
    assert!(eventually(Duration::from_secs(15), || stat(sidecar, key) >= n), "{}", sidecar.output());
    sidecar.post("/mode/pause", None);
    assert!(eventually(Duration::from_secs(10), || sidecar.get_json("/status")["in_flight"] == 0));
}

#[test]
fn an_https_target_trusted_through_a_ca_file_gets_its_traffic() {
    if !have_tools(&["nginx"]) {
        return;
    }
    let (ca, cert, key) = certificates();
    let nginx = start_nginx("75s", Some((&cert, &key)));
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca);
    // By name (SNI and the certificate's DNS name) and by address (IP SAN).
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{}/", nginx.addr.port());
        let extra = [("INITIAL_MODE", "burst"), ("TLS_CA_FILE", ca_file.as_str())];
        let sidecar = Proc::start(&[], &sidecar_env(&url, &extra));
        run_until(&sidecar, "total", 40);
        let status = sidecar.get_json("/status");
        assert_eq!(status["stats"]["failed"], 0, "{host}: {status}\n{}", sidecar.output());
        assert!(status["order_ids_buffered"].as_u64().unwrap() > 0, "{host}: create answers read: {status}");
    }
}

#[test]
fn an_untrusted_certificate_is_kind_tls_unless_insecure_mode_is_asked_for() {
    if !have_tools(&["nginx"]) {
        return;
    }
    let (_, cert, key) = certificates();
    let (other_ca, _, _) = certificates();
    let nginx = start_nginx("75s", Some((&cert, &key)));
    let url = format!("https://localhost:{}", nginx.addr.port());
    let files = Files::new();
    let other_ca_file = files.write("other-ca.pem", &other_ca);

    // The built-in roots and a wrong CA file both refuse the test's CA.
    for trust in [None, Some(other_ca_file.as_str())] {
        let mut extra = vec![("INITIAL_MODE", "burst")];
        extra.extend(trust.map(|f| ("TLS_CA_FILE", f)));
        let mut sidecar = Proc::start(&[], &sidecar_env(&url, &extra));
        run_until(&sidecar, "failed", 20);
        assert!(sidecar.is_running());
        pause_and_settle(&sidecar);
        let status = sidecar.get_json("/status");
        assert_eq!(status["stats"]["successful"], 0, "{trust:?}: {status}");
        let samples = metrics_of(&sidecar);
        let tls = sum(&samples, "trafficgen_request_errors_total", &[("kind", "tls")]);
        assert_eq!(tls, status["stats"]["failed"].as_f64().unwrap(), "{trust:?}: every failure is kind=tls");
        let lines = sidecar.log_lines().iter().filter(|l| l.contains("\"request failed\"")).count();
        assert!((1..=2).contains(&lines), "{trust:?}: {lines} failure lines");
        assert!(sidecar.output().contains("certificate"), "{trust:?}: the log says why:\n{}", sidecar.output());
    }

    // Insecure mode, asked for: traffic flows, and the log says so loudly.
    let extra = [("INITIAL_MODE", "burst"), ("TLS_INSECURE", "true")];
    let sidecar = Proc::start(&[], &sidecar_env(&url, &extra));
    run_until(&sidecar, "successful", 20);
    assert_eq!(stat(&sidecar, "failed"), 0);
    let warned = sidecar.wait_for_log(
        |v| v["level"] == "warn" && v["message"].as_str().is_some_and(|m| m.contains("TLS_INSECURE")),
        Duration::from_secs(1),
    );
    assert!(warned.is_some(), "no warning about TLS_INSECURE:\n{}", sidecar.output());
}

#[test]
fn tls_and_connection_settings_are_documented_and_bad_ones_stop_start_up() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(BIN);
        command.args(args).env_clear().envs(env.iter().copied());
        command.output().expect("run trafficgen")
    };
    let help = String::from_utf8_lossy(&run(&["--help"], &[]).stdout).into_owned();
    for env in ["KEEP_ALIVE_MS", "TLS_CA_FILE", "TLS_INSECURE"] {
        assert!(help.contains(env), "--help does not name {env}");
    }
    let files = Files::new();
    let not_pem = files.write("not.pem", "hello\n");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("TARGET_URL", "https://x"), ("TLS_CA_FILE", "/nonexistent/ca.pem")], "TLS_CA_FILE"),
        (&[("TARGET_URL", "https://x"), ("TLS_CA_FILE", &not_pem)], "TLS_CA_FILE"),
        (&[("TARGET_URL", "https://x"), ("TLS_CA_FILE", &not_pem), ("TLS_INSECURE", "true")], "TLS_INSECURE"),
        (&[("TARGET_URL", "https://x"), ("TLS_INSECURE", "maybe")], "TLS_INSECURE"),
        (&[("KEEP_ALIVE_MS", "3600001")], "KEEP_ALIVE_MS"),
        (&[("TARGET_URL", "ftp://x")], "TARGET_URL"),
    ];
    for (env, setting) in cases {
        let out = run(&[], env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains(setting), "{env:?}: {stderr:?} does not name {setting}");
        assert_eq!(stderr.trim().lines().count(), 1, "{env:?}: one line: {stderr:?}");
    }
}

/// What an https test target does with the first request of a connection.
#[derive(Clone)]
enum TlsAnswer {
    /// Answer it, then close the connection as the next request arrives:
    /// the idle-close race.
    ThenCloseOnNext(Vec<u8>),
    /// Write `head`, then `unit` until the peer goes away (64 MiB at most).
    Stream { head: Vec<u8>, unit: Vec<u8> },
}

/// An https target (rustls) on 127.0.0.1.
struct TlsTarget {
    addr: SocketAddr,
    answered: Arc<AtomicUsize>,
}

impl TlsTarget {
    fn start(cert: &str, key: &str, answer: TlsAnswer) -> TlsTarget {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&answered);
        std::thread::spawn(move || {
            // Bounded like every test server: the tests need a few hundred.
            for tcp in listener.incoming().take(2000).flatten() {
                let (config, count, answer) = (Arc::clone(&config), Arc::clone(&count), answer.clone());
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
                    let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    if !read_request(&mut tls) {
                        return;
                    }
                    match answer {
                        TlsAnswer::ThenCloseOnNext(bytes) => {
                            if tls.write_all(&bytes).and_then(|()| tls.flush()).is_ok() {
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            // The next request arrives; the connection goes, unanswered.
                            let _ = read_request(&mut tls);
                        }
                        TlsAnswer::Stream { head, unit } => {
                            let _ = tls.write_all(&head);
                            let mut sent = 0;
                            while sent < 64 * 1024 * 1024 && tls.write_all(&unit).and_then(|()| tls.flush()).is_ok() {
                                sent += unit.len();
                            }
                        }
                    }
                });
            }
        });
        TlsTarget { addr, answered }
    }
}

/// Reads one request (head and Content-Length body); false at EOF or error.
fn read_request(conn: &mut impl Read) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).is_ok()
}

#[test]
fn an_https_target_closing_kept_alive_connections_as_requests_arrive_costs_no_failures() {
    let (ca, cert, key) = certificates();
    let created = b"HTTP/1.1 201 Created\r\nContent-Length: 8\r\n\r\n{\"id\":1}".to_vec();
    let target = TlsTarget::start(&cert, &key, TlsAnswer::ThenCloseOnNext(created));
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca);
    let url = format!("https://localhost:{}", target.addr.port());
    let extra = [("INITIAL_MODE", "burst"), ("MIX", "create_order=1"), ("TLS_CA_FILE", ca_file.as_str())];
    let sidecar = Proc::start(&[], &sidecar_env(&url, &extra));
    run_until(&sidecar, "total", 40);
    pause_and_settle(&sidecar);
    let status = sidecar.get_json("/status");
    let total = status["stats"]["total"].as_u64().unwrap();
    let retries = sum(&metrics_of(&sidecar), "trafficgen_connection_retries_total", &[]);
    eprintln!("https race: {}; {retries} retries", status["stats"]);
    assert_eq!(status["stats"]["failed"], 0, "the idle closes counted as failures: {status}\n{}", sidecar.output());
    // The target counts an answer just after writing it, so its count may
    // trail ours by the last answers for a moment: poll.
    let answers = || target.answered.load(Ordering::SeqCst) as u64;
    let answered = eventually(Duration::from_secs(5), || answers() == total);
    assert!(answered, "every request answered once: {} answers, {total} requests", answers());
    assert!(retries >= (total / 4) as f64, "{retries} retries for {total} requests");
}

#[test]
fn no_part_of_an_https_answer_grows_memory() {
    let (ca, cert, key) = certificates();
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca);
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("interim 100 Continue heads", Vec::new(), b"HTTP/1.1 100 Continue\r\n\r\n".repeat(40)),
        ("an endless head", b"HTTP/1.1 200 OK\r\n".to_vec(), format!("X-Pad: {}\r\n", "a".repeat(200)).into_bytes()),
        (
            "endless trailers",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec(),
            format!("X-Trailer: {}\r\n", "a".repeat(200)).into_bytes(),
        ),
        (
            "endless chunk extensions",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            format!("1;ext={}\r\nx\r\n", "e".repeat(1000)).into_bytes(),
        ),
    ];
    for (case, head, unit) in cases {
        let target = TlsTarget::start(&cert, &key, TlsAnswer::Stream { head, unit });
        let url = format!("https://localhost:{}", target.addr.port());
        let extra = [
            ("INITIAL_MODE", "burst"),
            ("MIX", "list_orders=1"),
            ("REQUEST_TIMEOUT_MS", "2000"),
            ("TLS_CA_FILE", ca_file.as_str()),
        ];
        let mut sidecar = Proc::start(&[], &sidecar_env(&url, &extra));
        assert!(eventually(Duration::from_secs(10), || stat(&sidecar, "total") >= 10), "{case}");
        let baseline = rss_kib(sidecar.pid());
        assert!(eventually(Duration::from_secs(15), || stat(&sidecar, "total") >= 70), "{case}");
        let after = rss_kib(sidecar.pid());
        assert!(sidecar.is_running(), "{case}");
        // Counts compared across /status and /metrics must stop moving
        // first (two timeouts landed between the reads on a busy machine).
        pause_and_settle(&sidecar);
        let status = sidecar.get_json("/status");
        let samples = metrics_of(&sidecar);
        let kinds: Vec<String> = samples
            .iter()
            .filter(|s| s.name == "trafficgen_request_errors_total" && s.value > 0.0)
            .map(|s| format!("{}={}", s.label("kind"), s.value))
            .collect();
        eprintln!("https, {case}: RSS {baseline} -> {after} KiB; {}; {kinds:?}", status["stats"]);
        assert_eq!(status["stats"]["successful"], 0, "{case}: {status}");
        // Refused once a bound is passed (a debug build on a busy machine
        // may not read that far before the timeout: those are timeouts).
        let other = sum(&samples, "trafficgen_request_errors_total", &[("kind", "other")]);
        let timeout = sum(&samples, "trafficgen_request_errors_total", &[("kind", "timeout")]);
        assert!(other >= 10.0, "{case}: {kinds:?}");
        assert_eq!(other + timeout, status["stats"]["failed"].as_f64().unwrap(), "{case}: {kinds:?}");
        assert!(after < baseline + 4096, "{case}: RSS grew from {baseline} to {after} KiB");
    }
}
