//! Waiting for the signal that asks a process to stop.

use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGTERM or SIGINT (used by `trafficgen
/// demo-target`; the sidecar takes its signals itself).
pub async fn shutdown_signal() {
    let wait = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                log::error!(error:% = e; "cannot listen for a signal");
                std::future::pending::<()>().await;
            }
        }
    };
    let name = tokio::select! {
        _ = wait(SignalKind::terminate()) => "SIGTERM",
        _ = wait(SignalKind::interrupt()) => "SIGINT",
    };
    log::info!(signal = name; "received {name}");
}
