//! What a workload can cost in memory while it runs, worked out from the
//! compiled workload alone: the largest request it can render and the most
//! its pools can hold. The sidecar sets these against its memory budget
//! (`MEMORY_BUDGET_MB`) before a workload runs.

use super::Workload;
use super::template::MAX_VALUE_BYTES;

/// What one value in a pool costs besides its text: its slot in the ring
/// (a `Vec` and a flag, with the ring's spare room) and the allocator's
/// header on its text.
const VALUE_OVERHEAD_BYTES: usize = 64;

/// A seed value's slot in the workload (its `String` and flag).
const SEED_ITEM_BYTES: usize = 32;

/// Bytes the allocator hands out for a request of `n`: glibc rounds to 16
/// with an 8-byte header, 32 at least.
fn allocated(n: usize) -> usize {
    (n + 8).div_ceil(16).max(2) * 16
}

impl Workload {
    /// The most one pool value of `pool` can take: the longest capture
    /// into it or the longest value the file seeds it with.
    fn value_bytes(&self, pool: usize) -> usize {
        let captured = self
            .compiled
            .requests
            .iter()
            .flat_map(|r| &r.captures)
            .filter(|c| matches!(c.store, super::compile::Store::Pool(p) if p.index() == pool))
            .map(|c| c.max_len.min(MAX_VALUE_BYTES))
            .max()
            .unwrap_or(0);
        let seeded = self.compiled.pools[pool].seed.iter().map(|item| item.text.len()).max().unwrap_or(0);
        captured.max(seeded)
    }

    /// The most the pools can hold, in bytes, once every one is full, and
    /// the values the file seeds them with as the workload keeps them (as
    /// written and compiled: twice).
    pub fn pool_bytes(&self) -> u64 {
        (0..self.compiled.pools.len())
            .map(|i| {
                let pool = &self.compiled.pools[i];
                let per_value = VALUE_OVERHEAD_BYTES + allocated(self.value_bytes(i));
                let seeds: usize =
                    pool.seed.iter().map(|item| 2 * (SEED_ITEM_BYTES + allocated(item.text.len()))).sum();
                pool.size as u64 * per_value as u64 + seeds as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Options, Target, load_str, orders};
    use crate::base::url::TargetUrl;
    use crate::workload::OrderWeights;

    fn options() -> Options {
        let url = TargetUrl::parse("http://127.0.0.1:8080").unwrap();
        Options::new(Target::new(&url), 50)
    }

    #[test]
    fn pools_cost_their_size_times_their_longest_value() {
        let text = "pools:\n  ids: {size: 1000}\n  names: {size: 10, values: [abcdefghijklmnopqrstuvwxyz0123456789]}\nrequests:\n  - {name: a, weight: 1, method: GET, path: '/{{ pool(ids) }}/{{ pool(names) }}', fallback: b}\n  - {name: b, weight: 1, method: POST, path: /, capture: [{pool: ids, json: /id, max_len: 40}]}\n";
        let workload = load_str("t.yaml", text, &options()).unwrap();
        // ids: 1000 × (64 + 48 for 40 bytes); names: 10 × (64 + 48 for 36
        // bytes), and its one seed twice (32 + 48).
        assert_eq!(workload.pool_bytes(), 1000 * 112 + 10 * 112 + 2 * 80);
        let builtin = orders(OrderWeights { create_order: 1, list_orders: 1, get_order: 1 }, &options()).unwrap();
        // 50 ids of at most 64 bytes.
        assert_eq!(builtin.pool_bytes(), 50 * (64 + 80));
    }
}
