//! Compiling a [`Model`] once into what the engine runs: per request, the
//! complete request text as literal byte runs and typed holes (target
//! prefix, `Host` and `User-Agent` baked in), the pools it needs, its
//! fallback, its success codes and captures; a weight table; pool sizes.
//! Nothing here runs per request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::data::Table;
use super::escape::{Ctx, json_escape, percent_encode};
mod fill;
pub(crate) mod journeys;

use super::model::{
    Body, CaptureSource, Json, Method, Model, OnFailure, PoolDef, Problem, RequestDef, Role, StatusSet, StepDef,
};
use super::template::{Hole, Item, Part, Template};
use super::yaml::Pos;
use super::{Options, Target};
use fill::{Names, fill_of};
use journeys::{CompiledJourney, Draws, Step};

/// Longest value `env(…)` may read.
pub const MAX_ENV_BYTES: usize = 4096;

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
    /// A value taken out of the pool (read like `Pool`, removed once rendered).
    Take(PoolId),
    /// A journey instance's variable, by slot; `path`: it only ever holds
    /// captured paths, written into a path with their slashes.
    Var {
        slot: u8,
        path: bool,
        name: Box<str>,
    },
    /// A field of the instance's row of a table.
    Data {
        table: u8,
        column: u16,
        name: Box<str>,
    },
    /// An environment variable's value, read at load.
    Env(EnvValue),
    /// The segments written raw, then base64-encoded.
    Base64(Box<[Seg]>),
    /// `traceparent`'s ids: 32 hex digits of trace id, `-`, 16 of span id
    /// (random, never all zero; the trace id may be given, see
    /// `RunState::set_trace`).
    TraceIds,
    /// `traceparent`'s flags, `01` or `00`: the given trace's decision, or
    /// this default (`TRACE_SAMPLED`).
    TraceFlags(bool),
}

/// A value read from the environment: its name is shown, its value never.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EnvValue {
    pub name: Box<str>,
    pub value: Box<[u8]>,
}

impl fmt::Debug for EnvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvValue({}: <{} bytes>)", self.name, self.value.len())
    }
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

/// Where a captured value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    Pool(PoolId),
    /// A slot of the journey instance that sent the request.
    Var(u8),
}

/// A capture's regular expression (compared by its pattern).
#[derive(Debug, Clone)]
pub(crate) struct CaptureRegex(pub regex_lite::Regex);

impl PartialEq for CaptureRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for CaptureRegex {}

/// A capture, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capture {
    pub store: Store,
    pub source: CaptureSource,
    pub regex: Option<CaptureRegex>,
    /// Only safe absolute paths are kept.
    pub path: bool,
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
    /// Pools a value is taken out of (`take`), once rendered.
    pub takes: Vec<PoolId>,
    /// Bit per journey variable slot it reads.
    pub vars: u32,
    /// Of those, the slots it reads in a header (where credentials go).
    pub header_vars: u32,
    pub fallback: Option<RequestId>,
    pub success: StatusSet,
    pub captures: Vec<Capture>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolSpec {
    pub name: String,
    pub size: usize,
    pub seed: Vec<Item>,
    /// Filled only by `path: true` captures: its values are safe paths.
    pub path: bool,
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
    /// Traffic requests in file order, then setup requests, then journey
    /// steps (journey by journey).
    pub requests: Vec<CompiledRequest>,
    pub weights: Weights,
    pub pools: Vec<PoolSpec>,
    pub setup: Vec<RequestId>,
    pub setup_every: Option<Duration>,
    /// When the setup is sent again from an answer's own word.
    pub setup_refresh: Option<Refresh>,
    /// Answer codes that call for a new setup run (see `Workload::relogs_setup`).
    pub setup_relogin_on: StatusSet,
    /// The pools setup requests capture into.
    pub setup_pools: Vec<PoolId>,
    pub journeys: Vec<CompiledJourney>,
    /// The draw of an arrival among requests and journeys; `None` without
    /// journeys (an arrival is then a request, drawn as it always was).
    pub arrivals: Option<Draws>,
    pub tables: Vec<Arc<Table>>,
}

/// `every_secs: {json: …, fraction: …}`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refresh {
    /// The setup request whose answer gives the life.
    pub request: RequestId,
    pub pointer: Vec<String>,
    pub fraction: f64,
}

// The fraction is checked at load: a number, never NaN.
impl Eq for Refresh {}

