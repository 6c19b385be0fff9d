//! What every exported script is made of, independent of the tool: the
//! workload's requests as pieces (literal text and typed holes, each hole
//! with the way its value is written where it sits), the weights to draw
//! an arrival by (requests and journeys, with error injection's share),
//! pools, captures, fallbacks, setup, journeys and data tables.

mod request;

use crate::workload::model::{Model, RequestDef, Role};
use crate::workload::template::{Hole, Item};

use super::journeys::{self, Journey, Table};
use request::{Names, request};

/// The workload, ready to write out.
#[derive(Debug, Clone)]
pub struct Script {
    /// Traffic requests (weighted and error) in file order, then setup
    /// requests, then the journeys' request steps (in journey order).
    pub requests: Vec<Req>,
    pub pools: Vec<Pool>,
    pub journeys: Vec<Journey>,
    pub tables: Vec<Table>,
    /// What an arrival draws and the weights to draw by (error requests
    /// included when a scenario injects errors).
    pub mix: Vec<(Entry, u64)>,
    /// Setup requests, in the order they are sent.
    pub setup: Vec<usize>,
    pub setup_every: Option<u64>,
    /// What the tool-independent translation could not carry, for the
    /// script's header.
    pub notes: Vec<String>,
}

/// What one arrival is: one request, or one instance of a journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Request(usize),
    Journey(usize),
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub size: usize,
    /// Values it holds from the start.
    pub seed: Vec<Item>,
}

#[derive(Debug, Clone)]
pub struct Req {
    /// For a journey step, `journey/step`.
    pub name: String,
    pub role: Role,
    pub method: &'static str,
    /// Path and query; literal parts are already percent-encoded.
    pub target: Vec<Piece>,
    /// The workload's headers (the tool's own `User-Agent` stays unless one is given).
    pub headers: Vec<(String, Vec<Piece>)>,
    pub body: Option<Body>,
    pub content_type: Option<String>,
    /// Success codes as inclusive ranges.
    pub success: Vec<(u16, u16)>,
    pub captures: Vec<Cap>,
    /// Pools read, in order of first use.
    pub needs: Vec<usize>,
    /// Pools whose picked value is taken out once the request is sent (`take`).
    pub takes: Vec<usize>,
    /// Journey variables read, in order of first use (a step only).
    pub vars: Vec<String>,
    pub fallback: Option<usize>,
}

/// Text with holes.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Lit(String),
    Hole(Gen, Ctx),
}

/// A value drawn per request.
#[derive(Debug, Clone, PartialEq)]
pub enum Gen {
    Int {
        min: i64,
        max: i64,
    },
    Choice(Vec<Item>),
    Str(u32),
    Uuid,
    Seq,
    Now,
    UnixTime,
    UnixTimeMs,
    /// The value picked from this pool for the request (`pool` and `take`).
    Pool(usize),
    /// The journey instance's variable.
    Var(String),
    /// A field of the instance's row of table `table` (an index into the script's tables).
    Data {
        table: usize,
        column: String,
    },
    /// An environment variable of the tool's process (`TRAFFICGEN_ENV_…`),
    /// read when the script starts: its value is never in the script.
    Env(String),
    /// The pieces written one after the other, then base64-encoded. Holes
    /// inside are [`Ctx::Text`].
    Base64(Vec<Piece>),
}

impl Gen {
    /// Whether the value is a number (as a whole JSON value it is written bare).
    pub fn numeric(&self) -> Option<bool> {
        match self {
            Gen::Int { .. } | Gen::Seq | Gen::UnixTime | Gen::UnixTimeMs => Some(true),
            Gen::Str(_) | Gen::Uuid | Gen::Now | Gen::Env(_) | Gen::Base64(_) => Some(false),
            // Depends on the item, the captured value or the data file.
            Gen::Choice(_) | Gen::Pool(_) | Gen::Var(_) | Gen::Data { .. } => None,
        }
    }
}

/// How a value is written where its hole sits (as trafficgen writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    /// Path or query value: percent-encoded, all but unreserved characters.
    Url,
    /// In the path, a value of a variable or pool that only `path: true`
    /// captures fill: written as it is when it is a safe path (slashes
    /// kept, a `Location` followed), percent-encoded otherwise.
    PathValue,
    /// As it is (headers, text bodies, strings of a structured JSON body).
    Text,
    /// Inside a string of a JSON text body: JSON-escaped.
    JsonString,
    /// A whole value of a JSON text body: a bare number or a JSON string.
    JsonValue,
}

