//! The document's operations, in document order, and what each says about
//! its parameters, request body and answers. Reading them is cheap (no
//! schema is walked), so even a document of 100 000 operations is listed
//! quickly; only the operations a workload can hold are derived further.

use super::doc::{self, Value, escape_token};
use crate::workload::Method;

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation<'d> {
    pub method: Method,
    /// The path as the document writes it: `/users/{id}`.
    pub path: &'d str,
    /// The path item, `$ref` followed (its parameters apply too).
    pub item: &'d Value,
    pub op: &'d Value,
    pub operation_id: Option<&'d str>,
    pub summary: Option<&'d str>,
    pub deprecated: bool,
    /// `x-internal: true` marks an operation for operators, not users
    /// (an admin route); a derived workload never sends it.
    pub internal: bool,
}

impl Operation<'_> {
    /// `#/paths/~1users~1{id}/get`
    pub fn pointer(&self) -> String {
        format!("#/paths/{}/{}", escape_token(self.path), self.method.as_str().to_ascii_lowercase())
    }

    /// `GET /users/{id}`, shortened for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.method, doc::short(self.path))
    }

    /// Reads change nothing: GET, HEAD, OPTIONS.
    pub fn is_read(&self) -> bool {
        matches!(self.method, Method::Get | Method::Head | Method::Options)
    }
}

/// A problem with one part of the document, at its JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
}

impl Problem {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Problem {
        let message: String = message.into();
        Problem {
            pointer: pointer.into(),
            message: message
                .chars()
                .map(|c| if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { ' ' } else { c })
                .collect(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", doc::short(&self.pointer), self.message)
    }
}

/// The methods a path item may hold, in the order the specification lists them.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Every operation, and a problem for each path item that cannot be read.
pub fn list<'d>(root: &'d Value, problems: &mut impl FnMut(Problem)) -> Vec<Operation<'d>> {
    let mut out = Vec::new();
    let Some(paths) = root.get("paths").and_then(Value::as_object) else { return out };
    for (path, item) in paths.iter() {
        let pointer = format!("#/paths/{}", escape_token(path));
        if !path.starts_with('/') {
            problems(Problem::new(pointer, "a path must start with `/`; left out"));
            continue;
        }
        let item = match doc::follow(root, item) {
            Ok((item, _)) => item,
            Err(e) => {
                problems(Problem::new(pointer, format!("{e}; left out")));
                continue;
            }
        };
        let Some(object) = item.as_object() else { continue };
        for (key, op) in object.iter() {
            if !METHODS.contains(&key) || op.as_object().is_none() {
                continue;
            }
            let Some(method) = Method::parse(key) else {
                problems(Problem::new(format!("{pointer}/{key}"), "TRACE is not a method a workload sends; left out"));
                continue;
            };
            out.push(Operation {
                method,
                path,
                item,
                op,
                operation_id: op.str_at("operationId"),
                summary: op.str_at("summary"),
                deprecated: op.is_true("deprecated"),
                internal: op.is_true("x-internal"),
            });
        }
    }
    out
}

/// A parameter as the operation (or its path item) describes it.
#[derive(Debug, Clone)]
pub struct Param<'d> {
    pub name: &'d str,
    /// `path`, `query`, `header` or `cookie`.
    pub location: &'d str,
    pub required: bool,
    pub value: &'d Value,
}

impl<'d> Param<'d> {
    /// Its schema: `schema`, or the schema of its first `content` entry.
    pub fn schema(&self) -> Option<&'d Value> {
        self.value.get("schema").or_else(|| {
            self.value
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.iter().next())
                .and_then(|(_, m)| m.get("schema"))
        })
    }

    /// Its own example: `example`, or the first of `examples`.
    pub fn example(&self, root: &'d Value) -> Option<&'d Value> {
        self.value.get("example").or_else(|| first_example(root, self.value.get("examples")?))
    }
}

/// The first entry of an `examples` map (an Example object's `value`; an
/// `externalValue` is never fetched).
pub fn first_example<'d>(root: &'d Value, examples: &'d Value) -> Option<&'d Value> {
    let (_, first) = examples.as_object()?.iter().next()?;
    doc::follow(root, first).ok()?.0.get("value")
}

/// Most parameters of an operation (or path item) read.
const MAX_PARAMS: usize = 256;
/// Longest parameter name taken.
const MAX_PARAM_NAME: usize = 128;

/// The operation's parameters, the path item's included (the operation's
/// win on the same name and place).
pub fn parameters<'d>(root: &'d Value, operation: &Operation<'d>) -> Result<Vec<Param<'d>>, Problem> {
    let mut out: Vec<Param<'d>> = Vec::new();
    for (owner, pointer) in
        [(operation.op, operation.pointer()), (operation.item, format!("#/paths/{}", escape_token(operation.path)))]
    {
        let Some(list) = owner.get("parameters").and_then(Value::as_array) else { continue };
        for (i, raw) in list.iter().enumerate().take(MAX_PARAMS) {
            let at = format!("{pointer}/parameters/{i}");
            let (param, _) = doc::follow(root, raw).map_err(|e| Problem::new(&at, e.to_string()))?;
            let (Some(name), Some(location)) = (param.str_at("name"), param.str_at("in")) else {
                return Err(Problem::new(at, "a parameter needs `name` and `in`"));
            };
            if name.is_empty() || name.len() > MAX_PARAM_NAME || name.chars().any(char::is_control) {
                return Err(Problem::new(at, format!("parameter name `{}` cannot be sent", doc::short(name))));
            }
            if out.iter().any(|p| p.name == name && p.location == location) {
                continue; // the operation's own, read first, wins
            }
            let required = location == "path" || param.is_true("required");
            out.push(Param { name, location, required, value: param });
        }
    }
    Ok(out)
}

