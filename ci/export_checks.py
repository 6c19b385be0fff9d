#!/usr/bin/env python3
"""Proves `trafficgen export` with the real tools PyPI has.

- Locust (from PyPI) runs the exported Locust file headless for a few
  seconds against the demo target on 127.0.0.1, for users-crud.yaml and the
  built-in workload: every request name reaches the demo target, reads and
  updates by captured id are answered 200 (never 404), and the SLO check at
  quitting gives exit 0 for an easy objective and 1 for an impossible one.
  Under strace, every connection Locust opens goes to loopback.
- The k6 scripts are parsed with esprima (a JavaScript parser) and the
  Artillery files with PyYAML; their stages, thresholds, captures and
  requests are compared with what the arguments ask for.
- Every script of a hostile workload parses, and its nastiest header value
  is found unharmed inside a string literal.

k6 and Artillery themselves are not run: neither is on PyPI, Debian or
crates.io, and no other registry is reachable here.

Usage: export_checks.py BINARY   (from the repository root)
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import esprima
import yaml

BIN = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="trafficgen-export-checks-")
HOSTILE_HEADER = "\"double\" 'single' `back` \\ */ # -- ${injected} {{ not a template"
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message)


def export(name, fmt, args):
    suffix = {"k6": ".k6.js", "locust": ".locustfile.py", "artillery": ".artillery.yml"}[fmt]
    path = os.path.join(TMP, name + suffix)
    run = subprocess.run(
        [BIN, "export", "--format", fmt, "-o", path, *args],
        capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]},
    )
    if run.returncode != 0:
        raise SystemExit(f"export {name} {fmt} failed: {run.stderr}")
    with open(path, encoding="utf-8") as f:
        return path, f.read()


# --- k6: the parsed module's options, calls and string literals -----------

def js_value(node, consts):
    """A literal JavaScript expression as a Python value (what options holds)."""
    kind = node.type
    if kind == "Literal":
        return node.value
    if kind == "ArrayExpression":
        return [js_value(e, consts) for e in node.elements]
    if kind == "ObjectExpression":
        out = {}
        for prop in node.properties:
            key = prop.key.value if prop.key.type == "Literal" else prop.key.name
            out[key] = js_value(prop.value, consts)
        return out
    if kind == "Identifier":
        return consts.get(node.name)
    if kind == "UnaryExpression" and node.operator == "-":
        return -js_value(node.argument, consts)
    return None


def walk(node, visit):
    if isinstance(node, list):
        for item in node:
            walk(item, visit)
        return
    if not hasattr(node, "type"):
        return
    visit(node)
    for key, value in vars(node).items():
        if key != "type" and (isinstance(value, list) or hasattr(value, "type")):
            walk(value, visit)


def k6_facts(source):
    module = esprima.parseModule(source)
    consts, options = {}, None
    for stmt in module.body:
        decl = stmt.declaration if stmt.type == "ExportNamedDeclaration" else stmt
        if decl is not None and decl.type == "VariableDeclaration":
            for d in decl.declarations:
                if d.id.name == "options":
                    options = js_value(d.init, consts)
                elif d.init is not None and d.init.type == "Literal":
                    consts[d.id.name] = d.init.value
    calls, strings, tags = [], [], []

    def visit(node):
        if node.type == "CallExpression":
            callee = node.callee
            name = callee.name if callee.type == "Identifier" else (
                f"{callee.object.name}.{callee.property.name}" if callee.type == "MemberExpression"
                and callee.object.type == "Identifier" else "")
            args = [a.value if a.type == "Literal" else None for a in node.arguments]
            calls.append((name, args))
        elif node.type == "Literal" and isinstance(node.value, str):
            strings.append(node.value)
        elif node.type == "Property" and getattr(node.key, "name", None) == "tags":
            for p in node.value.properties:
                tags.append(p.value.value)

    walk(module.body, visit)
    return options, calls, strings, tags


# --- the cases: arguments and what the scripts must then say -----------------

CASES = [
    {
        "name": "users-crud",
        "args": ["--workload", "examples/workloads/users-crud.yaml", "--scenario", "peak", "--duration", "2m",
                 "--max-rps", "50", "--slo", "p95<300ms,error_rate<1%,rps>=95%,create_user:p95<200ms"],
        "names": ["create_user", "list_users", "get_user", "update_user", "user_error"],
        "k6_executor": "ramping-arrival-rate",
        "k6_stages": [("30s", 50), ("60s", 50), ("30s", 0)],
        "k6_thresholds": {"http_req_duration", "http_req_failed", "http_reqs", "http_req_duration{name:create_user}"},
        "captures": {"user_ids"},
        # 100 arrivals send 160 requests: gets and updates first create a user.
        "phases": [(30, 0, 31.25), (60, 31.25, None), (30, 31.25, 0)],
        "conditions": 4,
    },
    {
        "name": "orders",
        "args": ["--workload", "examples/workloads/orders.yaml", "--scenario", "stress", "--max-rps", "20",
                 "--ramp-up", "10s", "--duration", "60s"],
        "names": ["create_order", "list_orders", "get_order", "order_error"],
        "k6_executor": "ramping-arrival-rate",
        "k6_stages": [("10s", 20), ("50s", 20)],
        "k6_thresholds": set(),
        "captures": {"order_ids"},
        # 100 arrivals send 115 requests (15 gets each create an order first).
        "phases": [(10, 0, 17.391304), (50, 17.391304, None)],
        "conditions": 0,
    },
    {
        "name": "login-then-api",
        "args": ["--workload", "examples/workloads/login-then-api.yaml", "--rps", "5",
                 "--slo", "get_account:p99<500ms"],
        "names": ["get_account", "list_orders", "login"],
        "k6_executor": "constant-arrival-rate",
        "k6_rate": 5,
        "k6_thresholds": {"http_req_duration{name:get_account}"},
        "captures": {"token"},
        "phases": [(60, 5, None)],
        "conditions": 1,
        "setup": True,
    },
    {
        "name": "builtin",
        "args": ["--scenario", "error_injection", "--max-rps", "10"],
        "names": ["create_order", "list_orders", "get_order", "order_error"],
        "k6_executor": "constant-arrival-rate",
        "k6_rate": 10,
        "k6_thresholds": set(),
        "captures": {"order_ids"},
        # Error injection: 30% to order_error; 200 arrivals send 221 requests.
        "phases": [(60, 9.049774, None)],
        "conditions": 0,
    },
]


def check_k6(case, source):
    name = case["name"]
    options, calls, _, tags = k6_facts(source)
    traffic = options["scenarios"]["traffic"]
    check(traffic["executor"] == case["k6_executor"], f"{name} k6: executor {traffic['executor']}")
    if "k6_stages" in case:
        stages = [(s["duration"], s["target"]) for s in traffic["stages"]]
        check(stages == case["k6_stages"], f"{name} k6: stages {stages}")
    else:
        check(traffic["rate"] == case["k6_rate"] and traffic["timeUnit"] == "1s", f"{name} k6: rate {traffic}")
    check(traffic["maxVUs"] == 512, f"{name} k6: maxVUs {traffic['maxVUs']}")
    thresholds = set(options.get("thresholds", {}))
    check(thresholds == case["k6_thresholds"], f"{name} k6: thresholds {thresholds}")
    captured = {args[0] for fn, args in calls if fn == "capture"}
    check(captured == case["captures"], f"{name} k6: captures into {captured}")
    check(set(tags) == set(case["names"]), f"{name} k6: request names {tags}")
    requests = [fn for fn, _ in calls if fn == "http.request"]
    check(len(requests) == len(case["names"]), f"{name} k6: {len(requests)} http.request calls")
    exported = "setup" in re.findall(r"export function (\w+)", source)
    check(exported == case.get("setup", False), f"{name} k6: setup() {exported}")


def check_artillery(case, source):
    name = case["name"]
    doc = yaml.safe_load(source)
    phases = [(p["duration"], p["arrivalRate"], p.get("rampTo")) for p in doc["config"]["phases"]]
    check(phases == case["phases"], f"{name} artillery: phases {phases}")
    check(all(p["maxVusers"] == 512 for p in doc["config"]["phases"]), f"{name} artillery: maxVusers")
    conditions = doc["config"].get("ensure", {}).get("conditions", [])
    check(len(conditions) == case["conditions"], f"{name} artillery: {len(conditions)} ensure conditions")
    steps = [step for s in doc["scenarios"] for step in s["flow"]] + doc.get("before", {}).get("flow", [])
    sent = {next(iter(step.values()))["name"] for step in steps}
    captured = {c["as"].removeprefix("pool_") for step in steps for c in next(iter(step.values())).get("capture", [])}
    check(captured == case["captures"], f"{name} artillery: captures into {captured}")
    expected = set(case["names"])
    if "error_injection" not in case["args"]:
        expected -= {"user_error", "order_error"}
    check(sent == expected, f"{name} artillery: requests {sent}")
    check(("before" in doc) == case.get("setup", False), f"{name} artillery: before")


def check_locust_parses(case, source):
    tree = ast.parse(source)
    compile(tree, case["name"], "exec")
    stages = next(ast.literal_eval(n.value) for n in tree.body
                  if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "STAGES")
    check(len(stages) == len(case["phases"]), f"{case['name']} locust: stages {stages}")
    names = {n.value for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "name"
             for n in [n.value] if isinstance(n, ast.Constant)}
    check(names == set(case["names"]), f"{case['name']} locust: request names {names}")


def check_hostile():
    args = ["--workload", "tests/fixtures/export/hostile.yaml", "--scenario", "error_injection", "--max-rps", "5",
            "--slo", "p95<300ms,create:error_rate<1%,read:rps>=50%"]
    _, k6 = export("hostile", "k6", args)
    _, _, strings, _ = k6_facts(k6)
    check(HOSTILE_HEADER in strings, "hostile k6: the header value is not intact")
    _, py = export("hostile", "locust", args)
    tree = ast.parse(py)
    constants = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    check(HOSTILE_HEADER in constants, "hostile locust: the header value is not intact")
    _, yml = export("hostile", "artillery", args)
    doc = yaml.safe_load(yml)
    headers = [v for s in doc["scenarios"] for step in s["flow"]
               for v in next(iter(step.values())).get("headers", {}).values()]
    check(HOSTILE_HEADER in headers, "hostile artillery: the header value is not intact")
    print("hostile: all three parse, the header value is intact in each")


# --- Locust against the demo target -------------------------------------------

def start_demo_target():
    log = open(os.path.join(TMP, "demo-target.log"), "w+")
    proc = subprocess.Popen([BIN, "demo-target", "--bind", "127.0.0.1", "--port", "0"],
                            stdout=log, stderr=subprocess.STDOUT, env={"PATH": os.environ["PATH"]})
    deadline = time.time() + 15
    while time.time() < deadline:
        log.seek(0)
        for line in log:
            try:
                port = json.loads(line).get("port")
            except ValueError:
                continue
            if port:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the demo target did not start")


def target_counts(url):
    with urllib.request.urlopen(url + "/metrics", timeout=5) as res:
        text = res.read().decode()
    counts = {}
    for m in re.finditer(r'^demo_target_requests_total\{code="(\d+)",route="(\w+)"\} (\d+)', text, re.M):
        counts[(m.group(2), int(m.group(1)))] = int(m.group(3))
    return counts


def loopback_only(trace):
    """Every connect() in an strace log goes to 127.0.0.0/8 or ::1 (or a local socket)."""
    bad, seen = [], 0
    for line in open(trace, encoding="utf-8", errors="replace"):
        if "connect(" not in line or "AF_UNIX" in line:
            continue
        seen += 1
        ip4 = re.search(r'inet_addr\("([\d.]+)"\)', line)
        ip6 = re.search(r'inet_pton\(AF_INET6, "([^"]+)"', line)
        if ip4 and not ip4.group(1).startswith("127."):
            bad.append(line.strip())
        if ip6 and ip6.group(1) not in ("::1", "::ffff:127.0.0.1"):
            bad.append(line.strip())
    return seen, bad


def run_locust(name, args, target, expect_exit, routes):
    """Exports, runs Locust for a few seconds, compares the demo target's counts."""
    path, _ = export(f"run-{name}", "locust", [*args, "--rps", "20", "--duration", "6s"])
    before = target_counts(target)
    locust = shutil.which("locust") or os.path.join(os.path.dirname(sys.executable), "locust")
    command = [locust, "-f", path, "--headless", "--host", target, "--only-summary"]
    trace = os.path.join(TMP, f"{name}.strace")
    if shutil.which("strace"):
        command = ["strace", "-f", "-qq", "-e", "trace=connect", "-o", trace, *command]
    run = subprocess.run(command, capture_output=True, text=True, timeout=90)
    output = run.stdout + run.stderr
    check(run.returncode == expect_exit, f"{name} locust: exit {run.returncode}, expected {expect_exit}\n{output[-3000:]}")
    traced = "not traced (no strace)"
    if os.path.exists(trace):
        seen, bad = loopback_only(trace)
        check(seen > 0 and not bad, f"{name} locust: {seen} connections, off loopback: {bad[:3]}")
        traced = f"{seen} connect() calls, all to loopback"
    after = target_counts(target)
    sent = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    for route, code in routes:
        check(sent.get((route, code), 0) > 0, f"{name} locust: no {route} answered {code} at the demo target: {sent}")
    for route, _ in routes:
        check(sent.get((route, 404), 0) == 0, f"{name} locust: {route} answered 404 (an id not captured): {sent}")
    slo_lines = [line for line in output.splitlines() if line.startswith("SLO ")]
    shown = {k[0]: v for k, v in sent.items() if v}
    print(f"{name}: locust exit {run.returncode}; {' | '.join(slo_lines)}; {traced}; demo target counted {shown}")


def main():
    for case in CASES:
        _, k6 = export(case["name"], "k6", case["args"])
        check_k6(case, k6)
        _, yml = export(case["name"], "artillery", case["args"])
        check_artillery(case, yml)
        _, py = export(case["name"], "locust", case["args"])
        check_locust_parses(case, py)
        print(f"{case['name']}: k6 (esprima), Artillery (YAML) and Locust (ast) scripts parsed and checked")
    check_hostile()

    demo, target = start_demo_target()
    try:
        run_locust("users-crud", ["--workload", "examples/workloads/users-crud.yaml", "--slo", "error_rate<5%,p99<5s"],
                   target, 0, [("create_user", 201), ("list_users", 200), ("get_user", 200), ("update_user", 200)])
        run_locust("builtin", ["--slo", "p50<0.001ms"],
                   target, 1, [("create_order", 201), ("list_orders", 200), ("get_order", 200)])
    finally:
        demo.kill()
        demo.wait()
    shutil.rmtree(TMP, ignore_errors=True)
    if failures:
        print(f"{len(failures)} export check(s) failed")
        sys.exit(1)
    print("export checks: all passed")


if __name__ == "__main__":
    main()