#[derive(Debug, Clone)]
pub enum Body {
    /// A structured body, sent as compact JSON.
    Json(JsonExpr),
    /// A text body (holes written per their context).
    Text(Vec<Piece>),
}

#[derive(Debug, Clone)]
pub enum JsonExpr {
    /// `null`, `true`, `1.5`: as JSON writes it.
    Literal(String),
    /// A string that is exactly one hole: the value itself (a number stays one).
    Value(Gen),
    /// A string with literal text and holes.
    Text(Vec<Piece>),
    Array(Vec<JsonExpr>),
    Object(Vec<(String, JsonExpr)>),
}

#[derive(Debug, Clone)]
pub struct Cap {
    pub store: Store,
    pub source: CapSource,
    /// A regular expression with one group, applied to the found text:
    /// the group's text is kept (as text).
    pub regex: Option<String>,
    /// Only a safe absolute path is kept.
    pub path: bool,
    pub max_len: usize,
    pub url_safe: bool,
}

/// Where a captured value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    Pool(usize),
    /// The journey instance's variable.
    Var(String),
}

#[derive(Debug, Clone)]
pub enum CapSource {
    /// The pointer's reference tokens.
    Json(Vec<String>),
    /// An answer header, lower case.
    Header(String),
    /// The whole body as text (with a regex).
    Body,
}

impl Cap {
    /// The pool it fills, if it fills one.
    pub fn pool(&self) -> Option<usize> {
        match self.store {
            Store::Pool(p) => Some(p),
            Store::Var(_) => None,
        }
    }
}

