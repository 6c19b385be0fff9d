//! Latency percentiles, per request name and overall, from histograms the
//! engine writes without locks and readers subtract.
//!
//! # Two latencies, clearly named
//! - `from_sent`: from the moment the request actually left to the end of
//!   its answer — what the target took.
//! - `from_scheduled`: from the moment the schedule said it was due to the
//!   end of its answer — what a user arriving on time would have waited,
//!   corrected for coordinated omission (a generator that fell behind would
//!   otherwise hide the wait it caused).
//!
//! # How it is recorded and read
//! The engine records into a [`LatencyTable`]: per request name, two
//! histograms of atomic counters with the bucket layout of an HDR histogram
//! at two significant digits (128 buckets per power of two: every value is
//! reported at most 0.8 % above the truth, never below; values under 128 µs
//! exactly). A record is two relaxed atomic adds: no lock, no allocation,
//! no channel, and nothing the engine must flush when it goes idle.
//!
//! The counters only ever grow. Readers (the control thread) take a sparse
//! [`Snapshot`] now and then and subtract an earlier one: the difference is
//! the interval between them, the same way Prometheus reads counters. A
//! [`LatencyWindow`] keeps the differences of the last few slices for "the
//! last 10 s"; a job keeps its starting snapshot for "the whole job".
//!
//! Why not the `hdrhistogram` crate: its histograms need `&mut` to record,
//! and its `SyncHistogram` makes the reader wait until every recorder has
//! handed over its samples — a recorder that goes idle (a paused engine)
//! holds the reader up until a timeout. Atomic buckets need neither.
//!
//! # Memory
//! 3 328 buckets of 8 bytes per histogram, two per request name, allocated
//! when a name first records: 53 KiB per name in use, 3.4 MiB for the
//! largest workload (64 names). Snapshots and slices hold only the buckets
//! that are not empty, 8 bytes each.

use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Buckets per power of two: 2^7 = 128, two significant digits.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// The largest value kept apart, in microseconds (about 71 minutes, beyond
/// any request timeout); larger values count as this.
pub const MAX_MICROS: u64 = u32::MAX as u64;
/// Buckets of a histogram: 128 exact ones below 128 µs, then 128 for each
/// power of two up to 2^32 µs.
const BUCKETS: usize = (32 - SUB_BITS as usize + 1) * SUB as usize;

/// The most request names a table keeps apart (a workload has at most 64
/// requests); records for a name beyond it are ignored.
pub const MAX_NAMES: usize = 64;

/// The bucket of `micros`.
fn bucket_of(micros: u64) -> usize {
    let v = micros.min(MAX_MICROS);
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let group = u64::from(shift) + 1;
    (group * SUB + ((v >> shift) - SUB)) as usize
}

/// The largest value in bucket `index`, in microseconds: what a percentile
/// that lands in it reports (never below the true value).
fn bucket_top(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let (group, sub) = (index / SUB, index % SUB);
    let shift = group - 1;
    ((SUB + sub) << shift) + (1 << shift) - 1
}

/// Counters of one histogram, written by any thread.
struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
}

impl AtomicHistogram {
    fn new() -> Self {
        AtomicHistogram { counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }

    fn record(&self, micros: u64) {
        // Relaxed: each counter only grows, and a reader that sees a
        // record a moment late sees it in the next snapshot.
        self.counts[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Counts {
        let mut entries = Vec::new();
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                entries.push(Entry::new(i, n));
            }
        }
        Counts { entries }
    }
}

struct NameHistograms {
    from_scheduled: AtomicHistogram,
    from_sent: AtomicHistogram,
}

/// The latencies of every request of one workload. Share it (`Arc`): the
/// engine records, readers snapshot.
pub struct LatencyTable {
    names: Vec<String>,
    histograms: Box<[OnceLock<Box<NameHistograms>>]>,
    /// Tells snapshots of different tables apart (a workload swap makes a
    /// new table), so one is never subtracted from the other.
    id: u64,
}

impl LatencyTable {
    /// A table for these request names (at most [`MAX_NAMES`]; the rest
    /// are not recorded). Nothing is allocated until a name records.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> LatencyTable {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let names: Vec<String> = names.into_iter().take(MAX_NAMES).map(Into::into).collect();
        let histograms = names.iter().map(|_| OnceLock::new()).collect();
        LatencyTable { names, histograms, id: NEXT_ID.fetch_add(1, Ordering::Relaxed) }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Records one answer of request `name` (its index in [`Self::names`]):
    /// `from_sent` from leaving to the end of the answer, `lag` how late it
    /// left against its schedule. Cheap enough for every request.
    pub fn record(&self, name: usize, from_sent: Duration, lag: Duration) {
        let sent = micros(from_sent);
        self.record_micros(name, sent, sent.saturating_add(micros(lag)));
    }