pub(crate) fn compile(model: &Model, options: &Options) -> Result<Compiled, Vec<Problem>> {
    let mut problems = Vec::new();
    let pools: Vec<PoolSpec> = model
        .pools
        .iter()
        .map(|p| {
            let mut spec = pool_spec(p, options.default_pool_size, &mut problems);
            spec.path = model.is_path_pool(&p.name);
            spec
        })
        .collect();
    let tables = super::data::read_tables(model, options, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let defs: Vec<&RequestDef> = model.all_requests().collect();
    let journey_of: Vec<Option<usize>> = model
        .requests
        .iter()
        .chain(model.setup.iter().flat_map(|s| s.requests.iter()))
        .map(|_| None)
        .chain(model.journeys.iter().enumerate().flat_map(|(j, journey)| journey.requests().map(move |_| Some(j))))
        .collect();
    let mut requests = Vec::new();
    for (def, journey) in defs.iter().zip(&journey_of) {
        let names = Names { pools: &pools, model, tables: &tables, options, journey: *journey };
        match request(def, &options.target, &names) {
            Ok(r) => requests.push(r),
            Err(p) => problems.extend(p),
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
    if total == 0 && model.journeys.is_empty() {
        return Err(vec![Problem::new(Pos::new(1, 1), "no request has a weight above 0")]);
    }
    let setup = requests.iter().enumerate().filter(|(_, r)| r.role == Role::Setup).map(|(i, _)| RequestId(i as u8));
    let setup: Vec<RequestId> = setup.collect();
    let weights = Weights { ends, ids, total };
    let mut next_step = model.requests.len() + setup.len();
    let journeys: Vec<CompiledJourney> = model
        .journeys
        .iter()
        .map(|journey| {
            let steps = journey
                .steps
                .iter()
                .map(|step| match step {
                    StepDef::Request { on_failure, .. } => {
                        let id = RequestId(next_step as u8);
                        next_step += 1;
                        Step::Request { id, go_on: *on_failure == OnFailure::Continue }
                    }
                    StepDef::Pause(pause) => Step::Pause(*pause),
                })
                .collect::<Vec<Step>>();
            let relogin_steps = relogin_steps(&steps, &requests);
            let tables = journey
                .tables()
                .iter()
                .filter_map(|t| tables.iter().position(|table| table.name == *t))
                .map(|i| i as u8)
                .collect();
            CompiledJourney {
                name: journey.name.clone(),
                weight: journey.weight,
                steps,
                vars: journey.vars().iter().map(|v| v.to_string()).collect(),
                tables,
                relogin_on: journey.relogin_on,
                relogin_steps,
            }
        })
        .collect();
    let arrivals = (!journeys.is_empty()).then(|| Draws::new(&weights, &journeys));
    let mut setup_pools: Vec<PoolId> = Vec::new();
    for capture in setup.iter().flat_map(|id| &requests[id.index()].captures) {
        if let Store::Pool(pool) = capture.store
            && !setup_pools.contains(&pool)
        {
            setup_pools.push(pool);
        }
    }
    let setup_refresh = model.setup.as_ref().and_then(|s| s.refresh.as_ref()).and_then(|refresh| {
        let request = match &refresh.request {
            Some((name, _)) => setup.iter().copied().find(|id| requests[id.index()].name == *name),
            None => setup.first().copied(),
        }?;
        Some(Refresh { request, pointer: pointer_tokens(&refresh.pointer), fraction: refresh.fraction })
    });
    Ok(Compiled {
        setup_every: model.setup.as_ref().and_then(|s| s.every_secs).map(Duration::from_secs),
        setup_refresh,
        setup_relogin_on: model.setup.as_ref().map_or(StatusSet::EMPTY, |s| s.relogin_on),
        setup_pools,
        setup,
        requests,
        weights,
        pools,
        journeys,
        arrivals,
        tables,
    })
}

/// For each step of a journey, the step it logs in again with: the
/// earliest earlier step that captures a variable this one sends in a
/// header (`Authorization: Bearer {{ var(token) }}`, a cookie). Only
/// header values count, because credentials travel there; a variable in
/// the path or body is data, and re-running the step that made it (a
/// create) would write twice.
fn relogin_steps(steps: &[Step], requests: &[CompiledRequest]) -> Vec<Option<usize>> {
    let request = |step: &Step| match step {
        Step::Request { id, .. } => requests.get(id.index()),
        Step::Pause(_) => None,
    };
    let captures_into = |r: &CompiledRequest, slots: u32| {
        r.captures.iter().any(|c| matches!(c.store, Store::Var(slot) if slots & (1 << slot) != 0))
    };
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let slots = request(step).map_or(0, |r| r.header_vars);
            if slots == 0 {
                return None;
            }
            steps[..i].iter().position(|earlier| request(earlier).is_some_and(|r| captures_into(r, slots)))
        })
        .collect()
}

fn pool_spec(def: &PoolDef, default_size: usize, problems: &mut Vec<Problem>) -> PoolSpec {
    let size = def.size.unwrap_or(default_size).max(1);
    if def.values.len() > size {
        problems.push(Problem::new(
            def.pos,
            format!("pool `{}` has {} values but holds {size}", def.name, def.values.len()),
        ));
    }
    PoolSpec { name: def.name.clone(), size, seed: def.values.clone(), path: false }
}

fn request(def: &RequestDef, target: &Target, names: &Names<'_>) -> Result<CompiledRequest, Vec<Problem>> {
    let unknown = |what: &str| vec![Problem::new(def.pos, format!("internal: unresolved {what} in `{}`", def.name))];
    let pool_id = |name: &str| names.pool(name);
    let request_id = |name: &str| names.request(name);
    let fill = |hole: &Hole, ctx: Ctx, pos: Pos| -> Result<Fill, Problem> { fill_of(hole, ctx, pos, def, names) };
    // A template whose literal text is written one way and holes another;
    // every problem of its holes is reported.
    let template =
        |segs: &mut Segs, t: &Template, literal: &dyn Fn(&str, &mut Vec<u8>), ctx: Ctx| -> Result<(), Vec<Problem>> {
            let mut problems = Vec::new();
            for part in &t.parts {
                match part {
                    Part::Literal(text) => {
                        let mut bytes = Vec::new();
                        literal(text, &mut bytes);
                        segs.lit(&bytes);
                    }
                    Part::Hole(hole, pos) => match fill(hole, ctx, *pos) {
                        Ok(f) => segs.hole(f, ctx),
                        Err(p) => problems.push(p),
                    },
                }
            }
            if problems.is_empty() { Ok(()) } else { Err(problems) }
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
            json_segs(json, &mut segs, &fill).map_err(|p| vec![p])?;
            Some(segs.finish())
        }
        Some(Body::Raw(t)) => {
            let mut segs = Segs::default();
            match content_type.as_deref().map(media_kind) {
                Some(MediaKind::Json) => raw_json_segs(t, &mut segs, &fill).map_err(|p| vec![p])?,
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
    let mut takes: Vec<PoolId> = Vec::new();
    let mut vars = 0u32;
    let mut header_vars = 0u32;
    for (hole, _) in def.headers.iter().flat_map(|(_, t)| t.holes()) {
        if let Some(name) = hole.var() {
            header_vars |= 1 << names.var(name).ok_or_else(|| unknown("variable"))?.0;
        }
    }
    for (hole, _) in def.templates().flat_map(Template::holes) {
        if let Some(name) = hole.pool() {
            let id = pool_id(name).ok_or_else(|| unknown("pool"))?;
            if !needs.contains(&id) {
                needs.push(id);
            }
            if matches!(hole, Hole::Take(_)) && !takes.contains(&id) {
                takes.push(id);
            }
        }
        if let Some(name) = hole.var() {
            vars |= 1 << names.var(name).ok_or_else(|| unknown("variable"))?.0;
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
            let store = match &c.var {
                Some(var) => Store::Var(names.var(var).ok_or_else(|| unknown("variable"))?.0),
                None => Store::Pool(pool_id(&c.pool).ok_or_else(|| unknown("pool"))?),
            };
            let regex = match &c.regex {
                Some(pattern) => Some(CaptureRegex(
                    super::template::compile_regex(pattern).map_err(|e| vec![Problem::new(c.pos, e)])?,
                )),
                None => None,
            };
            Ok(Capture {
                store,
                source: c.source.clone(),
                regex,
                path: c.path,
                pointer: match &c.source {
                    CaptureSource::Json(p) => pointer_tokens(p),
                    CaptureSource::Header(_) | CaptureSource::Body => Vec::new(),
                },
                max_len: c.max_len,
                url_safe: c.url_safe,
            })
        })
        .collect::<Result<Vec<_>, Vec<Problem>>>()?;

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
        takes,
        vars,
        header_vars,
        fallback,
        success: def.success,
        captures,
    };
    let max = compiled.max_bytes();
    if max > MAX_REQUEST_BYTES {
        return Err(vec![Problem::new(
            def.pos,
            format!("`{}` may render to {max} bytes; a request may have at most {MAX_REQUEST_BYTES}", def.name),
        )]);
    }
    Ok(compiled)
}

/// A structured body: compact JSON, keys in file order.
fn json_segs(
    json: &Json,
    segs: &mut Segs,
    fill: &dyn Fn(&Hole, Ctx, Pos) -> Result<Fill, Problem>,
) -> Result<(), Problem> {
    match json {
        Json::Null => segs.lit(b"null"),
        Json::Bool(b) => segs.lit(if *b { b"true" } else { b"false" }),
        Json::Number(n) => segs.lit(n.as_bytes()),
        Json::Text(t) => match t.single_hole() {
            // A string that is exactly one hole is the hole's value: a
            // number stays a number.
            Some(hole) => {
                let pos = t.holes().next().map(|(_, p)| p).unwrap_or_default();
                segs.hole(fill(hole, Ctx::JsonValue, pos)?, Ctx::JsonValue)
            }
            None => {
                segs.lit(b"\"");
                for part in &t.parts {
                    match part {
                        Part::Literal(text) => json_escape(text.as_bytes(), &mut segs.lit),
                        Part::Hole(hole, pos) => segs.hole(fill(hole, Ctx::JsonString, *pos)?, Ctx::JsonString),
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
    fill: &dyn Fn(&Hole, Ctx, Pos) -> Result<Fill, Problem>,
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
            Part::Hole(hole, pos) => {
                let ctx = if in_string { Ctx::JsonString } else { Ctx::JsonValue };
                segs.hole(fill(hole, ctx, *pos)?, ctx);
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
                    Fill::Pool(_) | Fill::Take(_) | Fill::Var { .. } | Fill::Data { .. } => {
                        super::template::MAX_VALUE_BYTES
                    }
                    Fill::Env(secret) => secret.value.len(),
                    // Four characters for every three bytes, rounded up.
                    Fill::Base64(inner) => seg_max(inner).div_ceil(3) * 4,
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
