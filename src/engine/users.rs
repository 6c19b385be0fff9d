//! Virtual users: the closed model beside the open one.
//!
//! A user loops: draw an arrival by weight (a request or a journey), run
//! it to its end (each journey step after the previous answer, with the
//! journey's own pauses), pause for [`UserPause`], again. Unlike the open
//! model, a slow target slows the users down (and hides its queueing:
//! coordinated omission); latency is still measured from the send.
//!
//! Users are small state machines served by the worker's one loop, like
//! journey instances: no task, thread or timer each; a min-heap of pause
//! wake-ups and a queue of users waiting for room under `MAX_RPS` or the
//! in-flight bound. Bounded: the slab never holds more than the largest
//! target asked for, itself at most `MAX_USERS`.
//!
//! User `i` is wanted while `i < target`. A change of target takes effect
//! at once: new users start now; retiring users that are pausing stop now,
//! and those in the middle of an iteration finish it (its answer is
//! counted, a journey runs to its end) and then stop, starting nothing new.
//!
//! Pure: the clock is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use crate::base::duration::parse_duration;

/// The longest pause between iterations: an hour.
pub const MAX_USER_PAUSE_SECS: f64 = 3600.0;

/// A user whose iteration sent nothing (no data, no value, no room for a
/// journey) waits at least this long before the next one, so a workload
/// that cannot send does not spin the engine.
pub const IDLE_RETRY: Duration = Duration::from_millis(100);

/// The pause between two iterations of a user: `min..max` seconds, each
/// as likely (`min == max`: fixed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserPause {
    pub min_secs: f64,
    pub max_secs: f64,
}

impl UserPause {
    pub const fn fixed(secs: f64) -> UserPause {
        UserPause { min_secs: secs, max_secs: secs }
    }

    /// `1s`, `500ms..2s`, `1..3` (seconds), from 0 to an hour.
    pub fn parse(text: &str) -> Result<UserPause, String> {
        let (min, max) = match text.split_once("..") {
            Some((min, max)) => (parse_duration(min)?, parse_duration(max)?),
            None => {
                let secs = parse_duration(text)?;
                (secs, secs)
            }
        };
        UserPause::new(min, max)
    }

    /// Checked: finite, `0 ≤ min ≤ max ≤ 1 h`.
    pub fn new(min_secs: f64, max_secs: f64) -> Result<UserPause, String> {
        let fits = |s: f64| s.is_finite() && (0.0..=MAX_USER_PAUSE_SECS).contains(&s);
        if !fits(min_secs) || !fits(max_secs) {
            return Err(format!("a pause must be from 0 to {MAX_USER_PAUSE_SECS} s"));
        }
        if min_secs > max_secs {
            return Err(format!("the shortest pause ({min_secs} s) is longer than the longest ({max_secs} s)"));
        }
        Ok(UserPause { min_secs, max_secs })
    }

    /// One pause, drawn.
    pub fn draw(&self, rng: &mut impl Rng) -> Duration {
        let secs =
            if self.max_secs > self.min_secs { rng.random_range(self.min_secs..=self.max_secs) } else { self.min_secs };
        Duration::try_from_secs_f64(secs.clamp(0.0, MAX_USER_PAUSE_SECS)).unwrap_or(Duration::ZERO)
    }

    /// The mean pause, in seconds (a user's cycle is its iteration plus this).
    pub fn mean_secs(&self) -> f64 {
        (self.min_secs + self.max_secs) / 2.0
    }
}

impl fmt::Display for UserPause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min_secs == self.max_secs {
            write!(f, "{}s", self.min_secs)
        } else {
            write!(f, "{}s..{}s", self.min_secs, self.max_secs)
        }
    }
}

/// This replica's part of `total` users when `count` replicas share them:
/// an even split, the first `total % count` replicas one more each, so the
/// parts always add up to the total (10 over 3: 4 + 3 + 3).
pub fn users_of_share(total: u64, index: u64, count: u64) -> u64 {
    let count = count.max(1);
    total / count + u64::from(index < total % count)
}

