//! The sidecar put together: control server, engine, warm-up, stats line,
//! shutdown. `Sidecar::build` binds (port 0 works) and returns before any
//! traffic; `run_until_stopped` runs until a stop signal, then drains.
//! Beside it, the subcommands and the settings every layer is given its
//! part of.

pub mod check_command;
pub mod cli;
pub mod config;
pub mod env_names;

pub mod export_command;
pub mod healthcheck;
pub mod openapi_command;
pub mod openapi_source;
pub mod run;
pub mod runtime;

use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::app::config::{Config, TargetUrl};
use crate::base::descriptors::DescriptorBudget;
use crate::base::otlp::Exporter;
use crate::cluster::Cluster;
use crate::control::live::Live;
use crate::control::rates::RatesNow;
use crate::control::server as control_server;
use crate::control::{ControlState, ServerInfo};
use crate::demo_target::{DemoTarget, DemoTargetSettings};
use crate::engine::Engine;
use crate::engine::spans::SpanSetup;
use crate::observe::metrics::Metrics;
use crate::observe::trace::{SpanCounters, SpanSink};

/// After a second stop signal, how long the engine gets to note what it
/// abandons before the process goes anyway.
const ABANDON_BOUND: Duration = Duration::from_millis(300);

/// The control address cannot be listened on: a bad `PORT`/`BIND` (in use,
/// not an address of this machine, privileged), so exit 2 rather than a crash.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {reason} ({hint})")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub reason: io::Error,
    /// What to change: `PORT`/`BIND` for the sidecar, `--port` for `run`.
    pub hint: &'static str,
}

pub struct Sidecar {
    config: Config,
    state: ControlState,
    listener: TcpListener,
    addr: SocketAddr,
    demo: Option<Server>,
    /// The span exporters (the sidecar's, and the in-process demo
    /// target's), flushed once the engine has stopped.
    exporters: Vec<Exporter>,
}

/// How long the span exporters may take at exit to send what is queued.
const SPAN_FLUSH: Duration = Duration::from_secs(1);

impl Sidecar {
    /// Binds the control port and prepares the engine; sends nothing.
    /// `descriptors` is how the open-file limit was shared out at start
    /// (reported in `/status`).
    pub async fn build(config: Config, descriptors: Option<DescriptorBudget>) -> anyhow::Result<Sidecar> {
        let mut settings = config.engine.clone();
        let listener = control_server::bind(config.listen).map_err(|reason| ListenError {
            addr: config.listen,
            reason,
            hint: "set PORT/BIND",
        })?;
        let addr = listener.local_addr()?;
        let mut exporters = Vec::new();
        let demo = if config.demo {
            // The in-process demo target continues the sidecar's traces too.
            let spans = config.spans.clone().map(|mut spans| {
                spans.export.resource[0].1 = "demo-target".to_string();
                spans
            });
            let demo = DemoTarget::start(&DemoTargetSettings { spans, ..DemoTargetSettings::default() })?;
            settings.target = TargetUrl::parse(&format!("http://{}", demo.addr)).map_err(anyhow::Error::msg)?;
            log::info!(addr:% = demo.addr; "demo target listening on {}", demo.addr);
            exporters.extend(demo.spans);
            Some(demo.server)
        } else {
            None
        };

        let metrics = Arc::new(Metrics::new().context("could not set up metrics")?);
        let mut engine = Engine::new(settings, Arc::clone(&metrics));
        if let Some(spans) = &config.spans {
            let counters = SpanCounters::register(metrics.registry()).context("could not set up span metrics")?;
            let (queue, exporter) = crate::base::otlp::start(spans.export.clone(), counters)
                .context("could not start the span exporter")?;
            exporters.push(exporter);
            log::info!(endpoint = spans.export.endpoint.url().as_str(), service_name = spans.export.service_name();
                "exporting client spans over OTLP");
            engine = engine.with_spans(SpanSetup { sink: SpanSink::new(queue), sampler: spans.sampler });
        }
        let cluster = config.peers.clone().map(|p| Cluster::new(p, engine.clone()));
        let runtime = runtime::runtime_settings(&config);
        let live = Live::new(engine.clone(), cluster.clone(), Some(runtime), config.state.clone());
        live.judge_slos(config.slos.clone(), config.slo_window);
        let sent_rate = Arc::clone(engine.sent_rate());
        let state = ControlState {
            live,
            engine,
            started: Instant::now(),
            sent_rate,
            token: config.control_token.clone(),
            origins: Arc::new(config.allowed_origins.clone()),
            server: Arc::new(ServerInfo::new(config.control_limits, descriptors)),
            cluster,
        };
        Ok(Sidecar { config, state, listener, addr, demo, exporters })
    }

