//! Journeys and data tables as every script writes them: a journey's steps
//! (requests by their index in the script, pauses), its variables, the
//! tables it reads one row of per instance; and each table's file, order
//! and columns. Tool-independent, like `script`.

pub use crate::workload::model::MAX_PAUSE_SECS;
use crate::workload::model::{DataOrder, JourneyDef, Model, OnFailure, PauseDef, StepDef};

/// A journey: what one arrival of it does, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    pub name: String,
    pub weight: u32,
    pub steps: Vec<Step>,
    /// Its variables, in the order their first capture is written.
    pub vars: Vec<String>,
    /// The tables it reads (indexes into the script's tables), in order of first use.
    pub tables: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Send request `req` of the script; `go_on`: a failure does not end the instance.
    Send {
        req: usize,
        go_on: bool,
    },
    Pause(Pause),
}

/// A think time, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pause {
    Fixed(f64),
    /// Any time from the first to the second, each as likely.
    Uniform(f64, f64),
    /// Exponential around this mean, each draw capped at [`MAX_PAUSE_SECS`].
    Exponential(f64),
}

impl Pause {
    pub fn mean_secs(self) -> f64 {
        match self {
            Pause::Fixed(secs) => secs,
            Pause::Uniform(min, max) => (min + max) / 2.0,
            Pause::Exponential(mean) => mean,
        }
    }
}

/// A data table: the file a script reads at its start, one row per
/// journey instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    /// As the workload writes it: relative to the workload's data directory.
    pub file: String,
    pub order: DataOrder,
    /// The file's columns, in its order (from the file read at export).
    pub columns: Vec<String>,
    /// A JSON array of objects rather than CSV.
    pub json: bool,
}

impl Journey {
    /// How many requests one instance sends when every step goes.
    pub fn sends(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, Step::Send { .. })).count()
    }

    /// The mean time one instance spends pausing.
    pub fn mean_pause_secs(&self) -> f64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Pause(p) => p.mean_secs(),
                Step::Send { .. } => 0.0,
            })
            .sum()
    }
}

/// The model's journeys; their request steps are the script's requests
/// from `first_step` on, in journey order (as `Model::all_requests` lists them).
pub fn journeys(model: &Model, first_step: usize) -> Vec<Journey> {
    let mut next = first_step;
    model
        .journeys
        .iter()
        .map(|journey| {
            let steps = journey
                .steps
                .iter()
                .map(|step| match step {
                    StepDef::Request { on_failure, .. } => {
                        let req = next;
                        next += 1;
                        Step::Send { req, go_on: *on_failure == OnFailure::Continue }
                    }
                    StepDef::Pause(pause) => Step::Pause(match *pause {
                        PauseDef::Fixed { secs, .. } => Pause::Fixed(secs),
                        PauseDef::Uniform { min, max, .. } => Pause::Uniform(min, max),
                        PauseDef::Exponential { mean, .. } => Pause::Exponential(mean),
                    }),
                })
                .collect();
            Journey {
                name: journey.name.clone(),
                weight: journey.weight,
                steps,
                vars: journey.vars().iter().map(|v| v.to_string()).collect(),
                tables: tables_of(model, journey),
            }
        })
        .collect()
}

fn tables_of(model: &Model, journey: &JourneyDef) -> Vec<usize> {
    journey.tables().iter().filter_map(|name| model.data.iter().position(|t| t.name == *name)).collect()
}

/// The model's data tables; `columns(name)` gives a table's columns in
/// its file's order.
pub fn tables(model: &Model, columns: &dyn Fn(&str) -> Vec<String>) -> Vec<Table> {
    model
        .data
        .iter()
        .map(|t| Table {
            name: t.name.clone(),
            file: t.file.clone(),
            order: t.order,
            columns: columns(&t.name),
            json: t.file.to_ascii_lowercase().ends_with(".json"),
        })
        .collect()
}

/// Whether the variable `var` of `journey` only ever holds captured
/// paths (every capture into it has `path: true`): written into a path
/// with its slashes, as trafficgen writes it.
pub fn path_var(journey: &JourneyDef, var: &str) -> bool {
    let captures: Vec<_> =
        journey.requests().flat_map(|r| r.captures.iter()).filter(|c| c.var.as_deref() == Some(var)).collect();
    !captures.is_empty() && captures.iter().all(|c| c.path)
}
