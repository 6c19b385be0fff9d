#!/usr/bin/env python3
"""trafficgen benchmark driver (python3 standard library only).

Started by bench/run.sh, which installs the tools and builds trafficgen; it
can also be run alone:  TG_BIN=target/release/trafficgen python3 bench/bench.py

It starts every process itself, each under `timeout` (so every run is bounded
even if this script dies) and pinned with `taskset`: the target (nginx, one
worker, or the built-in demo target) on TARGET_CPU, the generator on
GEN_CPU. It stops only the processes it started, by PID. Requests are counted
at the target (nginx stub_status, minus our own polls; the demo target's
demo_target_requests_total); generator CPU is the utime+stime delta of
/proc/PID/stat over the measured window only; peak RSS is VmHWM.

Writes OUT_DIR/results.json (raw runs and medians); bench/report.py turns it
into markdown. Settings (environment):

  TG_BIN       trafficgen binary (required)
  OUT_DIR      where results.json and logs go          (bench/out)
  REPEATS      runs per figure, the median is reported  (3)
  SECS         measured window of a run, seconds        (10)
  LOW_SECS     window for rates below 10 req/s          (30)
  WARM_SECS    run time before the window opens         (2)
  RATES        trafficgen accuracy rates                (2 20 100 1000 10000)
  PEER_RATES   fixed rates for the peers                (1000 10000)
  CEIL_STEPS   ceiling search steps, req/s              (10000 20000 ... 100000)
  CEIL_SECS    window of one ceiling step               (5)
  IDLE_SECS    idle-cost window                         (60)
  DEMO_RATES   trafficgen rates against the demo target (1000 10000)
  TG_HEADROOM  MAX_RPS of trafficgen's rate runs, times the rate  (1: at the cap)
  FIGURES      which figures to measure                 (accuracy peers ceiling switch idle demo users https)
  USERS_WORKLOAD  workload file of the `users` figure   (examples/workloads/users-crud.yaml)
  JOURNEY_RATE requests/s of the `journeys` figure       (2000)
  HTTPS_RATES  rates of the https-next-to-http figure   (1000; trafficgen, oha and hey)
  PEERS        which peers (those not installed are skipped)  (wrk oha hey locust)
  PEER_PATH    path the peers request on nginx          (/orders/1)
  PEER_CONNS   connections of the closed-loop peers     (50)
  GEN_CPU / TARGET_CPU                                  (0 / 1)
  OHA_BIN      oha binary                               (oha on PATH or ~/.cargo/bin/oha)
  LOCUST_PYTHON  python with locust installed           (this python)
  BENCH_PIDFILE  file to append started PIDs to (run.sh's cleanup reads it)
"""

import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_list(name, default):
    return os.environ.get(name, default).split()


TG_BIN = os.environ.get("TG_BIN", "")
OUT_DIR = os.path.abspath(os.environ.get("OUT_DIR", os.path.join(HERE, "out")))
REPEATS = env_int("REPEATS", 3)
SECS = env_int("SECS", 10)
LOW_SECS = env_int("LOW_SECS", 30)
WARM_SECS = float(os.environ.get("WARM_SECS", "2"))
RATES = [float(r) for r in env_list("RATES", "2 20 100 1000 10000")]
PEER_RATES = [float(r) for r in env_list("PEER_RATES", "1000 10000")]
CEIL_STEPS = [float(r) for r in env_list("CEIL_STEPS", "10000 20000 30000 40000 50000 55000 60000 70000 80000 100000")]
CEIL_SECS = env_int("CEIL_SECS", 5)
IDLE_SECS = env_int("IDLE_SECS", 60)
DEMO_RATES = [float(r) for r in env_list("DEMO_RATES", "1000 10000")]
# MAX_RPS of the rate runs, as a multiple of the rate (at least 1000, the
# default): 1 runs a rate at its cap, as a user who asks the default cap's
# 1 000 req/s does (the engine then keeps a 1 ms send window); 2 leaves
# room, as a rate below the cap has (a window of about four requests).
TG_HEADROOM = float(os.environ.get("TG_HEADROOM", "1"))
FIGURES = env_list("FIGURES", "accuracy peers ceiling switch idle demo users journeys https spans")
JOURNEY_RATE = float(os.environ.get("JOURNEY_RATE", 2000))
USERS_WORKLOAD = os.path.abspath(
    os.environ.get("USERS_WORKLOAD", os.path.join(HERE, "..", "examples", "workloads", "users-crud.yaml")))
# Figures measured against nginx (the others bring their own target).
NGINX_FIGURES = ("accuracy", "peers", "ceiling", "profile", "idle", "journeys", "spans")
HTTPS_RATES = [float(r) for r in env_list("HTTPS_RATES", "1000")]
# Spans (issue 28): the rate, and how long each collector fault is held.
SPANS_RATE = float(os.environ.get("SPANS_RATE", "2000"))
SPANS_FAULT_SECS = env_int("SPANS_FAULT_SECS", 30)
PEERS = env_list("PEERS", "wrk oha hey locust")
PEER_PATH = os.environ.get("PEER_PATH", "/orders/1")
PEER_CONNS = env_int("PEER_CONNS", 50)
GEN_CPU = os.environ.get("GEN_CPU", "0")
TARGET_CPU = os.environ.get("TARGET_CPU", "1")
PIDFILE = os.environ.get("BENCH_PIDFILE")
# Bound on the long-lived target processes (nginx, demo target).
TARGET_BOUND = env_int("TARGET_BOUND_SECS", 3600)

LOG_DIR = os.path.join(OUT_DIR, "logs")
STARTED = []  # every Proc we started, for cleanup
TEMP_DIRS = []  # nginx prefixes, removed at exit
NGINXES = []  # stopped first at exit (their workers too)
COMMANDS = {}  # kind -> one representative command line (for RESULTS.md)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


