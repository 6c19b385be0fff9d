//! The worker's side of virtual users (the closed model, see
//! `engine::users`): each user's next iteration starts when its pause
//! ends — one request, or a journey instance run to its end — and its
//! next pause starts when the iteration ends: the answer came (or none
//! did), or the journey completed or ended early.
//!
//! Every request goes through the same `MAX_RPS` cap and in-flight bound
//! as the open model's: a user that finds no room waits in a queue,
//! oldest first, and draws its iteration when room comes (a user is never
//! dropped, it is late, and its lag is recorded). During a ramp or a
//! story the number of users is read again every [`RAMP_TICK`].

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::turn::{BATCH_WINDOW, batch_window};
use super::{Origin, ScheduleClock, Worker};
use crate::engine::UsersNow;
use crate::engine::mode::Plan;
use crate::engine::users::{Doing, UserKey, UserPause};
use crate::workload::{Arrival, Draw};

/// How often a moving number of users (a ramp, a story) is read again.
const RAMP_TICK: Duration = Duration::from_millis(20);

/// While users wait for a request in flight to end (the in-flight bound
/// is full), how often they look for room again.
const ROOM_POLL: Duration = Duration::from_millis(5);

/// The users plan being followed.
pub(super) struct UsersFollow {
    plan: Plan,
    clock: ScheduleClock,
    pause: UserPause,
}

impl Worker {
    /// Follows `plan`: its users (this replica's part) from now on, or
    /// none outside users mode, while the setup holds the traffic, or in
    /// warm-up.
    pub(super) fn follow_users(&mut self, plan: &Plan, holding: bool, since_anchor: Option<f64>) {
        if !plan.is_users() || holding || !plan.sends() {
            self.users.stop_all();
            self.users_follow = None;
            self.publish_users();
            return;
        }
        let clock = ScheduleClock { anchor: Instant::now(), origin: since_anchor.unwrap_or(0.0).max(0.0) };
        let pause = plan.user_pause.unwrap_or(self.engine.modes().user_pause);
        self.users_follow = Some(UsersFollow { plan: plan.clone(), clock, pause });
        self.retarget_users(Instant::now());
    }

    /// Whether users mode is being followed.
    pub(super) fn following_users(&self) -> bool {
        self.users_follow.is_some()
    }

    /// Sets the number of users the plan asks for now.
    fn retarget_users(&mut self, now: Instant) {
        let Some(follow) = &self.users_follow else { return };
        let since = follow.clock.elapsed(now);
        let total = follow.plan.users_at_secs(since);
        let here = usize::try_from(follow.plan.users_here(total)).unwrap_or(usize::MAX);
        if here != self.users.target() {
            self.users.set_target(here, now);
        }
        self.publish_users();
    }

    /// When the loop must wake for users: the next pause that ends, room
    /// for those waiting, the next read of a moving number.
    pub(super) fn users_wake(&self, room: Option<Instant>) -> Option<Instant> {
        let follow = self.users_follow.as_ref()?;
        let now = Instant::now();
        // While users wait for room, those whose pause ended wait behind
        // them: only room wakes the loop (an overdue pause would spin it).
        let due = match self.users.any_waiting() {
            true => Some(room.unwrap_or(now + ROOM_POLL)),
            false => self.users.next_wake(),
        };
        let moving = follow.plan.users_moving(follow.clock.elapsed(now)).then(|| now + RAMP_TICK);
        super::earliest(due, moving)
    }

    /// A turn of users mode: the setup if due, journeys' steps first, then
    /// the users that waited for room, then those whose pause has ended.
    pub(super) fn run_users(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        self.begin_turn(now);
        if std::mem::take(&mut self.held_by_cap) {
            self.engine.shared.metrics.count_capped();
        }
        self.run_journeys(now);
        self.retarget_users(now);
        self.serve_waiting_users(now);
        let horizon = now + self.users_window();
        // Each user at most once a turn: a zero pause cannot spin here.
        let mut budget = self.users.target() + 1;
        while budget > 0
            && !self.users.any_waiting()
            && let Some(key) = self.users.pop_woken(horizon)
        {
            budget -= 1;
            if !self.start_iteration(key, now) {
                self.users.set_doing(key, Doing::WaitingForRoom);
            }
        }
        self.publish_users();
    }

