//! The two checks every state change passes (and exports, which can hold a
//! workload's credentials): the browser-origin allow-list and the control
//! token.

use actix_web::http::header;
use actix_web::{HttpRequest, web};

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
        _ => Err(ApiError::Unauthorized),
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
    super::mode::read_body(request, payload, state, limit).await
}
