//! `/cluster`: what replicas ask each other, and the cluster view.
//!
//! - `GET /cluster`: the cluster as this replica sees it (as in `/status`).
//! - `GET /cluster/member`: who this replica is, its share and versions
//!   (what peers poll; small). Open to anyone; only a signed request (see
//!   [`crate::cluster::auth`]) gets a signed answer and has its asker
//!   header acted on.
//! - `GET /cluster/state`: the replicated document: to a peer's signed
//!   request, signed; to a user, with the control token when one is set,
//!   like exports, since later sections may hold a workload's credentials.
//! - `PUT /cluster/state`: a peer's change, signed, merged and never sent
//!   on. The control token does not do: only replicas put documents.
//!
//! A request that carries a signature that does not hold is refused (401),
//! whatever else it carries. All answer 404 on a sidecar without `PEERS`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::guard::read_body;
use super::guard::{authorize, refuse_foreign_origin};
use super::{ApiError, ControlState};
use crate::cluster::auth::{AUTH_HEADER, AuthError, RequestParts, Stamp};
use crate::cluster::document::Document;
use crate::cluster::{ASKER_HEADER, Cluster, MAX_DOCUMENT_BYTES, Source, clip};

fn cluster(state: &ControlState) -> Result<&Cluster, ApiError> {
    state.cluster.as_ref().ok_or(ApiError::NoCluster)
}

/// A peer's signed request, checked: `Ok(None)` without a signature.
fn peer_stamp(request: &HttpRequest, cluster: &Cluster, body: &[u8]) -> Result<Option<Stamp>, AuthError> {
    let Some(signature) = request.headers().get(AUTH_HEADER) else { return Ok(None) };
    let asker = match request.headers().get(ASKER_HEADER) {
        Some(value) => value.to_str().map_err(|_| AuthError::Malformed)?,
        None => "",
    };
    let target = request.uri().path_and_query().map_or(request.path(), |p| p.as_str());
    let parts = RequestParts { method: request.method().as_str(), target, asker, body };
    cluster.check_peer_request(signature.as_bytes(), &parts).map(Some)
}

/// A signed request that does not hold.
fn refused(error: &AuthError) -> HttpResponse {
    let status = if *error == AuthError::Busy { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::UNAUTHORIZED };
    HttpResponse::build(status)
        .insert_header(("WWW-Authenticate", "TrafficgenPeer"))
        .json(json!({"error": format!("peer authentication failed: {error}")}))
}

/// A 200 answer to a peer's signed request, signed for it.
fn signed(cluster: &Cluster, stamp: Stamp, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((AUTH_HEADER, cluster.sign_answer(stamp, 200, &body)))
        .body(body)
}

fn json_bytes(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub async fn view(state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cluster(&state)?.view()))
}

pub async fn member(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    let cluster = cluster(&state)?;
    match peer_stamp(&request, cluster, b"") {
        Ok(Some(stamp)) => {
            if let Some(asker) = request.headers().get(ASKER_HEADER).and_then(|v| v.to_str().ok()) {
                cluster.asked_by(asker, request.peer_addr().map(|a| a.ip()));
            }
            Ok(signed(cluster, stamp, json_bytes(&cluster.member())))
        }
        // Anyone may read who this replica is; only a replica's ask counts.
        Ok(None) => Ok(HttpResponse::Ok().json(cluster.member())),
        Err(error) => Ok(refused(&error)),
    }
}

pub async fn document(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    let cluster = cluster(&state)?;
    match peer_stamp(&request, cluster, b"") {
        Ok(Some(stamp)) => Ok(signed(cluster, stamp, json_bytes(&cluster.document()))),
        Ok(None) => {
            authorize(&request, &state)?;
            Ok(HttpResponse::Ok().json(cluster.document()))
        }
        Err(error) => Ok(refused(&error)),
    }
}

pub async fn merge(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    let cluster = cluster(&state)?;
    refuse_foreign_origin(&request, &state)?;
    // The form and time of the signature before the body is read; the
    // signature itself covers the body.
    let Some(signature) = request.headers().get(AUTH_HEADER) else { return Ok(refused(&AuthError::Missing)) };
    if let Err(error) = cluster.precheck_peer_request(signature.as_bytes()) {
        return Ok(refused(&error));
    }
    let body = read_body(&request, payload, &state, MAX_DOCUMENT_BYTES).await?;
    let stamp = match peer_stamp(&request, cluster, &body) {
        Ok(Some(stamp)) => stamp,
        Ok(None) => return Ok(refused(&AuthError::Missing)),
        Err(error) => return Ok(refused(&error)),
    };
    let expected = "expected a replicated document as GET /cluster/state gives it";
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadJson(format!("body is not valid JSON ({}); {expected}", clip(&e.to_string()))))?;
    let incoming: Document = serde_json::from_value(value)
        .map_err(|e| ApiError::Invalid(format!("{}; {expected}", clip(&e.to_string()))))?;
    let changed = cluster.merge(incoming, Source::Peer).map_err(|e| ApiError::Invalid(clip(&e.to_string())))?;
    let answer = json!({"applied": changed.names(), "versions": cluster.versions()});
    Ok(signed(cluster, stamp, json_bytes(&answer)))
}
