# Locust file made by `trafficgen export --format locust` from tests/fixtures/export/hostile.yaml.
# Traffic: scenario error_injection over 90 s up to 7.5 requests/s: 0 → 7.5/s over 1.5 s, then
# 7.5/s for 88.5 s.
#
#   locust -f script.locustfile.py --headless --host http://127.0.0.1:8080
#
# An open model, as trafficgen's: one user (the pacer) starts each arrival at its scheduled time,
# spread evenly over the rate, whatever the answers take; an arrival is one request, drawn by weight
# as trafficgen draws it. Run it in one process (no --processes, no workers): the pacer is one user.
# Redirects are not followed and no cookies are kept. With SLOs, the exit code is 1 when one is
# missed, 0 otherwise.

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
    (1.5, 0, 7.5),
    (88.5, 7.5, 7.5),
]
DURATION = 90
# Bounds, as trafficgen's: arrivals over them are dropped and counted, never queued.
MAX_IN_FLIGHT = 512
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
    wait_time = constant(0)
    # One connection pool for every request in flight (a journey instance has one at a time).
    pool_manager = PoolManager(maxsize=MAX_IN_FLIGHT, block=False)

    # Pools: bounded deques on the class, shared by every arrival as trafficgen shares its pools.
    pools = {
        "tokens": deque(["seed\"quote", "back\\slash", 42], maxlen=3),
        "ids": deque([], maxlen=50),
    }

    def on_start(self):
        # trafficgen keeps no cookies: neither does this session.
        self.client.cookies.set_policy(cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.in_flight = Pool(MAX_IN_FLIGHT)
        # Setup requests: sent before the first arrival, and again every 30 s.
        self.run_setup()
        gevent.spawn(self.setup_again)

    def run_setup(self):
        self.send_login()

    def setup_again(self):
        while True:
            gevent.sleep(30)
            self.run_setup()

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
            if self.in_flight.full():
                COUNTS["dropped"] += 1
            else:
                self.in_flight.spawn(send, self)

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
            success = 200 <= res.status_code <= 299
            if success:
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
            success = 200 <= res.status_code <= 299
            if success:
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
            success = 200 <= res.status_code <= 299
            if success:
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
            success = 200 <= res.status_code <= 299
            if success:
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
            success = 200 <= res.status_code <= 299
            if success:
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
            success = 200 <= res.status_code <= 299
            if success:
                res.success()
                capture(self.pools["tokens"], json_at(res, ("token",)), 256, False)
            else:
                res.failure("status %d" % res.status_code)


# The mix: each arrival draws one entry in proportion to these weights (weight, method, is a
# journey).
MIX = [
    (3, Traffic.send_create, False),
    (2, Traffic.send_read, False),
    (1, Traffic.send_raw, False),
    (1, Traffic.send_text, False),
    (3, Traffic.send_broken, False),
]
MIX_TOTAL = 10


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
