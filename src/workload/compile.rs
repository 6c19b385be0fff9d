//! Compiling a [`Model`] once into what the engine runs: per request, the
//! complete request text as literal byte runs and typed holes (target
//! prefix, `Host` and `User-Agent` baked in), the pools it needs, its
//! fallback, its success codes and captures; a weight table; pool sizes.
//! Nothing here runs per request.

use std::time::Duration;

use super::Target;
use super::escape::{Ctx, encode, json_escape, percent_encode};
use super::model::{Body, CaptureSource, Json, Method, Model, PoolDef, Problem, RequestDef, Role, StatusSet};
use super::template::{Hole, Item, Part, Template};
use super::yaml::Pos;

/// Largest request a workload may render (head and body): bounds every
/// connection buffer that holds one.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// A request of a compiled workload: an index, stable for its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u8);

impl RequestId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A pool of a compiled workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(pub(crate) u8);

impl PoolId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A hole, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fill {
    Int {
        min: i64,
        max: i64,
    },
    /// The items, already written for the hole's context.
    Choice(Vec<Box<[u8]>>),
    Str(u32),
    Uuid,
    Seq,
    Now,
    UnixTime,
    UnixTimeMs,
    Pool(PoolId),
    /// `traceparent`'s ids: 32 hex digits of trace id, `-`, 16 of span id
    /// (random, never all zero; the trace id may be given, see
    /// `RunState::set_trace`).
    TraceIds,
    /// `traceparent`'s flags, `01` or `00`: the given trace's decision, or
    /// this default (`TRACE_SAMPLED`).
    TraceFlags(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Lit(Box<[u8]>),
    Hole(Fill, Ctx),
}

/// Builds a segment list, merging adjacent literal runs.
#[derive(Default)]
struct Segs {
    segs: Vec<Seg>,
    lit: Vec<u8>,
}

impl Segs {
    fn lit(&mut self, bytes: &[u8]) {
        self.lit.extend_from_slice(bytes);
    }

    fn hole(&mut self, fill: Fill, ctx: Ctx) {
        self.flush();
        self.segs.push(Seg::Hole(fill, ctx));
    }

    fn segs(&mut self, segs: &[Seg]) {
        for seg in segs {
            match seg {
                Seg::Lit(bytes) => self.lit(bytes),
                Seg::Hole(fill, ctx) => self.hole(fill.clone(), *ctx),
            }
        }
    }

    fn flush(&mut self) {
        if !self.lit.is_empty() {
            self.segs.push(Seg::Lit(std::mem::take(&mut self.lit).into_boxed_slice()));
        }
    }

    fn finish(mut self) -> Vec<Seg> {
        self.flush();
        self.segs
    }
}

/// A capture, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capture {
    pub pool: PoolId,
    pub source: CaptureSource,
    /// A JSON pointer's reference tokens, unescaped (`/a~1b/0` → `a/b`, `0`).
    pub pointer: Vec<String>,
    pub max_len: usize,
    pub url_safe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledRequest {
    pub name: String,
    pub method: Method,
    pub role: Role,
    /// Path prefix, path and query.
    pub target: Vec<Seg>,
    /// `User-Agent` and the workload's headers, for clients that build
    /// requests themselves.
    pub headers: Vec<(String, Vec<Seg>)>,
    pub content_type: Option<String>,
    pub body: Option<Vec<Seg>>,
    /// The whole request up to the body, or all of it when the body has no
    /// holes (its `Content-Length` is then known).
    pub head: Vec<Seg>,
    /// The body follows `head` and its length is only known once rendered.
    pub dynamic_body: bool,
    /// Pools read, in order of first use: each is picked once per request,
    /// so a value used twice (path and body) is the same value.
    pub needs: Vec<PoolId>,
    pub fallback: Option<RequestId>,
    pub success: StatusSet,
    pub captures: Vec<Capture>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolSpec {
    pub name: String,
    pub size: usize,
    pub seed: Vec<Item>,
}

/// Cumulative weights of the requests drawn by weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Weights {
    pub ends: Vec<u32>,
    pub ids: Vec<RequestId>,
    pub total: u32,
}

impl Weights {
    /// The request a roll in `0..total` lands on.
    pub fn pick(&self, roll: u32) -> RequestId {
        let i = self.ends.partition_point(|end| *end <= roll);
        self.ids[i.min(self.ids.len() - 1)]
    }
}

/// Everything the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compiled {
    /// Traffic requests in file order, then setup requests.
    pub requests: Vec<CompiledRequest>,
    pub weights: Weights,
    pub pools: Vec<PoolSpec>,
    pub setup: Vec<RequestId>,
    pub setup_every: Option<Duration>,
}

