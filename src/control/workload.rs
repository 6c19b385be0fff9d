//! `GET /workload`: the running workload. `PUT /workload`: a new one (YAML
//! or JSON), checked first and swapped in between two requests, with the
//! mode, the rate and the schedule untouched and the pools whose names
//! survive keeping their values. SIGHUP re-reads `WORKLOAD_FILE` the same
//! way ([`reload_file`]). With `PEERS`, either one is proposed to the
//! other replicas (the text, see `crate::cluster`), which swap it in too.
//!
//! Nothing here shows a pool's values (a pool may hold a login token) or a
//! request's headers and bodies (they may hold credentials): names, paths,
//! weights, pool sizes and how many values each pool holds.
//!
//! A body has no directory of its own, so its `data:` tables are read
//! from `DATA_DIR` only; without it such a workload is refused (422) and
//! no file is read: a `PUT /workload` can never make the sidecar send its
//! own files to the target.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use super::guard::{authorize, guarded_body, refuse_foreign_origin};
use super::{ApiError, ControlState};
use crate::cluster::Cluster;
use crate::cluster::document::{DocumentError, WorkloadSection};
use crate::engine::Engine;
use crate::engine::memory::MemoryBudget;
use crate::workload::yaml::Pos;
use crate::workload::{self, LoadError, MAX_FILE_BYTES, Problem, Role, Step, Workload};

/// What a `PUT /workload` body is called in problem locations.
const BODY_SOURCE: &str = "body";

#[derive(Debug, Serialize)]
struct WorkloadView {
    source: String,
    /// The weights as `MIX` writes them.
    mix: String,
    requests: Vec<RequestView>,
    pools: Vec<PoolView>,
    /// How often the setup requests are sent again, if at all.
    setup_every_secs: Option<u64>,
    /// Or when: at a fraction of the life the login's answer gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    setup_refresh: Option<RefreshView>,
    /// Journeys: their steps (requests by name, pauses) and variables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    journeys: Vec<JourneyView>,
    /// Data tables: how many rows, in what order (never a value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    data: Vec<TableView>,
}

/// `every_secs: {json: …, fraction: …}`.
#[derive(Debug, Serialize)]
struct RefreshView {
    json: String,
    fraction: f64,
}

