#!/usr/bin/env python3
"""trafficgen beside oha and hey in paired loops, for a machine that drifts.

On a shared VM the CPU a request costs drifts by 10-30 % within minutes,
for every generator alike, so medians of runs made minutes apart compare
the drift as much as the generators. Here each loop runs every trafficgen
build given, then each peer, at each rate, one run each (bench.py's
`tg_run` and `peer_run`: nginx one worker on TARGET_CPU, generators on
GEN_CPU, requests counted at nginx), and prints every build's CPU per
request as a ratio to the cheapest peer of the same loop (issue 30,
bench/RESULTS.md §17-18).

  python3 bench/paired.py --loops 3 --rates 1000 10000 --bin target/x86_64-unknown-linux-gnu/release/trafficgen
  python3 bench/paired.py --bin OLD --bin NEW --bin NEW@1      # @H: MAX_RPS H x the rate (default 2)

Every process runs under `timeout` and is stopped by its PID; traffic goes
to 127.0.0.1 only.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", required=True, metavar="PATH[@H]",
                    help="a trafficgen build; @H sets MAX_RPS to H x the rate (default 2; 1: at its cap)")
    ap.add_argument("--loops", type=int, default=3)
    ap.add_argument("--rates", type=float, nargs="+", default=[1000, 10000])
    ap.add_argument("--peers", nargs="+", default=["oha", "hey"])
    ap.add_argument("--secs", type=float, default=8.0, help="each measured window (default 8)")
    ap.add_argument("--json", help="write every run here")
    args = ap.parse_args()
    peers = [p for p in args.peers if bench.peer_available(p)]
    if not peers:
        sys.exit("paired.py: none of the peers is installed (bench/README.md says how)")
    builds = []
    for spec in args.bin:
        path, _, headroom = spec.rpartition("@") if "@" in spec else (spec, "", "2")
        builds.append((path, float(headroom), f"{os.path.basename(path)}@{headroom}"))
    nginx = bench.Nginx()
    rows = []
    try:
        for loop in range(args.loops):
            for rate in args.rates:
                runs = {}
                for path, headroom, name in builds:
                    bench.TG_BIN, bench.TG_HEADROOM = path, headroom
                    runs[name] = bench.tg_run(nginx, rate, args.secs)
                for peer in peers:
                    runs[peer], _ = bench.peer_run(peer, nginx, rate, args.secs, bench.PEER_PATH,
                                                   name=f"{peer}-{rate:g}-{loop}")
                cheapest = min(runs[p]["cpu_us_per_req"] for p in peers)
                shown = []
                for name, r in runs.items():
                    us = r["cpu_us_per_req"]
                    extra = "" if name in peers else \
                        f" ({us / cheapest:.3f}x, error {r['error_pct']:+.2f} %, RSS {r['rss_peak_kib'] / 1024:.1f} MiB)"
                    shown.append(f"{name} {us:.2f} µs{extra}")
                print(f"loop {loop + 1}, {rate:g} req/s: " + "; ".join(shown), flush=True)
                rows.append({"loop": loop, "rate": rate, "cheapest_peer_us": cheapest,
                             "runs": {k: {f: v.get(f) for f in ("cpu_us_per_req", "error_pct", "rss_peak_kib",
                                                                 "lag_p99_s", "rate")} for k, v in runs.items()}})
    finally:
        bench.stop_all()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    for rate in args.rates:
        for _, _, name in builds:
            ratios = [r["runs"][name]["cpu_us_per_req"] / r["cheapest_peer_us"] for r in rows if r["rate"] == rate]
            print(f"{name} at {rate:g} req/s: " + ", ".join(f"{x:.2f}" for x in ratios) + " x the cheapest peer")


if __name__ == "__main__":
    main()
