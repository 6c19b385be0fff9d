//! A workload derived from an OpenAPI 3.0 or 3.1 document: every operation
//! a request, with values from the document's examples or its schemas,
//! ids captured from the operations that create them, credentials read
//! from the environment where the security schemes say, a setup login
//! where a token is issued, a create → read → update (→ delete) journey
//! per resource, and weights that favour reads. The result is workload
//! text — an ordinary, editable file that the workload reader then checks
//! like any other.
//!
//! Pure: bytes in, text out, no I/O. `trafficgen workload from-openapi`
//! and `OPENAPI_PATH` (in `app`) read the document and use the text.
//!
//! # Layout
//! - [`doc`]: the document as a bounded tree; `$ref`s inside it.
//! - [`operations`]: operations, parameters, bodies and answers, as written.
//! - [`schema`]: schemas flattened (`$ref`, `allOf`), and values made from
//!   them (`schema/values.rs`); [`pattern`]: simple patterns.
//! - [`resources`]: what creates what another reads (links, path shapes).
//! - [`auth`]: security schemes, credentials, the login.
//! - `build`: one operation into one request; `assemble`: the requests,
//!   pools, login and header into a file; [`write`]: the YAML text.
//!
//! # Bounds
//! A document is at most [`MAX_DOCUMENT_BYTES`] and [`doc::MAX_NODES`]
//! values; schema walks share a step budget ([`MAX_SCHEMA_STEPS`]) and each
//! value has its own; a workload holds at most [`MAX_REQUESTS`] requests and
//! [`MAX_POOLS`] pools, so the rest of a large document is listed as left
//! out. Nothing here grows with the input beyond the document's own tree.

pub mod auth;
mod build;
pub mod doc;
pub mod operations;
pub mod pattern;
pub mod resources;
pub mod sample;
pub mod schema;
pub mod write;

use std::cell::Cell;

use crate::workload::{MAX_POOLS, MAX_REQUESTS, Method};
pub use auth::LoginChoice;
use build::{BodyDraft, Draft, PathPart};
pub use operations::Problem;
pub use resources::CrudFlow;
use sample::Text;

/// Largest document read.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;
/// Schema steps for the whole document.
pub const MAX_SCHEMA_STEPS: usize = 2_000_000;
/// Default weight of a read (GET, HEAD, OPTIONS).
pub const READ_WEIGHT: u32 = 4;
/// Default weight of a write (POST, PUT, PATCH, DELETE).
pub const WRITE_WEIGHT: u32 = 1;
/// Size of each pool of captured ids.
const POOL_SIZE: usize = 100;
/// The pool the login's token goes into.
const TOKEN_POOL: &str = "login_token";
/// How often the setup login runs again: under the 5 minutes many
/// identity providers give an access token.
const LOGIN_EVERY_SECS: u64 = 240;
/// Most journey steps, so that the requests of their own keep room.
const MAX_JOURNEY_STEPS: usize = 32;
/// Most journeys in a workload.
const MAX_JOURNEYS: usize = crate::workload::model::MAX_JOURNEYS;
/// Most problems kept one by one.
pub const MAX_PROBLEMS: usize = 1000;
/// Most left-out operations listed one by one in the file.
const MAX_LISTED: usize = 40;

/// How to derive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub read_weight: u32,
    pub write_weight: u32,
    pub include_delete: bool,
    pub include_deprecated: bool,
    pub login: LoginChoice,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            read_weight: READ_WEIGHT,
            write_weight: WRITE_WEIGHT,
            include_delete: false,
            include_deprecated: false,
            login: LoginChoice::Auto,
        }
    }
}

/// A document that cannot be used at all, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The derived workload.
#[derive(Debug, Clone)]
pub struct Derived {
    /// The workload file's text.
    pub text: String,
    /// A line for each part of the document that could not be used (the
    /// first [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Problems beyond those.
    pub more_problems: usize,
    /// Requests written (setup included).
    pub requests: usize,
    /// Operations left out, for any reason.
    pub left_out: usize,
    /// The create → read → update (→ delete) journey of each resource.
    pub flows: Vec<NamedFlow>,
    /// The environment variables the credentials are read from, each once.
    pub credentials: Vec<String>,
    /// `3.1.0`
    pub version: String,
}

/// A resource's journey, as written: its name, and the operations its steps
/// send (by operationId, or `METHOD /path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFlow {
    pub resource: String,
    pub journey: String,
    pub create: String,
    pub read: Option<String>,
    pub update: Option<String>,
    pub delete: Option<String>,
}

/// Stand-in values for the variables a derived workload's credentials read,
/// to check the workload without them (the values are never sent).
pub fn stand_in_env(derived: &Derived) -> crate::workload::EnvSource {
    let values = derived.credentials.iter().map(|name| (name.clone(), crate::workload::Secret("x".to_string())));
    crate::workload::EnvSource::Fixed(std::sync::Arc::new(values.collect()))
}

