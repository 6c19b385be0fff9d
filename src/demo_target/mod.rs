//! `trafficgen demo-target`: a small in-memory API to aim at — orders,
//! users, a login and a route behind it, and an error route — with optional
//! injected latency and errors. Everything it keeps is bounded.

mod arrivals;
mod auth;
mod spans;
mod store;
mod users;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use parking_lot::Mutex;
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;

use crate::base::otlp::{Exporter, SpanExport};

pub use auth::TokenStore;
pub use store::{Order, OrderStore};
pub use users::{User, UserStore};

/// Longest delay a `delay_ms` query may ask for.
pub const MAX_DELAY_MS: u64 = 10_000;

/// The routes counted in `demo_target_requests_total`: a fixed set.
pub const ROUTES: [&str; 11] = [
    "create_order",
    "list_orders",
    "get_order",
    "error",
    "create_user",
    "list_users",
    "get_user",
    "update_user",
    "delete_user",
    "login",
    "account",
];

/// Validated demo-target settings.
#[derive(Debug, Clone)]
pub struct DemoTargetSettings {
    pub listen: SocketAddr,
    pub latency: Duration,
    pub error_rate: f64,
    pub max_orders: usize,
    pub max_users: usize,
    pub workers: usize,
    /// Server spans over OTLP, continuing the callers' traces; `None`: none.
    pub spans: Option<SpanExport>,
    /// `POST /login` answers 503 for this long after start.
    pub login_fail: Duration,
    /// How long a login token lives.
    pub token_ttl: Duration,
}

impl Default for DemoTargetSettings {
    fn default() -> Self {
        DemoTargetSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::ZERO,
            error_rate: 0.0,
            max_orders: 10_000,
            max_users: 10_000,
            workers: 1,
            spans: None,
            login_fail: Duration::ZERO,
            token_ttl: auth::TOKEN_TTL,
        }
    }
}

struct DemoState {
    arrivals: Mutex<arrivals::Arrivals>,
    store: Mutex<OrderStore>,
    users: Mutex<UserStore>,
    tokens: Mutex<TokenStore>,
    logins: Mutex<auth::LoginCounts>,
    /// Logins are refused (503) until then.
    login_from: std::time::Instant,
    token_ttl: Duration,
    latency: Duration,
    error_rate: f64,
    registry: Registry,
    requests: IntCounterVec,
    orders_stored: IntGauge,
    users_stored: IntGauge,
    tokens_stored: IntGauge,
    /// Server spans, when they are exported.
    spans: Option<spans::ServerSpans>,
}

/// A running demo target.
pub struct DemoTarget {
    pub server: Server,
    pub addr: SocketAddr,
    /// The span exporter, to flush when the server has stopped.
    pub spans: Option<Exporter>,
}

