//! Property test of the control API in process: random bodies, methods and
//! paths never produce a 5xx, every refusal is a JSON error, and only a
//! valid request changes the plan. And the rate arithmetic behind it: no
//! f64 at all, accepted or not, makes the pacer or the clock panic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::App;
use actix_web::test as actix_test;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::Value;
use trafficgen::app::config::{TargetUrl, builtin_workload};
use trafficgen::control::origin::AllowedOrigins;
use trafficgen::control::server::ServerLimits;
use trafficgen::control::{ControlState, ServerInfo, configure};
use trafficgen::engine::mode::{MIN_RPS, Mode, ModeTable, Plan};
use trafficgen::engine::schedule::{Pacer, RateSchedule, send_instant};
use trafficgen::engine::users::UserPause;
use trafficgen::engine::{Engine, EngineSettings};
use trafficgen::observe::metrics::Metrics;
use trafficgen::observe::rate::SentRate;
use trafficgen::workload::mix::Mix;
use trafficgen::workload::{Options, Target};

const MAX_RPS: f64 = 1000.0;

fn control_state() -> ControlState {
    let target = TargetUrl::parse("http://127.0.0.1:9").unwrap();
    let options = Options::new(Target::new(&target), 50);
    let workload = builtin_workload(Mix::default(), &options).unwrap();
    let settings = EngineSettings {
        target,
        initial_mode: Mode::Burst,
        modes: ModeTable {
            steady: 2.0,
            burst: 20.0,
            overload: 100.0,
            max_rps: MAX_RPS,
            max_users: 1000,
            user_pause: UserPause::fixed(1.0),
        },
        jitter: 0.2,
        workload: Arc::new(workload),
        workload_file: None,
        id_buffer_size: 50,
        request_timeout: Duration::from_secs(1),
        max_in_flight: 8,
        max_journeys: 100,
        data_dir: None,
        shutdown_grace: Duration::ZERO,
        client: Default::default(),
        trace: Default::default(),
        memory: None,
    };
    // The engine is never started: no request leaves this test.
    let engine = Engine::new(settings, Arc::new(Metrics::new().unwrap()));
    engine.end_warmup();
    ControlState {
        live: trafficgen::control::live::Live::detached(engine.clone(), None),
        engine,
        started: Instant::now(),
        sent_rate: Arc::new(SentRate::new(Duration::from_secs(10))),
        token: None,
        origins: Arc::new(AllowedOrigins::default()),
        server: Arc::new(ServerInfo::new(
            ServerLimits { max_connections: 16, request_timeout: Duration::from_secs(5) },
            None,
        )),
        cluster: None,
    }
}

