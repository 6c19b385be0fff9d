#!/usr/bin/env python3
"""Hostile input to the control API and the engine, measured (issue 21,
items 2, 4, 5 and 10).

Each scenario starts a fresh sidecar (the binary given, release build) and
what it needs on 127.0.0.1, runs the attack for a bounded time while asking
`/health` from a fresh connection every 50 ms, and prints the sidecar's
resident memory (now, and the peak: VmHWM) before, during and after, and
the /health latency percentiles. The promise checked: RSS under
MEMORY_BUDGET_MB (240 MiB by default) and /health p99 under 100 ms.

Scenarios:
  put-mistakes   N clients PUT /workload 1 MiB of unknown keys and never
                 read (58 000 keys: every one checked; and 105 000: over
                 the bound of values)
  put-flow       a megabyte of `[1,1,1,...]` (JSON), which the YAML parser
                 held whole
  export         4 parallel Artillery exports of 8 000 random_int ranges
  big-bodies     a workload of 1 MiB request bodies against a target that
                 never reads: refused at 512 in flight, then run at the
                 in-flight bound that fits
  slow-answers   the built-in workload at 400/s against a target that
                 sends 255 KiB of a 256 KiB answer and holds the rest
  pool-swap      16 pools filled from answers at 5 000/s, then swapped
                 (PUT /workload) while sending 1 000/s: requests dropped
  logs-flood     16 clients asking GET /logs?limit=1000 as fast as they can
  sse            one client opening 64 event streams

Loopback only; every scenario stops by itself (--secs each).

    python3 bench/hostile_input.py --bin target/release/trafficgen [--secs 10] [scenario ...]
"""

import argparse
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

BUDGET_MIB = 240


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


