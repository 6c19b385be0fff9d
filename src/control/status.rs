//! `GET /status`, `/health`, `/metrics`.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::live::{RecentLatency, SloStatus};
use super::rates::RatesNow;
use super::{ControlState, ServerInfo};
use crate::base::json::Health;
use crate::cluster::ClusterView;
use crate::engine::Engine;
use crate::jobs::Progress;
use crate::observe::latency::Percentiles;
use crate::observe::metrics::{DropReason, EndReason, Stats};

#[derive(Debug, Serialize)]
pub struct Status {
    pub mode: &'static str,
    /// `open` (a rate: sends on schedule whatever the answers take) or
    /// `closed` (users mode: each user sends after its previous answer).
    pub model: &'static str,
    /// The headline rate of the mode, the ramp's end or the job's
    /// maximum, for every replica together: not what is asked now (see
    /// `target_rps` and `cluster_target_rps`).
    #[serde(serialize_with = "crate::base::json::serialize_rate")]
    pub rps: f64,
    #[serde(flatten)]
    pub rates: RatesNow,
    pub state: &'static str,
    pub uptime_secs: f64,
    pub target_url: String,
    /// Ids in the built-in workload's `order_ids` pool; absent for a
    /// workload without one (see `pools`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_ids_buffered: Option<usize>,
    /// Values held by each pool of the running workload.
    pub pools: std::collections::BTreeMap<String, usize>,
    /// Requests per second actually sent over the last few seconds.
    pub achieved_rps: f64,
    pub in_flight: usize,
    pub max_in_flight: usize,
    #[serde(serialize_with = "crate::base::json::serialize_rate")]
    pub max_rps: f64,
    pub mix: String,
    pub stats: Stats,
    /// The workload's setup (its login): working or failing, and why.
    pub setup: SetupView,
    /// The descriptor and connection bounds in force.
    pub limits: Limits,
    pub control_connections: ControlConnections,
    /// Replicas (`PEERS`): who they are, each one's share and version,
    /// which do not answer. Absent when the sidecar runs alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterView>,
    /// Latency percentiles of the last 10 s, in milliseconds: from the
    /// scheduled send time (`from_scheduled`) and from the actual one
    /// (`from_sent`), overall and per request name.
    pub latency: RecentLatency,
    /// The running job and its progress; `null` when none runs.
    pub job: Option<Progress>,
    /// `SLO`'s objectives over `SLO_WINDOW`; absent without `SLO`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloStatus>,
    /// Arrivals and journey instances since start.
    pub journeys: JourneysStatus,
    /// Virtual users (users mode); all 0 in the open model.
    pub users: UsersStatus,
    /// Per request name of the running workload: its rate now, its share,
    /// its answers and failures by kind, its latency.
    pub requests: RequestsTable,
}

/// `/status`'s `requests`: which requests go out, and how they do.
#[derive(Debug, Serialize)]
pub struct RequestsTable {
    /// The seconds the rates are measured over: 1, or at low rates as
    /// many (up to 10) as it takes to see 10 answers.
    pub window_secs: f64,
    /// The names' rates added up.
    pub total_rps: f64,
    pub by_name: BTreeMap<String, RequestRow>,
}

#[derive(Debug, Serialize)]
pub struct RequestRow {
    /// Requests completed (answered or not) per second.
    pub rps: f64,
    /// Of `total_rps`, from 0 to 1.
    pub share: f64,
    pub failed_rps: f64,
    /// Since start.
    pub successful: u64,
    pub failed: u64,
    /// The failures since start by kind: a status the request's
    /// `success` does not accept (`http_4xx`, `http_5xx`, `http_other`)
    /// or no answer (`timeout`, `connect`, `dns`, `tls`, `reused`, `other`).
    pub failures: BTreeMap<&'static str, u64>,
    /// The last 10 s, from the scheduled send time, in milliseconds.
    pub latency_ms: RequestPercentiles,
}

