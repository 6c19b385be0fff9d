//! `trafficgen healthcheck`: for Docker's HEALTHCHECK in an image with no
//! shell or curl. A plain blocking GET; no runtime needed.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::app::cli::HealthcheckArgs;
use crate::engine::http::{AnswerParser, Progress};

/// The URLs asked when none is given: this container's own `PORT`; without
/// one, the sidecar's default port and then the demo target's, so the one
/// image HEALTHCHECK fits `docker run IMAGE demo-target` too.
fn default_urls() -> Vec<String> {
    let ports = match std::env::var("PORT").ok().filter(|p| p.parse::<u16>().is_ok()) {
        Some(port) => vec![port],
        None => vec!["8089".to_string(), "8080".to_string()],
    };
    ports.into_iter().map(|port| format!("http://127.0.0.1:{port}/health")).collect()
}

pub fn run(args: HealthcheckArgs) -> ExitCode {
    let urls = args.url.map_or_else(default_urls, |url| vec![url]);
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let mut reasons = Vec::new();
    for url in &urls {
        match check(url, timeout) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(reason) => reasons.push(format!("{url}: {reason}")),
        }
    }
    eprintln!("unhealthy: {}", reasons.join("; "));
    ExitCode::from(1)
}

fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let give_up = Instant::now() + timeout;
    let left = || give_up.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let uri: actix_web::http::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs can be checked".into());
    }
    let host = uri.host().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let address = (host, port).to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let mut stream = TcpStream::connect_timeout(&address, left()).map_err(|e| e.to_string())?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = uri.authority().map_or(host, |a| a.as_str());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: trafficgen-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.set_write_timeout(Some(left())).map_err(|e| e.to_string())?;
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;

    let mut parser = AnswerParser::new(true, 64 * 1024);
    let mut buf = Vec::with_capacity(1024);
    let answer = loop {
        stream.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        buf.extend_from_slice(&chunk[..n]);
        match parser.advance(&buf, n == 0).map_err(|e| e.to_string())? {
            Progress::Incomplete => {}
            Progress::Complete(answer) => break answer,
        }
    };
    if !(200..300).contains(&answer.status) {
        return Err(format!("answered {}", answer.status));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&answer.body.unwrap_or_default()).map_err(|e| format!("answer is not JSON: {e}"))?;
    match body.get("status").and_then(|s| s.as_str()) {
        Some("healthy") => Ok(()),
        other => Err(format!("status is {other:?}, not \"healthy\"")),
    }
}
