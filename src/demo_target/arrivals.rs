//! When requests arrived, as counts per 100 ms over the last minute: the
//! ground truth a test or a person reads to see a rate change, or a cap
//! hold, at the target itself (`GET /stats/arrivals`).
//!
//! Pure and bounded: buckets are indexed by time since start, kept in a
//! ring of [`BUCKETS`]; the clock is passed in.

use std::time::{Duration, Instant};

/// Width of a bucket.
pub const BUCKET: Duration = Duration::from_millis(100);
/// Buckets kept: one minute.
pub const BUCKETS: usize = 600;

#[derive(Debug)]
pub struct Arrivals {
    start: Instant,
    /// `counts[i % BUCKETS]` holds bucket `i` while `i` is one of the last
    /// `BUCKETS`; `newest` is the latest bucket written.
    counts: Vec<u32>,
    newest: u64,
}

impl Arrivals {
    pub fn new(start: Instant) -> Arrivals {
        Arrivals { start, counts: vec![0; BUCKETS], newest: 0 }
    }

    fn bucket_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_millis() / BUCKET.as_millis()) as u64
    }

    /// Moves the ring on to `bucket`, emptying the buckets passed over.
    fn advance(&mut self, bucket: u64) {
        if bucket <= self.newest {
            return;
        }
        let passed = (bucket - self.newest).min(BUCKETS as u64);
        for i in 1..=passed {
            self.counts[((self.newest + i) % BUCKETS as u64) as usize] = 0;
        }
        self.newest = bucket;
    }

    pub fn record(&mut self, now: Instant) {
        let bucket = self.bucket_of(now);
        self.advance(bucket);
        // A clock read before a later one was recorded lands in the newest.
        let slot = (bucket.max(self.newest) % BUCKETS as u64) as usize;
        self.counts[slot] = self.counts[slot].saturating_add(1);
    }

    /// The counts of the last `BUCKETS` buckets (fewer since start), oldest
    /// first, the last being the one `now` is in.
    pub fn counts(&mut self, now: Instant) -> Vec<u32> {
        let bucket = self.bucket_of(now);
        self.advance(bucket);
        let kept = (self.newest + 1).min(BUCKETS as u64);
        (self.newest + 1 - kept..=self.newest).map(|i| self.counts[(i % BUCKETS as u64) as usize]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn counts_land_in_their_bucket_and_old_ones_fall_out() {
        let t0 = Instant::now();
        let mut a = Arrivals::new(t0);
        for at in [0, 50, 99, 100, 250, 250] {
            a.record(t0 + ms(at));
        }
        assert_eq!(a.counts(t0 + ms(260)), [3, 1, 2]);
        assert_eq!(a.counts(t0 + ms(500)), [3, 1, 2, 0, 0, 0]);
        // A minute and a half later only the last minute is kept, all empty.
        let later = a.counts(t0 + ms(90_000));
        assert_eq!(later.len(), BUCKETS);
        assert!(later.iter().all(|c| *c == 0));
        a.record(t0 + ms(90_050));
        assert_eq!(a.counts(t0 + ms(90_060)).last(), Some(&1));
        // A clock read from before the newest bucket counts in the newest.
        a.record(t0 + ms(10));
        assert_eq!(a.counts(t0 + ms(90_060)).last(), Some(&2));
    }
}
