//! The workload as the file says it: read from the YAML tree with every
//! key checked (unknown keys refused), every value typed, every mistake
//! collected with its place — not only the first — so one run of
//! `workload check` shows all of them.

use std::fmt;

use super::template::{self, Hole, Item, Origin, Part, Template};
use super::yaml::{Node, NodeKind, Plain, Pos};

mod journey;
mod setup;

pub use journey::{
    DataDef, DataOrder, JourneyDef, MAX_DATA_TABLES, MAX_JOURNEYS, MAX_PAUSE_SECS, MAX_STEPS, MAX_VARS, OnFailure,
    PauseDef, StepDef,
};
pub use setup::{DEFAULT_REFRESH_FRACTION, RefreshDef, SetupDef};

/// Most requests in a workload (setup and journey steps included): names
/// become metric labels.
pub const MAX_REQUESTS: usize = 64;
/// Most pools in a workload.
pub const MAX_POOLS: usize = 16;
/// Largest explicit pool size.
pub const MAX_POOL_SIZE: usize = 100_000;
/// Largest weight of one request.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Longest request or pool name.
pub const MAX_NAME: usize = 64;
/// Longest header value, content type or path as written.
const MAX_TEXT: usize = 8 * 1024;
/// Longest re-run interval of the setup requests.
pub const MAX_SETUP_EVERY_SECS: u64 = 86_400;
/// Longest problem message, in characters: a message quotes what the file
/// says (an unknown key may be a megabyte long), and every message goes
/// into an answer or a log line.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Problems a reading keeps; the rest are only counted, so a file of
/// 100 000 mistakes costs no more memory than one of a few hundred.
const MAX_KEPT_PROBLEMS: usize = 500;

/// One mistake in a workload, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub pos: Pos,
    pub message: String,
}

impl Problem {
    /// A message is one line whatever text it quotes from the file: line
    /// breaks and other control characters in it are written escaped
    /// (`\n`), so `file:line:column: message` stays one line per problem.
    ///
    /// At most [`MAX_MESSAGE_CHARS`] are kept (then `…`).
    pub fn new(pos: Pos, message: impl Into<String>) -> Problem {
        let message = message.into();
        let clean = |c: char| if c.is_control() { c.escape_default().to_string() } else { c.to_string() };
        let message = if message.chars().any(char::is_control) || message.len() > MAX_MESSAGE_CHARS {
            let mut shown = String::new();
            for (i, c) in message.chars().enumerate() {
                if i == MAX_MESSAGE_CHARS {
                    shown.push('…');
                    break;
                }
                shown.push_str(&clean(c));
            }
            shown
        } else {
            message
        };
        Problem { pos, message }
    }
}

/// The methods a request may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    pub const ALL: [Method; 7] =
        [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete, Method::Options];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }

    /// Case-insensitive: `get` is `GET`.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer codes that count as success: a set over 100…599.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    pub const EMPTY: StatusSet = StatusSet([0; 10]);

    /// Any 2xx: the default.
    pub fn success() -> StatusSet {
        let mut set = StatusSet::EMPTY;
        set.insert_class(2);
        set
    }

    pub fn insert(&mut self, code: u16) {
        if code < 640 {
            self.0[usize::from(code / 64)] |= 1 << (code % 64);
        }
    }

    pub fn insert_class(&mut self, class: u16) {
        for code in class * 100..class * 100 + 100 {
            self.insert(code);
        }
    }

    pub fn contains(&self, code: u16) -> bool {
        code < 640 && self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
}

/// `2xx`, or `200, 201, 404`, classes written as such.
impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { ", " };
            first = false;
            f.write_str(s)
        };
        for class in 1..=5u16 {
            if (class * 100..class * 100 + 100).all(|c| self.contains(c)) {
                sep(f)?;
                write!(f, "{class}xx")?;
            } else {
                for code in (class * 100..class * 100 + 100).filter(|c| self.contains(*c)) {
                    sep(f)?;
                    write!(f, "{code}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusSet({self})")
    }
}

/// The parsed file.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub pools: Vec<PoolDef>,
    pub setup: Option<SetupDef>,
    pub requests: Vec<RequestDef>,
    /// Ordered steps with their own variables (see [`JourneyDef`]).
    pub journeys: Vec<JourneyDef>,
    /// Data tables read from files next to the workload.
    pub data: Vec<DataDef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolDef {
    pub name: String,
    /// `None`: the default (`ID_BUFFER_SIZE`).
    pub size: Option<usize>,
    /// Values it holds from the start.
    pub values: Vec<Item>,
    pub pos: Pos,
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Drawn by weight.
    Weighted(u32),
    /// Provokes errors: never drawn in the normal mix; scenarios that
    /// inject errors send it.
    Error,
    /// Sent before the traffic (and every `every_secs`).
    Setup,
    /// A step of a journey: sent by a running instance, in its turn.
    Step,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestDef {
    pub name: String,
    pub pos: Pos,
    pub role: Role,
    pub method: Method,
    pub path: Template,
    pub query: Vec<(String, Template)>,
    pub headers: Vec<(String, Template)>,
    pub body: Option<Body>,
    /// Written, or `application/json` for a structured body.
    pub content_type: Option<String>,
    pub success: StatusSet,
    pub captures: Vec<CaptureDef>,
    /// Sent instead while a pool this request reads is empty.
    pub fallback: Option<(String, Pos)>,
    pub body_pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Written as YAML, sent as JSON.
    Json(Json),
    /// Sent as written (with `content_type`).
    Raw(Template),
}

/// A JSON value whose strings may hold templates.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// As JSON writes it.
    Number(String),
    Text(Template),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureDef {
    /// The pool the value goes into; empty when it goes into `var`.
    pub pool: String,
    /// The journey variable it goes into instead (journey steps only).
    pub var: Option<String>,
    pub source: CaptureSource,
    /// A regular expression with one group: the group's text is kept.
    pub regex: Option<String>,
    /// The value is a path to follow (`Location: /api/v1/users/12`):
    /// refused unless it is a safe absolute path, and written into a
    /// request's path with its slashes kept.
    pub path: bool,
    /// Longer values are refused (not stored).
    pub max_len: usize,
    /// Only unreserved URL characters (letters, digits, `-._~`) accepted.
    pub url_safe: bool,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    /// An RFC 6901 JSON pointer into the answer's body: `/id`, `/data/0/id`.
    Json(String),
    /// An answer header, e.g. `Location`.
    Header(String),
    /// The whole body as text (with a `regex`).
    Body,
}

impl fmt::Display for CaptureSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureSource::Json(pointer) => write!(f, "JSON {pointer}"),
            CaptureSource::Header(name) => write!(f, "header {name}"),
            CaptureSource::Body => f.write_str("the body"),
        }
    }
}

