//! `POST /jobs`, `GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/stop`,
//! `GET /presets`, and the event streams `GET /jobs/{id}/events` and
//! `GET /events`.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::export::running_workload;
use super::guard::{authorize, guarded_body, refuse_foreign_origin};
use super::streams::{Share, Shared};
use super::{ApiError, ControlState};
use crate::control::events::{SubscribeError, Subscription, Topic, frame, names};
use crate::jobs::{JobLimits, JobSpec, PRESETS};

/// A job body names at most 64 requests: a few KiB.
const MAX_JOB_BODY_BYTES: usize = 16 * 1024;

pub async fn start(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    let body = guarded_body(&request, payload, &state, MAX_JOB_BODY_BYTES).await?;
    let (workload, _) = running_workload(&state).map_err(ApiError::Invalid)?;
    let limits = JobLimits::of(&workload, state.engine.modes().max_rps, state.engine.modes().max_users);
    let spec = JobSpec::parse(&body, &limits)?;
    let record = state.live.start_job(spec)?;
    let location = format!("/jobs/{}", record.job_id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(super::config::with_persisted(&state, &record)))
}

/// Jobs carry what an operator may not publish (their requests, labels,
/// summaries): with a control token set, reading them needs it.
pub async fn list(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    guard_read(&request, &state)?;
    // Up to 50 records of up to 64 requests each: a large answer.
    state.server.output.json(actix_web::http::StatusCode::OK, &json!({ "jobs": state.live.jobs() }))
}

pub async fn get(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    guard_read(&request, &state)?;
    let record = state.live.job(&id).ok_or_else(|| no_job(&id))?;
    let mut body = serde_json::to_value(&record).unwrap_or_default();
    // A running job's live numbers, as its stream last sent them.
    if let (Some(progress), Some(object)) = (state.live.progress(), body.as_object_mut())
        && progress.job_id == record.job_id
    {
        object.insert("progress".into(), serde_json::to_value(progress).unwrap_or_default());
    }
    Ok(HttpResponse::Ok().json(body))
}

pub async fn stop(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    let record = state.live.stop_job(&id)?;
    Ok(HttpResponse::Ok().json(super::config::with_persisted(&state, &record)))
}

pub async fn presets() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "presets": PRESETS }))
}

/// A job's progress every 500 ms, then its summary; the stream then ends.
/// For a job that has ended: its summary alone.
pub async fn job_events(
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    guard_read(&request, &state)?;
    if request.method() == Method::HEAD {
        state.live.job(&id).ok_or_else(|| no_job(&id))?;
        return Ok(event_stream_response().finish());
    }
    let share = take_share(&request, &state)?;
    match state.live.job_stream(&id).ok_or_else(|| no_job(&id))? {
        Ok(subscription) => Ok(stream(subscription?, share)),
        Err(record) => {
            let data = serde_json::to_string(&record).unwrap_or_else(|_| "{}".into());
            let body = format!(": trafficgen events\n\n{}", frame(names::SUMMARY, 0, &data));
            Ok(event_stream_response().body(body))
        }
    }
}

/// The sidecar's life: mode changes, jobs starting and ending, stats
/// every second. Ends when the sidecar stops.
pub async fn events(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    // A HEAD answer has no body: a subscription would never be read, and
    // never be freed, as nothing is ever written to notice the client left.
    guard_read(&request, &state)?;
    if request.method() == Method::HEAD {
        return Ok(event_stream_response().finish());
    }
    let share = take_share(&request, &state)?;
    Ok(stream(state.live.hub().subscribe(Topic::Sidecar)?, share))
}

/// A read of what an operator may not publish: from an allowed origin, and
/// with the control token when one is set.
fn guard_read(request: &HttpRequest, state: &ControlState) -> Result<(), ApiError> {
    refuse_foreign_origin(request, state)?;
    authorize(request, state)
}

/// A place in the client address's share of event streams.
fn take_share(request: &HttpRequest, state: &ControlState) -> Result<Share, ApiError> {
    let client = request.peer_addr().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    state.server.streams.take(client)
}

fn stream(subscription: Subscription, share: Share) -> HttpResponse {
    event_stream_response().streaming(Shared::new(subscription, share))
}

fn event_stream_response() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies such as nginx would otherwise hold events back.
        .insert_header(("X-Accel-Buffering", "no"));
    response
}

impl From<SubscribeError> for ApiError {
    fn from(e: SubscribeError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

fn no_job(id: &str) -> ApiError {
    let id: String = id.chars().take(64).collect();
    ApiError::Missing(format!("no job '{id}'; GET /jobs lists the last 50"))
}
