//! The two checks every state change passes (and exports, which can hold a
//! workload's credentials): the browser-origin allow-list and the control
//! token; and the bounded, timed read of a request body.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;

use super::{ApiError, ControlState};

/// A web page a user has open can fire a body-less POST at the control
/// port (a CORS "simple request"); browsers mark it with `Origin`, curl and
/// scripts do not. Every `Origin` header must be on the allow-list (see
/// [`super::origin`]).
pub(super) fn refuse_foreign_origin(request: &HttpRequest, state: &ControlState) -> Result<(), ApiError> {
    let host = request.headers().get(header::HOST).map(|h| h.as_bytes());
    for origin in request.headers().get_all(header::ORIGIN) {
        if !state.origins.allows(origin.as_bytes(), host) {
            return Err(ApiError::ForeignOrigin(String::from_utf8_lossy(origin.as_bytes()).into_owned()));
        }
    }
    Ok(())
}

/// With a control token set, the request must carry `Authorization: Bearer <token>`.
pub(super) fn authorize(request: &HttpRequest, state: &ControlState) -> Result<(), ApiError> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| v.split_at_checked(7))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|(_, credentials)| credentials.trim_ascii());
    match presented {
        Some(candidate) if token.matches(candidate) => Ok(()),
        Some(_) => Err(ApiError::TokenRejected),
        None => Err(ApiError::Unauthorized),
    }
}

/// The body of a state change: the origin and token checks first (nothing
/// is read for a refused request), then at most `limit` bytes.
pub(super) async fn guarded_body(
    request: &HttpRequest,
    payload: web::Payload,
    state: &ControlState,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    refuse_foreign_origin(request, state)?;
    authorize(request, state)?;
    read_body(request, payload, state, limit).await
}

/// The body, at most `limit` bytes, within the request timeout: the HTTP
/// layer bounds the head; this bounds the body (a client sending a byte
/// every few seconds must not hold a handler and its buffer).
pub(super) async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    state: &ControlState,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let timeout = state.server.limits.request_timeout;
    actix_rt::time::timeout(timeout, read_bounded(request, payload, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout { timeout })?
}

async fn read_bounded(request: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::TooLarge { limit };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large);
    }
    // Room for what is announced (within the bound) at once: growing by
    // doubling would hold up to twice the body.
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadJson(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