pub(crate) fn compile(model: &Model, target: &Target, default_pool_size: usize) -> Result<Compiled, Vec<Problem>> {
    let mut problems = Vec::new();
    let pools: Vec<PoolSpec> = model.pools.iter().map(|p| pool_spec(p, default_pool_size, &mut problems)).collect();
    let pool_id = |name: &str| pools.iter().position(|p| p.name == name).map(|i| PoolId(i as u8));
    let defs: Vec<&RequestDef> = model.all_requests().collect();
    let request_id = |name: &str| model.requests.iter().position(|r| r.name == name).map(|i| RequestId(i as u8));

    let mut requests = Vec::new();
    for def in &defs {
        match request(def, target, &pool_id, &request_id) {
            Ok(r) => requests.push(r),
            Err(p) => problems.push(p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut ends = Vec::new();
    let mut ids = Vec::new();
    let mut total: u32 = 0;
    for (i, r) in requests.iter().enumerate() {
        if let Role::Weighted(w) = r.role
            && w > 0
        {
            total = total.saturating_add(w);
            ends.push(total);
            ids.push(RequestId(i as u8));
        }
    }
    if total == 0 {
        return Err(vec![Problem::new(Pos::new(1, 1), "no request has a weight above 0")]);
    }
    let setup = requests.iter().enumerate().filter(|(_, r)| r.role == Role::Setup).map(|(i, _)| RequestId(i as u8));
    Ok(Compiled {
        setup: setup.collect(),
        setup_every: model.setup.as_ref().and_then(|s| s.every_secs).map(Duration::from_secs),
        requests,
        weights: Weights { ends, ids, total },
        pools,
    })
}

fn pool_spec(def: &PoolDef, default_size: usize, problems: &mut Vec<Problem>) -> PoolSpec {
    let size = def.size.unwrap_or(default_size).max(1);
    if def.values.len() > size {
        problems.push(Problem::new(
            def.pos,
            format!("pool `{}` has {} values but holds {size}", def.name, def.values.len()),
        ));
    }
    PoolSpec { name: def.name.clone(), size, seed: def.values.clone() }
}

fn request(
    def: &RequestDef,
    target: &Target,
    pool_id: &dyn Fn(&str) -> Option<PoolId>,
    request_id: &dyn Fn(&str) -> Option<RequestId>,
) -> Result<CompiledRequest, Problem> {
    // References were checked before; a miss here is a bug, reported as a problem.
    let unknown = |what: &str| Problem::new(def.pos, format!("internal: unresolved {what} in `{}`", def.name));
    let fill = |hole: &Hole, ctx: Ctx| -> Result<Fill, Problem> {
        Ok(match hole {
            Hole::RandomInt { min, max } => Fill::Int { min: *min, max: *max },
            Hole::Choice(items) => Fill::Choice(
                items
                    .iter()
                    .map(|item| {
                        let mut out = Vec::new();
                        encode(ctx, item.text.as_bytes(), item.number, &mut out);
                        out.into_boxed_slice()
                    })
                    .collect(),
            ),
            Hole::RandomString(n) => Fill::Str(*n),
            Hole::Uuid => Fill::Uuid,
            Hole::Seq => Fill::Seq,
            Hole::Now => Fill::Now,
            Hole::UnixTime => Fill::UnixTime,
            Hole::UnixTimeMs => Fill::UnixTimeMs,
            Hole::Pool(name) => Fill::Pool(pool_id(name).ok_or_else(|| unknown("pool"))?),
        })
    };
    // A template whose literal text is written one way and holes another.
    let template =
        |segs: &mut Segs, t: &Template, literal: &dyn Fn(&str, &mut Vec<u8>), ctx: Ctx| -> Result<(), Problem> {
            for part in &t.parts {
                match part {
                    Part::Literal(text) => {
                        let mut bytes = Vec::new();
                        literal(text, &mut bytes);
                        segs.lit(&bytes);
                    }
                    Part::Hole(hole, _) => segs.hole(fill(hole, ctx)?, ctx),
                }
            }
            Ok(())
        };
    let as_is = |text: &str, out: &mut Vec<u8>| out.extend_from_slice(text.as_bytes());
    let percent = |text: &str, out: &mut Vec<u8>| percent_encode(text.as_bytes(), out);

    let mut target_segs = Segs::default();
    target_segs.lit(target.path_prefix.as_bytes());
    template(&mut target_segs, &def.path, &as_is, Ctx::Path)?;
    for (i, (name, value)) in def.query.iter().enumerate() {
        target_segs.lit(if i == 0 { b"?" } else { b"&" });
        percent(name, &mut target_segs.lit);
        target_segs.lit(b"=");
        template(&mut target_segs, value, &percent, Ctx::Query)?;
    }
    let target_segs = target_segs.finish();

    let mut headers = Vec::new();
    if !def.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("user-agent")) {
        headers.push(("User-Agent".to_string(), vec![Seg::Lit(target.user_agent.as_bytes().into())]));
    }
    if let super::TraceHeaders::On { sampled, baggage } = target.trace {
        if !def.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("traceparent")) {
            let value = vec![
                Seg::Lit((*b"00-").into()),
                Seg::Hole(Fill::TraceIds, Ctx::Header),
                Seg::Lit((*b"-").into()),
                Seg::Hole(Fill::TraceFlags(sampled), Ctx::Header),
            ];
            headers.push(("traceparent".to_string(), value));
        }
        let (name, value) = super::SYNTHETIC_HEADER;
        if !def.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            headers.push((name.to_string(), vec![Seg::Lit(value.as_bytes().into())]));
        }
        let (name, value) = super::SYNTHETIC_BAGGAGE;
        if baggage && !def.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            headers.push((name.to_string(), vec![Seg::Lit(value.as_bytes().into())]));
        }
    }
    for (name, value) in &def.headers {
        let mut segs = Segs::default();
        template(&mut segs, value, &as_is, Ctx::Header)?;
        headers.push((name.clone(), segs.finish()));
    }

    let content_type = def.effective_content_type().map(str::to_string);
    let body = match &def.body {
        None => None,
        Some(Body::Json(json)) => {
            let mut segs = Segs::default();
            json_segs(json, &mut segs, &fill)?;
            Some(segs.finish())
        }
        Some(Body::Raw(t)) => {
            let mut segs = Segs::default();
            match content_type.as_deref().map(media_kind) {
                Some(MediaKind::Json) => raw_json_segs(t, &mut segs, &fill)?,
                Some(MediaKind::Form) => template(&mut segs, t, &as_is, Ctx::Query)?,
                _ => template(&mut segs, t, &as_is, Ctx::Raw)?,
            }
            Some(segs.finish())
        }
    };

    let mut head = Segs::default();
    head.lit(def.method.as_str().as_bytes());
    head.lit(b" ");
    head.segs(&target_segs);
    head.lit(b" HTTP/1.1\r\nHost: ");
    head.lit(target.authority.as_bytes());
    head.lit(b"\r\n");
    for (name, value) in &headers {
        head.lit(name.as_bytes());
        head.lit(b": ");
        head.segs(value);
        head.lit(b"\r\n");
    }
    let mut dynamic_body = false;
    match (&body, &content_type) {
        (Some(body), Some(ct)) => {
            head.lit(b"Content-Type: ");
            head.lit(ct.as_bytes());
            head.lit(b"\r\n");
            match literal_only(body) {
                Some(bytes) => {
                    head.lit(format!("Content-Length: {}\r\n\r\n", bytes.len()).as_bytes());
                    head.lit(&bytes);
                }
                None => dynamic_body = true,
            }
        }
        _ => head.lit(b"\r\n"),
    }

    let mut needs: Vec<PoolId> = Vec::new();
    for (hole, _) in def.templates().flat_map(Template::holes) {
        if let Some(name) = hole.pool() {
            let id = pool_id(name).ok_or_else(|| unknown("pool"))?;
            if !needs.contains(&id) {
                needs.push(id);
            }
        }
    }
    let fallback = match &def.fallback {
        Some((name, _)) => Some(request_id(name).ok_or_else(|| unknown("fallback"))?),
        None => None,
    };
    let captures = def
        .captures
        .iter()
        .map(|c| {
            Ok(Capture {
                pool: pool_id(&c.pool).ok_or_else(|| unknown("pool"))?,
                source: c.source.clone(),
                pointer: match &c.source {
                    CaptureSource::Json(p) => pointer_tokens(p),
                    CaptureSource::Header(_) => Vec::new(),
                },
                max_len: c.max_len,
                url_safe: c.url_safe,
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;

    let compiled = CompiledRequest {
        name: def.name.clone(),
        method: def.method,
        role: def.role,
        target: target_segs,
        headers,
        content_type,
        body,
        head: head.finish(),
        dynamic_body,
        needs,
        fallback,
        success: def.success,
        captures,
    };
    let max = compiled.max_bytes();
    if max > MAX_REQUEST_BYTES {
        return Err(Problem::new(
            def.pos,
            format!("`{}` may render to {max} bytes; a request may have at most {MAX_REQUEST_BYTES}", def.name),
        ));
    }
    Ok(compiled)
}

/// A structured body: compact JSON, keys in file order.
fn json_segs(json: &Json, segs: &mut Segs, fill: &dyn Fn(&Hole, Ctx) -> Result<Fill, Problem>) -> Result<(), Problem> {
    match json {
        Json::Null => segs.lit(b"null"),
        Json::Bool(b) => segs.lit(if *b { b"true" } else { b"false" }),
        Json::Number(n) => segs.lit(n.as_bytes()),
        Json::Text(t) => match t.single_hole() {
            // A string that is exactly one hole is the hole's value: a
            // number stays a number.
            Some(hole) => segs.hole(fill(hole, Ctx::JsonValue)?, Ctx::JsonValue),
            None => {
                segs.lit(b"\"");
                for part in &t.parts {
                    match part {
                        Part::Literal(text) => json_escape(text.as_bytes(), &mut segs.lit),
                        Part::Hole(hole, _) => segs.hole(fill(hole, Ctx::JsonString)?, Ctx::JsonString),
                    }
                }
                segs.lit(b"\"");
            }
        },
        Json::Array(items) => {
            segs.lit(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    segs.lit(b",");
                }
                json_segs(item, segs, fill)?;
            }
            segs.lit(b"]");
        }
        Json::Object(entries) => {
            segs.lit(b"{");
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    segs.lit(b",");
                }
                segs.lit(b"\"");
                json_escape(key.as_bytes(), &mut segs.lit);
                segs.lit(b"\":");
                json_segs(value, segs, fill)?;
            }
            segs.lit(b"}");
        }
    }
    Ok(())
}

