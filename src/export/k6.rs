//! The k6 script: an arrival-rate scenario (`constant-arrival-rate`, or
//! `ramping-arrival-rate` over the stages), one request per iteration
//! drawn by weight, jslib's random functions for templates, module-level
//! pools, `setup()` for the setup requests, and the SLOs as `thresholds`.

use std::fmt::Write as _;

use super::script::{Body, CapSource, Ctx, Gen, JsonExpr, Piece, Req, Script};
use super::text::{comment, go_duration, js_str, num};
use super::{Spec, expected_rps};
use crate::observe::slo::{Metric, Percentile};
use crate::workload::Role;
use crate::workload::template::Item;

/// jslib's utilities, pinned: k6 loads them when the script starts.
const JSLIB: &str = "https://jslib.k6.io/k6-utils/1.4.0/index.js";
/// The largest integer a JavaScript number holds exactly.
const JS_EXACT: i64 = 1 << 53;

/// The script, or `None` once it passes `spec.max_bytes` (checked after
/// each part, so no more than one request's part is written past it).
pub fn write(script: &Script, spec: &Spec, notes: &[String]) -> Option<String> {
    let mut out = String::new();
    let within = |out: &String| (out.len() <= spec.max_bytes).then_some(());
    header(&mut out, script, spec, notes);
    options(&mut out, script, spec);
    helpers(&mut out, script);
    within(&out)?;
    for (i, req) in script.requests.iter().enumerate() {
        request(&mut out, script, i, req);
        within(&out)?;
    }
    mix_and_entry(&mut out, script);
    Some(out)
}

fn c(out: &mut String, text: &str) {
    comment(out, "", "// ", text);
}