    /// How early a user whose pause ends soon starts with this turn: the
    /// open model's window at the most the users can send (each once per
    /// mean pause; their answers only make it less), so that one wake-up
    /// starts a few users instead of one, and narrow at the cap as there.
    fn users_window(&self) -> Duration {
        let Some(follow) = &self.users_follow else { return BATCH_WINDOW };
        let mean_pause = (follow.pause.min_secs + follow.pause.max_secs) / 2.0;
        let most = self.users.target() as f64 / mean_pause;
        let (cap_allowed, cap_window) = self.cap.window();
        // Users start when their pause ends, not on a grid: at the cap, narrow.
        let turn = batch_window(most, cap_allowed, cap_window);
        if turn.cells {
            return BATCH_WINDOW;
        }
        Duration::try_from_secs_f64(turn.width).unwrap_or(BATCH_WINDOW)
    }

    /// Users that waited for room go, oldest first, while there is room.
    fn serve_waiting_users(&mut self, now: Instant) {
        while let Some(key) = self.users.next_waiting() {
            if !self.start_iteration(key, now) {
                self.users.still_waiting(key);
                break;
            }
        }
    }

    /// `key`'s next iteration: one request or a journey, drawn by weight.
    /// False, starting nothing, when there is no room to send.
    fn start_iteration(&mut self, key: UserKey, now: Instant) -> bool {
        if self.cap.free_at(now).is_some() {
            return false;
        }
        let Some(permit) = self.engine.shared.in_flight.try_acquire() else { return false };
        let due = self.users.due(key).unwrap_or(now);
        let lag = now.saturating_duration_since(due);
        let arrival = match &self.focused {
            Some(focus) => focus.draw(&self.workload, &mut self.rng, &self.state),
            None => self.workload.draw_arrival(&mut self.rng, &self.state),
        };
        self.arrivals.inc();
        self.users.set_doing(key, Doing::Starting);
        match arrival {
            Arrival::Request(Draw::Send(chosen)) => {
                if !self.cap.try_take(now) {
                    // Only a cap of 0 gets here (room was checked).
                    self.engine.shared.metrics.add_dropped(1);
                    self.user_iteration_done(key, now, true);
                    return true;
                }
                let shared = &self.engine.shared;
                shared.metrics.observe_lag(lag.as_secs_f64());
                shared.sent.fetch_add(1, Ordering::Relaxed);
                self.users.set_doing(key, Doing::Request);
                if !self.send(&chosen, now, lag, permit, Origin::User(key)) {
                    self.user_iteration_done(key, now, true);
                }
            }
            Arrival::Request(Draw::Unmet { asked, .. }) => {
                self.count_unmet(asked, now);
                self.user_iteration_done(key, now, true);
            }
            Arrival::Journey(journey) => {
                drop(permit);
                self.engine.shared.metrics.observe_lag(lag.as_secs_f64());
                let started = self.start_journey_for(journey, now, Some(key));
                // A journey that ended at once has handed the user back already.
                if self.users.doing(key) == Some(Doing::Starting) {
                    if started {
                        self.users.set_doing(key, Doing::Journey);
                    } else {
                        self.user_iteration_done(key, now, true);
                    }
                }
            }
        }
        true
    }

    /// `key`'s iteration ended: it pauses (or, retired, stops). An
    /// iteration that `sent_nothing` waits at least the idle retry.
    pub(super) fn user_iteration_done(&mut self, key: UserKey, now: Instant, sent_nothing: bool) {
        if self.stopping {
            return;
        }
        let Some(follow) = &self.users_follow else { return };
        let pause = follow.pause.draw(&mut self.rng);
        self.users.iteration_done(key, now, pause, sent_nothing);
        self.publish_users();
    }

    /// The answer to a user's request came, or none did.
    pub(super) fn user_request_done(&mut self, key: UserKey, now: Instant) {
        if self.users.doing(key) != Some(Doing::Request) {
            return;
        }
        self.user_iteration_done(key, now, false);
        // Its permit is free: a user waiting for one may go.
        if self.following_users() && !self.stopping {
            self.serve_waiting_users(now);
        }
    }

    /// Every journey instance ended at once (a workload swap, a pause):
    /// the users running them go on to their next pause.
    pub(super) fn users_lost_journeys(&mut self, now: Instant) {
        for key in self.users.in_journeys() {
            self.user_iteration_done(key, now, false);
        }
    }

    fn publish_users(&self) {
        let users = &self.users;
        self.engine.publish_users(UsersNow {
            target: users.target(),
            active: users.active(),
            finishing: users.finishing(),
        });
    }
}