impl DemoTarget {
    /// Binds (port 0 picks a free one) and starts serving; the caller
    /// spawns or awaits `server`.
    pub fn start(settings: &DemoTargetSettings) -> anyhow::Result<DemoTarget> {
        let listener = TcpListener::bind(settings.listen)
            .with_context(|| format!("demo target cannot listen on {}", settings.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut state = DemoState::new(settings)?;
        let exporter = match &settings.spans {
            Some(export) => {
                let (spans, exporter) = spans::ServerSpans::start(export, &state.registry, addr.port())?;
                state.spans = Some(spans);
                Some(exporter)
            }
            None => None,
        };
        let state = web::Data::new(state);
        let server = HttpServer::new(move || {
            let arrivals = state.clone();
            App::new()
                .app_data(state.clone())
                .wrap_fn(move |req, srv| {
                    // Every API request, as it arrives (not health, metrics or these stats).
                    let path = req.path();
                    let api = !(path == "/health"
                        || path == "/metrics"
                        || path == "/openapi.json"
                        || path.starts_with("/stats/")
                        || path.starts_with("/admin/"));
                    if api {
                        arrivals.arrivals.lock().record(std::time::Instant::now());
                    }
                    let begun = arrivals.spans.as_ref().filter(|_| api).and_then(|spans| spans.begin(&req));
                    let traced = begun.map(|begun| (begun, arrivals.clone()));
                    let answer = actix_service::Service::call(srv, req);
                    async move {
                        let res = answer.await?;
                        if let Some((begun, state)) = traced
                            && let Some(spans) = &state.spans
                        {
                            spans.end(begun, &res);
                        }
                        Ok(res)
                    }
                })
                .configure(routes)
        })
        .workers(settings.workers)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        Ok(DemoTarget { server, addr, spans: exporter })
    }
}

/// `trafficgen demo-target`: serve until SIGTERM/SIGINT.
pub async fn run(settings: DemoTargetSettings) -> anyhow::Result<()> {
    let target = DemoTarget::start(&settings)?;
    log::info!(addr:% = target.addr, port = target.addr.port(), latency_ms = settings.latency.as_millis() as u64, error_rate = settings.error_rate,
        login_fail_secs = settings.login_fail.as_secs(), token_ttl_secs = settings.token_ttl.as_secs();
        "demo target listening on {}", target.addr);
    if let Some(spans) = &settings.spans {
        log::info!(endpoint = spans.export.endpoint.url().as_str(), service_name = spans.export.service_name();
            "exporting server spans over OTLP");
    }
    let handle = target.server.handle();
    actix_rt::spawn(target.server);
    crate::base::signal::shutdown_signal().await;
    handle.stop(true).await;
    if let Some(exporter) = target.spans {
        // What the last requests left in the queue, within a second.
        exporter.shutdown(std::time::Duration::from_secs(1));
    }
    log::info!("demo target stopped");
    Ok(())
}

impl DemoState {
    fn new(settings: &DemoTargetSettings) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("demo_target_requests_total", "API requests answered, by route and HTTP status"),
            &["route", "code"],
        )?;
        let orders_stored = IntGauge::new("demo_target_orders_stored", "Orders currently kept in memory")?;
        let users_stored = IntGauge::new("demo_target_users_stored", "Users currently kept in memory")?;
        let tokens_stored = IntGauge::new("demo_target_tokens_stored", "Login tokens currently kept in memory")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(orders_stored.clone()))?;
        registry.register(Box::new(users_stored.clone()))?;
        registry.register(Box::new(tokens_stored.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(DemoState {
            arrivals: Mutex::new(arrivals::Arrivals::new(std::time::Instant::now())),
            store: Mutex::new(OrderStore::new(settings.max_orders)),
            users: Mutex::new(UserStore::new(settings.max_users)),
            tokens: Mutex::new(TokenStore::new(auth::MAX_TOKENS, settings.token_ttl)),
            logins: Mutex::new(auth::LoginCounts::default()),
            login_from: std::time::Instant::now() + settings.login_fail,
            token_ttl: settings.token_ttl,
            latency: settings.latency,
            error_rate: settings.error_rate,
            registry,
            requests,
            orders_stored,
            users_stored,
            tokens_stored,
            spans: None,
        })
    }

    /// Counts the answer under its route and returns it.
    fn counted(&self, route: &str, response: HttpResponse) -> HttpResponse {
        self.requests.with_label_values(&[route, response.status().as_str()]).inc();
        response
    }

    /// Injected delay (`DEMO_LATENCY_MS` plus the request's `delay_ms`),
    /// then maybe an injected failure; a bad `delay_ms` is a 400.
    async fn faults(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let delay = match requested_delay(req.query_string()) {
            Ok(delay) => self.latency + delay,
            Err(message) => return Some(HttpResponse::BadRequest().json(json!({"error": message}))),
        };
        if !delay.is_zero() {
            actix_rt::time::sleep(delay).await;
        }
        (self.error_rate > 0.0 && rand::rng().random_bool(self.error_rate))
            .then(|| HttpResponse::InternalServerError().json(json!({"error": "injected failure"})))
    }
}

/// The value of `name` in a query string (not percent-decoded: the
/// parameters read here are numbers).
fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// `?delay_ms=N`: a slow answer on request, bounded.
fn requested_delay(query: &str) -> Result<Duration, String> {
    match query_param(query, "delay_ms") {
        None => Ok(Duration::ZERO),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= MAX_DELAY_MS)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("delay_ms must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}")),
    }
}