    /// The control server's address (with the real port when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// Runs until SIGTERM or SIGINT, then stops sending and drains within
    /// the grace period; a second SIGTERM/SIGINT ends the drain at once.
    /// SIGHUP reloads (see [`reload`]) and keeps running.
    pub async fn run_until_stopped(self, mut signals: Signals) -> anyhow::Result<()> {
        let Sidecar { config, state, listener, addr, demo, exporters } = self;
        let engine = state.engine.clone();
        let control =
            control_server::start(listener, state.clone()).await.context("could not start the control server")?;
        let budget = state.server.descriptors;
        log::info!(addr:% = addr, port = addr.port(), target = engine.settings().target.as_str(),
            warmup_secs = config.warmup.as_secs_f64(), initial_mode = config.engine.initial_mode.as_str(),
            control_token = if config.control_token.is_some() { "required" } else { "none" },
            open_files = budget.map_or(0, |b| b.open_files_limit),
            control_max_connections = config.control_limits.max_connections;
            "control server listening on {addr}");
        for warning in &config.warnings {
            log::warn!("{warning}");
        }

        let stop_engine = CancellationToken::new();
        let abandon = CancellationToken::new();
        let mut engine_task =
            engine.start(stop_engine.clone(), abandon.clone()).context("could not start the engine thread")?;
        let demo_handle = demo.map(|demo| {
            let handle = demo.handle();
            actix_rt::spawn(demo);
            handle
        });

        // With OPENAPI_PATH the traffic starts once the workload is derived
        // from the target's document and the warm-up is over.
        let derived = CancellationToken::new();
        let openapi_task = match &config.openapi {
            Some(path) => {
                log::info!(url = path.url(&engine.settings().target).as_str();
                    "deriving the workload from the OpenAPI document at {}", path.url(&engine.settings().target));
                Some(actix_rt::spawn(openapi_source::derive_at_start(engine.clone(), path.clone(), derived.clone())))
            }
            None => {
                derived.cancel();
                None
            }
        };
        let warmup = config.warmup;
        let warmup_engine = engine.clone();
        let warmup_task = actix_rt::spawn(async move {
            actix_rt::time::sleep(warmup).await;
            derived.cancelled().await;
            warmup_engine.end_warmup();
        });
        let sampler = actix_rt::spawn(sample_sent_rate(state.clone()));
        let peers = state.cluster.as_ref().map(Cluster::start);
        let stats = actix_rt::spawn(log_stats(state.clone()));
        let driver = actix_rt::spawn(Arc::clone(&state.live).drive());
        let memory = actix_rt::spawn(give_memory_back());

        let reloads = Rc::new(Cell::new(0u8));
        // A sidecar whose engine died must not stay up looking healthy.
        let engine_died = loop {
            tokio::select! {
                event = signals.next() => match event {
                    SignalEvent::Stop(_) => break false,
                    SignalEvent::Hangup => reload(&state, &reloads),
                    SignalEvent::Stats => log_stats_now(&state),
                },
                _ = engine_task.stopped() => break true,
            }
        };
        if engine_died {
            log::error!("the traffic engine stopped unexpectedly; exiting so the sidecar gets restarted");
            control.stop(false).await;
            if let Some(demo) = demo_handle {
                demo.stop(false).await;
            }
            anyhow::bail!("the traffic engine stopped unexpectedly");
        }
        let grace = config.engine.shutdown_grace;
        log::info!(grace_secs = grace.as_secs_f64();
            "shutting down: no new requests will be sent (a second SIGTERM/SIGINT exits at once)");
        warmup_task.abort();
        if let Some(task) = openapi_task {
            task.abort();
        }
        sampler.abort();
        stats.abort();
        driver.abort();
        memory.abort();
        // Before the control server stops: event streams end with a
        // `shutdown` event instead of holding its graceful stop up.
        state.live.shut_down();
        stop_engine.cancel();
        // Peers take this replica's share over at once; it waits (a second
        // at most) until they were told, while the engine drains.
        if let (Some(cluster), Some(peers)) = (&state.cluster, peers) {
            peers.abort();
            cluster.leave().await;
        }
        // The worker drains within the grace period itself; the bound only
        // guards against a wedged worker thread.
        let bound = grace + Duration::from_secs(1);
        let forced = tokio::select! {
            stopped = actix_rt::time::timeout(bound, engine_task.stopped()) => {
                if stopped.is_err() {
                    log::warn!("engine did not stop in time");
                }
                false
            }
            name = signals.stop_requested() => {
                log::warn!(signal = name, in_flight = engine.in_flight();
                    "received a second {name}: exiting now, abandoning the requests in flight");
                abandon.cancel();
                let _ = actix_rt::time::timeout(ABANDON_BOUND, engine_task.stopped()).await;
                true
            }
        };
        control.stop(!forced).await;
        if let Some(demo) = demo_handle {
            demo.stop(!forced).await;
        }
        flush_spans(exporters);
        let stats = engine.stats();
        // Sent and never answered: not in `total`, which counts answers and failures.
        let abandoned = engine.abandoned().unwrap_or(engine.in_flight() as u64);
        log::info!(total = stats.total, successful = stats.successful, failed = stats.failed, dropped = stats.dropped,
            abandoned = abandoned, forced = forced;
            "stopped");
        Ok(())
    }
}

