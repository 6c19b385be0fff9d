//! The open-file limit, shared out between the engine and the control API.
//!
//! Both live in one process under one `RLIMIT_NOFILE`. Unchecked, a flood
//! of control connections took the descriptors the engine needed for its
//! target connections (they failed as `connect` errors), and a large
//! `MAX_IN_FLIGHT` at a stuck target took those `/health` needed. So at
//! start the soft limit is raised to the hard one, the engine gets
//! `MAX_IN_FLIGHT` descriptors (twice that with `--demo`, whose in-process
//! target holds the other end of each connection), the control server its
//! connection cap, the process a fixed reserve, and a `MAX_IN_FLIGHT` that
//! cannot fit is refused at start.

use std::io;

use serde::Serialize;

/// Descriptors the process needs besides its connections: standard
/// streams, each runtime's epoll and wake-up descriptors, the pacing timer,
/// the listener, the `/proc` reads behind `process_*` metrics and a few
/// resolver sockets. About 20 are open at idle; this leaves room.
pub const PROCESS_RESERVE: u64 = 64;

/// How the open-file limit is shared out, as `/status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DescriptorBudget {
    /// The soft `RLIMIT_NOFILE` in force (after raising it).
    pub open_files_limit: u64,
    /// The soft limit before start-up raised it, when it did.
    pub raised_from: Option<u64>,
    /// For target connections (`MAX_IN_FLIGHT`, doubled with `--demo`).
    pub engine: u64,
    /// For control connections: the cap, the listener, and the one
    /// accepted before the stalest is closed to make room.
    pub control: u64,
    /// For everything else.
    pub process: u64,
}

/// `MAX_IN_FLIGHT` (with everything else) does not fit the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "needs {engine} descriptors for target connections plus {reserved} reserved (control API {control}, process \
     {PROCESS_RESERVE}), but the open-file limit (RLIMIT_NOFILE) is {limit}; set MAX_IN_FLIGHT to at most {fits} \
     (or CONTROL_MAX_CONNECTIONS lower), or raise the limit (ulimit -n, docker run --ulimit nofile=N)"
)]
pub struct DoesNotFit {
    pub engine: u64,
    pub control: u64,
    pub reserved: u64,
    pub limit: u64,
    /// The largest `MAX_IN_FLIGHT` that would fit (0 if none).
    pub fits: u64,
}

/// Shares out `limit` descriptors (pure; see [`raise_open_file_limit`]).
pub fn share(
    limit: u64,
    raised_from: Option<u64>,
    max_in_flight: usize,
    control_max_connections: usize,
    demo: bool,
) -> Result<DescriptorBudget, DoesNotFit> {
    let per_request: u64 = if demo { 2 } else { 1 };
    let engine = (max_in_flight as u64).saturating_mul(per_request);
    let control = (control_max_connections as u64).saturating_add(2);
    let reserved = control.saturating_add(PROCESS_RESERVE);
    if engine.saturating_add(reserved) > limit {
        let fits = limit.saturating_sub(reserved) / per_request;
        return Err(DoesNotFit { engine, control, reserved, limit, fits });
    }
    Ok(DescriptorBudget { open_files_limit: limit, raised_from, engine, control, process: PROCESS_RESERVE })
}

/// Raises the soft open-file limit to the hard one where allowed. Returns
/// the limit in force and, if it was raised, the one before.
pub fn raise_open_file_limit() -> io::Result<(u64, Option<u64>)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let soft = limit.rlim_cur;
    // The kernel refuses more than fs.nr_open (2^20 by default) even when
    // the hard limit says "unlimited".
    let wanted = if limit.rlim_max == libc::RLIM_INFINITY { 1 << 20 } else { limit.rlim_max };
    if soft != libc::RLIM_INFINITY && soft < wanted {
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok((wanted, Some(soft)));
        }
        log::warn!(soft = soft, hard = limit.rlim_max, error:% = io::Error::last_os_error();
            "cannot raise the open-file limit; keeping the soft limit");
    }
    Ok((soft, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_a_common_container_limit() {
        let budget = share(1024, None, 512, 256, false).expect("fits");
        assert_eq!((budget.engine, budget.control, budget.process), (512, 258, 64));
        assert!(budget.engine + budget.control + budget.process <= 1024);
    }

    #[test]
    fn an_in_flight_bound_that_cannot_fit_is_refused_with_what_would() {
        let err = share(1024, None, 100_000, 256, false).unwrap_err();
        assert_eq!(err.fits, 1024 - 258 - 64);
        let text = err.to_string();
        assert!(text.contains("100000") && text.contains("1024") && text.contains("at most 702"), "{text}");
        assert!(share(1024, None, err.fits as usize, 256, false).is_ok(), "the suggested bound fits");
        assert!(share(1024, None, err.fits as usize + 1, 256, false).is_err());
    }

    #[test]
    fn the_demo_target_in_process_doubles_the_engine_share() {
        let budget = share(4096, None, 512, 256, true).unwrap();
        assert_eq!(budget.engine, 1024);
        let err = share(1024, None, 512, 256, true).unwrap_err();
        assert_eq!(err.fits, (1024 - 258 - 64) / 2);
    }

    #[test]
    fn absurd_numbers_saturate_instead_of_overflowing() {
        assert!(share(1 << 20, None, usize::MAX, usize::MAX, true).is_err());
        assert!(share(0, None, 1, 1, false).unwrap_err().fits == 0);
    }
}
