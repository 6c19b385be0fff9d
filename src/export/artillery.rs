//! The Artillery script (YAML): `phases` with `arrivalRate`/`rampTo` over
//! the stages, one weighted scenario per request and per journey (a
//! journey's `flow` is its steps with `think` for its pauses), templates
//! as Artillery's `$randomNumber`/`$randomString`/`$uuid`/`$env` and
//! variable lists, captures into variables, data tables as `payload`, the
//! setup requests in `before`, and the SLOs as `ensure` conditions.
//!
//! Artillery's virtual users share nothing and each runs one scenario, so
//! a request that reads a pool filled by another request's capture gets a
//! scenario that sends that request first and captures from its answer
//! (as trafficgen does while the pool is empty).
//!
//! Artillery has no closed model: users mode is written as the nearest it
//! allows (see [`config::UserPlan`]), and the script's header says how it
//! differs.

mod config;
mod flows;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use super::Spec;
use super::script::{Body, CapSource, Ctx, Gen, JsonExpr, Piece, Script, Store};
use super::text::{comment, js_regex, num, yaml_str};
use crate::workload::template::Item;

use super::journeys::Pause;
use flows::FlowStep;
pub use flows::cannot;

/// Most values a `random_int` may have to become a variable list (a typed
/// number, drawn per virtual user) rather than `$randomNumber` (a string).
const MAX_LIST: i128 = 1000;
/// Deepest chain of requests filling each other's pools.
const MAX_CHAIN: usize = 8;

