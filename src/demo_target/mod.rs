//! `trafficgen demo-target`: a small in-memory orders API to aim at, with
//! optional injected latency and errors.

mod store;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use parking_lot::Mutex;
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;

use crate::cli::DemoTargetArgs;
use crate::config::ConfigError;
pub use store::{Order, OrderStore};

/// Validated demo-target settings.
#[derive(Debug, Clone)]
pub struct DemoTargetSettings {
    pub listen: SocketAddr,
    pub latency: Duration,
    pub error_rate: f64,
    pub max_orders: usize,
    pub workers: usize,
}

impl Default for DemoTargetSettings {
    fn default() -> Self {
        DemoTargetSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::ZERO,
            error_rate: 0.0,
            max_orders: 10_000,
            workers: 1,
        }
    }
}

impl TryFrom<&DemoTargetArgs> for DemoTargetSettings {
    type Error = ConfigError;

    fn try_from(args: &DemoTargetArgs) -> Result<Self, Self::Error> {
        let bad = |setting, value: String, reason: &str| ConfigError { setting, value, reason: reason.to_string() };
        if !(args.error_rate.is_finite() && (0.0..=1.0).contains(&args.error_rate)) {
            return Err(bad("DEMO_ERROR_RATE", args.error_rate.to_string(), "must be a fraction from 0 to 1"));
        }
        if args.latency_ms > 600_000 {
            return Err(bad("DEMO_LATENCY_MS", args.latency_ms.to_string(), "must be from 0 to 600000"));
        }
        if !(1..=10_000_000).contains(&args.max_orders) {
            return Err(bad("DEMO_MAX_ORDERS", args.max_orders.to_string(), "must be from 1 to 10000000"));
        }
        if !(1..=64).contains(&args.workers) {
            return Err(bad("DEMO_WORKERS", args.workers.to_string(), "must be from 1 to 64"));
        }
        Ok(DemoTargetSettings {
            listen: SocketAddr::new(args.bind, args.port),
            latency: Duration::from_millis(args.latency_ms),
            error_rate: args.error_rate,
            max_orders: args.max_orders,
            workers: args.workers,
        })
    }
}

struct DemoState {
    store: Mutex<OrderStore>,
    latency: Duration,
    error_rate: f64,
    registry: Registry,
    requests: IntCounterVec,
    orders_stored: IntGauge,
}

/// A running demo target.
pub struct DemoTarget {
    pub server: Server,
    pub addr: SocketAddr,
}

impl DemoTarget {
    /// Binds (port 0 picks a free one) and starts serving; the caller
    /// spawns or awaits `server`.
    pub fn start(settings: &DemoTargetSettings) -> anyhow::Result<DemoTarget> {
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("demo target cannot listen on {}", settings.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = web::Data::new(DemoState::new(settings)?);
        let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
            .workers(settings.workers)
            .disable_signals()
            .shutdown_timeout(1)
            .listen(listener)?
            .run();
        Ok(DemoTarget { server, addr })
    }
}

/// `trafficgen demo-target`: serve until SIGTERM/SIGINT.
pub async fn run(settings: DemoTargetSettings) -> anyhow::Result<()> {
    let target = DemoTarget::start(&settings)?;
    log::info!(addr:% = target.addr, port = target.addr.port(), latency_ms = settings.latency.as_millis() as u64, error_rate = settings.error_rate;
        "demo target listening on {}", target.addr);
    let handle = target.server.handle();
    actix_rt::spawn(target.server);
    crate::app::shutdown_signal().await;
    handle.stop(true).await;
    log::info!("demo target stopped");
    Ok(())
}

impl DemoState {
    fn new(settings: &DemoTargetSettings) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("demo_target_requests_total", "Orders API requests answered, by route and HTTP status"),
            &["route", "code"],
        )?;
        let orders_stored = IntGauge::new("demo_target_orders_stored", "Orders currently kept in memory")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(orders_stored.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(DemoState {
            store: Mutex::new(OrderStore::new(settings.max_orders)),
            latency: settings.latency,
            error_rate: settings.error_rate,
            registry,
            requests,
            orders_stored,
        })
    }

    /// Counts the answer under its route and returns it.
    fn counted(&self, route: &str, response: HttpResponse) -> HttpResponse {
        self.requests.with_label_values(&[route, response.status().as_str()]).inc();
        response
    }

    /// Injected delay, then maybe an injected failure.
    async fn faults(&self) -> Option<HttpResponse> {
        if !self.latency.is_zero() {
            actix_rt::time::sleep(self.latency).await;
        }
        (self.error_rate > 0.0 && rand::rng().random_bool(self.error_rate))
            .then(|| HttpResponse::InternalServerError().json(json!({"error": "injected failure"})))
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(64 * 1024))
        .route("/orders", web::post().to(create_order))
        .route("/orders", web::get().to(list_orders))
        .route("/orders/{id}", web::get().to(get_order))
        .route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .default_service(web::to(|| async { HttpResponse::NotFound().json(json!({"error": "no such endpoint"})) }));
}

