//! The Locust file: an open model, as trafficgen's. One `HttpUser` is a
//! pacer: it starts each arrival at its scheduled time (the stages'
//! integral, evenly spread) in a greenlet of its own, bounded like
//! trafficgen's in-flight requests and journey instances. An arrival is
//! one request, drawn by weight, or one journey instance, whose steps go
//! in order with gevent sleeps for its pauses, its own variables and one
//! row of each data table it reads. Pools are bounded deques shared by
//! every arrival; setup requests are sent before the first arrival (and
//! again every `every_secs`); the SLOs are checked on the totals when
//! Locust quits (exit code 1 when one is missed).
//!
//! Users mode (the closed model) is Locust's own: every `HttpUser` is one
//! of trafficgen's virtual users, whose task is one arrival run to its end
//! and whose `wait_time` is the users' pause; a `LoadTestShape` moves the
//! user count along the stages.

mod requests;
mod runtime;

use std::fmt::Write as _;

use super::script::{Entry, Script};
use super::text::{comment, num, py_str};
use super::{Spec, expected_rps};
use crate::observe::slo::{Metric, Percentile};

/// An arrival this late (the process could not keep up) is skipped and
/// counted rather than sent in a burst with the others, as trafficgen's
/// pacer gives up slots it woke far behind.
const LATE_SECS: f64 = 1.0;

/// The script, or `None` once it passes `spec.max_bytes` (checked after
/// each part, so no more than one request's part is written past it).
pub fn write(script: &Script, spec: &Spec, notes: &[String]) -> Option<String> {
    let mut out = String::new();
    header(&mut out, script, spec, notes);
    match spec.users {
        Some(_) => users_schedule(&mut out, spec),
        None => schedule(&mut out, script, spec),
    }
    runtime::helpers(&mut out, script);
    user(&mut out, script, spec)?;
    mix(&mut out, script, spec.users.is_some());
    slos(&mut out, script, spec);
    Some(out)
}

fn c(out: &mut String, indent: &str, text: &str) {
    comment(out, indent, "# ", text);
}

fn header(out: &mut String, script: &Script, spec: &Spec, notes: &[String]) {
    c(out, "", &format!("Locust file made by `trafficgen export --format locust` from {}.", spec.source));
    let traffic = if spec.users.is_some() { spec.traffic.describe_users() } else { spec.traffic.describe() };
    c(out, "", &format!("Traffic: {traffic}."));
    let data_dir = if script.tables.is_empty() { "" } else { "DATA_DIR=. " };
    let _ = writeln!(out, "#\n#   {data_dir}locust -f script.locustfile.py --headless --host http://127.0.0.1:8080\n#");
    let what = if script.journeys.is_empty() {
        "one request, drawn by weight as trafficgen draws it"
    } else {
        "one request or one journey instance (its steps one after the other, each after the previous answer and its pause), drawn by weight as trafficgen draws them"
    };
    let model = match spec.users {
        Some(users) => format!(
            "trafficgen's users mode, a closed model: each Locust user is a virtual user whose task is one arrival, {what}, run to its end; then it waits {} (wait_time), and again. A LoadTestShape moves the number of users along the stages (which count users, not requests), at each stage's own pace. A closed model slows down with the target and hides its queueing (coordinated omission): latencies are measured from the send, but requests that would have been due while users waited are never sent. Run it in one process (no --processes, no workers). Redirects are not followed and no cookies are kept. With SLOs, the exit code is 1 when one is missed, 0 otherwise.",
            pause_words(users)
        ),
        None => format!(
            "An open model, as trafficgen's: one user (the pacer) starts each arrival at its scheduled time, spread evenly over the rate, whatever the answers take; an arrival is {what}. Run it in one process (no --processes, no workers): the pacer is one user. Redirects are not followed and no cookies are kept. With SLOs, the exit code is 1 when one is missed, 0 otherwise."
        ),
    };
    c(out, "", &model);
    for note in notes {
        out.push_str("#\n");
        c(out, "", &format!("Note: {note}"));
    }
    out.push('\n');
    let mut imports: Vec<&str> = vec!["json", "math", "os", "random", "re", "time", "uuid"];
    if script.uses(|g| matches!(g, super::script::Gen::Base64(_))) {
        imports.push("base64");
    }
    if script.tables.iter().any(|t| !t.json) {
        imports.push("csv");
    }
    imports.sort_unstable();
    for module in imports {
        let _ = writeln!(out, "import {module}");
    }
    out.push_str(
        "from collections import deque
from datetime import datetime, timezone
from http import cookiejar
from itertools import count
from urllib.parse import quote

import gevent
",
    );
    // Users mode waits with Locust's own wait_time, and its users wait
    // for the one run of the setup requests.
    match spec.users {
        Some(users) => {
            if !script.setup.is_empty() {
                out.push_str("from gevent.event import Event\n");
            }
            let wait = if users.min_pause_secs == users.max_pause_secs { "constant" } else { "between" };
            let _ = writeln!(out, "from locust import HttpUser, LoadTestShape, {wait}, events, task");
        }
        None => {
            out.push_str(
                "from gevent.pool import Pool\nfrom locust import HttpUser, LoadTestShape, constant, events, task\n",
            );
        }
    }
    out.push_str("from urllib3 import PoolManager\n\n");
    let _ = writeln!(out, "HOST = os.environ.get(\"TARGET_URL\", {}).rstrip(\"/\")\n", py_str(&spec.target_url));
}