/// Headers the request's framing depends on: set by trafficgen, never by a workload.
const RESERVED_HEADERS: [&str; 9] =
    ["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "expect"];

/// Reads a YAML tree into a [`Model`], with every problem found. With
/// problems, the model holds what could be read (for checking references
/// too, so one run reports as much as it can) and must not be used.
///
/// Only the first few hundred problems are kept; the count of the others
/// comes back as the third value.
pub fn read(root: &Node) -> (Model, Vec<Problem>, usize) {
    let mut reader = Reader { problems: Vec::new(), not_kept: 0, requests_seen: 0 };
    let model = reader.model(root);
    (model, reader.problems, reader.not_kept)
}

struct Reader {
    problems: Vec<Problem>,
    /// Problems found beyond [`MAX_KEPT_PROBLEMS`].
    not_kept: usize,
    requests_seen: usize,
}

/// Where a request is written, which decides the keys it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Traffic,
    Setup,
    Step,
}

/// A mapping's entries by key.
struct Fields<'n> {
    pos: Pos,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

impl Reader {
    fn problem(&mut self, pos: Pos, message: impl Into<String>) {
        if self.problems.len() < MAX_KEPT_PROBLEMS {
            self.problems.push(Problem::new(pos, message));
        } else {
            self.not_kept += 1;
        }
    }

    fn model(&mut self, root: &Node) -> Model {
        let mut model =
            Model { pools: Vec::new(), setup: None, requests: Vec::new(), journeys: Vec::new(), data: Vec::new() };
        let keys = ["pools", "setup", "requests", "journeys", "data"];
        let Some(fields) = self.fields(root, "the workload", &keys) else { return model };
        if let Some(pools) = fields.get("pools") {
            model.pools = self.pools(pools);
        }
        if let Some(data) = fields.get("data") {
            model.data = self.data_tables(data);
        }
        if let Some(setup) = fields.get("setup") {
            model.setup = self.setup(setup);
        }
        match fields.get("requests") {
            Some(list) => model.requests = self.requests(list, Kind::Traffic),
            None if fields.get("journeys").is_some() => {}
            None => self.problem(fields.pos, "the workload needs `requests` (a list of requests) or `journeys`"),
        }
        if let Some(journeys) = fields.get("journeys") {
            model.journeys = self.journeys(journeys);
        }
        let weighted = model.requests.iter().any(|r| matches!(r.role, Role::Weighted(_))) || !model.journeys.is_empty();
        if (!model.requests.is_empty() || fields.get("journeys").is_some()) && !weighted {
            self.problem(
                fields.pos,
                "no request has a weight: at least one request (or a journey) must be drawn by weight",
            );
        }
        model
    }