/// The script, or `None` once it passes `spec.max_bytes`: the variable
/// lists and notes count as they are made, the scenarios after each step,
/// so no more than one step is made past the bound.
pub fn write(script: &Script, spec: &Spec, notes: &[String]) -> Option<String> {
    let mut w = Writer {
        script,
        vars: Vec::new(),
        var_names: HashMap::new(),
        notes: Vec::new(),
        noted: HashSet::new(),
        made: 0,
        max_bytes: spec.max_bytes,
    };
    let flows = w.flows();
    // Users mode: each scenario loops, with the users' pause after each
    // iteration, for about as long as a user lives (see `config::UserPlan`).
    let plan = spec.users.map(|users| config::UserPlan::of(spec, users, &flows));
    let mut scenarios = String::new();
    for (f, flow) in flows.iter().enumerate() {
        let (weight, indent) = match &plan {
            Some(plan) => (plan.weights[f], "          "),
            None => (flow.weight, "      "),
        };
        let _ = writeln!(scenarios, "  - name: {}\n    weight: {weight}\n    flow:", yaml_str(&flow.name));
        if plan.is_some() {
            scenarios.push_str("      - loop:\n");
        }
        for step in &flow.steps {
            match step {
                FlowStep::Send(i) => w.step(&mut scenarios, indent, *i),
                FlowStep::Think(pause) => w.think(&mut scenarios, indent, *pause),
            }
            w.within(scenarios.len())?;
        }
        if let (Some(plan), Some(users)) = (&plan, spec.users) {
            let pause = if users.min_pause_secs == users.max_pause_secs {
                Pause::Fixed(users.min_pause_secs)
            } else {
                Pause::Uniform(users.min_pause_secs, users.max_pause_secs)
            };
            let _ = writeln!(scenarios, "{indent}# The users' pause after each arrival.");
            w.think(&mut scenarios, indent, pause);
            let _ = writeln!(scenarios, "        count: {}", plan.loops[f]);
        }
    }
    let mut before = String::new();
    if !script.setup.is_empty() {
        before.push_str("before:\n  flow:\n");
        for i in &script.setup {
            w.step(&mut before, "    ", *i);
            w.within(scenarios.len() + before.len())?;
        }
        if let Some(every) = script.setup_every {
            w.note(format!(
                "trafficgen sends the setup requests again every {every} s; Artillery runs `before` once, so what they capture (a login token) is not renewed during the run."
            ));
        }
    }
    let payload = w.payload();
    // Requests trafficgen sends per arrival of these scenarios, and those
    // Artillery sends: scenarios that fill a pool first send more.
    let ours: f64 = flows.iter().map(|f| f.weight as f64 * f.ours).sum();
    let sent: u64 = flows.iter().map(|f| f.weight * f.sends() as u64).sum();
    let scale = if sent == 0 { 1.0 } else { ours / sent as f64 };
    let ensure = w.ensure(spec, &flows, sent);

    let mut out = String::new();
    comment(
        &mut out,
        "",
        "# ",
        &format!("Artillery script made by `trafficgen export --format artillery` from {}.", spec.source),
    );
    let traffic = if spec.users.is_some() { spec.traffic.describe_users() } else { spec.traffic.describe() };
    comment(&mut out, "", "# ", &format!("Traffic: {traffic}."));
    out.push_str("#\n#   artillery run --target http://127.0.0.1:8080 script.artillery.yml\n#\n");
    if let Some(plan) = &plan {
        for paragraph in plan.explain() {
            comment(&mut out, "", "# ", &paragraph);
            out.push_str("#\n");
        }
    }
    comment(
        &mut out,
        "",
        "# ",
        if plan.is_some() {
            "Scenarios: a request, or a journey (its steps in order, with `think` for its pauses and its variables as the virtual user's). Artillery's virtual users share nothing, so a pool cannot be shared across them as trafficgen shares it: a request that reads a pool filled by another request's capture has a scenario that sends that request first and captures its value into a variable (as trafficgen sends the fallback while the pool is empty); pools seeded with values are variable lists, pools filled by setup requests come from `before`. Redirects are not followed. Artillery times an answer to its first byte; trafficgen to its last."
        } else {
            "Each arrival is a new virtual user that runs one scenario, picked by weight: a request, or a journey (its steps in order, with `think` for its pauses and its variables as the virtual user's). Artillery's virtual users share nothing, so a pool cannot be shared across them as trafficgen shares it: a request that reads a pool filled by another request's capture has a scenario that sends that request first and captures its value into a variable (as trafficgen sends the fallback while the pool is empty); pools seeded with values are variable lists, pools filled by setup requests come from `before`. Arrival rates are the traffic's rates times the requests trafficgen sends per request sent here, so requests per second match. At most maxVusers (trafficgen's MAX_IN_FLIGHT) run at once. Redirects are not followed. Artillery times an answer to its first byte; trafficgen to its last."
        },
    );
    for note in notes.iter().chain(&w.notes) {
        out.push_str("#\n");
        comment(&mut out, "", "# ", &format!("Note: {note}"));
    }
    out.push_str("config:\n");
    let _ = writeln!(out, "  target: {}", yaml_str(&spec.target_url));
    match &plan {
        Some(plan) => plan.phases(&mut out),
        None => config::phases(&mut out, spec, scale, ours, sent),
    }
    out.push_str(&payload);
    if !w.vars.is_empty() {
        out.push_str("  # Lists: each virtual user draws one value of each.\n  variables:\n");
        for (name, items) in &w.vars {
            let _ = writeln!(out, "    {name}: [{}]", items.join(", "));
        }
    }
    out.push_str(&ensure);
    out.push_str(&before);
    out.push_str("scenarios:\n");
    out.push_str(&scenarios);
    w.within(out.len())?;
    Some(out)
}

/// What a variable list takes in memory while the script is written (a
/// `String` and its allocation per item; twice for the index that finds a
/// list by its items), which is more than it takes in the script.
fn list_bytes(items: &[String]) -> usize {
    items.iter().map(|i| 2 * (std::mem::size_of::<String>() + i.len().max(16))).sum()
}

/// Whole seconds as a number, otherwise milliseconds (`1250ms`).
fn duration(secs: f64) -> String {
    let ms = (secs * 1000.0).round();
    if ms % 1000.0 == 0.0 { num(ms / 1000.0) } else { format!("\"{}ms\"", num(ms)) }
}

