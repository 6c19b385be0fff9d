//! Running journey instances: a bounded slab of small state machines
//! (journey, next step, own variables and data row, when its pause ends)
//! and the two queues the worker's one loop serves them from — a min-heap
//! of pause wake-ups and a queue of steps waiting for room under
//! `MAX_RPS` or the in-flight bound. No task, thread or timer per
//! instance: the worker arms its one timer for the earliest wake-up.
//!
//! Bounded: at most `max` instances (`MAX_JOURNEYS`); an arrival that
//! finds them all taken is refused (the worker counts it), never queued.
//! Each instance is in the heap or the queue at most once, and both are
//! emptied when every instance ends at once ([`Journeys::end_all`]), so
//! neither outgrows the slab. Slots are reused with their buffers.
//!
//! Pure: the clock is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use crate::workload::{JourneyId, Locals};

/// An instance, as the worker names it: its slot and the serial number it
/// was started with (a slot reused since makes an old key stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    slot: u32,
    serial: u32,
}

/// One running instance.
#[derive(Debug)]
pub struct Instance {
    pub journey: JourneyId,
    /// The step it is at: the one in flight, waiting, or next after a pause.
    pub step: usize,
    /// Its variables and data rows.
    pub locals: Locals,
    pub started: Instant,
    /// When its current step became due (for the lag of the step).
    pub due: Instant,
    /// Its trace, while spans are exported: its steps are its children.
    pub trace: Option<super::spans::JourneyTrace>,
    /// The step it logs in again for: after its login step's answer it
    /// goes back there (see [`Instance::next_step`]).
    pub back_to: Option<usize>,
    /// The virtual user running it (users mode), handed back at its end.
    pub user: Option<super::users::UserKey>,
    serial: u32,
    live: bool,
}

impl Instance {
    /// The step after the one just answered: the next one; or, after a
    /// login step run again for step `back_to`, that step (once: its
    /// answer moves the instance on).
    pub fn next_step(&mut self) -> usize {
        match self.back_to {
            Some(back) if self.step < back => back,
            Some(_) => {
                self.back_to = None;
                self.step + 1
            }
            None => self.step + 1,
        }
    }
}

pub struct Journeys {
    slots: Vec<Instance>,
    free: Vec<u32>,
    live: usize,
    max: usize,
    next_serial: u32,
    /// Pause wake-ups, earliest first.
    wakes: BinaryHeap<Reverse<(Instant, Key)>>,
    /// Steps waiting for room to be sent, oldest first.
    ready: VecDeque<Key>,
}

impl Journeys {
    /// Room for `max` instances (allocated as they are first needed).
    pub fn new(max: usize) -> Journeys {
        Journeys {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            max,
            next_serial: 0,
            wakes: BinaryHeap::new(),
            ready: VecDeque::new(),
        }
    }

    /// Instances running.
    pub fn active(&self) -> usize {
        self.live
    }

    /// A new instance of `journey` at step 0, or `None` when `max` run.
    /// Its `locals` are the slot's (reused): the caller fills them.
    pub fn start(&mut self, journey: JourneyId, now: Instant) -> Option<Key> {
        if self.live >= self.max {
            return None;
        }
        self.next_serial = self.next_serial.wrapping_add(1);
        let serial = self.next_serial;
        let slot = match self.free.pop() {
            Some(slot) => {
                let instance = &mut self.slots[slot as usize];
                instance.journey = journey;
                instance.step = 0;
                instance.started = now;
                instance.due = now;
                instance.trace = None;
                instance.back_to = None;
                instance.user = None;
                instance.serial = serial;
                instance.live = true;
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(Instance {
                    journey,
                    step: 0,
                    locals: Locals::new(),
                    started: now,
                    due: now,
                    trace: None,
                    back_to: None,
                    user: None,
                    serial,
                    live: true,
                });
                slot
            }
        };
        self.live += 1;
        Some(Key { slot, serial })
    }

    /// The live instance `key` names (`None` once it has ended).
    pub fn get_mut(&mut self, key: Key) -> Option<&mut Instance> {
        self.slots.get_mut(key.slot as usize).filter(|i| i.live && i.serial == key.serial)
    }

    /// Ends `key`; its slot is free for the next arrival.
    pub fn end(&mut self, key: Key) -> Option<JourneyId> {
        let instance = self.get_mut(key)?;
        instance.live = false;
        let journey = instance.journey;
        self.live -= 1;
        self.free.push(key.slot);
        Some(journey)
    }

    /// Ends every instance (the traffic paused, the workload changed, the
    /// engine stops); returns how many of each journey (by index) ended.
    /// The instances running, for their spans when they are all ended.
    pub fn live(&self) -> impl Iterator<Item = &Instance> {
        self.slots.iter().filter(|i| i.live)
    }

    pub fn end_all(&mut self) -> Vec<u64> {
        let mut ended = Vec::new();
        for (slot, instance) in self.slots.iter_mut().enumerate() {
            if instance.live {
                instance.live = false;
                let j = instance.journey.index();
                if ended.len() <= j {
                    ended.resize(j + 1, 0);
                }
                ended[j] += 1;
                self.free.push(slot as u32);
            }
        }
        self.live = 0;
        self.wakes.clear();
        self.ready.clear();
        ended
    }

