//! Journeys, compiled: their steps as request ids and pauses, the draw of
//! an arrival among requests and journeys, and [`Locals`] — one running
//! instance's variables and data rows, a fixed slot table (variables are
//! indexes, never looked up by name while the traffic runs).
//!
//! The engine keeps the instances (see `engine::journeys`); this module
//! says what an instance may do: which row it takes ([`Workload::begin`]),
//! whether a step can be sent ([`Workload::resolve_step`]), how long a
//! pause lasts ([`PauseDef::draw`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, RngExt};

use super::compile::{RequestId, Weights};
use super::data::{self, Table};
use super::model::{DataOrder, MAX_DATA_TABLES, MAX_PAUSE_SECS, MAX_VARS, Model, PauseDef, Problem};
use super::render::{Chosen, Draw, RunState};
use super::{Options, Workload};

/// A journey of a compiled workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JourneyId(pub(crate) u8);

impl JourneyId {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One step of a journey.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Send the request; `go_on`: a failure does not end the instance.
    Request {
        id: RequestId,
        go_on: bool,
    },
    Pause(PauseDef),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledJourney {
    pub name: String,
    pub weight: u32,
    pub steps: Vec<Step>,
    /// Variable names, by slot.
    pub vars: Vec<String>,
    /// The tables its steps read (indexes into `Compiled::tables`).
    pub tables: Vec<u8>,
}

impl Eq for CompiledJourney {}

/// What an arrival draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    Request(RequestId),
    Journey(JourneyId),
}

/// Cumulative weights of the weighted requests and the journeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draws {
    ends: Vec<u32>,
    picks: Vec<Pick>,
    pub total: u32,
}

impl Draws {
    pub fn new(requests: &Weights, journeys: &[CompiledJourney]) -> Draws {
        let mut ends = Vec::new();
        let mut picks = Vec::new();
        let mut total: u32 = 0;
        let requests = requests.ids.iter().zip(&requests.ends).scan(0u32, |before, (id, end)| {
            let weight = end - *before;
            *before = *end;
            Some((Pick::Request(*id), weight))
        });
        let journeys =
            journeys.iter().enumerate().map(|(j, journey)| (Pick::Journey(JourneyId(j as u8)), journey.weight));
        for (pick, weight) in requests.chain(journeys).filter(|(_, w)| *w > 0) {
            total = total.saturating_add(weight);
            ends.push(total);
            picks.push(pick);
        }
        Draws { ends, picks, total }
    }

    fn pick(&self, roll: u32) -> Pick {
        let i = self.ends.partition_point(|end| *end <= roll);
        self.picks[i.min(self.picks.len() - 1)]
    }
}

/// What an arrival of the open model comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// One request (or, a pool being empty, nothing).
    Request(Draw),
    /// A new instance of the journey.
    Journey(JourneyId),
}

/// Why a journey instance could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRow {
    /// The `unique` table that has given every row.
    pub table: u8,
}

/// Why a step could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A pool it reads is empty.
    Pool,
    /// A variable it reads was never filled (the capture found nothing).
    Var(u8),
}

/// One journey instance's own values: its variables (by slot) and its
/// row of each table. Reused from instance to instance: its buffers only
/// grow, to at most [`MAX_VARS`] values of `MAX_VALUE_BYTES`. `Debug`
/// shows no value.
#[derive(Clone, Default)]
pub struct Locals {
    values: Vec<Vec<u8>>,
    /// Bit `slot`: the variable holds a value.
    set: u32,
    /// Bit `slot`: its value came as a JSON number.
    number: u32,
    /// Row of each table of the workload (by table index).
    rows: [u32; MAX_DATA_TABLES],
}

impl std::fmt::Debug for Locals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Locals({} set)", self.set.count_ones())
    }
}

impl Locals {
    pub fn new() -> Locals {
        Locals::default()
    }

