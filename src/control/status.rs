//! `GET /status`, `/health`, `/metrics`.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::ControlState;
use crate::json::Health;
use crate::metrics::Stats;

#[derive(Debug, Serialize)]
pub struct Status {
    pub mode: &'static str,
    #[serde(serialize_with = "crate::json::serialize_rate")]
    pub rps: f64,
    pub state: &'static str,
    pub uptime_secs: f64,
    pub target_url: String,
    pub order_ids_buffered: usize,
    /// Requests per second actually sent over the last few seconds.
    pub achieved_rps: f64,
    pub in_flight: usize,
    pub max_in_flight: usize,
    #[serde(serialize_with = "crate::json::serialize_rate")]
    pub max_rps: f64,
    pub mix: String,
    pub stats: Stats,
}

pub async fn status(state: web::Data<ControlState>) -> HttpResponse {
    let engine = &state.engine;
    let plan = engine.plan();
    let settings = engine.settings();
    let uptime = state.started.elapsed().as_secs_f64();
    HttpResponse::Ok().json(Status {
        mode: plan.mode.as_str(),
        rps: plan.rps,
        state: plan.state().as_str(),
        uptime_secs: (uptime * 10.0).round() / 10.0,
        target_url: settings.target.to_string(),
        order_ids_buffered: engine.ids_buffered(),
        achieved_rps: state.sent_rate.rate(),
        in_flight: engine.in_flight(),
        max_in_flight: settings.max_in_flight,
        max_rps: settings.modes.max_rps,
        mix: settings.mix.to_string(),
        stats: state.metrics().stats(),
    })
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health::healthy("traffic-generator"))
}

pub async fn metrics(state: web::Data<ControlState>) -> HttpResponse {
    state.engine.refresh_gauges();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics().render())
}