/// How a request body is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    Json,
    Form,
    Text,
}

/// The request body to send, if any: its media type, kind, and the media
/// object (schema, examples). `Err` when one is required and none can be.
pub fn request_body<'d>(
    root: &'d Value,
    operation: &Operation<'d>,
) -> Result<Option<(&'d str, MediaKind, &'d Value)>, Problem> {
    let pointer = format!("{}/requestBody", operation.pointer());
    let Some(raw) = operation.op.get("requestBody") else { return Ok(None) };
    let (body, _) = doc::follow(root, raw).map_err(|e| Problem::new(&pointer, e.to_string()))?;
    let required = body.is_true("required");
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return if required {
            Err(Problem::new(pointer, "a required body without `content`; left out"))
        } else {
            Ok(None)
        };
    };
    let kind = |media_type: &str| {
        let essence = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence == "application/json" || essence.ends_with("+json") || essence == "*/*" {
            Some((0, MediaKind::Json))
        } else if essence == "application/x-www-form-urlencoded" {
            Some((1, MediaKind::Form))
        } else if essence == "text/plain" {
            Some((2, MediaKind::Text))
        } else {
            None
        }
    };
    let chosen = content
        .iter()
        .filter_map(|(media_type, media)| kind(media_type).map(|(rank, kind)| (rank, media_type, kind, media)))
        .min_by_key(|(rank, ..)| *rank);
    match chosen {
        Some((_, media_type, kind, media)) => {
            let media_type = if media_type == "*/*" { "application/json" } else { media_type };
            Ok(Some((media_type, kind, media)))
        }
        None if required => {
            let types: Vec<String> = content.iter().take(4).map(|(t, _)| format!("`{}`", doc::short(t))).collect();
            Err(Problem::new(
                pointer,
                format!(
                    "no body trafficgen can write ({}; it writes JSON, form-urlencoded and plain text); left out",
                    types.join(", ")
                ),
            ))
        }
        None => Ok(None),
    }
}

/// What the operation says its answers are.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// Documented success codes (2xx); empty: any 2xx.
    pub success: Vec<u16>,
    /// A `2XX` range is documented.
    pub success_class: bool,
    /// Every documented code or range, as written (`201`, `4XX`, `default`).
    pub documented: Vec<String>,
    /// Every documented 2xx answer streams (`text/event-stream`).
    pub streams: bool,
}

pub fn answers(root: &Value, operation: &Operation<'_>) -> Answers {
    let mut out = Answers::default();
    let Some(responses) = operation.op.get("responses").and_then(Value::as_object) else { return out };
    let mut successes = 0;
    let mut streaming = 0;
    for (code, response) in responses.iter().take(64) {
        out.documented.push(doc::short(code));
        let is_success = if code.eq_ignore_ascii_case("2XX") {
            out.success_class = true;
            true
        } else if let Ok(n) = code.parse::<u16>() {
            let ok = (200..300).contains(&n);
            if ok {
                out.success.push(n);
            }
            ok
        } else {
            false
        };
        if is_success {
            successes += 1;
            let content =
                doc::follow(root, response).ok().and_then(|(r, _)| r.get("content")).and_then(Value::as_object);
            if content.is_some_and(|c| !c.is_empty() && c.iter().all(|(t, _)| t.starts_with("text/event-stream"))) {
                streaming += 1;
            }
        }
    }
    if out.success_class {
        out.success.clear();
    }
    out.streams = successes > 0 && streaming == successes;
    out
}

/// The JSON schema of the first documented success answer that has one,
/// with the response object (for its `links`).
pub fn success_schema<'d>(root: &'d Value, operation: &Operation<'d>) -> Option<&'d Value> {
    success_responses(root, operation).into_iter().find_map(|response| {
        let content = response.get("content").and_then(Value::as_object)?;
        content
            .iter()
            .find(|(t, _)| {
                let t = t.to_ascii_lowercase();
                t.starts_with("application/json") || t.contains("+json")
            })
            .and_then(|(_, media)| media.get("schema"))
    })
}

/// The success responses, `$ref`s followed, in document order.
pub fn success_responses<'d>(root: &'d Value, operation: &Operation<'d>) -> Vec<&'d Value> {
    let Some(responses) = operation.op.get("responses").and_then(Value::as_object) else { return Vec::new() };
    responses
        .iter()
        .take(64)
        .filter(|(code, _)| {
            code.eq_ignore_ascii_case("2XX") || code.parse::<u16>().is_ok_and(|n| (200..300).contains(&n))
        })
        .filter_map(|(_, r)| doc::follow(root, r).ok().map(|(r, _)| r))
        .collect()
}

/// The parts of a path template: literal text and `{name}` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'d> {
    Lit(&'d str),
    Param(&'d str),
}

/// `/users/{id}.json` → `/users/`, `{id}`, `.json`. `None` if a brace
/// does not close.
pub fn segments(path: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Segment::Lit(&rest[..open]));
        }
        let close = rest[open..].find('}')? + open;
        let name = &rest[open + 1..close];
        if name.is_empty() || name.contains('{') {
            return None;
        }
        out.push(Segment::Param(name));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Segment::Lit(rest));
    }
    Some(out)
}

/// The path with every parameter written `{}`: the shape two paths share.
pub fn shape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out.trim_end_matches('/').to_string()
}
