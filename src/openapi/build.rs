//! One operation into one request: its path with parameters filled (from a
//! pool where another operation creates what it names), required and
//! exemplified query parameters and headers, credentials, a body from the
//! examples or the schema, and the answer codes that count as success.

use super::auth::{self, Credential};
use super::doc::{self, Value};
use super::operations::{self, MediaKind, Operation, Param, Problem, Segment};
use super::resources::Resources;
use super::sample::{Sample, Text};
use super::schema::{Purpose, Walker, from_json};
use super::write;

/// Longest documented path taken.
const MAX_PATH: usize = 1024;

/// A part of a request's path.
#[derive(Debug, Clone)]
pub enum PathPart {
    /// Literal text, already percent-encoded.
    Lit(String),
    /// A parameter: from the source's pool when there is one, else `value`.
    Param { name: String, source: Option<usize>, value: Text },
}

/// A request body before it is written.
#[derive(Debug, Clone)]
pub enum BodyDraft {
    Json(Sample, String),
    Form(Vec<(String, Text)>, String),
    Text(Text, String),
}

/// An operation made into a request, before pools are decided.
#[derive(Debug, Clone)]
pub struct Draft {
    pub op: usize,
    pub path: Vec<PathPart>,
    pub query: Vec<(String, Text)>,
    pub headers: Vec<(String, Text)>,
    pub cookies: Vec<(String, Text)>,
    pub body: Option<BodyDraft>,
    /// Sends the login's token.
    pub login_token: bool,
    pub answers: operations::Answers,
    /// For the comment: what was left out or guessed.
    pub notes: Vec<String>,
}

/// What every operation is built with.
pub struct Context<'a, 'd> {
    pub root: &'d Value,
    pub ops: &'a [Operation<'d>],
    pub resources: &'a Resources,
    /// The path every documented path is under (`/api/v1`), encoded.
    pub base: String,
    pub login: bool,
}