    /// A mapping with only `allowed` keys, each once.
    fn fields<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.problem(node.pos, format!("{what} must be a mapping (key: value), not {}", node.describe()));
            return None;
        };
        let mut fields = Fields { pos: node.pos, entries: Vec::new() };
        for (key, value) in entries {
            let Some(name) = self.key(key) else { continue };
            if fields.get(name).is_some() {
                self.problem(key.pos, format!("`{name}` is given twice in {what}"));
                continue;
            }
            if !allowed.contains(&name) {
                let suggestion = closest(name, allowed).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
                self.problem(
                    key.pos,
                    format!("unknown key `{name}` in {what} ({suggestion}allowed: {})", allowed.join(", ")),
                );
                continue;
            }
            fields.entries.push((name, value));
        }
        Some(fields)
    }

    /// A mapping key: a plain string.
    fn key<'n>(&mut self, key: &'n Node) -> Option<&'n str> {
        match &key.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            NodeKind::Map(_) => {
                self.problem(
                    key.pos,
                    "a key must be text; a template used as a value must be quoted: \"{{ … }}\" (unquoted, YAML reads `{` as a mapping)",
                );
                None
            }
            NodeKind::Seq(_) => {
                self.problem(key.pos, "a key must be text, not a list");
                None
            }
        }
    }

    fn list<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ => {
                self.problem(node.pos, format!("{what} must be a list, not {}", node.describe()));
                None
            }
        }
    }

    fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        let s = node.string();
        if s.is_none() {
            self.problem(node.pos, format!("{what} must be text, not {}{}", node.describe(), unquoted_template(node)));
        }
        s
    }

    /// Any scalar's text (numbers and booleans as written), for values
    /// such as headers and query parameters.
    fn text<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match node.scalar() {
            Some(_) if node.is_null() => {
                self.problem(node.pos, format!("{what} is empty"));
                None
            }
            Some(s) => Some(s),
            None => {
                self.problem(
                    node.pos,
                    format!("{what} must be text, not {}{}", node.describe(), unquoted_template(node)),
                );
                None
            }
        }
    }

    fn whole(&mut self, node: &Node, what: &str, min: u64, max: u64) -> Option<u64> {
        let value = match node.typed() {
            Some(Plain::Int(n)) => u64::try_from(n).ok().filter(|n| (min..=max).contains(n)),
            _ => None,
        };
        if value.is_none() {
            let found = node.scalar().map_or_else(|| node.describe().to_string(), |s| format!("`{s}`"));
            self.problem(node.pos, format!("{what} must be a whole number from {min} to {max}, not {found}"));
        }
        value
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.typed() {
            Some(Plain::Bool(b)) => Some(b),
            _ => {
                self.problem(node.pos, format!("{what} must be true or false, not {}", node.describe()));
                None
            }
        }
    }

    fn template(&mut self, node: &Node, text: &str) -> Option<Template> {
        let origin = match node.text_pos {
            Some(pos) => Origin { pos, exact: true },
            None => Origin { pos: node.pos, exact: false },
        };
        match Template::parse(text, origin) {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(e.pos, e.message);
                None
            }
        }
    }

    fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let name = self.string(node, what)?;
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > MAX_NAME {
            self.problem(
                node.pos,
                format!(
                    "{what} `{name}` must be a letter or `_` followed by letters, digits or `_`, at most {MAX_NAME} long (it becomes a metric label)"
                ),
            );
            return None;
        }
        Some(name.to_string())
    }

    fn pools(&mut self, node: &Node) -> Vec<PoolDef> {
        let NodeKind::Map(entries) = &node.kind else {
            self.problem(node.pos, format!("`pools` must be a mapping of pool names, not {}", node.describe()));
            return Vec::new();
        };
        let mut pools: Vec<PoolDef> = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.name(key, "pool name") else { continue };
            if pools.iter().any(|p| p.name == name) {
                self.problem(key.pos, format!("pool `{name}` is declared twice"));
                continue;
            }
            if pools.len() == MAX_POOLS {
                self.problem(key.pos, format!("more than {MAX_POOLS} pools"));
                break;
            }
            let mut pool = PoolDef { name, size: None, values: Vec::new(), pos: key.pos };
            if !value.is_null()
                && let Some(fields) = self.fields(value, "a pool", &["size", "values"])
            {
                if let Some(size) = fields.get("size") {
                    pool.size = self.whole(size, "size", 1, MAX_POOL_SIZE as u64).map(|n| n as usize);
                }
                if let Some(values) = fields.get("values") {
                    pool.values = self.pool_values(values);
                }
            }
            pools.push(pool);
        }
        pools
    }

    fn pool_values(&mut self, node: &Node) -> Vec<Item> {
        let Some(items) = self.list(node, "values") else { return Vec::new() };
        let mut values = Vec::new();
        for item in items {
            let value = match item.typed() {
                Some(Plain::Int(n)) => Item { text: n.to_string(), number: true },
                Some(Plain::Float(f)) => match serde_json::Number::from_f64(f) {
                    Some(n) => Item { text: n.to_string(), number: true },
                    None => {
                        self.problem(item.pos, "a pool value must be a finite number or text");
                        continue;
                    }
                },
                Some(Plain::Str(s)) => Item { text: s.to_string(), number: false },
                _ => {
                    self.problem(item.pos, format!("a pool value must be text or a number, not {}", item.describe()));
                    continue;
                }
            };
            if value.text.is_empty() {
                self.problem(item.pos, "a pool value must not be empty");
            } else if let Err(e) = template::check_value(&value.text) {
                self.problem(item.pos, format!("pool value {e}"));
            } else {
                values.push(value);
            }
        }
        values
    }

    fn requests(&mut self, node: &Node, kind: Kind) -> Vec<RequestDef> {
        let what = if kind == Kind::Setup { "setup `requests`" } else { "`requests`" };
        let Some(items) = self.list(node, what) else {
            return Vec::new();
        };
        if items.is_empty() {
            self.problem(node.pos, "the list of requests is empty");
        }
        let mut requests = Vec::new();
        for item in items {
            self.count_request(item.pos);
            if let Some(request) = self.request(item, kind) {
                requests.push(request);
            }
        }
        requests
    }

    /// One more request (setup and journey steps count too).
    fn count_request(&mut self, pos: Pos) {
        self.requests_seen += 1;
        if self.requests_seen == MAX_REQUESTS + 1 {
            self.problem(pos, format!("more than {MAX_REQUESTS} requests (setup and journey steps included)"));
        }
    }

    fn request(&mut self, node: &Node, kind: Kind) -> Option<RequestDef> {
        const KEYS: [&str; 13] = [
            "name",
            "method",
            "path",
            "query",
            "headers",
            "body",
            "content_type",
            "success",
            "capture",
            "on_failure",
            "weight",
            "error",
            "fallback",
        ];
        let (what, allowed): (&str, Vec<&str>) = match kind {
            Kind::Setup => ("a setup request", KEYS[..9].to_vec()),
            Kind::Step => ("a journey step", KEYS[..10].to_vec()),
            Kind::Traffic => ("a request", KEYS[..9].iter().chain(&KEYS[10..]).copied().collect()),
        };
        let setup = kind == Kind::Setup;
        let fields = self.fields(node, what, &allowed)?;
        let name = match fields.get("name") {
            Some(n) => self.name(n, "request name"),
            None => {
                self.problem(fields.pos, format!("{what} needs a `name`"));
                None
            }
        };
        // Keep reading after a problem, so one run reports them all.
        let method = match fields.get("method") {
            Some(n) => self.string(n, "method").and_then(|m| {
                let method = Method::parse(m);
                if method.is_none() {
                    let known: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
                    self.problem(n.pos, format!("method `{m}` is not one of {}", known.join(", ")));
                }
                method
            }),
            None => {
                self.problem(fields.pos, format!("{what} needs a `method`"));
                None
            }
        };
        let path = match fields.get("path") {
            Some(n) => self.path(n),
            None => {
                self.problem(fields.pos, format!("{what} needs a `path`"));
                None
            }
        };
        let query = fields.get("query").map(|n| self.query(n)).unwrap_or_default();
        let headers = fields.get("headers").map(|n| self.headers(n)).unwrap_or_default();
        let content_type = fields.get("content_type").and_then(|n| self.content_type(n));
        let body = fields.get("body").and_then(|n| self.body(n));
        let body_pos = fields.get("body").map_or(fields.pos, |n| n.pos);
        if matches!(body, Some(Body::Raw(_))) && content_type.is_none() {
            self.problem(body_pos, "a text body needs `content_type` (a YAML mapping or list is sent as JSON)");
        }
        if body.is_none()
            && content_type.is_some()
            && fields.get("body").is_none()
            && let Some(n) = fields.get("content_type")
        {
            self.problem(n.pos, "`content_type` without a `body`");
        }
        let success = fields.get("success").map(|n| self.success(n)).unwrap_or_else(StatusSet::success);
        let captures = fields.get("capture").map(|n| self.captures(n)).unwrap_or_default();
        let error = fields.get("error").and_then(|n| self.boolean(n, "error")).unwrap_or(false);
        let weight = fields.get("weight").and_then(|n| self.weight(n));
        let role = match (setup, error, weight, fields.get("weight")) {
            _ if kind == Kind::Step => Role::Step,
            (true, ..) => Role::Setup,
            (false, true, _, Some(n)) => {
                self.problem(n.pos, "an error request (`error: true`) is never drawn by weight: remove `weight`");
                Role::Error
            }
            (false, true, _, None) => Role::Error,
            (false, false, Some(w), _) => Role::Weighted(w),
            (false, false, None, Some(_)) => Role::Weighted(1),
            (false, false, None, None) => {
                self.problem(fields.pos, format!("{what} needs a `weight` (a whole number from 1 to {MAX_WEIGHT})"));
                Role::Weighted(1)
            }
        };
        let fallback = fields.get("fallback").and_then(|n| self.name(n, "fallback").map(|f| (f, n.pos)));
        if role == Role::Error && fallback.is_some() {
            self.problem(fields.pos, "an error request takes no `fallback`");
        }
        Some(RequestDef {
            name: name?,
            pos: fields.pos,
            role,
            method: method.unwrap_or(Method::Get),
            path: path.unwrap_or_else(|| Template::literal("/")),
            query,
            headers,
            body,
            content_type,
            success,
            captures,
            fallback,
            body_pos,
        })
    }

    fn weight(&mut self, node: &Node) -> Option<u32> {
        let weight = match node.typed() {
            Some(Plain::Int(n)) => u32::try_from(n).ok().filter(|w| (1..=MAX_WEIGHT).contains(w)),
            _ => None,
        };
        if weight.is_none() {
            let found = node.scalar().map_or_else(|| node.describe().to_string(), |s| format!("`{s}`"));
            let hint = if node.typed() == Some(Plain::Int(0)) {
                " (to keep a request out of the mix, leave it out, or mark it `error: true`)"
            } else {
                ""
            };
            self.problem(node.pos, format!("weight must be a whole number from 1 to {MAX_WEIGHT}, not {found}{hint}"));
        }
        weight
    }

    fn path(&mut self, node: &Node) -> Option<Template> {
        let text = self.string(node, "path")?;
        let template = self.template(node, text)?;
        // A captured path (`capture: {path: true}`) may begin it: checked
        // with the references, once the captures are known.
        let starts_with_value =
            matches!(template.parts.first(), Some(Part::Hole(Hole::Var(_) | Hole::Pool(_) | Hole::Take(_), _)));
        if !text.starts_with('/') && !starts_with_value {
            self.problem(node.pos, format!("path `{text}` must start with `/`"));
            return None;
        }
        if text.len() > MAX_TEXT {
            self.problem(node.pos, format!("path is longer than {MAX_TEXT} bytes"));
            return None;
        }
        for literal in template.literals() {
            if let Some(bad) = literal.chars().find(|c| !is_path_char(*c)) {
                let message = match bad {
                    '?' => "path must not hold a query: put its parameters under `query`".to_string(),
                    '#' => "path must not hold a fragment (`#`): it is never sent".to_string(),
                    c => format!("path may not contain {c:?}: write it percent-encoded (e.g. a space as %20)"),
                };
                self.problem(node.pos, message);
                return None;
            }
            if !percent_escapes_ok(literal) {
                self.problem(node.pos, "path has a `%` not followed by two hex digits");
                return None;
            }
        }
        Some(template)
    }

    fn query(&mut self, node: &Node) -> Vec<(String, Template)> {
        let NodeKind::Map(entries) = &node.kind else {
            self.problem(
                node.pos,
                format!("`query` must be a mapping of parameter names to values, not {}", node.describe()),
            );
            return Vec::new();
        };
        let mut query: Vec<(String, Template)> = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.key(key) else { continue };
            if name.contains("{{") {
                self.problem(key.pos, "a query parameter name cannot be a template");
                continue;
            }
            if name.is_empty() {
                self.problem(key.pos, "a query parameter name is empty");
                continue;
            }
            if query.iter().any(|(n, _)| n == name) {
                self.problem(key.pos, format!("query parameter `{name}` is given twice"));
                continue;
            }
            let Some(text) = self.text(value, &format!("query parameter `{name}`")) else { continue };
            if let Some(template) = self.template(value, text) {
                query.push((name.to_string(), template));
            }
        }
        query
    }

    fn headers(&mut self, node: &Node) -> Vec<(String, Template)> {
        let NodeKind::Map(entries) = &node.kind else {
            self.problem(
                node.pos,
                format!("`headers` must be a mapping of header names to values, not {}", node.describe()),
            );
            return Vec::new();
        };
        let mut headers: Vec<(String, Template)> = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.key(key) else { continue };
            if name.is_empty() || name.len() > MAX_NAME || !name.bytes().all(is_token_byte) {
                self.problem(
                    key.pos,
                    format!(
                        "header name {name:?} is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)"
                    ),
                );
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) {
                self.problem(key.pos, format!("header `{name}` is set by trafficgen itself and cannot be given"));
                continue;
            }
            if lower == "content-type" {
                self.problem(key.pos, "give the body's type as `content_type`, not as a header");
                continue;
            }
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                self.problem(key.pos, format!("header `{name}` is given twice"));
                continue;
            }
            let Some(text) = self.text(value, &format!("header `{name}`")) else { continue };
            if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
                self.problem(
                    value.pos,
                    format!("header `{name}` contains the control character {c:?} (CR/LF would inject headers)"),
                );
                continue;
            }
            if text.len() > MAX_TEXT {
                self.problem(value.pos, format!("header `{name}` is longer than {MAX_TEXT} bytes"));
                continue;
            }
            if let Some(template) = self.template(value, text) {
                headers.push((name.to_string(), template));
            }
        }
        headers
    }

    fn content_type(&mut self, node: &Node) -> Option<String> {
        let text = self.string(node, "content_type")?;
        if !text.contains('/') || text.len() > 256 || text.chars().any(|c| c.is_control()) || text.contains("{{") {
            self.problem(node.pos, format!("content_type {text:?} is not a media type such as `application/json`"));
            return None;
        }
        Some(text.to_string())
    }

    fn body(&mut self, node: &Node) -> Option<Body> {
        match &node.kind {
            NodeKind::Map(_) | NodeKind::Seq(_) => self.json(node).map(Body::Json),
            NodeKind::Scalar { .. } if node.is_null() => {
                self.problem(node.pos, "body is empty; leave `body` out for a request without one");
                None
            }
            NodeKind::Scalar { value, .. } => self.template(node, value).map(Body::Raw),
        }
    }

    /// A YAML value as JSON; strings may be templates.
    fn json(&mut self, node: &Node) -> Option<Json> {
        Some(match &node.kind {
            NodeKind::Seq(items) => Json::Array(items.iter().filter_map(|i| self.json(i)).collect()),
            NodeKind::Map(entries) => {
                let mut object: Vec<(String, Json)> = Vec::new();
                for (key, value) in entries {
                    let Some(name) = self.key(key) else { continue };
                    if name.contains("{{") {
                        self.problem(key.pos, "a JSON key cannot be a template");
                        continue;
                    }
                    if object.iter().any(|(k, _)| k == name) {
                        self.problem(key.pos, format!("key `{name}` is given twice"));
                        continue;
                    }
                    if let Some(v) = self.json(value) {
                        object.push((name.to_string(), v));
                    }
                }
                Json::Object(object)
            }
            NodeKind::Scalar { .. } => match node.typed()? {
                Plain::Null => Json::Null,
                Plain::Bool(b) => Json::Bool(b),
                Plain::Int(n) => Json::Number(n.to_string()),
                Plain::Float(f) => match serde_json::Number::from_f64(f) {
                    Some(n) => Json::Number(n.to_string()),
                    None => {
                        self.problem(node.pos, "infinity and NaN cannot be written in JSON");
                        return None;
                    }
                },
                Plain::Str(s) => Json::Text(self.template(node, s)?),
            },
        })
    }

    fn success(&mut self, node: &Node) -> StatusSet {
        self.status_set(node, "success")
    }

    /// Answer codes (100 to 599) and classes (`2xx`), one or a list.
    fn status_set(&mut self, node: &Node, what: &str) -> StatusSet {
        let mut set = StatusSet::EMPTY;
        let single = std::slice::from_ref(node);
        let items = match &node.kind {
            NodeKind::Seq(items) => items.as_slice(),
            _ => single,
        };
        for item in items {
            match (item.typed(), item.scalar()) {
                (Some(Plain::Int(code)), _) if (100..=599).contains(&code) => set.insert(code as u16),
                (_, Some(s))
                    if s.len() == 3
                        && s[1..].eq_ignore_ascii_case("xx")
                        && matches!(&s[..1], "1" | "2" | "3" | "4" | "5") =>
                {
                    set.insert_class(u16::from(s.as_bytes()[0] - b'0'));
                }
                _ => self.problem(
                    item.pos,
                    format!(
                        "{what} must list answer codes (100 to 599) or classes such as 2xx, not {}",
                        item.describe()
                    ),
                ),
            }
        }
        if set == StatusSet::EMPTY && items.is_empty() {
            self.problem(node.pos, format!("{what} is empty: no answer could count as {what}"));
        }
        set
    }

    fn captures(&mut self, node: &Node) -> Vec<CaptureDef> {
        let single = std::slice::from_ref(node);
        let items = match &node.kind {
            NodeKind::Seq(items) => items.as_slice(),
            _ => single,
        };
        items.iter().filter_map(|item| self.capture(item)).collect()
    }

    fn capture(&mut self, node: &Node) -> Option<CaptureDef> {
        let keys = ["pool", "var", "json", "header", "regex", "path", "max_len", "url_safe"];
        let fields = self.fields(node, "a capture", &keys)?;
        let (pool, var) = match (fields.get("pool"), fields.get("var")) {
            (Some(n), None) => (self.name(n, "pool"), None),
            (None, Some(n)) => (Some(String::new()), Some(self.name(n, "variable")?)),
            (Some(_), Some(_)) => {
                self.problem(fields.pos, "a capture puts its value in one place: a `pool` or a journey's `var`");
                (None, None)
            }
            (None, None) => {
                self.problem(
                    fields.pos,
                    "a capture needs the `pool` (or, in a journey, the `var`) to put the value in",
                );
                (None, None)
            }
        };
        let regex = fields.get("regex").and_then(|n| self.regex(n));
        let source = match (fields.get("json"), fields.get("header")) {
            (None, None) if fields.get("regex").is_some() => Some(CaptureSource::Body),
            (Some(n), None) => self.string(n, "json").and_then(|p| {
                let valid = json_pointer_ok(p);
                if !valid {
                    self.problem(
                        n.pos,
                        format!(
                            "json {p:?} is not a JSON pointer (RFC 6901): `/id`, `/data/0/id`; `~` only as ~0 or ~1"
                        ),
                    );
                }
                valid.then(|| CaptureSource::Json(p.to_string()))
            }),
            (None, Some(n)) => self.string(n, "header").and_then(|h| {
                let valid = !h.is_empty() && h.len() <= MAX_NAME && h.bytes().all(is_token_byte);
                if !valid {
                    self.problem(n.pos, format!("header {h:?} is not a valid HTTP header name"));
                }
                valid.then(|| CaptureSource::Header(h.to_string()))
            }),
            _ => {
                self.problem(
                    fields.pos,
                    "a capture takes one of `json` (a JSON pointer such as /id) or `header` (or only a `regex`, over the body)",
                );
                None
            }
        };
        let path = fields.get("path").and_then(|n| self.boolean(n, "path")).unwrap_or(false);
        let max_len = fields
            .get("max_len")
            .and_then(|n| self.whole(n, "max_len", 1, template::MAX_VALUE_BYTES as u64))
            .map_or(template::MAX_VALUE_BYTES, |n| n as usize);
        let url_safe = fields.get("url_safe").and_then(|n| self.boolean(n, "url_safe")).unwrap_or(false);
        Some(CaptureDef { pool: pool?, var, source: source?, regex, path, max_len, url_safe, pos: fields.pos })
    }

    /// A regular expression with exactly one group, bounded in size.
    fn regex(&mut self, node: &Node) -> Option<String> {
        let text = self.string(node, "regex")?;
        match template::check_regex(text) {
            Ok(()) => Some(text.to_string()),
            Err(e) => {
                self.problem(node.pos, e);
                None
            }
        }
    }
}

