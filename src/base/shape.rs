//! Rate shapes as data: linear stages, and the pattern of ragged pauses.
//! The engine plays them; the stories (named scenarios, a job's own
//! stages) and the exporters write them. Pure: no clock, no I/O.

/// A stretch of `secs` seconds over which the rate goes linearly from
/// `from_rps` to `to_rps` (equal for a hold).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub secs: f64,
    pub from_rps: f64,
    pub to_rps: f64,
}

impl Stage {
    pub fn ramp(secs: f64, from_rps: f64, to_rps: f64) -> Stage {
        Stage { secs, from_rps, to_rps }
    }

    /// Requests this stage sends: the integral of its rate.
    pub fn requests(&self) -> f64 {
        self.secs * (self.from_rps + self.to_rps) / 2.0
    }
}

/// Random pauses in sending between active stretches: latency
/// degradation's clock. Seconds, `(shortest, longest)` each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PausePattern {
    pub pauses: (f64, f64),
    pub active: (f64, f64),
}
