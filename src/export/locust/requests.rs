//! Requests and journeys as methods of the Locust user: a request sends
//! one request (or its fallback); a journey step returns how it went; a
//! journey sends its steps in order with gevent sleeps for its pauses,
//! its variables in a local dict and one row of each table it reads.

use std::fmt::Write as _;

use super::super::journeys::{Pause, Step};
use super::super::script::{Body, CapSource, Ctx, Gen, JsonExpr, Piece, Req, Script, Store};
use super::super::text::{num, py_str};
use super::c;
use crate::workload::Role;
use crate::workload::model::DataOrder;
use crate::workload::template::Item;

pub fn item(item: &Item) -> String {
    if item.number { item.text.clone() } else { py_str(&item.text) }
}

fn pool_var(script: &Script, pool: usize) -> String {
    format!("pool_{}", script.pools[pool].name)
}

/// `send_create` for a request; `step_member__login` for a journey's
/// step (`member/login`).
pub fn method_name(req: &Req) -> String {
    match req.role {
        Role::Step => format!("step_{}", req.name.replacen('/', "__", 1)),
        _ => format!("send_{}", req.name),
    }
}

pub fn journey_name(name: &str) -> String {
    format!("journey_{name}")
}

fn drawn(script: &Script, g: &Gen) -> String {
    match g {
        Gen::Int { min, max } => format!("random.randint({min}, {max})"),
        Gen::Choice(items) => {
            let items: Vec<String> = items.iter().map(item).collect();
            format!("random.choice([{}])", items.join(", "))
        }
        Gen::Str(n) => format!("random_string({n})"),
        Gen::Uuid => "str(uuid.uuid4())".to_string(),
        Gen::Seq => "seq()".to_string(),
        Gen::Now => "now()".to_string(),
        Gen::UnixTime => "int(time.time())".to_string(),
        Gen::UnixTimeMs => "int(time.time() * 1000)".to_string(),
        Gen::Pool(p) => pool_var(script, *p),
        Gen::Var(name) => format!("v[{}]", py_str(name)),
        Gen::Data { table, column } => format!("rows[{table}][{}]", py_str(column)),
        Gen::Env(name) => format!("ENV[{}]", py_str(name)),
        Gen::Base64(inner) => {
            let parts: Vec<String> = inner
                .iter()
                .map(|p| match p {
                    Piece::Lit(text) => py_str(text),
                    Piece::Hole(g, _) if g.numeric() == Some(false) => drawn(script, g),
                    Piece::Hole(g, _) => format!("str({})", drawn(script, g)),
                })
                .collect();
            format!("base64.b64encode(({}).encode()).decode()", parts.join(" + "))
        }
    }
}

fn pieces(script: &Script, pieces: &[Piece]) -> String {
    if pieces.is_empty() {
        return "\"\"".to_string();
    }
    let parts: Vec<String> = pieces
        .iter()
        .map(|p| match p {
            Piece::Lit(text) => py_str(text),
            Piece::Hole(g, ctx) => {
                let value = drawn(script, g);
                match ctx {
                    Ctx::Url => format!("pct({value})"),
                    Ctx::PathValue => format!("path_value({value})"),
                    Ctx::Text if g.numeric() == Some(false) => value,
                    Ctx::Text => format!("str({value})"),
                    Ctx::JsonString => format!("json_text({value})"),
                    Ctx::JsonValue => format!("json_value({value})"),
                }
            }
        })
        .collect();
    parts.join(" + ")
}

