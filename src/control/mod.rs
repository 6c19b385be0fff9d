//! The control API: switch modes, read status, health and metrics.

mod error;
mod export;
mod mode;
mod status;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpServer, web};

pub use error::ApiError;

use crate::config::ControlToken;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::rate::SentRate;

/// What every handler can reach.
#[derive(Clone)]
pub struct ControlState {
    pub engine: Engine,
    pub started: Instant,
    pub sent_rate: Arc<SentRate>,
    /// When set, state-changing requests must carry it as a bearer token.
    pub token: Option<ControlToken>,
}

impl ControlState {
    fn metrics(&self) -> &Metrics {
        self.engine.metrics()
    }
}

/// Routes of the control API, for the server and for in-process tests.
pub fn configure(state: ControlState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .service(
                web::resource("/mode/{name}")
                    .route(web::post().to(mode::switch))
                    .default_service(web::to(|r: HttpRequest| not_allowed(r, "POST"))),
            )
            .service(get_only("/modes", mode::list))
            .service(get_only("/status", status::status))
            .service(get_only("/health", status::health))
            .service(get_only("/metrics", status::metrics))
            .service(get_only("/export/{format}", export::export))
            .default_service(web::to(|r: HttpRequest| async move {
                Err::<actix_web::HttpResponse, _>(ApiError::NotFound {
                    method: r.method().to_string(),
                    path: r.path().to_string(),
                })
            }));
    }
}

fn get_only<F, Args>(path: &'static str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|r: HttpRequest| not_allowed(r, "GET, HEAD")))
}

async fn not_allowed(request: HttpRequest, allowed: &'static str) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed { method: request.method().to_string(), path: request.path().to_string(), allowed })
}

/// Starts serving the control API on `listener` (one worker: it is a
/// low-traffic API, and the engine has its own thread).
pub fn serve(listener: TcpListener, state: ControlState) -> std::io::Result<Server> {
    let server = HttpServer::new(move || App::new().configure(configure(state.clone())))
        .workers(1)
        // We take the signals ourselves: the engine must stop first.
        .disable_signals()
        .shutdown_timeout(2)
        .listen(listener)?
        .run();
    Ok(server)
}
