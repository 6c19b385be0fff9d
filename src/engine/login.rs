//! The life of a workload's setup (its login) as the worker drives it:
//! when it runs next, whether it works, and what an answer that refuses
//! its values (a 401) does.
//!
//! - A run that fails (no answer, not a success, a capture or a refresh
//!   that found nothing) is tried again after [`backoff::SETUP`]'s wait,
//!   longer with each failure in a row, whatever `every_secs` says.
//! - A run that works is run again after `every_secs`, or at the fraction
//!   of the life its answer gave (`every_secs: {json: /expires_in}`).
//! - Values handed out by a run carry its *epoch*. An answer in
//!   `relogin_on` (401) to a request that sent the current epoch's values
//!   starts one new run at once; answers to requests that sent older
//!   values, or that come while a run is under way or failing, start
//!   nothing. So however many requests see the 401 together, the login is
//!   sent once.
//! - Until a request has been answered otherwise with a run's values
//!   (they are *proven*), a 401 on them is that run failing: the login
//!   works but what it gives is refused, and the backoff holds back a
//!   loop of logins each refused at once.
//!
//! Pure: the clock and the jitter's draw are passed in.

use std::time::{Duration, Instant};

use super::backoff::{self, Backoff};

/// Where the setup stands, as `/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetupState {
    /// The workload has no setup requests.
    #[default]
    None,
    /// Not run yet (warm-up, paused before any traffic).
    Pending,
    /// The last run worked.
    Ok,
    /// The last run failed; it is tried again at `next_try`.
    Failing,
}

impl SetupState {
    pub fn as_str(self) -> &'static str {
        match self {
            SetupState::None => "none",
            SetupState::Pending => "pending",
            SetupState::Ok => "ok",
            SetupState::Failing => "failing",
        }
    }
}

/// A snapshot for `/status`, the stats line and the panel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetupStatus {
    pub state: SetupState,
    /// A run is under way now.
    pub running: bool,
    /// Failed runs since the setup last worked (0 once a request was
    /// answered with what it gave).
    pub attempts: u32,
    pub runs_ok: u64,
    pub runs_failed: u64,
    /// New runs started by an answer in `relogin_on`.
    pub relogins: u64,
    /// Why the last failed run failed (never a value it captured).
    pub last_error: Option<String>,
    /// When the next run starts (a retry, or a refresh).
    pub next_try: Option<Instant>,
    /// The wait between two runs in force: `every_secs`, or the one the
    /// last answer gave.
    pub every: Option<Duration>,
}

/// What an answer to a request that sent setup values comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Nothing,
    /// The current values were taken: the setup works (and shows it).
    Proven,
    /// Its values were refused: forget them and run the setup now.
    Relogin,
    /// The values of the run just made were refused at once: that run
    /// failed (the caller reports it with [`Login::failed`]).
    Refused,
}

#[derive(Debug, Clone)]
pub struct Login {
    backoff: Backoff,
    status: SetupStatus,
    /// Successful runs so far: the values of run `epoch` are current.
    epoch: u32,
    /// A request with the current values was answered outside `relogin_on`.
    proven: bool,
    /// Nothing reads the setup's values: a run that works is proven.
    unread: bool,
}

impl Login {
    /// The setup of a workload with `setup` requests or none; `unread`:
    /// no request reads what it captures.
    pub fn new(setup: bool, unread: bool) -> Login {
        Login::with_backoff(setup, unread, backoff::SETUP)
    }

    pub fn with_backoff(setup: bool, unread: bool, backoff: Backoff) -> Login {
        let state = if setup { SetupState::Pending } else { SetupState::None };
        Login { backoff, status: SetupStatus { state, ..SetupStatus::default() }, epoch: 0, proven: false, unread }
    }

    pub fn status(&self) -> &SetupStatus {
        &self.status
    }

    /// The epoch whose values a request sent now carries.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// When the next run is due, if one is planned.
    pub fn due(&self) -> Option<Instant> {
        self.status.next_try
    }

    pub fn is_failing(&self) -> bool {
        self.status.state == SetupState::Failing
    }

    /// A run starts now.
    pub fn started(&mut self) {
        self.status.running = true;
        self.status.next_try = None;
    }

    /// The run cannot start before `at` (no room yet under `MAX_RPS`).
    pub fn postpone(&mut self, at: Instant) {
        self.status.running = false;
        self.status.next_try = Some(at);
    }

    /// The run in progress ended without failing or working (the engine
    /// drains); nothing is planned.
    pub fn stopped(&mut self) {
        self.status.running = false;
    }

    /// The run worked at `now`: its values are current; it runs again
    /// after `every`, if given.
    pub fn worked(&mut self, now: Instant, every: Option<Duration>) {
        self.epoch = self.epoch.wrapping_add(1);
        self.proven = self.unread;
        if self.proven {
            self.status.attempts = 0;
        }
        self.status.state = SetupState::Ok;
        self.status.running = false;
        self.status.runs_ok += 1;
        self.status.every = every;
        self.status.next_try = every.and_then(|every| now.checked_add(every));
    }

