//! How the open model batches its sends into turns: how far ahead one
//! wake-up sends (`batch_window`), and, at or near `MAX_RPS`, the grid of
//! cells the turns keep to (`TurnWindow`). Pure: no clock, no I/O.

use std::time::Duration;

/// The engine wakes exactly when the next request is due and sends every
/// request due within a window with it (up to the window early), while
/// requests further apart than the window each leave at their own time.
/// This is the shortest window: journeys' pauses and users at their cap use
/// it, at most about a thousand wake-ups a second.
pub(super) const BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Below a couple of thousand requests a second the window widens so that one
/// wake-up sends about this many requests: a wake-up (and the one for their
/// answers, which come back together) costs more CPU than the requests
/// themselves (issue 30).
const REQUESTS_PER_WAKE: f64 = 4.0;

/// The widest window: how early a request may leave with the one due before
/// it. Lateness is what the lag metric reports, and stays as it was.
const MAX_BATCH_WINDOW: Duration = Duration::from_millis(4);

/// The narrowest window when the cap leaves room: at most 500 wake-ups a
/// second at any rate. At 10 000 req/s a 1 ms window (ten requests per
/// wake-up) cost 0.31 voluntary switches and 12.5 µs of CPU per request,
/// 2 ms 0.19 and 10.8 µs: a wake-up, and the answers that then come back
/// one by one, cost more than the requests (issue 30, bench/RESULTS.md §15).
const MIN_OPEN_WINDOW: Duration = Duration::from_millis(2);

/// How one turn of the open model batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct TurnWindow {
    /// Seconds: how far ahead of the first due request a turn sends.
    pub(super) width: f64,
    /// The turns are cells of a grid `width` wide on the schedule's clock
    /// (a turn wakes at the start of the cell of the next request due and
    /// sends the requests due in it) rather than windows opening at the
    /// next request due.
    pub(super) cells: bool,
}

impl TurnWindow {
    /// Where the turn at schedule time `elapsed` stops sending.
    pub(super) fn horizon(self, elapsed: f64) -> f64 {
        if self.cells {
            // The timer fires at or after a cell's start, never before it;
            // a microsecond covers the clock's rounding.
            ((elapsed + 1e-6) / self.width).floor() * self.width + self.width
        } else {
            elapsed + self.width
        }
    }

    /// When the turn for a request due at schedule time `due` wakes.
    pub(super) fn wake(self, due: f64) -> f64 {
        if self.cells { (due / self.width).floor() * self.width } else { due }
    }
}

