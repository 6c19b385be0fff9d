//! The scenarios of the Artillery script: one flow per request (with the
//! requests that fill its pools first) and per journey (its steps and
//! `think`s), the `payload` that gives each virtual user a row of every
//! data table, and what Artillery cannot express at all.

use std::fmt::Write as _;

use super::super::journeys::{Pause, Step};
use super::super::script::{Body, Entry, Gen, JsonExpr, Piece, Req, Script};
use super::super::text::{num, yaml_str};
use super::{MAX_CHAIN, Writer, list_bytes, pool_var, typed};
use crate::workload::Role;
use crate::workload::model::DataOrder;

/// One scenario.
pub struct Flow {
    pub name: String,
    pub weight: u64,
    pub steps: Vec<FlowStep>,
    /// The requests trafficgen sends for one arrival of what this flow
    /// stands for (1 for a request, a journey's steps).
    pub ours: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowStep {
    Send(usize),
    Think(Pause),
}

impl Flow {
    /// Requests it sends.
    pub fn sends(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s, FlowStep::Send(_))).count()
    }

    /// How often it sends request `index`.
    pub fn sends_of(&self, index: usize) -> usize {
        self.steps.iter().filter(|s| **s == FlowStep::Send(index)).count()
    }
}

impl Writer<'_> {
    /// Pools a request can read in any virtual user: seeded from the start
    /// (a variable list) or filled by the setup requests (`before`).
    fn pool_ready(&mut self, pool: usize) -> bool {
        let script = self.script;
        let by_setup = script.setup.iter().any(|s| script.requests[*s].captures.iter().any(|c| c.pool() == Some(pool)));
        if by_setup {
            return true;
        }
        let seed = &script.pools[pool].seed;
        if seed.is_empty() {
            return false;
        }
        let name = pool_var(script, pool);
        if !self.vars.iter().any(|(n, _)| *n == name) {
            let items: Vec<String> = seed.iter().map(typed).collect();
            self.made += list_bytes(&items);
            self.vars.push((name, items));
        }
        true
    }

    /// The requests to send, in order, so that `request` finds its pools
    /// filled in one virtual user; `None` when some pool cannot be.
    fn chain(&mut self, request: usize, depth: usize) -> Option<Vec<usize>> {
        let script = self.script;
        let req = &script.requests[request];
        let mut steps: Vec<usize> = Vec::new();
        for &pool in &req.needs {
            let fills = |i: &usize| script.requests[*i].captures.iter().any(|c| c.pool() == Some(pool));
            if self.pool_ready(pool) || steps.iter().any(fills) {
                continue;
            }
            // A journey's step reads its instance's variables: not one to send alone.
            let producer = req.fallback.filter(fills).or_else(|| {
                script
                    .fillers(pool)
                    .find(|i| *i != request && !matches!(script.requests[*i].role, Role::Setup | Role::Step))
            });
            let producer = producer.filter(|_| depth < MAX_CHAIN)?;
            for step in self.chain(producer, depth + 1)? {
                if !steps.contains(&step) {
                    steps.push(step);
                }
            }
        }
        steps.push(request);
        Some(steps)
    }

    pub(super) fn flows(&mut self) -> Vec<Flow> {
        let script = self.script;
        let mut flows = Vec::new();
        for &(entry, weight) in &script.mix {
            let i = match entry {
                Entry::Request(i) => i,
                Entry::Journey(j) => {
                    flows.push(self.journey_flow(j, weight));
                    continue;
                }
            };
            let req = &script.requests[i];
            let steps = match self.chain(i, 0) {
                Some(steps) => steps,
                None => {
                    let pools: Vec<&str> = req.needs.iter().map(|p| script.pools[*p].name.as_str()).collect();
                    match req.fallback.and_then(|f| self.chain(f, 0)) {
                        Some(steps) => {
                            self.note(format!(
                                "`{}` reads {} that nothing fills within one virtual user; its fallback `{}` is sent in its place.",
                                req.name,
                                pools.join(", "),
                                script.requests[req.fallback.unwrap_or(i)].name
                            ));
                            steps
                        }
                        None => {
                            self.note(format!(
                                "`{}` reads {} that nothing fills within one virtual user and has no fallback: it is left out, so the other requests' shares grow.",
                                req.name,
                                pools.join(", ")
                            ));
                            continue;
                        }
                    }
                }
            };
            flows.push(Flow {
                name: req.name.clone(),
                weight,
                steps: steps.into_iter().map(FlowStep::Send).collect(),
                ours: 1.0,
            });
        }
        flows
    }

    /// A journey's steps and pauses. A step that reads a shared pool no
    /// earlier step of the journey fills (nor seed nor setup) would find
    /// it empty in every virtual user: the flow ends before it, as a
    /// trafficgen instance ends at an empty pool.
    fn journey_flow(&mut self, index: usize, weight: u64) -> Flow {
        let script = self.script;
        let journey = &script.journeys[index];
        let mut steps = Vec::new();
        let mut filled: Vec<usize> = Vec::new();
        for step in &journey.steps {
            match step {
                Step::Pause(p) => steps.push(FlowStep::Think(*p)),
                Step::Send { req, .. } => {
                    let request = &script.requests[*req];
                    let stuck: Vec<&str> = request
                        .needs
                        .iter()
                        .filter(|p| !filled.contains(p) && !self.pool_ready(**p))
                        .map(|p| script.pools[*p].name.as_str())
                        .collect();
                    if !stuck.is_empty() {
                        self.note(format!(
                            "`{}` reads {} that no earlier step of its journey fills, and Artillery's virtual users share no pool: the journey ends before it.",
                            request.name,
                            stuck.join(", ")
                        ));
                        break;
                    }
                    filled.extend(request.captures.iter().filter_map(|c| c.pool()));
                    steps.push(FlowStep::Send(*req));
                }
            }
        }
        while matches!(steps.last(), Some(FlowStep::Think(_))) {
            steps.pop();
        }
        if journey.steps.iter().any(|s| matches!(s, Step::Send { go_on: false, .. })) {
            self.note(
                "Artillery goes on after a journey step that is not a success, where trafficgen ends the instance (unless the step says on_failure: continue); a capture that finds nothing ends Artillery's virtual user, as a missing variable ends trafficgen's instance."
                    .to_string(),
            );
        }
        Flow { name: journey.name.clone(), weight, steps, ours: journey.sends() as f64 }
    }

    /// A pause as `think`: fixed; uniform as its middle with `jitter` of
    /// half its width (Artillery draws uniformly within); exponential as
    /// its mean.
    pub(super) fn think(&mut self, out: &mut String, indent: &str, pause: Pause) {
        let ms = |secs: f64| (secs * 1000.0).round();
        let think = |secs: f64| {
            let ms = ms(secs);
            if ms % 1000.0 == 0.0 { num(ms / 1000.0) } else { format!("\"{}ms\"", num(ms)) }
        };
        match pause {
            Pause::Fixed(secs) => {
                let _ = writeln!(out, "{indent}- think: {}", think(secs));
            }
            Pause::Uniform(min, max) => {
                let _ = writeln!(out, "{indent}- think: {}", think((min + max) / 2.0));
                let half = ((ms(max) - ms(min)) / 2.0).floor();
                if half > 0.0 {
                    let _ = writeln!(out, "{indent}  jitter: {}", num(half));
                }
            }
            Pause::Exponential(mean) => {
                self.note(format!(
                    "Artillery's think times are fixed or uniform (jitter): an exponential pause around {} s is a fixed {} s here.",
                    num(mean),
                    num(mean)
                ));
                let _ = writeln!(out, "{indent}- think: {}", think(mean));
            }
        }
    }

    /// `payload`: each virtual user takes one row of every table, its
    /// fields as variables `data_<table>_<column>`.
    pub(super) fn payload(&mut self) -> String {
        let script = self.script;
        if script.tables.is_empty() {
            return String::new();
        }
        let mut out = String::from(
            "  # Data tables: each virtual user takes one row of each (fields by position, after the header row). The files are read from the folder of this script: copy them there.\n  payload:\n",
        );
        for t in &script.tables {
            let mut path = t.file.clone();
            if t.json {
                path = format!("{}.csv", &t.file[..t.file.len() - ".json".len()]);
                self.note(format!(
                    "Artillery reads data from CSV only: write the rows of {} as {path}, with the header row {}.",
                    t.file,
                    t.columns.join(",")
                ));
            }
            let fields: Vec<String> = t.columns.iter().map(|c| yaml_str(&data_var(&t.name, c))).collect();
            let order = match t.order {
                DataOrder::Random => "random",
                DataOrder::Sequential | DataOrder::Unique => "sequence",
            };
            if t.order == DataOrder::Unique {
                self.note(format!(
                    "Artillery has no `unique` order: table {} is read in sequence and starts over after its last row, where trafficgen gives each row once and then starts no more journeys that need one.",
                    t.name
                ));
            }
            let _ = writeln!(
                out,
                "    - path: {}\n      fields: [{}]\n      skipHeader: true\n      order: {order}\n      cast: false",
                yaml_str(&path),
                fields.join(", ")
            );
        }
        if script.tables.iter().any(|t| t.order != DataOrder::Random) && script.mix.len() > 1 {
            self.note(
                "Every Artillery virtual user takes a row of every table, whatever its scenario: rows in sequence skip those taken by arrivals that do not read them."
                    .to_string(),
            );
        }
        out
    }
}

