#!/usr/bin/env python3
"""How fast a change of the number of virtual users reaches the target
(issue 26), counted at the demo target per 100 ms (GET /stats/arrivals).

    python3 bench/users_switch.py --bin target/release/trafficgen [--repeats 5]

Two measures, each repeated:

1. **A step**: 10 users with a fixed pause against a target answering in
   LATENCY ms, then 10 -> 50 by one POST /mode/users. The 40 new users
   send their first request at once: reported is the time from sending the
   POST until the target has counted three quarters of them on arrival
   (its last second of 100 ms buckets, polled in a loop: the poll's own
   round trip, about a millisecond, is included).
2. **A ramp**: 10 -> 50 users over RAMP seconds. Each user sends once per
   cycle (pause + answer time), so the rate at the target should follow
   users(t) / cycle. Reported is each whole second of the ramp's counts
   against a straight line fitted to them (the largest deviation from it),
   and that line's slope against the model's: a user sends its first
   request when it joins and then once a cycle, so the rate follows
   users(t + cycle / 2) / cycle, rising (to - from) / ramp / cycle a second
   each second. The first cycle after the ramp starts is left out (the
   users already running keep their phase).

Timing on a busy machine moves these figures; that is why they are here and
not in `cargo test`. Starts its own demo target and sidecar on loopback,
bounded in time, and stops both (by their PIDs) at the end.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import free_port, request  # noqa: E402


def call(port, method, path, body=None):
    status, text = request(method, port, path, body)
    if status >= 400:
        raise OSError(f"{method} {path}: {status} {text}")
    return json.loads(text or "null")


def wait_for_port(port, secs=10):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            call(port, "GET", "/health")
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing answers on port {port}")


def arrivals(port):
    """(read at, bucket seconds, counts oldest first; the last is the current bucket)."""
    answer = call(port, "GET", "/stats/arrivals")
    return time.monotonic(), answer["bucket_ms"] / 1000, answer["counts"]


def recent(port, buckets=10):
    """Arrivals at the target over the last `buckets` 100 ms buckets."""
    return sum(arrivals(port)[2][-buckets:])


def step(tport, sport, users_before, users_after):
    """Seconds from the POST until the target has seen most of the new users'
    first requests (polled a few hundred times a second), and the
    arrivals of the second before and after."""
    call(sport, "POST", "/mode/users", json.dumps({"users": users_before}))
    time.sleep(3)
    usual = recent(tport)
    posted = time.monotonic()
    call(sport, "POST", "/mode/users", json.dumps({"users": users_after}))
    # The new users send at once; the old ones send at most once a cycle.
    wanted = usual + (users_after - users_before) * 3 // 4
    while time.monotonic() - posted < 2:
        now = recent(tport)
        if now >= wanted:
            return time.monotonic() - posted, usual, now
    return None, usual, recent(tport)


def ramp(tport, sport, users_from, users_to, secs, cycle):
    """Per whole second of the ramp: (second, counted, expected by the line)."""
    # The first users join over one cycle, so their sends are spread over
    # it: started together, with a fixed pause they would send together
    # for ever, and a second without their turn would dip by all of them.
    call(sport, "POST", "/mode/users", json.dumps({"users": users_from, "ramp_secs": cycle}))
    time.sleep(cycle + 3)
    posted = time.monotonic()
    call(sport, "POST", "/mode/users", json.dumps({"users": users_to, "ramp_secs": secs}))
    time.sleep(secs + 1.5)
    read_at, bucket, counts = arrivals(tport)
    starts = [read_at - (len(counts) - i) * bucket for i in range(len(counts))]
    rows = []
    first = max(1, int(cycle + 0.999))
    for second in range(first, int(secs)):
        lo, hi = posted + second, posted + second + 1
        counted = sum(c for c, start in zip(counts, starts) if lo <= start + bucket / 2 < hi)
        # Users at the middle of the second, half a cycle ahead (a user
        # sends when it joins, then once a cycle).
        at = min(secs, second + 0.5 + cycle / 2)
        users = users_from + (users_to - users_from) * at / secs
        rows.append((second, counted, users / cycle))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/trafficgen")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--latency-ms", type=int, default=100)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds")
    ap.add_argument("--ramp-secs", type=float, default=10.0)
    args = ap.parse_args()
    cycle = args.pause + args.latency_ms / 1000

    tport, sport = free_port(), free_port()
    target = subprocess.Popen(
        [args.bin, "demo-target", "--bind", "127.0.0.1", "--port", str(tport), "--latency-ms", str(args.latency_ms)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"PATH": os.environ.get("PATH", ""), "TARGET_URL": f"http://127.0.0.1:{tport}", "PORT": str(sport),
           "BIND": "127.0.0.1", "WARMUP_SECS": "0", "INITIAL_MODE": "pause", "USER_PAUSE": f"{args.pause}s",
           "STATS_INTERVAL_SECS": "0"}
    sidecar = subprocess.Popen([args.bin], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(tport)
        wait_for_port(sport)
        print(f"step 10 -> 50 users (pause {args.pause} s, answers in {args.latency_ms} ms):")
        delays = []
        for i in range(args.repeats):
            delay, usual, count = step(tport, sport, 10, 50)
            call(sport, "POST", "/mode/pause")
            time.sleep(1.5)
            shown = "not seen" if delay is None else f"{delay * 1000:.0f} ms"
            print(f"  run {i + 1}: {shown} from the POST to 3/4 of the new users counted at the target "
                  f"(last second: {usual} before, {count} then)", flush=True)
            if delay is not None:
                delays.append(delay)
        if delays:
            print(f"  worst {max(delays) * 1000:.0f} ms, median {sorted(delays)[len(delays) // 2] * 1000:.0f} ms")
        print(f"\nramp 10 -> 50 users over {args.ramp_secs:.0f} s (cycle {cycle:.2f} s):")
        worst, slopes = [], []
        model_slope = (50 - 10) / args.ramp_secs / cycle
        for i in range(args.repeats):
            rows = ramp(tport, sport, 10, 50, args.ramp_secs, cycle)
            call(sport, "POST", "/mode/pause")
            time.sleep(1.5)
            xs = [s for s, _, _ in rows]
            ys = [c for _, c, _ in rows]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            fitted = [my + slope * (x - mx) for x in xs]
            worst.append(max(abs(y - f) / f for y, f in zip(ys, fitted)))
            slopes.append(slope)
            print(f"  run {i + 1}: " + ", ".join(f"{s}s {c} (model {e:.1f})" for s, c, e in rows), flush=True)
            total_counted = sum(ys)
            total_expected = sum(e for _, _, e in rows)
            print(f"         fitted slope {slope:.2f}/s per s (model {model_slope:.2f}); largest deviation from the "
                  f"fitted line {worst[-1] * 100:.1f} %; over the ramp {total_counted} counted, "
                  f"{total_expected:.1f} by the model ({(total_counted - total_expected) / total_expected * 100:+.1f} %)")
        print(f"  largest per-second deviation from a straight line: median {sorted(worst)[len(worst) // 2] * 100:.1f} %, "
              f"worst {max(worst) * 100:.1f} %; slope median {sorted(slopes)[len(slopes) // 2]:.2f} "
              f"(model {model_slope:.2f})")
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
