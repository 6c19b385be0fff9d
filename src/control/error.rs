//! Every control API error becomes `{"error": "..."}` with its status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: an unknown mode name (the message lists the valid ones).
    #[error("{0}")]
    UnknownMode(String),
    /// 400: the body is not JSON at all.
    #[error("{0}")]
    BadJson(String),
    /// 422: well-formed JSON with a wrong or out-of-range value.
    #[error("{0}")]
    Invalid(String),
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no such endpoint: {method} {path}; see GET /status, POST /mode/{{steady,burst,overload,pause,custom}}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}; allowed: {allowed}")]
    MethodNotAllowed { method: String, path: String, allowed: &'static str },
    /// 401: a control token is set and the request did not carry it.
    #[error("this request needs the control token: send Authorization: Bearer <CONTROL_TOKEN>")]
    Unauthorized,
    /// 401: the request carried a token, and not the control token.
    #[error("token rejected: the bearer token sent is not this sidecar's CONTROL_TOKEN")]
    TokenRejected,
    /// 403: a browser page on another origin tried to change state.
    #[error(
        "cross-origin requests may not change state (Origin: {0}); allowed: loopback origins, this server's own IP address, and ALLOWED_ORIGINS"
    )]
    ForeignOrigin(String),
    /// 404: a cluster route on a sidecar that runs alone.
    #[error(
        "this sidecar runs alone: set PEERS (dns:NAME:PORT or static:ADDR:PORT,…) to run it as one of several replicas"
    )]
    NoCluster,
    /// 404: a named thing (a job) that does not exist.
    #[error("{0}")]
    Missing(String),
    /// 409: a job is running already; its id is in the answer.
    #[error("{message}")]
    Conflict { message: String, running_job_id: String },
    /// 503: a bound is reached or the sidecar is stopping (event streams).
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: the heavy lane or the output budget is full
    /// for now (see `super::heavy`, `super::output`).
    #[error("{0}")]
    Busy(String),
    /// 413: an answer would be larger than its bound.
    #[error("{0}")]
    AnswerTooLarge(String),
    /// 408: the body did not arrive in time.
    #[error("the request body did not arrive within {timeout:?} (CONTROL_REQUEST_TIMEOUT_MS)")]
    BodyTimeout { timeout: std::time::Duration },
}

impl From<crate::jobs::JobError> for ApiError {
    fn from(e: crate::jobs::JobError) -> Self {
        use crate::jobs::JobError;
        match e {
            JobError::BadJson(message) => ApiError::BadJson(message),
            JobError::Invalid { .. } => ApiError::Invalid(e.to_string()),
            JobError::Conflict { ref running } => {
                ApiError::Conflict { running_job_id: running.clone(), message: e.to_string() }
            }
            JobError::NotFound(_) => ApiError::Missing(e.to_string()),
        }
    }
}

impl From<crate::state::ConfigChangeError> for ApiError {
    fn from(e: crate::state::ConfigChangeError) -> Self {
        match e {
            crate::state::ConfigChangeError::BadJson(message) => ApiError::BadJson(message),
            crate::state::ConfigChangeError::Invalid { .. } => ApiError::Invalid(e.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnknownMode(_) | ApiError::NotFound { .. } | ApiError::NoCluster | ApiError::Missing(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::AnswerTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::ForeignOrigin(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized | ApiError::TokenRejected => StatusCode::UNAUTHORIZED,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::MethodNotAllowed { allowed, .. } => {
                response.insert_header(("Allow", *allowed));
            }
            ApiError::Unauthorized | ApiError::TokenRejected => {
                response.insert_header(("WWW-Authenticate", r#"Bearer realm="trafficgen""#));
            }
            ApiError::Busy(_) => {
                response.insert_header(("Retry-After", "1"));
            }
            ApiError::Conflict { running_job_id, .. } => {
                return response
                    .json(serde_json::json!({ "error": self.to_string(), "running_job_id": running_job_id }));
            }
            _ => {}
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}
