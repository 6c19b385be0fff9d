//! Workloads: the traffic as data. A YAML (or JSON) file names the
//! requests, their weights, templates for what varies, captures that fill
//! pools from answers, fallbacks, and setup requests; it is read and checked
//! once ([`load_file`]) and compiled into request templates the engine
//! renders without parsing anything per request.
//!
//! # Layout
//! - [`yaml`]: text to a tree of nodes that know their `line:column`.
//! - [`model`]: the file as parsed and checked ([`model::Model`]): unknown
//!   keys refused, every problem collected with its place.
//! - [`template`]: `{{ function(args) }}` holes, parsed once.
//! - `compile`: the model into literal byte runs and typed holes per
//!   request, a weight table, pool sizes.
//! - [`render`]: drawing (weights, fallbacks, pool picks) and rendering
//!   into a reused buffer; [`render::RunState`] holds the pools.
//! - [`capture`]: answers into pools. [`pool`]: the bounded rings.
//! - `builtin`: the orders workload the sidecar runs by default.
//! - [`check`]: `trafficgen workload check FILE`.
//!
//! # How the engine uses it
//! Once: `let workload = Arc::new(workload::orders(weights, &options)?)`
//! (or [`load_file`]) and `let mut state = RunState::new(&workload)` on the
//! worker thread. Per request: `match workload.draw(&mut rng, &state)`:
//! `Draw::Send(chosen)` → `workload.render(&chosen, &mut rng, &mut state,
//! &mut conn.out)`, label it `workload.name(chosen.request())`, keep the body
//! if `workload.wants_body(id)`; `Draw::Unmet` → count it, send nothing.
//! Per answer: `workload.is_success(id, status)`, then
//! `workload.capture(id, status, &headers, body, &mut state)`.

mod builtin;
pub mod capture;
pub mod check;
mod compile;
pub mod data;
pub mod escape;
pub mod focus;
pub mod journey;
mod locals;
pub mod memory;
pub mod mix;
pub mod model;
pub mod pool;
pub mod render;
mod setup;
pub mod template;
pub mod yaml;

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

pub use builtin::{BUILTIN_SOURCE, ORDER_IDS, OrderWeights, orders, orders_model};
pub use capture::CaptureReport;
pub use compile::journeys::{JourneyId, Step};
use compile::{Compiled, MediaKind};
pub use compile::{MAX_ENV_BYTES, MAX_REQUEST_BYTES, PoolId, RequestId};
pub use journey::{Arrival, Missing, NoRow};
pub use locals::Locals;
pub use model::{MAX_POOLS, MAX_REQUESTS, Method, Model, OnFailure, PauseDef, Problem, Role};
pub use render::{Chosen, Clock, Draw, NextTrace, RequestParts, RunState};
pub use setup::RefreshError;

use crate::base::url::TargetUrl;

/// Largest workload file (or `PUT /workload` body).
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// What every request says it is.
pub const USER_AGENT: &str = concat!("trafficgen/", env!("CARGO_PKG_VERSION"));

/// The parts of `TARGET_URL` a request is rendered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`, for `Host`.
    pub authority: String,
    /// Put before every path, without a trailing slash (often empty).
    pub path_prefix: String,
    pub user_agent: String,
    /// W3C trace context and the synthetic-traffic marker on every request.
    pub trace: TraceHeaders,
}

impl Target {
    pub fn new(url: &TargetUrl) -> Target {
        Target {
            authority: url.authority().to_string(),
            path_prefix: url.path_prefix().to_string(),
            user_agent: USER_AGENT.to_string(),
            trace: TraceHeaders::default(),
        }
    }

    pub fn with_trace(mut self, trace: TraceHeaders) -> Target {
        self.trace = trace;
        self
    }
}

/// The marker header every generated request carries with trace headers
/// on, so services and tracing backends can tell synthetic traffic apart.
pub const SYNTHETIC_HEADER: (&str, &str) = ("X-Synthetic-Traffic", "trafficgen");

/// The W3C baggage every request carries with `TRACE_BAGGAGE`: the mark
/// the OpenTelemetry demo's services look for on synthetic traffic, which
/// instrumented services pass on to the services they call.
pub const SYNTHETIC_BAGGAGE: (&str, &str) = ("baggage", "synthetic_request=true");

