//! Journeys and data tables as the file writes them.
//!
//! A journey is what one user does, in order: a `name`, a `weight` (drawn
//! among the requests and the other journeys), and `steps` — each a
//! request (the request keys, less `weight`, `error` and `fallback`, plus
//! `on_failure`) or a `pause`. Each running instance has its own
//! variables: a capture with `var:` fills one, `{{ var(name) }}` reads it.
//! A read that no earlier step can have filled is refused here, with its
//! place. Data tables (`data:`) name files of rows (CSV with a header, or a
//! JSON array of objects) that journeys read one row per instance with
//! `{{ data(table, column) }}`; the files are read when the workload is
//! loaded (see `workload::data`), the names and orders here.

use super::{Kind, Model, Problem, Reader, RequestDef, Role, StatusSet};
use crate::base::duration::parse_duration;
use crate::workload::template::Hole;
use crate::workload::yaml::{Node, NodeKind, Pos};

/// Most journeys in a workload (each is a metric label).
pub const MAX_JOURNEYS: usize = 16;
/// Most steps of one journey, pauses included.
pub const MAX_STEPS: usize = 32;
/// Most variables of one journey (slots of every running instance).
pub const MAX_VARS: usize = 16;
/// Most data tables of a workload.
pub const MAX_DATA_TABLES: usize = 8;
/// Longest pause, and the cap on every drawn one.
pub const MAX_PAUSE_SECS: f64 = 3600.0;
/// Longest data file path as written.
const MAX_PATH_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct JourneyDef {
    pub name: String,
    pub weight: u32,
    pub steps: Vec<StepDef>,
    /// Answer codes on a step that sends a variable in a header which make
    /// the instance log in again (see `Workload::relogin_step`); empty: none.
    pub relogin_on: StatusSet,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepDef {
    /// A request; its `name` is `journey/step`, its metric label.
    Request {
        request: Box<RequestDef>,
        on_failure: OnFailure,
    },
    Pause(PauseDef),
}

/// What a step whose answer is not a success (or that got none) does to
/// its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// The instance ends there, counted by reason.
    #[default]
    End,
    /// The next step follows as if it had succeeded.
    Continue,
}

/// A think time between two steps, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PauseDef {
    Fixed {
        secs: f64,
        pos: Pos,
    },
    /// Any time from `min` to `max`, each as likely.
    Uniform {
        min: f64,
        max: f64,
        pos: Pos,
    },
    /// Exponentially distributed around `mean` (the gaps of a Poisson
    /// process), each draw capped at [`MAX_PAUSE_SECS`].
    Exponential {
        mean: f64,
        pos: Pos,
    },
}

impl PauseDef {
    pub fn pos(&self) -> Pos {
        match self {
            PauseDef::Fixed { pos, .. } | PauseDef::Uniform { pos, .. } | PauseDef::Exponential { pos, .. } => *pos,
        }
    }

    /// The mean pause, in seconds (for Little's law: active ≈ rate × duration).
    pub fn mean_secs(&self) -> f64 {
        match self {
            PauseDef::Fixed { secs, .. } => *secs,
            PauseDef::Uniform { min, max, .. } => (min + max) / 2.0,
            PauseDef::Exponential { mean, .. } => *mean,
        }
    }
}

impl std::fmt::Display for PauseDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseDef::Fixed { secs, .. } => write!(f, "{secs} s"),
            PauseDef::Uniform { min, max, .. } => write!(f, "{min} to {max} s"),
            PauseDef::Exponential { mean, .. } => write!(f, "exponential, mean {mean} s"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDef {
    pub name: String,
    /// The file, relative to the workload's data directory.
    pub file: String,
    pub order: DataOrder,
    pub pos: Pos,
    pub file_pos: Pos,
}

/// Which row a new journey instance gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataOrder {
    /// The next row, from the first again after the last.
    #[default]
    Sequential,
    /// Any row, each as likely.
    Random,
    /// Each row once; when none is left, instances that need one do not start.
    Unique,
}

impl DataOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            DataOrder::Sequential => "sequential",
            DataOrder::Random => "random",
            DataOrder::Unique => "unique",
        }
    }
}