class Proc:
    """A process started as `timeout BOUND taskset -c CPU cmd...`.

    `pid` is the measured program itself (timeout's child; taskset execs it).
    """

    def __init__(self, name, cmd, cpu, bound_secs, env=None, kind=None):
        os.makedirs(LOG_DIR, exist_ok=True)
        self.name = name
        self.pid = self.start = None
        self.log_path = os.path.join(LOG_DIR, f"{name}.log")
        full = ["timeout", "-k", "5", f"{int(math.ceil(bound_secs))}s", "taskset", "-c", str(cpu)] + [str(c) for c in cmd]
        if kind and kind not in COMMANDS:
            shown_env = ""
            if env is not None:
                shown_env = " ".join(f"{k}={v}" for k, v in sorted(env.items()) if os.environ.get(k) != v) + " "
            COMMANDS[kind] = shown_env + " ".join(full)
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        STARTED.append(self)
        self.tstart = start_time(self.popen.pid)
        self.pid = self._child_pid(cmd[0])
        self.start = start_time(self.pid)
        if PIDFILE:  # "PID STARTTIME": run.sh's cleanup kills only that very process
            with open(PIDFILE, "a") as f:
                f.write(f"{self.popen.pid} {self.tstart}\n{self.pid} {self.start}\n")

    def _child_pid(self, program):
        deadline = time.monotonic() + 5
        tpid = self.popen.pid
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{tpid}/task/{tpid}/children") as f:
                    kids = f.read().split()
                if kids:
                    kid = int(kids[0])
                    exe = os.readlink(f"/proc/{kid}/exe")
                    if os.path.basename(exe) != "taskset":
                        return kid
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited at once; see {self.log_path}")
            time.sleep(0.005)
        raise RuntimeError(f"{self.name}: could not find the program's PID under timeout {tpid}")

    def alive(self):
        return self.popen.poll() is None

    def stop(self, grace=8.0):
        """SIGTERM to timeout (it passes it on), then SIGKILL, by PID only."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        # If timeout died first, its child may remain (reparented): kill it by
        # PID, but only if that PID is still the process we started.
        if self.pid and start_time(self.pid) == self.start:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_all():
    for n in NGINXES:
        try:
            n.stop()
        except Exception as e:
            log(f"cleanup of nginx: {e}")
    for p in reversed(STARTED):
        try:
            p.stop(grace=5)
        except Exception as e:  # cleanup must go on
            log(f"cleanup of {p.name}: {e}")
    for d in TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


def start_time(pid):
    """Field 22 of /proc/PID/stat (start time in ticks since boot), or None:
    with the PID it names one process, whatever PIDs are reused later."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def cpu_ns(pid):
    """Run time in ns of all live threads (/proc/PID/task/*/schedstat):
    finer than the 10 ms ticks of /proc/PID/stat, for the idle figure."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def cpu_busy_ticks():
    """{cpu number: busy ticks} from /proc/stat (all processes, also other
    containers sharing this kernel)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = [int(v) for v in parts[1:]]
                idle = vals[3] + vals[4]  # idle + iowait
                out[parts[0][3:]] = sum(vals[:8]) - idle
    return out


def pids_ticks(pids):
    total = 0
    for p in pids:
        try:
            total += cpu_ticks(p)
        except FileNotFoundError:
            pass
    return total


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, port, path, body=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def http_get(port, path, timeout=5.0):
    return request("GET", port, path, timeout=timeout)


def wait_until(check, secs, what):
    deadline = time.monotonic() + secs
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what} ({last})")


# ------------------------------------------------------------------ targets


class Nginx:
    """nginx from bench/nginx.conf in a private prefix, one worker."""

    kind = "nginx"

    def __init__(self, access_log=False, name="nginx", tls=False):
        self.prefix = tempfile.mkdtemp(prefix="tg-bench-nginx-")
        TEMP_DIRS.append(self.prefix)
        if PIDFILE:  # run.sh removes these if we die before we can
            with open(PIDFILE + ".dirs", "a") as f:
                f.write(self.prefix + "\n")
        for d in ("conf", "logs", "tmp"):
            os.makedirs(os.path.join(self.prefix, d))
        shutil.copy(os.path.join(HERE, "nginx.conf"), os.path.join(self.prefix, "conf", "nginx.conf"))
        self.port = free_port()
        listen = f"listen 127.0.0.1:{self.port} reuseport;\n"
        if tls:
            # Traffic on an ssl port; stub_status stays on the plain one.
            self.tls_port = free_port()
            self.ca_file = make_certificates(os.path.join(self.prefix, "conf"))
            listen += (f"listen 127.0.0.1:{self.tls_port} ssl reuseport;\n"
                       "ssl_certificate cert.pem;\nssl_certificate_key key.pem;\n")
        with open(os.path.join(self.prefix, "conf", "listen.conf"), "w") as f:
            f.write(listen)
        self.access_log = os.path.join(self.prefix, "logs", "access.log") if access_log else None
        with open(os.path.join(self.prefix, "conf", "access_log.conf"), "w") as f:
            f.write("access_log logs/access.log stamp;\n" if access_log else "access_log off;\n")
        self.polls = 0
        NGINXES.append(self)
        self.proc = Proc(name, ["nginx", "-p", self.prefix, "-c", "conf/nginx.conf"], TARGET_CPU, TARGET_BOUND,
                         kind="nginx")
        wait_until(lambda: self._raw() is not None, 10, "nginx")
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu_pids(self):
        """The worker process(es): children of the master."""
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(p) for p in f.read().split()] or [self.proc.pid]
        except FileNotFoundError:
            return []

    def _raw(self):
        _, body = http_get(self.port, "/nginx_status")
        self.polls += 1
        m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", body, re.M)
        # Connections accepted, not counting the one of each poll.
        self.accepts = int(m.group(1)) - self.polls
        return int(m.group(3))

    def count(self):
        """Requests nginx has seen, not counting our own stub_status polls
        (each poll counts itself, so after n polls subtract n)."""
        raw = self._raw()
        return raw - self.polls

    def stop(self):
        workers = [(p, start_time(p)) for p in self.cpu_pids() if p != self.proc.pid]
        self.proc.stop()
        # The master stops its workers on SIGTERM; if it had to be killed,
        # they would be left behind: ours by PID and start time.
        for pid, start in workers:
            if start is not None and start_time(pid) == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.prefix, ignore_errors=True)