/// The rate as a schedule of arrival times, and the shape that keeps the
/// pacer running for the duration. Every stage and shape of the Locust
/// file is written here, and only here.
fn schedule(out: &mut String, script: &Script, spec: &Spec) {
    let traffic = &spec.traffic;
    stages(out, traffic, "arrivals/s");
    c(out, "", "Bounds, as trafficgen's: arrivals over them are dropped and counted, never queued.");
    let _ = writeln!(out, "MAX_IN_FLIGHT = {}", spec.max_in_flight.max(1));
    if !script.journeys.is_empty() {
        let _ = writeln!(out, "MAX_JOURNEYS = {}", spec.max_journeys.max(1));
    }
    let _ = writeln!(out, "LATE_SECS = {}", num(LATE_SECS));
    out.push_str(
        "

def arrival_time(n):
    \"\"\"When arrival n (0, 1, 2…) is due, in seconds from the start: when the count of arrivals
    the rate gives (its integral) reaches n, as trafficgen's pacer schedules them. None past the end.\"\"\"
    start = done = 0.0
    for secs, a, b in STAGES:
        arrivals = (a + b) / 2 * secs
        if n < done + arrivals:
            k = n - done
            if k <= 0:
                return start
            # a·t + (b − a)·t²/(2·secs) = k, in a form exact also when a = b
            return start + 2 * k / (a + math.sqrt(a * a + 2 * (b - a) / secs * k))
        start += secs
        done += arrivals
    return None


class TrafficShape(LoadTestShape):
    \"\"\"One user, the pacer, for the duration; then the run stops.\"\"\"

    def tick(self):
        if self.get_run_time() >= DURATION:
            return None
        return (1, 1)


",
    );
}

/// `STAGES` and `DURATION`: the traffic's stages counted in `unit`
/// (arrivals/s, or users).
fn stages(out: &mut String, traffic: &super::Traffic, unit: &str) {
    let what = if unit == "users" { "The users" } else { "The rate" };
    c(out, "", &format!("{what}: stages of (seconds, {unit} at the start, {unit} at the end), linear in between."));
    out.push_str("STAGES = [\n");
    for s in &traffic.stages {
        let _ = writeln!(out, "    ({}, {}, {}),", num(s.secs), num(s.from_rps), num(s.to_rps));
    }
    out.push_str("]\n");
    let _ = writeln!(out, "DURATION = {}", num(traffic.duration_secs));
}

/// Users mode: the stages as numbers of users, and the shape that moves
/// Locust's user count along them. Every stage and shape of a users-mode
/// Locust file is written here, and only here.
fn users_schedule(out: &mut String, spec: &Spec) {
    let traffic = &spec.traffic;
    stages(out, traffic, "users");
    let peak = (traffic.peak_rps().round() as u64).max(1);
    let _ = writeln!(out, "PEAK_USERS = {peak}");
    c(out, "", "Users per second that start or stop \"at once\": all of the peak within a second.");
    let _ = writeln!(out, "SPAWN_AT_ONCE = {peak}");
    out.push_str(
        "

def users(x):
    return int(x + 0.5)


class TrafficShape(LoadTestShape):
    \"\"\"The users the stages give. Over a rising or falling stage, Locust moves to the stage's end
    at the stage's own pace (its change over its duration, users/s), as trafficgen's ramp; a stage
    that holds, and a jump between stages, is reached at once. Then the run stops (Locust asks
    once a second, so up to a second after the stages end).\"\"\"

    def tick(self):
        run_time = self.get_run_time()
        start = 0.0
        before = 0
        for secs, a, b in STAGES:
            if run_time < start + secs:
                if a == b:
                    return (users(b), SPAWN_AT_ONCE)
                if a != before and run_time - start < 2:
                    # A jump to where the stage starts: along its line at once for two ticks, then at its pace.
                    return (users(a + (b - a) * (run_time - start) / secs), SPAWN_AT_ONCE)
                return (users(b), abs(b - a) / secs)
            start += secs
            before = b
        return None


",
    );
}