impl JourneyDef {
    /// Its request steps, in order.
    pub fn requests(&self) -> impl Iterator<Item = &RequestDef> {
        self.steps.iter().filter_map(|s| match s {
            StepDef::Request { request, .. } => Some(&**request),
            StepDef::Pause(_) => None,
        })
    }

    /// Its variables, in the order their first capture is written: the
    /// slots of each running instance.
    pub fn vars(&self) -> Vec<&str> {
        let mut vars: Vec<&str> = Vec::new();
        for capture in self.requests().flat_map(|r| r.captures.iter()) {
            if let Some(var) = &capture.var
                && !vars.contains(&var.as_str())
            {
                vars.push(var);
            }
        }
        vars
    }

    /// The step's own name (without `journey/`).
    pub fn step_name<'a>(&self, request: &'a RequestDef) -> &'a str {
        request.name.strip_prefix(&self.name).and_then(|n| n.strip_prefix('/')).unwrap_or(&request.name)
    }

    /// The data tables its steps read, in order of first use.
    pub fn tables(&self) -> Vec<&str> {
        let mut tables: Vec<&str> = Vec::new();
        for r in self.requests() {
            for t in r.templates() {
                for (hole, _) in t.holes() {
                    if let Hole::Data { table, .. } = hole
                        && !tables.contains(&table.as_str())
                    {
                        tables.push(table);
                    }
                }
            }
        }
        tables
    }
}

impl Reader {
    pub(super) fn journeys(&mut self, node: &Node) -> Vec<JourneyDef> {
        let Some(items) = self.list(node, "`journeys`") else { return Vec::new() };
        if items.is_empty() {
            self.problem(node.pos, "the list of journeys is empty");
        }
        let mut journeys: Vec<JourneyDef> = Vec::new();
        for item in items {
            if journeys.len() == MAX_JOURNEYS {
                self.problem(item.pos, format!("more than {MAX_JOURNEYS} journeys"));
                break;
            }
            let Some(journey) = self.journey(item) else { continue };
            if journeys.iter().any(|j| j.name == journey.name) {
                self.problem(journey.pos, format!("journey name `{}` is used twice", journey.name));
                continue;
            }
            journeys.push(journey);
        }
        journeys
    }

    fn journey(&mut self, node: &Node) -> Option<JourneyDef> {
        let fields = self.fields(node, "a journey", &["name", "weight", "steps", "relogin_on"])?;
        let name = match fields.get("name") {
            Some(n) => self.name(n, "journey name"),
            None => {
                self.problem(fields.pos, "a journey needs a `name`");
                None
            }
        };
        let weight = match fields.get("weight") {
            Some(n) => self.weight(n),
            None => {
                self.problem(fields.pos, "a journey needs a `weight` (it is drawn among the requests and journeys)");
                None
            }
        };
        let label = name.clone().unwrap_or_default();
        let steps = match fields.get("steps") {
            Some(list) => self.steps(list, &label),
            None => {
                self.problem(fields.pos, "a journey needs `steps`: a list of requests and pauses, in order");
                Vec::new()
            }
        };
        if fields.get("steps").is_some() && !steps.iter().any(|s| matches!(s, StepDef::Request { .. })) {
            // A list that is empty is said where it is written.
            if let Some(NodeKind::Seq(items)) = fields.get("steps").map(|n| &n.kind)
                && !items.is_empty()
            {
                self.problem(fields.pos, "a journey needs at least one request step (pauses alone send nothing)");
            }
        }
        let relogin_on = fields.get("relogin_on").map_or_else(super::setup::unauthorized, |n| self.relogin_on(n));
        Some(JourneyDef { name: name?, weight: weight.unwrap_or(1), steps, relogin_on, pos: fields.pos })
    }