/// A user's place in the slab, with the serial of its current life (a
/// user stopped and started again is a new one; answers to the old one's
/// requests are not its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserKey {
    index: u32,
    serial: u32,
}

impl UserKey {
    pub fn index(&self) -> usize {
        self.index as usize
    }
}

/// What a user is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    /// Not running (beyond the target, or never started).
    Stopped,
    /// Pausing until its wake-up in the heap.
    Pausing,
    /// Its request waits for room to be sent.
    WaitingForRoom,
    /// Its request is in flight.
    Request,
    /// Drawing its iteration (for the length of one call of the worker).
    Starting,
    /// Running a journey instance.
    Journey,
}

#[derive(Debug, Clone, Copy)]
struct User {
    serial: u32,
    doing: Doing,
    /// When its current iteration became due (the lag of its request).
    due: Instant,
}

pub struct Users {
    slab: Vec<User>,
    target: usize,
    /// Users not stopped (the wanted ones and those finishing).
    running: usize,
    next_serial: u32,
    wakes: BinaryHeap<Reverse<(Instant, UserKey)>>,
    ready: VecDeque<UserKey>,
}

impl Default for Users {
    fn default() -> Self {
        Users::new()
    }
}

impl Users {
    pub fn new() -> Users {
        Users {
            slab: Vec::new(),
            target: 0,
            running: 0,
            next_serial: 0,
            wakes: BinaryHeap::new(),
            ready: VecDeque::new(),
        }
    }

    pub fn target(&self) -> usize {
        self.target
    }

    /// Users running that will start another iteration.
    pub fn active(&self) -> usize {
        self.running.min(self.target)
    }

    /// Retired users finishing their iteration.
    pub fn finishing(&self) -> usize {
        self.running.saturating_sub(self.target)
    }

    /// `target` users from now: the missing ones start at `now` (their
    /// first iteration is due at once), the ones beyond it retire.
    pub fn set_target(&mut self, target: usize, now: Instant) {
        if self.slab.len() < target {
            self.slab.resize(target, User { serial: 0, doing: Doing::Stopped, due: now });
        }
        for index in 0..target {
            if self.slab[index].doing == Doing::Stopped {
                self.next_serial = self.next_serial.wrapping_add(1);
                self.slab[index] = User { serial: self.next_serial, doing: Doing::Pausing, due: now };
                self.running += 1;
                let key = self.key(index);
                self.wakes.push(Reverse((now, key)));
            }
        }
        for index in target..self.slab.len() {
            // Mid-iteration users finish it (see `iteration_done`).
            if matches!(self.slab[index].doing, Doing::Pausing | Doing::WaitingForRoom) {
                self.stop(index);
            }
        }
        self.target = target;
        self.compact();
    }

    /// Drops the queues' entries of stopped users once they outnumber the
    /// users, so flipping the target back and forth cannot grow them.
    fn compact(&mut self) {
        let bound = 2 * self.slab.len() + 16;
        if self.wakes.len() > bound {
            let wakes = std::mem::take(&mut self.wakes);
            let slab = &self.slab;
            self.wakes = wakes
                .into_iter()
                .filter(|Reverse((_, key))| {
                    slab.get(key.index()).is_some_and(|u| u.serial == key.serial && u.doing == Doing::Pausing)
                })
                .collect();
        }
        if self.ready.len() > bound {
            let slab = &self.slab;
            self.ready.retain(|key| {
                slab.get(key.index()).is_some_and(|u| u.serial == key.serial && u.doing == Doing::WaitingForRoom)
            });
        }
    }

    /// Stops every user at once (another mode, a pause, shutdown); the
    /// answers still to come to them are not theirs any more.
    pub fn stop_all(&mut self) {
        for index in 0..self.slab.len() {
            if self.slab[index].doing != Doing::Stopped {
                self.stop(index);
            }
        }
        self.target = 0;
        self.wakes.clear();
        self.ready.clear();
    }

    fn stop(&mut self, index: usize) {
        self.slab[index].doing = Doing::Stopped;
        self.running -= 1;
    }

