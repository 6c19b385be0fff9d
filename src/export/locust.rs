//! The Locust file: one `HttpUser` whose tasks are the requests with their
//! weights, a `LoadTestShape` that plays the stages, class-level bounded
//! deques for pools, setup requests sent once before the traffic (and again
//! every `every_secs`), and the SLOs as a check on the totals when Locust
//! quits (exit code 1 when one is missed).

use std::fmt::Write as _;

use super::script::{Body, CapSource, Ctx, Gen, JsonExpr, Piece, Req, Script};
use super::text::{comment, num, py_str};
use super::{Spec, expected_rps};
use crate::observe::slo::{Metric, Percentile};
use crate::workload::Role;
use crate::workload::template::Item;

/// The script, or `None` once it passes `spec.max_bytes` (checked after
/// each part, so no more than one request's part is written past it).
pub fn write(script: &Script, spec: &Spec, notes: &[String]) -> Option<String> {
    let mut out = String::new();
    header(&mut out, spec, notes);
    shape(&mut out, spec);
    helpers(&mut out, script);
    user(&mut out, script, spec.max_bytes)?;
    slos(&mut out, script, spec);
    Some(out)
}

fn c(out: &mut String, indent: &str, text: &str) {
    comment(out, indent, "# ", text);
}

fn header(out: &mut String, spec: &Spec, notes: &[String]) {
    c(out, "", &format!("Locust file made by `trafficgen export --format locust` from {}.", spec.source));
    c(out, "", &format!("Traffic: {}.", spec.traffic.describe()));
    out.push_str("#\n#   locust -f script.locustfile.py --headless --host http://127.0.0.1:8080\n#\n");
    c(
        out,
        "",
        "The shape below plays the rate and stops the run at its end; each task sends one request, drawn by weight as trafficgen draws it. Redirects are not followed. With SLOs, the exit code is 1 when one is missed, 0 otherwise.",
    );
    for note in notes {
        out.push_str("#\n");
        c(out, "", &format!("Note: {note}"));
    }
    out.push_str(
        "
import json
import math
import os
import random
import re
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from itertools import count
from urllib.parse import quote

import gevent.lock
from locust import HttpUser, LoadTestShape, constant_throughput, events, task

",
    );
    let _ = writeln!(out, "HOST = os.environ.get(\"TARGET_URL\", {}).rstrip(\"/\")\n", py_str(&spec.target_url));
}

fn shape(out: &mut String, spec: &Spec) {
    let traffic = &spec.traffic;
    c(out, "", "The rate: stages of (seconds, requests/s at the start, requests/s at the end), linear in between.");
    out.push_str("STAGES = [\n");
    for s in &traffic.stages {
        let _ = writeln!(out, "    ({}, {}, {}),", num(s.secs), num(s.from_rps), num(s.to_rps));
    }
    out.push_str("]\n");
    let _ = writeln!(out, "DURATION = {}", num(traffic.duration_secs));
    let peak = traffic.peak_rps();
    let users = (peak.ceil() as u64).max(1);
    c(
        out,
        "",
        "Locust is a closed model: a user waits for each answer. To send an arrival rate, each user sends at most USER_RPS requests a second (constant_throughput) and the shape runs rate / USER_RPS users, so the rate holds while answers take less than 1 / USER_RPS s; a slower target gets fewer requests than trafficgen would send it (trafficgen keeps the rate, with more requests in flight).",
    );
    let _ = writeln!(out, "PEAK_RPS = {}", num(peak));
    let _ = writeln!(out, "USERS = {users}");
    out.push_str("USER_RPS = PEAK_RPS / USERS\n");
    out.push_str(
        "

def rate_at(t):
    start = 0.0
    for secs, from_rps, to_rps in STAGES:
        if t < start + secs:
            return from_rps + (to_rps - from_rps) * (t - start) / secs
        start += secs
    return 0.0


class TrafficShape(LoadTestShape):
    def tick(self):
        t = self.get_run_time()
        if t >= DURATION:
            return None
        return (min(USERS, math.ceil(rate_at(t) / USER_RPS - 1e-9)), USERS)


",
    );
}