    fn steps(&mut self, node: &Node, journey: &str) -> Vec<StepDef> {
        let Some(items) = self.list(node, "`steps`") else { return Vec::new() };
        if items.is_empty() {
            self.problem(node.pos, "a journey with no steps: give it at least one request");
        }
        if items.len() > MAX_STEPS {
            self.problem(items[MAX_STEPS].pos, format!("more than {MAX_STEPS} steps in a journey"));
        }
        let mut steps = Vec::new();
        for item in items.iter().take(MAX_STEPS) {
            if let Some(step) = self.step(item, journey) {
                steps.push(step);
            }
        }
        steps
    }

    fn step(&mut self, node: &Node, journey: &str) -> Option<StepDef> {
        let is_pause = matches!(&node.kind, NodeKind::Map(entries)
            if entries.iter().any(|(k, _)| k.scalar() == Some("pause")));
        if is_pause {
            let fields = self.fields(node, "a pause step", &["pause"])?;
            return self.pause(fields.get("pause")?).map(StepDef::Pause);
        }
        self.count_request(node.pos);
        let on_failure = match &node.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k.scalar() == Some("on_failure")).map(|(_, v)| v),
            _ => None,
        };
        let on_failure = match on_failure {
            None => OnFailure::End,
            Some(n) => match n.string() {
                Some("end") => OnFailure::End,
                Some("continue") => OnFailure::Continue,
                _ => {
                    let found = n.scalar().map_or_else(|| n.describe().to_string(), |s| format!("`{s}`"));
                    self.problem(n.pos, format!("on_failure must be `end` or `continue`, not {found}"));
                    OnFailure::End
                }
            },
        };
        let mut request = self.request(node, Kind::Step)?;
        request.name = format!("{journey}/{}", request.name);
        Some(StepDef::Request { request: Box::new(request), on_failure })
    }

    /// `pause: 2s`, `pause: {uniform: [1s, 3s]}`, `pause: {exponential: 2s}`.
    fn pause(&mut self, node: &Node) -> Option<PauseDef> {
        let pos = node.pos;
        if let NodeKind::Map(_) = &node.kind {
            let fields = self.fields(node, "a pause", &["uniform", "exponential"])?;
            return match (fields.get("uniform"), fields.get("exponential")) {
                (Some(range), None) => {
                    let bounds = self.list(range, "uniform")?;
                    let [low, high] = bounds else {
                        self.problem(range.pos, "uniform takes two durations, the shortest and the longest: [1s, 3s]");
                        return None;
                    };
                    let (min, max) = (self.duration(low, "a pause")?, self.duration(high, "a pause")?);
                    if min > max {
                        self.problem(range.pos, "uniform: the first duration is the shortest, the second the longest");
                        return None;
                    }
                    Some(PauseDef::Uniform { min, max, pos })
                }
                (None, Some(mean)) => {
                    let mean_secs = self.duration(mean, "the mean of an exponential pause")?;
                    if mean_secs <= 0.0 {
                        self.problem(mean.pos, "the mean of an exponential pause must be above 0");
                        return None;
                    }
                    Some(PauseDef::Exponential { mean: mean_secs, pos })
                }
                _ => {
                    self.problem(
                        pos,
                        "a pause is a duration (2s), `{uniform: [1s, 3s]}` or `{exponential: 2s}` (the mean)",
                    );
                    None
                }
            };
        }
        self.duration(node, "a pause").map(|secs| PauseDef::Fixed { secs, pos })
    }

    /// A duration as the rest of the file and the settings write one
    /// (`500ms`, `2s`, `1m`, a bare number of seconds), from 0 to 1 h.
    fn duration(&mut self, node: &Node, what: &str) -> Option<f64> {
        let parsed = match node.scalar() {
            Some(text) if !node.is_null() => parse_duration(text).map_err(|e| format!("`{text}`: {e}")),
            _ => Err(node.describe().to_string()),
        };
        match parsed {
            Ok(secs) if (0.0..=MAX_PAUSE_SECS).contains(&secs) => Some(secs),
            Ok(_) | Err(_) => {
                let found = match parsed {
                    Ok(_) => format!("`{}`", node.scalar().unwrap_or_default()),
                    Err(e) => e,
                };
                self.problem(node.pos, format!("{what} must be a duration from 0 to 1h (500ms, 2s, 1m), not {found}"));
                None
            }
        }
    }

    /// `data: {accounts: {file: accounts.csv, order: unique}}`.
    pub(super) fn data_tables(&mut self, node: &Node) -> Vec<DataDef> {
        let NodeKind::Map(entries) = &node.kind else {
            self.problem(node.pos, format!("`data` must be a mapping of table names, not {}", node.describe()));
            return Vec::new();
        };
        let mut tables: Vec<DataDef> = Vec::new();
        for (key, value) in entries {
            let Some(name) = self.name(key, "table name") else { continue };
            if tables.iter().any(|t| t.name == name) {
                self.problem(key.pos, format!("table `{name}` is declared twice"));
                continue;
            }
            if tables.len() == MAX_DATA_TABLES {
                self.problem(key.pos, format!("more than {MAX_DATA_TABLES} data tables"));
                break;
            }
            let Some(fields) = self.fields(value, "a data table", &["file", "order"]) else { continue };
            let order = match fields.get("order") {
                None => DataOrder::Sequential,
                Some(n) => match n.string() {
                    Some("sequential") => DataOrder::Sequential,
                    Some("random") => DataOrder::Random,
                    Some("unique") => DataOrder::Unique,
                    _ => {
                        let found = n.scalar().map_or_else(|| n.describe().to_string(), |s| format!("`{s}`"));
                        self.problem(n.pos, format!("order must be sequential, random or unique, not {found}"));
                        DataOrder::Sequential
                    }
                },
            };
            let Some(file_node) = fields.get("file") else {
                self.problem(fields.pos, "a data table needs the `file` it is read from (CSV or JSON)");
                continue;
            };
            let Some(file) = self.string(file_node, "file") else { continue };
            if let Err(e) = relative_path_ok(file) {
                self.problem(file_node.pos, format!("file {file:?}: {e}"));
                continue;
            }
            tables.push(DataDef { name, file: file.to_string(), order, pos: key.pos, file_pos: file_node.pos });
        }
        tables
    }
}