class Proc:
    """trafficgen ARGS with ENV, its port learned from its listening line."""

    def __init__(self, binary, args, env):
        full = {"PATH": os.environ.get("PATH", ""), "PORT": "0", "BIND": "127.0.0.1", "LOG_FORMAT": "json"}
        full.update(env)
        self.p = subprocess.Popen([binary, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.p.stdout:
                self.lines.append(line)
                if self.port is None and "listening" in line:
                    try:
                        self.port = json.loads(line)["port"]
                        ready.set()
                    except (ValueError, KeyError):
                        pass
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(15) or self.port is None:
            self.stop()
            raise SystemExit(f"{args} did not start:\n{''.join(self.lines[-20:])}")

    @property
    def pid(self):
        return self.p.pid

    def rss(self):
        return status_kib(self.pid, "VmRSS:")

    def peak(self):
        return status_kib(self.pid, "VmHWM:")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def http(port, method, path, body=None, timeout=30):
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(port, name):
    _, text = http(port, "GET", "/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.decode().splitlines() if l.startswith(name))


class HealthProbe:
    """/health from a fresh connection every 50 ms, and the RSS peak."""

    def __init__(self, port, sidecar):
        self.port, self.sidecar = port, sidecar
        self.latencies, self.failures = [], 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(2)
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while chunk := s.recv(4096):
                        answer += chunk
                if b"healthy" not in answer:
                    self.failures += 1
                else:
                    self.latencies.append(time.monotonic() - t0)
            except OSError:
                self.failures += 1
            time.sleep(0.05)

    def report(self):
        self.stop.set()
        self.t.join()
        lat = sorted(self.latencies) or [float("nan")]
        p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000
        return f"/health p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1] * 1000:.1f} ms, {self.failures} unanswered of {len(self.latencies) + self.failures}"


def silent_put(port, body):
    """PUT /workload with BODY, never reading the answer; the socket is returned."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"PUT /workload HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def unknown_keys(n):
    return "".join(f"k{i:013}: 1\n" for i in range(n)).encode()


def sidecar(args, extra=None, target="http://127.0.0.1:9"):
    env = {"TARGET_URL": target, "INITIAL_MODE": "pause", "WARMUP_SECS": "0", "STATS_INTERVAL_SECS": "0"}
    env.update(extra or {})
    return Proc(args.bin, [], env)


def line(name, sc, rss0, probe, extra=""):
    peak = sc.peak()
    ok = "under" if peak < BUDGET_MIB * 1024 else "OVER"
    print(f"{name}: RSS {mib(rss0)} before, peak {mib(peak)} ({ok} the {BUDGET_MIB} MiB budget), {mib(sc.rss())} now; {probe.report()}{extra}", flush=True)


def put_mistakes(args):
    for keys, clients in [(58_000, 20), (58_000, 60), (105_000, 20)]:
        sc = sidecar(args)
        body = unknown_keys(keys)
        rss0 = sc.rss()
        status, answer = http(sc.port, "PUT", "/workload", body)
        probe = HealthProbe(sc.port, sc)
        t0 = time.monotonic()
        socks = [silent_put(sc.port, body) for _ in range(clients)]
        time.sleep(args.secs)
        for s in socks:
            s.close()
        time.sleep(6)
        line(f"put-mistakes {keys} keys × {clients} silent clients", sc, rss0, probe,
             f"; one read answer: {status}, {len(answer)} bytes, {time.monotonic() - t0:.0f} s")
        sc.stop()


def put_flow(args):
    sc = sidecar(args)
    rss0 = sc.rss()
    probe = HealthProbe(sc.port, sc)
    body = b"[" + b"1," * 500_000 + b"1]"
    t0 = time.monotonic()
    status, answer = http(sc.port, "PUT", "/workload", body)
    took = time.monotonic() - t0
    time.sleep(1)
    line("put-flow 1 MiB of [1,1,…]", sc, rss0, probe, f"; answer {status} in {took * 1000:.0f} ms, {len(answer)} bytes")
    sc.stop()


def exploding_workload():
    holes = " ".join(f"{{{{ random_int({i}, {i + 999}) }}}}" for i in range(8000))
    return ("requests:\n  - name: a\n    weight: 1\n    method: POST\n    path: /orders\n"
            f"    content_type: text/plain\n    body: '{holes}'\n")


def export(args):
    sc = sidecar(args, {"MAX_IN_FLIGHT": "64"})
    status, _ = http(sc.port, "PUT", "/workload", exploding_workload())
    assert status == 200, status
    rss0 = sc.rss()
    probe = HealthProbe(sc.port, sc)
    results = []

    def one():
        t0 = time.monotonic()
        s, body = http(sc.port, "GET", "/export/artillery?rps=5")
        results.append((s, len(body), time.monotonic() - t0))

    end = time.monotonic() + args.secs
    while time.monotonic() < end:
        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    counts = {}
    for s, _, _ in results:
        counts[s] = counts.get(s, 0) + 1
    slowest = max(r[2] for r in results)
    line("export 4 × Artillery of 8 000 ranges, repeated", sc, rss0, probe,
         f"; answers {counts}, slowest {slowest * 1000:.0f} ms")
    sc.stop()


class SilentTarget:
    """Accepts connections and never reads or answers."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(4096)
        self.port = self.s.getsockname()[1]
        self.held = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            self.held.append(c)

    def close(self):
        self.s.close()
        for c in self.held:
            c.close()


def big_bodies(args):
    target = SilentTarget()
    sc = sidecar(args, {"MAX_RPS": "2000", "REQUEST_TIMEOUT_MS": "5000"}, f"http://127.0.0.1:{target.port}")
    body = "x" * (1000 * 1024)
    workload = ("requests:\n  - name: upload\n    weight: 1\n    method: POST\n    path: /u\n"
                f"    content_type: text/plain\n    body: '{body}'\n")
    rss0 = sc.rss()
    status, answer = http(sc.port, "PUT", "/workload", workload)
    refused = json.loads(answer)["error"].split("\n")[1] if status == 422 else ""
    fits = int(refused.split("at most ")[1].split(" ")[0]) if "at most" in refused else 100
    refused = refused[:120]
    http(sc.port, "PUT", "/config", json.dumps({"max_in_flight": fits}))
    status2, _ = http(sc.port, "PUT", "/workload", workload)
    probe = HealthProbe(sc.port, sc)
    http(sc.port, "POST", "/mode/custom", '{"rps": 500}')
    time.sleep(args.secs)
    http(sc.port, "POST", "/mode/pause")
    during = sc.peak()
    time.sleep(18)
    line(f"big-bodies 1000 KiB requests to a target that never reads", sc, rss0, probe,
         f"; at 512 in flight: {status} ({refused}…); at {fits}: {status2}; peak {mib(during)}, after pause + 18 s: {mib(sc.rss())}")
    sc.stop()
    target.close()


def slow_answer_server():
    """Answers every request with 255 KiB of a 256 KiB body, then holds."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 262144\r\n\r\n"
    body = b"x" * (255 * 1024)
    held = []

    def serve(c):
        try:
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                c.sendall(head + body)
                time.sleep(3600)
        except OSError:
            return

    def run():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            held.append(c)
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=run, daemon=True).start()
    return s, held


def slow_answers(args):
    srv, held = slow_answer_server()
    port = srv.getsockname()[1]
    sc = sidecar(args, {"REQUEST_TIMEOUT_MS": "5000"}, f"http://127.0.0.1:{port}")
    rss0 = sc.rss()
    probe = HealthProbe(sc.port, sc)
    http(sc.port, "POST", "/mode/custom", '{"rps": 400}')
    time.sleep(args.secs)
    http(sc.port, "POST", "/mode/pause")
    during = sc.peak()
    time.sleep(18)
    line("slow-answers built-in workload, 400/s, answers of 255 KiB held", sc, rss0, probe,
         f"; peak {mib(during)}, after pause + 18 s: {mib(sc.rss())}")
    sc.stop()
    srv.close()
    for c in held:
        c.close()


def pool_swap(args):
    demo = Proc(args.bin, ["demo-target"], {"DEMO_MAX_ORDERS": "1000"})
    pools = "".join(f"  p{i}: {{size: 100000}}\n" for i in range(16))
    captures = ", ".join(f"{{pool: p{i}, json: /id, max_len: 12}}" for i in range(16))
    reads = "".join(f"{{{{ pool(p{i}) }}}}" for i in range(16))

    def workload(weight):
        return (f"pools:\n{pools}requests:\n"
                f"  - {{name: fill, weight: {weight}, method: POST, path: /orders, content_type: application/json, "
                f"body: {{product_id: 1, quantity: 1}}, capture: [{captures}]}}\n"
                f"  - {{name: read, weight: 1, method: GET, path: '/orders/{reads}', fallback: fill}}\n")

    # 16 × 100 000 values of 12 bytes: 154 MiB; 64 in flight fit beside them.
    sc = sidecar(args, {"MAX_RPS": "20000", "MAX_IN_FLIGHT": "64", "JITTER": "0"}, f"http://127.0.0.1:{demo.port}")
    status, answer = http(sc.port, "PUT", "/workload", workload(100))
    assert status == 200, answer[:300]
    rss0 = sc.rss()
    http(sc.port, "POST", "/mode/custom", '{"rps": 5000}')
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, view = http(sc.port, "GET", "/workload")
        held = sum(p["values"] for p in json.loads(view)["pools"])
        if held >= 1_600_000:
            break
        time.sleep(1)
    http(sc.port, "POST", "/mode/custom", '{"rps": 1000}')
    time.sleep(2)
    probe = HealthProbe(sc.port, sc)
    dropped0 = metric(sc.port, "trafficgen_dropped_requests_total")
    t0 = time.monotonic()
    status, _ = http(sc.port, "PUT", "/workload", workload(99))
    swap_ms = (time.monotonic() - t0) * 1000
    time.sleep(3)
    dropped = metric(sc.port, "trafficgen_dropped_requests_total") - dropped0
    http(sc.port, "POST", "/mode/pause")
    line(f"pool-swap of {held} values at 1 000/s", sc, rss0, probe,
         f"; PUT {status} in {swap_ms:.0f} ms; requests dropped in the 3 s around it: {dropped:.0f}")
    sc.stop()
    demo.stop()


def logs_flood(args):
    sc = sidecar(args)
    for i in range(200):
        http(sc.port, "POST", "/mode/steady" if i % 2 else "/mode/pause")
    rss0 = sc.rss()
    probe = HealthProbe(sc.port, sc)
    stop = threading.Event()
    count = [0]

    def flood():
        while not stop.is_set():
            try:
                http(sc.port, "GET", "/logs?limit=1000", timeout=5)
                count[0] += 1
            except OSError:
                pass

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(args.secs)
    stop.set()
    for t in threads:
        t.join()
    line("logs-flood 16 clients", sc, rss0, probe, f"; {count[0] / args.secs:.0f} /logs answers a second")
    sc.stop()


def sse(args):
    sc = sidecar(args)
    rss0 = sc.rss()
    probe = HealthProbe(sc.port, sc)
    codes = []
    socks = []
    for _ in range(64):
        s = socket.create_connection(("127.0.0.1", sc.port), timeout=5)
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        codes.append(int(s.recv(64).split()[1]))
        socks.append(s)
    other = socket.create_connection(("127.0.0.1", sc.port), timeout=5, source_address=("127.0.0.2", 0))
    other.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    other_code = int(other.recv(64).split()[1])
    time.sleep(1)
    line("sse one client, 64 streams", sc, rss0, probe,
         f"; {codes.count(200)} opened, {codes.count(503)} refused; another address: {other_code}")
    for s in socks + [other]:
        s.close()
    sc.stop()


SCENARIOS = {
    "put-mistakes": put_mistakes,
    "put-flow": put_flow,
    "export": export,
    "big-bodies": big_bodies,
    "slow-answers": slow_answers,
    "pool-swap": pool_swap,
    "logs-flood": logs_flood,
    "sse": sse,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/trafficgen")
    ap.add_argument("--secs", type=float, default=10.0, help="length of each attack")
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = ap.parse_args()
    for name in args.scenarios:
        SCENARIOS[name](args)


if __name__ == "__main__":
    main()
