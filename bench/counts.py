#!/usr/bin/env python3
"""What one request costs trafficgen in system calls, context switches, CPU
and memory, at fixed rates (issue 30). Python standard library only.

Counts, unlike times, barely move with the load of the machine: a system
call is made or it is not. So the figures of this script can gate CI
(`--check`), where a CPU time cannot.

For each rate it starts a target (nginx from bench/nginx.conf, or the
built-in demo target) and a fresh trafficgen sidecar in `pause`, sets
`POST /mode/custom {"rps": N}`, waits WARM seconds, then measures two
windows of SECS seconds, requests counted at the target:

1. untraced: voluntary and nonvoluntary context switches of every thread
   (/proc/PID/task/*/status), CPU time (schedstat, ns), peak RSS (VmHWM)
   and the binary's own pages mapped in (RssFile),
   and, where `perf` can count the `raw_syscalls:sys_enter` tracepoint,
   system calls per thread at next to no cost;
2. traced: `strace -f -c -p PID` (every thread), for system calls by name.
   ptrace slows each call down, so at high rates the traced engine batches
   more and the figure is a little low; the untraced perf count (when
   there is one) is the one to read there.

The control API is not touched inside a window (its thread would count).

  python3 bench/counts.py --bin target/release/trafficgen             # 100, 1000, 10000 req/s
  python3 bench/counts.py --bin B --rates 1000 --check bench/counts-baseline.json   # the CI guard
  python3 bench/counts.py --bin B --rates 1000 --write-baseline bench/counts-baseline.json

Other kinds of traffic, for the table per kind (RESULTS.md section 13b; bench/README.md):

  python3 bench/counts.py --bin B --rates 100 1000 --workload bench/workloads/journey.yaml --per-arrival 4
  python3 bench/counts.py --bin B --users 100 1000 --pause 1s        # users mode, about N/1 s req/s
  python3 bench/counts.py --bin B --rates 100 1000 --spans           # every request a span, to an OTLP receiver

Every process runs under `timeout` and is stopped by its PID; traffic goes
to 127.0.0.1 only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (Proc, Nginx, DemoTarget, Trafficgen, stop_all)

ENGINE_THREAD = "trafficgen-engi"
# Above every normal (CFS) task, far below the kernel's own RT threads.
RT_PRIORITY = 10  # "trafficgen-engine", cut to 15 characters by the kernel


def log(msg):
    print(f"[counts {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def threads(pid):
    """{tid: (name, voluntary, nonvoluntary, cpu ns)} of every live thread."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(tid)] = (status["Name"].strip(), int(status["voluntary_ctxt_switches"]),
                         int(status["nonvoluntary_ctxt_switches"]), ns)
    return out


def thread_deltas(t0, t1):
    """Per thread name: (voluntary, nonvoluntary, cpu ns) over the window;
    threads that began or ended inside it count from zero or not at all."""
    by_name = {}
    for tid, (name, vol, nonvol, ns) in t1.items():
        _, vol0, nonvol0, ns0 = t0.get(tid, (name, 0, 0, 0))
        v, n, c = by_name.get(name, (0, 0, 0))
        by_name[name] = (v + vol - vol0, n + nonvol - nonvol0, c + ns - ns0)
    return by_name


def perf_usable():
    if not shutil.which("perf"):
        return False
    try:
        r = subprocess.run(["timeout", "10", "perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"],
                           capture_output=True, text=True)
    except OSError:
        return False
    return r.returncode == 0 and "raw_syscalls" in r.stderr and "<not" not in r.stderr