/// A data file's path as written: relative, inside the data directory
/// (no `..`), plain characters. Symbolic links are followed and checked
/// when the file is read.
fn relative_path_ok(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("is empty".into());
    }
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(format!("is longer than {MAX_PATH_CHARS} characters"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err("holds a control character or a backslash".into());
    }
    if path.starts_with('/') || path.starts_with('~') {
        return Err("must be relative to the workload's directory (or DATA_DIR), not absolute".into());
    }
    if path.split('/').any(|part| part == "..") {
        return Err("must stay inside the workload's directory (or DATA_DIR): `..` is refused".into());
    }
    Ok(())
}

impl Model {
    /// What only journeys may do, and the order of their variables: a
    /// variable read before any earlier step can have captured it, a
    /// variable or data table read outside a journey, unknown tables,
    /// paths that begin with a value that is not a captured path.
    pub(super) fn check_journeys(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let table_names: Vec<&str> = self.data.iter().map(|t| t.name.as_str()).collect();
        let tables_known = || {
            if table_names.is_empty() { "none are declared under `data`".to_string() } else { table_names.join(", ") }
        };
        for journey in &self.journeys {
            if self.requests.iter().any(|r| r.name == journey.name) {
                problems.push(Problem::new(
                    journey.pos,
                    format!("journey `{}` has the name of a request; give it its own", journey.name),
                ));
            }
            let vars = journey.vars();
            if vars.len() > MAX_VARS {
                problems.push(Problem::new(journey.pos, format!("more than {MAX_VARS} variables in one journey")));
            }
            let mut captured: Vec<&str> = Vec::new();
            for (index, request) in journey.requests().enumerate() {
                for (hole, pos) in request.templates().flat_map(|t| t.holes()) {
                    match hole {
                        Hole::Var(var) if !captured.contains(&var.as_str()) => {
                            let later = journey
                                .requests()
                                .skip(index)
                                .find(|r| r.captures.iter().any(|c| c.var.as_deref() == Some(var)));
                            let message = match later {
                                Some(r) => format!(
                                    "variable `{var}` is read before any step captures it: step `{}` captures it, later (a step's own captures come after its answer)",
                                    journey.step_name(r)
                                ),
                                None => format!(
                                    "variable `{var}` is never captured in journey `{}`: capture it in an earlier step (`capture: {{var: {var}, json: /…}}`)",
                                    journey.name
                                ),
                            };
                            problems.push(Problem::new(pos, message));
                        }
                        Hole::Data { table, .. } if !table_names.contains(&table.as_str()) => {
                            problems.push(Problem::new(
                                pos,
                                format!("unknown data table `{table}` (tables: {})", tables_known()),
                            ));
                        }
                        _ => {}
                    }
                }
                for c in &request.captures {
                    if let Some(var) = &c.var
                        && !captured.contains(&var.as_str())
                    {
                        captured.push(var);
                    }
                }
                problems.extend(self.path_start(request, Some(journey)));
            }
        }
        let outside = self.requests.iter().chain(self.setup.iter().flat_map(|s| s.requests.iter()));
        for request in outside {
            for (hole, pos) in request.templates().flat_map(|t| t.holes()) {
                let what = match hole {
                    Hole::Var(_) => "a variable (`var`) belongs to a journey instance",
                    Hole::Data { .. } => "a data row (`data`) is taken per journey instance",
                    _ => continue,
                };
                problems.push(Problem::new(pos, format!("{what}: `{hole}` can only be read in a journey's steps")));
            }
            for c in &request.captures {
                if c.var.is_some() {
                    problems.push(Problem::new(
                        c.pos,
                        "a capture into a variable (`var`) is a journey step's; outside journeys capture into a `pool`",
                    ));
                }
            }
            problems.extend(self.path_start(request, None));
        }
        problems
    }