/// Three percentiles, in milliseconds; `null` without answers.
#[derive(Debug, Default, Serialize)]
pub struct RequestPercentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// The table of the running workload's requests (error requests a job
/// injects only once sent).
pub fn requests(engine: &Engine, live: &super::live::Live, stats: &Stats, latency: &RecentLatency) -> RequestsTable {
    let workload = engine.workload();
    let (rates, window_secs) = live.name_rates();
    let failures = engine.metrics().failures_by_endpoint(|name, status| match workload.find(name) {
        Some(id) => workload.is_success(id, status),
        None => (200..300).contains(&status),
    });
    let names = workload.requests().filter_map(|id| {
        let name = workload.name(id);
        let sent = stats.by_endpoint.get(name).is_some_and(|e| e.total > 0);
        (workload.role(id) != crate::workload::Role::Error || sent).then(|| name.to_string())
    });
    let rows: Vec<(String, f64, f64)> = names
        .map(|name| {
            let rate = rates.get(&name).copied().unwrap_or_default();
            (name, rate.rps, rate.failed_rps)
        })
        .collect();
    let total_rps: f64 = rows.iter().map(|(_, rps, _)| rps).sum();
    let by_name = rows
        .into_iter()
        .map(|(name, rps, failed_rps)| {
            let counts = stats.by_endpoint.get(&name).copied().unwrap_or_default();
            let p = latency.report.by_name.get(&name).map(|l| &l.from_scheduled);
            let row = RequestRow {
                rps,
                share: if total_rps > 0.0 { ((rps / total_rps) * 1000.0).round() / 1000.0 } else { 0.0 },
                failed_rps,
                successful: counts.successful,
                failed: counts.failed,
                failures: failures
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| crate::observe::metrics::FAILURE_KINDS.iter().map(|k| (*k, 0)).collect()),
                latency_ms: p.map_or_else(RequestPercentiles::default, |p| RequestPercentiles {
                    p50: p.p50,
                    p95: p.p95,
                    p99: p.p99,
                }),
            };
            (name, row)
        })
        .collect();
    RequestsTable { window_secs, total_rps: (total_rps * 1000.0).round() / 1000.0, by_name }
}

/// `GET /history`: the last 5 minutes, a point a second.
#[derive(Debug, Serialize)]
pub struct HistoryAnswer {
    pub every_secs: f64,
    pub max_points: usize,
    pub points: Vec<crate::observe::history::HistoryPoint>,
}

pub async fn history(state: web::Data<ControlState>) -> HttpResponse {
    HttpResponse::Ok().json(HistoryAnswer {
        every_secs: 1.0,
        max_points: crate::observe::history::HISTORY_POINTS,
        points: state.live.history(),
    })
}

/// `/status`'s `users`.
#[derive(Debug, Serialize)]
pub struct UsersStatus {
    /// Users asked for now, by every replica together (a ramp's part-way number).
    pub target: u64,
    /// This replica's part of them.
    pub target_here: usize,
    /// Users running on this replica.
    pub active: usize,
    /// Retired users still finishing the iteration they were in.
    pub finishing: usize,
    /// `MAX_USERS`.
    pub max_users: u64,
    /// The pause between a user's iterations, as `1s` or `1s..3s`.
    pub pause: String,
}

pub fn users(engine: &Engine) -> UsersStatus {
    let plan = engine.plan();
    let modes = engine.modes();
    let now = engine.users();
    UsersStatus {
        target: plan.users_at(std::time::SystemTime::now()),
        target_here: now.target,
        active: now.active,
        finishing: now.finishing,
        max_users: modes.max_users,
        pause: plan.user_pause.unwrap_or(modes.user_pause).to_string(),
    }
}

/// `/status`'s `setup`.
#[derive(Debug, Serialize)]
pub struct SetupView {
    /// `none` (no setup requests), `pending` (not run yet), `ok` or `failing`.
    pub state: &'static str,
    /// A run is under way.
    pub running: bool,
    /// Failed runs since the setup last worked.
    pub attempts: u32,
    pub runs_ok: u64,
    pub runs_failed: u64,
    /// Runs started because an answer refused the setup's values (401).
    pub relogins: u64,
    /// Why the last failed run failed; `null` if none has.
    pub last_error: Option<String>,
    /// Seconds until the next run (a retry, or a refresh); `null` if none
    /// is planned.
    pub next_try_in_secs: Option<f64>,
    /// The wait between two runs in force: `every_secs`, or the one the
    /// login's answer gave; `null`: once.
    pub every_secs: Option<f64>,
}