/// RFC 3986 `pchar` and `/`: unreserved, sub-delims, `:`, `@`, `%`.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c)
}

fn percent_escapes_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().filter(|(_, b)| **b == b'%').all(|(i, _)| {
        bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    })
}

/// RFC 9110 `tchar`.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The hint for a template written without quotes, which YAML reads as a
/// mapping whose key is a mapping (`{{ x }}` is `{ {x: null}: null }`).
fn unquoted_template(node: &Node) -> &'static str {
    match &node.kind {
        NodeKind::Map(entries) if entries.first().is_some_and(|(key, _)| matches!(key.kind, NodeKind::Map(_))) => {
            ": a template used as a value must be quoted: \"{{ … }}\" (unquoted, YAML reads `{` as a mapping)"
        }
        _ => "",
    }
}

fn json_pointer_ok(p: &str) -> bool {
    if !(p.is_empty() || p.starts_with('/')) {
        return false;
    }
    let bytes = p.as_bytes();
    bytes.iter().enumerate().filter(|(_, b)| **b == b'~').all(|(i, _)| matches!(bytes.get(i + 1), Some(b'0' | b'1')))
}

/// The allowed key nearest to a mistyped one, if it is near.
fn closest<'a>(typed: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(typed, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

impl Model {
    /// Every request, traffic first, then setup, then the journeys' steps
    /// (in journey and step order).
    pub fn all_requests(&self) -> impl Iterator<Item = &RequestDef> {
        self.requests
            .iter()
            .chain(self.setup.iter().flat_map(|s| s.requests.iter()))
            .chain(self.journeys.iter().flat_map(JourneyDef::requests))
    }

