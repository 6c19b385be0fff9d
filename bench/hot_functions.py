#!/usr/bin/env python3
"""Writes link/hot-functions.txt: the functions a sidecar runs, hottest first.

Why: most of trafficgen's resident memory was its own code, file pages of
the executable. The kernel maps 64 KiB around every code page it faults in,
so two thousand functions spread over 7 MB of text kept 6 MiB of it
resident. Linked next to each other (build.rs hands this list to lld as
`--symbol-ordering-file`), they fill about 2 MiB (issue 30, bench/RESULTS.md
§15).

How: builds the release binary with its symbols (`cargo rustc ... -- -C
strip=none`, in target/hot-functions: the same symbol names as the normal
release build, whose crates are compiled alike), runs one bounded sidecar
session under valgrind's callgrind against nginx on loopback (start and
warm-up, the steady mode, 1 000 and 5 000 req/s, virtual users, burst,
`/status`, `/metrics`, `/history`, `/health`, the panel, then SIGTERM), and
lists every function of the binary that ran (std and libc included), by
its own cost, hottest first.

  python3 bench/hot_functions.py [--out link/hot-functions.txt] [--skip-build]

Symbol names carry a hash of the toolchain and build settings: a list made
with another rustc, or before a change to Cargo.toml, names functions the
linker no longer finds. It skips them, so a stale list costs memory, never
correctness; regenerate it after such a change (bench/README.md).
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time

import bench

ROOT = os.path.dirname(bench.HERE)
TARGET = "x86_64-unknown-linux-gnu"


def build(target_dir):
    """The release binary with its symbols: only the final link differs."""
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir, RUSTFLAGS="-C target-feature=+crt-static")
    subprocess.run(["cargo", "rustc", "--release", "--locked", "--target", TARGET, "--bin", "trafficgen", "--",
                    "-C", "strip=none"], cwd=ROOT, env=env, check=True)


def session(binary, out_file):
    """One sidecar's life in half a minute under callgrind; every process is
    bounded by `timeout` and stopped by PID."""
    nginx = bench.Nginx()
    port = bench.free_port()
    env = dict(os.environ, TARGET_URL=nginx.url, PORT=str(port), BIND="127.0.0.1", WARMUP_SECS="1",
               MAX_RPS="20000", STATS_INTERVAL_SECS="2")
    env.pop("PEERS", None)  # the bench harness's peers, not replicas
    cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no",
           f"--callgrind-out-file={out_file}", binary]
    tg = bench.Proc("hot-functions", cmd, bench.GEN_CPU, 180, env=env)

    def get(path):
        try:
            return bench.request("GET", port, path)[0]
        except OSError:
            return None

    def post(path, body=None):
        status, text = bench.request("POST", port, path, body=None if body is None else json.dumps(body))
        if status != 200:
            raise RuntimeError(f"POST {path} -> {status} {text}")

    bench.wait_until(lambda: get("/health") == 200, 60, "trafficgen /health under callgrind")
    time.sleep(3)  # the warm-up, then the steady mode
    for path in ("/status", "/metrics", "/", "/history"):
        get(path)
    for body, secs in (({"rps": 1000}, 5), ({"rps": 5000}, 3)):
        post("/mode/custom", body)
        for _ in range(secs):
            time.sleep(1)
            get("/status")
            get("/metrics")
    post("/mode/users", {"users": 200, "pause": "0.1s..0.3s"})
    time.sleep(3)
    post("/mode/burst")
    time.sleep(2)
    get("/health")
    tg.stop(grace=60)  # SIGTERM: the shutdown runs too, and callgrind writes its file
    nginx.stop()


def functions_by_cost(callgrind_out, binary):
    """Every function of `binary` in a callgrind file (uncompressed names),
    with its own cost, hottest first."""
    cost = collections.Counter()
    ours = after_calls = False
    fn = None
    with open(callgrind_out) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                ours = os.path.realpath(line[3:]) == binary
            elif line.startswith("fn="):
                fn = line[3:] if ours else None
                if fn:
                    cost[fn] += 0
            elif line.startswith("calls="):
                after_calls = True  # the next cost line is the call's, not this function's own
            elif fn and line[:1] in "0123456789+-*" and line:
                if after_calls:
                    after_calls = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    cost[fn] += int(parts[1])
    return sorted(cost, key=lambda name: (-cost[name], name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "link", "hot-functions.txt"))
    ap.add_argument("--skip-build", action="store_true", help="reuse target/hot-functions' build")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("hot_functions.py: valgrind not found (apt-get install valgrind)")
    target_dir = os.path.join(ROOT, "target", "hot-functions")
    binary = os.path.join(target_dir, TARGET, "release", "trafficgen")
    if not args.skip_build:
        build(target_dir)
    out_file = os.path.join(target_dir, "callgrind.out")
    if os.path.exists(out_file):
        os.remove(out_file)
    try:
        session(binary, out_file)
    finally:
        bench.stop_all()
    names = functions_by_cost(out_file, os.path.realpath(binary))
    if not names:
        sys.exit(f"hot_functions.py: no function of {binary} in {out_file}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("".join(n + "\n" for n in names))
    print(f"{len(names)} functions ran; written to {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