/// The window of a turn at `rate` requests per second (see `BATCH_WINDOW`)
/// under a cap of `cap_allowed` requests per `cap_window`.
///
/// When the cap's window holds the schedule's share plus the requests sent
/// early, a turn opens at the next request due. At a rate at (or near) its
/// cap it cannot: windows opening anywhere would each take a little more of
/// the schedule than their width into the cap's window, keeping it full, so
/// that every request after a late wake-up waited for room. There the turns
/// are cells of a grid that divides the cap's window evenly, sent from each
/// cell's start: the cap's window then always holds whole cells, exactly its
/// own length of the schedule, and a rate at the default `MAX_RPS` of 1 000
/// batches as one below it does, at a quarter of the wake-ups (issue 30).
pub(super) fn batch_window(rate: f64, cap_allowed: usize, cap_window: Duration) -> TurnWindow {
    let (min, max) = (BATCH_WINDOW.as_secs_f64(), MAX_BATCH_WINDOW.as_secs_f64());
    if !(rate.is_finite() && rate > 0.0) {
        return TurnWindow { width: min, cells: false };
    }
    let wide = (REQUESTS_PER_WAKE / rate).clamp(MIN_OPEN_WINDOW.as_secs_f64(), max);
    let needed = rate * (cap_window.as_secs_f64() + wide) + REQUESTS_PER_WAKE;
    if cap_allowed as f64 >= needed {
        return TurnWindow { width: wide, cells: false };
    }
    let span = cap_window.as_secs_f64();
    let cells = (span / wide).ceil().max(1.0);
    TurnWindow { width: span / cells, cells: true }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cap::SendCap;
    use crate::engine::schedule::{Pacer, RateSchedule};
    use rand::RngExt;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::time::Instant;

    #[test]
    fn the_batch_window_holds_a_few_requests_between_two_and_four_ms() {
        let ms = |secs: f64| (secs * 1e3 * 1e6).round() / 1e6;
        // A cap far above the rate.
        let window = |rate: f64| ms(batch_window(rate, 100_000, Duration::from_millis(100)).width);
        assert_eq!(window(1_000.0), 4.0);
        assert_eq!(window(2_000.0), 2.0);
        // Above 2 000/s: never more than 500 wake-ups a second.
        assert_eq!(window(10_000.0), 2.0);
        assert_eq!(window(100_000.0), 2.0);
        // Low rates: requests further apart than the window leave alone.
        assert_eq!(window(100.0), 4.0);
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(window(rate), 1.0, "rate {rate}");
        }
    }

    #[test]
    fn a_rate_at_or_near_its_cap_sends_in_cells_that_divide_the_caps_window() {
        let ms = |secs: f64| (secs * 1e3 * 1e6).round() / 1e6;
        let tenth = Duration::from_millis(100);
        let cells = |rate: f64, allowed: usize, window: Duration| {
            let turn = batch_window(rate, allowed, window);
            assert!(turn.cells, "rate {rate}, {allowed} per {window:?}");
            ms(turn.width)
        };
        // MAX_RPS 1000 (100 per 100 ms) at 1000/s: no room to send early
        // anywhere, so 25 cells of 4 ms.
        assert_eq!(cells(1_000.0, 100, tenth), 4.0);
        // 5 % under it: still none (104 + 4 needed).
        assert_eq!(cells(950.0, 100, tenth), 4.0);
        // 1 500/s: 2.67 ms would not divide 100 ms; 38 cells do.
        assert_eq!(cells(1_500.0, 150, tenth), ms(0.1 / 38.0));
        assert_eq!(cells(10_000.0, 1_000, tenth), 2.0);
        // Low caps count over a second: 250 cells.
        assert_eq!(cells(2.0, 2, Duration::from_secs(1)), 4.0);
        // A tenth under it: room for the early share, windows open anywhere.
        let open = batch_window(900.0, 100, tenth);
        assert_eq!((ms(open.width), open.cells), (4.0, false));
        assert!(!batch_window(2.0, 20, Duration::from_secs(1)).cells);
    }

    #[test]
    fn a_cell_ends_where_the_next_begins_and_wakes_at_its_start() {
        let turn = TurnWindow { width: 0.004, cells: true };
        let near = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} != {b}");
        near(turn.wake(1.0061), 1.004);
        near(turn.horizon(1.004), 1.008);
        // A timer a hair early by rounding still sends its own cell.
        near(turn.horizon(1.0039999999), 1.008);
        // Woken late, into the next cell: everything up to its end.
        near(turn.horizon(1.0085), 1.012);
        let open = TurnWindow { width: 0.004, cells: false };
        near(open.wake(1.0061), 1.0061);
        near(open.horizon(1.0061), 1.0101);
    }

    /// Turns at `rate` under a cap of `cap` req/s for `secs` on a virtual
    /// clock, each wake-up late by a draw from `delay`: (wake-ups per
    /// request, requests sent, lateness p99 in seconds), as the loop and
    /// `send_due` do it.
    fn simulate(
        rate: f64,
        cap: f64,
        secs: f64,
        turn_of: impl Fn(f64, usize, Duration) -> TurnWindow,
        delay: impl Fn(&mut SmallRng) -> f64,
    ) -> (f64, usize, f64) {
        let mut rng = SmallRng::seed_from_u64(30);
        let mut pacer = Pacer::new(RateSchedule::constant(rate), 0.2, &mut rng);
        let mut cap = SendCap::new(cap);
        let base = Instant::now();
        let at = |t: f64| base + Duration::from_secs_f64(t);
        let (mut wakes, mut late) = (0usize, Vec::new());
        let mut turn: Option<TurnWindow> = None;
        while let Some(next) = pacer.next_send_time() {
            if next > secs {
                break;
            }
            let wake = turn.map_or(next, |turn| turn.wake(next));
            let wake = match cap.room_from() {
                Some(room) if room > at(wake) => room.duration_since(base).as_secs_f64(),
                _ => wake,
            };
            let now_secs = wake + delay(&mut rng);
            let now = at(now_secs);
            wakes += 1;
            let (allowed, window) = cap.window();
            let this = turn_of(rate, allowed, window);
            turn = Some(this);
            let horizon = this.horizon(now_secs);
            for _ in 0..Pacer::turn_limit(rate, this.width) {
                if pacer.next_send_time().is_none_or(|t| t > horizon) || cap.free_at(now).is_some() {
                    break;
                }
                let Some(due) = pacer.pop_due(horizon, &mut rng) else { break };
                assert!(cap.try_take(now));
                late.push((now_secs - due).max(0.0));
            }
        }
        late.sort_by(f64::total_cmp);
        let p99 = late[late.len() * 99 / 100];
        (wakes as f64 / late.len() as f64, late.len(), p99)
    }

    #[test]
    fn at_its_cap_a_rate_batches_as_below_it_and_keeps_its_schedule() {
        let on_time = |_: &mut SmallRng| 0.0;
        // Mostly a little late, one wake-up in a hundred up to 3 ms.
        let late = |rng: &mut SmallRng| {
            if rng.random_range(0..100) == 0 { rng.random_range(0.0..0.003) } else { rng.random_range(0.0..0.0002) }
        };
        // One request per wake-up: the 1 ms windows a rate at its cap had.
        let narrow = |_, _, _| TurnWindow { width: BATCH_WINDOW.as_secs_f64(), cells: false };
        for delay in [&on_time as &dyn Fn(&mut SmallRng) -> f64, &late] {
            let (wakes, sent, p99) = simulate(1_000.0, 1_000.0, 20.0, batch_window, delay);
            let (narrow_wakes, _, narrow_p99) = simulate(1_000.0, 1_000.0, 20.0, narrow, delay);
            // About four requests per wake-up, every request of the
            // schedule sent, and no later than with one per wake-up.
            // (Either way a late wake-up's delay is made up only where the
            // jittered schedule leaves the cap's window room: catching up
            // would take more than the cap.)
            assert!(wakes < 0.3 && wakes < narrow_wakes / 1.4, "{wakes} wake-ups per request, {narrow_wakes} narrow");
            assert!(sent >= 19_990, "{sent} sent");
            assert!(p99 <= narrow_p99 * 1.25 + 0.001, "lateness p99 {p99} s, {narrow_p99} s narrow");
        }
    }
}