/// How `trafficgen run` plays its one job (see [`Sidecar::play`]).
pub struct PlayOptions {
    /// Serve the control API meanwhile (`--port`), to watch it.
    pub serve_control: bool,
    /// Stop early once an SLO has been missed for a whole window.
    pub abort_on_fail: bool,
}

/// What [`Sidecar::play`] ended with.
pub struct Played {
    /// The job as it ended, with its summary.
    pub record: crate::jobs::JobRecord,
    /// The objective that was missed for a whole window, if the run was cut short for it.
    pub aborted_for: Option<String>,
    /// Stopped by SIGINT/SIGTERM.
    pub interrupted: bool,
    pub slo: Option<crate::control::live::SloStatus>,
    pub errors_by_kind: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
}

impl Sidecar {
    /// `trafficgen run`: starts the engine (no warm-up), plays `spec` as a
    /// job, calls `tick` every second while it runs, and stops the engine
    /// when it ends (or when an SLO has failed for a whole window with
    /// `abort_on_fail`, or on SIGINT/SIGTERM). The same job machinery as
    /// `POST /jobs`, so a run and a job send the same traffic.
    pub async fn play(
        self,
        spec: crate::jobs::JobSpec,
        options: PlayOptions,
        mut tick: impl FnMut(Option<crate::jobs::Progress>),
    ) -> anyhow::Result<Played> {
        let Sidecar { config, state, listener, addr, demo: _, exporters } = self;
        let engine = state.engine.clone();
        let control = if options.serve_control {
            let control =
                control_server::start(listener, state.clone()).await.context("could not start the control server")?;
            eprintln!("control API on http://{addr} (/status, /events)");
            Some(control)
        } else {
            drop(listener);
            None
        };
        let stop_engine = CancellationToken::new();
        let abandon = CancellationToken::new();
        let mut engine_task =
            engine.start(stop_engine.clone(), abandon.clone()).context("could not start the engine thread")?;
        engine.end_warmup();
        // `/status.achieved_rps` with `--port`, as in the sidecar.
        let sampler = actix_rt::spawn(sample_sent_rate(state.clone()));
        let driver = actix_rt::spawn(Arc::clone(&state.live).drive());
        let job_id = state.live.start_job(spec).map_err(|e| anyhow::anyhow!("cannot start: {e}"))?.job_id;
        let mut signals = Signals::listen().context("cannot listen for signals")?;
        let mut every = actix_rt::time::interval(Duration::from_secs(1));
        every.tick().await;
        let mut aborted_for = None;
        let mut interrupted = false;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                event = signals.next() => {
                    if let SignalEvent::Stop(_) = event {
                        interrupted = true;
                        let _ = state.live.stop_job(&job_id);
                        break;
                    }
                }
                _ = engine_task.stopped() => anyhow::bail!("the traffic engine stopped unexpectedly"),
            }
            let running = state.live.job(&job_id).is_some_and(|r| r.status == crate::jobs::JobStatus::Running);
            if !running {
                break;
            }
            tick(state.live.progress());
            if options.abort_on_fail
                && let Some(slo) = state.live.slo_missed_for_a_window()
            {
                aborted_for = Some(slo);
                let _ = state.live.stop_job(&job_id);
                break;
            }
        }
        let record = state.live.job(&job_id).context("the job's record is gone")?;
        let slo = state.live.judge_slos_now();
        let errors_by_kind = engine.metrics().errors_by_kind();
        driver.abort();
        sampler.abort();
        state.live.shut_down();
        stop_engine.cancel();
        let bound = config.engine.shutdown_grace + Duration::from_secs(1);
        let _ = actix_rt::time::timeout(bound, engine_task.stopped()).await;
        if let Some(control) = control {
            control.stop(true).await;
        }
        flush_spans(exporters);
        Ok(Played { record, aborted_for, interrupted, slo, errors_by_kind })
    }
}