fn header(out: &mut String, script: &Script, spec: &Spec, notes: &[String]) {
    c(out, &format!("k6 script made by `trafficgen export --format k6` from {}.", spec.source));
    c(out, &format!("Traffic: {}.", spec.traffic.describe()));
    out.push_str("//\n//   k6 run -e TARGET_URL=http://127.0.0.1:8080 script.k6.js\n//\n");
    c(
        out,
        "Each iteration sends one request, drawn by weight as trafficgen draws it, and iterations start at an arrival rate (an open model: a slow target gets more requests in flight, not fewer). At most maxVUs (trafficgen's MAX_IN_FLIGHT) are in flight; k6 counts iterations it could not start as dropped_iterations, as trafficgen counts dropped requests. Redirects are not followed.",
    );
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
    let holes = script.holes();
    let uses = |f: &dyn Fn(&Gen) -> bool| holes.iter().any(|(g, _)| f(g));
    out.push_str("import http from \"k6/http\";\n");
    if uses(&|g| matches!(g, Gen::Seq)) {
        out.push_str("import exec from \"k6/execution\";\n");
    }
    let jslib: Vec<&str> = [
        ("randomIntBetween", uses(&|g| matches!(g, Gen::Int { .. }))),
        ("randomItem", uses(&|g| matches!(g, Gen::Choice(_)))),
        ("randomString", uses(&|g| matches!(g, Gen::Str(_)))),
        ("uuidv4", uses(&|g| matches!(g, Gen::Uuid))),
    ]
    .into_iter()
    .filter_map(|(name, used)| used.then_some(name))
    .collect();
    if !jslib.is_empty() {
        let _ = writeln!(out, "import {{ {} }} from {};", jslib.join(", "), js_str(JSLIB));
    }
    out.push('\n');
    out.push_str("const BASE_URL = (__ENV.TARGET_URL || ");
    out.push_str(&js_str(&spec.target_url));
    out.push_str(").replace(/\\/+$/, \"\");\n");
    let _ = writeln!(out, "const MAX_VUS = {};", spec.max_in_flight.max(1));
    if uses(&|g| matches!(g, Gen::Str(_))) {
        out.push_str("const ALNUM = \"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\";\n");
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

/// Iterations per `timeUnit` must be whole numbers: the smallest unit of
/// 1, 10, 100 or 1000 seconds that makes every rate one.
fn time_unit(rates: &[f64]) -> u64 {
    for unit in [1u64, 10, 100, 1000] {
        if rates.iter().all(|r| {
            let scaled = r * unit as f64;
            (scaled - scaled.round()).abs() < 1e-6
        }) {
            return unit;
        }
    }
    1000
}

fn options(out: &mut String, script: &Script, spec: &Spec) {
    let traffic = &spec.traffic;
    let max_vus = spec.max_in_flight.max(1);
    // Enough VUs for answers of about 100 ms at the peak; k6 adds more up to maxVUs.
    let pre_allocated = ((traffic.peak_rps() / 10.0).ceil() as usize).clamp(1, max_vus);
    out.push_str("export const options = {\n  scenarios: {\n    traffic: {\n");
    let mut rates: Vec<f64> = traffic.stages.iter().flat_map(|s| [s.from_rps, s.to_rps]).collect();
    rates.push(0.0);
    let unit = time_unit(&rates);
    let per_unit = |r: f64| (r * unit as f64).round() as u64;
    if unit > 1 {
        let _ = writeln!(
            out,
            "      // Rates are whole numbers of iterations per timeUnit: {unit} s here, for rates with fractions."
        );
    }
    match traffic.constant_rps() {
        Some(rps) => {
            out.push_str("      executor: \"constant-arrival-rate\",\n");
            let _ = writeln!(out, "      rate: {},", per_unit(rps));
            let _ = writeln!(out, "      timeUnit: \"{unit}s\",");
            let _ = writeln!(out, "      duration: {},", js_str(&go_duration(traffic.duration_secs)));
        }
        None => {
            out.push_str("      executor: \"ramping-arrival-rate\",\n");
            let start = traffic.stages.first().map_or(0.0, |s| s.from_rps);
            let _ = writeln!(out, "      startRate: {},", per_unit(start));
            let _ = writeln!(out, "      timeUnit: \"{unit}s\",");
            out.push_str("      stages: [\n");
            let mut current = start;
            for stage in &traffic.stages {
                if stage.from_rps != current {
                    let _ = writeln!(out, "        {{ duration: \"0s\", target: {} }},", per_unit(stage.from_rps));
                }
                let _ = writeln!(
                    out,
                    "        {{ duration: {}, target: {} }},",
                    js_str(&go_duration(stage.secs)),
                    per_unit(stage.to_rps)
                );
                current = stage.to_rps;
            }
            out.push_str("      ],\n");
        }
    }
    let _ = writeln!(out, "      preAllocatedVUs: {pre_allocated},");
    out.push_str("      maxVUs: MAX_VUS,\n    },\n  },\n");
    thresholds(out, script, spec);
    out.push_str("};\n\n");
}

fn thresholds(out: &mut String, script: &Script, spec: &Spec) {
    if spec.slos.is_empty() {
        return;
    }
    // One key per metric and name, in the order the SLOs name them.
    let mut keys: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for slo in &spec.slos {
        let (metric, expression) = match slo.metric {
            Metric::Latency(p) => {
                let stat = match p {
                    Percentile::P50 => "p(50)".to_string(),
                    Percentile::P90 => "p(90)".to_string(),
                    Percentile::P95 => "p(95)".to_string(),
                    Percentile::P99 => "p(99)".to_string(),
                    Percentile::Max => "max".to_string(),
                };
                ("http_req_duration", format!("{stat}{}{}", slo.op.as_str(), num(slo.threshold_ms())))
            }
            Metric::ErrorRate => ("http_req_failed", format!("rate{}{}", slo.op.as_str(), num(slo.threshold))),
            Metric::Rps => match expected_rps(script, spec, slo.scope.as_deref()) {
                Some(expected) => (
                    "http_reqs",
                    format!("rate{}{}", slo.op.as_str(), num((slo.threshold * expected * 1000.0).round() / 1000.0)),
                ),
                None => {
                    left_out.push(format!(
                        "{slo}: `{}` is never drawn by weight, so it has no target rate to compare with; left out.",
                        slo.scope.as_deref().unwrap_or_default()
                    ));
                    continue;
                }
            },
        };
        let key = match &slo.scope {
            Some(name) => format!("{metric}{{name:{name}}}"),
            None => metric.to_string(),
        };
        match keys.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, expressions, clauses)) => {
                expressions.push(expression);
                clauses.push(slo.to_string());
            }
            None => keys.push((key, vec![expression], vec![slo.to_string()])),
        }
    }
    out.push_str("  // The SLOs. rps is a share of the mean target rate of the whole run (requests due / duration).\n");
    out.push_str("  thresholds: {\n");
    for (key, expressions, clauses) in &keys {
        let list: Vec<String> = expressions.iter().map(|e| js_str(e)).collect();
        let _ = writeln!(out, "    {}: [{}], // {}", js_str(key), list.join(", "), clauses.join(", "));
    }
    for note in &left_out {
        comment(out, "    ", "// ", note);
    }
    out.push_str("  },\n");
}