    /// A path that begins with a value (not `/`) must begin with a path
    /// captured with `path: true` (checked safe when captured), so that
    /// no answer can choose what the request line starts with.
    fn path_start(&self, request: &RequestDef, journey: Option<&JourneyDef>) -> Option<Problem> {
        let Some(crate::workload::template::Part::Hole(hole, pos)) = request.path.parts.first() else { return None };
        let safe = match hole {
            Hole::Var(var) => {
                let captures: Vec<_> = journey
                    .into_iter()
                    .flat_map(|j| j.requests())
                    .flat_map(|r| r.captures.iter())
                    .filter(|c| c.var.as_deref() == Some(var))
                    .collect();
                !captures.is_empty() && captures.iter().all(|c| c.path)
            }
            Hole::Pool(pool) | Hole::Take(pool) => self.is_path_pool(pool),
            _ => return None,
        };
        (!safe).then(|| {
            Problem::new(
                *pos,
                format!(
                    "a path may begin with `{hole}` only when every capture into it has `path: true` (a safe absolute path such as a Location header); otherwise begin the path with `/`"
                ),
            )
        })
    }

    /// A pool filled only by `path: true` captures (and not from the file).
    pub fn is_path_pool(&self, pool: &str) -> bool {
        let seeded = self.pools.iter().any(|p| p.name == pool && !p.values.is_empty());
        let captures: Vec<_> =
            self.all_requests().flat_map(|r| r.captures.iter()).filter(|c| c.var.is_none() && c.pool == pool).collect();
        !seeded && !captures.is_empty() && captures.iter().all(|c| c.path)
    }

    /// Odd but not wrong: a data table no journey reads.
    pub(super) fn journey_warnings(&self) -> Vec<Problem> {
        self.data
            .iter()
            .filter(|t| !self.journeys.iter().any(|j| j.tables().contains(&t.name.as_str())))
            .map(|t| Problem::new(t.pos, format!("data table `{}` is never read by a journey", t.name)))
            .collect()
    }

    /// The weight of every journey, for the draw of arrivals.
    pub fn journey_weights(&self) -> impl Iterator<Item = (&str, u32)> {
        self.journeys.iter().map(|j| (j.name.as_str(), j.weight))
    }
}

impl RequestDef {
    /// Whether it is a journey step.
    pub fn is_step(&self) -> bool {
        self.role == Role::Step
    }
}
