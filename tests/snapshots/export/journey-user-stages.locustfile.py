# Locust file made by `trafficgen export --format locust` from
# examples/workloads/journey-users.yaml.
# Traffic: virtual users over 390 s: 0 → 20 users over 60 s, then 20 users for 300 s, then 20 →
# 0 users over 30 s.
#
#   DATA_DIR=. locust -f script.locustfile.py --headless --host http://127.0.0.1:8080
#
# trafficgen's users mode, a closed model: each Locust user is a virtual user whose task is one
# arrival, one request or one journey instance (its steps one after the other, each after the
# previous answer and its pause), drawn by weight as trafficgen draws them, run to its end; then it
# waits 2 s (wait_time), and again. A LoadTestShape moves the number of users along the stages
# (which count users, not requests), at each stage's own pace. A closed model slows down with the
# target and hides its queueing (coordinated omission): latencies are measured from the send, but
# requests that would have been due while users waited are never sent. Run it in one process (no
# --processes, no workers). Redirects are not followed and no cookies are kept. With SLOs, the exit
# code is 1 when one is missed, 0 otherwise.

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
from locust import HttpUser, LoadTestShape, constant, events, task
from urllib3 import PoolManager

HOST = os.environ.get("TARGET_URL", "http://nginx").rstrip("/")

# The users: stages of (seconds, users at the start, users at the end), linear in between.
STAGES = [
    (60, 0, 20),
    (300, 20, 20),
    (30, 20, 0),
]
DURATION = 390
PEAK_USERS = 20
# Users per second that start or stop "at once": all of the peak within a second.
SPAWN_AT_ONCE = 20


def users(x):
    return int(x + 0.5)


class TrafficShape(LoadTestShape):
    """The users the stages give. Over a rising or falling stage, Locust moves to the stage's end
    at the stage's own pace (its change over its duration, users/s), as trafficgen's ramp; a stage
    that holds, and a jump between stages, is reached at once. Then the run stops (Locust asks
    once a second, so up to a second after the stages end)."""

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
    read_table("accounts", "accounts.csv", ["username", "password"]),  # order sequential
]
CURSORS = [0] * len(TABLES)


def row_of(index, order):
    """The row a new journey instance takes: the next one (from the first again after the last),
    any one, or each once (None when none is left), as trafficgen's cursor per table."""
    rows = TABLES[index]
    n = CURSORS[index]
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
    # The users' pause after each arrival: 2 s.
    wait_time = constant(2)
    # One connection pool for all users (each has one request in flight at a time).
    pool_manager = PoolManager(maxsize=PEAK_USERS, block=False)

    def on_start(self):
        # trafficgen keeps no cookies: neither does this session.
        self.client.cookies.set_policy(cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    @task
    def arrival(self):
        """One arrival, drawn by weight, run to its end (a journey's pauses included); then
        Locust waits wait_time, and runs the task again."""
        COUNTS["arrivals"] += 1
        send, _journey = draw()
        send(self)

    def step_user_lifecycle__login(self, v, rows):
        # user_lifecycle/login: a journey step: it returns how it went.
        with self.client.request(
            "POST",
            "/login",
            name="user_lifecycle/login",
            headers={"Content-Type": "application/json"},
            data=compact({"username": rows[0]["username"], "password": rows[0]["password"]}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
                set_var(v, "token", json_at(res, ("token",)), 256, False)
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def step_user_lifecycle__create(self, v, rows):
        # user_lifecycle/create: a journey step: it returns how it went.
        if "token" not in v:
            return UNMET  # a variable no step has captured
        with self.client.request(
            "POST",
            "/users",
            name="user_lifecycle/create",
            headers={"Authorization": "Bearer " + str(v["token"]), "Content-Type": "application/json"},
            data=compact({"name": str(rows[0]["username"]) + "-" + random_string(6), "age": random.randint(18, 90)}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = res.status_code == 201
            if success:
                res.success()
                set_var(v, "user_id", json_at(res, ("id",)), 256, False)
                set_var(v, "user_path", header_of(res, "location"), 256, False, True)
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def step_user_lifecycle__read(self, v, rows):
        # user_lifecycle/read: a journey step: it returns how it went.
        if "user_path" not in v or "token" not in v:
            return UNMET  # a variable no step has captured
        with self.client.request(
            "GET",
            path_value(v["user_path"]),
            name="user_lifecycle/read",
            headers={"Authorization": "Bearer " + str(v["token"])},
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def step_user_lifecycle__update(self, v, rows):
        # user_lifecycle/update: a journey step: it returns how it went.
        if "user_id" not in v or "token" not in v:
            return UNMET  # a variable no step has captured
        with self.client.request(
            "PATCH",
            "/users/" + pct(v["user_id"]),
            name="user_lifecycle/update",
            headers={"Authorization": "Bearer " + str(v["token"]), "Content-Type": "application/json"},
            data=compact({"status": "away"}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def step_user_lifecycle__delete(self, v, rows):
        # user_lifecycle/delete: a journey step: it returns how it went.
        if "user_id" not in v or "token" not in v:
            return UNMET  # a variable no step has captured
        with self.client.request(
            "DELETE",
            "/users/" + pct(v["user_id"]),
            name="user_lifecycle/delete",
            headers={"Authorization": "Bearer " + str(v["token"])},
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = res.status_code == 204
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)
        return step_result(res, success)

    def journey_user_lifecycle(self):
        # Journey user_lifecycle: weight 1.
        rows = {}
        rows[0] = row_of(0, "sequential")
        v = {}
        if ends("user_lifecycle", self.step_user_lifecycle__login(v, rows), False):
            return
        gevent.sleep(random.uniform(0.5, 2))
        if ends("user_lifecycle", self.step_user_lifecycle__create(v, rows), False):
            return
        gevent.sleep(random.uniform(0.5, 2))
        if ends("user_lifecycle", self.step_user_lifecycle__read(v, rows), False):
            return
        gevent.sleep(pause_exponential(1))
        if ends("user_lifecycle", self.step_user_lifecycle__update(v, rows), False):
            return
        gevent.sleep(random.uniform(0.5, 2))
        if ends("user_lifecycle", self.step_user_lifecycle__delete(v, rows), False):
            return
        journey_over("user_lifecycle", "completed")


# The mix: each arrival draws one entry in proportion to these weights (weight, method, is a
# journey).
MIX = [
    (1, Traffic.journey_user_lifecycle, True),
]
MIX_TOTAL = 1


def draw():
    roll = random.random() * MIX_TOTAL
    for weight, send, journey in MIX:
        if roll < weight:
            return send, journey
        roll -= weight
    return MIX[-1][1], MIX[-1][2]


# What trafficgen counts beside the requests: arrivals, and journeys by how they ended. Printed when
# Locust quits.
COUNTS = {"arrivals": 0}
JOURNEYS = {}


def journey_over(journey, outcome):
    JOURNEYS[(journey, outcome)] = JOURNEYS.get((journey, outcome), 0) + 1


@events.quitting.add_listener
def print_counts(environment, **_kwargs):
    print("Arrivals: %s" % ", ".join("%s %d" % item for item in COUNTS.items()))
    for (journey, outcome), n in sorted(JOURNEYS.items()):
        print("Journey %s: %s %d" % (journey, outcome, n))


