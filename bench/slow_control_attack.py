#!/usr/bin/env python3
"""Slow-body attack on the control port, measured (issue 16, items 2 and 3).

Opens N connections to the sidecar's control port, each sending a
`POST /mode/custom` head with `Content-Length: 4000` and then one body byte
every `--trickle` seconds (slowhttptest's slow-body attack). Meanwhile it
asks `/health` from a fresh connection every 50 ms and samples the
sidecar's RSS and descriptors, and the demo target's request counter for
the engine's rate. Prints RSS before/during/after, the /health latency
percentiles, and the rate the target saw during the attack.

Loopback only: the sidecar and the target must listen on 127.0.0.1.
Bounded: the attack lasts --secs seconds, then every socket is closed.

    python3 bench/slow_control_attack.py --pid PID --port 8089 \
        --target-port 8080 --connections 15000 --secs 60
"""

import argparse
import asyncio
import resource
import statistics
import time
import urllib.request


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    import os

    return len(os.listdir(f"/proc/{pid}/fd"))


def target_count(port):
    if not port:
        return 0
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("demo_target_requests_total")
    )


async def attacker(port, trickle, stop, stats):
    head = (
        "POST /mode/custom HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["opened"] += 1
        try:
            writer.write(head)
            await writer.drain()
            while not stop.is_set():
                await asyncio.sleep(trickle)
                if reader.at_eof():
                    break
                writer.write(b" ")
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            stats["closed"] += 1
            writer.close()
        if not stats["reconnect"]:
            return


def health_probe(port, source, stop, results):
    """In its own process, so the attack's event loop does not delay it."""
    import socket

    latencies, failures = [], []
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(source, 0)) as s:
                s.settimeout(max(0.01, 2 - (time.perf_counter() - t0)))
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(4096):
                    answer += chunk
            if b" 200 " in answer.split(b"\r\n", 1)[0]:
                latencies.append((time.monotonic(), time.perf_counter() - t0))
            else:
                failures.append("not 200" if answer else "closed without an answer")
        except OSError as e:
            failures.append(type(e).__name__)
        time.sleep(0.05)
    results.put((latencies, failures))


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target-port", type=int, default=0)
    ap.add_argument("--connections", type=int, default=15000)
    ap.add_argument("--trickle", type=float, default=5.0)
    ap.add_argument("--secs", type=float, default=60.0)
    ap.add_argument("--reconnect", action="store_true", help="reopen a connection the sidecar closed")
    ap.add_argument("--probe-from", default="127.0.0.1",
                    help="source address of the /health probes (127.0.0.2: a client other than the attacker)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    stats = {"opened": 0, "closed": 0, "connect_errors": 0, "reconnect": args.reconnect}
    rss_before, fds_before = rss_kib(args.pid), open_fds(args.pid)
    import multiprocessing

    stop = asyncio.Event()
    probe_stop, probe_results = multiprocessing.Event(), multiprocessing.Queue()
    probe = multiprocessing.Process(target=health_probe, args=(args.port, args.probe_from, probe_stop, probe_results))
    probe.start()
    attack_start = time.monotonic()
    n0, t0 = target_count(args.target_port), time.monotonic()
    tasks = []
    for i in range(args.connections):
        tasks.append(asyncio.create_task(attacker(args.port, args.trickle, stop, stats)))
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    peak_rss = peak_fds = 0
    deadline = time.monotonic() + args.secs
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        peak_rss = max(peak_rss, rss_kib(args.pid))
        peak_fds = max(peak_fds, open_fds(args.pid))
    rate = (target_count(args.target_port) - n0) / (time.monotonic() - t0)
    attack_end = time.monotonic()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(3)
    probe_stop.set()
    latencies, failures = probe_results.get()
    probe.join()
    during = [lat for (at, lat) in latencies if at <= attack_end]
    held = [lat for (at, lat) in latencies if attack_start + 5 <= at <= attack_end]
    rss_after = rss_kib(args.pid)
    print(f"connections asked {args.connections}, opened {stats['opened']}, closed by either side {stats['closed']}, "
          f"connect errors {stats['connect_errors']}")
    print(f"RSS KiB before {rss_before}, peak during {peak_rss}, 3 s after {rss_after}")
    print(f"descriptors before {fds_before}, peak during {peak_fds}")
    print(f"/health from {args.probe_from}: {len(during)} answered during the attack, {len(failures)} failed; "
          f"p50 {pct(during, 0.5) * 1000:.1f} ms, p99 {pct(during, 0.99) * 1000:.1f} ms, "
          f"max {max(during, default=float('nan')) * 1000:.1f} ms")
    print(f"/health once the flood is established (from 5 s on): p50 {pct(held, 0.5) * 1000:.1f} ms, "
          f"p99 {pct(held, 0.99) * 1000:.1f} ms, max {max(held, default=float('nan')) * 1000:.1f} ms")
    if failures:
        from collections import Counter
        print(f"/health failures: {dict(Counter(failures))}")
    if args.target_port:
        print(f"engine rate at the target during the attack: {rate:.1f} req/s")


if __name__ == "__main__":
    asyncio.run(main())