fn json(script: &Script, j: &JsonExpr) -> String {
    match j {
        JsonExpr::Literal(text) => match text.as_str() {
            "null" => "None".to_string(),
            "true" => "True".to_string(),
            "false" => "False".to_string(),
            // JSON's number syntax is a subset of Python's.
            number => number.to_string(),
        },
        JsonExpr::Value(g) => drawn(script, g),
        JsonExpr::Text(p) => pieces(script, p),
        JsonExpr::Array(items) => {
            let items: Vec<String> = items.iter().map(|i| json(script, i)).collect();
            format!("[{}]", items.join(", "))
        }
        JsonExpr::Object(entries) => {
            let entries: Vec<String> =
                entries.iter().map(|(k, v)| format!("{}: {}", py_str(k), json(script, v))).collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

/// `res.status_code == 201`, `200 <= res.status_code <= 299`.
fn success_test(ranges: &[(u16, u16)]) -> String {
    if ranges.is_empty() {
        return "False".to_string();
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(
            |(lo, hi)| {
                if lo == hi { format!("res.status_code == {lo}") } else { format!("{lo} <= res.status_code <= {hi}") }
            },
        )
        .collect();
    parts.join(" or ")
}

pub fn request(out: &mut String, script: &Script, req: &Req) {
    let step = req.role == Role::Step;
    let role = match req.role {
        Role::Weighted(w) => format!("weight {w}"),
        Role::Error => "an error request (sent by error injection only)".to_string(),
        Role::Setup => "a setup request".to_string(),
        Role::Step => "a journey step: it returns how it went".to_string(),
    };
    let args = if step { "self, v, rows" } else { "self" };
    let _ = writeln!(out, "\n    def {}({args}):", method_name(req));
    c(out, "        ", &format!("{}: {}.", req.name, role));
    if !req.vars.is_empty() {
        let unset: Vec<String> = req.vars.iter().map(|v| format!("{} not in v", py_str(v))).collect();
        let _ = writeln!(
            out,
            "        if {}:\n            return UNMET  # a variable no step has captured",
            unset.join(" or ")
        );
    }
    for pool in &req.needs {
        let _ = writeln!(
            out,
            "        {} = pick(self.pools[{}])",
            pool_var(script, *pool),
            py_str(&script.pools[*pool].name)
        );
    }
    if !req.needs.is_empty() {
        let empty: Vec<String> = req.needs.iter().map(|p| format!("{} is None", pool_var(script, *p))).collect();
        let names: Vec<&str> = req.needs.iter().map(|p| script.pools[*p].name.as_str()).collect();
        let _ = writeln!(out, "        if {}:", empty.join(" or "));
        match req.fallback {
            _ if step => {
                let _ = writeln!(
                    out,
                    "            return UNMET  # a step has no fallback: {} is empty",
                    names.join(" or ")
                );
            }
            Some(f) => {
                let _ = writeln!(
                    out,
                    "            return self.{}()  # the fallback, while {} is empty",
                    method_name(&script.requests[f]),
                    names.join(" or ")
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "            return  # nothing is sent while {} is empty (no fallback); trafficgen counts these",
                    names.join(" or ")
                );
            }
        }
    }
    for pool in &req.takes {
        let _ = writeln!(
            out,
            "        take(self.pools[{}], {})",
            py_str(&script.pools[*pool].name),
            pool_var(script, *pool)
        );
    }
    let mut headers: Vec<String> =
        req.headers.iter().map(|(name, value)| format!("{}: {}", py_str(name), pieces(script, value))).collect();
    if let Some(ct) = &req.content_type {
        headers.push(format!("\"Content-Type\": {}", py_str(ct)));
    }
    let mut args = vec![py_str(req.method), pieces(script, &req.target), format!("name={}", py_str(&req.name))];
    if !headers.is_empty() {
        args.push(format!("headers={{{}}}", headers.join(", ")));
    }
    match &req.body {
        None => {}
        Some(Body::Json(j)) => args.push(format!("data=compact({})", json(script, j))),
        Some(Body::Text(p)) => args.push(format!("data=({}).encode()", pieces(script, p))),
    }
    args.push("allow_redirects=False".to_string());
    args.push("catch_response=True".to_string());
    let _ = writeln!(
        out,
        "        with self.client.request(\n            {},\n        ) as res:",
        args.join(",\n            ")
    );
    let _ = writeln!(out, "            success = {}", success_test(&req.success));
    out.push_str("            if success:\n                res.success()\n");
    let first_regex = {
        let index = script.requests.iter().position(|r| std::ptr::eq(r, req)).unwrap_or(0);
        script.requests[..index].iter().flat_map(|r| &r.captures).filter(|c| c.regex.is_some()).count()
    };
    let mut regexes = first_regex;
    for cap in &req.captures {
        let mut value = match &cap.source {
            CapSource::Json(tokens) => {
                let tokens: Vec<String> = tokens.iter().map(|t| py_str(t)).collect();
                let trailing = if tokens.len() == 1 { "," } else { "" };
                format!("json_at(res, ({}{trailing}))", tokens.join(", "))
            }
            CapSource::Header(name) => format!("header_of(res, {})", py_str(name)),
            CapSource::Body => "body_of(res)".to_string(),
        };
        if cap.regex.is_some() {
            regexes += 1;
            value = format!("group({value}, RE_{regexes})");
        }
        let rules = format!(
            "{}, {}{}",
            cap.max_len,
            if cap.url_safe { "True" } else { "False" },
            if cap.path { ", True" } else { "" }
        );
        match &cap.store {
            Store::Pool(p) => {
                let _ = writeln!(
                    out,
                    "                capture(self.pools[{}], {value}, {rules})",
                    py_str(&script.pools[*p].name)
                );
            }
            Store::Var(var) => {
                let _ = writeln!(out, "                set_var(v, {}, {value}, {rules})", py_str(var));
            }
        }
    }
    out.push_str("            else:\n                res.failure(\"status %d\" % res.status_code)\n");
    if step {
        out.push_str("        return step_result(res, success)\n");
    }
}

/// One journey as a method: its steps in order, with its pauses.
pub fn journey(out: &mut String, script: &Script, index: usize) {
    let journey = &script.journeys[index];
    let name = py_str(&journey.name);
    let _ = writeln!(out, "\n    def {}(self):", journey_name(&journey.name));
    c(out, "        ", &format!("Journey {}: weight {}.", journey.name, journey.weight));
    out.push_str("        rows = {}\n");
    for t in &journey.tables {
        let _ = writeln!(out, "        rows[{t}] = row_of({t}, {})", py_str(script.tables[*t].order.as_str()));
        if script.tables[*t].order == DataOrder::Unique {
            let _ = writeln!(
                out,
                "        if rows[{t}] is None:\n            return journey_over({name}, \"not started: no_data\")"
            );
        }
    }
    out.push_str("        v = {}\n");
    for step in &journey.steps {
        match step {
            Step::Send { req, go_on } => {
                let _ = writeln!(
                    out,
                    "        if ends({name}, self.{}(v, rows), {}):\n            return",
                    method_name(&script.requests[*req]),
                    if *go_on { "True" } else { "False" }
                );
            }
            Step::Pause(p) => {
                let _ = writeln!(out, "        gevent.sleep({})", pause_expr(*p));
            }
        }
    }
    let _ = writeln!(out, "        journey_over({name}, \"completed\")");
}

fn pause_expr(p: Pause) -> String {
    match p {
        Pause::Fixed(secs) => num(secs),
        Pause::Uniform(min, max) => format!("random.uniform({}, {})", num(min), num(max)),
        Pause::Exponential(mean) => format!("pause_exponential({})", num(mean)),
    }
}