/// What a correct server must do with a custom body: the rate, if valid.
fn valid_rate(body: &[u8]) -> Option<f64> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    let rps = object.get("rps")?.as_f64()?;
    (rps.is_finite() && (rps == 0.0 || (MIN_RPS..=MAX_RPS).contains(&rps))).then_some(rps)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("rps|rate|[a-z]{1,4}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn custom_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), 4000..5000),
        any::<f64>().prop_map(|f| format!(r#"{{"rps": {f:?}}}"#).into_bytes()),
        (-330i32..-3).prop_map(|e| format!(r#"{{"rps": 1e{e}}}"#).into_bytes()),
        (-2000i64..3000).prop_map(|n| format!(r#"{{"rps": {n}}}"#).into_bytes()),
        (0.0f64..2000.0).prop_map(|f| format!(r#"{{"rps":{f}}}"#).into_bytes()),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        json_value().prop_map(|v| serde_json::json!({"rps": v}).to_string().into_bytes()),
    ]
}

#[test]
fn random_custom_bodies_never_break_the_api_and_only_valid_ones_switch() {
    let system = actix_rt::System::new();
    let state = control_state();
    let app = system.block_on(actix_test::init_service(App::new().configure(configure(state.clone()))));
    let mut runner = TestRunner::new(Config { cases: 1500, ..Config::default() });
    runner
        .run(&custom_body(), |body| {
            let before = state.engine.plan();
            let request = actix_test::TestRequest::post().uri("/mode/custom").set_payload(body.clone()).to_request();
            let (status, answer) = system.block_on(async {
                let res = actix_test::call_service(&app, request).await;
                (res.status().as_u16(), actix_test::read_body(res).await)
            });
            let answer: Value = serde_json::from_slice(&answer).expect("every answer is JSON");
            match valid_rate(&body) {
                Some(rps) => {
                    prop_assert_eq!(status, 200, "{:?}", answer);
                    prop_assert_eq!(state.engine.plan(), Plan::new(Mode::Custom, rps));
                }
                None => {
                    prop_assert!(
                        [400, 413, 422].contains(&status),
                        "status {} for {:?}",
                        status,
                        String::from_utf8_lossy(&body)
                    );
                    prop_assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
                    prop_assert_eq!(state.engine.plan(), before, "a refused body changed the plan");
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_methods_and_paths_get_4xx_json_and_change_nothing() {
    let system = actix_rt::System::new();
    let state = control_state();
    let app = system.block_on(actix_test::init_service(App::new().configure(configure(state.clone()))));
    let methods = vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
    let strategy = (
        prop::sample::select(methods),
        prop_oneof![
            "/mode/[a-z]{0,10}",
            "/[a-z/]{0,16}",
            "/mode/(steady|burst|custom)/[a-z]{1,4}",
            "/(status|health|metrics|modes)"
        ],
    );
    let mut runner = TestRunner::new(Config { cases: 1000, ..Config::default() });
    runner
        .run(&strategy, |(method, path)| {
            let before = state.engine.plan();
            let known_mode = path.strip_prefix("/mode/").and_then(|m| m.parse::<Mode>().ok());
            let method_obj = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
            let request = actix_test::TestRequest::default().method(method_obj).uri(&path).to_request();
            let (status, answer) = system.block_on(async {
                let res = actix_test::call_service(&app, request).await;
                (res.status().as_u16(), actix_test::read_body(res).await)
            });
            prop_assert!(status < 500, "{} {} -> {}", method, path, status);
            // `/` is the control panel's page.
            let read_only =
                matches!(path.as_str(), "/status" | "/health" | "/metrics" | "/modes" | "/") && method == "GET";
            let switch = method == "POST" && known_mode.is_some_and(|m| m != Mode::Custom);
            if read_only || switch {
                prop_assert_eq!(status, 200, "{} {}", method, path);
            } else {
                prop_assert!((400..500).contains(&status), "{} {} -> {}", method, path, status);
                let answer: Value = serde_json::from_slice(&answer).expect("errors are JSON");
                prop_assert!(answer["error"].is_string());
            }
            if !switch {
                prop_assert_eq!(state.engine.plan(), before, "{} {} changed the plan", method, path);
            }
            Ok(())
        })
        .unwrap();
}

/// Every value an f64 can take (NaN, infinities, subnormals, the extremes)
/// as a rate, a jitter and a clock reading: the pacer and the conversion to
/// a send instant return, and never panic. Before, `{"rps": 1e-20}` was
/// accepted and killed the engine (`Duration::from_secs_f64` overflowed).
#[test]
fn rate_arithmetic_never_panics_over_the_whole_f64_range() {
    let modes = ModeTable {
        steady: 2.0,
        burst: 20.0,
        overload: 100.0,
        max_rps: f64::MAX,
        max_users: 1000,
        user_pause: UserPause::fixed(1.0),
    };
    let anchor = Instant::now();
    let strategy = (any::<f64>(), any::<f64>(), any::<f64>(), any::<f64>(), 1u64..8, any::<u64>(), any::<u64>());
    let mut runner = TestRunner::new(Config { cases: 20_000, ..Config::default() });
    runner
        .run(&strategy, |(rps, jitter, now, cutoff, stride, offset, seed)| {
            let mut rng = SmallRng::seed_from_u64(seed);
            let schedule = RateSchedule::constant(rps);
            let _ = (schedule.rate_at(now), schedule.position_at(now), schedule.time_of(now));
            for mut pacer in [
                Pacer::new(schedule.clone(), jitter, &mut rng),
                Pacer::sharded(schedule, jitter, stride, offset, &mut rng),
            ] {
                let _ = Pacer::turn_limit(pacer.rate_at(now), 0.001);
                let _ = pacer.skip_before(cutoff, &mut rng);
                for _ in 0..4 {
                    let _ = pacer.pop_due(now, &mut rng);
                }
                if let Some(t) = pacer.next_send_time() {
                    let _ = send_instant(anchor, t);
                }
            }
            let _ = send_instant(anchor, now);
            // What the API accepts goes through the same path the engine takes.
            if let Ok(plan) = modes.custom_plan(rps) {
                prop_assert!(rps == 0.0 || rps >= MIN_RPS, "accepted {}", rps);
                if let Some(schedule) = plan.schedule() {
                    let mut pacer = Pacer::new(schedule, jitter, &mut rng);
                    prop_assert_eq!(pacer.pop_due(0.0, &mut rng), Some(0.0), "the first request leaves at once");
                    let next = pacer.next_send_time().and_then(|t| send_instant(anchor, t));
                    prop_assert!(next.is_some_and(|at| at >= anchor), "the second is due at a time the clock holds");
                }
            }
            Ok(())
        })
        .unwrap();
}
