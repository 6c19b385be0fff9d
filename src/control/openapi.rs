//! `GET /openapi.json`: the OpenAPI 3.1 document of the whole control API,
//! written by hand (src/control/openapi.json) and served as it is.

use actix_web::HttpResponse;

/// The document; a test checks every route of [`super::configure`] is in it.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT)
}