/// A JSON request body: 400 if it is not JSON, 422 if it is JSON of the
/// wrong shape; `shape` says what is expected.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, Box<HttpResponse>> {
    serde_json::from_slice::<T>(body).map_err(|e| {
        let error = json!({"error": format!("body must be {shape}: {e}")});
        Box::new(match e.classify() {
            serde_json::error::Category::Data => HttpResponse::UnprocessableEntity().json(error),
            _ => HttpResponse::BadRequest().json(error),
        })
    })
}

/// `GET /stats/arrivals`: API requests per 100 ms over the last minute,
/// oldest first, the last bucket being the current one.
async fn arrival_counts(state: web::Data<DemoState>) -> HttpResponse {
    let counts = state.arrivals.lock().counts(std::time::Instant::now());
    HttpResponse::Ok().json(json!({"bucket_ms": arrivals::BUCKET.as_millis() as u64, "counts": counts}))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(64 * 1024))
        .route("/orders", web::post().to(create_order))
        .route("/orders", web::get().to(list_orders))
        // Before `/orders/{id}`, which would take `error` for an id.
        .route("/orders/error", web::get().to(error_route))
        .route("/orders/{id}", web::get().to(get_order))
        .route("/users", web::post().to(users::create_user))
        .route("/users", web::get().to(users::list_users))
        .route("/users/error", web::get().to(error_route))
        .route("/users/{id}", web::get().to(users::get_user))
        .route("/users/{id}", web::patch().to(users::update_user))
        .route("/users/{id}", web::delete().to(users::delete_user))
        .route("/login", web::post().to(auth::login))
        .route("/account", web::get().to(auth::account))
        .route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .route("/stats/arrivals", web::get().to(arrival_counts))
        .route("/stats/logins", web::get().to(auth::login_counts))
        .route("/openapi.json", web::get().to(openapi))
        .route("/admin/revoke-tokens", web::post().to(auth::revoke_tokens))
        .default_service(web::to(|| async { HttpResponse::NotFound().json(json!({"error": "no such endpoint"})) }));
}

#[derive(Debug, Deserialize)]
struct NewOrder {
    product_id: u32,
    quantity: u32,
}