#[derive(Debug, Serialize)]
struct JourneyView {
    name: String,
    weight: u32,
    /// Share of the arrivals that start it.
    share_percent: f64,
    /// Request steps by name (`journey/step`), pauses as `pause …`.
    steps: Vec<String>,
    variables: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TableView {
    name: String,
    file: String,
    rows: usize,
    order: &'static str,
}

#[derive(Debug, Serialize)]
struct RequestView {
    name: String,
    /// `weighted`, `error` (sent only by jobs that inject errors) or `setup`.
    role: &'static str,
    method: &'static str,
    /// The path template as written (values are filled per request).
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u32>,
    /// Share of the traffic drawn as this request, before fallbacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    share_percent: Option<f64>,
    /// Sent instead while a pool this request reads is empty.
    fallback: Option<String>,
    /// Pools this request reads.
    needs: Vec<String>,
}

#[derive(Debug, Serialize)]
struct PoolView {
    name: String,
    size: usize,
    /// Values it holds now (never the values themselves).
    values: usize,
}

/// With a control token set, reading the workload needs it: its paths may
/// carry what an operator would not publish (a key in a query string).
pub async fn show(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    Ok(HttpResponse::Ok().json(view(&state.engine)))
}

pub async fn replace(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    // A place in the lane first: when it is full, no megabyte of body is
    // read only to be refused (60 clients held 60 MB so).
    let place = state.server.heavy.admit("a workload check")?;
    let body = match guarded_body(&request, payload, &state, MAX_FILE_BYTES).await {
        Ok(body) => body,
        // A workload too large is one of its problems: 422, like the others.
        Err(ApiError::TooLarge { limit }) => {
            let message = format!("larger than {limit} bytes (1 MiB); a workload is much smaller");
            return refused(&state, &LoadError::new(BODY_SOURCE, vec![Problem::new(Pos::new(1, 1), message)], 0));
        }
        Err(e) => return Err(e),
    };
    // Reading and checking a megabyte of YAML (and the data files, from
    // DATA_DIR) takes a while: not on the thread that answers `/health`,
    // and one at a time.
    let options = state.engine.workload_options();
    let (budget, in_flight) = (state.engine.settings().memory, state.max_in_flight());
    let checked = place
        .run(state.server.heavy_wait(), move || load_checked(BODY_SOURCE, body, &options, budget, in_flight))
        .await?;
    let (next, body) = match checked {
        Ok(loaded) => loaded,
        Err(e) => return refused(&state, &e),
    };
    if let Err(e) = put_in_force(&state.engine, state.cluster.as_ref(), BODY_SOURCE, body, next) {
        let message = e.to_string();
        return refused(&state, &LoadError::new(BODY_SOURCE, vec![Problem::new(Pos::new(1, 1), message)], 0));
    }
    Ok(HttpResponse::Ok().json(view(&state.engine)))
}

/// `bytes` read, checked and compiled, and set against the memory budget
/// with `in_flight` requests at once; the text comes back with it.
fn load_checked(
    source: &str,
    bytes: Vec<u8>,
    options: &workload::Options,
    budget: Option<MemoryBudget>,
    in_flight: usize,
) -> Result<(Workload, Vec<u8>), LoadError> {
    let next = workload::load_bytes(source, &bytes, options)?;
    if let Some(budget) = budget
        && let Err(e) = budget.check(&next, in_flight)
    {
        let message = format!("the workload {e}");
        return Err(LoadError::new(source, vec![Problem::new(Pos::new(1, 1), message)], 0));
    }
    Ok((next, bytes))
}

/// Swaps `next` in; with `PEERS`, through the cluster, which sends its
/// text (`bytes`, from `source`) to every peer. A text that cannot be sent
/// to peers changes nothing.
fn put_in_force(
    engine: &Engine,
    cluster: Option<&Cluster>,
    source: &str,
    bytes: Vec<u8>,
    next: Workload,
) -> Result<(), DocumentError> {
    let Some(cluster) = cluster else {
        engine.replace_workload(next);
        return Ok(());
    };
    // Loaded, so UTF-8 already: the lossy path never replaces anything.
    let text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let section = WorkloadSection { source: source.to_string(), text };
    section.check()?;
    cluster.propose_workload(section, next);
    Ok(())
}

/// SIGHUP: reads `WORKLOAD_FILE` again and runs it; a bad file (not a
/// regular file, unreadable, with mistakes, too large for the memory
/// budget) is logged and ignored, the running workload goes on. The file
/// is read and checked off the control thread, in the heavy lane.
pub async fn reload_file(state: ControlState) {
    let engine = &state.engine;
    let Some(path) = engine.settings().workload_file.clone() else {
        log::info!(signal = "SIGHUP";
            "received SIGHUP: nothing to reload (no workload file is configured); still running");
        return;
    };
    let source = path.display().to_string();
    // Its data files, like at start, next to it (or in DATA_DIR).
    let options = workload::file_options(&path, &engine.workload_options());
    let (budget, in_flight) = (state.engine.settings().memory, state.max_in_flight());
    let job_source = source.clone();
    let loaded = state
        .server
        .heavy
        .run_waiting(move || {
            let bytes = workload::read_file(&path)?;
            load_checked(&job_source, bytes, &options, budget, in_flight)
        })
        .await;
    match loaded {
        Ok(Ok((next, bytes))) => {
            log::info!(signal = "SIGHUP", file = source.as_str(); "received SIGHUP: workload file read again");
            if let Err(e) = put_in_force(engine, state.cluster.as_ref(), &source, bytes, next) {
                log::error!(signal = "SIGHUP", file = source.as_str(), error:% = e;
                    "received SIGHUP: the workload file cannot be sent to the other replicas; the running workload goes on");
            }
        }
        Ok(Err(e)) => {
            log::error!(signal = "SIGHUP", file = source.as_str(), problems = e.count(), error:% = e;
                "received SIGHUP: the workload file cannot be used; the running workload goes on");
        }
        Err(e) => {
            log::error!(signal = "SIGHUP", file = source.as_str(), error:% = e;
                "received SIGHUP: the workload file was not read; the running workload goes on");
        }
    }
}

/// 422 naming the problems with their places (the first
/// [`workload::MAX_LISTED_PROBLEMS`], then how many more), an answer of
/// bounded size counted against the output budget.
fn refused(state: &ControlState, error: &LoadError) -> Result<HttpResponse, ApiError> {
    let problems: Vec<serde_json::Value> =
        error.problems.iter().map(|p| json!({"line": p.pos.line, "column": p.pos.col, "message": p.message})).collect();
    let answer = json!({
        "error": format!("the workload cannot be used; nothing changed:\n{error}"),
        "problems": problems,
        "more_problems": error.more,
    });
    state.server.output.json(StatusCode::UNPROCESSABLE_ENTITY, &answer)
}

fn view(engine: &Engine) -> WorkloadView {
    let workload = engine.workload();
    let counts = engine.pool_counts();
    WorkloadView {
        source: workload.source().to_string(),
        mix: workload.mix(),
        requests: requests(&workload),
        pools: workload
            .pools()
            .map(|id| {
                let name = workload.pool_name(id).to_string();
                let values = counts.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c);
                PoolView { size: workload.pool_size(id), values, name }
            })
            .collect(),
        setup_every_secs: workload.setup_every().map(|d| d.as_secs()),
        setup_refresh: workload.refresh_rule().map(|(json, fraction)| RefreshView { json, fraction }),
        journeys: workload
            .journeys()
            .map(|j| JourneyView {
                name: workload.journey_name(j).to_string(),
                weight: workload.journey_weight(j),
                share_percent: (workload.journey_share(j) * 100.0).round() / 100.0,
                steps: workload
                    .steps(j)
                    .iter()
                    .map(|step| match step {
                        Step::Request { id, .. } => workload.name(*id).to_string(),
                        Step::Pause(pause) => format!("pause {pause}"),
                    })
                    .collect(),
                variables: workload.journey_vars(j).to_vec(),
            })
            .collect(),
        data: workload
            .model()
            .data
            .iter()
            .map(|t| TableView {
                name: t.name.clone(),
                file: t.file.clone(),
                rows: workload.table_rows(&t.name),
                order: t.order.as_str(),
            })
            .collect(),
    }
}

fn requests(workload: &Workload) -> Vec<RequestView> {
    workload
        .requests()
        .zip(workload.model().all_requests())
        .map(|(id, def)| RequestView {
            name: workload.name(id).to_string(),
            role: match workload.role(id) {
                Role::Weighted(_) => "weighted",
                Role::Error => "error",
                Role::Setup => "setup",
                Role::Step => "step",
            },
            method: workload.method(id).as_str(),
            path: def.path.to_string(),
            weight: match workload.role(id) {
                Role::Weighted(w) => Some(w),
                _ => None,
            },
            share_percent: workload.share(id).map(|p| (p * 100.0).round() / 100.0),
            fallback: workload.fallback(id).map(|f| workload.name(f).to_string()),
            needs: workload.needs(id).iter().map(|p| workload.pool_name(*p).to_string()).collect(),
        })
        .collect()
}