/// Sends what the span exporters hold, a second at most for all of them
/// (they flush side by side).
fn flush_spans(exporters: Vec<Exporter>) {
    let flushing: Vec<_> =
        exporters.into_iter().map(|exporter| std::thread::spawn(move || exporter.shutdown(SPAN_FLUSH))).collect();
    for flush in flushing {
        let _ = flush.join();
    }
}

/// What SIGHUP does: re-read what can be changed without a restart, the
/// workload file, and keep running (SIGHUP's default action would have
/// ended it, exit 129, without a drain). A bad file is logged and ignored.
/// The file is read off the control thread; SIGHUPs that come while one
/// reload runs and another waits are folded into the waiting one (it reads
/// the file when its turn comes), so a storm of signals queues nothing.
fn reload(state: &ControlState, reloads: &Rc<Cell<u8>>) {
    if reloads.get() >= 2 {
        log::info!(signal = "SIGHUP"; "received SIGHUP: a reload is already waiting to read the file; folded into it");
        return;
    }
    reloads.set(reloads.get() + 1);
    let (state, reloads) = (state.clone(), Rc::clone(reloads));
    actix_rt::spawn(async move {
        crate::control::reload_workload_file(state).await;
        reloads.set(reloads.get() - 1);
    });
}

/// The signals the sidecar acts on. Listening starts when this is made, so
/// make it first thing: from then on none of them takes its default action
/// (as PID 1 in a container, SIGTERM would even be ignored).
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
    /// SIGUSR1 and SIGUSR2, whose default action would end the process:
    /// they log a stats line instead.
    user1: Signal,
    user2: Signal,
}

