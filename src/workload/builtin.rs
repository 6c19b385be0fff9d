//! The built-in orders workload: what the sidecar sends without a workload
//! file, byte for byte the traffic of the orders engine
//! (`examples/workloads/orders.yaml` writes it out).

use super::model::{Body, CaptureDef, CaptureSource, Json, Method, Model, PoolDef, RequestDef, Role, StatusSet};
use super::template::{Hole, Part, Template};
use super::yaml::Pos;
use super::{LoadError, Options, Workload, from_model};

/// The weights of the three orders requests (the `MIX` setting); a weight
/// of 0 leaves a request out of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderWeights {
    pub create_order: u32,
    pub list_orders: u32,
    pub get_order: u32,
}

impl Default for OrderWeights {
    fn default() -> Self {
        OrderWeights { create_order: 60, list_orders: 25, get_order: 15 }
    }
}

/// Names of the built-in requests and pool.
pub const CREATE_ORDER: &str = "create_order";
pub const LIST_ORDERS: &str = "list_orders";
pub const GET_ORDER: &str = "get_order";
pub const ORDER_ERROR: &str = "order_error";
pub const ORDER_IDS: &str = "order_ids";

/// What the built-in workload gives as its source.
pub const BUILTIN_SOURCE: &str = "built-in orders workload";

/// The orders workload as a model, as a file would give it.
pub fn orders_model(weights: OrderWeights) -> Model {
    let request = |name: &str, role, method, path: Template| RequestDef {
        name: name.to_string(),
        pos: Pos::default(),
        role,
        method,
        path,
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
        content_type: None,
        success: StatusSet::success(),
        captures: Vec::new(),
        fallback: None,
        body_pos: Pos::default(),
    };
    let int = |min, max| Json::Text(Template::hole(Hole::RandomInt { min, max }));
    let mut create =
        request(CREATE_ORDER, Role::Weighted(weights.create_order), Method::Post, Template::literal("/orders"));
    create.body = Some(Body::Json(Json::Object(vec![
        ("product_id".to_string(), int(1, 10)),
        ("quantity".to_string(), int(1, 5)),
    ])));
    // The id of a create answer: a number, or a URL-safe string of at most 64.
    create.captures = vec![CaptureDef {
        pool: ORDER_IDS.to_string(),
        var: None,
        source: CaptureSource::Json("/id".to_string()),
        regex: None,
        path: false,
        max_len: 64,
        url_safe: true,
        pos: Pos::default(),
    }];
    let list = request(LIST_ORDERS, Role::Weighted(weights.list_orders), Method::Get, Template::literal("/orders"));
    let mut get = request(
        GET_ORDER,
        Role::Weighted(weights.get_order),
        Method::Get,
        Template {
            parts: vec![
                Part::Literal("/orders/".to_string()),
                Part::Hole(Hole::Pool(ORDER_IDS.to_string()), Pos::default()),
            ],
        },
    );
    get.fallback = Some((CREATE_ORDER.to_string(), Pos::default()));
    let mut error = request(ORDER_ERROR, Role::Error, Method::Get, Template::literal("/orders/error"));
    error.query = vec![("rate".to_string(), Template::literal("0.5"))];
    Model {
        pools: vec![PoolDef { name: ORDER_IDS.to_string(), size: None, values: Vec::new(), pos: Pos::default() }],
        setup: None,
        requests: vec![create, list, get, error],
        journeys: Vec::new(),
        data: Vec::new(),
    }
}

/// The built-in workload, compiled; its pool holds `ID_BUFFER_SIZE` ids
/// (`options.default_pool_size`). Fails only when every weight is 0.
pub fn orders(weights: OrderWeights, options: &Options) -> Result<Workload, LoadError> {
    from_model(BUILTIN_SOURCE, orders_model(weights), options)
}