    /// Checks what refers to what: unique names, known pools and requests,
    /// fallbacks without cycles. Every problem found is returned.
    pub fn check_references(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let all: Vec<&RequestDef> = self.all_requests().collect();
        for (i, r) in all.iter().enumerate() {
            if all[..i].iter().any(|o| o.name == r.name) {
                problems.push(Problem::new(r.pos, format!("request name `{}` is used twice", r.name)));
            }
        }
        let pool_names: Vec<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
        let known_pools = || {
            if pool_names.is_empty() { "none are declared under `pools`".to_string() } else { pool_names.join(", ") }
        };
        for r in &all {
            for (hole, pos) in r.templates().flat_map(Template::holes) {
                if let Some(name) = hole.pool()
                    && !pool_names.contains(&name)
                {
                    problems.push(Problem::new(pos, format!("unknown pool `{name}` (pools: {})", known_pools())));
                }
            }
            for c in &r.captures {
                if c.var.is_none() && !pool_names.contains(&c.pool.as_str()) {
                    problems.push(Problem::new(
                        c.pos,
                        format!("capture into unknown pool `{}` (pools: {})", c.pool, known_pools()),
                    ));
                }
            }
        }
        for r in &self.requests {
            let Some((target, pos)) = &r.fallback else { continue };
            match self.requests.iter().find(|o| &o.name == target) {
                None if all.iter().any(|o| &o.name == target) => {
                    problems.push(Problem::new(
                        *pos,
                        format!("fallback `{target}` is a setup request; name a request under `requests`"),
                    ));
                }
                None => {
                    let names: Vec<&str> = self.requests.iter().map(|o| o.name.as_str()).collect();
                    problems.push(Problem::new(
                        *pos,
                        format!("fallback to unknown request `{target}` (requests: {})", names.join(", ")),
                    ));
                }
                Some(o) if o.role == Role::Error => {
                    problems.push(Problem::new(*pos, format!("fallback `{target}` is an error request")));
                }
                Some(_) => {}
            }
        }
        problems.extend(self.check_journeys());
        // Fallback cycles: follow each chain; a chain longer than the number
        // of requests has come back on itself.
        for start in &self.requests {
            let mut chain = vec![start.name.as_str()];
            let mut current = start;
            while let Some((next, pos)) = &current.fallback {
                let Some(next_request) = self.requests.iter().find(|o| &o.name == next) else { break };
                if let Some(at) = chain.iter().position(|n| *n == next) {
                    // Report each cycle once, at the first of its members in file order.
                    let members = &chain[at..];
                    let first =
                        self.requests.iter().find(|o| members.contains(&o.name.as_str())).map(|o| o.name.as_str());
                    if first == Some(start.name.as_str()) {
                        let mut shown: Vec<&str> = members.to_vec();
                        shown.push(next);
                        let at = start.fallback.as_ref().map_or(*pos, |(_, p)| *p);
                        problems
                            .push(Problem::new(at, format!("fallbacks go round in a circle: {}", shown.join(" → "))));
                    }
                    break;
                }
                chain.push(next);
                current = next_request;
            }
        }
        problems.sort();
        problems.dedup();
        problems
    }

