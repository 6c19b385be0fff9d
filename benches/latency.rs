//! Micro-benchmark of latency recording, the engine's hot-path cost:
//! `cargo bench --bench latency`. Prints ns per record alone and with a
//! reader taking snapshots beside it, and what snapshots and reports cost.
//! Figures are for comparing runs on one machine, not absolute truths.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use trafficgen::observe::latency::LatencyTable;

/// Latencies the way a target answers: mostly a few ms, a tail to seconds.
fn samples(n: usize) -> Vec<(u64, u64)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            let sent = (200.0 * 1e4f64.powf(unit * unit * unit)) as u64;
            (sent, sent + (x & 0x3ff))
        })
        .collect()
}

fn record_loop(table: &LatencyTable, samples: &[(u64, u64)], names: usize, rounds: usize) -> Duration {
    let start = Instant::now();
    for round in 0..rounds {
        for (i, &(sent, scheduled)) in samples.iter().enumerate() {
            table.record_micros(black_box((i + round) % names), black_box(sent), black_box(scheduled));
        }
    }
    start.elapsed()
}

fn ns_per_record(table: &LatencyTable, samples: &[(u64, u64)], names: usize, rounds: usize) -> f64 {
    // Warm up: allocate every name's histograms and the caches.
    record_loop(table, samples, names, 1);
    let took = record_loop(table, samples, names, rounds);
    took.as_nanos() as f64 / (samples.len() * rounds) as f64
}

fn with_reader(every: Duration, samples: &[(u64, u64)], rounds: usize) -> (f64, u64) {
    let table = Arc::new(LatencyTable::new((0..5).map(|i| format!("r{i}"))));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (table, stop) = (Arc::clone(&table), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut snapshots = 0u64;
            while !stop.load(Ordering::Relaxed) {
                black_box(table.snapshot());
                snapshots += 1;
                std::thread::sleep(every);
            }
            snapshots
        })
    };
    let ns = ns_per_record(&table, samples, 5, rounds);
    stop.store(true, Ordering::Relaxed);
    (ns, reader.join().unwrap_or(0))
}

fn main() {
    let samples = samples(1 << 16);
    let rounds = 150; // about 10 million records per figure

    let table = LatencyTable::new((0..5).map(|i| format!("r{i}")));
    println!(
        "record, 5 names, no reader:                  {:6.1} ns/record",
        ns_per_record(&table, &samples, 5, rounds)
    );
    let table = LatencyTable::new((0..64).map(|i| format!("r{i}")));
    println!(
        "record, 64 names, no reader:                 {:6.1} ns/record",
        ns_per_record(&table, &samples, 64, rounds)
    );
    let (ns, n) = with_reader(Duration::from_millis(500), &samples, rounds);
    println!("record, 5 names, a snapshot every 500 ms:    {ns:6.1} ns/record ({n} snapshots)");
    let (ns, n) = with_reader(Duration::from_millis(1), &samples, rounds);
    println!("record, 5 names, a snapshot every 1 ms:      {ns:6.1} ns/record ({n} snapshots)");

    for names in [5usize, 64] {
        let table = LatencyTable::new((0..names).map(|i| format!("r{i}")));
        record_loop(&table, &samples, names, 4);
        let start = Instant::now();
        let reps = 200;
        let mut snapshot = table.snapshot();
        for _ in 0..reps {
            snapshot = black_box(table.snapshot());
        }
        let snap_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(reps);
        let start = Instant::now();
        for _ in 0..reps {
            black_box(snapshot.report(table.names()));
        }
        let report_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(reps);
        println!(
            "{names:2} names: snapshot {snap_us:7.1} µs, report {report_us:7.1} µs; histograms {} KiB, a snapshot {} KiB",
            table.memory_bytes() / 1024,
            snapshot.memory_bytes() / 1024
        );
    }
}
