//! The setup requests: sent one after the other before the traffic (which
//! waits for their answers), each may capture into a pool the next one
//! reads. A run that fails — no answer, not a success, a capture that
//! stored nothing, a refresh time the answer does not give — ends there
//! and is tried again after a backoff (`engine::backoff`), while the
//! traffic goes on: requests that need the pools it fills are unmet
//! meanwhile, counted. A run that works is sent again every `every_secs`,
//! or at the fraction of the life its answer gives; and at once when a
//! request sent with its values is answered with a code of `relogin_on`
//! (401), once however many such answers come (see `engine::login`).
//! Setup requests count against `MAX_RPS` like any request.

use std::time::{Duration, Instant};

use rand::RngExt;

use super::Worker;
use crate::engine::login::{Login, Verdict};
use crate::workload::{CaptureReport, Draw, RequestId, Workload};

/// Where the setup of the running workload is.
#[derive(Debug)]
pub(super) struct Setup {
    /// Index into `Workload::setup` of the request in flight.
    pub next: Option<usize>,
    /// It has run (worked or failed) for this workload at least once.
    pub ran: bool,
    /// Traffic waits until it is done (only before the first traffic).
    pub holding: bool,
    /// Its state, backoff and the epoch of the values it gave.
    pub login: Login,
    /// The wait before the next run that an answer of this run gave.
    refresh: Option<Duration>,
}

impl Setup {
    pub fn of(workload: &Workload) -> Setup {
        let login = Login::new(!workload.setup().is_empty(), !workload.has_setup_readers());
        Setup { next: None, ran: false, holding: false, login, refresh: None }
    }
}

/// How a setup request's answer came out, as the worker saw it.
pub(super) enum SetupAnswer {
    Answered { status: u16, report: CaptureReport, body: Option<Vec<u8>> },
    NoAnswer(String),
}

impl Worker {
    /// Starts the setup requests from the first (if there are any).
    pub(super) fn start_setup(&mut self, now: Instant) {
        if self.workload.setup().is_empty() {
            self.setup.holding = false;
            return;
        }
        self.setup.login.started();
        self.setup.refresh = None;
        self.setup.next = Some(0);
        self.publish_setup();
        self.send_setup(now);
    }

    /// Starts a run if one is due (a retry or a refresh) and none is under way.
    pub(super) fn setup_if_due(&mut self, now: Instant) {
        if self.setup.next.is_none() && self.setup.login.due().is_some_and(|due| now >= due) {
            self.start_setup(now);
        }
    }

    /// When the loop must wake for the setup while traffic runs.
    pub(super) fn setup_wake(&self) -> Option<Instant> {
        if self.setup.next.is_some() { None } else { self.setup.login.due() }
    }

    /// Sends the setup request at `setup.next`; after the last, the run
    /// has worked.
    pub(super) fn send_setup(&mut self, now: Instant) {
        if self.stopping {
            // Draining: nothing new goes out.
            self.setup.next = None;
            self.setup.login.stopped();
            return;
        }
        let Some(i) = self.setup.next else { return };
        let Some(&asked) = self.workload.setup().get(i) else {
            self.setup_worked(now);
            return;
        };
        let chosen = match self.workload.resolve(asked, &mut self.rng, &self.state) {
            Draw::Send(chosen) => chosen,
            Draw::Unmet { .. } => {
                self.count_unmet(asked, now);
                let name = self.workload.name(asked);
                self.setup_failed(
                    now,
                    format!("`{name}` reads a pool that is empty (an earlier setup request captured nothing?)"),
                );
                return;
            }
        };
        if let Some(room) = self.cap.free_at(now) {
            // Setup requests count against MAX_RPS too: sent first when there is room.
            self.setup.next = None;
            self.setup.holding = false;
            self.setup.login.postpone(room);
            self.publish_setup();
            return;
        }
        let Some(permit) = self.engine.shared.in_flight.try_acquire() else {
            self.setup_failed(now, "the in-flight bound (MAX_IN_FLIGHT) is full".to_string());
            return;
        };
        self.cap.try_take(now);
        // Sent like any request: `sent` and the answers add up.
        self.engine.shared.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !self.send(&chosen, now, Duration::ZERO, permit, super::Origin::Setup) {
            let name = self.workload.name(chosen.request());
            self.setup_failed(now, format!("`{name}` could not be sent (no client for the target; see the TLS error)"));
        }
    }