async fn create_order(state: web::Data<DemoState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    const ROUTE: &str = "create_order";
    if let Some(failure) = state.faults(&req).await {
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

async fn list_orders(state: web::Data<DemoState>, req: HttpRequest, query: web::Query<ListQuery>) -> HttpResponse {
    const ROUTE: &str = "list_orders";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let limit = query.limit.unwrap_or(20).min(100);
    let orders = state.store.lock().recent(limit);
    state.counted(ROUTE, HttpResponse::Ok().json(orders))
}

async fn get_order(state: web::Data<DemoState>, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    const ROUTE: &str = "get_order";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let found = id.parse::<u64>().ok().and_then(|n| state.store.lock().get(n).cloned());
    let response = match found {
        Some(order) => HttpResponse::Ok().json(order),
        None => HttpResponse::NotFound().json(json!({"error": format!("order {} not found", id.as_str())})),
    };
    state.counted(ROUTE, response)
}

/// Codes the error route answers with.
const ERROR_CODES: [u16; 4] = [500, 502, 503, 504];

/// `GET /orders/error?rate=R` (and `/users/error`): with probability R
/// (default 0.5) one of 500, 502, 503, 504; otherwise 200.
async fn error_route(state: web::Data<DemoState>, req: HttpRequest) -> HttpResponse {
    const ROUTE: &str = "error";
    if let Some(failure) = state.faults(&req).await {
        return state.counted(ROUTE, failure);
    }
    let rate = match query_param(req.query_string(), "rate") {
        None => Ok(0.5),
        Some(v) => v.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or(()),
    };
    let response = match rate {
        Err(()) => HttpResponse::BadRequest().json(json!({"error": "rate must be a fraction from 0 to 1"})),
        Ok(rate) if rand::rng().random_bool(rate) => {
            let code = ERROR_CODES[rand::rng().random_range(0..ERROR_CODES.len())];
            let status = actix_web::http::StatusCode::from_u16(code)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            HttpResponse::build(status).json(json!({"error": "injected failure", "rate": rate}))
        }
        Ok(rate) => HttpResponse::Ok().json(json!({"status": "ok", "rate": rate})),
    };
    state.counted(ROUTE, response)
}

/// What `GET /openapi.json` answers: every route above, described (a test
/// derives a workload from it and runs it, which keeps it true).
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(crate::base::json::Health::healthy("demo-target"))
}

async fn metrics(state: web::Data<DemoState>) -> HttpResponse {
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    state.orders_stored.set(gauge(state.store.lock().len()));
    state.users_stored.set(gauge(state.users.lock().len()));
    state.tokens_stored.set(gauge(state.tokens.lock().len()));
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

    /// Status, headers and JSON body (null if not JSON) of one request.
    macro_rules! call {
        ($app:expr, $req:expr) => {{
            let res = test::call_service(&$app, $req.to_request()).await;
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let body = test::read_body(res).await;
            (status, headers, serde_json::from_slice::<serde_json::Value>(&body).unwrap_or(serde_json::Value::Null))
        }};
    }

    #[actix_web::test]
    async fn users_are_created_listed_read_and_patched() {
        let state = app_state(0.0);
        let app = test::init_service(App::new().app_data(state.clone()).configure(routes)).await;
        let post = |body: &'static str| test::TestRequest::post().uri("/users").set_payload(body);
        let (status, headers, user) = call!(app, post(r#"{"name":"ann","age":30}"#));
        assert_eq!(status, 201, "{user}");
        let id = user["id"].as_u64().unwrap();
        assert_eq!(headers.get("location").unwrap(), &format!("/users/{id}"));
        assert_eq!(user["status"], "active");
        call!(app, post(r#"{"name":"bob"}"#));

        let patch = |uri: String, body: &'static str| test::TestRequest::patch().uri(&uri).set_payload(body);
        let (status, _, patched) = call!(app, patch(format!("/users/{id}"), r#"{"age":31,"status":"away"}"#));
        assert_eq!((status, patched["age"].as_u64(), patched["name"].as_str()), (200, Some(31), Some("ann")));
        let (status, _, read) = call!(app, test::TestRequest::get().uri(&format!("/users/{id}")));
        assert_eq!((status, read["status"].as_str()), (200, Some("away")));
        let (_, _, list) = call!(app, test::TestRequest::get().uri("/users?limit=1"));
        assert_eq!(list.as_array().map(|l| l[0]["name"].clone()), Some("bob".into()), "newest first");

        for (req, expected) in [
            (patch("/users/999".into(), r#"{"age":1}"#), 404),
            (patch(format!("/users/{id}"), r#"{"colour":"red"}"#), 422),
            (patch(format!("/users/{id}"), r#"{"age":200}"#), 422),
            (patch(format!("/users/{id}"), "not json"), 400),
            (post(r#"{"age":3}"#), 422),
            (post(r#"{"name":""}"#), 422),
            (test::TestRequest::get().uri("/users/abc"), 404),
        ] {
            let (status, _, body) = call!(app, req);
            assert_eq!(status, expected, "{body}");
            assert!(body["error"].is_string(), "{body}");
        }
        assert_eq!(state.requests.with_label_values(&["update_user", "200"]).get(), 1);
        assert_eq!(state.requests.with_label_values(&["create_user", "201"]).get(), 2);
    }

    #[actix_web::test]
    async fn a_login_can_fail_while_it_starts_and_tokens_can_be_short_lived_or_revoked() {
        let settings = DemoTargetSettings {
            login_fail: Duration::from_millis(300),
            token_ttl: Duration::from_secs(7),
            ..DemoTargetSettings::default()
        };
        let state = web::Data::new(DemoState::new(&settings).unwrap());
        let app = test::init_service(App::new().app_data(state.clone()).configure(routes)).await;
        let login = || test::TestRequest::post().uri("/login").set_payload(r#"{"username":"ann","password":"demo"}"#);
        let (status, _, body) = call!(app, login());
        assert_eq!(status, 503, "{body}");
        assert!(body["error"].as_str().unwrap().contains("not ready"));
        actix_rt::time::sleep(Duration::from_millis(350)).await;
        let (status, _, issued) = call!(app, login());
        assert_eq!((status, issued["expires_in"].as_u64()), (200, Some(7)), "{issued}");
        let bearer = format!("Bearer {}", issued["token"].as_str().unwrap());
        let account = || test::TestRequest::get().uri("/account").insert_header(("Authorization", bearer.clone()));
        assert_eq!(call!(app, account()).0, 200);
        let (status, _, revoked) = call!(app, test::TestRequest::post().uri("/admin/revoke-tokens"));
        assert_eq!((status, revoked["revoked"].as_u64()), (200, Some(1)));
        assert_eq!(call!(app, account()).0, 401, "a revoked token is refused");
        assert_eq!(state.requests.with_label_values(&["login", "503"]).get(), 1);
        assert_eq!(state.requests.with_label_values(&["account", "401"]).get(), 1);
    }

    #[actix_web::test]
    async fn account_needs_a_token_from_login() {
        let state = app_state(0.0);
        let app = test::init_service(App::new().app_data(state.clone()).configure(routes)).await;
        let account = |auth: Option<&str>| {
            let req = test::TestRequest::get().uri("/account");
            match auth {
                Some(value) => req.insert_header(("Authorization", value.to_string())),
                None => req,
            }
        };
        let (status, headers, body) = call!(app, account(None));
        assert_eq!((status, headers.get("www-authenticate").map(|v| v.to_str().unwrap())), (401, Some("Bearer")));
        assert!(body["error"].as_str().unwrap().contains("POST /login"));
        let login = |body: &'static str| test::TestRequest::post().uri("/login").set_payload(body);
        assert_eq!(call!(app, login(r#"{"username":"ann","password":"nope"}"#)).0, 401);
        assert_eq!(call!(app, login(r#"{"username":"ann"}"#)).0, 422);
        let (status, _, issued) = call!(app, login(r#"{"username":"ann","password":"demo"}"#));
        assert_eq!((status, issued["token_type"].as_str()), (200, Some("Bearer")));
        let token = issued["token"].as_str().unwrap();
        let (status, _, me) = call!(app, account(Some(&format!("Bearer {token}"))));
        assert_eq!((status, me["username"].as_str()), (200, Some("ann")));
        assert_eq!(call!(app, account(Some(&format!("bearer {token}")))).0, 200, "scheme in any case");
        assert_eq!(call!(app, account(Some("Bearer 0123"))).0, 401);
        assert_eq!(call!(app, account(Some(token))).0, 401, "no scheme");
        assert_eq!(state.requests.with_label_values(&["account", "401"]).get(), 3);
    }

    #[actix_web::test]
    async fn users_of_an_account_need_its_token_and_can_be_deleted() {
        let state = app_state(0.0);
        let app = test::init_service(App::new().app_data(state.clone()).configure(routes)).await;
        let login = |name: &'static str| {
            let body = format!(r#"{{"username":"{name}","password":"demo"}}"#);
            test::TestRequest::post().uri("/login").set_payload(body)
        };
        let (_, _, ann) = call!(app, login("ann"));
        let (_, _, bob) = call!(app, login("bob"));
        call!(app, login("ann"));
        let bearer = |v: &serde_json::Value| format!("Bearer {}", v["token"].as_str().unwrap());
        let (ann, bob) = (bearer(&ann), bearer(&bob));
        let create = test::TestRequest::post().uri("/users").insert_header(("Authorization", ann.clone()));
        let (status, _, user) = call!(app, create.set_payload(r#"{"name":"mine"}"#));
        assert_eq!(status, 201);
        let uri = format!("/users/{}", user["id"]);
        let with = |req: test::TestRequest, auth: Option<&str>| match auth {
            Some(a) => req.insert_header(("Authorization", a.to_string())),
            None => req,
        };
        for (auth, expected) in
            [(None, 401), (Some("Bearer nope"), 401), (Some(bob.as_str()), 404), (Some(ann.as_str()), 200)]
        {
            assert_eq!(call!(app, with(test::TestRequest::get().uri(&uri), auth)).0, expected, "{auth:?}");
            let patch = with(test::TestRequest::patch().uri(&uri), auth).set_payload(r#"{"age":3}"#);
            assert_eq!(call!(app, patch).0, expected, "PATCH {auth:?}");
        }
        assert_eq!(call!(app, with(test::TestRequest::delete().uri(&uri), Some(&bob))).0, 404);
        assert_eq!(call!(app, with(test::TestRequest::delete().uri(&uri), Some(&ann))).0, 204);
        assert_eq!(call!(app, with(test::TestRequest::get().uri(&uri), Some(&ann))).0, 404, "gone");
        assert_eq!(call!(app, with(test::TestRequest::delete().uri(&uri), Some(&ann))).0, 404);
        // Users created without a token are anyone's.
        let (_, _, open) = call!(app, test::TestRequest::post().uri("/users").set_payload(r#"{"name":"x"}"#));
        let open_uri = format!("/users/{}", open["id"]);
        assert_eq!(call!(app, with(test::TestRequest::get().uri(&open_uri), Some(&bob))).0, 200);
        assert_eq!(call!(app, test::TestRequest::delete().uri(&open_uri)).0, 204);
        let (_, _, logins) = call!(app, test::TestRequest::get().uri("/stats/logins"));
        assert_eq!((logins["total"].as_u64(), logins["by_user"]["ann"].as_u64()), (Some(3), Some(2)));
        assert_eq!(state.requests.with_label_values(&["delete_user", "204"]).get(), 2);
    }

    #[actix_web::test]
    async fn the_error_route_fails_at_the_rate_asked() {
        let state = app_state(0.0);
        let app = test::init_service(App::new().app_data(state.clone()).configure(routes)).await;
        for _ in 0..20 {
            let (status, _, body) = call!(app, test::TestRequest::get().uri("/orders/error?rate=1"));
            assert!(ERROR_CODES.contains(&status), "{status}");
            assert_eq!(body["error"], "injected failure");
            assert_eq!(call!(app, test::TestRequest::get().uri("/users/error?rate=0")).0, 200);
        }
        let mut failed = 0;
        for _ in 0..400 {
            failed += u32::from(call!(app, test::TestRequest::get().uri("/orders/error")).0 >= 500);
        }
        assert!((140..=260).contains(&failed), "default rate 0.5: {failed} of 400 failed");
        for bad in ["rate=2", "rate=-0.1", "rate=x", "rate=NaN"] {
            assert_eq!(call!(app, test::TestRequest::get().uri(&format!("/orders/error?{bad}"))).0, 400, "{bad}");
        }
        assert_eq!(state.requests.with_label_values(&["error", "200"]).get(), u64::from(20 + 400 - failed));
    }

    #[actix_web::test]
    async fn delay_ms_slows_an_answer_within_bounds() {
        let app = test::init_service(App::new().app_data(app_state(0.0)).configure(routes)).await;
        let started = std::time::Instant::now();
        assert_eq!(call!(app, test::TestRequest::get().uri("/orders?delay_ms=150")).0, 200);
        assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
        for bad in ["delay_ms=10001", "delay_ms=-1", "delay_ms=abc"] {
            let (status, _, body) = call!(app, test::TestRequest::get().uri(&format!("/users?{bad}")));
            assert_eq!(status, 400, "{bad}");
            assert!(body["error"].as_str().unwrap().contains("delay_ms"));
        }
    }

    #[actix_web::test]
    async fn every_counted_route_is_in_the_fixed_set() {
        let state = app_state(0.0);
        let app = test::init_service(App::new().app_data(state.clone()).configure(routes)).await;
        for (method, uri) in [
            ("POST", "/orders"),
            ("GET", "/orders"),
            ("GET", "/orders/1"),
            ("GET", "/orders/error"),
            ("POST", "/users"),
            ("GET", "/users"),
            ("GET", "/users/1"),
            ("PATCH", "/users/1"),
            ("GET", "/users/error"),
            ("POST", "/login"),
            ("GET", "/account"),
            ("GET", "/nowhere"),
            ("DELETE", "/users/1"),
        ] {
            let req = test::TestRequest::default().method(method.parse().unwrap()).uri(uri).set_payload("{}");
            call!(app, req);
        }
        let families = state.registry.gather();
        let requests = families.iter().find(|f| f.name() == "demo_target_requests_total").unwrap();
        let mut routes: Vec<&str> = requests
            .get_metric()
            .iter()
            .flat_map(|m| m.get_label().iter().filter(|l| l.name() == "route").map(|l| l.value()))
            .collect();
        routes.sort_unstable();
        routes.dedup();
        let mut expected = ROUTES.to_vec();
        expected.sort_unstable();
        assert_eq!(routes, expected);
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
