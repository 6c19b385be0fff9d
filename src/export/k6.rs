//! The k6 script: an arrival-rate scenario (`constant-arrival-rate`, or
//! `ramping-arrival-rate` over the stages), one arrival per iteration
//! drawn by weight (a request, or a journey's steps in order with their
//! pauses), the template functions written into the script (no remote
//! module: k6 runs it offline), module-level pools, `setup()` for the
//! setup requests, data files read with `open()`, and the SLOs as
//! `thresholds`.

mod journeys;
mod options;
mod runtime;

use std::fmt::Write as _;

use super::Spec;
use super::journeys::Step;
use super::script::{Body, CapSource, Ctx, Entry, Gen, JsonExpr, Piece, Req, Script, Store};
use super::text::{comment, js_str};
use crate::workload::Role;
use crate::workload::template::Item;

/// The largest integer a JavaScript number holds exactly.
const JS_EXACT: i64 = 1 << 53;

/// The script, or `None` once it passes `spec.max_bytes` (checked after
/// each part, so no more than one request's part is written past it).
pub fn write(script: &Script, spec: &Spec, notes: &[String]) -> Option<String> {
    let mut out = String::new();
    let within = |out: &String| (out.len() <= spec.max_bytes).then_some(());
    header(&mut out, script, spec, notes);
    options::options(&mut out, script, spec);
    runtime::random(&mut out, script);
    runtime::pools_and_captures(&mut out, script);
    runtime::values(&mut out, script);
    journeys::helpers(&mut out, script);
    within(&out)?;
    for (i, req) in script.requests.iter().enumerate() {
        request(&mut out, script, i, req);
        within(&out)?;
    }
    for j in 0..script.journeys.len() {
        journeys::journey(&mut out, script, j);
        within(&out)?;
    }
    mix_and_entry(&mut out, script, spec);
    Some(out)
}

fn c(out: &mut String, text: &str) {
    comment(out, "", "// ", text);
}

fn header(out: &mut String, script: &Script, spec: &Spec, notes: &[String]) {
    c(out, &format!("k6 script made by `trafficgen export --format k6` from {}.", spec.source));
    let traffic = if spec.users.is_some() { spec.traffic.describe_users() } else { spec.traffic.describe() };
    c(out, &format!("Traffic: {traffic}."));
    let data_dir = if script.tables.is_empty() { "" } else { " -e DATA_DIR=." };
    let _ = writeln!(out, "//\n//   k6 run -e TARGET_URL=http://127.0.0.1:8080{data_dir} script.k6.js\n//");
    if let Some(users) = spec.users {
        c(
            out,
            &format!(
                "trafficgen's users mode, a closed model: each VU is a virtual user that draws one arrival by weight as trafficgen draws it (a request, or a journey's steps one after the other with their pauses), runs it to its end, then pauses {} to {} s (uniform), and again. The stages count users, not requests. A closed model slows down with the target and hides its queueing (coordinated omission). Redirects are not followed.",
                super::text::num(users.min_pause_secs),
                super::text::num(users.max_pause_secs)
            ),
        );
    } else if script.journeys.is_empty() {
        c(
            out,
            "Each iteration sends one request, drawn by weight as trafficgen draws it, and iterations start at an arrival rate (an open model: a slow target gets more requests in flight, not fewer). At most maxVUs (trafficgen's MAX_IN_FLIGHT) are in flight; k6 counts iterations it could not start as dropped_iterations, as trafficgen counts dropped requests. Redirects are not followed.",
        );
    } else {
        c(
            out,
            "The rate is of arrivals, as trafficgen's: each iteration is one arrival, drawn by weight as trafficgen draws it: one request, or one instance of a journey, whose steps it sends one after the other (each after the previous answer and its pause), with its own variables. Iterations start at an arrival rate (an open model: a slow target gets more in flight, not fewer). A journey holds its VU while it runs, pauses included, so maxVUs is MAX_IN_FLIGHT + MAX_JOURNEYS; k6 counts iterations it could not start as dropped_iterations, as trafficgen counts arrivals over its bounds. Redirects are not followed.",
        );
    }
    let mut all_notes: Vec<String> = notes.to_vec();
    if big_numbers(script) {
        all_notes.push(format!(
            "A JavaScript number holds integers exactly only up to 2^53 ({JS_EXACT}); larger numbers in this workload lose precision here."
        ));
    }
    for note in &all_notes {
        out.push_str("//\n");
        c(out, &format!("Note: {note}"));
    }
    out.push('\n');
    out.push_str("import http from \"k6/http\";\n");
    let pauses =
        spec.users.is_some() || script.journeys.iter().flat_map(|j| &j.steps).any(|s| matches!(s, Step::Pause(_)));
    if pauses {
        out.push_str("import { sleep } from \"k6\";\n");
    }
    let row_by_iteration = script.tables.iter().any(|t| t.order != crate::workload::model::DataOrder::Random);
    if script.uses(|g| matches!(g, Gen::Seq)) || row_by_iteration {
        out.push_str("import exec from \"k6/execution\";\n");
    }
    if script.uses(|g| matches!(g, Gen::Base64(_))) {
        out.push_str("import encoding from \"k6/encoding\";\n");
    }
    if !script.tables.is_empty() {
        out.push_str("import { SharedArray } from \"k6/data\";\n");
    }
    if !script.journeys.is_empty() {
        out.push_str("import { Counter } from \"k6/metrics\";\n");
    }
    out.push('\n');
    out.push_str("const BASE_URL = (__ENV.TARGET_URL || ");
    out.push_str(&js_str(&spec.target_url));
    out.push_str(").replace(/\\/+$/, \"\");\n");
    if script.journeys.is_empty() {
        let _ = writeln!(out, "const MAX_VUS = {};", spec.max_in_flight.max(1));
    } else {
        let _ = writeln!(
            out,
            "const MAX_VUS = {} + {}; // MAX_IN_FLIGHT + MAX_JOURNEYS",
            spec.max_in_flight.max(1),
            spec.max_journeys.max(1)
        );
    }
    out.push('\n');
}