/// Derives a workload from a document's bytes; `source` names it in the
/// file's header.
pub fn derive(source: &str, bytes: &[u8], options: &Options) -> Result<Derived, Refusal> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Refusal(format!(
            "larger than {} MiB; an API description is much smaller",
            MAX_DOCUMENT_BYTES / (1024 * 1024)
        )));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| Refusal(format!("not UTF-8 text (at byte {})", e.valid_up_to())))?;
    let root = doc::read(text).map_err(|e| Refusal(e.0))?;
    let version = version(&root)?;
    Deriver::new(&root, options, source, version).run()
}

/// The `openapi` version, if it is one we read.
fn version(root: &doc::Value) -> Result<String, Refusal> {
    if root.as_object().is_none() {
        return Err(Refusal(format!("an OpenAPI document is an object, not {}", root.describe())));
    }
    if let Some(swagger) = root.get("swagger") {
        let v = swagger.as_str().map_or_else(|| "2.0".to_string(), doc::short);
        return Err(Refusal(format!(
            "this is a Swagger {v} document; trafficgen reads OpenAPI 3.0 and 3.1: convert it first (e.g. `npx swagger2openapi FILE -o openapi3.json`, or the Swagger Editor's Edit → Convert to OpenAPI 3), then derive from that"
        )));
    }
    let Some(v) = root.get("openapi").and_then(doc::Value::as_str) else {
        return Err(Refusal("no `openapi` version: this is not an OpenAPI 3 document".to_string()));
    };
    if !(v.starts_with("3.0") || v.starts_with("3.1") || v.starts_with("3.2")) {
        return Err(Refusal(format!("OpenAPI `{}` is not a version trafficgen reads (3.0 and 3.1)", doc::short(v))));
    }
    Ok(v.to_string())
}

struct Deriver<'a, 'd> {
    root: &'d doc::Value,
    options: &'a Options,
    source: &'a str,
    version: String,
    problems: Vec<Problem>,
    more_problems: usize,
}

/// Why an operation is not in the workload.
struct LeftOut {
    label: String,
    why: String,
}

/// The operations left out: how many, and the first few with why (a
/// document of 100 000 operations keeps 40 of them, not 99 936).
#[derive(Default)]
struct LeftOutList {
    shown: Vec<LeftOut>,
    count: usize,
}

impl LeftOutList {
    fn push(&mut self, op: &operations::Operation<'_>, why: String) {
        self.count += 1;
        if self.shown.len() < MAX_LISTED {
            self.shown.push(LeftOut { label: describe(op), why });
        }
    }
}

impl<'a, 'd> Deriver<'a, 'd> {
    fn new(root: &'d doc::Value, options: &'a Options, source: &'a str, version: String) -> Self {
        Deriver { root, options, source, version, problems: Vec::new(), more_problems: 0 }
    }

