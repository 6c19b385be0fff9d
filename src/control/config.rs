//! `GET`/`PUT /config`, `POST /config/reset` and `GET /logs`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::guard::{authorize, guarded_body, refuse_foreign_origin};
use super::{ApiError, ControlState};
use crate::observe::logging::{RECENT, parse_limit};

/// A config body is a handful of numbers.
const MAX_CONFIG_BODY_BYTES: usize = 4 * 1024;

pub async fn get(state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    let config = state.live.config().ok_or_else(unavailable)?;
    Ok(HttpResponse::Ok().json(config))
}

pub async fn put(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    let body = guarded_body(&request, payload, &state, MAX_CONFIG_BODY_BYTES).await?;
    check_memory(&state, asked_in_flight(&body))?;
    let config = state.live.change_config(Some(&body)).ok_or_else(unavailable)??;
    Ok(HttpResponse::Ok().json(with_persisted(&state, &config)))
}

pub async fn reset(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    let startup = state.live.startup_config().ok_or_else(unavailable)?;
    check_memory(&state, Some(startup.max_in_flight))?;
    let config = state.live.change_config(None).ok_or_else(unavailable)??;
    Ok(HttpResponse::Ok().json(with_persisted(&state, &config)))
}

/// `max_in_flight` in a `PUT /config` body, if it is there as a number
/// (anything else is refused by the change itself).
fn asked_in_flight(body: &[u8]) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("max_in_flight")?.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// A higher in-flight bound must fit the memory budget with the running
/// workload (a `PUT /workload` may have been checked against a lower one).
fn check_memory(state: &ControlState, in_flight: Option<usize>) -> Result<(), ApiError> {
    let (Some(budget), Some(in_flight)) = (state.engine.settings().memory, in_flight) else { return Ok(()) };
    if in_flight <= state.max_in_flight() {
        return Ok(());
    }
    budget.check(&state.engine.workload(), in_flight).map(|_| ()).map_err(|e| {
        ApiError::Invalid(format!("max_in_flight: {in_flight} with the running workload {e}; nothing changed"))
    })
}

/// The settings, and with `STATE_DIR` whether they were kept there.
pub(super) fn with_persisted(state: &ControlState, answer: &impl serde::Serialize) -> serde_json::Value {
    let mut value = serde_json::to_value(answer).unwrap_or_default();
    if let (Some(kept), Some(object)) = (state.live.persisted(), value.as_object_mut()) {
        object.insert("persisted".into(), kept.is_ok().into());
        if let Err(reason) = kept {
            object.insert(
                "persist_error".into(),
                format!("{reason}; the change is in force but will not survive a restart").into(),
            );
        }
    }
    value
}

/// The most recent log lines, oldest first. With a control token set,
/// reading them needs it: log lines name files, peers and failures an
/// operator may not publish. The answer is the stored lines put together
/// (no parsing), counted against the output budget: a flood of `/logs`
/// neither holds this thread nor piles up memory.
pub async fn logs(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    let limit = parse_limit(request.query_string()).map_err(ApiError::Invalid)?;
    state.server.output.answer(StatusCode::OK, "application/json", RECENT.recent_answer(limit))
}

fn unavailable() -> ApiError {
    ApiError::Unavailable("runtime settings are not available in this process".into())
}