    /// The answer to the setup request `id` (the one in flight) came, or
    /// none did: the run goes on with the next request, or has failed.
    pub(super) fn setup_answered(&mut self, id: RequestId, answer: SetupAnswer, now: Instant) {
        let Some(i) = self.setup.next else { return };
        let name = self.workload.name(id);
        let failure = match answer {
            SetupAnswer::NoAnswer(why) => Some(format!("`{name}` got no answer: {why}")),
            SetupAnswer::Answered { status, .. } if !self.workload.is_success(id, status) => {
                Some(format!("`{name}` answered {status}"))
            }
            SetupAnswer::Answered { report, .. } if report.failed() > 0 => {
                let why = [
                    (report.no_body, "no body"),
                    (report.not_json, "not JSON"),
                    (report.missing, "nothing where the capture looks"),
                    (report.refused, "a value the capture refuses"),
                ]
                .iter()
                .filter(|(n, _)| *n > 0)
                .map(|(_, why)| *why)
                .collect::<Vec<_>>()
                .join(", ");
                Some(format!("`{name}`'s capture stored nothing: the answer has {why}"))
            }
            SetupAnswer::Answered { body, .. } => match self.workload.refresh_after(id, body.as_deref()) {
                Some(Err(e)) => {
                    let (pointer, _) = self.workload.refresh_rule().unwrap_or_default();
                    Some(format!("`{name}`: every_secs from {pointer}: {e}"))
                }
                Some(Ok(wait)) => {
                    self.setup.refresh = Some(wait);
                    None
                }
                None => None,
            },
        };
        match failure {
            Some(error) => self.setup_failed(now, error),
            None => {
                self.setup.next = Some(i + 1);
                self.send_setup(now);
            }
        }
    }

    fn setup_worked(&mut self, now: Instant) {
        let was_failing = self.setup.login.is_failing();
        let attempts = self.setup.login.status().attempts;
        self.setup.next = None;
        self.setup.ran = true;
        self.setup.holding = false;
        let every = self.setup.refresh.take().or(self.workload.setup_every());
        self.setup.login.worked(now, every);
        self.publish_setup();
        if was_failing {
            log::info!(failed_attempts = attempts; "setup works again; requests that need what it captures are sent");
        }
    }

    /// The run failed at `now` for `error`: it is tried again after the backoff.
    fn setup_failed(&mut self, now: Instant, error: String) {
        self.setup.next = None;
        self.setup.ran = true;
        self.setup.holding = false;
        let unit: f64 = self.rng.random();
        let wait = self.setup.login.failed(now, error.clone(), unit);
        self.engine.shared.metrics.count_setup_failure();
        self.publish_setup();
        // One line per try: the backoff bounds them.
        log::warn!(attempt = self.setup.login.status().attempts, retry_in_secs = (wait.as_secs_f64() * 10.0).round() / 10.0,
            error = error.as_str();
            "setup failed; requests that need what it captures are not sent until it works");
    }

    /// An answer `status` to request `id` (not a setup one), sent with the
    /// setup values of `epoch`: a 401 (`relogin_on`) on current values
    /// that worked before starts one new run, and the pools they came
    /// from are emptied so no request is sent with them meanwhile.
    pub(super) fn check_setup_values(&mut self, id: RequestId, status: u16, epoch: u32, now: Instant) {
        if !self.workload.reads_setup_values(id) {
            return;
        }
        let refused = self.workload.relogs_setup(id, status);
        match self.setup.login.answered(epoch, refused) {
            Verdict::Nothing => {}
            Verdict::Proven => self.publish_setup(),
            Verdict::Relogin => {
                self.forget_setup_values();
                self.engine.shared.metrics.count_relogin("setup");
                log::info!(request = self.workload.name(id), status = status;
                    "answered {status}: the setup runs again for new values");
                self.start_setup(now);
            }
            Verdict::Refused => {
                self.forget_setup_values();
                let name = self.workload.name(id);
                self.setup_failed(now, format!("`{name}` answered {status} to the values the setup had just captured"));
            }
        }
    }

    fn forget_setup_values(&mut self) {
        self.workload.forget_setup_values(&mut self.state);
        self.publish_pools();
    }

    /// Where `/status` reads the setup's state.
    pub(super) fn publish_setup(&self) {
        self.engine.publish_setup(self.setup.login.status());
    }

    /// Whether the traffic must wait for setup requests: there are some and
    /// they have not run yet for this workload, before any traffic was sent.
    pub(super) fn hold_for_setup(&mut self) -> bool {
        // A run already planned (postponed for room under MAX_RPS) is
        // sent along with the traffic instead.
        let hold = !self.started_traffic
            && !self.setup.ran
            && self.setup.login.due().is_none()
            && !self.workload.setup().is_empty();
        self.setup.holding = hold;
        hold
    }
}
