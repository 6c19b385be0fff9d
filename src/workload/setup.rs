//! What the engine asks of a workload about logging in: which pools the
//! setup fills, which answers call for a new setup run, when an answer
//! says the setup must run again (`every_secs: {json: /expires_in, …}`),
//! and which step of a journey logs an instance in again.

use std::time::Duration;

use super::capture::{Found, find};
use super::model::MAX_SETUP_EVERY_SECS;
use super::{JourneyId, PoolId, RequestId, Role, RunState, Step, Workload};

/// Why an answer gave no life for the setup to be refreshed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("the answer has no body to read it from")]
    NoBody,
    #[error("the answer is not JSON")]
    NotJson,
    #[error("the answer has nothing there")]
    Missing,
    #[error("the answer holds no positive number of seconds there")]
    NotSeconds,
}

impl Workload {
    /// The pools setup requests capture into.
    pub fn setup_pools(&self) -> &[PoolId] {
        &self.compiled.setup_pools
    }

    /// Whether an answer `status` to request `id` (not a setup request)
    /// calls for a new setup run: `id` reads a pool the setup fills and
    /// `relogin_on` names the status.
    pub fn relogs_setup(&self, id: RequestId, status: u16) -> bool {
        self.compiled.setup_relogin_on.contains(status) && self.reads_setup_values(id)
    }

    /// Whether `id` is a request (not a setup one) that sends what setup
    /// captured.
    pub fn reads_setup_values(&self, id: RequestId) -> bool {
        let request = &self.compiled.requests[id.index()];
        request.role != Role::Setup && request.needs.iter().any(|p| self.compiled.setup_pools.contains(p))
    }

    /// The codes that call for a new setup run (`relogin_on`), as written.
    pub fn setup_relogin_on(&self) -> String {
        let codes = self.compiled.setup_relogin_on;
        if codes == super::model::StatusSet::EMPTY { String::new() } else { codes.to_string() }
    }

    /// Whether `status` is one that calls for a new setup run.
    pub fn is_relogin_status(&self, status: u16) -> bool {
        self.compiled.setup_relogin_on.contains(status)
    }

    /// Whether any request sends what setup captured.
    pub fn has_setup_readers(&self) -> bool {
        self.requests().any(|id| self.reads_setup_values(id))
    }

    /// Empties the pools the setup fills: their values were refused.
    pub fn forget_setup_values(&self, state: &mut RunState) {
        for pool in &self.compiled.setup_pools {
            state.pools[pool.index()].retain(|_| false);
        }
    }

    /// Whether the setup's next run is taken from the answer to `id`.
    pub fn refreshes(&self, id: RequestId) -> bool {
        self.compiled.setup_refresh.as_ref().is_some_and(|r| r.request == id)
    }

    /// Whether the setup's next run is taken from an answer at all.
    pub fn refresh_from_answer(&self) -> bool {
        self.compiled.setup_refresh.is_some()
    }

    /// When the setup must run again after the answer `body` to `id` (the
    /// request `refreshes` names): the life the answer gives, in seconds
    /// (a JSON number, or a text holding one), at the workload's fraction,
    /// between 1 s and a day. `None` if `id` is not that request.
    pub fn refresh_after(&self, id: RequestId, body: Option<&[u8]>) -> Option<Result<Duration, RefreshError>> {
        let refresh = self.compiled.setup_refresh.as_ref().filter(|r| r.request == id)?;
        let body = match body.filter(|b| !b.is_empty()) {
            Some(body) => body,
            None => return Some(Err(RefreshError::NoBody)),
        };
        let secs = match find(body, &refresh.pointer) {
            None => return Some(Err(RefreshError::NotJson)),
            Some(Found::Missing) => return Some(Err(RefreshError::Missing)),
            Some(Found::Number(n)) => n.as_f64(),
            Some(Found::NumberText(text)) => text.parse::<f64>().ok(),
            Some(Found::Text(text)) => text.trim().parse::<f64>().ok(),
            Some(Found::Other) => None,
        };
        let Some(secs) = secs.filter(|s| s.is_finite() && *s > 0.0) else {
            return Some(Err(RefreshError::NotSeconds));
        };
        // Saturating: a life of 1e300 s is a day.
        let wait = (secs * refresh.fraction).clamp(1.0, MAX_SETUP_EVERY_SECS as f64);
        Some(Ok(Duration::from_secs_f64(wait)))
    }

    /// The pointer and fraction of the refresh, for messages.
    pub fn refresh_rule(&self) -> Option<(String, f64)> {
        let refresh = self.compiled.setup_refresh.as_ref()?;
        let pointer: String =
            refresh.pointer.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect();
        Some((pointer, refresh.fraction))
    }

    /// The step an instance of `journey` at step `step` logs in again
    /// with when that step is answered `status`: the earlier step that
    /// captured a variable it sends in a header, if `relogin_on` names the
    /// status.
    pub fn relogin_step(&self, journey: JourneyId, step: usize, status: u16) -> Option<usize> {
        let journey = &self.compiled.journeys[journey.index()];
        if !journey.relogin_on.contains(status) {
            return None;
        }
        let login = journey.relogin_steps.get(step).copied().flatten()?;
        matches!(journey.steps.get(login), Some(Step::Request { .. })).then_some(login)
    }
}