def make_certificates(directory):
    """A CA and a certificate for 127.0.0.1 it signed (EC P-256) in
    `directory` (cert.pem, key.pem); returns the CA file."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=trafficgen bench CA")
    run("req", *ec, "-keyout", "key.pem", "-out", "cert.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "cert.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "cert.pem", "-days", "2", "-extfile", "cert.ext")
    return os.path.join(directory, "ca.pem")


class DemoTarget:
    """`trafficgen demo-target`, one worker; counted by its own metrics."""

    kind = "demo"

    def __init__(self):
        self.port = free_port()
        env = dict(os.environ, LOG_FORMAT="json")
        self.proc = Proc("demo-target", [TG_BIN, "demo-target", "--port", self.port, "--bind", "127.0.0.1",
                                         "--workers", "1"], TARGET_CPU, TARGET_BOUND, env=env, kind="demo-target")
        wait_until(lambda: http_get(self.port, "/health")[0] == 200, 10, "demo target")
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu_pids(self):
        return [self.proc.pid]

    def count(self):
        _, body = http_get(self.port, "/metrics")
        return int(sum(v for _, v in metric_samples(body, "demo_target_requests_total")))

    def stop(self):
        self.proc.stop()


# --------------------------------------------------------------- trafficgen


def metric_samples(text, name):
    """[(labels-string, value)] of one metric family's samples."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            labels = head[len(name):]
            out.append((labels, float(value)))
    return out


def lag_buckets(text):
    """{upper bound (float): cumulative count} of the schedule-lag histogram."""
    b = {}
    for labels, v in metric_samples(text, "trafficgen_schedule_lag_seconds_bucket"):
        le = re.search(r'le="([^"]+)"', labels).group(1)
        b[float("inf") if le == "+Inf" else float(le)] = v
    return b


def tg_counts(text):
    ok = failed = 0.0
    for labels, v in metric_samples(text, "trafficgen_requests_total"):
        if re.search(r'code="2\d\d"', labels):
            ok += v
        else:
            failed += v
    dropped = sum(v for _, v in metric_samples(text, "trafficgen_dropped_requests_total"))
    return {"ok": ok, "failed": failed, "dropped": dropped, "lag": lag_buckets(text)}


def p99_bound(b0, b1):
    """Smallest histogram bound under which >= 99 % of the window's samples fall."""
    total = b1.get(float("inf"), 0) - b0.get(float("inf"), 0)
    if total <= 0:
        return None
    for le in sorted(b1):
        if (b1[le] - b0.get(le, 0)) >= 0.99 * total:
            return le
    return float("inf")


class Trafficgen:
    def __init__(self, target_url, cap, initial_mode="pause", name="trafficgen", bound=120, extra_env=None):
        self.log_path = os.path.join(LOG_DIR, f"{name}.log")
        if os.path.exists(self.log_path):
            os.remove(self.log_path)
        env = dict(os.environ, TARGET_URL=target_url, PORT="0", BIND="127.0.0.1", WARMUP_SECS="0",
                   INITIAL_MODE=initial_mode, MAX_RPS=str(int(max(1000, math.ceil(cap)))), LOG_FORMAT="json",
                   STATS_INTERVAL_SECS="0", SHUTDOWN_GRACE_SECS="1", **(extra_env or {}))
        # This harness's PEERS (the peer generators to run) is not
        # trafficgen's PEERS (its replicas): never hand it over.
        env.pop("PEERS", None)
        self.proc = Proc(name, [TG_BIN], GEN_CPU, bound, env=env, kind=f"trafficgen-{initial_mode}")
        self.pid = self.proc.pid
        self.port = None

        def find_port():
            with open(self.log_path) as f:
                for line in f:
                    if "control server listening" in line:
                        self.port = json.loads(line)["port"]
                        return True
            if not self.proc.alive():
                raise RuntimeError(f"trafficgen exited; see {self.log_path}")
            return False

        wait_until(find_port, 10, "trafficgen control port")

    def post(self, path, body=None):
        data = None if body is None else json.dumps(body)
        before = time.time()
        status, text = request("POST", self.port, path, body=data)
        after = time.time()
        if status != 200:
            raise RuntimeError(f"POST {path} -> {status} {text}")
        return before, after

    def metrics(self):
        return http_get(self.port, "/metrics")[1]

    def status(self):
        return json.loads(http_get(self.port, "/status")[1])

    def stop(self):
        self.proc.stop()


# ------------------------------------------------------------- measurement