/// The variable a journey variable is.
pub fn var_name(var: &str) -> String {
    format!("var_{var}")
}

/// The variable a data field is.
pub fn data_var(table: &str, column: &str) -> String {
    format!("data_{table}_{column}")
}

/// Why Artillery cannot express this script at all: a `base64(…)` that is
/// neither constant (encoded here) nor a whole `Authorization: Basic …`
/// header (Artillery's `auth`). Artillery templates have no base64.
pub fn cannot(script: &Script) -> Option<String> {
    for req in &script.requests {
        let mut found = false;
        let mut check = |pieces: &[Piece], basic_header: bool| {
            for piece in pieces {
                if let Piece::Hole(g, _) = piece
                    && needs_base64(g)
                    && !(basic_header && basic_auth(pieces).is_some())
                {
                    found = true;
                }
            }
        };
        check(&req.target, false);
        for (name, value) in &req.headers {
            check(value, name.eq_ignore_ascii_case("authorization"));
        }
        match &req.body {
            Some(Body::Text(p)) => check(p, false),
            Some(Body::Json(j)) if json_needs_base64(j) => found = true,
            Some(Body::Json(_)) | None => {}
        }
        if found {
            return Some(format!(
                "Artillery has no base64 template: `{}` uses base64(…) of values drawn while the test runs, which Artillery can send only as Basic auth (a whole `Authorization: \"Basic {{{{ base64(user, ':', password) }}}}\"` header); export this workload for k6 or Locust",
                req.name
            ));
        }
    }
    None
}