    /// What is odd but not wrong: unused pools, pools nothing fills,
    /// fallbacks that can never be used.
    pub fn warnings(&self) -> Vec<Problem> {
        let mut warnings = Vec::new();
        for pool in &self.pools {
            let read = self.all_requests().any(|r| r.pools_read().any(|p| p == pool.name));
            let filled =
                !pool.values.is_empty() || self.all_requests().any(|r| r.captures.iter().any(|c| c.pool == pool.name));
            if !read {
                warnings.push(Problem::new(pool.pos, format!("pool `{}` is never read by a request", pool.name)));
            }
            if !filled && read {
                warnings.push(Problem::new(
                    pool.pos,
                    format!("pool `{}` has no `values` and nothing captures into it: requests that read it always fall back", pool.name),
                ));
            }
        }
        for r in &self.requests {
            if let Some((target, pos)) = &r.fallback
                && r.pools_read().next().is_none()
            {
                warnings.push(Problem::new(
                    *pos,
                    format!("`{}` reads no pool, so its fallback `{target}` is never used", r.name),
                ));
            }
        }
        warnings.extend(self.journey_warnings());
        warnings
    }
}

impl RequestDef {
    /// Every template of the request: path, query values, header values, body strings.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        let mut body: Vec<&Template> = Vec::new();
        match &self.body {
            Some(Body::Raw(t)) => body.push(t),
            Some(Body::Json(json)) => json.templates(&mut body),
            None => {}
        }
        std::iter::once(&self.path)
            .chain(self.query.iter().map(|(_, t)| t))
            .chain(self.headers.iter().map(|(_, t)| t))
            .chain(body)
    }

    /// The pools it reads, in order of first use, each once.
    pub fn pools_read(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        for (hole, _) in self.templates().flat_map(Template::holes) {
            if let Some(pool) = hole.pool()
                && !seen.contains(&pool)
            {
                seen.push(pool);
            }
        }
        seen.into_iter()
    }

    /// The content type it sends, if it has a body.
    pub fn effective_content_type(&self) -> Option<&str> {
        match (&self.body, &self.content_type) {
            (None, _) => None,
            (Some(_), Some(ct)) => Some(ct),
            (Some(Body::Json(_)), None) => Some("application/json"),
            (Some(Body::Raw(_)), None) => Some("text/plain"),
        }
    }
}