/// A JSON body written as text: a hole inside a JSON string is escaped,
/// one outside is a whole value (a number, or a quoted string), so no
/// captured value can break the JSON.
fn raw_json_segs(
    t: &Template,
    segs: &mut Segs,
    fill: &dyn Fn(&Hole, Ctx) -> Result<Fill, Problem>,
) -> Result<(), Problem> {
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
                segs.lit(text.as_bytes());
            }
            Part::Hole(hole, _) => {
                let ctx = if in_string { Ctx::JsonString } else { Ctx::JsonValue };
                segs.hole(fill(hole, ctx)?, ctx);
            }
        }
    }
    Ok(())
}

/// RFC 6901: `""` is the whole document; each `/` starts a token, in which
/// `~1` stands for `/` and `~0` for `~`.
pub(crate) fn pointer_tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer.split('/').skip(1).map(|t| t.replace("~1", "/").replace("~0", "~")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Json,
    Form,
    Other,
}

/// `application/json`, `application/merge-patch+json`…: JSON.
pub(crate) fn media_kind(content_type: &str) -> MediaKind {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        MediaKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        MediaKind::Form
    } else {
        MediaKind::Other
    }
}

fn literal_only(segs: &[Seg]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for seg in segs {
        match seg {
            Seg::Lit(bytes) => out.extend_from_slice(bytes),
            Seg::Hole(..) => return None,
        }
    }
    Some(out)
}