pub fn build<'d>(cx: &Context<'_, 'd>, index: usize, walker: &mut Walker<'d>) -> Result<Draft, Problem> {
    let operation = &cx.ops[index];
    let pointer = operation.pointer();
    if operation.path.len() > MAX_PATH {
        return Err(Problem::new(&pointer, format!("the path is longer than {MAX_PATH} bytes; left out")));
    }
    let params = operations::parameters(cx.root, operation)?;
    let answers = operations::answers(cx.root, operation);
    let mut draft = Draft {
        op: index,
        path: Vec::new(),
        query: Vec::new(),
        headers: Vec::new(),
        cookies: Vec::new(),
        body: None,
        login_token: false,
        answers,
        notes: Vec::new(),
    };

    let segments = operations::segments(operation.path)
        .ok_or_else(|| Problem::new(&pointer, "a `{` in the path does not close; left out"))?;
    if !cx.base.is_empty() {
        draft.path.push(PathPart::Lit(cx.base.clone()));
    }
    for segment in segments {
        match segment {
            Segment::Lit(text) => draft.path.push(PathPart::Lit(write::path_literal(text, true))),
            Segment::Param(name) => {
                let Some(param) = params.iter().find(|p| p.location == "path" && p.name == name) else {
                    return Err(Problem::new(
                        format!("{pointer}/parameters"),
                        format!("path parameter `{}` is not described; left out", doc::short(name)),
                    ));
                };
                let value = param_value(cx, &pointer, param, walker)?;
                let source = cx.resources.source_for(index, operation, name);
                draft.path.push(PathPart::Param { name: name.to_string(), source, value });
            }
        }
    }

    let mut optional = Vec::new();
    for param in params.iter().filter(|p| p.location != "path") {
        let exemplified = param.example(cx.root).is_some()
            || param.schema().and_then(|s| doc::follow(cx.root, s).ok()).is_some_and(|(s, _)| {
                s.get("default").is_some() || s.get("example").is_some() || s.get("examples").is_some()
            });
        // The specification says Accept, Content-Type and Authorization
        // header parameters are ignored; trafficgen sets the framing ones.
        if param.location == "header" && IGNORED.contains(&param.name.to_ascii_lowercase().as_str()) {
            continue;
        }
        if !param.required && !exemplified {
            optional.push(format!("{} ({})", param.name, param.location));
            continue;
        }
        let value = match param_value(cx, &pointer, param, walker) {
            Ok(value) => value,
            Err(_) if !param.required => {
                optional.push(format!("{} ({})", param.name, param.location));
                continue;
            }
            Err(e) => return Err(e),
        };
        match param.location {
            "query" if query_name_ok(param.name) => draft.query.push((param.name.to_string(), value)),
            "header" if header_name_ok(param.name) => draft.headers.push((param.name.to_string(), value)),
            "cookie" if !param.name.is_empty() => draft.cookies.push((param.name.to_string(), value)),
            _ if param.required => {
                return Err(Problem::new(
                    format!("{pointer}/parameters"),
                    format!(
                        "parameter `{}` in `{}` cannot be sent; left out",
                        doc::short(param.name),
                        doc::short(param.location)
                    ),
                ));
            }
            _ => {}
        }
    }
    if !optional.is_empty() {
        let shown: Vec<&str> = optional.iter().take(8).map(String::as_str).collect();
        let more = if optional.len() > 8 { format!(" and {} more", optional.len() - 8) } else { String::new() };
        draft.notes.push(format!("optional, not sent: {}{more}", shown.join(", ")));
    }

    for credential in auth::credentials(cx.root, operation, cx.login)? {
        match credential {
            Credential::LoginToken => draft.login_token = true,
            Credential::Header(name, value) if header_name_ok(&name) => {
                draft.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                draft.headers.push((name, value));
            }
            Credential::Query(name, value) if query_name_ok(&name) => {
                draft.query.retain(|(n, _)| *n != name);
                draft.query.push((name, value));
            }
            Credential::Cookie(name, value) if !name.is_empty() => draft.cookies.push((name, value)),
            Credential::Header(name, _) | Credential::Query(name, _) | Credential::Cookie(name, _) => {
                return Err(Problem::new(
                    format!("{pointer}/security"),
                    format!("the API key's name `{}` cannot be sent; left out", doc::short(&name)),
                ));
            }
        }
    }

    draft.body = body(cx.root, operation, walker, &mut draft.notes)?;
    // Each name once (the workload refuses a header or parameter twice).
    let mut seen: Vec<String> = Vec::new();
    draft.headers.retain(|(n, _)| {
        let lower = n.to_ascii_lowercase();
        let first = !seen.contains(&lower);
        seen.push(lower);
        first
    });
    let mut seen: Vec<String> = Vec::new();
    draft.query.retain(|(n, _)| {
        let first = !seen.contains(n);
        seen.push(n.clone());
        first
    });
    let path_bytes: usize = draft
        .path
        .iter()
        .map(|p| match p {
            PathPart::Lit(l) => l.len(),
            PathPart::Param { value, .. } => write::path_value(value).len().max(64),
        })
        .sum();
    if path_bytes > MAX_WRITTEN_PATH {
        return Err(Problem::new(
            &pointer,
            format!("the path would be longer than {MAX_WRITTEN_PATH} bytes; left out"),
        ));
    }
    Ok(draft)
}

/// Longest path written (a workload's path is at most 8 KiB).
const MAX_WRITTEN_PATH: usize = 4096;

/// Headers trafficgen sets itself.
const FRAMING: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "content-type",
];

/// Header parameters the specification says are ignored (the media types
/// and the security schemes say them).
const IGNORED: [&str; 3] = ["accept", "content-type", "authorization"];

/// A header name a workload takes: a token, at most 64 long, not one of
/// trafficgen's own.
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(crate::workload::model::is_token_byte)
        && !FRAMING.contains(&name.to_ascii_lowercase().as_str())
}

/// A query parameter name a workload takes: not empty, not a template.
fn query_name_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains("{{") && !name.chars().any(char::is_control)
}