    /// The run failed at `now` for `error`; `unit` is a uniform draw in
    /// [0, 1) for the jitter. Returns the wait before the next try.
    pub fn failed(&mut self, now: Instant, error: String, unit: f64) -> Duration {
        self.status.attempts = self.status.attempts.saturating_add(1);
        let wait = self.backoff.delay(self.status.attempts, unit);
        self.status.state = SetupState::Failing;
        self.status.running = false;
        self.status.runs_failed += 1;
        self.status.last_error = Some(error);
        // Saturating: a wait beyond the clock is a retry never.
        self.status.next_try = now.checked_add(wait);
        wait
    }

    /// An answer to a request that sent the values of epoch `sent`;
    /// `refused`: its status is in `relogin_on`.
    pub fn answered(&mut self, sent: u32, refused: bool) -> Verdict {
        let current = sent == self.epoch && self.status.state == SetupState::Ok && !self.status.running;
        match (current, refused) {
            (false, _) => Verdict::Nothing,
            (true, false) if self.proven => Verdict::Nothing,
            (true, false) => {
                self.proven = true;
                self.status.attempts = 0;
                Verdict::Proven
            }
            (true, true) if self.proven => {
                self.status.relogins += 1;
                Verdict::Relogin
            }
            (true, true) => Verdict::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED: Backoff = Backoff { jitter: 0.0, ..backoff::SETUP };

    fn login() -> Login {
        Login::with_backoff(true, false, FIXED)
    }

    #[test]
    fn failed_runs_back_off_and_a_run_that_works_is_run_again_after_every() {
        let t0 = Instant::now();
        let mut login = login();
        assert_eq!(login.status().state, SetupState::Pending);
        let waits: Vec<u64> = (0..9).map(|_| login.failed(t0, "login answered 503".into(), 0.5).as_secs()).collect();
        assert_eq!(waits, [1, 1, 1, 1, 1, 1, 2, 4, 8]);
        assert_eq!(login.status().attempts, 9);
        assert_eq!(login.status().state, SetupState::Failing);
        assert_eq!(login.due(), Some(t0 + Duration::from_secs(8)));
        login.started();
        assert!(login.status().running && login.due().is_none());
        login.worked(t0, Some(Duration::from_secs(600)));
        assert_eq!(login.status().state, SetupState::Ok);
        assert_eq!(login.due(), Some(t0 + Duration::from_secs(600)));
        // The count of failures stays until a request is answered with the values.
        assert_eq!(login.status().attempts, 9);
        assert_eq!(login.answered(login.epoch(), false), Verdict::Proven);
        assert_eq!(login.answered(login.epoch(), false), Verdict::Nothing, "said once");
        assert_eq!(login.status().attempts, 0);
        assert_eq!((login.status().runs_ok, login.status().runs_failed), (1, 9));
        assert_eq!(login.status().last_error.as_deref(), Some("login answered 503"));
    }

    #[test]
    fn a_thousand_refusals_at_once_start_one_new_run() {
        let t0 = Instant::now();
        let mut login = login();
        login.worked(t0, None);
        let sent = login.epoch();
        assert_eq!(login.answered(sent, false), Verdict::Proven);
        // A thousand requests sent with these values come back 401.
        let mut verdicts = Vec::new();
        for _ in 0..500 {
            let verdict = login.answered(sent, true);
            if verdict == Verdict::Relogin {
                login.started();
            }
            verdicts.push(verdict);
        }
        login.worked(t0, None);
        for _ in 0..500 {
            verdicts.push(login.answered(sent, true));
        }
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Relogin).count(), 1);
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Refused).count(), 0);
        assert_eq!(login.status().relogins, 1);
        // The new values, refused in their turn, start the next one.
        let now = login.epoch();
        assert_eq!(login.answered(now, false), Verdict::Proven);
        assert_eq!(login.answered(now, true), Verdict::Relogin);
    }

    #[test]
    fn values_refused_before_any_request_took_them_fail_the_run_and_back_off() {
        let t0 = Instant::now();
        let mut login = login();
        let mut waits = Vec::new();
        for _ in 0..8 {
            login.worked(t0, None);
            assert_eq!(login.answered(login.epoch(), true), Verdict::Refused);
            waits.push(login.failed(t0, "get_account answered 401 to the new values".into(), 0.5).as_secs());
        }
        assert_eq!(waits, [1, 1, 1, 1, 1, 1, 2, 4], "no loop of logins refused at once");
        assert_eq!(login.status().relogins, 0);
    }

    #[test]
    fn answers_while_failing_or_running_change_nothing() {
        let t0 = Instant::now();
        let mut login = login();
        login.failed(t0, "no answer: connect".into(), 0.5);
        assert_eq!(login.answered(login.epoch(), true), Verdict::Nothing);
        assert_eq!(login.answered(login.epoch(), false), Verdict::Nothing);
        assert_eq!(login.status().attempts, 1);
        login.worked(t0, None);
        assert_eq!(login.answered(login.epoch(), false), Verdict::Proven);
        login.started();
        assert_eq!(login.answered(login.epoch(), true), Verdict::Nothing, "a run is under way");
    }

    #[test]
    fn a_setup_nothing_reads_is_proven_when_it_works() {
        let t0 = Instant::now();
        let mut login = Login::with_backoff(true, true, FIXED);
        login.failed(t0, "x".into(), 0.5);
        login.worked(t0, Some(Duration::from_secs(5)));
        assert_eq!(login.status().attempts, 0);
        assert_eq!(Login::new(false, true).status().state, SetupState::None);
    }
}