fn helpers(out: &mut String, script: &Script) {
    if !script.pools.is_empty() {
        c(
            out,
            "Pools. k6 runs every virtual user (VU) in its own JavaScript runtime, so a module-level array cannot be shared across VUs as trafficgen shares a pool: each VU keeps its own bounded pool (the newest `size` values), filled by its own captures and by the setup requests' captures (handed over by setup()). While a VU's pool is empty it sends the fallback, as trafficgen does while its shared pool is empty.",
        );
        out.push_str("const POOLS = {\n");
        for pool in &script.pools {
            let values: Vec<String> = pool.seed.iter().map(item).collect();
            let _ = writeln!(
                out,
                "  {}: {{ size: {}, values: [{}], next: {} }},",
                js_str(&pool.name),
                pool.size,
                values.join(", "),
                pool.seed.len() % pool.size.max(1)
            );
        }
        out.push_str("};\n\n");
        out.push_str(
            "function poolPut(name, value) {
  const pool = POOLS[name];
  pool.values[pool.next] = value;
  pool.next = (pool.next + 1) % pool.size;
}

function poolPick(name) {
  const values = POOLS[name].values;
  return values.length === 0 ? undefined : values[Math.floor(Math.random() * values.length)];
}

",
        );
        c(
            out,
            "A captured value is kept as trafficgen keeps it: a string or a number, not empty, at most maxLen bytes, not \".\" or \"..\", no control characters, and only letters, digits and -._~ when urlSafe.",
        );
        out.push_str(
            "function capture(name, value, maxLen, urlSafe) {
  if (typeof value !== \"string\" && typeof value !== \"number\") return;
  const text = String(value);
  if (text === \"\" || text === \".\" || text === \"..\") return;
  if (utf8Length(text) > maxLen) return;
  if (urlSafe && !/^[A-Za-z0-9._~-]+$/.test(text)) return;
  if (/[\\u0000-\\u001f\\u007f-\\u009f]/.test(text)) return;
  poolPut(name, value);
}

function utf8Length(text) {
  let bytes = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0);
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}

// The value at a JSON pointer's tokens in the answer, or undefined.
function jsonAt(res, tokens) {
  let node;
  try {
    node = res.json();
  } catch (e) {
    return undefined;
  }
  for (const token of tokens) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      node = node[Number(token)];
    } else if (node !== null && typeof node === \"object\" && Object.prototype.hasOwnProperty.call(node, token)) {
      node = node[token];
    } else {
      return undefined;
    }
  }
  return node;
}