    fn key(&self, index: usize) -> UserKey {
        UserKey { index: index as u32, serial: self.slab[index].serial }
    }

    fn live(&self, key: UserKey) -> Option<&User> {
        self.slab.get(key.index()).filter(|u| u.serial == key.serial && u.doing != Doing::Stopped)
    }

    /// What `key` is doing (`None`: it stopped, or it is another life of its slot).
    pub fn doing(&self, key: UserKey) -> Option<Doing> {
        self.live(key).map(|u| u.doing)
    }

    /// When `key`'s current iteration became due.
    pub fn due(&self, key: UserKey) -> Option<Instant> {
        self.live(key).map(|u| u.due)
    }

    /// `key` goes on with `doing` (its request left, its journey started,
    /// it waits for room).
    pub fn set_doing(&mut self, key: UserKey, doing: Doing) {
        if self.live(key).is_some() {
            self.slab[key.index()].doing = doing;
            if doing == Doing::WaitingForRoom {
                self.ready.push_back(key);
            }
        }
    }

    /// `key`'s iteration ended at `now`: a retired user stops; a wanted one
    /// pauses for `pause` (at least [`IDLE_RETRY`] when it `sent_nothing`).
    pub fn iteration_done(&mut self, key: UserKey, now: Instant, pause: Duration, sent_nothing: bool) {
        if self.live(key).is_none() {
            return;
        }
        let index = key.index();
        if index >= self.target {
            self.stop(index);
            return;
        }
        let pause = if sent_nothing { pause.max(IDLE_RETRY) } else { pause };
        let at = now.checked_add(pause).unwrap_or(now + Duration::from_secs(3600));
        let user = &mut self.slab[index];
        user.doing = Doing::Pausing;
        user.due = at;
        self.wakes.push(Reverse((at, key)));
    }

    /// The earliest pause that ends.
    pub fn next_wake(&self) -> Option<Instant> {
        self.wakes.peek().map(|Reverse((at, _))| *at)
    }

    /// A user whose pause ends by `horizon`, earliest first: its next
    /// iteration is due.
    pub fn pop_woken(&mut self, horizon: Instant) -> Option<UserKey> {
        while let Some(Reverse((at, key))) = self.wakes.peek().copied() {
            if at > horizon {
                return None;
            }
            self.wakes.pop();
            if self.doing(key) == Some(Doing::Pausing) {
                return Some(key);
            }
        }
        None
    }

    /// The user that has waited longest for room.
    pub fn next_waiting(&mut self) -> Option<UserKey> {
        while let Some(key) = self.ready.pop_front() {
            if self.doing(key) == Some(Doing::WaitingForRoom) {
                return Some(key);
            }
        }
        None
    }

    /// Puts `key` back at the head: it found no room again.
    pub fn still_waiting(&mut self, key: UserKey) {
        self.ready.push_front(key);
    }