    /// Kept up to [`MAX_PROBLEMS`]; the rest counted.
    fn problem(&mut self, problem: Problem) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.more_problems += 1;
        }
    }

    fn run(mut self) -> Result<Derived, Refusal> {
        let root = self.root;
        let ops = operations::list(root, &mut |p| self.problem(p));
        if ops.is_empty() {
            return Err(Refusal("no operations under `paths`: nothing to send".to_string()));
        }
        let mut left_out = LeftOutList::default();
        let usable: Vec<bool> = ops
            .iter()
            .map(|op| {
                let why = if op.internal {
                    Some("marked x-internal (an operator's route, not a user's)".to_string())
                } else if op.deprecated && !self.options.include_deprecated {
                    Some("deprecated (--include-deprecated sends it)".to_string())
                } else if op.method == Method::Delete && !self.options.include_delete {
                    Some(
                        "DELETE is left out unless --include-delete (then a resource's journey deletes what it created)"
                            .to_string(),
                    )
                } else if operations::answers(root, op).streams {
                    Some(
                        "answers a stream (text/event-stream), which a request of a load test would hold open"
                            .to_string(),
                    )
                } else {
                    None
                };
                if let Some(why) = &why {
                    left_out.push(op, why.clone());
                }
                why.is_none()
            })
            .collect();

        let budget = Cell::new(MAX_SCHEMA_STEPS);
        let mut walker = schema::Walker::new(root, &budget);
        let resources = resources::find(root, &ops, &usable, &mut walker);
        let mut login = auth::find_login(root, &ops, &usable, &self.options.login, &mut walker).map_err(Refusal)?;
        let base = write::path_literal(&auth::server_base(root), true);

        // The login first: whether it can be built decides how the others
        // authenticate.
        let mut setup: Option<(Draft, String)> = None;
        if let Some(auth::Login::Operation { op, token_pointer, why }) = &login {
            let cx = build::Context { root, ops: &ops, resources: &resources, base: base.clone(), login: false };
            match build::build(&cx, *op, &mut walker) {
                Ok(mut draft) => {
                    login_body(&mut draft);
                    draft.notes.push(format!("the setup login: {why}; its token goes into {TOKEN_POOL}"));
                    setup = Some((draft, token_pointer.clone()));
                }
                Err(problem) => {
                    left_out.push(&ops[*op], problem.message.clone());
                    self.problem(problem);
                    login = None;
                }
            }
        }
        let login_op = match &login {
            Some(auth::Login::Operation { op, .. }) => Some(*op),
            _ => None,
        };
        // A journey per resource: create → read → update (→ delete), each
        // instance on the id it created. Their steps count against the
        // bound of requests, so they are planned first.
        let mut journeys: Vec<CrudFlow> = Vec::new();
        let mut journey_steps = 0;
        for flow in resources.flows.iter().filter(|f| Some(f.create) != login_op) {
            let steps = [flow.read, flow.update, flow.delete].iter().flatten().count() + 1;
            if journeys.len() == MAX_JOURNEYS || journey_steps + steps > MAX_JOURNEY_STEPS {
                break;
            }
            journey_steps += steps;
            journeys.push(flow.clone());
        }
        // A DELETE of a resource with a journey is sent only there, on the
        // id the instance created, so it never takes an id a read needs.
        let journey_only: Vec<usize> = journeys.iter().filter_map(|f| f.delete).collect();
        let cx = build::Context { root, ops: &ops, resources: &resources, base: base.clone(), login: login.is_some() };
        let room = MAX_REQUESTS - usize::from(login.is_some()) - journey_steps;
        let mut drafts: Vec<Draft> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if !usable[i] || Some(i) == login_op || journey_only.contains(&i) {
                continue;
            }
            if drafts.len() == room {
                left_out.push(op, format!("a workload holds at most {MAX_REQUESTS} requests"));
                continue;
            }
            match build::build(&cx, i, &mut walker) {
                Ok(draft) => drafts.push(draft),
                Err(problem) => {
                    left_out.push(op, problem.message.clone());
                    self.problem(problem);
                }
            }
        }
        // The journeys' operations that are not also requests of their own.
        let mut steps_only: Vec<Draft> = Vec::new();
        for op in journeys.iter().flat_map(|f| [Some(f.create), f.read, f.update, f.delete]).flatten() {
            if drafts.iter().chain(steps_only.iter()).any(|d| d.op == op) {
                continue;
            }
            match build::build(&cx, op, &mut walker) {
                Ok(draft) => steps_only.push(draft),
                Err(problem) => {
                    if journey_only.contains(&op) {
                        left_out.push(&ops[op], problem.message.clone());
                    }
                    self.problem(problem);
                }
            }
        }
        if drafts.is_empty() {
            let first = self.problems.first().map(|p| format!(" (first: {p})")).unwrap_or_default();
            return Err(Refusal(format!("no operation could be made into a request{first}")));
        }
        self.write(assemble::Parts {
            ops: &ops,
            resources: &resources,
            login,
            setup,
            drafts,
            steps_only,
            journeys,
            left_out,
            base,
        })
    }
}

/// The login's body: the credentials from the environment, the OAuth2
/// grant type, its required fields; nothing else.
fn login_body(draft: &mut Draft) {
    let fill = |name: &str, value: Text| -> Text {
        if auth::is_password(name) {
            auth::credential(auth::PASSWORD_VAR)
        } else if auth::is_username(name) {
            auth::credential(auth::USERNAME_VAR)
        } else if name == "grant_type" {
            Text::lit("password")
        } else {
            value
        }
    };
    match &mut draft.body {
        Some(BodyDraft::Form(fields, _)) => {
            for (name, value) in fields.iter_mut() {
                *value = fill(name, std::mem::take(value));
            }
            if !fields.iter().any(|(n, _)| n == "grant_type") {
                fields.insert(0, ("grant_type".to_string(), Text::lit("password")));
            }
            fields.retain(|(n, _)| n == "grant_type" || auth::is_password(n) || auth::is_username(n));
        }
        Some(BodyDraft::Json(sample::Sample::Object(entries), _)) => {
            for (name, value) in entries.iter_mut() {
                if auth::is_password(name) || auth::is_username(name) {
                    *value = sample::Sample::Text(fill(name, Text::default()));
                }
            }
        }
        _ => {}
    }
}

/// `GET /users/{id} (getUser)`
fn describe(op: &operations::Operation<'_>) -> String {
    match op.operation_id {
        Some(id) => format!("{} ({})", op.label(), doc::short(id)),
        None => op.label(),
    }
}

mod assemble;

#[cfg(test)]
mod tests;
