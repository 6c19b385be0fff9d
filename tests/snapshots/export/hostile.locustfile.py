# Locust file made by `trafficgen export --format locust` from tests/fixtures/export/hostile.yaml.
# Traffic: scenario error_injection over 90 s up to 7.5 requests/s: 0 → 7.5/s over 1.5 s, then
# 7.5/s for 88.5 s.
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
    (1.5, 0, 7.5),
    (88.5, 7.5, 7.5),
]
DURATION = 90
# Locust is a closed model: a user waits for each answer. To send an arrival rate, each user sends
# at most USER_RPS requests a second (constant_throughput) and the shape runs rate / USER_RPS users,
# so the rate holds while answers take less than 1 / USER_RPS s; a slower target gets fewer requests
# than trafficgen would send it (trafficgen keeps the rate, with more requests in flight).
PEAK_RPS = 7.5
USERS = 8
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
        "tokens": deque(["seed\"quote", "back\\slash", 42], maxlen=3),
        "ids": deque([], maxlen=50),
    }

    # Setup requests: sent before the traffic by the first user to start (the others wait for them),
    # and again every 30 s.
    setup_lock = gevent.lock.Semaphore()
    setup_due = 0.0

    def on_start(self):
        self.run_setup_when_due()

    def run_setup_when_due(self):
        with Traffic.setup_lock:
            if time.monotonic() < Traffic.setup_due:
                return
            Traffic.setup_due = time.monotonic() + 30
            self.send_login()

    @task(3)
    def task_create(self):
        self.run_setup_when_due()
        self.send_create()

    @task(2)
    def task_read(self):
        self.run_setup_when_due()
        self.send_read()

    @task(1)
    def task_raw(self):
        self.run_setup_when_due()
        self.send_raw()

    @task(1)
    def task_text(self):
        self.run_setup_when_due()
        self.send_text()

    @task(3)
    def task_broken(self):
        self.run_setup_when_due()
        self.send_broken()

    def send_create(self):
        # create: weight 3.
        pool_tokens = pick(self.pools["tokens"])
        if pool_tokens is None:
            return  # nothing is sent while tokens is empty (no fallback); trafficgen counts these
        with self.client.request(
            "POST",
            "/users/it's/(a)*!$&+,;=:@?q=a%20b%26c%3Dd%2F%C3%A9%22%27%5C&n=" + pct(random.randint(-5000000000, 5000000000)),
            name="create",
            headers={"X-Quote": "\"double\" 'single' `back` \\ */ # -- ${injected} {{ not a template", "Authorization": "Bearer " + str(pool_tokens), "Content-Type": "application/json"},
            data=compact({"name": "line\nbreak\ttab \u2028 separator \u0001 control", "nested": {"list": [1, "two", None, True, 1500.0], "key \"with\" quotes": random.choice(["a\"b", "c'd", "x,y", 7])}, "when": now(), "at": int(time.time() * 1000), "n": seq()}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            if 200 <= res.status_code <= 299:
                res.success()
                capture(self.pools["ids"], header_of(res, "location"), 64, True)
                capture(self.pools["ids"], json_at(res, ("data", "0", "a/b")), 256, False)
            else:
                res.failure("status %d" % res.status_code)

    def send_read(self):
        # read: weight 2.
        pool_ids = pick(self.pools["ids"])
        if pool_ids is None:
            return self.send_create()  # the fallback, while ids is empty
        with self.client.request(
            "GET",
            "/users/" + pct(pool_ids) + "/" + pct(str(uuid.uuid4())),
            name="read",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            if 200 <= res.status_code <= 299:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_raw(self):
        # raw: weight 1.
        pool_ids = pick(self.pools["ids"])
        pool_tokens = pick(self.pools["tokens"])
        if pool_ids is None or pool_tokens is None:
            return self.send_create()  # the fallback, while ids or tokens is empty
        with self.client.request(
            "PUT",
            "/raw",
            name="raw",
            headers={"Content-Type": "application/json"},
            data=("{\"id\": " + json_value(pool_ids) + ", \"note\": \"x " + json_text(pool_tokens) + " \\\"q\\\"\", \"s\": " + json_value(random_string(4)) + "}").encode(),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            if 200 <= res.status_code <= 299:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_text(self):
        # text: weight 1.
        with self.client.request(
            "POST",
            "/text",
            name="text",
            headers={"Content-Type": "text/plain"},
            data=("\"\"\" ''' */ <!-- " + str(random.choice(["a", "b"])) + " --> \\").encode(),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            if 200 <= res.status_code <= 299:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_broken(self):
        # broken: an error request (sent by error injection only).
        with self.client.request(
            "DELETE",
            "/broken",
            name="broken",
            allow_redirects=False,
            catch_response=True,
        ) as res:
            if 200 <= res.status_code <= 299:
                res.success()
            else:
                res.failure("status %d" % res.status_code)

    def send_login(self):
        # login: a setup request.
        with self.client.request(
            "POST",
            "/login",
            name="login",
            headers={"Content-Type": "application/json"},
            data=compact({"username": "u\"s'e`r ${x} */ \"\"\" ''' </script>", "password": "demo"}),
            allow_redirects=False,
            catch_response=True,
        ) as res:
            if 200 <= res.status_code <= 299:
                res.success()
                capture(self.pools["tokens"], json_at(res, ("token",)), 256, False)
            else:
                res.failure("status %d" % res.status_code)


# The SLOs, checked on the run's totals when Locust quits: (objective, request name or None for all,
# measure, comparison, limit). Latencies in ms; error_rate a fraction; rps in requests/s (the
# objective's share of the mean target rate over the whole run).
SLOS = [
    ("p50<=20ms", None, "p50", "<=", 20),
    ("max<2s", None, "max", "<", 2000),
    ("create:error_rate<1%", ("create", "POST"), "error_rate", "<", 0.01),
    ("read:rps>=50%", ("read", "GET"), "rps", ">=", 0.744),
    ("broken:rps>=1%", ("broken", "DELETE"), "rps", ">=", 0.022),
    ("raw:p90>1ms", ("raw", "PUT"), "p90", ">", 1),
]
# login:rps>=1%: `login` is never drawn by weight, so it has no target rate to compare with; left
# out.
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
