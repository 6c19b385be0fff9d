#!/usr/bin/env python3
"""Proves `trafficgen export` with the real tools PyPI has.

- Locust (from PyPI) runs the exported Locust file headless for a few
  seconds against the demo target on 127.0.0.1, for users-crud.yaml and the
  built-in workload: every request name reaches the demo target, reads and
  updates by captured id are answered 200 (never 404), and the SLO check at
  quitting gives exit 0 for an easy objective and 1 for an impossible one.
  Under strace, every connection Locust opens goes to loopback.
- Locust runs the export of journey-users.yaml (a journey per arrival: log
  in with a row of accounts.csv, create, follow Location, change, delete)
  against the demo target: journeys complete, and the journey's own reads,
  changes and deletes get no 404 and no 401.
- Users mode: a users-mode Locust file (6 users over stages, a 200 ms pause)
  runs against the demo target and sends about what the closed model says;
  the users-mode k6, Locust and Artillery scripts parse, with their stages,
  wait_time, phases and loops.
- Locust's arrivals are spread evenly, as trafficgen's: a server in this
  script times every request of a 50/s export and the gaps between them are
  measured (share under 1 ms, coefficient of variation, busiest 100 ms).
- The k6 scripts' own code runs under Node (ci/k6_stand_in.mjs: a stand-in
  for k6's modules, not k6) against the demo target: journey-users.yaml's
  journeys all complete, captured ids and tokens are read back (no 401, no
  404).
- The k6 scripts are parsed with esprima (a JavaScript parser) and the
  Artillery files with PyYAML; their stages, thresholds, captures and
  requests are compared with what the arguments ask for; a k6 script imports
  only k6's own modules (it runs offline), and the journeys of
  tests/fixtures/export/journeys.yaml are each tool's own flow.
- Every script of a hostile workload parses, and its nastiest header value
  is found unharmed inside a string literal.

k6 and Artillery themselves are not run: neither is on PyPI, Debian or
crates.io, and no other registry is reachable here.

Usage: export_checks.py BINARY   (from the repository root)
"""

import ast
import http.server
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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


# --- users mode (the closed model) ---------------------------------------------

USER_STAGES = ["--user-stages", "3s:4,3s:4,2s:0", "--pause", "200ms..400ms"]


def check_users_mode_scripts():
    """Users-mode scripts of --user-stages: k6's ramping-vus, Locust's stages and Artillery's
    nearest (users added by phases, each scenario one loop ending with the users' pause)."""
    _, k6 = export("users", "k6", USER_STAGES)
    options, _, _, _ = k6_facts(k6)
    traffic = options["scenarios"]["traffic"]
    stages = [(s["duration"], s["target"]) for s in traffic.get("stages", [])]
    check(traffic["executor"] == "ramping-vus" and stages == [("3s", 4), ("3s", 4), ("2s", 0)],
          f"users k6: {traffic}")
    _, py = export("users", "locust", USER_STAGES)
    tree = ast.parse(py)
    compile(tree, "users", "exec")
    consts = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
              if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in ("STAGES", "DURATION")}
    check(consts == {"STAGES": [(3, 0, 4), (3, 4, 4), (2, 4, 0)], "DURATION": 8}, f"users locust: {consts}")
    check("wait_time = between(0.2, 0.4)" in py, "users locust: no wait_time of the pause")
    _, yml = export("users", "artillery", USER_STAGES)
    doc = yaml.safe_load(yml)
    phases = doc["config"]["phases"]
    check(phases == [{"duration": 3, "arrivalCount": 4, "maxVusers": 4}, {"pause": 5}], f"users artillery: {phases}")
    for scenario in doc["scenarios"]:
        flow = scenario["flow"]
        ok = len(flow) == 1 and flow[0]["count"] >= 1 and flow[0]["loop"][-1].get("think") == "300ms"
        check(ok, f"users artillery: {scenario['name']} is not one loop ending with the users' pause: {flow}")
    check("no closed model" in yml, "users artillery: the header does not say Artillery has no closed model")
    print("users mode: k6 (esprima), Artillery (YAML) and Locust (ast) scripts parsed and checked")