impl Script {
    /// The workload's model as a script; `error_share` of the draws go to
    /// its error requests (error injection), and the rest only to the
    /// weighted requests named in `endpoints` when it is given (a job's
    /// focus; the others stay in the script as fallbacks and setup).
    /// `pool_sizes` are the compiled workload's, in the model's pool order.
    /// Tables come without their columns (see [`journeys::tables`]).
    pub fn new(model: &Model, pool_sizes: &[usize], error_share: f64, endpoints: Option<&[String]>) -> Script {
        let defs: Vec<&RequestDef> = model.all_requests().collect();
        let pool_index = |name: &str| model.pools.iter().position(|p| p.name == name).unwrap_or(0);
        let request_index = |name: &str| defs.iter().position(|d| d.name == name);
        let table_index = |name: &str| model.data.iter().position(|t| t.name == name).unwrap_or(0);
        let first_step = model.requests.len() + model.setup.as_ref().map_or(0, |s| s.requests.len());
        let mut requests: Vec<Req> = Vec::with_capacity(defs.len());
        for def in &defs[..first_step.min(defs.len())] {
            let path_value = |hole: &Hole| hole.pool().is_some_and(|p| model.is_path_pool(p));
            let names =
                Names { pool: &pool_index, request: &request_index, table: &table_index, path_value: &path_value };
            requests.push(request(def, &names));
        }
        for journey in &model.journeys {
            for def in journey.requests() {
                let path_value = |hole: &Hole| match hole {
                    Hole::Var(var) => journeys::path_var(journey, var),
                    hole => hole.pool().is_some_and(|p| model.is_path_pool(p)),
                };
                let names =
                    Names { pool: &pool_index, request: &request_index, table: &table_index, path_value: &path_value };
                requests.push(request(def, &names));
            }
        }
        let pools = model
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| Pool {
                name: p.name.clone(),
                size: pool_sizes.get(i).copied().or(p.size).unwrap_or(1).max(1),
                seed: p.values.clone(),
            })
            .collect();
        let journeys = journeys::journeys(model, first_step);
        let tables = journeys::tables(model, &|_| Vec::new());
        let setup: Vec<usize> = (0..requests.len()).filter(|i| requests[*i].role == Role::Setup).collect();
        let mut notes = Vec::new();
        let mix = mix(&requests, &journeys, error_share, endpoints, &mut notes);
        Script {
            requests,
            pools,
            journeys,
            tables,
            mix,
            setup,
            setup_every: model.setup.as_ref().and_then(|s| s.every_secs),
            notes,
        }
    }

    /// Sum of the mix's weights.
    pub fn total_weight(&self) -> u64 {
        self.mix.iter().map(|(_, w)| w).sum()
    }

    /// The share of the arrivals that draw `entry` (0 when never drawn).
    pub fn entry_share(&self, entry: Entry) -> f64 {
        let total = self.total_weight();
        let weight: u64 = self.mix.iter().filter(|(e, _)| *e == entry).map(|(_, w)| w).sum();
        if total == 0 { 0.0 } else { weight as f64 / total as f64 }
    }

    /// How often request `index` is sent per arrival: its share of the
    /// draws, or for a journey step its journey's (0 when never drawn).
    pub fn share(&self, index: usize) -> f64 {
        match self.journey_of(index) {
            Some(j) => self.entry_share(Entry::Journey(j)),
            None => self.entry_share(Entry::Request(index)),
        }
    }

    /// Requests sent per arrival, on average, when every step goes.
    pub fn sends_per_arrival(&self) -> f64 {
        let total = self.total_weight();
        if total == 0 {
            return 1.0;
        }
        let sends: u64 = self
            .mix
            .iter()
            .map(|(e, w)| match e {
                Entry::Request(_) => *w,
                Entry::Journey(j) => w * self.journeys[*j].sends() as u64,
            })
            .sum();
        sends as f64 / total as f64
    }

    /// The journey whose step request `index` is.
    pub fn journey_of(&self, index: usize) -> Option<usize> {
        self.journeys
            .iter()
            .position(|j| j.steps.iter().any(|s| matches!(s, journeys::Step::Send { req, .. } if *req == index)))
    }

    /// Index of the request named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.requests.iter().position(|r| r.name == name)
    }

    /// Every hole of every request, with where it sits (a whole value of a
    /// structured JSON body counts as text; the holes inside a `base64`
    /// follow it).
    pub fn holes(&self) -> Vec<(&Gen, Ctx)> {
        fn from_pieces<'a>(pieces: &'a [Piece], out: &mut Vec<(&'a Gen, Ctx)>) {
            for piece in pieces {
                if let Piece::Hole(g, ctx) = piece {
                    from_gen(g, *ctx, out);
                }
            }
        }
        fn from_gen<'a>(g: &'a Gen, ctx: Ctx, out: &mut Vec<(&'a Gen, Ctx)>) {
            out.push((g, ctx));
            if let Gen::Base64(inner) = g {
                from_pieces(inner, out);
            }
        }
        fn from_json<'a>(j: &'a JsonExpr, out: &mut Vec<(&'a Gen, Ctx)>) {
            match j {
                JsonExpr::Literal(_) => {}
                JsonExpr::Value(g) => from_gen(g, Ctx::Text, out),
                JsonExpr::Text(p) => from_pieces(p, out),
                JsonExpr::Array(items) => items.iter().for_each(|i| from_json(i, out)),
                JsonExpr::Object(entries) => entries.iter().for_each(|(_, v)| from_json(v, out)),
            }
        }
        let mut out = Vec::new();
        for req in &self.requests {
            from_pieces(&req.target, &mut out);
            for (_, value) in &req.headers {
                from_pieces(value, &mut out);
            }
            match &req.body {
                Some(Body::Json(j)) => from_json(j, &mut out),
                Some(Body::Text(p)) => from_pieces(p, &mut out),
                None => {}
            }
        }
        out
    }

    /// Whether any hole of any request is one that `f` picks.
    pub fn uses(&self, f: impl Fn(&Gen) -> bool) -> bool {
        self.holes().iter().any(|(g, _)| f(g))
    }

    /// Requests that capture into pool `pool`, in order.
    pub fn fillers(&self, pool: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.requests.len()).filter(move |i| self.requests[*i].captures.iter().any(|c| c.pool() == Some(pool)))
    }

    /// Every capture with a regex.
    pub fn regexes(&self) -> impl Iterator<Item = &str> {
        self.requests.iter().flat_map(|r| &r.captures).filter_map(|c| c.regex.as_deref())
    }
}