    /// [`Self::record`] in microseconds, for callers that have them.
    pub fn record_micros(&self, name: usize, from_sent: u64, from_scheduled: u64) {
        let Some(slot) = self.histograms.get(name) else { return };
        let histograms = slot.get_or_init(|| {
            Box::new(NameHistograms { from_scheduled: AtomicHistogram::new(), from_sent: AtomicHistogram::new() })
        });
        histograms.from_sent.record(from_sent);
        histograms.from_scheduled.record(from_scheduled.max(from_sent));
    }

    /// Everything recorded so far, as sparse counts.
    pub fn snapshot(&self) -> Snapshot {
        let names = self
            .histograms
            .iter()
            .map(|slot| {
                slot.get()
                    .map(|h| Pair { from_scheduled: h.from_scheduled.snapshot(), from_sent: h.from_sent.snapshot() })
            })
            .collect();
        Snapshot { table: self.id, names }
    }

    /// Bytes held by the histograms allocated so far.
    pub fn memory_bytes(&self) -> usize {
        let per_name = 2 * BUCKETS * std::mem::size_of::<AtomicU64>();
        self.histograms.iter().filter(|s| s.get().is_some()).count() * per_name
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A non-empty bucket: its index in the top 12 bits, its count in the low
/// 52 (counts saturate there, at 4.5·10^15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry(u64);

const COUNT_BITS: u32 = 52;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;

impl Entry {
    fn new(index: usize, count: u64) -> Entry {
        Entry(((index as u64) << COUNT_BITS) | count.min(COUNT_MAX))
    }

    fn index(self) -> usize {
        (self.0 >> COUNT_BITS) as usize
    }

    fn count(self) -> u64 {
        self.0 & COUNT_MAX
    }
}

/// A histogram's non-empty buckets, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    entries: Vec<Entry>,
}

impl Counts {
    /// How many values.
    pub fn count(&self) -> u64 {
        self.entries.iter().map(|e| e.count()).fold(0, u64::saturating_add)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value at quantile `q` (0 to 1; 0.99 is p99), `None` when empty.
    /// At most 0.8 % above the true value, never below it.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The smallest value with at least ⌈q·n⌉ values at or below it.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for e in &self.entries {
            seen = seen.saturating_add(e.count());
            if seen >= rank {
                return Some(Duration::from_micros(bucket_top(e.index())));
            }
        }
        self.entries.last().map(|e| Duration::from_micros(bucket_top(e.index())))
    }

    /// The largest value's bucket top.
    pub fn max(&self) -> Option<Duration> {
        self.entries.last().map(|e| Duration::from_micros(bucket_top(e.index())))
    }

    /// Adds `other` in.
    pub fn merge(&mut self, other: &Counts) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.entries.clone_from(&other.entries);
            return;
        }
        let (a, b) = (&self.entries, &other.entries);
        let mut merged = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let (x, y) = (a[i], b[j]);
            match x.index().cmp(&y.index()) {
                std::cmp::Ordering::Less => {
                    merged.push(x);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(y);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push(Entry::new(x.index(), x.count().saturating_add(y.count())));
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&a[i..]);
        merged.extend_from_slice(&b[j..]);
        self.entries = merged;
    }

    /// What was added since `earlier` (a snapshot of the same counters taken
    /// before): bucket by bucket, never below 0.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut old = earlier.entries.iter().peekable();
        let mut entries = Vec::new();
        for e in &self.entries {
            while old.peek().is_some_and(|o| o.index() < e.index()) {
                old.next();
            }
            let before = old.peek().filter(|o| o.index() == e.index()).map_or(0, |o| o.count());
            let added = e.count().saturating_sub(before);
            if added > 0 {
                entries.push(Entry::new(e.index(), added));
            }
        }
        Counts { entries }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

/// Both latencies of a request name (or of all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pair {
    pub from_scheduled: Counts,
    pub from_sent: Counts,
}