/// A media type a workload takes as `content_type`.
fn media_type_ok(media_type: &str) -> bool {
    media_type.contains('/')
        && media_type.len() <= 256
        && !media_type.contains("{{")
        && !media_type.chars().any(char::is_control)
}

/// A parameter's value: its example, else one made from its schema.
fn param_value<'d>(
    cx: &Context<'_, 'd>,
    pointer: &str,
    param: &Param<'d>,
    walker: &mut Walker<'d>,
) -> Result<Text, Problem> {
    let at = || format!("{pointer}/parameters/{}", doc::short(param.name));
    walker.reset();
    let sample = match (param.example(cx.root).and_then(|e| from_json(e, 0)), param.schema()) {
        (Some(example), _) => example,
        (None, Some(schema)) => walker
            .value(schema, Purpose::Request, 0, None)
            .map_err(|e| Problem::new(at(), format!("{}; left out", e.0)))?,
        (None, None) => Sample::Text(Text::hole("random_int(1, 100)")),
    };
    // A list is sent as its first item (`?tag=a`, which an exploded form
    // parameter of one item is).
    let sample = match sample {
        Sample::Array(items) => items.into_iter().next().unwrap_or(Sample::Text(Text::hole("random_string(8)"))),
        other => other,
    };
    sample.as_text().ok_or_else(|| Problem::new(at(), "an object parameter cannot be written yet; left out"))
}

/// The body to send, if any.
fn body<'d>(
    root: &'d Value,
    operation: &Operation<'d>,
    walker: &mut Walker<'d>,
    notes: &mut Vec<String>,
) -> Result<Option<BodyDraft>, Problem> {
    let pointer = format!("{}/requestBody", operation.pointer());
    let Some((media_type, kind, media)) = operations::request_body(root, operation)? else { return Ok(None) };
    let required = doc::follow(root, operation.op.get("requestBody").unwrap_or(&Value::Null))
        .is_ok_and(|(b, _)| b.is_true("required"));
    let example =
        media.get("example").or_else(|| media.get("examples").and_then(|e| operations::first_example(root, e)));
    walker.reset();
    let made = match (media.get("schema"), example) {
        (Some(schema), example) => walker.value(schema, Purpose::Request, 0, example).map_err(|e| e.0),
        (None, Some(example)) => from_json(example, 0).ok_or_else(|| "the example is too large".to_string()),
        (None, None) => Err("no schema or example to make a body from".to_string()),
    };
    notes.append(&mut walker.notes);
    let sample = match made {
        Ok(sample) => sample,
        Err(why) if !required => {
            notes.push(format!("sent without its optional body: {why}"));
            return Ok(None);
        }
        Err(why) => return Err(Problem::new(pointer, format!("{why}; left out"))),
    };
    let media_type = if media_type_ok(media_type) {
        media_type
    } else {
        match kind {
            MediaKind::Json => "application/json",
            MediaKind::Form => "application/x-www-form-urlencoded",
            MediaKind::Text => "text/plain",
        }
    };
    Ok(Some(match kind {
        MediaKind::Json => BodyDraft::Json(sample, media_type.to_string()),
        MediaKind::Text => match sample.as_text() {
            Some(text) => BodyDraft::Text(text, media_type.to_string()),
            None => return Err(Problem::new(pointer, "a text body whose schema is not text; left out")),
        },
        MediaKind::Form => {
            let Sample::Object(entries) = sample else {
                return Err(Problem::new(pointer, "a form body whose schema is not an object; left out"));
            };
            let mut fields = Vec::new();
            for (name, value) in entries {
                match value {
                    Sample::Array(items) => {
                        fields.extend(items.iter().filter_map(Sample::as_text).map(|t| (name.clone(), t)))
                    }
                    Sample::Null => {}
                    other => match other.as_text() {
                        Some(text) => fields.push((name, text)),
                        None => notes.push(format!("form field `{}` is an object: not sent", doc::short(&name))),
                    },
                }
            }
            BodyDraft::Form(fields, media_type.to_string())
        }
    }))
}
