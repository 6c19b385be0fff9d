//! The sidecar put together: control server, engine, warm-up, stats line,
//! shutdown. `Sidecar::build` binds (port 0 works) and returns before any
//! traffic; `run_until_stopped` runs until the given shutdown future fires.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, TargetUrl};
use crate::control::{self, ControlState};
use crate::demo_target::{DemoTarget, DemoTargetSettings};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::rate::SentRate;

/// Window of the achieved rate in `/status`.
const ACHIEVED_RATE_WINDOW: Duration = Duration::from_secs(10);

pub struct Sidecar {
    config: Config,
    state: ControlState,
    server: Server,
    addr: SocketAddr,
    demo: Option<Server>,
}

impl Sidecar {
    pub async fn build(config: Config) -> anyhow::Result<Sidecar> {
        let mut settings = config.engine.clone();
        let demo = if config.demo {
            let demo = DemoTarget::start(&DemoTargetSettings::default())?;
            settings.target = TargetUrl::parse(&format!("http://{}", demo.addr)).map_err(anyhow::Error::msg)?;
            log::info!(addr:% = demo.addr; "demo target listening on {}", demo.addr);
            Some(demo.server)
        } else {
            None
        };

        let metrics = Arc::new(Metrics::new().context("could not set up metrics")?);
        let engine = Engine::new(settings, metrics);
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("cannot listen on {} (set PORT/BIND)", config.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = ControlState {
            engine,
            started: Instant::now(),
            sent_rate: Arc::new(SentRate::new(ACHIEVED_RATE_WINDOW)),
            token: config.control_token.clone(),
        };
        let server = control::serve(listener, state.clone())?;
        Ok(Sidecar { config, state, server, addr, demo })
    }

    /// The control server's address (with the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Sidecar { config, state, server, addr, demo } = self;
        let engine = state.engine.clone();
        log::info!(addr:% = addr, port = addr.port(), target = engine.settings().target.as_str(),
            warmup_secs = config.warmup.as_secs_f64(), initial_mode = config.engine.initial_mode.as_str(),
            control_token = if config.control_token.is_some() { "required" } else { "none" };
            "control server listening on {addr}");

        let stop_engine = CancellationToken::new();
        let mut engine_task = engine.start(stop_engine.clone()).context("could not start the engine thread")?;
        let server_handle = server.handle();
        actix_rt::spawn(server);
        let demo_handle = demo.map(|demo| {
            let handle = demo.handle();
            actix_rt::spawn(demo);
            handle
        });

        let warmup = config.warmup;
        let warmup_engine = engine.clone();
        let warmup_task = actix_rt::spawn(async move {
            actix_rt::time::sleep(warmup).await;
            warmup_engine.end_warmup();
        });
        let sampler = actix_rt::spawn(sample_sent_rate(state.clone()));
        let stats = config.stats_interval.map(|every| actix_rt::spawn(log_stats(state.clone(), every)));

        // A sidecar whose engine died must not stay up looking healthy.
        let engine_died = tokio::select! {
            _ = shutdown => false,
            _ = engine_task.stopped() => true,
        };
        if engine_died {
            log::error!("the traffic engine stopped unexpectedly; exiting so the sidecar gets restarted");
            stop_servers(server_handle, demo_handle).await;
            anyhow::bail!("the traffic engine stopped unexpectedly");
        }
        log::info!(grace_secs = config.engine.shutdown_grace.as_secs_f64(); "shutting down: no new requests will be sent");
        warmup_task.abort();
        sampler.abort();
        if let Some(stats) = stats {
            stats.abort();
        }
        stop_engine.cancel();
        // The worker drains within the grace period itself; this bound only
        // guards against a wedged worker thread.
        let bound = config.engine.shutdown_grace + Duration::from_secs(1);
        if actix_rt::time::timeout(bound, engine_task.stopped()).await.is_err() {
            log::warn!("engine did not stop in time");
        }
        stop_servers(server_handle, demo_handle).await;
        let stats = engine.metrics().stats();
        log::info!(total = stats.total, successful = stats.successful, failed = stats.failed, dropped = stats.dropped;
            "stopped");
        Ok(())
    }
}

async fn stop_servers(control: ServerHandle, demo: Option<ServerHandle>) {
    control.stop(true).await;
    if let Some(demo) = demo {
        demo.stop(true).await;
    }
}

/// Samples the sent counter once a second for the achieved rate.
async fn sample_sent_rate(state: ControlState) {
    let mut tick = actix_rt::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.sent_rate.sample(Instant::now(), state.engine.sent());
    }
}

/// One line every `every`: what was asked, what was achieved, what failed.
/// Every count and `achieved_rps` cover the interval since the previous line
/// (`interval_secs`, measured, so a stalled process shows its real gap);
/// `/status`'s `achieved_rps` covers the last 10 s instead.
async fn log_stats(state: ControlState, every: Duration) {
    let engine = &state.engine;
    let mut tick = actix_rt::time::interval_at(actix_rt::time::Instant::now() + every, every);
    // After a stall, one line, not a burst of lines for the missed ticks.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), engine.sent(), engine.metrics().stats());
    loop {
        tick.tick().await;
        let now = (Instant::now(), engine.sent(), engine.metrics().stats());
        let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
        let achieved = (now.1 - last.1) as f64 / secs;
        let plan = engine.plan();
        let (s, p) = (now.2, last.2);
        log::info!(
            mode = plan.mode.as_str(), state = plan.state().as_str(), target_rps = plan.current_rps(),
            achieved_rps = (achieved * 100.0).round() / 100.0, interval_secs = (secs * 100.0).round() / 100.0,
            sent = now.1 - last.1, successful = s.successful - p.successful, failed = s.failed - p.failed,
            dropped = s.dropped - p.dropped, in_flight = engine.in_flight(), order_ids_buffered = engine.ids_buffered(),
            total = s.total;
            "stats"
        );
        last = now;
    }
}

/// Resolves on SIGTERM or SIGINT (as PID 1 in a container, SIGTERM is
/// ignored unless we handle it).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
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
