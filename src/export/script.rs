//! What every exported script is made of, independent of the tool: the
//! workload's requests as pieces (literal text and typed holes, each hole
//! with the way its value is written where it sits), the weights to draw
//! by (with error injection's share), pools, captures, fallbacks and setup.

use crate::workload::escape::percent_encode;
use crate::workload::model::{Body as ModelBody, CaptureSource, Json, Model, RequestDef, Role, StatusSet};
use crate::workload::template::{Hole, Item, Part, Template};

use super::text::pointer_tokens;

/// The workload, ready to write out.
#[derive(Debug, Clone)]
pub struct Script {
    /// Traffic requests (weighted and error) in file order, then setup requests.
    pub requests: Vec<Req>,
    pub pools: Vec<Pool>,
    /// The requests drawn per arrival and their weights (error requests
    /// included when a scenario injects errors).
    pub mix: Vec<(usize, u64)>,
    /// Setup requests, in the order they are sent.
    pub setup: Vec<usize>,
    pub setup_every: Option<u64>,
    /// What the tool-independent translation could not carry, for the
    /// script's header.
    pub notes: Vec<String>,
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
    /// The value picked from this pool for the request.
    Pool(usize),
}

impl Gen {
    /// Whether the value is a number (as a whole JSON value it is written bare).
    pub fn numeric(&self) -> Option<bool> {
        match self {
            Gen::Int { .. } | Gen::Seq | Gen::UnixTime | Gen::UnixTimeMs => Some(true),
            Gen::Str(_) | Gen::Uuid | Gen::Now => Some(false),
            // Depends on the item or the captured value.
            Gen::Choice(_) | Gen::Pool(_) => None,
        }
    }
}

/// How a value is written where its hole sits (as trafficgen writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    /// Path or query value: percent-encoded, all but unreserved characters.
    Url,
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
    pub pool: usize,
    pub source: CapSource,
    pub max_len: usize,
    pub url_safe: bool,
}

#[derive(Debug, Clone)]
pub enum CapSource {
    /// The pointer's reference tokens.
    Json(Vec<String>),
    /// An answer header, lower case.
    Header(String),
}

impl Script {
    /// The workload's model as a script; `error_share` of the draws go to
    /// its error requests (error injection), and the rest only to the
    /// weighted requests named in `endpoints` when it is given (a job's
    /// focus; the others stay in the script as fallbacks and setup).
    /// `pool_sizes` are the compiled workload's, in the model's pool order.
    pub fn new(model: &Model, pool_sizes: &[usize], error_share: f64, endpoints: Option<&[String]>) -> Script {
        let defs: Vec<&RequestDef> = model.all_requests().collect();
        let pool_index = |name: &str| model.pools.iter().position(|p| p.name == name).unwrap_or(0);
        let request_index = |name: &str| defs.iter().position(|d| d.name == name);
        let requests: Vec<Req> = defs.iter().map(|def| request(def, &pool_index, &request_index)).collect();
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
        let setup: Vec<usize> = (0..requests.len()).filter(|i| requests[*i].role == Role::Setup).collect();
        let mut notes = Vec::new();
        let mix = mix(&requests, error_share, endpoints, &mut notes);
        Script { requests, pools, mix, setup, setup_every: model.setup.as_ref().and_then(|s| s.every_secs), notes }
    }

    /// Sum of the mix's weights.
    pub fn total_weight(&self) -> u64 {
        self.mix.iter().map(|(_, w)| w).sum()
    }

    /// The share of the draws that go to request `index` (0 when never drawn).
    pub fn share(&self, index: usize) -> f64 {
        let total = self.total_weight();
        let weight: u64 = self.mix.iter().filter(|(i, _)| *i == index).map(|(_, w)| w).sum();
        if total == 0 { 0.0 } else { weight as f64 / total as f64 }
    }

