# Locust file made by `trafficgen export --format locust` from tests/fixtures/export/journeys.yaml.
# Traffic: scenario error_injection over 60 s up to 10 requests/s: 10/s for 60 s.
#
#   DATA_DIR=. locust -f script.locustfile.py --headless --host http://127.0.0.1:8080
#
# An open model, as trafficgen's: one user (the pacer) starts each arrival at its scheduled time,
# spread evenly over the rate, whatever the answers take; an arrival is one request or one journey
# instance (its steps one after the other, each after the previous answer and its pause), drawn by
# weight as trafficgen draws them. Run it in one process (no --processes, no workers): the pacer is
# one user. Redirects are not followed and no cookies are kept. With SLOs, the exit code is 1 when
# one is missed, 0 otherwise.

import base64
import csv
import json
import math
import os
import random
import re
import time
import uuid
from collections import deque
from datetime import datetime, timezone
from http import cookiejar
from itertools import count
from urllib.parse import quote

import gevent
from gevent.pool import Pool
from locust import HttpUser, LoadTestShape, constant, events, task
from urllib3 import PoolManager

HOST = os.environ.get("TARGET_URL", "http://nginx").rstrip("/")

# The rate: stages of (seconds, arrivals/s at the start, arrivals/s at the end), linear in between.
STAGES = [
    (60, 10, 10),
]
DURATION = 60
# Bounds, as trafficgen's: arrivals over them are dropped and counted, never queued.
MAX_IN_FLIGHT = 512
MAX_JOURNEYS = 10000
LATE_SECS = 1


def arrival_time(n):
    """When arrival n (0, 1, 2…) is due, in seconds from the start: when the count of arrivals
    the rate gives (its integral) reaches n, as trafficgen's pacer schedules them. None past the end."""
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
    """One user, the pacer, for the duration; then the run stops."""

    def tick(self):
        if self.get_run_time() >= DURATION:
            return None
        return (1, 1)


ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
URL_SAFE = re.compile("[A-Za-z0-9._~-]+")
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
INDEX = re.compile("0|[1-9][0-9]*")
SEQ = count(1)


def random_string(n):
    return "".join(random.choices(ALNUM, k=n))


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seq():
    return next(SEQ)


def pct(value):
    """Percent-encodes all but letters, digits and -._~, as trafficgen writes values in paths and queries."""
    return quote(str(value), safe="")


def json_text(value):
    """A value inside a JSON string: escaped, without the quotes."""
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


def json_value(value):
    return json.dumps(value, ensure_ascii=False)


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


SAFE_PATH = re.compile("/[A-Za-z0-9\\-._~!$&'()*+,;=:@%/]+")
DOT_SEGMENT = re.compile("(\\.|%2[eE]){1,2}")
BAD_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")


def is_safe_path(text):
    """A safe absolute path (a Location to follow), as trafficgen checks it: `/` then path characters,
    `%` only before two hex digits, no empty segment (no `//`), no `.` or `..` segment (`%2e` too)."""
    if len(text) < 2 or not SAFE_PATH.fullmatch(text) or BAD_PERCENT.search(text):
        return False
    segments = text[1:].split("/")
    return all(i == len(segments) - 1 if s == "" else not DOT_SEGMENT.fullmatch(s) for i, s in enumerate(segments))


def path_value(value):
    """A captured path in a path keeps its slashes (a Location followed) when it is a safe path."""
    return str(value) if is_safe_path(str(value)) else pct(value)


def pick(pool):
    return random.choice(pool) if pool else None


def take(pool, value):
    """take(): the value picked leaves the pool once the request is sent."""
    try:
        pool.remove(value)
    except ValueError:
        pass


def json_at(res, tokens):
    """The value at a JSON pointer's tokens in the answer, or None."""
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


def body_of(res):
    return res.text or None


# A captured value is kept as trafficgen keeps it: a string or a number, not empty, at most max_len
# bytes, not "." or "..", no control characters, only letters, digits and -._~ when url_safe, and a
# safe absolute path when path; otherwise it is dropped (None).
def kept(value, max_len, url_safe, path=False):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if text in ("", ".", "..") or len(text.encode()) > max_len:
        return None
    if (url_safe and not URL_SAFE.fullmatch(text)) or CONTROL.search(text):
        return None
    if path and not is_safe_path(text):
        return None
    return value


def capture(pool, value, max_len, url_safe, path=False):
    value = kept(value, max_len, url_safe, path)
    if value is not None:
        pool.append(value)


def set_var(v, name, value, max_len, url_safe, path=False):
    """Into the journey instance's own variables; a value not kept leaves the variable as it was."""
    value = kept(value, max_len, url_safe, path)
    if value is not None:
        v[name] = value


