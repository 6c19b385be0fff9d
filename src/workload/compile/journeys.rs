//! Journeys, compiled: their steps as request ids and pauses, and the draw
//! of an arrival among the weighted requests and the journeys.

use super::{RequestId, Weights};
use crate::workload::model::{PauseDef, StatusSet};

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
    /// Answer codes that make an instance log in again.
    pub relogin_on: StatusSet,
    /// By step: the step an instance logs in again with (see
    /// `compile::relogin_steps`).
    pub relogin_steps: Vec<Option<usize>>,
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

    pub fn pick(&self, roll: u32) -> Pick {
        let i = self.ends.partition_point(|end| *end <= roll);
        self.picks[i.min(self.picks.len() - 1)]
    }
}