    /// Index of the request named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.requests.iter().position(|r| r.name == name)
    }

    /// Every hole of every request, with where it sits (a whole value of a
    /// structured JSON body counts as text).
    pub fn holes(&self) -> Vec<(&Gen, Ctx)> {
        fn from_pieces<'a>(pieces: &'a [Piece], out: &mut Vec<(&'a Gen, Ctx)>) {
            for piece in pieces {
                if let Piece::Hole(g, ctx) = piece {
                    out.push((g, *ctx));
                }
            }
        }
        fn from_json<'a>(j: &'a JsonExpr, out: &mut Vec<(&'a Gen, Ctx)>) {
            match j {
                JsonExpr::Literal(_) => {}
                JsonExpr::Value(g) => out.push((g, Ctx::Text)),
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

    /// Requests that capture into pool `pool`, in order.
    pub fn fillers(&self, pool: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.requests.len()).filter(move |i| self.requests[*i].captures.iter().any(|c| c.pool == pool))
    }
}

/// Weights, and error requests' when a share of the traffic goes to them:
/// with weights `w` (total `W`), `k` error requests and a share `p/q`,
/// each weight becomes `w·(q−p)·k` and each error request gets `W·p`, so
/// error requests get exactly `p/q` of the draws. Reduced by their common
/// divisor so they stay readable.
fn mix(requests: &[Req], error_share: f64, endpoints: Option<&[String]>, notes: &mut Vec<String>) -> Vec<(usize, u64)> {
    let chosen = |r: &Req| endpoints.is_none_or(|names| names.contains(&r.name));
    let mut weighted: Vec<(usize, u64)> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r.role {
            Role::Weighted(w) if w > 0 && chosen(r) => Some((i, u64::from(w))),
            _ => None,
        })
        .collect();
    if weighted.is_empty() {
        // As trafficgen's own focus: names that match nothing draw from all.
        weighted = mix(requests, 0.0, None, &mut Vec::new());
    } else if endpoints.is_some() {
        let names: Vec<&str> = weighted.iter().map(|(i, _)| requests[*i].name.as_str()).collect();
        notes.push(format!(
            "Only {} {} drawn by weight (the job's endpoints); the workload's other requests are here as fallbacks and setup.",
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
    let mut mix: Vec<(usize, u64)> = weighted.iter().map(|(i, w)| (*i, w * (q - p) * k)).collect();
    mix.extend(errors.iter().map(|i| (*i, total * p)));
    mix.retain(|(_, w)| *w > 0);
    let divisor = mix.iter().fold(0, |g, (_, w)| gcd(g, *w)).max(1);
    for (_, w) in &mut mix {
        *w /= divisor;
    }
    mix.sort_by_key(|(i, _)| *i);
    mix
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn request(def: &RequestDef, pool_index: &dyn Fn(&str) -> usize, request_index: &dyn Fn(&str) -> Option<usize>) -> Req {
    let drawn = |hole: &Hole| -> Gen {
        match hole {
            Hole::RandomInt { min, max } => Gen::Int { min: *min, max: *max },
            Hole::Choice(items) => Gen::Choice(items.clone()),
            Hole::RandomString(n) => Gen::Str(*n),
            Hole::Uuid => Gen::Uuid,
            Hole::Seq => Gen::Seq,
            Hole::Now => Gen::Now,
            Hole::UnixTime => Gen::UnixTime,
            Hole::UnixTimeMs => Gen::UnixTimeMs,
            Hole::Pool(name) | Hole::Take(name) => Gen::Pool(pool_index(name)),
            // Refused before a script is made (see `not_exported`).
            Hole::Var(_) | Hole::Data { .. } | Hole::Env(_) | Hole::Base64(_) => Gen::Str(1),
        }
    };
    let pieces = |t: &Template, ctx: Ctx, encode_literals: bool| -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        for part in &t.parts {
            match part {
                Part::Literal(text) => {
                    let text = if encode_literals { percent(text) } else { text.clone() };
                    match out.last_mut() {
                        Some(Piece::Lit(prev)) => prev.push_str(&text),
                        _ => out.push(Piece::Lit(text)),
                    }
                }
                Part::Hole(hole, _) => out.push(Piece::Hole(drawn(hole), ctx)),
            }
        }
        out
    };

    // The path's literals are path characters already (checked at load).
    let mut target = pieces(&def.path, Ctx::Url, false);
    for (i, (name, value)) in def.query.iter().enumerate() {
        let lead = format!("{}{}=", if i == 0 { "?" } else { "&" }, percent(name));
        match target.last_mut() {
            Some(Piece::Lit(prev)) => prev.push_str(&lead),
            _ => target.push(Piece::Lit(lead)),
        }
        for piece in pieces(value, Ctx::Url, true) {
            match (target.last_mut(), piece) {
                (Some(Piece::Lit(prev)), Piece::Lit(text)) => prev.push_str(&text),
                (_, piece) => target.push(piece),
            }
        }
    }

    let headers = def.headers.iter().map(|(name, value)| (name.clone(), pieces(value, Ctx::Text, false))).collect();
    let content_type = def.effective_content_type().map(str::to_string);
    let body = match &def.body {
        None => None,
        Some(ModelBody::Json(json)) => Some(Body::Json(json_expr(json, &drawn, &pieces))),
        Some(ModelBody::Raw(t)) => Some(Body::Text(match content_type.as_deref().map(media_kind) {
            Some(Media::Json) => raw_json(t, &drawn),
            Some(Media::Form) => pieces(t, Ctx::Url, false),
            _ => pieces(t, Ctx::Text, false),
        })),
    };
    let mut needs: Vec<usize> = Vec::new();
    for name in def.pools_read() {
        let i = pool_index(name);
        if !needs.contains(&i) {
            needs.push(i);
        }
    }
    let captures = def
        .captures
        .iter()
        .map(|c| Cap {
            pool: pool_index(&c.pool),
            source: match &c.source {
                CaptureSource::Json(pointer) => CapSource::Json(pointer_tokens(pointer)),
                CaptureSource::Header(name) => CapSource::Header(name.to_ascii_lowercase()),
                // Refused before a script is made (see `not_exported`).
                CaptureSource::Body => CapSource::Header(String::new()),
            },
            max_len: c.max_len,
            url_safe: c.url_safe,
        })
        .collect();
    Req {
        name: def.name.clone(),
        role: def.role,
        method: def.method.as_str(),
        target,
        headers,
        body,
        content_type,
        success: ranges(&def.success),
        captures,
        needs,
        fallback: def.fallback.as_ref().and_then(|(name, _)| request_index(name)),
    }
}

fn json_expr(
    json: &Json,
    drawn: &dyn Fn(&Hole) -> Gen,
    pieces: &dyn Fn(&Template, Ctx, bool) -> Vec<Piece>,
) -> JsonExpr {
    match json {
        Json::Null => JsonExpr::Literal("null".into()),
        Json::Bool(b) => JsonExpr::Literal(b.to_string()),
        Json::Number(n) => JsonExpr::Literal(n.clone()),
        Json::Text(t) => match t.single_hole() {
            Some(hole) => JsonExpr::Value(drawn(hole)),
            None => JsonExpr::Text(pieces(t, Ctx::Text, false)),
        },
        Json::Array(items) => JsonExpr::Array(items.iter().map(|i| json_expr(i, drawn, pieces)).collect()),
        Json::Object(entries) => {
            JsonExpr::Object(entries.iter().map(|(k, v)| (k.clone(), json_expr(v, drawn, pieces))).collect())
        }
    }
}

/// A JSON body written as text: a hole inside a JSON string is escaped,
/// one outside a string is a whole value (as trafficgen renders it).
fn raw_json(t: &Template, drawn: &dyn Fn(&Hole) -> Gen) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for part in &t.parts {
        match part {
            Part::Literal(text) => {
                for b in text.bytes() {
                    if in_string {
                        match (escaped, b) {
                            (true, _) => escaped = false,
                            (false, b'\\') => escaped = true,
                            (false, b'"') => in_string = false,
                            _ => {}
                        }
                    } else if b == b'"' {
                        in_string = true;
                    }
                }
                out.push(Piece::Lit(text.clone()));
            }
            Part::Hole(hole, _) => {
                out.push(Piece::Hole(drawn(hole), if in_string { Ctx::JsonString } else { Ctx::JsonValue }))
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Json,
    Form,
    Other,
}

fn media_kind(content_type: &str) -> Media {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Media::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Media::Form
    } else {
        Media::Other
    }
}

fn percent(text: &str) -> String {
    let mut out = Vec::new();
    percent_encode(text.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A status set as inclusive ranges over 100…599.
pub fn ranges(set: &StatusSet) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for code in 100..=599u16 {
        if set.contains(code) {
            match out.last_mut() {
                Some((_, end)) if *end + 1 == code => *end = code,
                _ => out.push((code, code)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{OrderWeights, orders_model};

    #[test]
    fn the_built_in_workload_becomes_pieces() {
        let script = Script::new(&orders_model(OrderWeights::default()), &[50], 0.0, None);
        let names: Vec<&str> = script.requests.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["create_order", "list_orders", "get_order", "order_error"]);
        assert_eq!(script.mix, [(0, 60), (1, 25), (2, 15)]);
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
        assert_eq!(script.mix, [(0, 84), (1, 35), (2, 21), (3, 60)]);
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