impl Pair {
    fn merge(&mut self, other: &Pair) {
        self.from_scheduled.merge(&other.from_scheduled);
        self.from_sent.merge(&other.from_sent);
    }

    fn since(&self, earlier: &Pair) -> Pair {
        Pair {
            from_scheduled: self.from_scheduled.since(&earlier.from_scheduled),
            from_sent: self.from_sent.since(&earlier.from_sent),
        }
    }

    /// How many answers were recorded.
    pub fn count(&self) -> u64 {
        self.from_sent.count()
    }

    pub fn percentiles(&self) -> LatencyPercentiles {
        LatencyPercentiles {
            from_scheduled: Percentiles::of(&self.from_scheduled),
            from_sent: Percentiles::of(&self.from_sent),
        }
    }
}

/// The counts of a table at one moment, or between two moments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    table: u64,
    /// Per name, in the table's order; `None` for a name never recorded.
    names: Vec<Option<Pair>>,
}

impl Snapshot {
    /// What was recorded since `earlier`. A snapshot of another table (the
    /// workload changed in between) counts as empty: all is new.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        if earlier.table != self.table {
            return self.clone();
        }
        let names = self
            .names
            .iter()
            .enumerate()
            .map(|(i, now)| {
                let now = now.as_ref()?;
                let delta = match earlier.names.get(i).and_then(Option::as_ref) {
                    Some(before) => now.since(before),
                    None => now.clone(),
                };
                Some(delta)
            })
            .collect();
        Snapshot { table: self.table, names }
    }

    /// Adds `other` in. Slices of another table (the workload changed:
    /// its names may differ) replace what was there rather than mix in
    /// under the wrong names.
    pub fn merge(&mut self, other: &Snapshot) {
        if self.names.is_empty() || self.table != other.table {
            self.table = other.table;
            self.names.clear();
        }
        if self.names.len() < other.names.len() {
            self.names.resize(other.names.len(), None);
        }
        for (mine, theirs) in self.names.iter_mut().zip(&other.names) {
            match (mine.as_mut(), theirs) {
                (Some(m), Some(t)) => m.merge(t),
                (None, Some(t)) => *mine = Some(t.clone()),
                _ => {}
            }
        }
    }

    /// The counts of name `index`, if it recorded anything.
    pub fn name(&self, index: usize) -> Option<&Pair> {
        self.names.get(index).and_then(Option::as_ref)
    }

    /// All names together.
    pub fn overall(&self) -> Pair {
        let mut all = Pair::default();
        for pair in self.names.iter().flatten() {
            all.merge(pair);
        }
        all
    }

    /// Percentiles overall and per name (names with no answers left out),
    /// with `names` the table's names.
    pub fn report(&self, names: &[String]) -> LatencyReport {
        let by_name = self
            .names
            .iter()
            .zip(names)
            .filter_map(|(pair, name)| {
                let pair = pair.as_ref().filter(|p| p.count() > 0)?;
                Some((name.clone(), pair.percentiles()))
            })
            .collect();
        LatencyReport { overall: self.overall().percentiles(), by_name }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.names.iter().flatten().map(|p| p.from_scheduled.memory_bytes() + p.from_sent.memory_bytes()).sum()
    }
}

/// p50, p90, p95, p99 and max in milliseconds (`null` when nothing was
/// recorded), and how many values they are of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Percentiles {
    pub fn of(counts: &Counts) -> Percentiles {
        let at = |q: f64| counts.quantile(q).map(millis);
        Percentiles {
            count: counts.count(),
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            max: counts.max().map(millis),
        }
    }
}

/// Milliseconds with microsecond precision, as JSON shows them.
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// Both latencies' percentiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPercentiles {
    /// From the scheduled send time (coordinated omission corrected).
    pub from_scheduled: Percentiles,
    /// From the actual send time.
    pub from_sent: Percentiles,
}

/// Percentiles overall and per request name, as `/status`, job events and
/// summaries show them under `latency_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    pub overall: LatencyPercentiles,
    pub by_name: BTreeMap<String, LatencyPercentiles>,
}

/// The last few slices of a table, for "the last 10 s": a reader calls
/// [`LatencyWindow::tick`] every slice (say every second) with a fresh
/// snapshot, and the window keeps the differences.
pub struct LatencyWindow {
    slices: usize,
    /// (start, end, what was recorded in between), oldest first.
    ring: VecDeque<(Instant, Instant, Snapshot)>,
    last: Option<(Instant, Snapshot)>,
}