# Captures by regular expression: the first group of the first match in the value's text, kept as
# text. trafficgen matches in linear time (Rust's regex); here Python's re matches, which
# backtracks, and a pattern that only Rust reads fails when the file loads.
RE_1 = re.compile("id=([0-9a-f]+)")
RE_2 = re.compile("^([0-9]+)$")
RE_3 = re.compile("\"etag\": *\"([^\"]+)\"")


def group(value, pattern):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = pattern.search(value if isinstance(value, str) else json.dumps(value))
    return None if match is None else match.group(1)


# env(): read from Locust's environment when the file loads, as trafficgen reads its own at load;
# the values are not in this file.
def require_env(name):
    value = os.environ.get(name)
    if value is None:
        raise RuntimeError("%s is not set: the workload reads it with env()" % name)
    return value


ENV = {
    "TRAFFICGEN_ENV_PASSWORD": require_env("TRAFFICGEN_ENV_PASSWORD"),
}


# Data tables: each file is read once when the file loads, from DATA_DIR (by default the folder of
# this file). Copy each file there under the name the workload gives it. Its values are not in this
# file.
DATA_DIR = os.environ.get("DATA_DIR") or os.path.dirname(os.path.abspath(__file__))


def read_table(name, file, columns):
    path = os.path.join(DATA_DIR, file)
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = json.load(f) if file.lower().endswith(".json") else list(csv.DictReader(f))
    if not rows:
        raise RuntimeError("data file %s (table %s) has no rows" % (path, name))
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise RuntimeError("data file %s (table %s) has no column %s" % (path, name, ", ".join(missing)))
    return rows


TABLES = [
    read_table("members", "members.csv", ["username"]),  # order unique
    read_table("items", "items.json", ["sku", "price"]),  # order random
]
CURSORS = [0] * len(TABLES)


def row_of(index, order):
    """The row a new journey instance takes: the next one (from the first again after the last),
    any one, or each once (None when none is left), as trafficgen's cursor per table."""
    rows = TABLES[index]
    if order == "random":
        return random.choice(rows)
    n = CURSORS[index]
    if order == "unique" and n >= len(rows):
        return None
    CURSORS[index] = n + 1
    return rows[n % len(rows)]


def pause_exponential(mean):
    """Exponentially distributed around a mean (the gaps of Poisson arrivals), at most 3600 s."""
    return min(random.expovariate(1 / mean), 3600) if mean > 0 else 0


OK = "ok"
UNMET = "unmet"


def step_result(res, success):
    return OK if success else "no_answer" if res.status_code == 0 else "not_success"


def ends(journey, result, go_on):
    """Whether the instance ends after a step that came to `result` (go on: a failure does not end it)."""
    if result == OK or (go_on and result != UNMET):
        return False
    journey_over(journey, "ended " + result)
    return True


