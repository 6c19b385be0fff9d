//! `trafficgen healthcheck`: for Docker's HEALTHCHECK in an image with no
//! shell or curl.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::HealthcheckArgs;

/// The URL asked when none is given: this container's own port.
fn default_url() -> String {
    let port = std::env::var("PORT").ok().filter(|p| p.parse::<u16>().is_ok()).unwrap_or_else(|| "8089".into());
    format!("http://127.0.0.1:{port}/health")
}

pub fn run(args: HealthcheckArgs) -> ExitCode {
    let url = args.url.unwrap_or_else(default_url);
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let verdict = actix_rt::System::new().block_on(check(&url, timeout));
    match verdict {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("unhealthy: {url}: {reason}");
            ExitCode::from(1)
        }
    }
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
