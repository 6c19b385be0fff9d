//! `MEMORY_BUDGET_MB`: what the engine will hold for a workload — requests
//! in flight with their answer buffers, full pools — set against the
//! memory the process may use, before the workload runs. Pure arithmetic
//! over the workload's sizes.

use crate::workload::Workload;

/// Default of `MEMORY_BUDGET_MB`: below the 256 MiB the Compose files and
/// Kubernetes manifests give the container, with room for what the
/// allocator keeps between peaks.
pub const DEFAULT_MEMORY_BUDGET_MB: u64 = 240;

/// A request in flight besides its own bytes: the answer's read buffer at
/// its bound (head, body cap, framing), the connection.
const ANSWER_BYTES: u64 = super::http::max_answer_bytes(super::client::MAX_BODY_BYTES) as u64 + 4 * 1024;
pub const MIB: u64 = 1024 * 1024;

/// `MEMORY_BUDGET_MB`: the memory the process may use. A workload is
/// checked against it before it runs (at start, `PUT /workload`, SIGHUP),
/// and so is a change of the in-flight bound: what does not fit is
/// refused, so memory follows the budget, not the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    bytes: u64,
    /// What the rest of the process holds whatever the workload (the app
    /// says: the runtime, the control API at its bounds).
    fixed_bytes: u64,
}

/// The parts of a workload's estimate, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryNeeds {
    /// The process and the control API.
    pub fixed: u64,
    /// One request in flight: its largest rendering and an answer buffer.
    pub per_request: u64,
    pub in_flight: usize,
    /// The pools, full.
    pub pools: u64,
}

impl MemoryNeeds {
    pub fn total(&self) -> u64 {
        self.fixed + self.per_request.saturating_mul(self.in_flight as u64) + self.pools
    }
}

/// A workload, with an in-flight bound, that does not fit the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "needs about {} MiB, more than MEMORY_BUDGET_MB={}: {} requests in flight × {} KiB (the largest request, {} KiB, and an answer buffer of {} KiB) = {} MiB, full pools {} MiB, the process and control API {} MiB; {}",
    mib(self.needs.total()), self.budget_mib, self.needs.in_flight, self.needs.per_request / 1024,
    self.request_kib, ANSWER_BYTES / 1024, mib(self.needs.per_request.saturating_mul(self.needs.in_flight as u64)),
    mib(self.needs.pools), mib(self.needs.fixed), self.advice()
)]
pub struct MemoryError {
    pub needs: MemoryNeeds,
    pub budget_mib: u64,
    request_kib: u64,
    /// The largest in-flight bound that fits (0: none does).
    pub fits_in_flight: usize,
}

impl MemoryError {
    fn advice(&self) -> String {
        match self.fits_in_flight {
            0 => "smaller pools (size, max_len) or a larger MEMORY_BUDGET_MB".to_string(),
            n => format!(
                "at most {n} in flight would fit (MAX_IN_FLIGHT, PUT /config max_in_flight), or make requests or pools smaller"
            ),
        }
    }
}

fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / MIB as f64;
    if mib < 10.0 { format!("{mib:.1}") } else { format!("{mib:.0}") }
}

impl MemoryBudget {
    /// `mib` of memory, of which `fixed_bytes` the rest of the process
    /// holds whatever the workload.
    pub fn new(mib: u64, fixed_bytes: u64) -> MemoryBudget {
        MemoryBudget { bytes: mib.saturating_mul(MIB), fixed_bytes }
    }

    pub fn mib(&self) -> u64 {
        self.bytes / MIB
    }

    /// What `workload` needs with `in_flight` requests at once.
    pub fn needs(&self, workload: &Workload, in_flight: usize) -> MemoryNeeds {
        MemoryNeeds {
            fixed: self.fixed_bytes,
            per_request: workload.max_request_bytes() as u64 + ANSWER_BYTES,
            in_flight,
            pools: workload.pool_bytes(),
        }
    }

    /// Whether `workload` with `in_flight` requests at once fits.
    pub fn check(&self, workload: &Workload, in_flight: usize) -> Result<MemoryNeeds, MemoryError> {
        let needs = self.needs(workload, in_flight);
        if needs.total() <= self.bytes {
            return Ok(needs);
        }
        let left = self.bytes.saturating_sub(needs.fixed + needs.pools);
        let fits_in_flight = usize::try_from(left / needs.per_request.max(1)).unwrap_or(usize::MAX);
        Err(MemoryError {
            needs,
            budget_mib: self.mib(),
            request_kib: (workload.max_request_bytes() as u64).div_ceil(1024),
            fits_in_flight,
        })
    }
}