fn rate(rps: f64) -> String {
    num((rps * 1e6).round() / 1e6)
}

struct Writer<'s> {
    script: &'s Script,
    /// Variable lists: name and items (YAML scalars).
    vars: Vec<(String, Vec<String>)>,
    /// The name of each list in `vars`, by its items (the same items share one).
    var_names: HashMap<Vec<String>, String>,
    notes: Vec<String>,
    noted: HashSet<String>,
    /// Bytes of lists and notes made so far, in memory (see [`list_bytes`]).
    made: usize,
    max_bytes: usize,
}

impl Writer<'_> {
    fn note(&mut self, note: String) {
        if self.noted.insert(note.clone()) {
            self.made += note.len();
            self.notes.push(note);
        }
    }

    /// `Some` while what is made, with `written` bytes of script, is
    /// within the bound.
    fn within(&self, written: usize) -> Option<()> {
        (self.made.saturating_add(written) <= self.max_bytes).then_some(())
    }

    /// A variable list for these items; the same items share one. Past the
    /// bound no list is kept (the script is refused anyway).
    fn var(&mut self, base: &str, items: Vec<String>) -> String {
        if let Some(name) = self.var_names.get(&items) {
            return name.clone();
        }
        let name = format!("{base}_{}", self.vars.len() + 1);
        if self.within(0).is_none() {
            return name;
        }
        self.made += list_bytes(&items);
        self.var_names.insert(items.clone(), name.clone());
        self.vars.push((name.clone(), items));
        name
    }

    /// One request as a flow step.
    fn step(&mut self, out: &mut String, indent: &str, index: usize) {
        let script = self.script;
        let req = &script.requests[index];
        let _ = writeln!(out, "{indent}- {}:", req.method.to_ascii_lowercase());
        let inner = format!("{indent}    ");
        let _ = writeln!(out, "{inner}name: {}", yaml_str(&req.name));
        let url = self.pieces(&req.target);
        let _ = writeln!(out, "{inner}url: {}", yaml_str(&url));
        let auth = flows::auth_header(req);
        let mut headers: Vec<(String, String)> = Vec::new();
        for (i, (name, value)) in req.headers.iter().enumerate() {
            if Some(i) != auth {
                let value = self.pieces(value);
                headers.push((name.clone(), value));
            }
        }
        let json_default = matches!(&req.body, Some(Body::Json(_)))
            && req.content_type.as_deref().is_some_and(|ct| ct.eq_ignore_ascii_case("application/json"));
        if let Some(ct) = &req.content_type
            && !json_default
        {
            headers.push(("Content-Type".to_string(), ct.clone()));
        }
        if !headers.is_empty() {
            let _ = writeln!(out, "{inner}headers:");
            for (name, value) in &headers {
                let _ = writeln!(out, "{inner}  {}: {}", yaml_str(name), yaml_str(value));
            }
        }
        if let Some((user, pass)) = auth.and_then(|i| flows::basic_auth(&req.headers[i].1)) {
            self.note(format!(
                "`{}`'s `Authorization: Basic {{{{ base64(…) }}}}` is Artillery's `auth` (user and pass), which sends the same header.",
                req.name
            ));
            let (user, pass) = (self.pieces(&user), self.pieces(&pass));
            let _ =
                writeln!(out, "{inner}auth:\n{inner}  user: {}\n{inner}  pass: {}", yaml_str(&user), yaml_str(&pass));
        }
        match &req.body {
            None => {}
            Some(Body::Json(JsonExpr::Object(entries))) if !entries.is_empty() => {
                let _ = writeln!(out, "{inner}json:");
                for (key, value) in entries {
                    let value = self.json(value);
                    let _ = writeln!(out, "{inner}  {}: {value}", yaml_str(key));
                }
            }
            Some(Body::Json(j)) => {
                let value = self.json(j);
                let _ = writeln!(out, "{inner}json: {value}");
            }
            Some(Body::Text(p)) => {
                let body = self.pieces(p);
                let _ = writeln!(out, "{inner}body: {}", yaml_str(&body));
            }
        }
        if !req.captures.is_empty() {
            let _ = writeln!(out, "{inner}capture:");
            for cap in &req.captures {
                let (var, into) = match &cap.store {
                    Store::Pool(p) => (pool_var(script, *p), script.pools[*p].name.clone()),
                    Store::Var(v) => (flows::var_name(v), format!("variable {v}")),
                };
                match (&cap.source, &cap.regex) {
                    (CapSource::Header(name), regex) => {
                        let _ = writeln!(out, "{inner}  - header: {}", yaml_str(name));
                        if regex.is_some() {
                            self.note(format!(
                                "Artillery's regexp captures read the body only: `{}`'s capture from the {name} header into {into} keeps the whole header, its regex is not applied.",
                                req.name
                            ));
                        }
                    }
                    (CapSource::Json(tokens), None) => {
                        let _ = writeln!(out, "{inner}  - json: {}", yaml_str(&json_path(tokens)));
                    }
                    (source, Some(regex)) => {
                        if matches!(source, CapSource::Json(_)) {
                            self.note(format!(
                                "Artillery's regexp captures read the whole body: `{}`'s regex for {into} is applied to the body's text, not to one JSON value.",
                                req.name
                            ));
                        }
                        let (pattern, flags) = js_regex(regex);
                        let _ = writeln!(out, "{inner}  - regexp: {}\n{inner}    group: 1", yaml_str(&pattern));
                        if !flags.is_empty() {
                            let _ = writeln!(out, "{inner}    flags: {}", yaml_str(&flags));
                        }
                    }
                    (CapSource::Body, None) => {
                        // A body capture always has a regex (checked at load).
                        let _ = writeln!(out, "{inner}  - regexp: \"([\\\\s\\\\S]+)\"\n{inner}    group: 1");
                    }
                }
                let _ = writeln!(out, "{inner}    as: {}", yaml_str(&var));
                let checks: Vec<&str> = [
                    (cap.max_len != crate::workload::template::MAX_VALUE_BYTES, "max_len"),
                    (cap.url_safe, "url_safe"),
                    (cap.path, "path"),
                ]
                .into_iter()
                .filter_map(|(set, name)| set.then_some(name))
                .collect();
                if !checks.is_empty() {
                    self.note(format!(
                        "Artillery keeps any captured value: the checks of `{}`'s capture into {into} ({}) are not made.",
                        req.name,
                        checks.join(", ")
                    ));
                }
            }
        }
        let _ = writeln!(out, "{inner}followRedirect: false");
    }

    fn pieces(&mut self, pieces: &[Piece]) -> String {
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Lit(literal) => {
                    if literal.contains("{{") {
                        self.note(
                            "Artillery reads `{{` as the start of a template: literal text holding `{{` is not sent as written."
                                .to_string(),
                        );
                    }
                    text.push_str(literal);
                }
                Piece::Hole(drawn, ctx) => {
                    let value = self.hole(drawn, *ctx);
                    text.push_str(&value);
                }
            }
        }
        text
    }

    /// A hole as Artillery template text, written for its context.
    fn hole(&mut self, drawn: &Gen, ctx: Ctx) -> String {
        let quoted = |s: String| if ctx == Ctx::JsonValue { format!("\"{s}\"") } else { s };
        match drawn {
            Gen::Int { min, max } => self.int(*min, *max),
            Gen::Choice(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|item| match ctx {
                        Ctx::Text => typed(item),
                        Ctx::Url | Ctx::PathValue => yaml_str(&percent(&item.text)),
                        Ctx::JsonString => {
                            let json = serde_json::Value::String(item.text.clone()).to_string();
                            yaml_str(&json[1..json.len() - 1])
                        }
                        Ctx::JsonValue => yaml_str(&if item.number {
                            item.text.clone()
                        } else {
                            serde_json::Value::String(item.text.clone()).to_string()
                        }),
                    })
                    .collect();
                let name = self.var("choice", items);
                format!("{{{{ {name} }}}}")
            }
            Gen::Str(n) => quoted(format!("{{{{ $randomString({n}) }}}}")),
            Gen::Uuid => {
                self.note("uuid() is Artillery's $uuid: one per virtual user, not one per request.".to_string());
                quoted("{{ $uuid }}".to_string())
            }
            Gen::Seq => {
                self.note(
                    "seq() has no Artillery counter shared by virtual users: a random number from 1 to 999999999 stands in."
                        .to_string(),
                );
                "{{ $randomNumber(1, 999999999) }}".to_string()
            }
            Gen::Now => {
                self.note(
                    "now() has no Artillery template: 1970-01-01T00:00:00.000Z is sent in its place.".to_string(),
                );
                quoted("1970-01-01T00:00:00.000Z".to_string())
            }
            Gen::UnixTime | Gen::UnixTimeMs => {
                self.note(
                    "unix_time() and unix_time_ms() have no Artillery template: 0 is sent in their place.".to_string(),
                );
                "0".to_string()
            }
            Gen::Pool(p) => {
                let name = self.script.pools[*p].name.clone();
                let script = self.script;
                let url_safe = script
                    .fillers(*p)
                    .all(|i| script.requests[i].captures.iter().filter(|c| c.pool() == Some(*p)).all(|c| c.url_safe))
                    && script.pools[*p].seed.iter().all(|v| percent(&v.text) == v.text);
                self.as_is(ctx, &format!("values of {name}"), url_safe);
                format!("{{{{ {} }}}}", pool_var(self.script, *p))
            }
            Gen::Var(var) => {
                let script = self.script;
                let captures =
                    script.requests.iter().flat_map(|r| &r.captures).filter(|c| c.store == Store::Var(var.clone()));
                let url_safe = captures.clone().all(|c| c.url_safe);
                if ctx == Ctx::PathValue && captures.clone().all(|c| c.path) {
                    self.note(format!(
                        "Artillery follows a captured path as it is, without trafficgen's check that it is a safe path (variable {var})."
                    ));
                }
                self.as_is(ctx, &format!("values of the variable {var}"), url_safe);
                format!("{{{{ {} }}}}", flows::var_name(var))
            }
            Gen::Data { table, column } => {
                let name = self.script.tables[*table].name.clone();
                self.as_is(ctx, &format!("values of table {name}"), false);
                format!("{{{{ {} }}}}", flows::data_var(&name, column))
            }
            Gen::Env(name) => {
                self.as_is(ctx, &format!("values of {name}"), false);
                format!("{{{{ $env.{name} }}}}")
            }
            Gen::Base64(inner) => {
                // Only constant text gets here (see `flows::cannot` and `auth`): encoded now.
                let mut text = String::new();
                for piece in inner {
                    if let Piece::Lit(t) = piece {
                        text.push_str(t);
                    }
                }
                let mut encoded = Vec::new();
                crate::workload::escape::base64_encode(text.as_bytes(), &mut encoded);
                let encoded = String::from_utf8_lossy(&encoded).into_owned();
                match ctx {
                    Ctx::Url | Ctx::PathValue => percent(&encoded),
                    Ctx::JsonValue => format!("\"{encoded}\""),
                    Ctx::Text | Ctx::JsonString => encoded,
                }
            }
        }
    }

    /// Notes that a value Artillery writes as it is lands where trafficgen
    /// would encode it.
    fn as_is(&mut self, ctx: Ctx, what: &str, url_safe: bool) {
        match ctx {
            Ctx::Url | Ctx::PathValue if url_safe => {}
            Ctx::PathValue => {}
            Ctx::Url => self
                .note(format!("Artillery puts a value into a path or query as it is: {what} are not percent-encoded.")),
            Ctx::JsonString | Ctx::JsonValue => self.note(format!(
                "Artillery puts a value into a text body as it is: {what} are not JSON-escaped or quoted."
            )),
            Ctx::Text => {}
        }
    }

    /// `random_int`: a variable list of its values when there are few (a
    /// number, drawn per virtual user), else `$randomNumber` (a string).
    fn int(&mut self, min: i64, max: i64) -> String {
        if i128::from(max) - i128::from(min) < MAX_LIST && self.within(0).is_some() {
            let items: Vec<String> = (min..=max).map(|n| n.to_string()).collect();
            let name = self.var("int", items);
            return format!("{{{{ {name} }}}}");
        }
        if min >= 0 {
            self.note(format!(
                "random_int({min}, {max}) is Artillery's $randomNumber, which gives text: as a whole JSON value it is sent as a string."
            ));
            return format!("{{{{ $randomNumber({min}, {max}) }}}}");
        }
        self.note(format!(
            "random_int({min}, {max}): Artillery's $randomNumber takes no negative numbers and the range is too wide for a list: {min} is sent in its place."
        ));
        min.to_string()
    }

    /// A structured JSON value in YAML flow style.
    fn json(&mut self, j: &JsonExpr) -> String {
        match j {
            JsonExpr::Literal(text) => text.clone(),
            // A string that is exactly one template gives the variable's own
            // value (a number stays a number).
            JsonExpr::Value(drawn) => {
                let text = self.hole(drawn, Ctx::Text);
                if matches!(drawn, Gen::UnixTime | Gen::UnixTimeMs) {
                    return text;
                }
                if matches!(drawn, Gen::Seq) {
                    self.note("seq() as a whole JSON value is sent as a string here.".to_string());
                }
                yaml_str(&text)
            }
            JsonExpr::Text(p) => {
                let text = self.pieces(p);
                yaml_str(&text)
            }
            JsonExpr::Array(items) => {
                let items: Vec<String> = items.iter().map(|i| self.json(i)).collect();
                format!("[{}]", items.join(", "))
            }
            JsonExpr::Object(entries) => {
                let entries: Vec<String> =
                    entries.iter().map(|(k, v)| format!("{}: {}", yaml_str(k), self.json(v))).collect();
                format!("{{{}}}", entries.join(", "))
            }
        }
    }
}