fn big_numbers(script: &Script) -> bool {
    fn gen_big(g: &Gen) -> bool {
        match g {
            Gen::Int { min, max } => min.unsigned_abs() > JS_EXACT as u64 || max.unsigned_abs() > JS_EXACT as u64,
            Gen::Choice(items) => items.iter().any(item_big),
            _ => false,
        }
    }
    fn item_big(item: &Item) -> bool {
        item.number && item.text.parse::<i64>().is_ok_and(|n| n.unsigned_abs() > JS_EXACT as u64)
    }
    fn pieces_big(pieces: &[Piece]) -> bool {
        pieces.iter().any(|p| matches!(p, Piece::Hole(g, _) if gen_big(g)))
    }
    fn json_big(j: &JsonExpr) -> bool {
        match j {
            JsonExpr::Literal(text) => text.parse::<i128>().is_ok_and(|n| n.unsigned_abs() > JS_EXACT as u128),
            JsonExpr::Value(g) => gen_big(g),
            JsonExpr::Text(p) => pieces_big(p),
            JsonExpr::Array(items) => items.iter().any(json_big),
            JsonExpr::Object(entries) => entries.iter().any(|(_, v)| json_big(v)),
        }
    }
    script.pools.iter().any(|p| p.seed.iter().any(item_big))
        || script.requests.iter().any(|r| {
            pieces_big(&r.target)
                || r.headers.iter().any(|(_, v)| pieces_big(v))
                || match &r.body {
                    Some(Body::Json(j)) => json_big(j),
                    Some(Body::Text(p)) => pieces_big(p),
                    None => false,
                }
        })
}

fn item(item: &Item) -> String {
    if item.number { item.text.clone() } else { js_str(&item.text) }
}

fn pool_var(script: &Script, pool: usize) -> String {
    format!("pool_{}", script.pools[pool].name)
}