impl Json {
    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            Json::Text(t) => out.push(t),
            Json::Array(items) => items.iter().for_each(|i| i.templates(out)),
            Json::Object(entries) => entries.iter().for_each(|(_, v)| v.templates(out)),
            Json::Null | Json::Bool(_) | Json::Number(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::yaml;

    fn read_str(text: &str) -> Result<Model, Vec<Problem>> {
        let (model, problems, _) = read(&yaml::parse(text).expect("YAML"));
        if problems.is_empty() { Ok(model) } else { Err(problems) }
    }

    /// The problems of `text`, as `line:col: message`.
    fn problems(text: &str) -> Vec<String> {
        let (model, mut all, _) = read(&yaml::parse(text).expect("YAML"));
        all.extend(model.check_references());
        all.sort();
        all.dedup();
        all.iter().map(|p| format!("{}: {}", p.pos, p.message)).collect()
    }

    fn assert_problem(text: &str, at: &str, fragment: &str) {
        let found = problems(text);
        assert!(
            found.iter().any(|p| p.starts_with(&format!("{at}: ")) && p.contains(fragment)),
            "expected `{at}: …{fragment}…` in {found:#?}\nfor:\n{text}"
        );
    }

    const MINIMAL: &str = "requests:\n  - name: a\n    weight: 1\n    method: GET\n    path: /\n";

    #[test]
    fn a_minimal_workload_reads() {
        let model = read_str(MINIMAL).unwrap();
        assert_eq!(model.requests.len(), 1);
        assert_eq!(model.requests[0].role, Role::Weighted(1));
        assert_eq!(model.requests[0].success, StatusSet::success());
        assert!(model.check_references().is_empty());
    }

    #[test]
    fn unknown_keys_are_refused_everywhere_with_a_suggestion() {
        assert_problem("requets: []\n", "1:1", "unknown key `requets` in the workload (did you mean `requests`?");
        assert_problem(
            "requests:\n  - name: a\n    wieght: 1\n    method: GET\n    path: /\n",
            "3:5",
            "did you mean `weight`",
        );
        assert_problem("pools:\n  p: {sise: 3}\nrequests: []\n", "2:7", "unknown key `sise` in a pool");
        assert_problem(
            "requests:\n  - {name: a, weight: 1, method: GET, path: /, capture: [{pool: p, jsn: /id}]}\n",
            "2:68",
            "unknown key `jsn`",
        );
        assert_problem("setup: {requests: [], every: 3}\nrequests: []\n", "1:23", "unknown key `every`");
        assert_problem(
            "setup:\n  requests:\n    - {name: s, method: GET, path: /, weight: 3}\nrequests: []\n",
            "3:39",
            "unknown key `weight` in a setup request",
        );
    }

    #[test]
    fn missing_name_method_or_path_is_named() {
        assert_problem("requests:\n  - {weight: 1, method: GET, path: /}\n", "2:5", "needs a `name`");
        assert_problem("requests:\n  - {name: a, weight: 1, path: /}\n", "2:5", "needs a `method`");
        assert_problem("requests:\n  - {name: a, weight: 1, method: GET}\n", "2:5", "needs a `path`");
        assert_problem("pools: {}\n", "1:1", "needs `requests`");
    }

    #[test]
    fn names_must_be_label_safe_and_unique() {
        assert_problem("requests:\n  - {name: 'a b', weight: 1, method: GET, path: /}\n", "2:12", "must be a letter");
        assert_problem(
            "requests:\n  - {name: a, weight: 1, method: GET, path: /}\n  - {name: a, weight: 1, method: GET, path: /x}\n",
            "3:5",
            "request name `a` is used twice",
        );
        assert_problem(
            "setup:\n  requests: [{name: a, method: GET, path: /}]\nrequests:\n  - {name: a, weight: 1, method: GET, path: /}\n",
            "2:14",
            "used twice",
        );
        assert_problem("pools:\n  p: ~\n  p: ~\nrequests: []\n", "3:3", "declared twice");
    }

    #[test]
    fn weights_are_whole_positive_numbers() {
        for (weight, fragment) in [
            ("0", "not `0` (to keep a request out"),
            ("-3", "not `-3`"),
            ("1.5", "not `1.5`"),
            ("'7'", "not `7`"),
            ("1000001", "from 1 to 1000000"),
            ("[1]", "not a list"),
        ] {
            let text = format!("requests:\n  - {{name: a, weight: {weight}, method: GET, path: /}}\n");
            assert_problem(&text, "2:23", fragment);
        }
        assert_problem("requests:\n  - {name: a, method: GET, path: /}\n", "2:5", "needs a `weight`");
        assert_problem(
            "requests:\n  - {name: a, weight: 0, method: GET, path: /}\n  - {name: b, weight: 0, method: GET, path: /}\n",
            "3:23",
            "from 1 to",
        );
        assert_problem(
            "requests:\n  - {name: e, error: true, method: GET, path: /}\n",
            "1:1",
            "no request has a weight",
        );
        assert_problem(
            "requests:\n  - {name: e, error: true, weight: 2, method: GET, path: /}\n",
            "2:36",
            "remove `weight`",
        );
    }

    #[test]
    fn methods_come_from_the_standard_set() {
        assert_problem(
            "requests:\n  - {name: a, weight: 1, method: BREW, path: /}\n",
            "2:34",
            "method `BREW` is not one of GET",
        );
        assert_problem("requests:\n  - {name: a, weight: 1, method: TRACE, path: /}\n", "2:34", "not one of");
        let model = read_str("requests:\n  - {name: a, weight: 1, method: patch, path: /}\n").unwrap();
        assert_eq!(model.requests[0].method, Method::Patch);
    }

    #[test]
    fn paths_start_with_a_slash_and_hold_only_path_characters() {
        let at = |path: &str| format!("requests:\n  - {{name: a, weight: 1, method: GET, path: {path}}}\n");
        assert_problem(&at("users"), "2:45", "must start with `/`");
        // Only a captured path may begin a path (see journey tests).
        assert_problem(&at("'{{ pool(p) }}/x'"), "2:46", "only when every capture into it has `path: true`");
        assert_problem(&at("'/a?b=1'"), "2:45", "put its parameters under `query`");
        assert_problem(&at("'/a#top'"), "2:45", "fragment");
        assert_problem(&at("'/a b'"), "2:45", "may not contain ' '");
        assert_problem(&at("'/a%zz'"), "2:45", "two hex digits");
        assert_problem(&at("\"/a\\r\\nX: y\""), "2:45", "may not contain '\\r'");
        assert!(read_str(&at("'/a/%20/{{ seq() }}/x:y@z'")).is_ok());
    }

    #[test]
    fn header_injection_and_reserved_headers_are_refused() {
        let at = |headers: &str| {
            format!("requests:\n  - {{name: a, weight: 1, method: GET, path: /, headers: {headers}}}\n")
        };
        assert_problem(&at("{X-A: \"v\\r\\nEvil: 1\"}"), "2:63", "control character '\\r'");
        assert_problem(&at("{X-A: \"v\\nEvil: 1\"}"), "2:63", "control character '\\n'");
        assert_problem(&at("{\"X-A\\r\\nEvil\": v}"), "2:58", "not a valid HTTP header name");
        assert_problem(&at("{'X A': v}"), "2:58", "not a valid HTTP header name");
        assert_problem(&at("{Host: evil}"), "2:58", "set by trafficgen");
        assert_problem(&at("{Content-Length: 5}"), "2:58", "set by trafficgen");
        assert_problem(&at("{Transfer-Encoding: chunked}"), "2:58", "set by trafficgen");
        assert_problem(&at("{Content-Type: x/y}"), "2:58", "content_type");
        assert_problem(&at("{X-A: 1, x-a: 2}"), "2:66", "given twice");
        assert!(read_str(&at("{Authorization: 'Bearer {{ pool(t) }}', X-Count: 3}")).is_ok());
    }

    #[test]
    fn templates_are_checked_where_they_are_written() {
        let at = |path: &str| format!("requests:\n  - {{name: a, weight: 1, method: GET, path: {path}}}\n");
        assert_problem(&at("'/u/{{ pool(ids)'"), "2:49", "does not close");
        assert_problem(&at("'/u/{{ random(1) }}'"), "2:49", "unknown template function `random`");
        // Unquoted, YAML reads `{{ … }}` as a mapping: say how to fix it,
        // in a body, a header, a query parameter and a path alike.
        assert_problem(
            "requests:\n  - name: a\n    weight: 1\n    method: POST\n    path: /\n    body:\n      n: {{ seq() }}\n",
            "7:11",
            "must be quoted",
        );
        let request = "requests:\n  - name: a\n    weight: 1\n    method: GET\n";
        for (extra, place) in [
            ("    path: /\n    headers:\n      Authorization: {{ pool(t) }}\n", "8:22"),
            ("    path: /\n    query:\n      q: {{ seq() }}\n", "8:10"),
            ("    path: {{ seq() }}\n", "6:11"),
        ] {
            let text = format!("pools: {{t: ~}}\n{request}{extra}");
            assert_problem(&text, place, "a template used as a value must be quoted");
        }
    }

    #[test]
    fn references_to_pools_and_requests_are_checked() {
        let text = "pools:\n  ids: ~\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(idz) }}', fallback: b}\n  - {name: b, weight: 1, method: POST, path: /, capture: {pool: idx, json: /id}}\n";
        assert_problem(text, "4:47", "unknown pool `idz` (pools: ids)");
        assert_problem(text, "5:58", "capture into unknown pool `idx`");
        assert_problem(
            "requests:\n  - {name: a, weight: 1, method: GET, path: /, fallback: nobody}\n",
            "2:58",
            "fallback to unknown request `nobody` (requests: a)",
        );
    }

    #[test]
    fn fallback_cycles_are_found_at_load() {
        let text = "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: b}\n  - {name: b, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: c}\n  - {name: c, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: a}\n";
        assert_problem(text, "3:73", "fallbacks go round in a circle: a → b → c → a");
        assert_eq!(problems(text).len(), 1, "one cycle, reported once: {:?}", problems(text));
        let own =
            "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: a}\n";
        assert_problem(own, "3:73", "circle: a → a");
        let error_target = "pools: {p: ~}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(p) }}', fallback: e}\n  - {name: e, error: true, method: GET, path: /}\n";
        assert_problem(error_target, "3:73", "is an error request");
    }

    #[test]
    fn bounds_on_requests_and_pools() {
        let mut text = String::from("requests:\n");
        for i in 0..=MAX_REQUESTS {
            text.push_str(&format!("  - {{name: r{i}, weight: 1, method: GET, path: /}}\n"));
        }
        assert_problem(&text, "66:5", "more than 64 requests");
        let mut pools = String::from("pools:\n");
        for i in 0..=MAX_POOLS {
            pools.push_str(&format!("  p{i}: ~\n"));
        }
        pools.push_str(MINIMAL);
        assert_problem(&pools, "18:3", "more than 16 pools");
    }

    #[test]
    fn bodies_become_json_or_stay_text() {
        let model = read_str(
            "requests:\n  - name: a\n    weight: 1\n    method: POST\n    path: /\n    body:\n      n: 1\n      f: 2.50\n      ok: true\n      none: ~\n      s: '{{ seq() }}'\n      list: [x, 2]\n",
        )
        .unwrap();
        let Some(Body::Json(Json::Object(entries))) = &model.requests[0].body else { panic!() };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["n", "f", "ok", "none", "s", "list"], "file order kept");
        assert_eq!(entries[1].1, Json::Number("2.5".into()));
        assert_problem(
            "requests:\n  - {name: a, weight: 1, method: POST, path: /, body: 'x'}\n",
            "2:55",
            "needs `content_type`",
        );
        assert_problem(
            "requests:\n  - {name: a, weight: 1, method: POST, path: /, body: {x: .inf}}\n",
            "2:59",
            "infinity",
        );
    }