fn helpers(out: &mut String, script: &Script) {
    out.push_str(
        "ALNUM = \"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\"
URL_SAFE = re.compile(\"[A-Za-z0-9._~-]+\")
CONTROL = re.compile(\"[\\x00-\\x1f\\x7f-\\x9f]\")
INDEX = re.compile(\"0|[1-9][0-9]*\")
SEQ = count(1)


def random_string(n):
    return \"\".join(random.choices(ALNUM, k=n))


def now():
    return datetime.now(timezone.utc).isoformat(timespec=\"milliseconds\").replace(\"+00:00\", \"Z\")


def seq():
    return next(SEQ)


def pct(value):
    \"\"\"Percent-encodes all but letters, digits and -._~, as trafficgen writes values in paths and queries.\"\"\"
    return quote(str(value), safe=\"\")


def json_text(value):
    \"\"\"A value inside a JSON string: escaped, without the quotes.\"\"\"
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


def json_value(value):
    return json.dumps(value, ensure_ascii=False)


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(\",\", \":\")).encode()


",
    );
    if script.pools.is_empty() {
        return;
    }
    out.push_str(
        "def pick(pool):
    return random.choice(pool) if pool else None


def json_at(res, tokens):
    \"\"\"The value at a JSON pointer's tokens in the answer, or None.\"\"\"
    try:
        node = res.json()
    except ValueError:
        return None
    for token in tokens:
        if isinstance(node, list):
            if not INDEX.fullmatch(token) or int(token) >= len(node):
                return None
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return None
    return node


def header_of(res, name):
    value = res.headers.get(name)
    return None if value is None else value.strip()


",
    );
    c(
        out,
        "",
        "A captured value is kept as trafficgen keeps it: a string or a number, not empty, at most max_len bytes, not \".\" or \"..\", no control characters, and only letters, digits and -._~ when url_safe.",
    );
    out.push_str(
        "def capture(pool, value, max_len, url_safe):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return
    text = value if isinstance(value, str) else json.dumps(value)
    if text in (\"\", \".\", \"..\") or len(text.encode()) > max_len:
        return
    if (url_safe and not URL_SAFE.fullmatch(text)) or CONTROL.search(text):
        return
    pool.append(value)


",
    );
}

fn item(item: &Item) -> String {
    if item.number { item.text.clone() } else { py_str(&item.text) }
}

fn pool_var(script: &Script, pool: usize) -> String {
    format!("pool_{}", script.pools[pool].name)
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

fn method_name(req: &Req) -> String {
    format!("send_{}", req.name)
}

fn user(out: &mut String, script: &Script, max_bytes: usize) -> Option<()> {
    out.push_str("class Traffic(HttpUser):\n    host = HOST\n    wait_time = constant_throughput(USER_RPS)\n");
    if !script.pools.is_empty() {
        out.push('\n');
        c(
            out,
            "    ",
            "Pools: bounded deques on the class, shared by every user of this Locust process as trafficgen shares its pools (with several processes or workers, each process has its own).",
        );
        out.push_str("    pools = {\n");
        for pool in &script.pools {
            let values: Vec<String> = pool.seed.iter().map(item).collect();
            let _ =
                writeln!(out, "        {}: deque([{}], maxlen={}),", py_str(&pool.name), values.join(", "), pool.size);
        }
        out.push_str("    }\n");
    }
    if !script.setup.is_empty() {
        out.push('\n');
        let again = match script.setup_every {
            Some(every) => format!(", and again every {every} s"),
            None => String::new(),
        };
        c(
            out,
            "    ",
            &format!(
                "Setup requests: sent before the traffic by the first user to start (the others wait for them){again}."
            ),
        );
        out.push_str("    setup_lock = gevent.lock.Semaphore()\n    setup_due = 0.0\n\n");
        out.push_str("    def on_start(self):\n        self.run_setup_when_due()\n\n");
        out.push_str("    def run_setup_when_due(self):\n        with Traffic.setup_lock:\n            if time.monotonic() < Traffic.setup_due:\n                return\n");
        match script.setup_every {
            Some(every) => {
                let _ = writeln!(out, "            Traffic.setup_due = time.monotonic() + {every}");
            }
            None => out.push_str("            Traffic.setup_due = math.inf\n"),
        }
        for i in &script.setup {
            let _ = writeln!(out, "            self.{}()", method_name(&script.requests[*i]));
        }
    }
    for (i, weight) in &script.mix {
        let req = &script.requests[*i];
        let _ = writeln!(out, "\n    @task({weight})\n    def task_{}(self):", req.name);
        if script.setup_every.is_some() {
            out.push_str("        self.run_setup_when_due()\n");
        }
        let _ = writeln!(out, "        self.{}()", method_name(req));
    }
    for req in &script.requests {
        if out.len() > max_bytes {
            return None;
        }
        request(out, script, req);
    }
    out.push_str("\n\n");
    (out.len() <= max_bytes).then_some(())
}

fn request(out: &mut String, script: &Script, req: &Req) {
    let role = match req.role {
        Role::Weighted(w) => format!("weight {w}"),
        Role::Error => "an error request (sent by error injection only)".to_string(),
        Role::Setup => "a setup request".to_string(),
        Role::Step => "a journey step".to_string(),
    };
    let _ = writeln!(out, "\n    def {}(self):", method_name(req));
    c(out, "        ", &format!("{}: {}.", req.name, role));
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
    let _ = writeln!(out, "            if {}:", success_test(&req.success));
    out.push_str("                res.success()\n");
    for cap in &req.captures {
        let value = match &cap.source {
            CapSource::Json(tokens) => {
                let tokens: Vec<String> = tokens.iter().map(|t| py_str(t)).collect();
                let trailing = if tokens.len() == 1 { "," } else { "" };
                format!("json_at(res, ({}{trailing}))", tokens.join(", "))
            }
            CapSource::Header(name) => format!("header_of(res, {})", py_str(name)),
        };
        let _ = writeln!(
            out,
            "                capture(self.pools[{}], {value}, {}, {})",
            py_str(&script.pools[cap.pool].name),
            cap.max_len,
            if cap.url_safe { "True" } else { "False" }
        );
    }
    out.push_str("            else:\n                res.failure(\"status %d\" % res.status_code)\n");
}

fn slos(out: &mut String, script: &Script, spec: &Spec) {
    if spec.slos.is_empty() {
        return;
    }
    c(
        out,
        "",
        "The SLOs, checked on the run's totals when Locust quits: (objective, request name or None for all, measure, comparison, limit). Latencies in ms; error_rate a fraction; rps in requests/s (the objective's share of the mean target rate over the whole run).",
    );
    out.push_str("SLOS = [\n");
    let mut left_out = Vec::new();
    for slo in &spec.slos {
        let (measure, limit) = match slo.metric {
            Metric::Latency(p) => {
                let measure = match p {
                    Percentile::P50 => "p50",
                    Percentile::P90 => "p90",
                    Percentile::P95 => "p95",
                    Percentile::P99 => "p99",
                    Percentile::Max => "max",
                };
                (measure, num(slo.threshold_ms()))
            }
            Metric::ErrorRate => ("error_rate", num(slo.threshold)),
            Metric::Rps => match expected_rps(script, spec, slo.scope.as_deref()) {
                Some(expected) => ("rps", num((slo.threshold * expected * 1000.0).round() / 1000.0)),
                None => {
                    left_out.push(format!(
                        "{slo}: `{}` is never drawn by weight, so it has no target rate to compare with; left out.",
                        slo.scope.as_deref().unwrap_or_default()
                    ));
                    continue;
                }
            },
        };
        let scope = match &slo.scope {
            Some(name) => {
                let method = script.find(name).map_or("GET", |i| script.requests[i].method);
                format!("({}, {})", py_str(name), py_str(method))
            }
            None => "None".to_string(),
        };
        let _ = writeln!(
            out,
            "    ({}, {scope}, {}, {}, {limit}),",
            py_str(&slo.to_string()),
            py_str(measure),
            py_str(slo.op.as_str())
        );
    }
    out.push_str("]\n");
    for note in &left_out {
        c(out, "", note);
    }
    out.push_str(
        "QUANTILES = {\"p50\": 0.5, \"p90\": 0.9, \"p95\": 0.95, \"p99\": 0.99}
COMPARE = {
    \"<\": lambda value, limit: value < limit,
    \"<=\": lambda value, limit: value <= limit,
    \">\": lambda value, limit: value > limit,
    \">=\": lambda value, limit: value >= limit,
}


def measure(entry, what):
    if entry is None or entry.num_requests == 0:
        return None
    if what == \"error_rate\":
        return entry.fail_ratio
    if what == \"rps\":
        return entry.total_rps
    if what == \"max\":
        return entry.max_response_time
    return entry.get_response_time_percentile(QUANTILES[what])


@events.quitting.add_listener
def check_slos(environment, **_kwargs):
    missed = 0
    for objective, scope, what, op, limit in SLOS:
        entry = environment.stats.total if scope is None else environment.stats.entries.get(scope)
        value = measure(entry, what)
        met = value is not None and COMPARE[op](value, limit)
        missed += 0 if met else 1
        print(\"SLO %s: %s (%s)\" % (objective, \"met\" if met else \"MISSED\", \"no requests\" if value is None else value))
    environment.process_exit_code = 1 if missed else 0
",
    );
}