def window(target, pid, secs, requested=None, tg=None):
    """Measures `secs` seconds: achieved rate at the target, 1-second slices,
    generator CPU (only inside the window), peak RSS, and for trafficgen its
    own counters (lag p99, drops, failures) over the same window."""
    m0 = tg_counts(tg.metrics()) if tg else None
    target_pids = target.cpu_pids()
    busy0 = cpu_busy_ticks()
    tcpu0 = pids_ticks(target_pids)
    cpu0 = cpu_ticks(pid)

    def stamp():
        a = time.monotonic()
        c = target.count()
        return (a + time.monotonic()) / 2, c

    rss_start = proc_status_kib(pid, "VmRSS")
    t0, c0 = stamp()
    acc0 = getattr(target, "accepts", None)
    marks = [(t0, c0)]
    n = int(math.ceil(secs))
    for k in range(1, n + 1):
        time.sleep(max(0.0, t0 + min(k, secs) - time.monotonic()))
        marks.append(stamp())
    cpu1 = cpu_ticks(pid)
    tcpu1 = pids_ticks(target_pids)
    busy1 = cpu_busy_ticks()
    m1 = tg_counts(tg.metrics()) if tg else None
    t1, c1 = marks[-1]
    count = c1 - c0
    dur = t1 - t0
    cpu_s = (cpu1 - cpu0) / CLK_TCK
    slices = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(marks, marks[1:])]
    r = {
        "secs": round(dur, 3),
        "count": count,
        "rate": count / dur,
        "cpu_s": cpu_s,
        "cpu_pct": 100 * cpu_s / dur,
        "cpu_us_per_req": (cpu_s * 1e6 / count) if count else None,
        "rss_peak_kib": proc_status_kib(pid, "VmHWM"),
        "rss_kib": proc_status_kib(pid, "VmRSS"),
        "rss_start_kib": rss_start,
        "slices": [round(s, 2) for s in slices],
    }
    if acc0 is not None:
        r["new_connections"] = target.accepts - acc0
    # How busy the target was, and how much of each pinned CPU went to
    # processes other than ours (a noisy machine shows here).
    r["target_cpu_pct"] = 100 * (tcpu1 - tcpu0) / CLK_TCK / dur
    busy = {c: 100 * (busy1[c] - busy0[c]) / CLK_TCK / dur for c in busy1 if c in busy0}
    if GEN_CPU in busy:
        r["other_load_gen_cpu_pct"] = max(0.0, busy[GEN_CPU] - r["cpu_pct"])
    if TARGET_CPU in busy:
        r["other_load_target_cpu_pct"] = max(0.0, busy[TARGET_CPU] - r["target_cpu_pct"])
    if requested:
        r["requested"] = requested
        r["expected_count"] = requested * dur
        r["error_pct"] = 100 * (r["rate"] / requested - 1)
        full = slices[:-1] if secs % 1 else slices
        if full:
            r["worst_slice_pct"] = max(100 * abs(s / requested - 1) for s in full)
    if tg:
        r["dropped"] = m1["dropped"] - m0["dropped"]
        r["failed"] = m1["failed"] - m0["failed"]
        r["sent_ok"] = m1["ok"] - m0["ok"]
        r["lag_p99_s"] = p99_bound(m0["lag"], m1["lag"])
    return r


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(runs, keys=("rate", "error_pct", "cpu_us_per_req", "cpu_pct", "rss_peak_kib", "lag_p99_s",
                          "dropped", "failed", "worst_slice_pct", "count", "expected_count",
                          "new_connections", "target_cpu_pct", "other_load_gen_cpu_pct",
                          "other_load_target_cpu_pct")):
    s = {k: median([r.get(k) for r in runs]) for k in keys if any(r.get(k) is not None for r in runs)}
    s["n"] = len(runs)
    return s


def tg_run(target, rate, secs, warm=None, name="trafficgen", url=None, extra_env=None):
    warm = WARM_SECS if warm is None else warm
    tg = Trafficgen(url or target.url, cap=rate * TG_HEADROOM, name=name, bound=warm + secs + 30, extra_env=extra_env)
    try:
        tg.post("/mode/custom", {"rps": rate})
        time.sleep(warm)
        r = window(target, tg.pid, secs, requested=rate, tg=tg)
        st = tg.status()
        r["status_stats"] = st.get("stats")
        r["spans"] = span_counts(tg.metrics())
        return r
    finally:
        tg.stop()


def span_counts(text):
    """trafficgen_spans_exported_total and _dropped_total by reason."""
    out = {"exported": sum(v for _, v in metric_samples(text, "trafficgen_spans_exported_total"))}
    for labels, v in metric_samples(text, "trafficgen_spans_dropped_total"):
        reason = re.search(r'reason="([^"]*)"', labels)
        if reason and v:
            out[f"dropped_{reason.group(1)}"] = v
    return out


class OtlpReceiver:
    """An OTLP/HTTP endpoint in this process (threads): accepts every
    `POST /v1/traces`, or answers 500/503, or takes 1 s per batch, or
    never answers. It reads bodies but decodes nothing: the black-box tests
    check what the spans say, this only takes them."""

    def __init__(self):
        import http.server
        receiver = self
        self.mode = "accept"
        self.posts = 0
        self.bytes = 0
        self.closing = False

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                receiver.posts += 1
                receiver.bytes += length
                mode = receiver.mode
                if mode == "hang":
                    deadline = time.monotonic() + 120
                    while not receiver.closing and time.monotonic() < deadline:
                        time.sleep(0.05)
                    self.close_connection = True
                    return
                if mode == "slow":
                    time.sleep(1.0)
                status = int(mode) if mode.isdigit() else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.closing = True
        self.server.shutdown()
        self.server.server_close()