impl LatencyWindow {
    /// A window of the last `slices` ticks (at least 1).
    pub fn new(slices: usize) -> LatencyWindow {
        let slices = slices.max(1);
        LatencyWindow { slices, ring: VecDeque::with_capacity(slices + 1), last: None }
    }

    /// Adds the slice since the previous tick (the first tick only sets
    /// the starting point); the oldest slice falls out.
    pub fn tick(&mut self, at: Instant, now: Snapshot) {
        if let Some((start, before)) = &self.last {
            let slice = now.since(before);
            self.ring.push_back((*start, at, slice));
            while self.ring.len() > self.slices {
                self.ring.pop_front();
            }
        }
        self.last = Some((at, now));
    }

    /// The slices of the window merged.
    pub fn merged(&self) -> Snapshot {
        let mut all = Snapshot::default();
        for (_, _, slice) in &self.ring {
            all.merge(slice);
        }
        all
    }

    /// How long the window covers (less than its full length at first).
    pub fn covers(&self) -> Duration {
        match (self.ring.front(), self.ring.back()) {
            (Some((start, _, _)), Some((_, end, _))) => end.saturating_duration_since(*start),
            _ => Duration::ZERO,
        }
    }

    /// The latest slice alone.
    pub fn latest(&self) -> Option<&Snapshot> {
        self.ring.back().map(|(_, _, s)| s)
    }

    /// Bytes held by the slices and the last snapshot.
    pub fn memory_bytes(&self) -> usize {
        self.ring.iter().map(|(_, _, s)| s.memory_bytes()).sum::<usize>()
            + self.last.as_ref().map_or(0, |(_, s)| s.memory_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1000.0)
    }

    /// The exact nearest-rank quantile of `values` (microseconds).
    fn exact(values: &mut [u64], q: f64) -> u64 {
        values.sort_unstable();
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    }

    #[test]
    fn buckets_are_exact_below_128_us_and_within_0_8_percent_above() {
        for v in 0..128 {
            assert_eq!(bucket_top(bucket_of(v)), v);
        }
        let mut previous = 0;
        for v in (128..10_000_000u64).step_by(7).chain([MAX_MICROS - 1, MAX_MICROS]) {
            let i = bucket_of(v);
            assert!(i >= previous && i < BUCKETS, "{v} → bucket {i}");
            previous = i;
            let top = bucket_top(i);
            assert!(top >= v && (top - v) as f64 <= v as f64 * 0.0079, "{v} reported as {top}");
        }
        assert_eq!(bucket_of(u64::MAX), bucket_of(MAX_MICROS));
        assert_eq!(bucket_of(MAX_MICROS), BUCKETS - 1);
    }

    #[test]
    fn a_quantile_is_the_nearest_rank() {
        let table = LatencyTable::new(["a"]);
        for v in [3, 1, 2] {
            table.record_micros(0, v, v);
        }
        let counts = table.snapshot().overall().from_sent;
        let at = |q: f64| counts.quantile(q).map(|d| d.as_micros());
        // Of 1, 2, 3 µs: the median is 2, anything above 2/3 is 3.
        assert_eq!(
            (at(0.0), at(0.34), at(0.5), at(0.67), at(0.99), at(1.0)),
            (Some(1), Some(2), Some(2), Some(3), Some(3), Some(3))
        );
        assert_eq!(at(f64::NAN), Some(3));
        assert_eq!(LatencyTable::new(["a"]).snapshot().overall().from_sent.quantile(0.5), None);
    }

