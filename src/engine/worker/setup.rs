//! The setup requests: sent one after the other before the traffic (which
//! waits for their answers), and again every `setup.every_secs`; each may
//! capture into a pool the next one reads. They count against `MAX_RPS`
//! like any request.

use std::time::{Duration, Instant};

use super::{Origin, SETUP_RETRY, Worker};
use crate::workload::Draw;

impl Worker {
    /// Starts the setup requests from the first (if there are any).
    pub(super) fn start_setup(&mut self, now: Instant) {
        self.setup.due = None;
        if self.workload.setup().is_empty() {
            self.setup.holding = false;
            return;
        }
        self.setup.next = Some(0);
        self.send_setup(now);
    }

    /// Sends the setup request at `setup.next`, or the first after it that
    /// can be sent; after the last, the setup is done until `every_secs`.
    pub(super) fn send_setup(&mut self, now: Instant) {
        if self.stopping {
            // Draining: nothing new goes out.
            self.setup.next = None;
            return;
        }
        while let Some(i) = self.setup.next {
            let Some(&asked) = self.workload.setup().get(i) else {
                self.finish_setup(now);
                return;
            };
            let chosen = match self.workload.resolve(asked, &mut self.rng, &self.state) {
                Draw::Send(chosen) => chosen,
                Draw::Unmet { .. } => {
                    self.series(asked).borrow().unmet();
                    self.setup.next = Some(i + 1);
                    continue;
                }
            };
            if let Some(room) = self.cap.free_at(now) {
                // Setup requests count against MAX_RPS too: sent first when there is room.
                self.setup.next = None;
                self.setup.holding = false;
                self.setup.due = Some(room);
                return;
            }
            let Some(permit) = self.engine.shared.in_flight.try_acquire() else {
                log::warn!(request = self.workload.name(asked); "in-flight bound full: setup requests are tried again in 1 s");
                self.setup.next = None;
                self.setup.holding = false;
                self.setup.due = Some(now + SETUP_RETRY);
                return;
            };
            self.cap.try_take(now);
            // Sent like any request: `sent` and the answers add up.
            self.engine.shared.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.send(&chosen, now, Duration::ZERO, permit, Origin::Setup) {
                return;
            }
            self.setup.next = Some(i + 1);
        }
    }

    fn finish_setup(&mut self, now: Instant) {
        self.setup.next = None;
        self.setup.ran = true;
        self.setup.holding = false;
        self.setup.due = self.workload.setup_every().and_then(|every| now.checked_add(every));
    }

    /// Whether the traffic must wait for setup requests: there are some and
    /// they have not run yet for this workload, before any traffic was sent.
    pub(super) fn hold_for_setup(&mut self) -> bool {
        // A retry already scheduled (the in-flight bound was full) is sent
        // along with the traffic instead.
        let hold =
            !self.started_traffic && !self.setup.ran && self.setup.due.is_none() && !self.workload.setup().is_empty();
        self.setup.holding = hold;
        hold
    }
}
