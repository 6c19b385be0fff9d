//! `GET /export/{k6,locust,artillery}`: the running workload and mode as a
//! script for that tool, or a scenario with `?scenario=…&max_rps=…`.
//! Query: `scenario`, `duration_secs` (60), `max_rps`, `ramp_up_secs` (0),
//! `rps` (instead of the mode's rate), `slo`, `endpoints` (comma-separated
//! request names); or `job=ID`: that job's scenario, rate, length and
//! endpoints (or its stages; a job of users in users). In users mode, with
//! no rate in the query, the script is of virtual users (the closed model).

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::guard::{authorize, refuse_foreign_origin};
use super::{ApiError, ControlState};
use crate::export::{self, Format, RenderError, Spec, Traffic};
use crate::jobs::scenario::ScenarioKind;
use crate::observe::slo;
use crate::workload::{BUILTIN_SOURCE, Workload};

/// Default length of an exported run, seconds.
const DEFAULT_DURATION_SECS: f64 = 60.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    scenario: Option<String>,
    duration_secs: Option<f64>,
    max_rps: Option<f64>,
    ramp_up_secs: Option<f64>,
    rps: Option<f64>,
    slo: Option<String>,
    endpoints: Option<String>,
    job: Option<String>,
}

pub async fn export(
    request: HttpRequest,
    format: web::Path<String>,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    let Ok(format) = format.parse::<Format>() else {
        let message =
            format!("unknown export format '{format}'; formats: /export/k6, /export/locust, /export/artillery");
        return Ok(HttpResponse::NotFound().json(serde_json::json!({ "error": message })));
    };
    // A script holds the workload: its login bodies and seeded pool values
    // too. A page on another origin may not read it either (with no token
    // set, a DNS-rebinding page could otherwise fetch it).
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    let query = web::Query::<ExportQuery>::from_query(request.query_string())
        .map_err(|e| {
            ApiError::Invalid(format!(
                "{e}; parameters: scenario, duration_secs, max_rps, ramp_up_secs, rps, slo, endpoints, job"
            ))
        })?
        .into_inner();
    let mut query = query;
    let mut endpoints = query.endpoints.as_deref().map(|list| {
        list.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_string).collect::<Vec<_>>()
    });
    // A job with stages of its own: its shape, as the job plays it.
    let mut own_stages = None;
    let mut job_users = None;
    if let Some(id) = query.job.take() {
        // A job's own story: its scenario, rate, length and endpoints.
        if query.scenario.is_some()
            || query.max_rps.is_some()
            || query.rps.is_some()
            || query.duration_secs.is_some()
            || query.ramp_up_secs.is_some()
            || query.endpoints.is_some()
        {
            return Err(ApiError::Invalid(
                "job gives the scenario, max_rps, duration_secs, ramp_up_secs and endpoints; give none of them with it"
                    .into(),
            ));
        }
        let record = state.live.job(&id).ok_or_else(|| {
            let id: String = id.chars().take(64).collect();
            ApiError::Invalid(format!("no job '{id}'; GET /jobs lists the last 50"))
        })?;
        let spec = record.spec;
        if spec.stages.is_some() && spec.users.is_none() {
            own_stages = Some(spec.rate_stages(state.engine.settings().modes.max_rps));
        }
        // A job of users: its stages in users, each user pausing as the
        // job's users do (USER_PAUSE).
        if let (Some(count), Some(stages)) = (spec.users, spec.user_stages()) {
            let pause = state.engine.modes().user_pause;
            job_users = Some(export::ClosedModel { min_pause_secs: pause.min_secs, max_pause_secs: pause.max_secs });
            own_stages = Some(stages);
            query.max_rps = Some(count as f64);
        } else {
            query.max_rps = Some(spec.max_rps);
        }
        query.scenario = Some(spec.scenario.0.as_str().to_string());
        query.duration_secs = Some(spec.duration_secs);
        query.ramp_up_secs = Some(spec.ramp_up_secs);
        endpoints = spec.endpoints;
    }
    let settings = state.engine.settings();
    let cap = settings.modes.max_rps;
    let scenario = match &query.scenario {
        None => None,
        Some(name) => Some(name.parse::<ScenarioKind>().map_err(|e| ApiError::Invalid(e.to_string()))?),
    };
    // Users mode, exported as it runs: its users (as "the rate" of the
    // stages) and its pause; any rate given in the query exports a rate.
    let mut users = job_users;
    let rps = match (scenario, query.max_rps, query.rps) {
        (Some(_), Some(max), None) => max,
        (Some(_), None, _) => return Err(ApiError::Invalid("a scenario needs max_rps: the rate it rises to".into())),
        (Some(_), Some(_), Some(_)) => {
            return Err(ApiError::Invalid("rps is the constant rate without a scenario; with one give max_rps".into()));
        }
        (None, Some(_), _) => {
            return Err(ApiError::Invalid("max_rps is the peak of a scenario; for a constant rate give rps".into()));
        }
        (None, None, Some(rps)) => rps,
        (None, None, None) => {
            let plan = state.engine.plan();
            if plan.is_users() {
                let pause = plan.user_pause.unwrap_or(state.engine.modes().user_pause);
                users = Some(export::ClosedModel { min_pause_secs: pause.min_secs, max_pause_secs: pause.max_secs });
            }
            if plan.rps <= 0.0 {
                return Err(ApiError::Invalid(format!(
                    "the sidecar's mode '{}' sends nothing: give ?rps=N, or ?scenario=…&max_rps=N",
                    plan.mode
                )));
            }
            plan.rps
        }
    };
    if users.is_none() && rps > cap {
        return Err(ApiError::Invalid(format!("rate {rps} is above MAX_RPS ({cap})")));
    }
    let traffic = Traffic::new(
        scenario,
        rps,
        query.duration_secs.unwrap_or(DEFAULT_DURATION_SECS),
        query.ramp_up_secs.unwrap_or(0.0),
    )
    .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let mut traffic = traffic;
    if let Some(stages) = own_stages {
        traffic.stages = stages;
    }
    let slos = slo::parse(query.slo.as_deref().unwrap_or_default()).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let (workload, source) = running_workload(&state).map_err(ApiError::Invalid)?;
    let spec = Spec {
        source,
        target_url: settings.target.as_str().to_string(),
        traffic,
        slos,
        max_in_flight: settings.max_in_flight,
        max_journeys: settings.max_journeys,
        endpoints,
        max_bytes: export::MAX_SCRIPT_BYTES,
        users,
    };
    // Writing a script of megabytes takes a while: off the thread that
    // answers `/health`, one at a time, and only if its bytes can be held
    // until the client reads them.
    let room = state.server.output.reserve(spec.max_bytes)?;
    let script = state
        .server
        .heavy
        .run("an export", state.server.heavy_wait(), move || export::render(format, &workload, &spec))
        .await?
        .map_err(|e| match e {
            RenderError::TooLarge { .. } => ApiError::AnswerTooLarge(e.to_string()),
            e => ApiError::Invalid(e.to_string()),
        })?;
    drop(room);
    let mut answer = state.server.output.answer(StatusCode::OK, format.content_type(), script)?;
    let disposition = format!("inline; filename=\"trafficgen{}\"", format.suffix());
    if let Ok(value) = header::HeaderValue::from_str(&disposition) {
        answer.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(answer)
}

/// The workload the sidecar sends now (after any `PUT /workload` or
/// SIGHUP), and how a script names it.
pub fn running_workload(state: &ControlState) -> Result<(Arc<Workload>, String), String> {
    let workload = state.engine.workload();
    let source = if workload.source() == BUILTIN_SOURCE {
        let size = state.engine.settings().id_buffer_size;
        format!("the built-in orders workload (MIX={}, ID_BUFFER_SIZE={size})", workload.mix())
    } else {
        format!("the workload {}", workload.source())
    };
    Ok((workload, source))
}
