//! A narrower draw than the whole workload, for a job (issue 11): by weight
//! among some of the weighted requests only, and with a given share drawn
//! uniformly from the error requests instead. Built once when the focus
//! changes; drawing is as cheap as [`Workload::draw`]. Fallbacks still
//! apply: a focused request whose pool is empty sends its fallback, even
//! one outside the focus.

use rand::{Rng, RngExt};

use super::Workload;
use super::compile::{RequestId, Weights};
use super::journey::Arrival;
use super::model::Role;
use super::render::RunState;

/// The draw of one focus against one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct FocusedDraw {
    /// The named weighted requests, by their weights; `None` when no name
    /// matched (then the whole workload's weights are used).
    weights: Option<Weights>,
    errors: Vec<RequestId>,
    /// Share of draws taken from `errors` (0 when there are none).
    error_share: f64,
}

impl FocusedDraw {
    /// `requests`: names of weighted requests to draw among (`None`: all
    /// of them); names that are not weighted requests of `workload` are
    /// ignored. `error_share` is clamped to `0..=1`.
    pub fn new(workload: &Workload, requests: Option<&[String]>, error_share: f64) -> FocusedDraw {
        let weights = requests.and_then(|names| {
            let mut ends = Vec::new();
            let mut ids = Vec::new();
            let mut total: u32 = 0;
            for id in workload.requests() {
                if let Role::Weighted(w) = workload.role(id)
                    && w > 0
                    && names.iter().any(|n| n == workload.name(id))
                {
                    total = total.saturating_add(w);
                    ends.push(total);
                    ids.push(id);
                }
            }
            (total > 0).then_some(Weights { ends, ids, total })
        });
        let errors: Vec<RequestId> = workload.error_requests().collect();
        let share = if error_share.is_finite() { error_share.clamp(0.0, 1.0) } else { 0.0 };
        let error_share = if errors.is_empty() { 0.0 } else { share };
        FocusedDraw { weights, errors, error_share }
    }

    /// The next arrival of the traffic under this focus: without named
    /// requests, the whole workload's draw (journeys included).
    pub fn draw(&self, workload: &Workload, rng: &mut impl Rng, state: &RunState) -> Arrival {
        if self.error_share > 0.0 && rng.random_bool(self.error_share) {
            let asked = self.errors[rng.random_range(0..self.errors.len())];
            return Arrival::Request(workload.resolve(asked, rng, state));
        }
        match &self.weights {
            Some(weights) => {
                let asked = weights.pick(rng.random_range(0..weights.total));
                Arrival::Request(workload.resolve(asked, rng, state))
            }
            None => workload.draw_arrival(rng, state),
        }
    }

    /// The share of draws that go to error requests.
    pub fn error_share(&self) -> f64 {
        self.error_share
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::workload::{Draw, Options, Target, load_str};

    const FILE: &str = r#"
pools:
  ids: ~
requests:
  - name: create
    weight: 6
    method: POST
    path: /items
    capture:
      - pool: ids
        json: /id
  - name: list
    weight: 3
    method: GET
    path: /items
  - name: read
    weight: 1
    method: GET
    path: /items/{{ pool(ids) }}
    fallback: create
  - name: boom
    error: true
    method: GET
    path: /items/error
  - name: teapot
    error: true
    method: GET
    path: /teapot
"#;

    fn workload() -> Workload {
        let target = Target {
            authority: "t".into(),
            path_prefix: String::new(),
            user_agent: "ua".into(),
            trace: crate::workload::TraceHeaders::Off,
        };
        load_str("focus.yaml", FILE, &Options::new(target, 8)).expect("valid workload")
    }

    /// Names of what `draws` draws sent, counted.
    fn counts(workload: &Workload, focus: &FocusedDraw, state: &RunState, draws: u32) -> BTreeMap<String, u32> {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut seen = BTreeMap::new();
        for _ in 0..draws {
            if let Arrival::Request(Draw::Send(chosen)) = focus.draw(workload, &mut rng, state) {
                *seen.entry(workload.name(chosen.request()).to_string()).or_insert(0) += 1;
            }
        }
        seen
    }

    #[test]
    fn only_the_named_requests_are_drawn_by_their_weights() {
        let w = workload();
        let mut state = RunState::new(&w);
        state.push(w.pool_id("ids").unwrap(), b"1", true);
        let names = ["list".to_string(), "read".to_string()];
        let focus = FocusedDraw::new(&w, Some(&names), 0.0);
        let seen = counts(&w, &focus, &state, 10_000);
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["list", "read"], "{seen:?}");
        let list_share = f64::from(seen["list"]) / 10_000.0;
        assert!((list_share - 0.75).abs() < 0.03, "list is 3 of 4 by weight: {seen:?}");
    }

    #[test]
    fn fallbacks_still_apply_inside_a_focus() {
        let w = workload();
        let state = RunState::new(&w);
        let focus = FocusedDraw::new(&w, Some(&["read".to_string()]), 0.0);
        let seen = counts(&w, &focus, &state, 100);
        assert_eq!(seen, BTreeMap::from([("create".to_string(), 100)]), "read falls back while ids is empty");
    }

    #[test]
    fn the_error_share_is_drawn_uniformly_from_the_error_requests() {
        let w = workload();
        let state = RunState::new(&w);
        let focus = FocusedDraw::new(&w, Some(&["list".to_string()]), 0.4);
        let seen = counts(&w, &focus, &state, 20_000);
        let share = |name: &str| f64::from(seen.get(name).copied().unwrap_or(0)) / 20_000.0;
        assert!((share("boom") + share("teapot") - 0.4).abs() < 0.02, "{seen:?}");
        assert!((share("boom") - share("teapot")).abs() < 0.02, "uniform among errors: {seen:?}");
        assert!((share("list") - 0.6).abs() < 0.02, "{seen:?}");
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn unknown_names_and_odd_shares_fall_back_to_the_whole_workload() {
        let w = workload();
        let state = RunState::new(&w);
        let focus = FocusedDraw::new(&w, Some(&["nope".to_string(), "boom".to_string()]), f64::NAN);
        assert_eq!(focus.error_share(), 0.0);
        let seen = counts(&w, &focus, &state, 10_000);
        // The whole workload by weight: create 6 (+ read's fallbacks), list 3.
        assert!(seen.contains_key("create") && seen.contains_key("list"), "{seen:?}");
        assert!(!seen.contains_key("boom"), "error requests are never drawn by weight: {seen:?}");
        assert_eq!(FocusedDraw::new(&w, None, 7.0).error_share(), 1.0);
    }

    #[test]
    fn without_error_requests_the_share_is_zero() {
        let target = Target {
            authority: "t".into(),
            path_prefix: String::new(),
            user_agent: "ua".into(),
            trace: crate::workload::TraceHeaders::Off,
        };
        let options = Options::new(target, 8);
        let w = load_str("x.yaml", "requests:\n  - name: a\n    weight: 1\n    method: GET\n    path: /\n", &options)
            .expect("valid");
        let focus = FocusedDraw::new(&w, None, 0.5);
        assert_eq!(focus.error_share(), 0.0);
        let state = RunState::new(&w);
        assert_eq!(counts(&w, &focus, &state, 50), BTreeMap::from([("a".to_string(), 50)]));
    }
}