    pub fn any_waiting(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Users running journey instances (to hand back their iterations when
    /// every instance ends at once).
    pub fn in_journeys(&self) -> Vec<UserKey> {
        (0..self.slab.len()).filter(|&i| self.slab[i].doing == Doing::Journey).map(|i| self.key(i)).collect()
    }

    /// Bytes held by the slab and queues (for the soak bench).
    pub fn memory_bytes(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<User>()
            + self.wakes.capacity() * std::mem::size_of::<Reverse<(Instant, UserKey)>>()
            + self.ready.capacity() * std::mem::size_of::<UserKey>()
    }
}

/// The users a ramp asks for at `t` seconds after its start: from `from`
/// to `to` in a straight line over `secs`, each user added (or retired)
/// when the line reaches it; then `to`.
pub fn ramp_users(from: u64, to: u64, secs: f64, t: f64) -> u64 {
    if secs.is_nan() || secs <= 0.0 || t >= secs {
        return to;
    }
    let t = t.max(0.0);
    let (from_f, to_f) = (from as f64, to as f64);
    let level = from_f + (to_f - from_f) * t / secs;
    // Up: a user joins when the line reaches it; down: one leaves when the
    // line falls below it. The small margin keeps exact points exact.
    if to >= from { (level + 1e-9).floor() as u64 } else { (level - 1e-9).ceil() as u64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn pauses_parse_as_people_write_them_and_bad_ones_say_why() {
        assert_eq!(UserPause::parse("1s"), Ok(UserPause::fixed(1.0)));
        assert_eq!(UserPause::parse("500ms..2s"), Ok(UserPause { min_secs: 0.5, max_secs: 2.0 }));
        assert_eq!(UserPause::parse("1..3"), Ok(UserPause { min_secs: 1.0, max_secs: 3.0 }));
        assert_eq!(UserPause::parse("0"), Ok(UserPause::fixed(0.0)));
        for bad in ["", "3s..1s", "-1s", "2h", "1s..", "..1s", "fast", "NaN"] {
            assert!(UserPause::parse(bad).is_err(), "{bad}");
        }
        assert!(UserPause::parse("3s..1s").unwrap_err().contains("longer"));
        assert_eq!(UserPause::parse("1s..3s").unwrap().to_string(), "1s..3s");
    }

    #[test]
    fn drawn_pauses_stay_within_their_bounds_and_average_the_middle() {
        let mut rng = SmallRng::seed_from_u64(7);
        let pause = UserPause::parse("1s..3s").unwrap();
        let draws: Vec<f64> = (0..10_000).map(|_| pause.draw(&mut rng).as_secs_f64()).collect();
        assert!(draws.iter().all(|d| (1.0..=3.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - pause.mean_secs()).abs() < 0.05, "{mean}");
        assert_eq!(UserPause::fixed(0.25).draw(&mut rng), Duration::from_millis(250));
    }

    #[test]
    fn replicas_split_users_so_the_parts_add_up() {
        let split = |total, count| (0..count).map(|i| users_of_share(total, i, count)).collect::<Vec<_>>();
        assert_eq!(split(10, 3), [4, 3, 3]);
        assert_eq!(split(10, 2), [5, 5]);
        assert_eq!(split(2, 3), [1, 1, 0]);
        assert_eq!(split(0, 3), [0, 0, 0]);
        assert_eq!(split(7, 1), [7]);
        for (total, count) in [(1000, 7), (5, 5), (13, 4)] {
            assert_eq!(split(total, count).iter().sum::<u64>(), total);
        }
    }

    #[test]
    fn a_ramp_adds_users_evenly_then_holds() {
        // 10 → 50 over 10 s: 4 users a second.
        let at = |t| ramp_users(10, 50, 10.0, t);
        assert_eq!([at(0.0), at(0.24), at(0.25), at(5.0), at(9.99), at(10.0), at(60.0)], [10, 10, 11, 30, 49, 50, 50]);
        // Down 50 → 10: a user leaves as soon as the line falls below it.
        let down = |t| ramp_users(50, 10, 10.0, t);
        assert_eq!([down(0.0), down(0.01), down(5.0), down(10.0)], [50, 50, 30, 10]);
        assert_eq!(ramp_users(0, 3, 0.0, 0.0), 3, "no ramp: at once");
        assert_eq!(ramp_users(0, 3, f64::NAN, 1.0), 3);
        assert_eq!(ramp_users(0, 4, 4.0, -1.0), 0, "before the start: the start");
    }

    #[test]
    fn new_users_start_at_once_and_pause_between_iterations() {
        let t0 = Instant::now();
        let mut users = Users::new();
        users.set_target(3, t0);
        assert_eq!((users.target(), users.active(), users.finishing()), (3, 3, 0));
        let first: Vec<UserKey> = std::iter::from_fn(|| users.pop_woken(t0)).collect();
        assert_eq!(first.len(), 3, "all due at once");
        for &key in &first {
            users.set_doing(key, Doing::Request);
        }
        assert_eq!(users.next_wake(), None);
        users.iteration_done(first[0], ms(t0, 100), Duration::from_secs(1), false);
        assert_eq!(users.next_wake(), Some(ms(t0, 1100)));
        assert_eq!(users.pop_woken(ms(t0, 1099)), None);
        assert_eq!(users.pop_woken(ms(t0, 1100)), Some(first[0]));
        // An iteration that sent nothing waits at least the idle retry.
        users.iteration_done(first[1], t0, Duration::ZERO, true);
        assert_eq!(users.next_wake(), Some(t0 + IDLE_RETRY));
    }

    #[test]
    fn retiring_users_that_pause_stop_at_once_and_busy_ones_finish_first() {
        let t0 = Instant::now();
        let mut users = Users::new();
        users.set_target(4, t0);
        let keys: Vec<UserKey> = std::iter::from_fn(|| users.pop_woken(t0)).collect();
        users.set_doing(keys[0], Doing::Request);
        users.set_doing(keys[1], Doing::Request);
        users.iteration_done(keys[2], t0, Duration::from_secs(1), false);
        users.iteration_done(keys[3], t0, Duration::from_secs(1), false);
        users.set_target(1, ms(t0, 10));
        // User 1 is mid-request: it finishes; users 2 and 3 were pausing: gone.
        assert_eq!((users.active(), users.finishing()), (1, 1));
        assert_eq!(users.doing(keys[2]), None);
        assert_eq!(users.pop_woken(ms(t0, 5000)), None, "stopped users never wake");
        users.iteration_done(keys[1], ms(t0, 20), Duration::from_secs(1), false);
        assert_eq!((users.active(), users.finishing()), (1, 0), "then it stops, starting nothing");
        assert_eq!(users.doing(keys[1]), None);
        // User 0 goes on.
        users.iteration_done(keys[0], ms(t0, 20), Duration::from_secs(1), false);
        assert_eq!(users.doing(keys[0]), Some(Doing::Pausing));
    }

    #[test]
    fn a_user_brought_back_is_a_new_life_and_old_answers_are_not_its_own() {
        let t0 = Instant::now();
        let mut users = Users::new();
        users.set_target(2, t0);
        let keys: Vec<UserKey> = std::iter::from_fn(|| users.pop_woken(t0)).collect();
        users.set_doing(keys[1], Doing::Request);
        users.set_target(1, t0);
        users.set_target(2, t0);
        // Still mid-request: it was never stopped, so it is kept as it is.
        assert_eq!(users.doing(keys[1]), Some(Doing::Request));
        assert_eq!((users.active(), users.finishing()), (2, 0));
        users.stop_all();
        assert_eq!((users.target(), users.active(), users.finishing()), (0, 0, 0));
        users.set_target(2, t0);
        users.iteration_done(keys[1], t0, Duration::ZERO, false);
        let fresh: Vec<UserKey> = std::iter::from_fn(|| users.pop_woken(t0)).collect();
        assert_eq!(fresh.len(), 2, "the stale answer moved nothing");
        assert!(fresh.iter().all(|k| !keys.contains(k)));
    }

    #[test]
    fn users_waiting_for_room_keep_their_order_and_the_slab_stays_bounded() {
        let t0 = Instant::now();
        let mut users = Users::new();
        users.set_target(3, t0);
        let keys: Vec<UserKey> = std::iter::from_fn(|| users.pop_woken(t0)).collect();
        users.set_doing(keys[2], Doing::WaitingForRoom);
        users.set_doing(keys[0], Doing::WaitingForRoom);
        assert_eq!(users.next_waiting(), Some(keys[2]));
        users.still_waiting(keys[2]);
        assert_eq!(users.next_waiting(), Some(keys[2]));
        assert_eq!(users.next_waiting(), Some(keys[0]));
        assert_eq!(users.next_waiting(), None);
        for n in [100, 3, 50, 100, 0, 100] {
            users.set_target(n, t0);
        }
        assert_eq!(users.slab.len(), 100, "no slot beyond the largest target");
        for _ in 0..1000 {
            users.set_target(0, t0);
            users.set_target(100, t0);
        }
        assert!(users.wakes.len() <= 2 * 100 + 16 + 100, "stale wake-ups are dropped: {}", users.wakes.len());
    }
}