def run_locust_users(target):
    """A users-mode Locust file against the demo target: 6 users (reached over 2 s, held 4 s) with a
    fixed 200 ms pause send about their user-seconds over their cycle: (6 + 24) / 0.2 = 150
    (and up to a second more, see below)."""
    path, _ = export("run-users", "locust", ["--user-stages", "2s:6,4s:6", "--pause", "200ms"])
    before = target_counts(target)
    locust = shutil.which("locust") or os.path.join(os.path.dirname(sys.executable), "locust")
    run = subprocess.run([locust, "-f", path, "--headless", "--host", target, "--only-summary"],
                         capture_output=True, text=True, timeout=60)
    output = run.stdout + run.stderr
    check(run.returncode == 0, f"users locust: exit {run.returncode}\n{output[-3000:]}")
    after = target_counts(target)
    sent = sum(after.get(key, 0) - before.get(key, 0) for key in after)
    # Below: the answers' own time; above: Locust asks the shape once a second, so the run ends at
    # the first tick past the stages (up to a second more of 6 users: 30 requests).
    check(0.6 * 150 <= sent <= 180, f"users locust: the demo target counted {sent}, expected 150 to 180")
    arrivals = re.search(r"^Arrivals: arrivals (\d+)", output, re.M)
    check(arrivals is not None, f"users locust: no arrivals line\n{output[-2000:]}")
    print(f"users mode: locust exit {run.returncode}; demo target counted {sent} (model: 150); "
          f"{arrivals.group(0) if arrivals else ''}")


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
    imports = [stmt.source.value for stmt in module.body if stmt.type == "ImportDeclaration"]
    check(all(re.fullmatch(r"k6(/[a-z]+)?", source) for source in imports),
          f"k6: imports other than k6's own modules (the script must run offline): {imports}")

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


METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


def request_of(step):
    """A flow step's request, or None for a think."""
    return next((step[m] for m in METHODS if m in step), None)


def check_artillery(case, source):
    name = case["name"]
    doc = yaml.safe_load(source)
    phases = [(p["duration"], p["arrivalRate"], p.get("rampTo")) for p in doc["config"]["phases"]]
    check(phases == case["phases"], f"{name} artillery: phases {phases}")
    check(all(p["maxVusers"] == 512 for p in doc["config"]["phases"]), f"{name} artillery: maxVusers")
    conditions = doc["config"].get("ensure", {}).get("conditions", [])
    check(len(conditions) == case["conditions"], f"{name} artillery: {len(conditions)} ensure conditions")
    steps = [request_of(step) for s in doc["scenarios"] for step in s["flow"]] + \
        [request_of(step) for step in doc.get("before", {}).get("flow", [])]
    steps = [step for step in steps if step is not None]
    sent = {step["name"] for step in steps}
    captured = {c["as"].removeprefix("pool_") for step in steps for c in step.get("capture", [])}
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
    headers = [v for s in doc["scenarios"] for step in s["flow"] if request_of(step)
               for v in request_of(step).get("headers", {}).values()]
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


# --- journeys --------------------------------------------------------------------

JOURNEY_ARGS = ["--workload", "tests/fixtures/export/journeys.yaml", "--scenario", "error_injection", "--max-rps", "10"]
MEMBER_STEPS = ["member/login", "member/create", "member/read", "member/remove"]


def check_journeys():
    """The journeys fixture as each tool's own flow: steps in order with their pauses."""
    _, k6 = export("journeys", "k6", JOURNEY_ARGS)
    module = esprima.parseModule(k6)
    functions = {stmt.id.name: stmt for stmt in module.body if stmt.type == "FunctionDeclaration"}
    journey = functions.get("journey_member")
    check(journey is not None, "journeys k6: no function journey_member")
    if journey is not None:
        order = []

        def visit(node):
            if node.type == "CallExpression" and node.callee.type == "Identifier":
                if node.callee.name == "sleep":
                    order.append("sleep")
                elif node.callee.name.startswith("step_member__"):
                    order.append(node.callee.name)

        walk(journey.body, visit)
        expected = ["step_member__login", "sleep", "step_member__create", "sleep", "step_member__read", "sleep",
                    "step_member__remove"]
        check(order == expected, f"journeys k6: steps and pauses in order: {order}")
    _, _, _, tags = k6_facts(k6)
    check(set(MEMBER_STEPS) <= set(tags), f"journeys k6: step names {tags}")
    check("SharedArray" in k6 and 'open(path)' in k6 and "TRAFFICGEN_ENV_PASSWORD" in k6,
          "journeys k6: data files through SharedArray/open(), env() by name")

    _, py = export("journeys", "locust", JOURNEY_ARGS)
    tree = ast.parse(py)
    compile(tree, "journeys", "exec")
    user = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Traffic")
    method = next((n for n in user.body if isinstance(n, ast.FunctionDef) and n.name == "journey_member"), None)
    check(method is not None, "journeys locust: no method journey_member")
    if method is not None:
        order = []
        for node in ast.walk(method):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "sleep":
                    order.append((node.lineno, "sleep"))
                elif node.func.attr.startswith("step_member__"):
                    order.append((node.lineno, node.func.attr))
        order = [name for _, name in sorted(order)]
        expected = ["step_member__login", "sleep", "step_member__create", "sleep", "step_member__read", "sleep",
                    "step_member__remove"]
        check(order == expected, f"journeys locust: steps and pauses in order: {order}")

    _, yml = export("journeys", "artillery", JOURNEY_ARGS)
    doc = yaml.safe_load(yml)
    member = next((s for s in doc["scenarios"] if s["name"] == "member"), None)
    check(member is not None, "journeys artillery: no scenario member")
    if member is not None:
        flow = [request_of(step)["name"] if request_of(step) else "think" for step in member["flow"]]
        expected = ["member/login", "think", "member/create", "think", "member/read", "think", "member/remove"]
        check(flow == expected, f"journeys artillery: flow {flow}")
        check(member["flow"][3].get("jitter") == 500, f"journeys artillery: uniform pause {member['flow'][3]}")
        check("auth" in request_of(member["flow"][0]), "journeys artillery: Basic auth as `auth`")
    paths = [p["path"] for p in doc["config"].get("payload", [])]
    check(paths == ["members.csv", "items.csv"], f"journeys artillery: payload {paths}")
    print("journeys: k6 (esprima), Locust (ast) and Artillery (YAML) write the journey's steps and pauses in order")