/// A base64 of something drawn at run time (a constant one is encoded here).
fn needs_base64(g: &Gen) -> bool {
    matches!(g, Gen::Base64(inner) if inner.iter().any(|p| matches!(p, Piece::Hole(..))))
}

fn json_needs_base64(j: &JsonExpr) -> bool {
    match j {
        JsonExpr::Literal(_) => false,
        JsonExpr::Value(g) => needs_base64(g),
        JsonExpr::Text(p) => p.iter().any(|p| matches!(p, Piece::Hole(g, _) if needs_base64(g))),
        JsonExpr::Array(items) => items.iter().any(json_needs_base64),
        JsonExpr::Object(entries) => entries.iter().any(|(_, v)| json_needs_base64(v)),
    }
}

/// `Basic {{ base64(user…, ':', password…) }}` as the user's and the
/// password's pieces (split at the first `:` of the literal text).
pub fn basic_auth(pieces: &[Piece]) -> Option<(Vec<Piece>, Vec<Piece>)> {
    let [Piece::Lit(lead), Piece::Hole(Gen::Base64(inner), _)] = pieces else { return None };
    if !lead.eq_ignore_ascii_case("basic ") {
        return None;
    }
    let split = inner.iter().position(|p| matches!(p, Piece::Lit(t) if t.contains(':')))?;
    let Piece::Lit(text) = &inner[split] else { return None };
    let (before, after) = text.split_once(':')?;
    let mut user: Vec<Piece> = inner[..split].to_vec();
    if !before.is_empty() {
        user.push(Piece::Lit(before.to_string()));
    }
    let mut pass: Vec<Piece> = Vec::new();
    if !after.is_empty() {
        pass.push(Piece::Lit(after.to_string()));
    }
    pass.extend(inner[split + 1..].iter().cloned());
    Some((user, pass))
}

/// The header that becomes Artillery's `auth`, if any.
pub fn auth_header(req: &Req) -> Option<usize> {
    req.headers
        .iter()
        .position(|(name, value)| name.eq_ignore_ascii_case("authorization") && basic_auth(value).is_some())
}