    #[test]
    fn percentiles_match_the_exact_ones_within_the_bucket_width() {
        let table = LatencyTable::new(["get"]);
        let mut values = Vec::new();
        // Log-uniform from 50 µs to 5 s, deterministic.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            let v = (50.0 * 1e5f64.powf(unit)) as u64;
            values.push(v);
            table.record_micros(0, v, v);
        }
        let counts = &table.snapshot().name(0).expect("recorded").from_sent.clone();
        assert_eq!(counts.count(), 20_000);
        for q in [0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(&mut values, q);
            let got = counts.quantile(q).unwrap().as_micros() as u64;
            assert!(got >= want && got as f64 <= want as f64 * 1.008, "q{q}: {got} µs, exact {want} µs");
        }
        let p = Percentiles::of(counts);
        assert_eq!(p.count, 20_000);
        assert_eq!(p.max, Some(millis(counts.max().unwrap())));
        assert!(p.p50 < p.p90 && p.p90 <= p.p95 && p.p95 <= p.p99 && p.p99 <= p.max);
    }

    #[test]
    fn from_scheduled_adds_the_lag_and_from_sent_does_not() {
        let table = LatencyTable::new(["create", "list"]);
        // On time: both the same. Left 40 ms late: only from_scheduled shows it.
        table.record(0, ms(10.0), Duration::ZERO);
        table.record(1, ms(10.0), ms(40.0));
        let report = table.snapshot().report(table.names());
        let create = report.by_name["create"];
        let list = report.by_name["list"];
        assert_eq!(create.from_sent.p50, create.from_scheduled.p50);
        assert!((list.from_sent.p50.unwrap() - 10.0).abs() < 0.1, "{list:?}");
        assert!((list.from_scheduled.p50.unwrap() - 50.0).abs() < 0.4, "{list:?}");
        assert_eq!(report.overall.from_sent.count, 2);
        assert!((report.overall.from_scheduled.max.unwrap() - 50.0).abs() < 0.4);
    }

    #[test]
    fn an_interval_is_one_snapshot_less_an_earlier_one() {
        let table = LatencyTable::new(["a", "b"]);
        for _ in 0..100 {
            table.record(0, ms(1.0), Duration::ZERO);
        }
        let before = table.snapshot();
        for _ in 0..10 {
            table.record(0, ms(200.0), Duration::ZERO);
            table.record(1, ms(3.0), Duration::ZERO);
        }
        let interval = table.snapshot().since(&before);
        let a = interval.name(0).unwrap();
        assert_eq!(a.count(), 10);
        assert!((millis(a.from_sent.quantile(0.5).unwrap()) - 200.0).abs() < 1.6);
        assert_eq!(interval.name(1).unwrap().count(), 10);
        assert_eq!(interval.overall().count(), 20);
        // The whole is still there.
        assert_eq!(table.snapshot().overall().count(), 120);
        // Merging the parts gives the whole.
        let mut whole = before.clone();
        whole.merge(&interval);
        assert_eq!(whole, table.snapshot());
    }

    #[test]
    fn nothing_is_allocated_until_a_name_records_and_unknown_names_are_ignored() {
        let names: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
        let table = LatencyTable::new(names);
        assert_eq!(table.names().len(), MAX_NAMES, "names beyond 64 are not kept");
        assert_eq!(table.memory_bytes(), 0);
        table.record(70, ms(1.0), ms(1.0));
        table.record(usize::MAX, ms(1.0), ms(1.0));
        assert_eq!(table.memory_bytes(), 0);
        assert_eq!(table.snapshot().overall().count(), 0);
        table.record(3, Duration::MAX, Duration::MAX);
        assert_eq!(table.memory_bytes(), 2 * BUCKETS * 8);
        let report = table.snapshot().report(table.names());
        assert_eq!(report.by_name.keys().collect::<Vec<_>>(), ["r3"]);
        // A value beyond the top counts as the top (about 71 minutes).
        assert_eq!(report.overall.from_sent.max, Some(millis(Duration::from_micros(MAX_MICROS))));
    }

    #[test]
    fn snapshots_of_another_table_are_not_subtracted() {
        let old = LatencyTable::new(["a"]);
        let new = LatencyTable::new(["a"]);
        old.record(0, ms(1.0), Duration::ZERO);
        old.record(0, ms(1.0), Duration::ZERO);
        new.record(0, ms(1.0), Duration::ZERO);
        assert_eq!(new.snapshot().since(&old.snapshot()).overall().count(), 1);
    }

    #[test]
    fn a_window_across_a_workload_change_never_mixes_names() {
        let old = LatencyTable::new(["a", "b"]);
        let new = LatencyTable::new(["b", "c"]);
        let t0 = Instant::now();
        let mut window = LatencyWindow::new(10);
        window.tick(t0, old.snapshot());
        old.record(0, ms(1.0), Duration::ZERO);
        window.tick(t0 + Duration::from_secs(1), old.snapshot());
        new.record(1, ms(7.0), Duration::ZERO);
        new.record(1, ms(7.0), Duration::ZERO);
        window.tick(t0 + Duration::from_secs(2), new.snapshot());
        let report = window.merged().report(new.names());
        assert_eq!(report.by_name.keys().collect::<Vec<_>>(), ["c"]);
        assert_eq!(report.overall.from_sent.count, 2, "the old table's answer is not counted as 'b'");
    }

    #[test]
    fn the_report_is_null_where_nothing_was_recorded() {
        let table = LatencyTable::new(["a"]);
        let json = serde_json::to_value(table.snapshot().report(table.names())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"overall": {
                "from_scheduled": {"count": 0, "p50": null, "p90": null, "p95": null, "p99": null, "max": null},
                "from_sent": {"count": 0, "p50": null, "p90": null, "p95": null, "p99": null, "max": null}},
                "by_name": {}})
        );
        table.record(0, Duration::from_micros(1500), Duration::from_micros(250));
        let json = serde_json::to_value(table.snapshot().report(table.names())).unwrap();
        assert_eq!(json["by_name"]["a"]["from_sent"]["p99"], 1.503);
        assert_eq!(json["by_name"]["a"]["from_scheduled"]["max"], 1.751);
    }

    #[test]
    fn a_window_keeps_the_last_slices_only() {
        let table = LatencyTable::new(["a"]);
        let mut window = LatencyWindow::new(3);
        let t0 = Instant::now();
        window.tick(t0, table.snapshot());
        assert!(window.latest().is_none());
        // Second s: 1 ms each; later seconds: 100 ms each.
        for s in 1..=5u32 {
            let value = if s == 1 { 1.0 } else { 100.0 };
            for _ in 0..s {
                table.record(0, ms(value), Duration::ZERO);
            }
            window.tick(t0 + Duration::from_secs(u64::from(s)), table.snapshot());
        }
        // The last 3 slices: 3 + 4 + 5 values of 100 ms; the 1 ms ones fell out.
        let merged = window.merged();
        assert_eq!(merged.overall().count(), 12);
        assert!(millis(merged.overall().from_sent.quantile(0.0).unwrap()) > 99.0);
        assert_eq!(window.latest().unwrap().overall().count(), 5);
        assert_eq!(window.covers(), Duration::from_secs(3));
        assert!(window.memory_bytes() > 0);
    }

    #[test]
    fn readers_see_every_record_while_the_engine_writes() {
        let table = Arc::new(LatencyTable::new(["a", "b"]));
        let writer = {
            let table = Arc::clone(&table);
            std::thread::spawn(move || {
                for i in 0..200_000u64 {
                    table.record_micros((i % 2) as usize, i % 5000, i % 7000);
                }
            })
        };
        let mut last = 0;
        while !writer.is_finished() {
            let seen = table.snapshot().overall().count();
            assert!(seen >= last, "counts went back: {seen} < {last}");
            last = seen;
        }
        writer.join().unwrap();
        assert_eq!(table.snapshot().overall().count(), 200_000);
    }

    proptest! {
        #[test]
        fn any_value_lands_in_a_bucket_that_holds_it(v in any::<u64>()) {
            let i = bucket_of(v);
            prop_assert!(i < BUCKETS);
            let top = bucket_top(i);
            let v = v.min(MAX_MICROS);
            prop_assert!(top >= v);
            prop_assert!(v < 128 && top == v || (top - v) as f64 <= v as f64 / 127.0);
        }

        #[test]
        fn merging_slices_equals_recording_them_together(
            a in prop::collection::vec(any::<u32>(), 0..200),
            b in prop::collection::vec(any::<u32>(), 0..200),
            q in 0.0..=1.0f64,
        ) {
            let (ta, tb, both) = (LatencyTable::new(["x"]), LatencyTable::new(["x"]), LatencyTable::new(["x"]));
            for &v in &a { ta.record_micros(0, v.into(), v.into()); both.record_micros(0, v.into(), v.into()); }
            for &v in &b { tb.record_micros(0, v.into(), v.into()); both.record_micros(0, v.into(), v.into()); }
            let mut merged = ta.snapshot().overall().from_sent;
            merged.merge(&tb.snapshot().overall().from_sent);
            let whole = both.snapshot().overall().from_sent;
            prop_assert_eq!(merged.quantile(q), whole.quantile(q));
            prop_assert_eq!(merged.count(), (a.len() + b.len()) as u64);
            prop_assert_eq!(whole.since(&merged).count(), 0);
        }
    }
}
