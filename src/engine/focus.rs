//! Which of the workload's requests the engine draws from while a job runs
//! (issue 11): a subset of the weighted requests by name, and a share of
//! requests taken from the workload's error requests instead.
//!
//! The jobs layer sets it ([`super::Engine::set_focus`]); the worker reads
//! it when it draws the next request. `None` means the whole workload by
//! its weights, which is what runs outside jobs.

/// A narrower draw than the whole workload.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Focus {
    /// Names of weighted requests to choose from, by their weights; `None`:
    /// every weighted request. Names are checked against the workload
    /// before a focus is set, so an unknown name here is ignored.
    pub requests: Option<Vec<String>>,
    /// Share (`0.0..=1.0`) of requests drawn uniformly from the workload's
    /// error requests (`error: true`) instead of by weight; 0 when the
    /// workload has none.
    pub error_share: f64,
}

impl Focus {
    /// The whole workload: what a job without `endpoints` and errors sends.
    pub fn is_whole(&self) -> bool {
        self.requests.is_none() && self.error_share <= 0.0
    }
}
