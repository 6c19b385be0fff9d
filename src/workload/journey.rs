//! Journeys while the traffic runs: the draw of an arrival among requests
//! and journeys, the row a new instance takes, whether a step can be sent,
//! how long a pause lasts. An instance's own values are its
//! [`super::locals::Locals`].
//!
//! The engine keeps the instances (see `engine::journeys`); this module
//! says what an instance may do: which row it takes ([`Workload::begin`]),
//! whether a step can be sent ([`Workload::resolve_step`]), how long a
//! pause lasts ([`PauseDef::draw`]).

use std::time::Duration;

use rand::{Rng, RngExt};

use super::Workload;
use super::compile::RequestId;
use super::compile::journeys::{JourneyId, Pick, Step};
use super::locals::Locals;
use super::model::{DataOrder, MAX_PAUSE_SECS, PauseDef};
use super::render::{Chosen, Draw, RunState};

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
            locals.set_row(t, row);
        }
        Ok(())
    }

    /// Rows of the table named `name` (0 if there is none).
    pub fn table_rows(&self, name: &str) -> usize {
        self.compiled.tables.iter().find(|t| t.name == name).map_or(0, |t| t.rows())
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
        let unset = reads & !locals.set_slots();
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