def start_perf(pid, out_path):
    return subprocess.Popen(["timeout", "-s", "INT", "120", "perf", "stat", "-x,", "--per-thread", "-e",
                             "raw_syscalls:sys_enter", "-o", out_path, "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_counts(path):
    """{thread name: syscalls} from `perf stat -x, --per-thread` output
    (lines like `trafficgen-engi-1234,5678,,raw_syscalls:sys_enter,...`)."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) < 4 or "raw_syscalls" not in line or not parts[1].strip().isdigit():
                continue
            name = parts[0].rsplit("-", 1)[0].strip()
            out[name] = out.get(name, 0) + int(parts[1])
    return out


def strace_summary(path):
    """{syscall: calls} from `strace -c` output."""
    calls = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or not parts[0].replace(".", "", 1).isdigit() or parts[-1] == "total":
                continue
            # % time, seconds, usecs/call, calls, [errors,] syscall
            calls[parts[-1]] = calls.get(parts[-1], 0) + int(parts[3])
    return calls


def stop_proc(p, sig=signal.SIGINT, grace=10):
    """Ends a helper we started (strace, perf) by its PID and waits for it."""
    if p.poll() is None:
        p.send_signal(sig)
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def rt_usable():
    """Whether this process may give a child SCHED_FIFO (root, or CAP_SYS_NICE)."""
    if not shutil.which("chrt"):
        return False
    probe = subprocess.Popen(["sleep", "5"])
    try:
        return subprocess.run(["chrt", "-f", "-p", str(RT_PRIORITY), str(probe.pid)],
                              capture_output=True).returncode == 0
    finally:
        stop_proc(probe, signal.SIGTERM)


def make_rt(pid, all_threads=True):
    """SCHED_FIFO for a process we started (every thread): it runs as soon as
    it wakes, as on a quiet machine, whatever else the CPU is busy with."""
    cmd = ["chrt", "-f", "-p", str(RT_PRIORITY), str(pid)]
    if all_threads:
        cmd.insert(1, "-a")
    subprocess.run(cmd, check=True, capture_output=True)


def parse_pause(text):
    """Mean seconds of a users-mode pause (`1s`, `500ms`, `1s..3s`), or
    ValueError: only to size MAX_RPS and the row's nominal rate; trafficgen
    itself checks the pause it is given."""
    def secs(part):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", part)
        if not m:
            raise ValueError(f"not a duration: {part!r} (e.g. 1s, 500ms, 1s..3s)")
        return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    parts = text.split("..")
    if len(parts) > 2:
        raise ValueError(f"not a pause: {text!r} (e.g. 1s, 500ms, 1s..3s)")
    return statistics.mean(secs(p) for p in parts)


class Traffic:
    """What the sidecar is told to send, and what to add to its environment.

    Open model (the default, and the CI guard's): `POST /mode/custom` at
    `rate / per_arrival` arrivals per second (a journey arrival sends
    `per_arrival` requests). Users mode: `POST /mode/users` with `users`
    and `pause`. `rate` is always the requests per second aimed at (users:
    users / mean pause, the answer time left out); MAX_RPS is twice it."""

    def __init__(self, rate, per_arrival=1, users=None, pause=None, extra_env=None, label=None):
        self.rate = rate
        self.per_arrival = per_arrival
        self.users = users
        self.pause = pause
        self.extra_env = dict(extra_env or {})
        self.label = label
        if users is not None:
            self.extra_env.setdefault("MAX_USERS", str(max(1000, users)))

    def start(self, tg):
        if self.users is None:
            tg.post("/mode/custom", {"rps": self.rate / self.per_arrival})
        else:
            tg.post("/mode/users", {"users": self.users, "pause": self.pause})


def after_windows(tg, receiver, posts0):
    """What the sidecar says once both windows are over (the control API is
    not touched inside one): failures and drops since it started, spans,
    journeys, users. Read from /metrics and /status; `otlp_posts` are the
    batches the receiver took from this sidecar."""
    text = tg.metrics()
    counts = bench.tg_counts(text)
    out = {"tg_ok": counts["ok"], "tg_failed": counts["failed"], "tg_dropped": counts["dropped"]}
    spans = bench.span_counts(text)
    if receiver is not None or spans.get("exported"):
        out["spans"] = spans
    if receiver is not None:
        out["otlp_posts"] = receiver.posts - posts0
    st = tg.status()
    if st.get("journeys"):
        out["journeys"] = st["journeys"]
    if st.get("model") == "closed":
        out["users_status"] = st.get("users")
    return out


def measure(target, traffic, secs, warm, use_perf, rt, receiver=None, headroom=None):
    rate = traffic.rate
    # MAX_RPS with headroom (twice the rate, at least the default 1000)
    # unless --headroom says (1: the rate at its cap, as the default
    # MAX_RPS puts 1 000 req/s).
    cap = max(1000.0, 2 * rate) if headroom is None else rate * headroom
    posts0 = receiver.posts if receiver is not None else 0
    tg = bench.Trafficgen(target.url, cap, initial_mode="pause", name=f"counts-{int(rate)}", bound=warm + 2 * secs + 60,
                          extra_env=traffic.extra_env)
    try:
        if rt:
            make_rt(tg.pid)
        traffic.start(tg)
        time.sleep(warm)
        pid = tg.pid
        scratch = tempfile.mkdtemp(prefix="tg-counts-")
        try:
            # Window 1: untraced.
            perf = start_perf(pid, os.path.join(scratch, "perf.txt")) if use_perf else None
            if perf:
                time.sleep(0.2)  # attached
            # The lag histogram around the window, read outside it.
            m0 = bench.lag_buckets(tg.metrics())
            c0, t0 = target.count(), threads(pid)
            time.sleep(secs)
            c1, t1 = target.count(), threads(pid)
            m1 = bench.lag_buckets(tg.metrics())
            if perf:
                stop_proc(perf)
            rss_peak = bench.proc_status_kib(pid, "VmHWM")
            rss = bench.proc_status_kib(pid, "VmRSS")
            rss_file = bench.proc_status_kib(pid, "RssFile")
            deltas = thread_deltas(t0, t1)
            requests = c1 - c0
            perf_by_thread = perf_counts(os.path.join(scratch, "perf.txt")) if perf else None
            # perf's window is 0.2 s longer at the start and some ms at the end:
            # scale its counts to the request window.
            res = {"rate": rate, "secs": secs, "requests": requests, "achieved": requests / secs,
                   "rss_kib": rss, "rss_peak_kib": rss_peak, "rss_file_kib": rss_file, "threads": deltas,
                   "lag_p99_s": bench.p99_bound(m0, m1)}
            if traffic.label:
                res["label"] = traffic.label
            if traffic.users is not None:
                res.update(users=traffic.users, pause=traffic.pause)
            if traffic.per_arrival != 1:
                res["per_arrival"] = traffic.per_arrival
            vol = sum(v for v, _, _ in deltas.values())
            nonvol = sum(n for _, n, _ in deltas.values())
            cpu_ns = sum(c for _, _, c in deltas.values())
            eng = deltas.get(ENGINE_THREAD, (0, 0, 0))
            per = max(requests, 1)
            res.update(voluntary_per_req=vol / per, nonvoluntary_per_req=nonvol / per,
                       engine_voluntary_per_req=eng[0] / per, engine_nonvoluntary_per_req=eng[1] / per,
                       cpu_us_per_req=cpu_ns / 1000 / per, engine_cpu_us_per_req=eng[2] / 1000 / per)
            if perf_by_thread is not None:
                res["perf_syscalls_per_req"] = sum(perf_by_thread.values()) / per
                res["perf_engine_syscalls_per_req"] = perf_by_thread.get(ENGINE_THREAD, 0) / per
                res["perf_syscalls_by_thread"] = perf_by_thread
            # Window 2: traced.
            if True:
                out = os.path.join(scratch, "strace.txt")
                c0 = target.count()
                # strace too runs first when it wakes: a traced call waits for it.
                chrt = ["chrt", "-f", str(RT_PRIORITY)] if rt else []
                st = subprocess.Popen(["timeout", "-s", "INT", str(int(secs + 30))] + chrt + ["strace", "-f", "-c", "-o", out,
                                       "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(secs)
                stop_proc(st)
                c1 = target.count()
                calls = strace_summary(out)
                traced = max(c1 - c0, 1)
                res["strace_requests"] = c1 - c0
                res["syscalls_per_req"] = sum(calls.values()) / traced
                res["syscalls_by_name_per_req"] = {k: v / traced for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}
            if traffic.label:
                res.update(after_windows(tg, receiver, posts0))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return res
    finally:
        tg.stop()


def fmt_row(r):
    names = r.get("syscalls_by_name_per_req", {})
    top = ", ".join(f"{k} {v:.2f}" for k, v in list(names.items())[:6])
    perf = r.get("perf_syscalls_per_req")
    kind = f"| {r['label']} " if "label" in r else ""
    return (f"{kind}| {r['rate']:,.0f} | {r['achieved']:,.1f} | {r.get('syscalls_per_req', float('nan')):.2f} | "
            f"{'–' if perf is None else f'{perf:.2f}'} | "
            f"{'–' if perf is None else format(r['perf_engine_syscalls_per_req'], '.2f')} | "
            f"{r['voluntary_per_req']:.2f} / {r['nonvoluntary_per_req']:.2f} | "
            f"{r['engine_voluntary_per_req']:.2f} / {r['engine_nonvoluntary_per_req']:.2f} | "
            f"{r['cpu_us_per_req']:.1f} | {r['rss_peak_kib'] / 1024:.1f} | {r['rss_file_kib'] / 1024:.1f} | "
            f"{'–' if r.get('lag_p99_s') is None else format(r['lag_p99_s'] * 1000, 'g')} | {top} |")


TABLE_HEAD = ("| req/s | achieved | syscalls/req (strace, all threads) | syscalls/req (perf, all) | "
              "syscalls/req (perf, engine thread) | ctx switches/req vol / nonvol (all) | "
              "engine vol / nonvol | CPU µs/req | peak RSS MiB | binary's pages mapped (RssFile) MiB | lag p99 ms (bound) | "
              "by name, per request (strace) |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|")


# The gated figures: system calls per request by strace (always there:
# ci/install-test-servers.sh installs it) and, where perf can count them
# untraced, by perf too; voluntary context switches per request (every
# thread). Nonvoluntary switches are not gated: they count preemption by
# other processes, i.e. the machine's load, not our code. And the binary's
# own pages mapped in (RssFile, KiB): it rises when the code a sidecar runs
# is no longer laid out together (a stale link/hot-functions.txt, see
# bench/hot_functions.py), whatever the load.
GATED = ("syscalls_per_req", "perf_syscalls_per_req", "voluntary_per_req", "rss_file_kib")


def guarded_figures(runs):
    """The gated figures there are, each the lowest of the runs. A busy
    machine only adds to a count (a wake-up whose answers come back one by
    one, a preempted batch), while a change of the code adds to every run:
    the lowest keeps the change and drops the load. (Medians let one CI
    run reach 0.66 switches per request against a 0.53 baseline, with
    0.49 in the next repeat of the same build.)"""
    return {key: min(r[key] for r in runs) for key in GATED if all(key in r for r in runs)}


def check(figures, baseline, baseline_path):
    """Prints the verdict of each gated figure; returns the names of those
    that rose past the baseline's margin."""
    margin = float(baseline.get("margin", 0.2))
    failed = []
    for key in GATED:
        if key not in baseline or key not in figures:
            print(f"{key}: not measured here or not in the baseline; not checked")
            continue
        limit = baseline[key] * (1 + margin)
        ok = figures[key] <= limit
        print(f"{key}: {figures[key]:.3f} (baseline {baseline[key]:.3f}, limit {limit:.3f} = +{margin:.0%}): "
              f"{'ok' if ok else 'TOO HIGH'}")
        if not ok:
            failed.append(key)
        elif figures[key] < baseline[key] * (1 - margin):
            print(f"  {key} fell well below the baseline: lower it in {baseline_path} to keep the guard tight")
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="trafficgen binary (a release build)")
    ap.add_argument("--rates", type=float, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--secs", type=float, default=4.0, help="each measured window (default 4)")
    ap.add_argument("--warm", type=float, default=1.5, help="run time before the first window (default 1.5)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per rate, each printed; the guard takes the lowest of each figure")
    ap.add_argument("--target", choices=["auto", "nginx", "demo"], default="auto",
                    help="nginx (bench/nginx.conf, needs nginx on PATH) or the demo target; auto: nginx if present")
    ap.add_argument("--no-perf", action="store_true", help="skip the untraced perf count")
    ap.add_argument("--no-rt", action="store_true",
                    help="leave the generator and the target at normal priority (default: SCHED_FIFO where allowed)")
    ap.add_argument("--json", help="write every run here")
    ap.add_argument("--check", metavar="BASELINE", help="fail (exit 1) when a gated figure rises past the margin")
    ap.add_argument("--write-baseline", metavar="BASELINE", help="write the measured gated figures there")
    ap.add_argument("--headroom", type=float, metavar="H",
                    help="MAX_RPS = H x the rate (1: at its cap; default: twice the rate, at least 1000)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="extra environment for trafficgen")
    kinds = ap.add_argument_group("kind of traffic (default: the built-in mix at each rate, as the CI guard measures)")
    kinds.add_argument("--workload", metavar="FILE", help="a workload file (sets WORKLOAD_FILE)")
    kinds.add_argument("--per-arrival", type=int, default=1, metavar="K",
                       help="requests one arrival sends (4 for bench/workloads/journey.yaml): "
                            "the sidecar is set to rate / K arrivals/s, so --rates stays requests/s")
    kinds.add_argument("--users", type=int, nargs="+", metavar="N",
                       help="users mode (the closed model) instead of --rates: a run for each N, "
                            "POST /mode/users {users: N, pause: --pause}")
    kinds.add_argument("--pause", default="1s", help="the users' pause: 1s, 500ms, 1s..3s (default 1s)")
    kinds.add_argument("--spans", action="store_true",
                       help="every request a span (always_on), exported to an OTLP/HTTP receiver in this script "
                            "(bench.py's), batches every 1 s")
    kinds.add_argument("--label", help="name of the kind of traffic, shown as a first column and kept in --json")
    args = ap.parse_args()
    if args.per_arrival < 1:
        sys.exit("counts: --per-arrival must be at least 1")
    if args.users is not None:
        if any(n < 1 for n in args.users):
            sys.exit("counts: --users takes numbers of users of at least 1")
        try:
            pause_mean = parse_pause(args.pause)
        except ValueError as e:
            sys.exit(f"counts: --pause: {e}")
        if pause_mean <= 0:
            sys.exit("counts: --pause must be longer than 0 (the rate would be the target's alone)")
        if args.per_arrival != 1:
            sys.exit("counts: --per-arrival applies to --rates, not to --users")
    if args.headroom is not None and not 1 <= args.headroom < float("inf"):
        sys.exit("counts: --headroom must be a number of at least 1 (MAX_RPS below the rate caps it)")
    if args.check:
        # Refused before minutes of measuring, not after.
        with open(args.check) as f:
            check_baseline = json.load(f)
        if check_baseline.get("headroom") != args.headroom:
            sys.exit(f"counts: {args.check} was measured with --headroom {check_baseline.get('headroom', '(default)')}, "
                     f"this run asks {'(default)' if args.headroom is None else args.headroom}")
    if args.workload and not os.path.isfile(args.workload):
        sys.exit(f"counts: --workload {args.workload}: no such file")
    if (args.check or args.write_baseline) and (args.workload or args.users or args.spans or args.label):
        sys.exit("counts: --check and --write-baseline measure the built-in mix at a rate only")

    bench.TG_BIN = os.path.abspath(args.bin)
    bench.OUT_DIR = tempfile.mkdtemp(prefix="tg-counts-out-")
    bench.LOG_DIR = os.path.join(bench.OUT_DIR, "logs")
    if not shutil.which("strace"):
        sys.exit("counts: strace is not installed (ci/install-test-servers.sh installs it)")
    kind = args.target
    if kind == "auto":
        kind = "nginx" if shutil.which("nginx") else "demo"
    use_perf = not args.no_perf and perf_usable()
    rt = not args.no_rt and rt_usable()
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    label = args.label
    if label is None and (args.workload or args.users or args.spans):
        parts = [os.path.basename(args.workload) if args.workload else "built-in mix"]
        if args.users:
            parts.append(f"users, pause {args.pause}")
        if args.spans:
            parts.append("spans 1.0")
        label = ", ".join(parts)
    if args.workload:
        extra_env["WORKLOAD_FILE"] = os.path.abspath(args.workload)
    # Counts only: no pinning of the generator next to busy neighbours is
    # needed, but pin the two apart so the target does not steal its CPU.
    results = {"target": kind, "perf": use_perf, "rt": rt, "runs": []}
    if label:
        results["label"] = label
        results["argv"] = sys.argv[1:]
    receiver = None
    try:
        if args.spans:
            receiver = bench.OtlpReceiver()
            # As RESULTS.md section 10: every request sampled, batches every 1 s.
            extra_env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
                             OTEL_TRACES_SAMPLER="always_on", OTEL_BSP_SCHEDULE_DELAY="1000")
        target = bench.Nginx() if kind == "nginx" else bench.DemoTarget()
        if rt:
            for pid in target.cpu_pids():
                make_rt(pid)
        if args.users:
            plan = [Traffic(n / pause_mean, users=n, pause=args.pause, extra_env=extra_env, label=label)
                    for n in args.users]
        else:
            plan = [Traffic(rate, per_arrival=args.per_arrival, extra_env=extra_env, label=label)
                    for rate in args.rates]
        for traffic in plan:
            for i in range(args.repeats):
                what = f"{traffic.users} users (pause {traffic.pause})" if traffic.users else f"{traffic.rate:g} req/s"
                log(f"{what}{f' of {label}' if label else ''}, run {i + 1}/{args.repeats} against {kind}")
                results["runs"].append(measure(target, traffic, args.secs, args.warm, use_perf, rt, receiver,
                                               args.headroom))
        target.stop()
    finally:
        if receiver is not None:
            receiver.stop()
        bench.stop_all()
        shutil.rmtree(bench.OUT_DIR, ignore_errors=True)

    print(f"target: {kind}; untraced syscall count by perf: {'yes' if use_perf else 'no'}; "
          f"SCHED_FIFO: {'yes' if rt else 'no'}; "
          f"windows of {args.secs:g} s after {args.warm:g} s")
    if label:
        print("| traffic " + TABLE_HEAD.replace("\n", "\n|---"))
    else:
        print(TABLE_HEAD)
    for r in results["runs"]:
        print(fmt_row(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)

    at = [r for r in results["runs"] if r["rate"] == 1000]
    if args.write_baseline:
        if not at:
            sys.exit("counts: --write-baseline needs a run at 1000 req/s")
        baseline = {"rate": 1000, "target": kind, "margin": 0.25, "rt": rt}
        if args.headroom is not None:
            baseline["headroom"] = args.headroom
        baseline.update({k: round(v, 3) for k, v in guarded_figures(at).items()})
        baseline["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        headroom = "" if args.headroom is None else f"--headroom {args.headroom:g} "
        baseline["how"] = (f"python3 bench/counts.py --bin BIN --rates 1000 {headroom}--secs {args.secs:g} "
                           f"--repeats {args.repeats} --write-baseline FILE")
        with open(args.write_baseline, "w") as f:
            json.dump(baseline, f, indent=1)
            f.write("\n")
        print(f"baseline written to {args.write_baseline}: {baseline}")
    if args.check:
        baseline = check_baseline
        if not at:
            sys.exit("counts: --check needs a run at 1000 req/s")
        if baseline.get("target") != kind:
            print(f"note: the baseline was measured against {baseline.get('target')}, this run against {kind}")
        failed = check(guarded_figures(at), baseline, args.check)
        if failed:
            print(f"counts guard FAILED: {', '.join(failed)} at 1000 req/s rose more than "
                  f"{float(baseline.get('margin', 0.2)):.0%} above {args.check}", file=sys.stderr)
            sys.exit(1)
        print("counts guard passed")


if __name__ == "__main__":
    main()
