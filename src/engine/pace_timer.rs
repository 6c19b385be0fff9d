//! The timer that wakes the engine for its next send: a Linux `timerfd` in
//! the event loop.
//!
//! tokio's timers round to a 1 ms wheel, and re-arming one to an earlier
//! deadline than the driver last computed (which the pacer does after every
//! batch) makes the driver wake itself through its eventfd: an extra `write`
//! and an extra `epoll_wait` per batch. A timerfd costs one
//! `timerfd_settime` per arm and fires to the nanosecond.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub struct PaceTimer {
    fd: AsyncFd<OwnedFd>,
    armed_for: Option<Instant>,
}

impl PaceTimer {
    /// Must be called inside a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked before use.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an `OwnedFd` keeps its descriptor open and unchanged for as
        // long as the `AsyncFd` that owns it.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }?;
        Ok(PaceTimer { fd, armed_for: None })
    }

    /// Fires at `at` (at once if it has passed). Re-arming for the same
    /// instant costs nothing.
    pub fn arm(&mut self, at: Instant) -> io::Result<()> {
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // A zero value would disarm: "now" is one nanosecond from now.
        let wait = at.saturating_duration_since(Instant::now()).max(Duration::from_nanos(1));
        self.set(wait)?;
        self.armed_for = Some(at);
        Ok(())
    }

    pub fn disarm(&mut self) -> io::Result<()> {
        if self.armed_for.take().is_some() {
            self.set(Duration::ZERO)?;
        }
        Ok(())
    }

    pub fn is_armed(&self) -> bool {
        self.armed_for.is_some()
    }

    /// When it fires, if armed.
    pub fn armed_for(&self) -> Option<Instant> {
        self.armed_for
    }

    /// Resolves when the timer has fired (or possibly, after a re-arm, for
    /// an earlier firing: callers check what is due, so that is harmless).
    pub async fn fired(&mut self) -> io::Result<()> {
        let mut ready = self.fd.readable().await?;
        // Each expiry wakes the event loop anew (edge-triggered), so the
        // expiry count need not be read: clearing the readiness is enough.
        ready.clear_ready();
        self.armed_for = None;
        Ok(())
    }

    fn set(&self, wait: Duration) -> io::Result<()> {
        let value = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(wait.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(wait.subsec_nanos()),
            },
        };
        // SAFETY: valid descriptor, valid pointer to a filled struct; no old
        // value asked for.
        let rc = unsafe { libc::timerfd_settime(self.fd.get_ref().as_raw_fd(), 0, &value, std::ptr::null_mut()) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn fires_again_and_again_without_reading_the_expiry_count() {
        runtime().block_on(async {
            let mut timer = PaceTimer::new().unwrap();
            for _ in 0..20 {
                let at = Instant::now() + Duration::from_millis(2);
                timer.arm(at).unwrap();
                tokio::time::timeout(Duration::from_secs(2), timer.fired()).await.expect("fired").unwrap();
                assert!(Instant::now() >= at, "fired early");
                assert!(!timer.is_armed());
            }
        });
    }

    #[test]
    fn a_disarmed_timer_stays_quiet_and_a_past_instant_fires_at_once() {
        runtime().block_on(async {
            let mut timer = PaceTimer::new().unwrap();
            timer.arm(Instant::now() + Duration::from_millis(20)).unwrap();
            timer.disarm().unwrap();
            assert!(
                tokio::time::timeout(Duration::from_millis(60), timer.fired()).await.is_err(),
                "disarmed timer fired"
            );
            timer.arm(Instant::now() - Duration::from_millis(5)).unwrap();
            tokio::time::timeout(Duration::from_millis(500), timer.fired()).await.expect("past instant fires").unwrap();
        });
    }
}