def run_locust_journeys(target):
    """journey-users.yaml's Locust export against the demo target: journeys complete, and the
    journey's own reads, changes and deletes get neither 404 nor 401."""
    path, _ = export("run-journeys", "locust",
                     ["--workload", "examples/workloads/journey-users.yaml", "--rps", "10", "--duration", "14s"])
    before = target_counts(target)
    locust = shutil.which("locust") or os.path.join(os.path.dirname(sys.executable), "locust")
    env = dict(os.environ, DATA_DIR=os.path.abspath("examples/workloads"))
    run = subprocess.run([locust, "-f", path, "--headless", "--host", target, "--only-summary"],
                         capture_output=True, text=True, timeout=120, env=env)
    output = run.stdout + run.stderr
    check(run.returncode == 0, f"journeys locust: exit {run.returncode}\n{output[-3000:]}")
    after = target_counts(target)
    sent = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    completed = re.search(r"^Journey user_lifecycle: completed (\d+)$", output, re.M)
    completed = int(completed.group(1)) if completed else 0
    check(completed > 0, f"journeys locust: no journey completed\n{output[-3000:]}")
    for route in ("login", "get_user", "update_user", "delete_user"):
        for code in (401, 404):
            check(sent.get((route, code), 0) == 0, f"journeys locust: {route} answered {code}: {sent}")
    check(sent.get(("delete_user", 204), 0) == completed,
          f"journeys locust: {completed} journeys completed, {sent.get(('delete_user', 204), 0)} deletes answered 204")
    arrivals = re.search(r"^Arrivals: .*$", output, re.M)
    shown = {f"{k[0]} {k[1]}": v for k, v in sent.items() if v}
    print(f"journeys: locust {completed} journeys completed; {arrivals.group(0) if arrivals else ''}; "
          f"demo target counted {shown}")


# --- Locust's arrivals are spread as trafficgen spreads them ----------------------

GAP_RPS = 50
GAP_SECS = 12


class TimingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every request 200 and notes when it arrived."""

    protocol_version = "HTTP/1.1"
    arrivals = []

    def answer(self):
        TimingHandler.arrivals.append(time.perf_counter())
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b'{"id": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, *_args):
        pass


def gap_stats(times):
    """Gaps between requests (the first and last second left out): their mean, coefficient of
    variation, share under 1 ms, and the most requests in any 100 ms."""
    times = sorted(times)
    times = [t for t in times if times[0] + 1 <= t <= times[-1] - 1]
    gaps = [b - a for a, b in zip(times, times[1:])]
    mean = statistics.mean(gaps)
    busiest, first = 0, 0
    for i, t in enumerate(times):
        while times[first] < t - 0.1:
            first += 1
        busiest = max(busiest, i - first + 1)
    return {
        "requests": len(times),
        "mean_gap_ms": round(mean * 1000, 2),
        "cv": round(statistics.pstdev(gaps) / mean, 3),
        "under_1ms": round(sum(g < 0.001 for g in gaps) / len(gaps), 3),
        "busiest_100ms": busiest,
        "mean_per_100ms": round(0.1 / mean, 2),
    }


def check_locust_gaps():
    """At 50/s trafficgen's gaps are 20 ms with a variation of 0.06. Locust files used to send in
    bursts (78 % of gaps under 1 ms, 38 requests in the busiest 100 ms against a mean of 5)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TimingHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path, _ = export("gaps", "locust", ["--rps", str(GAP_RPS), "--duration", f"{GAP_SECS}s"])
        locust = shutil.which("locust") or os.path.join(os.path.dirname(sys.executable), "locust")
        run = subprocess.run([locust, "-f", path, "--headless", "--host", f"http://127.0.0.1:{server.server_address[1]}",
                              "--only-summary"], capture_output=True, text=True, timeout=GAP_SECS + 60)
        check(run.returncode == 0, f"gaps locust: exit {run.returncode}\n{(run.stdout + run.stderr)[-2000:]}")
    finally:
        server.shutdown()
    stats = gap_stats(TimingHandler.arrivals)
    expected = GAP_RPS * (GAP_SECS - 2)
    # Bounds a busy 2-core machine keeps: a stall of the process can bunch a few arrivals.
    check(abs(stats["requests"] - expected) <= 0.1 * expected, f"gaps locust: {stats['requests']} requests, expected {expected}")
    check(stats["under_1ms"] <= 0.1, f"gaps locust: {stats['under_1ms']:.0%} of gaps under 1 ms: {stats}")
    check(stats["cv"] <= 0.5, f"gaps locust: gaps vary by {stats['cv']}: {stats}")
    check(stats["busiest_100ms"] <= 3 * stats["mean_per_100ms"], f"gaps locust: bursts: {stats}")
    print(f"gaps: Locust at {GAP_RPS}/s, at the target: {stats}")


# --- the k6 scripts' own code, run under Node ------------------------------------

def run_k6_stand_in(target):
    """k6 is in no registry here; Node is on the machine. ci/k6_stand_in.mjs runs an exported k6
    script's own code (its functions, CSV reader, captures, journeys) with a stand-in for k6's
    modules, one iteration after another, against the demo target."""
    node = shutil.which("node")
    if node is None:
        check(os.environ.get("CI") != "true", "k6 stand-in: node is missing")
        print("k6 stand-in: skipped (no node)")
        return
    cases = [
        ("journey-users", ["--workload", "examples/workloads/journey-users.yaml"], 12,
         [("user_lifecycle/login", 200), ("user_lifecycle/create", 201), ("user_lifecycle/read", 200),
          ("user_lifecycle/update", 200), ("user_lifecycle/delete", 204)]),
        ("users-crud", ["--workload", "examples/workloads/users-crud.yaml"], 60,
         [("create_user", 201), ("get_user", 200), ("update_user", 200)]),
        ("login-then-api", ["--workload", "examples/workloads/login-then-api.yaml"], 30,
         [("login", 200), ("get_account", 200)]),
    ]
    for name, args, iterations, expected in cases:
        path, _ = export(f"stand-in-{name}", "k6", args)
        env = dict(os.environ, TARGET_URL=target, DATA_DIR=os.path.abspath("examples/workloads"), SLEEP_SCALE="0.01")
        run = subprocess.run([node, "ci/k6_stand_in.mjs", path, str(iterations)], capture_output=True, text=True,
                             timeout=120, env=env)
        check(run.returncode == 0, f"k6 stand-in {name}: exit {run.returncode}\n{run.stderr[-2000:]}")
        if run.returncode != 0:
            continue
        result = json.loads(run.stdout.strip().splitlines()[-1])
        sent = result["requests"]
        for request, status in expected:
            check(sent.get(f"{request} {status}", 0) > 0, f"k6 stand-in {name}: no {request} answered {status}: {sent}")
        bad = {k: v for k, v in sent.items() if k.endswith((" 401", " 404", " 0"))}
        check(not bad, f"k6 stand-in {name}: {bad}")
        if name == "journey-users":
            completed = result["counters"].get("journeys_completed user_lifecycle", 0)
            check(completed == iterations, f"k6 stand-in {name}: {completed} of {iterations} journeys completed")
        print(f"k6 stand-in {name}: {iterations} iterations under Node, {sent} {result['counters'] or ''}")


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
    check_users_mode_scripts()
    check_journeys()
    check_locust_gaps()

    demo, target = start_demo_target()
    try:
        run_locust("users-crud", ["--workload", "examples/workloads/users-crud.yaml", "--slo", "error_rate<5%,p99<5s"],
                   target, 0, [("create_user", 201), ("list_users", 200), ("get_user", 200), ("update_user", 200)])
        run_locust("builtin", ["--slo", "p50<0.001ms"],
                   target, 1, [("create_order", 201), ("list_orders", 200), ("get_order", 200)])
        run_locust_journeys(target)
        run_locust_users(target)
        run_k6_stand_in(target)
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