    /// `key` pauses until `at`.
    pub fn sleep_until(&mut self, key: Key, at: Instant) {
        if self.get_mut(key).is_some() {
            self.wakes.push(Reverse((at, key)));
        }
    }

    /// The earliest wake-up, if any.
    pub fn next_wake(&self) -> Option<Instant> {
        self.wakes.peek().map(|Reverse((at, _))| *at)
    }

    /// An instance whose pause ends by `horizon`, earliest first.
    pub fn pop_woken(&mut self, horizon: Instant) -> Option<Key> {
        while let Some(Reverse((at, key))) = self.wakes.peek().copied() {
            if at > horizon {
                return None;
            }
            self.wakes.pop();
            if self.get_mut(key).is_some() {
                return Some(key);
            }
        }
        None
    }

    /// `key`'s step waits for room (after those already waiting).
    pub fn wait_for_room(&mut self, key: Key) {
        self.ready.push_back(key);
    }

    /// Puts `key` back at the head: it found no room again.
    pub fn still_waiting(&mut self, key: Key) {
        self.ready.push_front(key);
    }

    /// The step that has waited longest.
    pub fn next_waiting(&mut self) -> Option<Key> {
        while let Some(key) = self.ready.pop_front() {
            if self.get_mut(key).is_some() {
                return Some(key);
            }
        }
        None
    }

    pub fn any_waiting(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Bytes held by the slab and queues (for the soak bench).
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Instance>()
            + self.slots.iter().map(|i| i.locals.memory_bytes()).sum::<usize>()
            + self.wakes.capacity() * std::mem::size_of::<Reverse<(Instant, Key)>>()
            + self.ready.capacity() * std::mem::size_of::<Key>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn j(n: u8) -> JourneyId {
        crate::workload::JourneyId(n)
    }

    #[test]
    fn instances_are_bounded_and_slots_reused() {
        let t0 = Instant::now();
        let mut js = Journeys::new(2);
        let a = js.start(j(0), t0).unwrap();
        let b = js.start(j(1), t0).unwrap();
        assert_eq!(js.start(j(0), t0), None, "full: refused, not queued");
        assert_eq!(js.active(), 2);
        assert_eq!(js.end(a), Some(j(0)));
        assert_eq!(js.end(a), None, "ended once");
        let c = js.start(j(1), t0).unwrap();
        assert_ne!(a, c, "the reused slot has a new serial");
        assert!(js.get_mut(a).is_none(), "an old key is stale");
        assert_eq!(js.get_mut(c).unwrap().step, 0);
        assert_eq!(js.get_mut(b).unwrap().journey, j(1));
        assert_eq!(js.slots.len(), 2, "no slot beyond the bound");
    }

    #[test]
    fn after_a_login_run_again_an_instance_goes_back_to_the_step_that_asked_once() {
        let t0 = Instant::now();
        let mut js = Journeys::new(1);
        let key = js.start(j(0), t0).unwrap();
        let instance = js.get_mut(key).unwrap();
        instance.step = 4;
        assert_eq!(instance.next_step(), 5);
        // Step 4 asked for the login of step 0.
        instance.back_to = Some(4);
        instance.step = 0;
        instance.step = instance.next_step();
        assert_eq!(instance.step, 4, "back to the step that asked");
        instance.step = instance.next_step();
        assert_eq!((instance.step, instance.back_to), (5, None), "then on, and only once");
        js.end(key);
        let again = js.start(j(0), t0).unwrap();
        assert_eq!(js.get_mut(again).unwrap().back_to, None, "a reused slot starts afresh");
    }

    #[test]
    fn wake_ups_come_earliest_first_and_skip_ended_instances() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut js = Journeys::new(10);
        let keys: Vec<Key> = (0..4).map(|_| js.start(j(0), t0).unwrap()).collect();
        js.sleep_until(keys[0], ms(30));
        js.sleep_until(keys[1], ms(10));
        js.sleep_until(keys[2], ms(20));
        js.sleep_until(keys[3], ms(5));
        js.end(keys[3]);
        assert_eq!(js.next_wake(), Some(ms(5)));
        assert_eq!(js.pop_woken(ms(4)), None);
        assert_eq!(js.pop_woken(ms(25)), Some(keys[1]), "the ended one is skipped");
        assert_eq!(js.pop_woken(ms(25)), Some(keys[2]));
        assert_eq!(js.pop_woken(ms(25)), None);
        assert_eq!(js.next_wake(), Some(ms(30)));
    }

    #[test]
    fn waiting_steps_keep_their_order_and_everything_ends_at_once() {
        let t0 = Instant::now();
        let mut js = Journeys::new(10);
        let a = js.start(j(0), t0).unwrap();
        let b = js.start(j(2), t0).unwrap();
        let c = js.start(j(2), t0).unwrap();
        js.wait_for_room(a);
        js.wait_for_room(b);
        assert_eq!(js.next_waiting(), Some(a));
        js.still_waiting(a);
        assert_eq!(js.next_waiting(), Some(a), "back at the head");
        js.sleep_until(c, t0 + Duration::from_secs(3600));
        assert_eq!(js.end_all(), [1, 0, 2]);
        assert_eq!((js.active(), js.any_waiting(), js.next_wake()), (0, false, None));
        assert!(js.get_mut(b).is_none());
        // Every slot is free again.
        for _ in 0..3 {
            js.start(j(0), t0).unwrap();
        }
        assert_eq!(js.slots.len(), 3);
    }
}
