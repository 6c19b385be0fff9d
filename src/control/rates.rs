//! This replica's rates against the whole cluster's, now: one definition
//! for `/status`, the stats event, the history and the stats line.

use serde::Serialize;

use crate::cluster::{Cluster, ClusterView};
use crate::engine::Engine;
use crate::engine::mode::Plan;

/// This replica's rates against the whole cluster's, now: in `/status`,
/// the stats event and the stats line alike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RatesNow {
    /// What the schedule asks of this replica now: its share of the rate
    /// at this moment of a ramp or a job (0 during the warm-up).
    pub target_rps: f64,
    /// What the schedule asks of every replica together now.
    pub cluster_target_rps: f64,
    /// What every replica together sent over the last 10 s (this one's
    /// `achieved_rps` when alone).
    pub cluster_achieved_rps: f64,
    /// Replicas the rate is split between, this one included (1 alone).
    pub replicas: usize,
}

impl RatesNow {
    /// From the plan, this replica's achieved rate and, with `PEERS`, the
    /// cluster's view.
    pub fn of(plan: &Plan, achieved_rps: f64, cluster: Option<&ClusterView>) -> RatesNow {
        let round = |r: f64| (r * 100.0).round() / 100.0;
        let whole = plan.rate_at(std::time::SystemTime::now());
        RatesNow {
            target_rps: round(plan.share.of(whole)),
            cluster_target_rps: round(whole),
            cluster_achieved_rps: cluster.map_or(achieved_rps, |c| c.achieved_rps),
            replicas: cluster.map_or(1, |c| c.members),
        }
    }

    /// [`RatesNow::of`] the engine's plan now.
    pub fn now(engine: &Engine, achieved_rps: f64, cluster: Option<&Cluster>) -> RatesNow {
        RatesNow::of(&engine.plan(), achieved_rps, cluster.map(|c| c.view()).as_ref())
    }
}