    /// Empty for a new instance with `vars` variables.
    fn reset(&mut self, vars: usize) {
        let vars = vars.min(MAX_VARS);
        if self.values.len() < vars {
            self.values.resize_with(vars, Vec::new);
        }
        for value in &mut self.values {
            value.clear();
        }
        self.set = 0;
        self.number = 0;
        self.rows = [0; MAX_DATA_TABLES];
    }

    pub(crate) fn get(&self, slot: u8) -> Option<(&[u8], bool)> {
        let bit = 1u32 << slot;
        (self.set & bit != 0).then(|| (self.values[usize::from(slot)].as_slice(), self.number & bit != 0))
    }

    pub(crate) fn set(&mut self, slot: u8, text: &[u8], number: bool) {
        let Some(value) = self.values.get_mut(usize::from(slot)) else { return };
        value.clear();
        value.extend_from_slice(text);
        let bit = 1u32 << slot;
        self.set |= bit;
        if number {
            self.number |= bit;
        } else {
            self.number &= !bit;
        }
    }

    /// Every slot set to `text` (and rows at 0): renders a step's sample.
    pub(crate) fn fill_for_samples(&mut self, text: &[u8], number: bool) {
        self.reset(MAX_VARS);
        for slot in 0..MAX_VARS as u8 {
            self.set(slot, text, number);
        }
    }

    pub(crate) fn row(&self, table: u8) -> usize {
        self.rows.get(usize::from(table)).map_or(0, |r| *r as usize)
    }

    /// Bytes held by its buffers.
    pub fn memory_bytes(&self) -> usize {
        self.values.iter().map(Vec::capacity).sum::<usize>() + self.values.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

impl PauseDef {
    /// One pause, drawn: never above [`MAX_PAUSE_SECS`].
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        let secs = match *self {
            PauseDef::Fixed { secs, .. } => secs,
            PauseDef::Uniform { min, max, .. } if max > min => rng.random_range(min..=max),
            PauseDef::Uniform { min, .. } => min,
            PauseDef::Exponential { mean, .. } => {
                // Inverse transform: −mean·ln(U), U in (0, 1].
                let u: f64 = 1.0 - rng.random::<f64>();
                -mean * u.ln()
            }
        };
        Duration::try_from_secs_f64(secs.clamp(0.0, MAX_PAUSE_SECS)).unwrap_or(Duration::ZERO)
    }
}

/// Reads every table of `model` from the options' data directory.
pub(crate) fn read_tables(model: &Model, options: &Options, problems: &mut Vec<Problem>) -> Vec<Arc<Table>> {
    let mut tables = Vec::new();
    for def in &model.data {
        let Some(dir) = options.data_dir.as_deref() else {
            problems.push(Problem::new(
                def.pos,
                "data files are read from the workload file's own directory, or from DATA_DIR; this workload has no directory (it came over the API): set DATA_DIR to read them",
            ));
            continue;
        };
        match data::read(Path::new(dir), def) {
            Ok(table) => tables.push(Arc::new(table)),
            Err(e) => problems.push(Problem::new(def.file_pos, e.0)),
        }
    }
    tables
}

impl Workload {
    /// Whether arrivals may start journeys.
    pub fn has_journeys(&self) -> bool {
        !self.compiled.journeys.is_empty()
    }

    pub fn journeys(&self) -> impl Iterator<Item = JourneyId> + '_ {
        (0..self.compiled.journeys.len()).map(|j| JourneyId(j as u8))
    }

    /// Its name: its label in metrics and `/status`.
    pub fn journey_name(&self, j: JourneyId) -> &str {
        &self.compiled.journeys[j.index()].name
    }

    pub fn find_journey(&self, name: &str) -> Option<JourneyId> {
        self.journeys().find(|j| self.journey_name(*j) == name)
    }

    pub fn journey_weight(&self, j: JourneyId) -> u32 {
        self.compiled.journeys[j.index()].weight
    }

    pub fn steps(&self, j: JourneyId) -> &[Step] {
        &self.compiled.journeys[j.index()].steps
    }

