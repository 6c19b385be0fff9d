//! A template's holes, compiled for where they sit: what a request's
//! templates refer to (pools, the journey's variable slots, data tables,
//! environment values read at load) resolved to indexes and values, with
//! a problem at the hole's place for what cannot be.

use std::sync::Arc;

use super::{EnvValue, Fill, MAX_ENV_BYTES, PoolId, PoolSpec, RequestId, Segs};
use crate::workload::Options;
use crate::workload::data::Table;
use crate::workload::escape::{Ctx, encode};
use crate::workload::model::{Model, Problem, RequestDef};
use crate::workload::template::{Hole, Piece};
use crate::workload::yaml::Pos;

/// What a request's templates may refer to, resolved.
pub(super) struct Names<'a> {
    pub(super) pools: &'a [PoolSpec],
    pub(super) model: &'a Model,
    pub(super) tables: &'a [Arc<Table>],
    pub(super) options: &'a Options,
    /// The journey of the request being compiled, if it is a step.
    pub(super) journey: Option<usize>,
}

impl Names<'_> {
    pub(super) fn pool(&self, name: &str) -> Option<PoolId> {
        self.pools.iter().position(|p| p.name == name).map(|i| PoolId(i as u8))
    }

    pub(super) fn request(&self, name: &str) -> Option<RequestId> {
        self.model.requests.iter().position(|r| r.name == name).map(|i| RequestId(i as u8))
    }

    /// The slot of variable `name` in the current journey, and whether it
    /// only ever holds captured paths.
    pub(super) fn var(&self, name: &str) -> Option<(u8, bool)> {
        let journey = &self.model.journeys[self.journey?];
        let slot = journey.vars().iter().position(|v| *v == name)?;
        let captures: Vec<_> =
            journey.requests().flat_map(|r| r.captures.iter()).filter(|c| c.var.as_deref() == Some(name)).collect();
        Some((slot as u8, !captures.is_empty() && captures.iter().all(|c| c.path)))
    }
}

/// A hole, compiled for where it sits.
pub(super) fn fill_of(hole: &Hole, ctx: Ctx, pos: Pos, def: &RequestDef, names: &Names<'_>) -> Result<Fill, Problem> {
    // References were checked before; a miss here is a bug, reported as a problem.
    let unknown = |what: &str| Problem::new(pos, format!("internal: unresolved {what} in `{}`", def.name));
    let pool_id = |name: &str| names.pool(name);
    Ok(match hole {
        Hole::RandomInt { min, max } => Fill::Int { min: *min, max: *max },
        Hole::Choice(items) => Fill::Choice(
            items
                .iter()
                .map(|item| {
                    let mut out = Vec::new();
                    encode(ctx, item.text.as_bytes(), item.number, &mut out);
                    out.into_boxed_slice()
                })
                .collect(),
        ),
        Hole::RandomString(n) => Fill::Str(*n),
        Hole::Uuid => Fill::Uuid,
        Hole::Seq => Fill::Seq,
        Hole::Now => Fill::Now,
        Hole::UnixTime => Fill::UnixTime,
        Hole::UnixTimeMs => Fill::UnixTimeMs,
        Hole::Pool(name) => Fill::Pool(pool_id(name).ok_or_else(|| unknown("pool"))?),
        Hole::Take(name) => Fill::Take(pool_id(name).ok_or_else(|| unknown("pool"))?),
        Hole::Var(name) => {
            let (slot, path) = names.var(name).ok_or_else(|| unknown("variable"))?;
            Fill::Var { slot, path, name: name.as_str().into() }
        }
        Hole::Data { table, column } => {
            let index = names.tables.iter().position(|t| t.name == *table).ok_or_else(|| unknown("table"))?;
            let loaded = &names.tables[index];
            let col = loaded.column(column).ok_or_else(|| {
                Problem::new(
                    pos,
                    format!("data table `{table}` has no column `{column}` (columns: {})", loaded.columns().join(", ")),
                )
            })?;
            Fill::Data { table: index as u8, column: col as u16, name: format!("{table}, {column}").into() }
        }
        Hole::Env(name) => {
            let value = names.options.env.get(name).ok_or_else(|| {
                Problem::new(pos, format!("environment variable {name} is not set (env() reads it at load)"))
            })?;
            if value.len() > MAX_ENV_BYTES || value.chars().any(char::is_control) {
                return Err(Problem::new(
                    pos,
                    format!(
                        "environment variable {name} is longer than {MAX_ENV_BYTES} bytes or holds a control character"
                    ),
                ));
            }
            Fill::Env(EnvValue { name: name.as_str().into(), value: value.into_bytes().into() })
        }
        Hole::Base64(pieces) => {
            let mut segs = Segs::default();
            for piece in pieces {
                match piece {
                    Piece::Text(text) => segs.lit(text.as_bytes()),
                    Piece::Hole(inner) => segs.hole(fill_of(inner, Ctx::Raw, pos, def, names)?, Ctx::Raw),
                }
            }
            Fill::Base64(segs.finish().into_boxed_slice())
        }
    })
}