    #[test]
    fn captures_take_a_pointer_or_a_header() {
        let at = |capture: &str| {
            format!(
                "pools: {{p: ~}}\nrequests:\n  - {{name: a, weight: 1, method: POST, path: /, capture: {capture}}}\n"
            )
        };
        assert_problem(&at("{pool: p, json: id}"), "3:74", "not a JSON pointer");
        assert_problem(&at("{pool: p, json: /a~2b}"), "3:74", "not a JSON pointer");
        assert_problem(&at("{pool: p}"), "3:58", "takes one of `json`");
        assert_problem(&at("{pool: p, json: /id, header: Location}"), "3:58", "takes one of");
        assert_problem(&at("{pool: p, header: 'Lo cation'}"), "3:76", "not a valid HTTP header name");
        assert_problem(&at("{pool: p, json: /id, max_len: 300}"), "3:88", "from 1 to 256");
        let model =
            read_str(&at("[{pool: p, json: /data/0/id, max_len: 64, url_safe: true}, {pool: p, header: Location}]"))
                .unwrap();
        let captures = &model.requests[0].captures;
        assert_eq!(captures[0].source, CaptureSource::Json("/data/0/id".into()));
        assert_eq!((captures[0].max_len, captures[0].url_safe), (64, true));
        assert_eq!(captures[1].source, CaptureSource::Header("Location".into()));
    }

    #[test]
    fn success_sets_take_codes_and_classes() {
        let model =
            read_str("requests:\n  - {name: a, weight: 1, method: GET, path: /, success: [2xx, 404]}\n").unwrap();
        let set = model.requests[0].success;
        assert!(set.contains(200) && set.contains(299) && set.contains(404));
        assert!(!set.contains(301) && !set.contains(500));
        assert_eq!(set.to_string(), "2xx, 404");
        assert_problem(
            "requests:\n  - {name: a, weight: 1, method: GET, path: /, success: [600]}\n",
            "2:58",
            "100 to 599",
        );
        assert_problem("requests:\n  - {name: a, weight: 1, method: GET, path: /, success: 6xx}\n", "2:57", "classes");
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let text = "requests:\n  - {name: a, weight: 0, method: BREW, path: x}\n  - {name: b, weight: 1, method: GET, path: /, colour: red}\n";
        let found = problems(text);
        assert_eq!(found.len(), 4, "{found:#?}");
    }

    #[test]
    fn pools_read_and_warnings() {
        let model = read_str(
            "pools:\n  ids: ~\n  unused: {size: 3, values: [1, two]}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(ids) }}/{{ pool(ids) }}', fallback: b}\n  - {name: b, weight: 1, method: GET, path: /, fallback: a}\n",
        )
        .unwrap();
        assert_eq!(model.requests[0].pools_read().collect::<Vec<_>>(), ["ids"]);
        assert_eq!(model.pools[1].values[0], Item { text: "1".into(), number: true });
        let warnings: Vec<String> = model.warnings().iter().map(|w| w.message.clone()).collect();
        assert!(warnings.iter().any(|w| w.contains("`unused` is never read")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("`ids` has no `values`")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("its fallback `a` is never used")), "{warnings:?}");
    }
}