fn drawn(script: &Script, g: &Gen) -> String {
    match g {
        Gen::Int { min, max } => format!("randomIntBetween({min}, {max})"),
        Gen::Choice(items) => {
            let items: Vec<String> = items.iter().map(item).collect();
            format!("randomItem([{}])", items.join(", "))
        }
        Gen::Str(n) => format!("randomString({n})"),
        Gen::Uuid => "uuidv4()".to_string(),
        Gen::Seq => "seq()".to_string(),
        Gen::Now => "new Date().toISOString()".to_string(),
        Gen::UnixTime => "Math.floor(Date.now() / 1000)".to_string(),
        Gen::UnixTimeMs => "Date.now()".to_string(),
        Gen::Pool(p) => pool_var(script, *p),
        Gen::Var(name) => format!("v[{}]", js_str(name)),
        Gen::Data { table, column } => format!("rows[{table}][{}]", js_str(column)),
        Gen::Env(name) => format!("ENV[{}]", js_str(name)),
        Gen::Base64(inner) => {
            let parts: Vec<String> = inner
                .iter()
                .map(|p| match p {
                    Piece::Lit(text) => js_str(text),
                    Piece::Hole(g, _) => drawn(script, g),
                })
                .collect();
            format!("encoding.b64encode([{}].join(\"\"))", parts.join(", "))
        }
    }
}

fn pieces(script: &Script, pieces: &[Piece]) -> String {
    if pieces.is_empty() {
        return "\"\"".to_string();
    }
    let parts: Vec<String> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Piece::Lit(text) => js_str(text),
            Piece::Hole(g, ctx) => {
                let value = drawn(script, g);
                match ctx {
                    Ctx::Url => format!("pct({value})"),
                    Ctx::PathValue => format!("pathValue({value})"),
                    // After a string, `+` makes a string of anything.
                    Ctx::Text if i > 0 || g.numeric() == Some(false) => value,
                    Ctx::Text => format!("String({value})"),
                    Ctx::JsonString => format!("jsonText({value})"),
                    Ctx::JsonValue => format!("JSON.stringify({value})"),
                }
            }
        })
        .collect();
    parts.join(" + ")
}

