//! The achieved send rate over a recent window, from periodic samples of
//! the engine's sent counter.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct SentRate {
    window: Duration,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl SentRate {
    pub fn new(window: Duration) -> Self {
        SentRate { window, samples: Mutex::new(VecDeque::new()) }
    }

    /// Records that `sent` requests had gone out by `at`.
    pub fn sample(&self, at: Instant, sent: u64) {
        let mut samples = self.samples.lock();
        samples.push_back((at, sent));
        while samples.len() > 2 && samples.front().is_some_and(|(t, _)| at.duration_since(*t) > self.window) {
            samples.pop_front();
        }
    }

    /// Requests per second between the oldest and newest sample in the
    /// window; 0 until there are two.
    pub fn rate(&self) -> f64 {
        let samples = self.samples.lock();
        match (samples.front(), samples.back()) {
            (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => {
                let rate = n1.saturating_sub(n0) as f64 / t1.duration_since(t0).as_secs_f64();
                (rate * 100.0).round() / 100.0
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_covers_only_the_window() {
        let meter = SentRate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(meter.rate(), 0.0);
        // 100/s for 20 s, then 10/s for 10 s.
        let mut sent = 0;
        for s in 0..=30u64 {
            meter.sample(t0 + Duration::from_secs(s), sent);
            sent += if s < 20 { 100 } else { 10 };
        }
        assert_eq!(meter.rate(), 10.0);
    }

    #[test]
    fn two_samples_are_enough() {
        let meter = SentRate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        meter.sample(t0, 5);
        meter.sample(t0 + Duration::from_millis(500), 6);
        assert_eq!(meter.rate(), 2.0);
    }
}
