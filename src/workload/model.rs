//! The workload as the file says it: read from the YAML tree with every
//! key checked (unknown keys refused), every value typed, every mistake
//! collected with its place — not only the first — so one run of
//! `workload check` shows all of them.

use std::fmt;

use super::template::{self, Hole, Item, Origin, Part, Template};
use super::yaml::{Node, NodeKind, Plain, Pos};

mod journey;
mod lexical;
mod method;
mod setup;

pub use lexical::is_token_byte;
use lexical::{closest, is_path_char, json_pointer_ok, percent_escapes_ok, unquoted_template};
pub use method::{Method, StatusSet};

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
mod tests;