/// Whether requests carry `traceparent` (random trace and span ids per
/// request) and `X-Synthetic-Traffic: trafficgen` (`TRACE_HEADERS`), the
/// sampled flag of `traceparent` (`TRACE_SAMPLED`; a renderer given a
/// trace to continue takes its flag instead, see [`RunState::set_trace`])
/// and `baggage: synthetic_request=true` (`TRACE_BAGGAGE`). A workload that
/// sets its own `traceparent` or `baggage` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceHeaders {
    Off,
    On { sampled: bool, baggage: bool },
}

impl Default for TraceHeaders {
    fn default() -> Self {
        TraceHeaders::On { sampled: true, baggage: false }
    }
}

/// What a workload is compiled for.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Size of a pool that does not give one (`ID_BUFFER_SIZE`).
    pub default_pool_size: usize,
    /// Where data files are read (`DATA_DIR`); `None`: next to the
    /// workload file ([`load_file`]), and nowhere for a workload given as
    /// text (`PUT /workload`), which then cannot have data tables.
    pub data_dir: Option<PathBuf>,
    /// Where `env(…)` reads.
    pub env: EnvSource,
}

impl Options {
    /// For `target`, pools of `default_pool_size`, the process's
    /// environment, data next to the workload file.
    pub fn new(target: Target, default_pool_size: usize) -> Options {
        Options { target, default_pool_size, data_dir: None, env: EnvSource::Process }
    }

    /// Data files from `dir` (`DATA_DIR`), whatever the workload's source.
    pub fn with_data_dir(mut self, dir: Option<PathBuf>) -> Options {
        self.data_dir = dir;
        self
    }

    pub fn with_env(mut self, env: EnvSource) -> Options {
        self.env = env;
        self
    }
}

/// Where `env(NAME)` reads `NAME` (only names under
/// [`template::ENV_PREFIX`] are ever asked for).
#[derive(Debug, Clone, Default)]
pub enum EnvSource {
    /// The sidecar's own environment.
    #[default]
    Process,
    /// Fixed values (tests, samples). `Debug` shows the names only.
    Fixed(Arc<Vec<(String, Secret)>>),
}

/// A value that is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl EnvSource {
    pub fn get(&self, name: &str) -> Option<String> {
        if !name.starts_with(template::ENV_PREFIX) {
            return None;
        }
        match self {
            EnvSource::Process => std::env::var(name).ok(),
            EnvSource::Fixed(values) => values.iter().find(|(n, _)| n == name).map(|(_, v)| v.0.clone()),
        }
    }
}

/// Problems a [`LoadError`] lists; the others are counted. A file full of
/// mistakes (100 000 unknown keys) must not become an answer or a log line
/// of megabytes: the first few tell what is wrong.
pub const MAX_LISTED_PROBLEMS: usize = 50;

/// The problems of a workload that cannot be used, with their places: the
/// first [`MAX_LISTED_PROBLEMS`] in file order, and how many more there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The file name (or what stands for it).
    pub file: String,
    pub problems: Vec<Problem>,
    /// Problems found but not listed.
    pub more: usize,
}

impl LoadError {
    /// Sorted by place, without repeats, the first [`MAX_LISTED_PROBLEMS`]
    /// listed; `not_kept` problems were found but never stored.
    pub fn new(source: &str, mut problems: Vec<Problem>, not_kept: usize) -> LoadError {
        problems.sort();
        problems.dedup();
        let more = problems.len().saturating_sub(MAX_LISTED_PROBLEMS) + not_kept;
        problems.truncate(MAX_LISTED_PROBLEMS);
        LoadError { file: source.to_string(), problems, more }
    }

    fn one(source: &str, pos: yaml::Pos, message: impl Into<String>) -> LoadError {
        LoadError { file: source.to_string(), problems: vec![Problem::new(pos, message)], more: 0 }
    }

    /// Every problem found, listed or not.
    pub fn count(&self) -> usize {
        self.problems.len() + self.more
    }
}