// An answer header by its lower-case name, trimmed, or undefined.
function headerOf(res, name) {
  const key = Object.keys(res.headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : String(res.headers[key]).trim();
}

",
        );
    }
    let holes = script.holes();
    if holes.iter().any(|(_, ctx)| *ctx == Ctx::Url) {
        out.push_str(
            "// Percent-encodes all but letters, digits and -._~, as trafficgen writes values in paths and queries.
function pct(value) {
  return encodeURIComponent(String(value)).replace(/[!'()*]/g, (ch) => \"%\" + ch.charCodeAt(0).toString(16).toUpperCase());
}

",
        );
    }
    if holes.iter().any(|(_, ctx)| *ctx == Ctx::JsonString) {
        out.push_str(
            "// A value inside a JSON string: escaped, without the quotes.
function jsonText(value) {
  const quoted = JSON.stringify(String(value));
  return quoted.slice(1, quoted.length - 1);
}

",
        );
    }
    if holes.iter().any(|(g, _)| matches!(g, Gen::Seq)) {
        c(
            out,
            "seq(): trafficgen counts 1, 2, 3… across the whole workload; k6 VUs share no counter, so each VU counts on its own, interleaved with the others (VU n gives n, n + MAX_VUS, n + 2·MAX_VUS…): unique, not consecutive.",
        );
        out.push_str(
            "let seqCount = 0;
function seq() {
  seqCount += 1;
  return (seqCount - 1) * MAX_VUS + exec.vu.idInTest;
}

",
        );
    }
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
        Gen::Str(n) => format!("randomString({n}, ALNUM)"),
        Gen::Uuid => "uuidv4()".to_string(),
        Gen::Seq => "seq()".to_string(),
        Gen::Now => "new Date().toISOString()".to_string(),
        Gen::UnixTime => "Math.floor(Date.now() / 1000)".to_string(),
        Gen::UnixTimeMs => "Date.now()".to_string(),
        Gen::Pool(p) => pool_var(script, *p),
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

fn function_name(req: &Req) -> String {
    format!("send_{}", req.name)
}

fn request(out: &mut String, script: &Script, _index: usize, req: &Req) {
    let role = match req.role {
        Role::Weighted(w) => format!("weight {w}"),
        Role::Error => "an error request (sent by error injection only)".to_string(),
        Role::Setup => "a setup request".to_string(),
        Role::Step => "a journey step".to_string(),
    };
    let _ = writeln!(out, "// {}: {} {}, {role}.", req.name, req.method, super::text::comment_text(&target_text(req)));
    let _ = writeln!(out, "function {}() {{", function_name(req));
    for pool in &req.needs {
        let _ = writeln!(out, "  const {} = poolPick({});", pool_var(script, *pool), js_str(&script.pools[*pool].name));
    }
    if !req.needs.is_empty() {
        let empty: Vec<String> = req.needs.iter().map(|p| format!("{} === undefined", pool_var(script, *p))).collect();
        let names: Vec<&str> = req.needs.iter().map(|p| script.pools[*p].name.as_str()).collect();
        let _ = writeln!(out, "  if ({}) {{", empty.join(" || "));
        match req.fallback {
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
    let assign = if req.captures.is_empty() { "" } else { "const res = " };
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
    if !req.captures.is_empty() {
        let _ = writeln!(out, "  if ({}) {{", success_test(&req.success));
        for cap in &req.captures {
            let value = match &cap.source {
                CapSource::Json(tokens) => {
                    let tokens: Vec<String> = tokens.iter().map(|t| js_str(t)).collect();
                    format!("jsonAt(res, [{}])", tokens.join(", "))
                }
                CapSource::Header(name) => format!("headerOf(res, {})", js_str(name)),
            };
            let _ = writeln!(
                out,
                "    capture({}, {value}, {}, {});",
                js_str(&script.pools[cap.pool].name),
                cap.max_len,
                cap.url_safe
            );
        }
        out.push_str("  }\n");
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
            Piece::Hole(..) => "{…}".to_string(),
        })
        .collect()
}

fn mix_and_entry(out: &mut String, script: &Script) {
    c(out, "The mix: each iteration draws one request in proportion to these weights.");
    out.push_str("const MIX = [\n");
    for (i, weight) in &script.mix {
        let _ = writeln!(out, "  [{weight}, {}],", function_name(&script.requests[*i]));
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
    if script.setup.is_empty() {
        out.push_str("export default function () {\n  draw()();\n}\n");
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
        .filter(|p| script.setup.iter().any(|s| script.requests[*s].captures.iter().any(|c| c.pool == *p)))
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
    out.push_str("  draw()();\n}\n");
}