impl Signals {
    /// Must be called inside the runtime that will wait for them.
    pub fn listen() -> io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
            user1: signal(SignalKind::user_defined1())?,
            user2: signal(SignalKind::user_defined2())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> SignalEvent {
        let event = tokio::select! {
            _ = self.terminate.recv() => SignalEvent::Stop("SIGTERM"),
            _ = self.interrupt.recv() => SignalEvent::Stop("SIGINT"),
            _ = self.hangup.recv() => SignalEvent::Hangup,
            _ = self.user1.recv() => SignalEvent::Stats,
            _ = self.user2.recv() => SignalEvent::Stats,
        };
        if let SignalEvent::Stop(name) = event {
            log::info!(signal = name; "received {name}");
        }
        event
    }

    /// The next SIGTERM or SIGINT (a SIGHUP meanwhile is noted and ignored:
    /// the sidecar is stopping); returns its name.
    pub async fn stop_requested(&mut self) -> &'static str {
        loop {
            match self.next().await {
                SignalEvent::Stop(name) => return name,
                SignalEvent::Hangup => log::info!("received SIGHUP while stopping; ignored"),
                SignalEvent::Stats => log::info!("received SIGUSR1/SIGUSR2 while stopping; ignored"),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    /// SIGTERM or SIGINT, by name.
    Stop(&'static str),
    Hangup,
    /// SIGUSR1 or SIGUSR2: log a stats line now.
    Stats,
}

/// SIGUSR1/SIGUSR2: a stats line now, with the counts since start-up (the
/// periodic line's intervals are left as they are).
fn log_stats_now(state: &ControlState) {
    let engine = &state.engine;
    let (plan, stats) = (engine.plan(), engine.stats());
    let uptime = state.started.elapsed().as_secs_f64();
    let rates = RatesNow::now(engine, state.sent_rate.rate(), state.cluster.as_ref());
    log::info!(signal = "SIGUSR1/SIGUSR2", mode = plan.mode.as_str(), state = plan.state().as_str(),
        target_rps = rates.target_rps, cluster_target_rps = rates.cluster_target_rps,
        cluster_achieved_rps = rates.cluster_achieved_rps, replicas = rates.replicas, uptime_secs = (uptime * 100.0).round() / 100.0, sent = engine.sent(),
        successful = stats.successful, failed = stats.failed, dropped = stats.dropped, in_flight = engine.in_flight(),
        total = stats.total;
        "stats on request (counts since start-up)");
}

/// How often resident memory is looked at, and how far above where the
/// last trim left it a peak must have taken it to be given back.
const MEMORY_LOOK_EVERY: Duration = Duration::from_secs(10);
const MEMORY_PEAK_BYTES: u64 = 16 * 1024 * 1024;

/// Gives memory freed after a peak (requests in flight to a slow target,
/// big answers, a large pool dropped) back to the system: glibc keeps
/// freed pages of its arenas mapped, so without this the peak would stay
/// resident. Looks every 10 s; trims (on a blocking thread, never the
/// control thread) when resident memory grew 16 MiB past where the last
/// trim left it.
async fn give_memory_back() {
    let mut every = actix_rt::time::interval(MEMORY_LOOK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut settled = resident_bytes();
    loop {
        every.tick().await;
        let (Some(now), Some(before)) = (resident_bytes(), settled) else { continue };
        if now < before + MEMORY_PEAK_BYTES {
            settled = Some(before.min(now));
            continue;
        }
        let _ = actix_rt::task::spawn_blocking(crate::control::server::release_free_memory).await;
        settled = resident_bytes();
        log::debug!(before = now, after = settled.unwrap_or(0); "gave free memory back after a peak");
    }
}

/// This process's resident memory, from /proc.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Samples the sent counter once a second for the achieved rate.
async fn sample_sent_rate(state: ControlState) {
    let mut tick = actix_rt::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        state.sent_rate.sample(Instant::now(), state.engine.sent());
    }
}

/// Arrivals and journeys so far, for the stats line.
struct JourneyTotals {
    arrivals: u64,
    active: usize,
    completed: u64,
    ended_early: u64,
    dropped: u64,
}

fn journey_totals(engine: &crate::engine::Engine) -> JourneyTotals {
    let counts = engine.metrics().journey_counts();
    JourneyTotals {
        arrivals: engine.metrics().arrivals_total(),
        active: engine.journeys_active(),
        completed: counts.values().map(|c| c.completed).sum(),
        ended_early: counts.values().flat_map(|c| c.ended_early.values()).sum(),
        dropped: counts.values().flat_map(|c| c.dropped.values()).sum(),
    }
}

/// One line every `every`: what was asked, what was achieved, what failed.
/// Every count and `achieved_rps` cover the interval since the previous line
/// (`interval_secs`, measured, so a stalled process shows its real gap);
/// `/status`'s `achieved_rps` covers the last 10 s instead.
/// `PUT /config` may change the interval (or turn the line off and on).
async fn log_stats(state: ControlState) {
    let engine = &state.engine;
    let mut interval = state.live.stats_interval();
    let mut every = *interval.borrow_and_update();
    let mut last = (Instant::now(), engine.sent(), engine.stats(), journey_totals(engine));
    loop {
        let Some(period) = every else {
            // Off: wait for a change.
            if interval.changed().await.is_err() {
                return;
            }
            every = *interval.borrow_and_update();
            continue;
        };
        let next = last.0 + period;
        tokio::select! {
            _ = actix_rt::time::sleep_until(next.into()) => {}
            changed = interval.changed() => {
                if changed.is_err() {
                    return;
                }
                every = *interval.borrow_and_update();
                continue;
            }
        }
        let now = (Instant::now(), engine.sent(), engine.stats(), journey_totals(engine));
        let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
        let achieved = (now.1 - last.1) as f64 / secs;
        let plan = engine.plan();
        let (s, p) = (&now.2, &last.2);
        let (j, pj) = (&now.3, &last.3);
        let setup = engine.setup_status();
        // This replica's users (all 0 in the open model).
        let users = engine.users();
        let achieved = (achieved * 100.0).round() / 100.0;
        // Alone, the cluster is this replica over the same interval; with
        // PEERS, every member's rate over its last 10 s.
        let rates = RatesNow::now(engine, achieved, state.cluster.as_ref());
        log::info!(
            mode = plan.mode.as_str(), state = plan.state().as_str(), target_rps = rates.target_rps,
            cluster_target_rps = rates.cluster_target_rps, cluster_achieved_rps = rates.cluster_achieved_rps,
            replicas = rates.replicas,
            achieved_rps = achieved, interval_secs = (secs * 100.0).round() / 100.0,
            sent = now.1 - last.1, successful = s.successful - p.successful, failed = s.failed - p.failed,
            dropped = s.dropped - p.dropped, unmet = s.unmet.saturating_sub(p.unmet),
            capture_failures = s.capture_failures.saturating_sub(p.capture_failures),
            in_flight = engine.in_flight(), order_ids_buffered = engine.ids_buffered().unwrap_or(0),
            total = s.total, arrivals = j.arrivals.saturating_sub(pj.arrivals), journeys_active = j.active,
            journeys_completed = j.completed.saturating_sub(pj.completed),
            journeys_ended_early = j.ended_early.saturating_sub(pj.ended_early),
            journeys_dropped = j.dropped.saturating_sub(pj.dropped), setup = setup.state.as_str(),
            setup_attempts = setup.attempts, model = if plan.is_users() { "closed" } else { "open" },
            users_target = users.target, users_active = users.active, users_finishing = users.finishing;
            "stats"
        );
        last = now;
    }
}