/// One line per problem: `file:line:column: what is wrong`, then a line
/// with the count of those not listed.
impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}: {}", self.file, p.pos, p.message)?;
        }
        if self.more > 0 {
            let noun = if self.more == 1 { "problem" } else { "problems" };
            write!(f, "\n{}: … and {} more {noun} not listed (fix these first)", self.file, self.more)?;
        }
        Ok(())
    }
}

/// A checked, compiled workload. Immutable: share it (`Arc`) and keep the
/// run's pools in a [`RunState`].
#[derive(Debug, Clone)]
pub struct Workload {
    source: String,
    model: Model,
    pub(crate) compiled: Compiled,
    warnings: Vec<Problem>,
}

/// Reads a workload file: at most [`MAX_FILE_BYTES`], UTF-8, YAML or JSON.
/// Its data files are read from its own directory (or `options.data_dir`).
pub fn load_file(path: &Path, options: &Options) -> Result<Workload, LoadError> {
    let bytes = read_file(path)?;
    load_bytes(&path.display().to_string(), &bytes, &file_options(path, options))
}

/// `options`, with data read next to the file at `path` unless a data
/// directory is set.
pub fn file_options(path: &Path, options: &Options) -> Options {
    let mut options = options.clone();
    if options.data_dir.is_none() {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        options.data_dir = Some(dir.to_path_buf());
    }
    options
}

/// A workload file's bytes (one byte past the bound at most, so that
/// [`load_bytes`] says it is too large), for a caller that keeps the text.
/// Only a regular file is read (see [`crate::base::file::open_regular`]).
pub fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    let mut bytes = Vec::new();
    let read =
        crate::base::file::open_regular(path).and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) => Ok(bytes),
        Err(e) => {
            let source = path.display().to_string();
            Err(LoadError::one(&source, yaml::Pos::new(1, 1), format!("cannot read the file: {e}")))
        }
    }
}

/// Reads a workload from bytes (a file's, or a request body's).
pub fn load_bytes(source: &str, bytes: &[u8], options: &Options) -> Result<Workload, LoadError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(LoadError::one(
            source,
            yaml::Pos::new(1, 1),
            format!("larger than {MAX_FILE_BYTES} bytes (1 MiB); a workload is much smaller"),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        LoadError::one(source, yaml::Pos::new(line, col), "not UTF-8 text")
    })?;
    load_str(source, text, options)
}

/// Reads a workload from text.
pub fn load_str(source: &str, text: &str, options: &Options) -> Result<Workload, LoadError> {
    if text.len() > MAX_FILE_BYTES {
        return load_bytes(source, text.as_bytes(), options);
    }
    let root = yaml::parse(text).map_err(|e| LoadError::one(source, e.pos, e.message))?;
    let (model, mut problems, not_kept) = model::read(&root);
    problems.extend(model.check_references());
    if !problems.is_empty() || not_kept > 0 {
        return Err(LoadError::new(source, problems, not_kept));
    }
    from_model(source, model, options)
}

/// Compiles a model (one read from a file, or built in code).
pub fn from_model(source: &str, model: Model, options: &Options) -> Result<Workload, LoadError> {
    let fail = |problems: Vec<Problem>| LoadError::new(source, problems, 0);
    let references = model.check_references();
    if !references.is_empty() {
        return Err(fail(references));
    }
    let compiled = compile::compile(&model, options).map_err(fail)?;
    let warnings = model.warnings();
    let workload = Workload { source: source.to_string(), model, compiled, warnings };
    let bad_json = workload.check_json_bodies();
    if !bad_json.is_empty() {
        return Err(fail(bad_json));
    }
    Ok(workload)
}