/// `1 to 3 s (uniform)`, or `1 s`.
fn pause_words(users: super::ClosedModel) -> String {
    if users.min_pause_secs == users.max_pause_secs {
        format!("{} s", num(users.min_pause_secs))
    } else {
        format!("{} to {} s (uniform)", num(users.min_pause_secs), num(users.max_pause_secs))
    }
}

/// The user: the pacer, its bounds, the pools, setup, and every request
/// and journey as a method.
fn user(out: &mut String, script: &Script, spec: &Spec) -> Option<()> {
    let max_bytes = spec.max_bytes;
    match spec.users {
        Some(users) => {
            let wait = if users.min_pause_secs == users.max_pause_secs {
                format!("constant({})", num(users.min_pause_secs))
            } else {
                format!("between({}, {})", num(users.min_pause_secs), num(users.max_pause_secs))
            };
            let _ = write!(
                out,
                "class Traffic(HttpUser):
    host = HOST
    # The users' pause after each arrival: {}.
    wait_time = {wait}
    # One connection pool for all users (each has one request in flight at a time).
    pool_manager = PoolManager(maxsize=PEAK_USERS, block=False)
",
                pause_words(users)
            );
        }
        None => {
            let connections = if script.journeys.is_empty() { "MAX_IN_FLIGHT" } else { "MAX_IN_FLIGHT + MAX_JOURNEYS" };
            let _ = write!(
                out,
                "class Traffic(HttpUser):
    host = HOST
    wait_time = constant(0)
    # One connection pool for every request in flight (a journey instance has one at a time).
    pool_manager = PoolManager(maxsize={connections}, block=False)
",
            );
        }
    }
    let users_mode = spec.users.is_some();
    if users_mode && !script.setup.is_empty() {
        out.push_str(
            "    # The setup requests are sent once for all users (see on_start).
    setup_started = False
    setup_done = Event()
",
        );
    }
    if !script.pools.is_empty() {
        out.push('\n');
        c(out, "    ", "Pools: bounded deques on the class, shared by every arrival as trafficgen shares its pools.");
        out.push_str("    pools = {\n");
        for pool in &script.pools {
            let values: Vec<String> = pool.seed.iter().map(requests::item).collect();
            let _ =
                writeln!(out, "        {}: deque([{}], maxlen={}),", py_str(&pool.name), values.join(", "), pool.size);
        }
        out.push_str("    }\n");
    }
    out.push_str(
        "
    def on_start(self):
        # trafficgen keeps no cookies: neither does this session.
        self.client.cookies.set_policy(cookiejar.DefaultCookiePolicy(allowed_domains=[]))
",
    );
    if !users_mode {
        out.push_str("        self.in_flight = Pool(MAX_IN_FLIGHT)\n");
        if !script.journeys.is_empty() {
            out.push_str("        self.running = Pool(MAX_JOURNEYS)\n");
        }
    }
    if !script.setup.is_empty() {
        let again = match script.setup_every {
            Some(every) => format!(", and again every {every} s"),
            None => String::new(),
        };
        if users_mode {
            c(
                out,
                "        ",
                &format!(
                    "Setup requests: sent once, by the first user, before any user's first arrival{again}; the other users wait for them."
                ),
            );
            out.push_str(
                "        if not Traffic.setup_started:
            Traffic.setup_started = True
            try:
                self.run_setup()
            finally:
                Traffic.setup_done.set()
",
            );
            if script.setup_every.is_some() {
                out.push_str("            gevent.spawn(self.setup_again)\n");
            }
            out.push_str("        Traffic.setup_done.wait()\n");
        } else {
            c(out, "        ", &format!("Setup requests: sent before the first arrival{again}."));
            out.push_str("        self.run_setup()\n");
            if script.setup_every.is_some() {
                out.push_str("        gevent.spawn(self.setup_again)\n");
            }
        }
        out.push_str("\n    def run_setup(self):\n");
        for i in &script.setup {
            let _ = writeln!(out, "        self.{}()", requests::method_name(&script.requests[*i]));
        }
        if let Some(every) = script.setup_every {
            let _ = writeln!(
                out,
                "\n    def setup_again(self):\n        while True:\n            gevent.sleep({every})\n            self.run_setup()"
            );
        }
    }
    if users_mode {
        out.push_str(
            "
    @task
    def arrival(self):
        \"\"\"One arrival, drawn by weight, run to its end (a journey's pauses included); then
        Locust waits wait_time, and runs the task again.\"\"\"
        COUNTS[\"arrivals\"] += 1
        send, _journey = draw()
        send(self)
",
        );
    } else {
        arrivals_task(out, script);
    }
    for req in &script.requests {
        if out.len() > max_bytes {
            return None;
        }
        requests::request(out, script, req);
    }
    for j in 0..script.journeys.len() {
        if out.len() > max_bytes {
            return None;
        }
        requests::journey(out, script, j);
    }
    out.push_str("\n\n");
    (out.len() <= max_bytes).then_some(())
}

/// The pacer's task (the open model): each arrival at its time, in a
/// greenlet of its own, within the bounds.
fn arrivals_task(out: &mut String, script: &Script) {
    out.push_str(
        "
    @task
    def arrivals(self):
        \"\"\"Starts arrival n at start + arrival_time(n), each in its own greenlet: evenly spread,
        whatever the answers take.\"\"\"
        start = time.monotonic()
        n = 0
        while True:
            due = arrival_time(n)
            if due is None:
                gevent.sleep(DURATION)
                continue
            n += 1
            late = time.monotonic() - start - due
            if late < 0:
                gevent.sleep(-late)
            elif late > LATE_SECS:
                COUNTS[\"late\"] += 1
                continue
            COUNTS[\"arrivals\"] += 1
            send, journey = draw()
",
    );
    if script.journeys.is_empty() {
        out.push_str(
            "            if self.in_flight.full():
                COUNTS[\"dropped\"] += 1
            else:
                self.in_flight.spawn(send, self)
",
        );
    } else {
        out.push_str(
            "            pool = self.running if journey else self.in_flight
            if pool.full():
                COUNTS[\"dropped_max_journeys\" if journey else \"dropped\"] += 1
            else:
                pool.spawn(send, self)
",
        );
    }
}

/// The draw of an arrival, and what the run counts (printed when Locust quits).
fn mix(out: &mut String, script: &Script, users_mode: bool) {
    c(out, "", "The mix: each arrival draws one entry in proportion to these weights (weight, method, is a journey).");
    out.push_str("MIX = [\n");
    for (entry, weight) in &script.mix {
        let (name, journey) = match entry {
            Entry::Request(i) => (requests::method_name(&script.requests[*i]), "False"),
            Entry::Journey(j) => (requests::journey_name(&script.journeys[*j].name), "True"),
        };
        let _ = writeln!(out, "    ({weight}, Traffic.{name}, {journey}),");
    }
    out.push_str("]\n");
    let _ = writeln!(out, "MIX_TOTAL = {}", script.total_weight());
    out.push_str(
        "

def draw():
    roll = random.random() * MIX_TOTAL
    for weight, send, journey in MIX:
        if roll < weight:
            return send, journey
        roll -= weight
    return MIX[-1][1], MIX[-1][2]


",
    );
    if users_mode {
        c(
            out,
            "",
            "What trafficgen counts beside the requests: arrivals, and journeys by how they ended. Printed when Locust quits.",
        );
        out.push_str("COUNTS = {\"arrivals\": 0}\n");
    } else {
        c(
            out,
            "",
            "What trafficgen counts beside the requests: arrivals, those dropped over a bound or skipped late, and journeys by how they ended. Printed when Locust quits.",
        );
        out.push_str("COUNTS = {\"arrivals\": 0, \"dropped\": 0, \"dropped_max_journeys\": 0, \"late\": 0}\n");
    }
    out.push_str(
        "JOURNEYS = {}


def journey_over(journey, outcome):
    JOURNEYS[(journey, outcome)] = JOURNEYS.get((journey, outcome), 0) + 1


@events.quitting.add_listener
def print_counts(environment, **_kwargs):
    print(\"Arrivals: %s\" % \", \".join(\"%s %d\" % item for item in COUNTS.items()))
    for (journey, outcome), n in sorted(JOURNEYS.items()):
        print(\"Journey %s: %s %d\" % (journey, outcome, n))


",
    );
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
            Metric::Rps if spec.users.is_some() => {
                left_out.push(format!("{slo}: users mode has no target rate to compare with; left out."));
                continue;
            }
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