impl CompiledRequest {
    /// The most bytes a rendering can take.
    pub fn max_bytes(&self) -> usize {
        // A body without holes is in `head` already (with its length).
        let body = self.body.as_deref().filter(|_| self.dynamic_body).map_or(0, seg_max);
        seg_max(&self.head).saturating_add(body).saturating_add(40)
    }
}

fn seg_max(segs: &[Seg]) -> usize {
    segs.iter()
        .map(|seg| match seg {
            Seg::Lit(bytes) => bytes.len(),
            Seg::Hole(fill, ctx) => {
                let raw = match fill {
                    Fill::Int { .. } | Fill::Seq | Fill::UnixTime | Fill::UnixTimeMs => 20,
                    Fill::Choice(items) => return items.iter().map(|i| i.len()).max().unwrap_or(0),
                    Fill::Str(n) => *n as usize,
                    Fill::Uuid => 36,
                    Fill::TraceIds => 49,
                    Fill::TraceFlags(_) => 2,
                    Fill::Now => 24,
                    Fill::Pool(_) => super::template::MAX_VALUE_BYTES,
                };
                // Worst case of the context's encoding: %XX, or \u00XX plus quotes.
                match ctx {
                    Ctx::Path | Ctx::Query => raw * 3,
                    Ctx::JsonString | Ctx::JsonValue => raw * 6 + 2,
                    Ctx::Header | Ctx::Raw => raw,
                }
            }
        })
        .fold(0usize, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_unescaped() {
        assert_eq!(pointer_tokens(""), Vec::<String>::new());
        assert_eq!(pointer_tokens("/"), [""]);
        assert_eq!(pointer_tokens("/data/0/id"), ["data", "0", "id"]);
        assert_eq!(pointer_tokens("/a~1b/m~0n/~01"), ["a/b", "m~n", "~1"]);
    }

    #[test]
    fn media_kinds() {
        assert_eq!(media_kind("application/json"), MediaKind::Json);
        assert_eq!(media_kind("Application/JSON; charset=utf-8"), MediaKind::Json);
        assert_eq!(media_kind("application/merge-patch+json"), MediaKind::Json);
        assert_eq!(media_kind("application/x-www-form-urlencoded"), MediaKind::Form);
        assert_eq!(media_kind("text/plain"), MediaKind::Other);
    }

    #[test]
    fn weights_land_in_proportion_and_skip_zero() {
        let weights =
            Weights { ends: vec![60, 85, 100], ids: vec![RequestId(0), RequestId(1), RequestId(2)], total: 100 };
        let mut counts = [0; 3];
        for roll in 0..100 {
            counts[weights.pick(roll).index()] += 1;
        }
        assert_eq!(counts, [60, 25, 15]);
    }
}
