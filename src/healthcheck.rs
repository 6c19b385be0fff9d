//! `trafficgen healthcheck`: for Docker's HEALTHCHECK in an image with no
//! shell or curl.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::HealthcheckArgs;

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
        match actix_rt::System::new().block_on(check(url, timeout)) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(reason) => reasons.push(format!("{url}: {reason}")),
        }
    }
    eprintln!("unhealthy: {}", reasons.join("; "));
    ExitCode::from(1)
}

async fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let client = awc::Client::builder().timeout(timeout).disable_redirects().finish();
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body: serde_json::Value =
        response.json().limit(64 * 1024).await.map_err(|e| format!("answer is not JSON: {e}"))?;
    match body.get("status").and_then(|s| s.as_str()) {
        Some("healthy") => Ok(()),
        other => Err(format!("status is {other:?}, not \"healthy\"")),
    }
}