def fig_spans(nginx):
    """Span export at SPANS_RATE: CPU per request with export off, sampling
    0 and sampling 1.0 (interleaved runs, medians); then each collector
    fault held SPANS_FAULT_SECS with every request sampled: the rate at the
    target, RSS at the start and the end of the window, drops by reason."""
    receiver = OtlpReceiver()
    endpoint = f"http://127.0.0.1:{receiver.port}"
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "1000"}
    variants = {
        "off": {},
        "sampling 0": dict(on, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0"),
        "sampling 1.0": dict(on, OTEL_TRACES_SAMPLER="always_on"),
    }
    out = {"rate": SPANS_RATE, "variants": {}, "faults": {}}
    runs = {name: [] for name in variants}
    try:
        for i in range(REPEATS):
            for name, env in variants.items():
                log(f"spans: {name} at {SPANS_RATE:g} req/s, run {i + 1}/{REPEATS}")
                runs[name].append(tg_run(nginx, SPANS_RATE, SECS, name=f"tg-spans-{name.replace(' ', '-')}-{i}",
                                         extra_env=env))
        for name, rs in runs.items():
            m = summarize(rs)
            m["spans_exported"] = median([r["spans"].get("exported") for r in rs])
            out["variants"][name] = {"runs": rs, "median": m}
        faults = [("down", "accept"), ("hanging", "hang"), ("500", "500"), ("503", "503"), ("slow 1 s/batch", "slow")]
        for name, mode in faults:
            receiver.mode = mode
            env = dict(on, OTEL_TRACES_SAMPLER="always_on")
            if name == "down":
                env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
            log(f"spans: collector {name}, {SPANS_FAULT_SECS} s at {SPANS_RATE:g} req/s")
            r = tg_run(nginx, SPANS_RATE, SPANS_FAULT_SECS, name=f"tg-spans-fault-{mode}", extra_env=env)
            out["faults"][name] = r
            receiver.closing = True
            time.sleep(0.2)
            receiver.closing = False
        out["receiver_posts"] = receiver.posts
    finally:
        receiver.stop()
    return out


def window_secs(rate):
    return max(SECS, LOW_SECS) if rate < 10 else SECS


def fig_accuracy(nginx):
    out = {}
    for rate in RATES:
        secs = window_secs(rate)
        runs = []
        for i in range(REPEATS):
            log(f"accuracy: trafficgen {rate:g} req/s, run {i + 1}/{REPEATS} ({secs} s)")
            runs.append(tg_run(nginx, rate, secs, name=f"tg-accuracy-{rate:g}-{i}"))
        out[f"{rate:g}"] = {"runs": runs, "median": summarize(runs)}
    return out


def fig_https(peers):
    """trafficgen and the https-capable peers (oha, hey) at the same rate on
    the same nginx, plain and https, runs interleaved: CPU per request, RSS,
    new connections. Each tool's https/http CPU ratio says how much of
    trafficgen's is TLS itself and how much is ours."""
    nginx = Nginx(name="nginx-tls", tls=True)
    https_url = f"https://127.0.0.1:{nginx.tls_port}"
    https_peers = [p for p in peers if p in ("oha", "hey")]
    try:
        out = {}
        for rate in HTTPS_RATES:
            runs = {"http": [], "https": []}
            peer_runs = {p: {"http": [], "https": []} for p in https_peers}
            notes = {}
            for i in range(REPEATS):
                for scheme in ("http", "https"):
                    log(f"https: trafficgen {scheme} {rate:g} req/s, run {i + 1}/{REPEATS} ({SECS} s)")
                    url = https_url if scheme == "https" else nginx.url
                    env = {"TLS_CA_FILE": nginx.ca_file} if scheme == "https" else None
                    runs[scheme].append(tg_run(nginx, rate, SECS, name=f"tg-{scheme}-{rate:g}-{i}", url=url,
                                               extra_env=env))
                    for peer in https_peers:
                        log(f"https: {peer} {scheme} {rate:g} req/s, run {i + 1}/{REPEATS} ({SECS} s)")
                        try:
                            r, notes[peer] = peer_run(peer, nginx, rate, SECS, PEER_PATH, base_url=url,
                                                      name=f"{peer}-{scheme}-{rate:g}-{i}")
                        except Exception as e:
                            log(f"  {peer} failed: {e}")
                            notes[peer], r = f"failed: {e}", None
                        if r is not None:
                            peer_runs[peer][scheme].append(r)
            fig = {k: {"runs": v, "median": summarize(v)} for k, v in runs.items()}
            fig["peers"] = {p: {k: {"runs": v, "median": summarize(v)} for k, v in by.items()} | {"note": notes.get(p, "")}
                            for p, by in peer_runs.items()}
            out[f"{rate:g}"] = fig
        return out
    finally:
        nginx.stop()


# ------------------------------------------------------------------- peers


def oha_bin():
    b = os.environ.get("OHA_BIN") or shutil.which("oha")
    if not b and os.path.exists(os.path.expanduser("~/.cargo/bin/oha")):
        b = os.path.expanduser("~/.cargo/bin/oha")
    return b


def locust_python():
    return os.environ.get("LOCUST_PYTHON") or sys.executable


def locust_available():
    return subprocess.run([locust_python(), "-c", "import locust"], capture_output=True).returncode == 0


def peer_available(peer):
    if peer == "oha":
        return oha_bin() is not None
    if peer == "locust":
        return locust_available()
    return shutil.which(peer) is not None


def peer_cmd(peer, base_url, path, rate, dur, conns):
    """(command, env, warm-up seconds, note). rate None = closed loop max."""
    url = base_url + path
    d = int(math.ceil(dur))
    https = base_url.startswith("https:")
    if peer == "wrk":
        if rate is not None:
            return None, None, 0, "no fixed-rate mode (closed loop only; wrk2 is not packaged)"
        return ["wrk", "-t1", f"-c{conns}", f"-d{d}s", url], None, 1, ""
    if peer == "oha":
        cmd = [oha_bin(), "--no-tui", "-z", f"{d}s", "-c", str(conns)]
        if https:  # the run's own CA; verification costs once per connection anyway
            cmd.append("--insecure")
        if rate is not None:
            cmd += ["-q", f"{rate:g}"]
        return cmd + [url], None, 1, ""
    if peer == "hey":
        if rate is None:
            return ["hey", "-z", f"{d}s", "-c", str(conns), "-cpus", "1", url], None, 1, ""
        c = max(1, min(conns, int(math.ceil(rate / 200))))  # -q is per worker
        return ["hey", "-z", f"{d}s", "-c", str(c), "-q", f"{rate / c:g}", "-cpus", "1", url], None, 1, \
            f"-c {c} x -q {rate / c:g}"
    if peer == "locust":
        per_user = 10.0
        users = conns if rate is None else int(math.ceil(rate / per_user))
        env = dict(os.environ, PEER_PATH=path, LOCUST_RPS_PER_USER="0" if rate is None else f"{per_user:g}")
        cmd = [locust_python(), "-m", "locust", "-f", os.path.join(HERE, "locustfile.py"), "--headless",
               "-u", str(users), "-r", str(users), "-t", f"{d}s", "-H", base_url, "--only-summary",
               "--loglevel", "WARNING"]
        note = f"{users} users x constant_throughput({per_user:g})" if rate is not None else f"{users} users, no wait"
        return cmd, env, 5, note
    raise ValueError(peer)


def peer_run(peer, target, rate, secs, path, conns=PEER_CONNS, name=None, base_url=None):
    """One run of `peer` against `target` (at `base_url`, if not its own
    URL: the https port)."""
    base_url = base_url or target.url
    cmd, env, warm, note = peer_cmd(peer, base_url, path, rate, 0, conns)
    if cmd is None:
        return None, note
    dur = warm + secs + 2
    cmd, env, warm, note = peer_cmd(peer, base_url, path, rate, dur, conns)
    kind = f"{peer}-{'max' if rate is None else 'rate'}-{target.kind}"
    p = Proc(name or f"{peer}-{rate}", cmd, GEN_CPU, dur + 20, env=env, kind=kind)
    try:
        time.sleep(warm)
        if not p.alive():
            raise RuntimeError(f"{peer} exited early; see {p.log_path}")
        r = window(target, p.pid, secs, requested=rate)
        return r, note
    finally:
        p.stop()
        # Let its tail requests finish before the next run counts.
        time.sleep(0.5)


def fig_peers(nginx, peers):
    out = {}
    for peer in peers:
        out[peer] = {}
        for rate in PEER_RATES:
            out[peer][f"{rate:g}"] = peer_repeats(peer, nginx, rate, f"peers: {peer} at {rate:g} req/s", f"{peer}-rate-{rate:g}")
    return out


def peer_repeats(peer, nginx, rate, what, name):
    """REPEATS runs of one peer (rate None: closed-loop max); stops at the first that fails."""
    runs, note = [], ""
    for i in range(REPEATS):
        log(f"{what}, run {i + 1}/{REPEATS}")
        try:
            r, note = peer_run(peer, nginx, rate, SECS, PEER_PATH, name=f"{name}-{i}")
        except Exception as e:
            log(f"  {peer} failed: {e}")
            note, r = f"failed: {e}", None
        if r is None:
            break
        runs.append(r)
    return {"runs": runs, "median": summarize(runs) if runs else None, "note": note}


# ----------------------------------------------------------------- ceiling


def passes(r, rate):
    return abs(r["rate"] / rate - 1) <= 0.01 and r.get("dropped", 0) == 0


def fig_ceiling(nginx, peers):
    steps, best = [], None
    for rate in CEIL_STEPS:
        log(f"ceiling: trafficgen step {rate:g} req/s ({CEIL_SECS} s)")
        r = tg_run(nginx, rate, CEIL_SECS, warm=1, name=f"tg-ceiling-{rate:g}")
        ok = passes(r, rate)
        if not ok:  # one retry: the machine is shared and noisy
            log(f"  step {rate:g} missed ({r['rate']:.0f} req/s, {r['dropped']:.0f} dropped); retrying once")
            r2 = tg_run(nginx, rate, CEIL_SECS, warm=1, name=f"tg-ceiling-{rate:g}-retry")
            r2["retry_of"] = {k: r[k] for k in ("rate", "dropped", "failed", "cpu_pct")}
            r, ok = r2, passes(r2, rate)
        r["pass"] = ok
        steps.append(r)
        if ok:
            best = rate
        else:
            break
    confirm = None
    if best is not None:
        runs = []
        for i in range(REPEATS):
            log(f"ceiling: confirming {best:g} req/s, run {i + 1}/{REPEATS} ({SECS} s)")
            runs.append(tg_run(nginx, best, SECS, name=f"tg-ceiling-confirm-{i}"))
        confirm = {"rate": best, "runs": runs, "median": summarize(runs),
                   "pass_count": sum(passes(r, best) for r in runs)}
    peer_max = {}
    for peer in peers:
        peer_max[peer] = peer_repeats(peer, nginx, None, f"ceiling: {peer} closed-loop max", f"{peer}-max")
    return {"steps": steps, "best_step": best, "confirm": confirm, "peer_max": peer_max}


# ------------------------------------------------------------- mode switch


def fig_switch():
    """From the answer of POST /mode/burst to the first request nginx logs.

    A dedicated nginx writes `$msec` (wall clock, ms) for every request; we
    take time.time() just before sending the POST and just after reading its
    answer. The engine may send before the answer reaches us, so the value
    can be slightly negative; `from_post` is from before the POST."""
    ngx = Nginx(access_log=True, name="nginx-switch")
    switches = []
    try:
        for start_mode in ("pause", "steady"):
            tg = Trafficgen(ngx.url, cap=1000, initial_mode=start_mode, name=f"tg-switch-{start_mode}",
                            bound=REPEATS * 6 + 30)
            try:
                time.sleep(1.5)
                for i in range(REPEATS):
                    log(f"switch: {start_mode} -> burst, run {i + 1}/{REPEATS}")
                    before, after = tg.post("/mode/burst")
                    time.sleep(1.5)
                    tg.post(f"/mode/{start_mode}")
                    switches.append({"from": start_mode, "post_sent": before, "answer": after})
                    time.sleep(1.5)
            finally:
                tg.stop()
        time.sleep(0.3)
        stamps = []
        with open(ngx.access_log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].startswith("/orders"):
                    stamps.append(float(parts[0]))
        stamps.sort()
        for s in switches:
            # $msec is truncated to the ms: allow 1 ms before the POST.
            after = [t for t in stamps if t >= s["post_sent"] - 0.001]
            if after:
                s["first_request"] = after[0]
                s["from_answer_ms"] = 1000 * (after[0] - s["answer"])
                s["from_post_ms"] = 1000 * (after[0] - s["post_sent"])
                s["post_rtt_ms"] = 1000 * (s["answer"] - s["post_sent"])
                s["requests_in_first_second"] = sum(1 for t in after if t < s["answer"] + 1.0)
    finally:
        ngx.stop()
    res = {"switches": switches}
    for key in ("from_answer_ms", "from_post_ms", "requests_in_first_second"):
        vals = [s.get(key) for s in switches]
        res[f"median_{key}"] = median(vals)
        res[f"max_{key}"] = max([v for v in vals if v is not None], default=None)
    return res


# -------------------------------------------------------------------- idle


def fig_idle(nginx):
    """REPEATS instances in pause and REPEATS in steady (2 req/s), side by
    side on GEN_CPU, for IDLE_SECS; CPU per minute of each."""
    procs = []
    try:
        for mode in ("pause", "steady"):
            for i in range(REPEATS):
                procs.append((mode, Trafficgen(nginx.url, cap=1000, initial_mode=mode, name=f"tg-idle-{mode}-{i}",
                                               bound=IDLE_SECS + 40)))
        time.sleep(3)
        t0 = time.monotonic()
        c0 = [cpu_ticks(tg.pid) for _, tg in procs]
        n0 = [cpu_ns(tg.pid) for _, tg in procs]
        log(f"idle: {len(procs)} instances for {IDLE_SECS} s")
        time.sleep(IDLE_SECS)
        c1 = [cpu_ticks(tg.pid) for _, tg in procs]
        n1 = [cpu_ns(tg.pid) for _, tg in procs]
        dur = time.monotonic() - t0
        rows = []
        for (mode, tg), a, b, na, nb in zip(procs, c0, c1, n0, n1):
            cpu_s = (b - a) / CLK_TCK
            ns_s = (nb - na) / 1e9
            rows.append({"mode": mode, "cpu_ms_per_min": 1000 * ns_s * 60 / dur, "cpu_pct": 100 * ns_s / dur,
                         "stat_cpu_ms_per_min": 1000 * cpu_s * 60 / dur, "stat_cpu_pct": 100 * cpu_s / dur,
                         "rss_kib": proc_status_kib(tg.pid, "VmRSS"), "rss_peak_kib": proc_status_kib(tg.pid, "VmHWM")})
    finally:
        for _, tg in procs:
            tg.stop()
    out = {"secs": IDLE_SECS, "runs": rows}
    for mode in ("pause", "steady"):
        out[mode] = summarize([r for r in rows if r["mode"] == mode],
                              keys=("cpu_ms_per_min", "cpu_pct", "stat_cpu_ms_per_min", "stat_cpu_pct", "rss_kib",
                                    "rss_peak_kib"))
    return out


# -------------------------------------------------------------------- demo


def fig_demo():
    demo = DemoTarget()
    out = {"rates": {}}
    try:
        for rate in DEMO_RATES:
            runs = []
            for i in range(REPEATS):
                log(f"demo target: trafficgen {rate:g} req/s, run {i + 1}/{REPEATS}")
                runs.append(tg_run(demo, rate, SECS, name=f"tg-demo-{rate:g}-{i}"))
            out["rates"][f"{rate:g}"] = {"runs": runs, "median": summarize(runs)}
        if shutil.which("wrk"):
            runs = []
            for i in range(REPEATS):
                log(f"demo target: wrk closed-loop max (POST /orders), run {i + 1}/{REPEATS}")
                cmd = ["wrk", "-t1", f"-c{PEER_CONNS}", f"-d{SECS + 3}s", "-s", os.path.join(HERE, "post.lua"),
                       demo.url + "/orders"]
                p = Proc(f"wrk-demo-{i}", cmd, GEN_CPU, SECS + 20, kind="wrk-max-demo")
                try:
                    time.sleep(1)
                    runs.append(window(demo, p.pid, SECS))
                finally:
                    p.stop()
                    time.sleep(0.5)
            out["wrk_max"] = {"runs": runs, "median": summarize(runs)}
    finally:
        demo.stop()
    return out


def fig_users():
    """trafficgen running a workload file (users-crud.yaml: PATCH with a
    rendered JSON body, ids captured from creates and read back) against
    the demo target, at DEMO_RATES."""
    demo = DemoTarget()
    out = {"workload": os.path.relpath(USERS_WORKLOAD, os.path.join(HERE, "..")), "rates": {}}
    try:
        for rate in DEMO_RATES:
            runs = []
            for i in range(REPEATS):
                log(f"demo target: trafficgen {rate:g} req/s of {out['workload']}, run {i + 1}/{REPEATS}")
                runs.append(tg_run(demo, rate, SECS, name=f"tg-users-{rate:g}-{i}",
                                   extra_env={"WORKLOAD_FILE": USERS_WORKLOAD}))
            out["rates"][f"{rate:g}"] = {"runs": runs, "median": summarize(runs)}
    finally:
        demo.stop()
    return out


def fig_journeys(nginx):
    """CPU per request of a journey workload (bench/workloads/journey.yaml,
    four steps per arrival) next to the same requests drawn as a weighted mix
    (journey-as-mix.yaml), both sending JOURNEY_RATE requests/s to nginx;
    runs interleaved, medians and their ratio."""
    steps = 4
    files = {
        "journey": (os.path.join(HERE, "workloads", "journey.yaml"), JOURNEY_RATE / steps),
        "mix": (os.path.join(HERE, "workloads", "journey-as-mix.yaml"), JOURNEY_RATE),
    }
    runs = {k: [] for k in files}
    for i in range(REPEATS):
        for kind, (path, arrivals) in files.items():
            log(f"journeys: {kind} at {JOURNEY_RATE:g} req/s ({arrivals:g} arrivals/s), run {i + 1}/{REPEATS}")
            tg = Trafficgen(nginx.url, cap=JOURNEY_RATE * 1.2, name=f"tg-journeys-{kind}-{i}",
                            bound=WARM_SECS + SECS + 30, extra_env={"WORKLOAD_FILE": path})
            try:
                tg.post("/mode/custom", {"rps": arrivals})
                time.sleep(WARM_SECS)
                r = window(nginx, tg.pid, SECS, requested=JOURNEY_RATE, tg=tg)
                st = tg.status()
                r["journeys"] = st.get("journeys")
                runs[kind].append(r)
            finally:
                tg.stop()
    out = {k: {"runs": v, "median": summarize(v)} for k, v in runs.items()}
    j, m = out["journey"]["median"].get("cpu_us_per_req"), out["mix"]["median"].get("cpu_us_per_req")
    out["cpu_ratio"] = (j / m) if j and m else None
    out["rate"] = JOURNEY_RATE
    return out


# ----------------------------------------------------------------- profile


def fig_profile(nginx, ceiling_rate=None):
    """perf record (software cpu-clock sampling, so it works without hardware
    counters) of trafficgen at each PROFILE_RATES rate against nginx;
    `ceiling` means the ceiling found in this run (or PROFILE_CEIL_RATE).
    Falls back to valgrind --tool=callgrind (much slower: a short run at
    CALLGRIND_RATE) when perf cannot record."""
    secs = env_int("PROFILE_SECS", 10)
    out = {}
    perf = shutil.which("perf")
    perf_ok = perf and subprocess.run([perf, "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                                      capture_output=True).returncode == 0
    for spec in env_list("PROFILE_RATES", "10000 ceiling"):
        rate = float(ceiling_rate or os.environ.get("PROFILE_CEIL_RATE", 40000)) if spec == "ceiling" else float(spec)
        key = f"{rate:g}"
        data = os.path.join(OUT_DIR, f"perf-{key}.data")
        if not perf_ok:
            out[key] = fig_callgrind(nginx, rate)
            continue
        log(f"profile: perf record of trafficgen at {rate:g} req/s for {secs} s")
        tg = Trafficgen(nginx.url, cap=rate, name=f"tg-profile-{key}", bound=secs + 40)
        try:
            tg.post("/mode/custom", {"rps": rate})
            time.sleep(WARM_SECS)
            rec = Proc(f"perf-record-{key}", [perf, "record", "-e", "cpu-clock", "-F", "4999", "-g", "-p", tg.pid,
                                            "-o", data, "--", "sleep", secs], GEN_CPU, secs + 30, kind="perf-record")
            r = window(nginx, tg.pid, secs, requested=rate, tg=tg)
            rec.popen.wait(secs + 30)
        finally:
            tg.stop()
        reports = {}
        for name, args in {
            "self": ["--no-children", "--sort", "symbol"],
            "dso": ["--no-children", "--sort", "dso"],
            "children": ["--children", "--sort", "symbol"],
        }.items():
            p = subprocess.run(["timeout", "300", perf, "report", "-i", data, "--stdio", "-g", "none",
                                "--percent-limit", "0.5"] + args, capture_output=True, text=True)
            path = os.path.join(OUT_DIR, f"profile-{key}-{name}.txt")
            with open(path, "w") as f:
                f.write(p.stdout)
            reports[name] = path
        out[key] = {"tool": "perf", "rate": rate, "window": {k: v for k, v in r.items() if k != "slices"},
                    "reports": reports}
    return out


def fig_callgrind(nginx, rate):
    rate = float(os.environ.get("CALLGRIND_RATE", min(rate, 1000)))
    secs = env_int("CALLGRIND_SECS", 10)
    key = f"{rate:g}"
    cg_out = os.path.join(OUT_DIR, f"callgrind-{key}.out")
    log(f"profile: callgrind of trafficgen at {rate:g} req/s for {secs} s (perf unavailable)")
    env = dict(os.environ, TARGET_URL=nginx.url, PORT="0", BIND="127.0.0.1", WARMUP_SECS="0", INITIAL_MODE="pause",
               MAX_RPS=str(int(max(1000, rate))), LOG_FORMAT="json", STATS_INTERVAL_SECS="0",
               SHUTDOWN_GRACE_SECS="1")
    name = f"tg-callgrind-{key}"
    log_path = os.path.join(LOG_DIR, f"{name}.log")
    p = Proc(name, ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg_out}", TG_BIN], GEN_CPU, secs + 120,
             env=env, kind="callgrind")
    port = None
    deadline = time.monotonic() + 60
    while port is None and time.monotonic() < deadline:
        with open(log_path) as f:
            for line in f:
                if "control server listening" in line and line.startswith("{"):
                    port = json.loads(line)["port"]
        time.sleep(0.2)
    request("POST", port, "/mode/custom", body=json.dumps({"rps": rate}))
    time.sleep(secs)
    p.stop(grace=60)
    rep = subprocess.run(["callgrind_annotate", cg_out], capture_output=True, text=True).stdout
    path = os.path.join(OUT_DIR, f"profile-{key}-callgrind.txt")
    with open(path, "w") as f:
        f.write(rep)
    return {"tool": "callgrind", "rate": rate, "reports": {"self": path}}


# -------------------------------------------------------------------- main


def main():
    if not TG_BIN or not os.access(TG_BIN, os.X_OK):
        sys.exit("set TG_BIN to the trafficgen binary")
    shutil.rmtree(LOG_DIR, ignore_errors=True)  # logs of this run only
    os.makedirs(LOG_DIR, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    peers = [p for p in PEERS if peer_available(p)]
    missing = [p for p in PEERS if p not in peers]
    if missing:
        log(f"peers not installed, skipped: {' '.join(missing)}")
    results = {
        "settings": {"REPEATS": REPEATS, "SECS": SECS, "LOW_SECS": LOW_SECS, "WARM_SECS": WARM_SECS,
                     "CEIL_SECS": CEIL_SECS, "IDLE_SECS": IDLE_SECS, "GEN_CPU": GEN_CPU, "TARGET_CPU": TARGET_CPU,
                     "PEER_PATH": PEER_PATH, "PEER_CONNS": PEER_CONNS, "FIGURES": FIGURES, "TG_HEADROOM": TG_HEADROOM,
                     "RATES": RATES, "PEER_RATES": PEER_RATES, "HTTPS_RATES": HTTPS_RATES, "SPANS_RATE": SPANS_RATE, "SPANS_FAULT_SECS": SPANS_FAULT_SECS, "CEIL_STEPS": CEIL_STEPS, "DEMO_RATES": DEMO_RATES,
                     "TG_BIN": TG_BIN, "OHA_BIN": oha_bin(), "LOCUST_PYTHON": locust_python()},
        "peers": peers, "peers_missing": missing, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    out_path = os.path.join(OUT_DIR, "results.json")

    def save():
        results["commands"] = COMMANDS
        with open(out_path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(out_path + ".tmp", out_path)

    t_start = time.monotonic()
    try:
        nginx = Nginx() if any(f in FIGURES for f in NGINX_FIGURES) else None
        if "accuracy" in FIGURES:
            results["accuracy"] = fig_accuracy(nginx)
            save()
        if "peers" in FIGURES:
            results["peer_rates"] = fig_peers(nginx, peers)
            save()
        if "ceiling" in FIGURES:
            results["ceiling"] = fig_ceiling(nginx, peers)
            save()
        if "profile" in FIGURES:
            best = (results.get("ceiling") or {}).get("best_step")
            results["profile"] = fig_profile(nginx, best)
            save()
        if "idle" in FIGURES:
            results["idle"] = fig_idle(nginx)
            save()
        if "journeys" in FIGURES:
            results["journeys"] = fig_journeys(nginx)
            save()
        if "spans" in FIGURES:
            results["spans"] = fig_spans(nginx)
            save()
        if nginx:
            nginx.stop()
        if "switch" in FIGURES:
            results["switch"] = fig_switch()
            save()
        if "demo" in FIGURES:
            results["demo"] = fig_demo()
            save()
        if "users" in FIGURES:
            results["users"] = fig_users()
            save()
        if "https" in FIGURES:
            results["https"] = fig_https(peers)
            save()
    finally:
        results["elapsed_secs"] = round(time.monotonic() - t_start, 1)
        save()
        stop_all()
    log(f"done in {results['elapsed_secs']} s: {out_path}")


if __name__ == "__main__":
    main()
