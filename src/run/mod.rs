//! `trafficgen run`: the one-shot CI mode. Sends a scenario at a target for a
//! set time, judges the SLOs, prints a summary table and exits 0 (every SLO
//! holds), 1 (one does not) or 2 (bad input).

pub mod report;