pub fn setup(engine: &Engine) -> SetupView {
    let status = engine.setup_status();
    let now = std::time::Instant::now();
    let tenths = |secs: f64| (secs * 10.0).round() / 10.0;
    SetupView {
        state: status.state.as_str(),
        running: status.running,
        attempts: status.attempts,
        runs_ok: status.runs_ok,
        runs_failed: status.runs_failed,
        relogins: status.relogins,
        last_error: status.last_error,
        next_try_in_secs: status.next_try.map(|at| tenths(at.saturating_duration_since(now).as_secs_f64())),
        every_secs: status.every.map(|every| tenths(every.as_secs_f64())),
    }
}

/// `/status`'s `journeys`.
#[derive(Debug, Serialize)]
pub struct JourneysStatus {
    /// Arrivals drawn by the schedule: each a request or a journey instance.
    pub arrivals: u64,
    /// Instances running now, and the bound (`MAX_JOURNEYS`).
    pub active: usize,
    pub max_active: usize,
    pub started: u64,
    pub completed: u64,
    /// Ended before their last step, by reason.
    pub ended_early: BTreeMap<&'static str, u64>,
    /// Arrivals that started no instance, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Login steps run again because a later step was answered 401.
    pub relogins: u64,
    /// Completed instances, from arrival to the last answer: percentiles
    /// since the running workload took over, in milliseconds.
    pub duration_ms: Percentiles,
    /// Their mean, since start (`null` before the first).
    pub mean_duration_ms: Option<f64>,
    /// Per journey of the running workload.
    pub by_journey: BTreeMap<String, JourneyStatus>,
}

#[derive(Debug, Serialize)]
pub struct JourneyStatus {
    pub started: u64,
    pub completed: u64,
    pub ended_early: BTreeMap<&'static str, u64>,
    pub dropped: BTreeMap<&'static str, u64>,
    pub duration_ms: Percentiles,
    pub mean_duration_ms: Option<f64>,
}

/// Every reason, at 0 unless counted.
fn by_reason<const N: usize>(
    reasons: [&'static str; N],
    counted: &BTreeMap<String, u64>,
) -> BTreeMap<&'static str, u64> {
    reasons.into_iter().map(|r| (r, counted.get(r).copied().unwrap_or(0))).collect()
}