#[derive(Debug, Deserialize)]
struct NewOrder {
    product_id: u32,
    quantity: u32,
}

async fn create_order(state: web::Data<DemoState>, body: web::Bytes) -> HttpResponse {
    const ROUTE: &str = "create_order";
    if let Some(failure) = state.faults().await {
        return state.counted(ROUTE, failure);
    }
    let response = match serde_json::from_slice::<NewOrder>(&body) {
        Err(e) => HttpResponse::BadRequest()
            .json(json!({"error": format!("body must be {{\"product_id\": N, \"quantity\": N}}: {e}")})),
        Ok(o) if o.product_id == 0 || o.quantity == 0 => {
            HttpResponse::UnprocessableEntity().json(json!({"error": "product_id and quantity must be at least 1"}))
        }
        Ok(o) => {
            let order = state.store.lock().create(o.product_id, o.quantity);
            HttpResponse::Created().json(order)
        }
    };
    state.counted(ROUTE, response)
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list_orders(state: web::Data<DemoState>, query: web::Query<ListQuery>) -> HttpResponse {
    const ROUTE: &str = "list_orders";
    if let Some(failure) = state.faults().await {
        return state.counted(ROUTE, failure);
    }
    let limit = query.limit.unwrap_or(20).min(100);
    let orders = state.store.lock().recent(limit);
    state.counted(ROUTE, HttpResponse::Ok().json(orders))
}

async fn get_order(state: web::Data<DemoState>, id: web::Path<String>) -> HttpResponse {
    const ROUTE: &str = "get_order";
    if let Some(failure) = state.faults().await {
        return state.counted(ROUTE, failure);
    }
    let found = id.parse::<u64>().ok().and_then(|n| state.store.lock().get(n).cloned());
    let response = match found {
        Some(order) => HttpResponse::Ok().json(order),
        None => HttpResponse::NotFound().json(json!({"error": format!("order {} not found", id.as_str())})),
    };
    state.counted(ROUTE, response)
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(crate::json::Health::healthy("demo-target"))
}

async fn metrics(state: web::Data<DemoState>) -> HttpResponse {
    let stored = state.store.lock().len();
    state.orders_stored.set(i64::try_from(stored).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&state.registry.gather(), &mut out) {
        log::error!(error:% = e; "could not encode metrics");
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;

    fn app_state(error_rate: f64) -> web::Data<DemoState> {
        let settings = DemoTargetSettings { error_rate, ..DemoTargetSettings::default() };
        web::Data::new(DemoState::new(&settings).unwrap())
    }

    #[actix_web::test]
    async fn create_then_read_an_order() {
        let app = test::init_service(App::new().app_data(app_state(0.0)).configure(routes)).await;
        let req = test::TestRequest::post().uri("/orders").set_payload(r#"{"product_id":3,"quantity":2}"#).to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 201);
        let order: serde_json::Value = test::read_body_json(res).await;
        assert_eq!(order["status"], "created");
        let id = order["id"].as_u64().unwrap();
        let res = test::call_service(&app, test::TestRequest::get().uri(&format!("/orders/{id}")).to_request()).await;
        assert_eq!(res.status(), 200);
        let res = test::call_service(&app, test::TestRequest::get().uri("/orders/999").to_request()).await;
        assert_eq!(res.status(), 404);
        let res = test::call_service(&app, test::TestRequest::get().uri("/orders/abc").to_request()).await;
        assert_eq!(res.status(), 404);
    }

    #[actix_web::test]
    async fn bad_bodies_are_refused_with_json_errors() {
        let app = test::init_service(App::new().app_data(app_state(0.0)).configure(routes)).await;
        for (body, status) in [("not json", 400), (r#"{"product_id":0,"quantity":1}"#, 422), (r#"{"quantity":1}"#, 400)]
        {
            let req = test::TestRequest::post().uri("/orders").set_payload(body).to_request();
            let res = test::call_service(&app, req).await;
            assert_eq!(res.status(), status, "{body}");
            let v: serde_json::Value = test::read_body_json(res).await;
            assert!(v["error"].is_string());
        }
    }

    #[actix_web::test]
    async fn error_rate_one_fails_every_orders_request_and_counts_it() {
        let state = app_state(1.0);
        let app = test::init_service(App::new().app_data(state.clone()).configure(routes)).await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/orders").to_request()).await;
        assert_eq!(res.status(), 500);
        assert_eq!(state.requests.with_label_values(&["list_orders", "500"]).get(), 1);
    }
}