/// Weights, and error requests' when a share of the traffic goes to them:
/// with weights `w` (total `W`, requests and journeys), `k` error requests
/// and a share `p/q`, each weight becomes `w·(q−p)·k` and each error
/// request gets `W·p`, so error requests get exactly `p/q` of the draws
/// (trafficgen draws them first, then the rest as usual). Reduced by their
/// common divisor so they stay readable. With `endpoints`, only those
/// requests are drawn, no journey (as a job's focus).
fn mix(
    requests: &[Req],
    journeys: &[Journey],
    error_share: f64,
    endpoints: Option<&[String]>,
    notes: &mut Vec<String>,
) -> Vec<(Entry, u64)> {
    let chosen = |r: &Req| endpoints.is_none_or(|names| names.contains(&r.name));
    let mut weighted: Vec<(Entry, u64)> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.role {
            Role::Weighted(w) if w > 0 && chosen(r) => Some((Entry::Request(i), u64::from(w))),
            _ => None,
        })
        .collect();
    if endpoints.is_none() {
        weighted.extend(
            journeys
                .iter()
                .enumerate()
                .filter(|(_, j)| j.weight > 0)
                .map(|(i, j)| (Entry::Journey(i), u64::from(j.weight))),
        );
    }
    if weighted.is_empty() {
        // As trafficgen's own focus: names that match nothing draw from all.
        weighted = mix(requests, journeys, 0.0, None, &mut Vec::new());
    } else if endpoints.is_some() {
        let names: Vec<&str> = weighted
            .iter()
            .filter_map(|(e, _)| match e {
                Entry::Request(i) => Some(requests[*i].name.as_str()),
                Entry::Journey(_) => None,
            })
            .collect();
        let journeys_left_out = if journeys.is_empty() { "" } else { " and no journey" };
        notes.push(format!(
            "Only {} {} drawn by weight (the job's endpoints){journeys_left_out}; the workload's other requests are here as fallbacks and setup.",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" }
        ));
    }
    let errors: Vec<usize> = (0..requests.len()).filter(|i| requests[*i].role == Role::Error).collect();
    if error_share <= 0.0 || !error_share.is_finite() {
        return weighted;
    }
    if errors.is_empty() {
        notes.push(format!(
            "This scenario sends {}% of its requests to the workload's error requests (`error: true`); this workload has none, so its traffic is the normal mix.",
            super::text::num(error_share * 100.0)
        ));
        return weighted;
    }
    // The share as a fraction p/q (thousandths are plenty).
    let q: u64 = 1000;
    let p = ((error_share.min(1.0) * q as f64).round() as u64).clamp(1, q);
    let total: u64 = weighted.iter().map(|(_, w)| w).sum();
    let k = errors.len() as u64;
    let mut mix: Vec<(Entry, u64)> = weighted.iter().map(|(e, w)| (*e, w * (q - p) * k)).collect();
    mix.extend(errors.iter().map(|i| (Entry::Request(*i), total * p)));
    mix.retain(|(_, w)| *w > 0);
    let divisor = mix.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    for (_, w) in &mut mix {
        *w /= divisor;
    }
    mix.sort_by_key(|(e, _)| match e {
        Entry::Request(i) => (0, *i),
        Entry::Journey(j) => (1, *j),
    });
    mix
}

/// The greatest common divisor (0 with 0 is 0): weights over it are the
/// smallest whole numbers in the same proportions.
pub(super) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::model::StatusSet;
    use crate::workload::{OrderWeights, orders_model};
    use request::ranges;

    #[test]
    fn the_built_in_workload_becomes_pieces() {
        let script = Script::new(&orders_model(OrderWeights::default()), &[50], 0.0, None);
        let names: Vec<&str> = script.requests.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["create_order", "list_orders", "get_order", "order_error"]);
        assert_eq!(script.mix, [(Entry::Request(0), 60), (Entry::Request(1), 25), (Entry::Request(2), 15)]);
        let get = &script.requests[2];
        assert_eq!(get.target, [Piece::Lit("/orders/".into()), Piece::Hole(Gen::Pool(0), Ctx::Url)]);
        assert_eq!(get.fallback, Some(0));
        assert_eq!(get.needs, [0]);
        assert_eq!(script.requests[3].target, [Piece::Lit("/orders/error?rate=0.5".into())]);
        assert_eq!(script.requests[0].success, [(200, 299)]);
        assert!(matches!(&script.requests[0].captures[0].source, CapSource::Json(t) if t == &["id"]));
        assert_eq!(script.pools[0].size, 50);
    }

    #[test]
    fn error_injection_gives_error_requests_their_exact_share() {
        let script = Script::new(&orders_model(OrderWeights::default()), &[50], 0.3, None);
        let total = script.total_weight();
        assert_eq!(script.share(3), 0.3, "{:?}", script.mix);
        // The others keep their proportions.
        assert_eq!(script.share(0) / script.share(1), 60.0 / 25.0);
        assert_eq!(script.mix.iter().map(|(_, w)| w).sum::<u64>(), total);
        let expected = [(0, 84), (1, 35), (2, 21), (3, 60)].map(|(i, w)| (Entry::Request(i), w));
        assert_eq!(script.mix, expected);
    }

    #[test]
    fn status_sets_become_ranges() {
        let mut set = StatusSet::success();
        set.insert(404);
        set.insert(201);
        assert_eq!(ranges(&set), [(200, 299), (404, 404)]);
        assert_eq!(ranges(&StatusSet::EMPTY), []);
    }
}
