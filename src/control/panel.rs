//! `GET /`: the control panel, one page and its script and style, compiled
//! into the binary (nothing is fetched at run time, so it works offline and
//! in an air-gapped cluster). The page talks to this same server with
//! `fetch`, so it is same-origin and the Origin check needs nothing new.
//!
//! Every answer carries a Content-Security-Policy that allows this origin
//! only (no inline script or style, no other host), and an `ETag` of the
//! content so a browser revalidates cheaply (`no-cache`: a new binary's
//! page is never stale).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::get_only;

const INDEX_HTML: &str = include_str!("panel/index.html");
const PANEL_JS: &str = include_str!("panel/panel.js");
const PANEL_CSS: &str = include_str!("panel/panel.css");
const FAVICON_SVG: &str = include_str!("panel/favicon.svg");

/// Self only: the page loads its own script, style and icon and talks to
/// its own origin; it may not be framed, nor post forms anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file and how it is served.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: u64,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Asset {
        Asset { body, content_type, etag: fnv1a(body.as_bytes()) }
    }
}

const INDEX: Asset = Asset::new(INDEX_HTML, "text/html; charset=utf-8");
const SCRIPT: Asset = Asset::new(PANEL_JS, "text/javascript; charset=utf-8");
const STYLE: Asset = Asset::new(PANEL_CSS, "text/css; charset=utf-8");
const ICON: Asset = Asset::new(FAVICON_SVG, "image/svg+xml");

/// Registers the panel's routes (GET and HEAD; other methods get 405).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/", |r: HttpRequest| async move { serve(&r, &INDEX) }))
        .service(get_only("/panel.js", |r: HttpRequest| async move { serve(&r, &SCRIPT) }))
        .service(get_only("/panel.css", |r: HttpRequest| async move { serve(&r, &STYLE) }))
        .service(get_only("/favicon.svg", |r: HttpRequest| async move { serve(&r, &ICON) }));
}

fn serve(request: &HttpRequest, asset: &Asset) -> HttpResponse {
    let etag = format!("\"{:016x}\"", asset.etag);
    let cached = if_none_match(request, &etag);
    let mut response = if cached { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if cached {
        return response.finish();
    }
    response.content_type(asset.content_type).body(asset.body)
}

/// Whether the browser's cached copy (`If-None-Match`) is this one.
fn if_none_match(request: &HttpRequest, etag: &str) -> bool {
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// FNV-1a, at compile time: a content tag, not a security measure.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test as actix_test};

    #[actix_web::test]
    async fn a_cached_copy_is_answered_304_and_a_stale_one_200() {
        let app = actix_test::init_service(App::new().configure(routes)).await;
        let first = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/panel.js").to_request()).await;
        assert_eq!(first.status(), 200);
        let etag = first.headers().get(header::ETAG).unwrap().to_str().unwrap().to_string();
        let again =
            actix_test::TestRequest::get().uri("/panel.js").insert_header((header::IF_NONE_MATCH, etag.as_str()));
        let again = actix_test::call_service(&app, again.to_request()).await;
        assert_eq!(again.status(), 304);
        assert!(again.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        assert!(actix_test::read_body(again).await.is_empty());
        let stale = actix_test::TestRequest::get().uri("/panel.js").insert_header((header::IF_NONE_MATCH, "\"0\""));
        assert_eq!(actix_test::call_service(&app, stale.to_request()).await.status(), 200);
    }

    #[test]
    fn each_file_has_its_own_tag() {
        let tags = [INDEX.etag, SCRIPT.etag, STYLE.etag, ICON.etag];
        for (i, a) in tags.iter().enumerate() {
            assert!(tags[i + 1..].iter().all(|b| a != b));
        }
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