fn json(script: &Script, j: &JsonExpr) -> String {
    match j {
        JsonExpr::Literal(text) => text.clone(),
        JsonExpr::Value(g) => drawn(script, g),
        JsonExpr::Text(p) => pieces(script, p),
        JsonExpr::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| json(script, i)).collect();
            format!("[{}]", items.join(", "))
        }
        JsonExpr::Object(entries) if entries.is_empty() => "{}".to_string(),
        JsonExpr::Object(entries) => {
            let entries: Vec<String> =
                entries.iter().map(|(k, v)| format!("{}: {}", js_str(k), json(script, v))).collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

/// `res.status === 201`, `(res.status >= 200 && res.status <= 299)`.
fn success_test(ranges: &[(u16, u16)]) -> String {
    if ranges.is_empty() {
        return "false".to_string();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|(lo, hi)| match (lo == hi, ranges.len()) {
            (true, _) => format!("res.status === {lo}"),
            (false, 1) => format!("res.status >= {lo} && res.status <= {hi}"),
            (false, _) => format!("(res.status >= {lo} && res.status <= {hi})"),
        })
        .collect();
    parts.join(" || ")
}

fn expected_statuses(ranges: &[(u16, u16)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|(lo, hi)| if lo == hi { lo.to_string() } else { format!("{{ min: {lo}, max: {hi} }}") })
        .collect();
    format!("http.expectedStatuses({})", parts.join(", "))
}

/// `send_create` for a request; `step_member__login` for a journey's
/// step (`member/login`: names hold no `__` around a journey's `/`).
fn function_name(req: &Req) -> String {
    match req.role {
        Role::Step => format!("step_{}", req.name.replacen('/', "__", 1)),
        _ => format!("send_{}", req.name),
    }
}

fn request(out: &mut String, script: &Script, index: usize, req: &Req) {
    let step = req.role == Role::Step;
    let role = match req.role {
        Role::Weighted(w) => format!("weight {w}"),
        Role::Error => "an error request (sent by error injection only)".to_string(),
        Role::Setup => "a setup request".to_string(),
        Role::Step => "a journey step: it returns how it went".to_string(),
    };
    let _ = writeln!(out, "// {}: {} {}, {role}.", req.name, req.method, super::text::comment_text(&target_text(req)));
    let args = if step { "v, rows" } else { "" };
    let _ = writeln!(out, "function {}({args}) {{", function_name(req));
    if !req.vars.is_empty() {
        let unset: Vec<String> = req.vars.iter().map(|v| format!("v[{}] === undefined", js_str(v))).collect();
        let _ = writeln!(out, "  if ({}) return UNMET; // a variable no step has captured", unset.join(" || "));
    }
    for pool in &req.needs {
        let _ = writeln!(out, "  const {} = poolPick({});", pool_var(script, *pool), js_str(&script.pools[*pool].name));
    }
    if !req.needs.is_empty() {
        let empty: Vec<String> = req.needs.iter().map(|p| format!("{} === undefined", pool_var(script, *p))).collect();
        let names: Vec<&str> = req.needs.iter().map(|p| script.pools[*p].name.as_str()).collect();
        let _ = writeln!(out, "  if ({}) {{", empty.join(" || "));
        match req.fallback {
            _ if step => {
                let _ = writeln!(out, "    return UNMET; // a step has no fallback: {} is empty", names.join(" or "));
            }
            Some(f) => {
                let _ = writeln!(
                    out,
                    "    return {}(); // the fallback, while {} is empty",
                    function_name(&script.requests[f]),
                    names.join(" or ")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "    return; // nothing is sent while {} is empty (no fallback); trafficgen counts these",
                    names.join(" or ")
                );
            }
        }
        out.push_str("  }\n");
    }
    for pool in &req.takes {
        let _ = writeln!(out, "  poolTake({}, {});", js_str(&script.pools[*pool].name), pool_var(script, *pool));
    }
    let mut headers: Vec<String> =
        req.headers.iter().map(|(name, value)| format!("{}: {}", js_str(name), pieces(script, value))).collect();
    let body = match &req.body {
        None => "null".to_string(),
        Some(Body::Json(JsonExpr::Object(entries))) if !entries.is_empty() => {
            out.push_str("  const body = {\n");
            for (key, value) in entries {
                let _ = writeln!(out, "    {}: {},", js_str(key), json(script, value));
            }
            out.push_str("  };\n");
            "JSON.stringify(body)".to_string()
        }
        Some(Body::Json(j)) => format!("JSON.stringify({})", json(script, j)),
        Some(Body::Text(p)) => pieces(script, p),
    };
    if let Some(ct) = &req.content_type {
        headers.push(format!("\"Content-Type\": {}", js_str(ct)));
    }
    let assign = if req.captures.is_empty() && !step { "" } else { "const res = " };
    let _ = writeln!(
        out,
        "  {assign}http.request({}, BASE_URL + {}, {body}, {{",
        js_str(req.method),
        pieces(script, &req.target)
    );
    if !headers.is_empty() {
        let _ = writeln!(out, "    headers: {{ {} }},", headers.join(", "));
    }
    let _ = writeln!(out, "    tags: {{ name: {} }},", js_str(&req.name));
    out.push_str("    redirects: 0,\n");
    if req.success != [(200, 299)] {
        let _ = writeln!(out, "    responseCallback: {},", expected_statuses(&req.success));
    }
    out.push_str("  });\n");
    if step {
        let _ = writeln!(out, "  const success = {};", success_test(&req.success));
    }
    if !req.captures.is_empty() {
        let test = if step { "success".to_string() } else { success_test(&req.success) };
        let _ = writeln!(out, "  if ({test}) {{");
        // The regexes are numbered in the order of the script's captures.
        let mut regexes_before =
            script.requests[..index].iter().flat_map(|r| &r.captures).filter(|c| c.regex.is_some()).count();
        for cap in &req.captures {
            let mut value = match &cap.source {
                CapSource::Json(tokens) => {
                    let tokens: Vec<String> = tokens.iter().map(|t| js_str(t)).collect();
                    format!("jsonAt(res, [{}])", tokens.join(", "))
                }
                CapSource::Header(name) => format!("headerOf(res, {})", js_str(name)),
                CapSource::Body => "bodyOf(res)".to_string(),
            };
            if cap.regex.is_some() {
                regexes_before += 1;
                value = format!("group({value}, RE_{regexes_before})");
            }
            let rules = if cap.path {
                format!("{}, {}, true", cap.max_len, cap.url_safe)
            } else {
                format!("{}, {}", cap.max_len, cap.url_safe)
            };
            match &cap.store {
                Store::Pool(p) => {
                    let _ = writeln!(out, "    capture({}, {value}, {rules});", js_str(&script.pools[*p].name));
                }
                Store::Var(var) => {
                    let _ = writeln!(out, "    setVar(v, {}, {value}, {rules});", js_str(var));
                }
            }
        }
        out.push_str("  }\n");
    }
    if step {
        out.push_str("  return stepResult(res, success);\n");
    }
    out.push_str("}\n\n");
}

/// The path and query as the workload writes them, for a comment.
fn target_text(req: &Req) -> String {
    req.target
        .iter()
        .map(|p| match p {
            Piece::Lit(text) => text.clone(),
            Piece::Hole(Gen::Pool(_), _) => "{pool}".to_string(),
            Piece::Hole(Gen::Var(name), _) => format!("{{{name}}}"),
            Piece::Hole(..) => "{…}".to_string(),
        })
        .collect()
}

fn mix_and_entry(out: &mut String, script: &Script, spec: &Spec) {
    if script.journeys.is_empty() {
        c(out, "The mix: each iteration draws one request in proportion to these weights.");
    } else {
        c(
            out,
            "The mix: each iteration is one arrival, drawn in proportion to these weights: a request, or an instance of a journey.",
        );
    }
    out.push_str("const MIX = [\n");
    for (entry, weight) in &script.mix {
        let name = match entry {
            Entry::Request(i) => function_name(&script.requests[*i]),
            Entry::Journey(j) => journeys::journey_name(&script.journeys[*j].name),
        };
        let _ = writeln!(out, "  [{weight}, {name}],");
    }
    out.push_str("];\n");
    let _ = writeln!(out, "const MIX_TOTAL = {};\n", script.total_weight());
    out.push_str(
        "function draw() {
  let roll = Math.random() * MIX_TOTAL;
  for (const [weight, send] of MIX) {
    if (roll < weight) return send;
    roll -= weight;
  }
  return MIX[MIX.length - 1][1];
}

",
    );
    // Users mode: each iteration is followed by the user's pause.
    let then_pause = match spec.users {
        Some(users) => {
            let _ = writeln!(
                out,
                "const USER_PAUSE = [{}, {}]; // seconds, uniform\n",
                super::text::num(users.min_pause_secs),
                super::text::num(users.max_pause_secs)
            );
            "  sleep(USER_PAUSE[0] + Math.random() * (USER_PAUSE[1] - USER_PAUSE[0]));\n"
        }
        None => "",
    };
    if script.setup.is_empty() {
        let _ = write!(out, "export default function () {{\n  draw()();\n{then_pause}}}\n");
        return;
    }
    c(
        out,
        "Setup requests: trafficgen sends them before the traffic starts. Here setup() sends them once, and what they capture reaches every VU through setup()'s data.",
    );
    out.push_str("function runSetup() {\n");
    for i in &script.setup {
        let _ = writeln!(out, "  {}();", function_name(&script.requests[*i]));
    }
    out.push_str("}\n\nexport function setup() {\n  runSetup();\n");
    let filled: Vec<usize> = (0..script.pools.len())
        .filter(|p| script.setup.iter().any(|s| script.requests[*s].captures.iter().any(|c| c.pool() == Some(*p))))
        .collect();
    let pools: Vec<String> = filled
        .iter()
        .map(|p| {
            let name = js_str(&script.pools[*p].name);
            format!("{name}: POOLS[{name}].values.slice()")
        })
        .collect();
    let _ = writeln!(out, "  return {{ pools: {{ {} }} }};\n}}\n", pools.join(", "));
    if let Some(every) = script.setup_every {
        c(
            out,
            &format!(
                "trafficgen sends the setup requests again every {every} s. A k6 setup() runs once, so each VU sends them again on its own every {every} s (with many VUs, that is more of them than trafficgen's one round)."
            ),
        );
        let _ = writeln!(out, "const SETUP_EVERY_MS = {};", every * 1000);
    }
    out.push_str("let adopted = false;\n");
    if script.setup_every.is_some() {
        out.push_str("let setupDue = 0;\n");
    }
    out.push_str(
        "
export default function (data) {
  if (!adopted) {
    adopted = true;
    for (const [name, values] of Object.entries(data.pools)) {
      for (const value of values) poolPut(name, value);
    }
",
    );
    if script.setup_every.is_some() {
        out.push_str(
            "    setupDue = Date.now() + SETUP_EVERY_MS;
  }
  if (Date.now() >= setupDue) {
    setupDue = Date.now() + SETUP_EVERY_MS;
    runSetup();
  }
",
        );
    } else {
        out.push_str("  }\n");
    }
    let _ = write!(out, "  draw()();\n{then_pause}}}\n");
}