    /// The variables of `j`, by slot.
    pub fn journey_vars(&self, j: JourneyId) -> &[String] {
        &self.compiled.journeys[j.index()].vars
    }

    /// The share of arrivals that start `j`, in percent.
    pub fn journey_share(&self, j: JourneyId) -> f64 {
        let total = self.compiled.arrivals.as_ref().map_or(0, |d| d.total);
        if total == 0 { 0.0 } else { f64::from(self.journey_weight(j)) * 100.0 / f64::from(total) }
    }

    /// Rows left in each table (for `/status`): `None` for tables that
    /// wrap or draw at random.
    pub fn rows_left(&self, state: &RunState) -> Vec<(String, Option<usize>)> {
        self.compiled
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let left = (t.order == DataOrder::Unique)
                    .then(|| t.rows().saturating_sub(state.cursors.get(i).copied().unwrap_or(0)));
                (t.name.clone(), left)
            })
            .collect()
    }

    /// The next arrival of the open model: a request, drawn and resolved
    /// as [`Workload::draw`] does (so a workload without journeys draws
    /// exactly as it always has), or a journey, by weight among both.
    pub fn draw_arrival(&self, rng: &mut impl Rng, state: &RunState) -> Arrival {
        match &self.compiled.arrivals {
            None => Arrival::Request(self.draw(rng, state)),
            Some(draws) => match draws.pick(rng.random_range(0..draws.total)) {
                Pick::Request(id) => Arrival::Request(self.resolve(id, rng, state)),
                Pick::Journey(j) => Arrival::Journey(j),
            },
        }
    }

    /// Gets `locals` ready for a new instance of `j`: no variable set, one
    /// row of every table it reads taken by the table's order. A `unique`
    /// table that has given every row has none to give: the instance
    /// cannot start.
    pub fn begin(
        &self,
        j: JourneyId,
        rng: &mut impl Rng,
        state: &mut RunState,
        locals: &mut Locals,
    ) -> Result<(), NoRow> {
        let journey = &self.compiled.journeys[j.index()];
        // Every unique table must have a row before any is taken.
        for &t in &journey.tables {
            let table = &self.compiled.tables[usize::from(t)];
            if table.order == DataOrder::Unique && state.cursors[usize::from(t)] >= table.rows() {
                return Err(NoRow { table: t });
            }
        }
        locals.reset(journey.vars.len());
        for &t in &journey.tables {
            let table = &self.compiled.tables[usize::from(t)];
            let cursor = &mut state.cursors[usize::from(t)];
            let row = match table.order {
                DataOrder::Sequential => {
                    let row = *cursor % table.rows().max(1);
                    *cursor = row + 1;
                    row
                }
                DataOrder::Unique => {
                    let row = *cursor;
                    *cursor += 1;
                    row
                }
                DataOrder::Random => rng.random_range(0..table.rows().max(1)),
            };
            locals.rows[usize::from(t)] = u32::try_from(row).unwrap_or(0);
        }
        Ok(())
    }

    /// The table's name (for messages and metrics).
    pub fn table_name(&self, table: u8) -> &str {
        self.compiled.tables.get(usize::from(table)).map_or("", |t| t.name.as_str())
    }

    /// A step's request, against its instance: every variable it reads
    /// must hold a value, and its pools are picked as for any request (a
    /// step has no fallback).
    pub fn resolve_step(
        &self,
        id: RequestId,
        rng: &mut impl Rng,
        state: &RunState,
        locals: &Locals,
    ) -> Result<Chosen, Missing> {
        let reads = self.compiled.requests[id.index()].vars;
        let unset = reads & !locals.set;
        if unset != 0 {
            return Err(Missing::Var(unset.trailing_zeros() as u8));
        }
        match self.resolve(id, rng, state) {
            Draw::Send(chosen) if chosen.request() == id => Ok(chosen),
            _ => Err(Missing::Pool),
        }
    }
}

#[cfg(test)]
mod tests;
