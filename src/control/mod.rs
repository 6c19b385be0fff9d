//! The control API: switch modes, read status, health and metrics.

mod cluster;
mod config;
mod error;
pub mod events;
mod export;
mod guard;
pub mod heavy;
mod jobs;
pub mod live;
mod mode;
mod openapi;
pub mod origin;
pub mod output;
mod panel;
pub mod rates;
pub mod server;
mod status;
pub mod streams;
mod workload;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpRequest, web};

pub use error::ApiError;
pub use workload::reload_file as reload_workload_file;

use crate::base::descriptors::DescriptorBudget;
use crate::base::token::ControlToken;
use crate::cluster::Cluster;
use crate::engine::Engine;
use crate::observe::metrics::Metrics;
use crate::observe::rate::SentRate;
use origin::AllowedOrigins;
use server::{ConnectionStats, ServerLimits};

/// What every handler can reach.
#[derive(Clone)]
pub struct ControlState {
    pub engine: Engine,
    pub started: Instant,
    pub sent_rate: Arc<SentRate>,
    /// When set, state-changing requests must carry it as a bearer token.
    pub token: Option<ControlToken>,
    /// Browser origins, besides loopback ones, that may change state.
    pub origins: Arc<AllowedOrigins>,
    /// The control server's bounds and live counts, for `/status`.
    pub server: Arc<ServerInfo>,
    /// This sidecar's part among replicas (`PEERS`); `None`: alone.
    pub cluster: Option<Cluster>,
    /// Jobs, timed modes, runtime settings, events (see [`live`]).
    pub live: Arc<live::Live>,
}

/// The control server's bounds and its live connection counts.
#[derive(Debug)]
pub struct ServerInfo {
    pub limits: ServerLimits,
    pub connections: ConnectionStats,
    /// How the open-file limit was shared out at start (absent in tests
    /// that build the API in process).
    pub descriptors: Option<DescriptorBudget>,
    /// Workload checks and exports: one at a time, off this thread.
    pub heavy: heavy::HeavyLane,
    /// Bytes of large answers held for clients that have not read them.
    pub output: Arc<output::OutputBudget>,
    /// Event streams by client address.
    pub streams: streams::StreamShares,
}

impl ServerInfo {
    pub fn new(limits: ServerLimits, descriptors: Option<DescriptorBudget>) -> Self {
        ServerInfo {
            limits,
            connections: ConnectionStats::default(),
            descriptors,
            heavy: heavy::HeavyLane::default(),
            output: Arc::new(output::OutputBudget::default()),
            streams: streams::StreamShares::default(),
        }
    }

    /// How long a request waits for its turn in the heavy lane: half the
    /// request timeout, so the job still has time to answer before the
    /// connection is closed for going that long without one.
    pub fn heavy_wait(&self) -> std::time::Duration {
        self.limits.request_timeout / 2
    }
}

impl ControlState {
    fn metrics(&self) -> &Metrics {
        self.engine.metrics()
    }

    /// The in-flight bound in force (`PUT /config` may have lowered it).
    fn max_in_flight(&self) -> usize {
        self.live.config().map_or(self.engine.settings().max_in_flight, |c| c.max_in_flight)
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
            .service(get_only("/history", status::history))
            .service(get_only("/health", status::health))
            .service(get_only("/metrics", status::metrics))
            .service(get_only("/export/{format}", export::export))
            .service(
                web::resource("/jobs")
                    .route(web::post().to(jobs::start))
                    .route(web::get().to(jobs::list))
                    .route(web::head().to(jobs::list))
                    .default_service(web::to(|r: HttpRequest| not_allowed(r, "GET, HEAD, POST"))),
            )
            .service(get_only("/jobs/{id}", jobs::get))
            .service(post_only("/jobs/{id}/stop", jobs::stop))
            .service(get_only("/jobs/{id}/events", jobs::job_events))
            .service(get_only("/events", jobs::events))
            .service(get_only("/presets", jobs::presets))
            .service(
                web::resource("/config")
                    .route(web::get().to(config::get))
                    .route(web::head().to(config::get))
                    .route(web::put().to(config::put))
                    .default_service(web::to(|r: HttpRequest| not_allowed(r, "GET, HEAD, PUT"))),
            )
            .service(post_only("/config/reset", config::reset))
            .service(get_only("/logs", config::logs))
            .service(get_only("/openapi.json", openapi::document))
            .service(
                web::resource("/workload")
                    .route(web::get().to(workload::show))
                    .route(web::head().to(workload::show))
                    .route(web::put().to(workload::replace))
                    .default_service(web::to(|r: HttpRequest| not_allowed(r, "GET, HEAD, PUT"))),
            )
            .service(get_only("/cluster", cluster::view))
            .service(get_only("/cluster/member", cluster::member))
            .configure(panel::routes)
            .service(
                web::resource("/cluster/state")
                    .route(web::get().to(cluster::document))
                    .route(web::head().to(cluster::document))
                    .route(web::put().to(cluster::merge))
                    .default_service(web::to(|r: HttpRequest| not_allowed(r, "GET, HEAD, PUT"))),
            )
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

fn post_only<F, Args>(path: &'static str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(web::post().to(handler)).default_service(web::to(|r: HttpRequest| not_allowed(r, "POST")))
}

async fn not_allowed(request: HttpRequest, allowed: &'static str) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed { method: request.method().to_string(), path: request.path().to_string(), allowed })
}
