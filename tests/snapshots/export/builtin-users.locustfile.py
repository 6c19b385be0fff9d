# Locust file made by `trafficgen export --format locust` from the built-in orders workload
# (MIX=create_order=60,list_orders=25,get_order=15, ID_BUFFER_SIZE=50).
# Traffic: virtual users over 120 s: 0 → 20 users over 10 s, then 20 users for 110 s.
#
#   locust -f script.locustfile.py --headless --host http://127.0.0.1:8080
#
# trafficgen's users mode, a closed model: each Locust user is a virtual user whose task is one
# arrival, one request, drawn by weight as trafficgen draws it, run to its end; then it waits 1 to 3
# s (uniform) (wait_time), and again. A LoadTestShape moves the number of users along the stages
# (which count users, not requests), at each stage's own pace. A closed model slows down with the
# target and hides its queueing (coordinated omission): latencies are measured from the send, but
# requests that would have been due while users waited are never sent. Run it in one process (no
# --processes, no workers). Redirects are not followed and no cookies are kept. With SLOs, the exit
# code is 1 when one is missed, 0 otherwise.

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
from locust import HttpUser, LoadTestShape, between, events, task
from urllib3 import PoolManager

HOST = os.environ.get("TARGET_URL", "http://nginx").rstrip("/")

# The users: stages of (seconds, users at the start, users at the end), linear in between.
STAGES = [
    (10, 0, 20),
    (110, 20, 20),
]
DURATION = 120
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


def pick(pool):
    return random.choice(pool) if pool else None


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


class Traffic(HttpUser):
    host = HOST
    # The users' pause after each arrival: 1 to 3 s (uniform).
    wait_time = between(1, 3)
    # One connection pool for all users (each has one request in flight at a time).
    pool_manager = PoolManager(maxsize=PEAK_USERS, block=False)

    # Pools: bounded deques on the class, shared by every arrival as trafficgen shares its pools.
    pools = {
        "order_ids": deque([], maxlen=50),
    }

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

    def send_create_order(self):
        # create_order: weight 60.
        with self.client.request(
            "POST",
            "/orders",
            name="create_order",
            headers={"Content-Type": "application/json"},
            data=compact({"product_id": random.randint(1, 10), "quantity": random.randint(1, 5)}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
                capture(self.pools["order_ids"], json_at(res, ("id",)), 64, True)
            else:
                res.failure("status %d" % res.status_code)

    def send_list_orders(self):
        # list_orders: weight 25.
        with self.client.request(
            "GET",
            "/orders",
            name="list_orders",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_get_order(self):
        # get_order: weight 15.
        pool_order_ids = pick(self.pools["order_ids"])
        if pool_order_ids is None:
            return self.send_create_order()  # the fallback, while order_ids is empty
        with self.client.request(
            "GET",
            "/orders/" + pct(pool_order_ids),
            name="get_order",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_order_error(self):
        # order_error: an error request (sent by error injection only).
        with self.client.request(
            "GET",
            "/orders/error?rate=0.5",
            name="order_error",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
            else:
                res.failure("status %d" % res.status_code)


# The mix: each arrival draws one entry in proportion to these weights (weight, method, is a
# journey).
MIX = [
    (60, Traffic.send_create_order, False),
    (25, Traffic.send_list_orders, False),
    (15, Traffic.send_get_order, False),
]
MIX_TOTAL = 100


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


# The SLOs, checked on the run's totals when Locust quits: (objective, request name or None for all,
# measure, comparison, limit). Latencies in ms; error_rate a fraction; rps in requests/s (the
# objective's share of the mean target rate over the whole run).
SLOS = [
    ("p95<300ms", None, "p95", "<", 300),
]
# rps>=90%: users mode has no target rate to compare with; left out.
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