class Traffic(HttpUser):
    host = HOST
    wait_time = constant(0)
    # One connection pool for every request in flight (a journey instance has one at a time).
    pool_manager = PoolManager(maxsize=MAX_IN_FLIGHT + MAX_JOURNEYS, block=False)

    # Pools: bounded deques on the class, shared by every arrival as trafficgen shares its pools.
    pools = {
        "item_ids": deque([], maxlen=20),
    }

    def on_start(self):
        # trafficgen keeps no cookies: neither does this session.
        self.client.cookies.set_policy(cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.in_flight = Pool(MAX_IN_FLIGHT)
        self.running = Pool(MAX_JOURNEYS)

    @task
    def arrivals(self):
        """Starts arrival n at start + arrival_time(n), each in its own greenlet: evenly spread,
        whatever the answers take."""
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
                COUNTS["late"] += 1
                continue
            COUNTS["arrivals"] += 1
            send, journey = draw()
            pool = self.running if journey else self.in_flight
            if pool.full():
                COUNTS["dropped_max_journeys" if journey else "dropped"] += 1
            else:
                pool.spawn(send, self)

    def send_browse(self):
        # browse: weight 3.
        with self.client.request(
            "GET",
            "/items",
            name="browse",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_drop_item(self):
        # drop_item: weight 1.
        pool_item_ids = pick(self.pools["item_ids"])
        if pool_item_ids is None:
            return  # nothing is sent while item_ids is empty (no fallback); trafficgen counts these
        take(self.pools["item_ids"], pool_item_ids)
        with self.client.request(
            "DELETE",
            "/items/" + pct(pool_item_ids),
            name="drop_item",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_boom(self):
        # boom: an error request (sent by error injection only).
        with self.client.request(
            "GET",
            "/error",
            name="boom",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def step_member__login(self, v, rows):
        # member/login: a journey step: it returns how it went.
        with self.client.request(
            "POST",
            "/login",
            name="member/login",
            headers={"Authorization": "Basic " + base64.b64encode((str(rows[0]["username"]) + ":" + ENV["TRAFFICGEN_ENV_PASSWORD"]).encode()).decode(), "Content-Type": "application/json"},
            data=compact({"username": rows[0]["username"]}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
                set_var(v, "token", json_at(res, ("token",)), 256, False)
                set_var(v, "session", group(header_of(res, "set-session"), RE_1), 256, False)
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def step_member__create(self, v, rows):
        # member/create: a journey step: it returns how it went.
        if "token" not in v:
            return UNMET  # a variable no step has captured
        with self.client.request(
            "POST",
            "/items",
            name="member/create",
            headers={"Authorization": "Bearer " + str(v["token"]), "Content-Type": "application/json"},
            data=compact({"sku": rows[1]["sku"], "price": rows[1]["price"]}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = res.status_code == 201
            if success:
                res.success()
                set_var(v, "item_path", header_of(res, "location"), 256, False, True)
                set_var(v, "item_id", group(json_at(res, ("id",)), RE_2), 256, False)
                capture(self.pools["item_ids"], json_at(res, ("id",)), 256, False)
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def step_member__read(self, v, rows):
        # member/read: a journey step: it returns how it went.
        if "item_path" not in v or "token" not in v or "session" not in v:
            return UNMET  # a variable no step has captured
        with self.client.request(
            "GET",
            path_value(v["item_path"]),
            name="member/read",
            headers={"Authorization": "Bearer " + str(v["token"]), "X-Session": str(v["session"])},
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
                set_var(v, "etag", group(body_of(res), RE_3), 256, False)
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def step_member__remove(self, v, rows):
        # member/remove: a journey step: it returns how it went.
        if "item_id" not in v or "token" not in v or "etag" not in v:
            return UNMET  # a variable no step has captured
        with self.client.request(
            "DELETE",
            "/items/" + pct(v["item_id"]),
            name="member/remove",
            headers={"Authorization": "Bearer " + str(v["token"]), "If-Match": str(v["etag"])},
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = res.status_code == 204
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def journey_member(self):
        # Journey member: weight 2.
        rows = {}
        rows[0] = row_of(0, "unique")
        if rows[0] is None:
            return journey_over("member", "not started: no_data")
        rows[1] = row_of(1, "random")
        v = {}
        if ends("member", self.step_member__login(v, rows), False):
            return
        gevent.sleep(2)
        if ends("member", self.step_member__create(v, rows), False):
            return
        gevent.sleep(random.uniform(0.5, 1.5))
        if ends("member", self.step_member__read(v, rows), True):
            return
        gevent.sleep(pause_exponential(1))
        if ends("member", self.step_member__remove(v, rows), False):
            return
        journey_over("member", "completed")


# The mix: each arrival draws one entry in proportion to these weights (weight, method, is a
# journey).
MIX = [
    (21, Traffic.send_browse, False),
    (7, Traffic.send_drop_item, False),
    (18, Traffic.send_boom, False),
    (14, Traffic.journey_member, True),
]
MIX_TOTAL = 60


def draw():
    roll = random.random() * MIX_TOTAL
    for weight, send, journey in MIX:
        if roll < weight:
            return send, journey
        roll -= weight
    return MIX[-1][1], MIX[-1][2]


# What trafficgen counts beside the requests: arrivals, those dropped over a bound or skipped late,
# and journeys by how they ended. Printed when Locust quits.
COUNTS = {"arrivals": 0, "dropped": 0, "dropped_max_journeys": 0, "late": 0}
JOURNEYS = {}


def journey_over(journey, outcome):
    JOURNEYS[(journey, outcome)] = JOURNEYS.get((journey, outcome), 0) + 1


@events.quitting.add_listener
def print_counts(environment, **_kwargs):
    print("Arrivals: %s" % ", ".join("%s %d" % item for item in COUNTS.items()))
    for (journey, outcome), n in sorted(JOURNEYS.items()):
        print("Journey %s: %s %d" % (journey, outcome, n))


# The SLOs, checked on the run's totals when Locust quits: (objective, request name or None for all,
# measure, comparison, limit). Latencies in ms; error_rate a fraction; rps in requests/s (the
# objective's share of the mean target rate over the whole run).
SLOS = [
    ("p95<300ms", None, "p95", "<", 300),
    ("rps>=90%", None, "rps", ">=", 15.3),
    ("browse:p99<1s", ("browse", "GET"), "p99", "<", 1000),
]
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
COMPARE = {
    "<": lambda value, limit: value < limit,
    "<=": lambda value, limit: value <= limit,
    ">": lambda value, limit: value > limit,
    ">=": lambda value, limit: value >= limit,
}


def measure(entry, what):
    if entry is None or entry.num_requests == 0:
        return None
    if what == "error_rate":
        return entry.fail_ratio
    if what == "rps":
        return entry.total_rps
    if what == "max":
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
        print("SLO %s: %s (%s)" % (objective, "met" if met else "MISSED", "no requests" if value is None else value))
    environment.process_exit_code = 1 if missed else 0
