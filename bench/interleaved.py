#!/usr/bin/env python3
"""Two trafficgen builds beside one nginx, taking turns, for an A/B that the
machine's drift cannot tilt.

bench/paired.py runs each build as its own process minutes apart from the
next loop; on a shared VM the cost of a request drifts 10-30 % within
minutes, more than a change of a few per cent. Here both sidecars run for
the whole measurement, in `pause`, and take turns sending (ABBA order: A B,
B A, ...): each window of SECS seconds at RATE (after 1 s of warm-up) is
measured as CPU ns per request (schedstat of all the sidecar's threads,
requests counted at nginx), and each pair's B/A ratio is printed, then the
medians (issue 30, bench/RESULTS.md section 19).

  python3 bench/interleaved.py --a OLD --b NEW --rate 10000 --pairs 12 --secs 3

Each process (nginx, both sidecars) runs under `timeout` and is stopped by
its PID at the end; all traffic stays on 127.0.0.1.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, help="the build to compare against")
    ap.add_argument("--b", required=True, help="the build compared")
    ap.add_argument("--rate", type=float, default=10000)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--secs", type=float, default=3.0, help="each measured window (default 3)")
    ap.add_argument("--headroom", type=float, default=2.0, help="MAX_RPS as a multiple of the rate (1: at its cap)")
    args = ap.parse_args()
    nginx = bench.Nginx()
    try:
        sidecars = []
        for name, path in (("A", args.a), ("B", args.b)):
            bench.TG_BIN = path
            bound = args.pairs * 2 * (args.secs + 2) + 60
            sidecars.append(bench.Trafficgen(nginx.url, cap=args.rate * args.headroom, name=name, bound=bound))

        def window(tg):
            tg.post("/mode/custom", {"rps": args.rate})
            time.sleep(1.0)
            cpu0, n0 = bench.cpu_ns(tg.pid), nginx.count()
            time.sleep(args.secs)
            cpu1, n1 = bench.cpu_ns(tg.pid), nginx.count()
            tg.post("/mode/pause")
            time.sleep(0.3)
            return (cpu1 - cpu0) / 1e3 / max(1, n1 - n0)

        a_us, b_us, ratios = [], [], []
        for i in range(args.pairs):
            got = {}
            for k in ((0, 1) if i % 2 == 0 else (1, 0)):
                got[k] = window(sidecars[k])
            a_us.append(got[0])
            b_us.append(got[1])
            ratios.append(got[1] / got[0])
            print(f"pair {i + 1}: A {got[0]:.2f} µs, B {got[1]:.2f} µs per request, B/A {ratios[-1]:.3f}", flush=True)
        print(f"median A {statistics.median(a_us):.2f} µs, B {statistics.median(b_us):.2f} µs; "
              f"B/A median {statistics.median(ratios):.3f}, mean {statistics.mean(ratios):.3f}")
    finally:
        bench.stop_all()


if __name__ == "__main__":
    main()
