//! Property test of the replication rule: whatever happens to the messages
//! between replicas (reordered, repeated, lost) and however their clocks
//! disagree, once every replica has caught up from the others they all
//! hold the latest change, and on the way no replica ever goes back to an
//! older version or holds a value with another change's version.

use std::collections::HashMap;

use proptest::prelude::*;
use trafficgen::cluster::document::{Document, PlanSpec, Section};
use trafficgen::cluster::version::{Clock, InstanceId, Version};
use trafficgen::engine::mode::Mode;

#[derive(Debug, Clone)]
enum Event {
    /// Replica `at` makes a change (as `POST /mode/…` does) and sends its
    /// document to every other replica.
    Change { at: usize, mode: usize, rps: u16 },
    /// The network delivers the message at this index (modulo the queue),
    /// and keeps a copy of it to deliver again when `repeat`.
    Deliver { pick: usize, repeat: bool },
    /// The network loses a message.
    Lose { pick: usize },
    /// Wall time passes.
    Tick { ms: u16 },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (0usize..5, 0usize..5, 0u16..1000).prop_map(|(at, mode, rps)| Event::Change { at, mode, rps }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, repeat)| Event::Deliver { pick, repeat }),
        1 => any::<usize>().prop_map(|pick| Event::Lose { pick }),
        2 => (0u16..3000).prop_map(|ms| Event::Tick { ms }),
    ]
}

struct Replica {
    id: InstanceId,
    /// How far this replica's clock is off, in ms (positive: ahead).
    skew: i64,
    clock: Clock,
    document: Document,
}

const MODES: [Mode; 5] = [Mode::Steady, Mode::Burst, Mode::Overload, Mode::Pause, Mode::Custom];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_converges_to_the_latest_change(
        count in 2usize..=5,
        skews in proptest::collection::vec(-30_000i64..30_000, 5),
        ids in proptest::collection::vec(1u64..u64::MAX, 5),
        events in proptest::collection::vec(event(), 0..80),
    ) {
        let mut replicas: Vec<Replica> = (0..count)
            .map(|i| Replica {
                id: InstanceId(ids[i]),
                skew: skews[i],
                clock: Clock::default(),
                document: Document::initial(Mode::Steady, 2.0),
            })
            .collect();
        // Every change ever made, by version: what a version must carry.
        let mut made: HashMap<Version, PlanSpec> = HashMap::new();
        made.insert(Version::INITIAL, replicas[0].document.plan.value);
        // In flight: (to, document).
        let mut network: Vec<(usize, Document)> = Vec::new();
        let mut wall: i64 = 1_800_000_000_000;

        for event in events {
            match event {
                Event::Change { at, mode, rps } => {
                    let at = at % count;
                    let r = &mut replicas[at];
                    let now = (wall + r.skew) as u64;
                    let seen = r.document.versions().latest();
                    let version = r.clock.next(now, r.id);
                    // A change made after hearing of another one is newer than it.
                    prop_assert!(version > seen, "{version} not after {seen}");
                    let mode = MODES[mode];
                    let rps = if mode == Mode::Pause { 0.0 } else { f64::from(rps) + 1.0 };
                    let value = PlanSpec { mode, rps, start_ms: now };
                    prop_assert!(made.insert(version, value).is_none(), "version {version} made twice");
                    let mut change = r.document.clone();
                    change.plan = Section { version, value };
                    prop_assert!(r.document.merge(change).plan, "a local change must apply");
                    for to in (0..count).filter(|&to| to != at) {
                        network.push((to, r.document.clone()));
                    }
                }
                Event::Deliver { pick, repeat } if !network.is_empty() => {
                    let i = pick % network.len();
                    let (to, message) = if repeat { network[i].clone() } else { network.swap_remove(i) };
                    let r = &mut replicas[to];
                    let before = r.document.versions().latest();
                    for version in message.versions().each() {
                        r.clock.observe(version);
                    }
                    r.document.merge(message);
                    let after = r.document.versions().latest();
                    prop_assert!(after >= before, "replica {to} went back from {before} to {after}");
                }
                Event::Lose { pick } if !network.is_empty() => {
                    let i = pick % network.len();
                    network.swap_remove(i);
                }
                Event::Tick { ms } => wall += i64::from(ms),
                _ => {}
            }
            // No replica ever holds a value under another change's version.
            for r in &replicas {
                let plan = &r.document.plan;
                prop_assert_eq!(made.get(&plan.version), Some(&plan.value));
            }
        }

        // Catch-up, as the poll does: each replica fetches the document of
        // every peer that is ahead and merges it.
        for at in 0..count {
            for from in 0..count {
                let theirs = replicas[from].document.clone();
                if replicas[at].document.versions().behind(&theirs.versions()) {
                    replicas[at].document.merge(theirs);
                }
            }
        }
        let latest = *made.keys().max().unwrap();
        for r in &replicas {
            prop_assert_eq!(r.document.plan.version, latest);
            prop_assert_eq!(&r.document.plan.value, &made[&latest]);
        }
    }
}
