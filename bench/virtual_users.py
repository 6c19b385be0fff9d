#!/usr/bin/env python3
"""Users mode at scale (issue 26): N virtual users on one replica against
the demo target, each pausing PAUSE between requests. Prints the sidecar's
RSS and CPU, per 1 000 users, and whether RSS grows over the run.

    python3 bench/virtual_users.py --bin target/release/trafficgen [--users 5000] [--pause 2s] [--secs 600] [--max-rps 10000]

Starts its own demo target and sidecar on loopback ports, bounded in time,
and stops both (by their PIDs) at the end. Not part of the test suite.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def target_count(port):
    text = get(port, "/metrics")
    return sum(float(m) for m in re.findall(r"^demo_target_requests_total\{[^}]*\} (\S+)$", text, re.M))


def wait_for_port(port, secs=10):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            get(port, "/health")
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing answers on port {port}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/trafficgen")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--pause", default="2s")
    ap.add_argument("--secs", type=float, default=600)
    ap.add_argument("--every", type=float, default=10)
    ap.add_argument("--max-rps", default="10000", help="MAX_RPS: above users / pause, so the cap does not hold the users back")
    args = ap.parse_args()

    tport, sport = free_port(), free_port()
    target = subprocess.Popen([args.bin, "demo-target", "--bind", "127.0.0.1", "--port", str(tport)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"PATH": os.environ.get("PATH", ""), "TARGET_URL": f"http://127.0.0.1:{tport}", "PORT": str(sport),
           "BIND": "127.0.0.1", "WARMUP_SECS": "0", "INITIAL_MODE": "pause", "MAX_USERS": str(args.users),
           "MAX_RPS": args.max_rps, "USER_PAUSE": args.pause, "STATS_INTERVAL_SECS": "0"}
    sidecar = subprocess.Popen([args.bin], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(tport)
        wait_for_port(sport)
        idle_rss, idle_cpu = rss_kib(sidecar.pid), cpu_secs(sidecar.pid)
        print(post(sport, "/mode/users", json.dumps({"users": args.users})))
        time.sleep(min(10.0, args.secs / 4))
        t0, c0, n0 = time.time(), cpu_secs(sidecar.pid), target_count(tport)
        first_rss = rss_kib(sidecar.pid)
        samples = []
        while time.time() - t0 < args.secs:
            time.sleep(args.every)
            samples.append((time.time() - t0, rss_kib(sidecar.pid)))
            status = json.loads(get(sport, "/status"))
            print(f"{samples[-1][0]:6.0f} s  RSS {samples[-1][1] / 1024:7.1f} MiB  users {status['users']['active']}"
                  f"  achieved {status['achieved_rps']:.1f}/s  in flight {status['in_flight']}", flush=True)
        t1, c1, n1 = time.time(), cpu_secs(sidecar.pid), target_count(tport)
        secs = t1 - t0
        cpu_share = (c1 - c0) / secs
        rate = (n1 - n0) / secs
        per_k = args.users / 1000
        late_rss = samples[-1][1] if samples else first_rss
        print(f"\n{args.users} users, pause {args.pause}, {secs:.0f} s: {rate:.1f} requests/s at the target")
        print(f"RSS: idle {idle_rss / 1024:.1f} MiB, with users {first_rss / 1024:.1f} MiB at the start, "
              f"{late_rss / 1024:.1f} MiB at the end "
              f"({(first_rss - idle_rss) / per_k / 1024:.2f} MiB per 1 000 users; growth {(late_rss - first_rss) / 1024:+.1f} MiB)")
        print(f"CPU: {cpu_share * 100:.1f} % of one core ({cpu_share * 100 / per_k:.2f} % per 1 000 users; "
              f"idle before: {idle_cpu:.2f} s since start)")
    finally:
        for proc in (sidecar, target):
            proc.terminate()
        for proc in (sidecar, target):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
