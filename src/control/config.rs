//! `GET`/`PUT /config`, `POST /config/reset` and `GET /logs`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

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
    let config = state.live.change_config(Some(&body)).ok_or_else(unavailable)??;
    Ok(HttpResponse::Ok().json(config))
}

pub async fn reset(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    refuse_foreign_origin(&request, &state)?;
    authorize(&request, &state)?;
    let config = state.live.change_config(None).ok_or_else(unavailable)??;
    Ok(HttpResponse::Ok().json(config))
}

/// The most recent log lines, oldest first.
pub async fn logs(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let limit = parse_limit(request.query_string()).map_err(ApiError::Invalid)?;
    Ok(HttpResponse::Ok().json(json!({ "lines": RECENT.recent(limit) })))
}

fn unavailable() -> ApiError {
    ApiError::Unavailable("runtime settings are not available in this process".into())
}