pub fn journeys(engine: &Engine) -> JourneysStatus {
    let counts = engine.metrics().journey_counts();
    let workload = engine.workload();
    let table = engine.journey_latency();
    let snapshot = table.snapshot();
    let ended = EndReason::ALL.map(EndReason::as_str);
    let dropped = DropReason::ALL.map(DropReason::as_str);
    let mut totals = crate::observe::metrics::JourneyCounts::default();
    let mut weighted_mean = 0.0;
    for c in counts.values() {
        totals.started += c.started;
        totals.completed += c.completed;
        for (k, n) in &c.ended_early {
            *totals.ended_early.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &c.dropped {
            *totals.dropped.entry(k.clone()).or_default() += n;
        }
        weighted_mean += c.mean_duration_ms.unwrap_or(0.0) * c.completed as f64;
    }
    let by_journey = workload
        .journeys()
        .map(|j| {
            let name = workload.journey_name(j).to_string();
            let c = counts.get(&name).cloned().unwrap_or_default();
            let durations = snapshot.name(j.index()).map(|p| Percentiles::of(&p.from_sent)).unwrap_or_default();
            let status = JourneyStatus {
                started: c.started,
                completed: c.completed,
                ended_early: by_reason(ended, &c.ended_early),
                dropped: by_reason(dropped, &c.dropped),
                duration_ms: durations,
                mean_duration_ms: c.mean_duration_ms,
            };
            (name, status)
        })
        .collect();
    JourneysStatus {
        arrivals: engine.metrics().arrivals_total(),
        active: engine.journeys_active(),
        max_active: engine.max_journeys(),
        started: totals.started,
        completed: totals.completed,
        ended_early: by_reason(ended, &totals.ended_early),
        dropped: by_reason(dropped, &totals.dropped),
        relogins: engine.metrics().relogins_total("journey"),
        duration_ms: Percentiles::of(&snapshot.overall().from_sent),
        mean_duration_ms: (totals.completed > 0)
            .then(|| (weighted_mean / totals.completed as f64 * 1000.0).round() / 1000.0),
        by_journey,
    }
}

#[derive(Debug, Serialize)]
pub struct Limits {
    /// The open-file limit (RLIMIT_NOFILE) in force, after start-up raised
    /// the soft limit to the hard one.
    pub open_files: Option<u64>,
    /// The soft limit before it was raised, if it was.
    pub open_files_raised_from: Option<u64>,
    /// How the open-file limit is shared out.
    pub reserved_descriptors: Option<Reserved>,
    pub control_max_connections: usize,
    pub control_request_timeout_ms: u128,
}

#[derive(Debug, Serialize)]
pub struct Reserved {
    pub engine: u64,
    pub control: u64,
    pub process: u64,
}

#[derive(Debug, Serialize)]
pub struct ControlConnections {
    pub open: usize,
    pub accepted: u64,
    /// Closed to make room for a newer connection when the cap was reached.
    pub evicted: u64,
    /// Closed for going CONTROL_REQUEST_TIMEOUT_MS without an answer.
    pub timed_out: u64,
}

pub async fn status(state: web::Data<ControlState>) -> HttpResponse {
    let engine = &state.engine;
    let plan = engine.plan();
    let settings = engine.settings();
    let uptime = state.started.elapsed().as_secs_f64();
    let cluster = state.cluster.as_ref().map(|c| c.view());
    let achieved_rps = state.sent_rate.rate();
    let stats = engine.stats();
    let latency = state.live.recent_latency();
    let requests = requests(engine, &state.live, &stats, &latency);
    HttpResponse::Ok().json(Status {
        mode: plan.mode.as_str(),
        model: if plan.is_users() { "closed" } else { "open" },
        // Users mode has no rate of its own (its number is in `users`).
        rps: if plan.is_users() { 0.0 } else { plan.rps },
        rates: RatesNow::of(&plan, achieved_rps, cluster.as_ref()),
        state: plan.state().as_str(),
        uptime_secs: (uptime * 10.0).round() / 10.0,
        target_url: settings.target.to_string(),
        order_ids_buffered: engine.ids_buffered(),
        pools: engine.pool_counts().into_iter().collect(),
        achieved_rps,
        in_flight: engine.in_flight(),
        max_in_flight: engine.max_in_flight(),
        max_rps: settings.modes.max_rps,
        mix: engine.workload().mix(),
        stats,
        setup: setup(engine),
        limits: limits(&state.server),
        control_connections: ControlConnections {
            open: state.server.connections.open(),
            accepted: state.server.connections.accepted(),
            evicted: state.server.connections.evicted(),
            timed_out: state.server.connections.timed_out(),
        },
        cluster,
        latency,
        job: state.live.progress(),
        slo: state.live.slo_status(),
        journeys: journeys(engine),
        requests,
        users: users(engine),
    })
}

fn limits(server: &ServerInfo) -> Limits {
    let budget = server.descriptors;
    Limits {
        open_files: budget.map(|b| b.open_files_limit),
        open_files_raised_from: budget.and_then(|b| b.raised_from),
        reserved_descriptors: budget.map(|b| Reserved { engine: b.engine, control: b.control, process: b.process }),
        control_max_connections: server.limits.max_connections,
        control_request_timeout_ms: server.limits.request_timeout.as_millis(),
    }
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health::healthy("traffic-generator"))
}

pub async fn metrics(state: web::Data<ControlState>) -> HttpResponse {
    state.engine.refresh_gauges();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics().render())
}
