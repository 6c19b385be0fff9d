# Locust file made by `trafficgen export --format locust` from examples/workloads/orders.yaml.
# Traffic: scenario error_injection over 60 s up to 20 requests/s: 0 → 20/s over 10 s, then 20/s
# for 50 s.
#
#   locust -f script.locustfile.py --headless --host http://127.0.0.1:8080
#
# The shape below plays the rate and stops the run at its end; each task sends one request, drawn by
# weight as trafficgen draws it. Redirects are not followed. With SLOs, the exit code is 1 when one
# is missed, 0 otherwise.

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

HOST = os.environ.get("TARGET_URL", "http://nginx").rstrip("/")

# The rate: stages of (seconds, requests/s at the start, requests/s at the end), linear in between.
STAGES = [
    (10, 0, 20),
    (50, 20, 20),
]
DURATION = 60
# Locust is a closed model: a user waits for each answer. To send an arrival rate, each user sends
# at most USER_RPS requests a second (constant_throughput) and the shape runs rate / USER_RPS users,
# so the rate holds while answers take less than 1 / USER_RPS s; a slower target gets fewer requests
# than trafficgen would send it (trafficgen keeps the rate, with more requests in flight).
PEAK_RPS = 20
USERS = 20
USER_RPS = PEAK_RPS / USERS


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


# A captured value is kept as trafficgen keeps it: a string or a number, not empty, at most max_len
# bytes, not "." or "..", no control characters, and only letters, digits and -._~ when url_safe.
def capture(pool, value, max_len, url_safe):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return
    text = value if isinstance(value, str) else json.dumps(value)
    if text in ("", ".", "..") or len(text.encode()) > max_len:
        return
    if (url_safe and not URL_SAFE.fullmatch(text)) or CONTROL.search(text):
        return
    pool.append(value)


class Traffic(HttpUser):
    host = HOST
    wait_time = constant_throughput(USER_RPS)

    # Pools: bounded deques on the class, shared by every user of this Locust process as trafficgen
    # shares its pools (with several processes or workers, each process has its own).
    pools = {
        "order_ids": deque([], maxlen=50),
    }

    @task(84)
    def task_create_order(self):
        self.send_create_order()

    @task(35)
    def task_list_orders(self):
        self.send_list_orders()

    @task(21)
    def task_get_order(self):
        self.send_get_order()

    @task(60)
    def task_order_error(self):
        self.send_order_error()

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
            if 200 <= res.status_code <= 299:
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
            if 200 <= res.status_code <= 299:
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
            if 200 <= res.status_code <= 299:
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
            if 200 <= res.status_code <= 299:
                res.success()
            else:
                res.failure("status %d" % res.status_code)


# The SLOs, checked on the run's totals when Locust quits: (objective, request name or None for all,
# measure, comparison, limit). Latencies in ms; error_rate a fraction; rps in requests/s (the
# objective's share of the mean target rate over the whole run).
SLOS = [
    ("p95<300ms", None, "p95", "<", 300),
    ("error_rate<40%", None, "error_rate", "<", 0.4),
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