impl Workload {
    /// Where it was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The workload as written (for showing and exporting it).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What is odd but not wrong (a pool nothing fills…).
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }

    /// Every request: those drawn by weight and error requests in file
    /// order, then setup requests.
    pub fn requests(&self) -> impl Iterator<Item = RequestId> + '_ {
        (0..self.compiled.requests.len()).map(|i| RequestId(i as u8))
    }

    /// The request's name: its label in metrics and `/status`.
    pub fn name(&self, id: RequestId) -> &str {
        &self.compiled.requests[id.index()].name
    }

    pub fn find(&self, name: &str) -> Option<RequestId> {
        self.requests().find(|id| self.name(*id) == name)
    }

    pub fn role(&self, id: RequestId) -> Role {
        self.compiled.requests[id.index()].role
    }

    /// The request sent instead while a pool `id` reads is empty.
    pub fn fallback(&self, id: RequestId) -> Option<RequestId> {
        self.compiled.requests[id.index()].fallback
    }

    /// The pools `id` reads.
    pub fn needs(&self, id: RequestId) -> &[PoolId] {
        &self.compiled.requests[id.index()].needs
    }

    /// Requests marked `error: true`: never drawn by weight.
    pub fn error_requests(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.requests().filter(|id| self.role(*id) == Role::Error)
    }

    /// Setup requests, in file order: send them in this order (each may
    /// fill a pool the next reads) before the traffic.
    pub fn setup(&self) -> &[RequestId] {
        &self.compiled.setup
    }

    /// How often the setup requests are sent again, if at all.
    pub fn setup_every(&self) -> Option<Duration> {
        self.compiled.setup_every
    }

    pub fn pools(&self) -> impl Iterator<Item = PoolId> + '_ {
        (0..self.compiled.pools.len()).map(|i| PoolId(i as u8))
    }

    pub fn pool_name(&self, id: PoolId) -> &str {
        &self.compiled.pools[id.index()].name
    }

    pub fn pool_size(&self, id: PoolId) -> usize {
        self.compiled.pools[id.index()].size
    }

    pub fn pool_id(&self, name: &str) -> Option<PoolId> {
        self.pools().find(|id| self.pool_name(*id) == name)
    }

    /// The weights as `MIX` writes them: `create_order=60,list_orders=25,get_order=15`
    /// (journeys after the requests).
    pub fn mix(&self) -> String {
        let parts: Vec<String> = self
            .requests()
            .filter_map(|id| match self.role(id) {
                Role::Weighted(w) => Some(format!("{}={w}", self.name(id))),
                _ => None,
            })
            .chain(self.journeys().map(|j| format!("{}={}", self.journey_name(j), self.journey_weight(j))))
            .collect();
        parts.join(",")
    }

    /// The share of the arrivals drawn as `id`, in percent (before fallbacks).
    pub fn share(&self, id: RequestId) -> Option<f64> {
        let total = self.compiled.arrivals.as_ref().map_or(self.compiled.weights.total, |d| d.total);
        match self.role(id) {
            Role::Weighted(w) if total > 0 => Some(f64::from(w) * 100.0 / f64::from(total)),
            _ => None,
        }
    }

    /// The largest request this workload can render, in bytes.
    pub fn max_request_bytes(&self) -> usize {
        self.compiled.requests.iter().map(compile::CompiledRequest::max_bytes).max().unwrap_or(0)
    }

    /// JSON bodies are JSON once rendered: renders each a few times, with
    /// pools and variables holding a number and then an awkward string.
    fn check_json_bodies(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (id, def) in self.requests().zip(self.model.all_requests()) {
            let is_json = self.content_type(id).map(compile::media_kind) == Some(MediaKind::Json);
            if !is_json {
                continue;
            }
            'samples: for (text, number) in [("1", true), ("x\"\\</y", false)] {
                let mut state = RunState::new(self);
                let mut locals = Locals::new();
                locals.fill_for_samples(text.as_bytes(), number);
                let mut rng = SmallRng::seed_from_u64(u64::from(id.0));
                let mut parts = RequestParts::default();
                for _ in 0..8 {
                    // Taken values come back: every sample has one.
                    for ring in &mut state.pools {
                        if ring.is_empty() {
                            ring.push(text.as_bytes(), number);
                        }
                    }
                    let Draw::Send(chosen) = self.resolve(id, &mut rng, &state) else { break };
                    self.render_parts_in(&chosen, &mut rng, &mut state, Some(&locals), &mut parts);
                    let body = parts.body().unwrap_or_default();
                    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                        // Where, never what: the rendered body may hold a
                        // password, and this message reaches logs (SIGHUP)
                        // and answers.
                        problems.push(Problem::new(
                            def.body_pos,
                            format!(
                                "the body of `{}` is not valid JSON once rendered ({e} of the rendered body)",
                                def.name
                            ),
                        ));
                        break 'samples;
                    }
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests;
