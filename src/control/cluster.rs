//! `/cluster`: what replicas ask each other, and the cluster view.
//!
//! - `GET /cluster`: the cluster as this replica sees it (as in `/status`).
//! - `GET /cluster/member`: who this replica is, its share and versions
//!   (what peers poll; small).
//! - `GET /cluster/state`: the replicated document (peers catching up);
//!   needs the control token when one is set, like exports, since later
//!   sections may hold a workload's credentials.
//! - `PUT /cluster/state`: a peer's change, merged and never sent on.
//!
//! All answer 404 on a sidecar without `PEERS`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::guard::{authorize, guarded_body};
use super::{ApiError, ControlState};
use crate::cluster::document::Document;
use crate::cluster::{ASKER_HEADER, Cluster, MAX_DOCUMENT_BYTES, Source};

fn cluster(state: &ControlState) -> Result<&Cluster, ApiError> {
    state.cluster.as_ref().ok_or(ApiError::NoCluster)
}

pub async fn view(state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cluster(&state)?.view()))
}

pub async fn member(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    let cluster = cluster(&state)?;
    if let Some(asker) = request.headers().get(ASKER_HEADER).and_then(|v| v.to_str().ok()) {
        // Anyone may read this; only a peer with the token may say it leaves.
        let from = request.peer_addr().map(|a| a.ip());
        cluster.asked_by(asker, authorize(&request, &state).is_ok(), from);
    }
    Ok(HttpResponse::Ok().json(cluster.member()))
}

pub async fn document(request: HttpRequest, state: web::Data<ControlState>) -> Result<HttpResponse, ApiError> {
    let cluster = cluster(&state)?;
    authorize(&request, &state)?;
    Ok(HttpResponse::Ok().json(cluster.document()))
}

pub async fn merge(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<ControlState>,
) -> Result<HttpResponse, ApiError> {
    let cluster = cluster(&state)?;
    let body = guarded_body(&request, payload, &state, MAX_DOCUMENT_BYTES).await?;
    let expected = "expected a replicated document as GET /cluster/state gives it";
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadJson(format!("body is not valid JSON ({e}); {expected}")))?;
    let incoming: Document =
        serde_json::from_value(value).map_err(|e| ApiError::Invalid(format!("{e}; {expected}")))?;
    let changed = cluster.merge(incoming, Source::Peer).map_err(|e| ApiError::Invalid(e.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({"applied": changed.names(), "versions": cluster.versions()})))
}