fn pool_var(script: &Script, pool: usize) -> String {
    format!("pool_{}", script.pools[pool].name)
}

/// A YAML scalar of an item's own type.
fn typed(item: &Item) -> String {
    if item.number { item.text.clone() } else { yaml_str(&item.text) }
}

fn percent(text: &str) -> String {
    let mut out = Vec::new();
    crate::workload::escape::percent_encode(text.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON pointer's tokens as a JSONPath: `$.data[0].id`, `$['a/b']`.
fn json_path(tokens: &[String]) -> String {
    let mut path = String::from("$");
    for token in tokens {
        let identifier = token.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if identifier {
            let _ = write!(path, ".{token}");
        } else if !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
            let _ = write!(path, "[{token}]");
        } else {
            let escaped = token.replace('\\', "\\\\").replace('\'', "\\'");
            let _ = write!(path, "['{escaped}']");
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_json_paths() {
        let tokens = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(json_path(&tokens(&["id"])), "$.id");
        assert_eq!(json_path(&tokens(&["data", "0", "id"])), "$.data[0].id");
        assert_eq!(json_path(&tokens(&["a/b", "it's"])), "$['a/b']['it\\'s']");
        assert_eq!(json_path(&[]), "$");
    }

    #[test]
    fn durations_are_whole_seconds_or_milliseconds() {
        assert_eq!(duration(30.0), "30");
        assert_eq!(duration(1.25), "\"1250ms\"");
        assert_eq!(rate(2.5), "2.5");
    }
}
