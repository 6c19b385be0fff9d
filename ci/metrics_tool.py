#!/usr/bin/env python3
"""Metric-name and exposition checks for the packaging CI (stdlib only).

Subcommands
  exported [SCRAPE ...]         print the metric and label names the binary
                                exports: from live /metrics scrapes when given,
                                else from the contract's metrics table
  lint-scrape SCRAPE            what promtool does not check: histogram buckets
                                non-decreasing, le="+Inf" == _count, label
                                values from their fixed sets, one active mode
  require-contract SCRAPE ...   every contract metric appears in the scrapes
  dashboard-lint DASHBOARD      structure of the Grafana dashboard JSON
  exprs DASHBOARD RULES ...     print every PromQL expression, one JSON string
                                per line, with Grafana variables substituted
  check-names EXPORTED DASHBOARD RULES ...
                                every metric (and label) named in the
                                dashboard and alert expressions is exported
  rules-from-exprs DASHBOARD OUT
                                write the dashboard expressions as recording
                                rules, so `promtool check rules OUT` parses them
"""

import json
import re
import sys

# The contract's metrics table (CONTRACT.md "Metrics"), used when no binary
# is at hand. Histograms expand to _bucket/_sum/_count.
CONTRACT = {
    "trafficgen_requests_total": ("counter", {"endpoint", "code"}),
    "trafficgen_request_errors_total": ("counter", {"endpoint", "kind"}),
    "trafficgen_request_duration_seconds": ("histogram", {"endpoint"}),
    "trafficgen_target_rps": ("gauge", set()),
    "trafficgen_mode": ("gauge", {"mode"}),
    "trafficgen_in_flight_requests": ("gauge", set()),
    "trafficgen_dropped_requests_total": ("counter", set()),
    "trafficgen_order_ids_buffered": ("gauge", set()),
    "trafficgen_mode_switches_total": ("counter", set()),
    "trafficgen_build_info": ("gauge", {"version"}),
    "trafficgen_schedule_lag_seconds": ("histogram", set()),
    "demo_target_requests_total": ("counter", {"route", "code"}),
    # the standard process collector (Linux)
    "process_cpu_seconds_total": ("counter", set()),
    "process_open_fds": ("gauge", set()),
    "process_max_fds": ("gauge", set()),
    "process_virtual_memory_bytes": ("gauge", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
    "process_threads": ("gauge", set()),
}
# Added by Prometheus to every scrape target, and labels every series gets.
SYNTHETIC_METRICS = {"up"}
TARGET_LABELS = {"job", "instance", "__name__"}

LABEL_VALUES = {
    "endpoint": re.compile(r"^(create_order|list_orders|get_order)$"),
    "route": re.compile(
        r"^(create_order|list_orders|get_order|error|create_user|list_users|get_user|update_user|login|account)$"
    ),
    "kind": re.compile(r"^(timeout|connect|dns|tls|reused|other)$"),
    "reason": re.compile(r"^(closed|reset|broken_pipe)$"),
    "mode": re.compile(r"^(steady|burst|overload|pause|custom|users)$"),
    "code": re.compile(r"^([1-5][0-9][0-9]|error)$"),
}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_scrape(path):
    types, samples = {}, []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split()
                if len(parts) >= 4 and parts[1] == "TYPE":
                    types[parts[2]] = parts[3]
                continue
            m = SAMPLE.match(line)
            if not m:
                raise SystemExit(f"{path}: unparsable line: {line!r}")
            labels = dict(LABEL.findall(m.group(2) or ""))
            samples.append((m.group(1), labels, float(m.group(3))))
    return types, samples


def exported_from_scrapes(paths):
    metrics, labels = set(SYNTHETIC_METRICS), set(TARGET_LABELS)
    for path in paths:
        types, samples = parse_scrape(path)
        for name, kind in types.items():
            metrics.add(name)
            if kind == "histogram":
                metrics.update({name + "_bucket", name + "_sum", name + "_count"})
            elif kind == "summary":
                metrics.update({name + "_sum", name + "_count"})
                labels.add("quantile")
        for name, lbls, _ in samples:
            metrics.add(name)
            labels.update(lbls)
    return metrics, labels


def exported_from_contract():
    metrics, labels = set(SYNTHETIC_METRICS), set(TARGET_LABELS)
    for name, (kind, lbls) in CONTRACT.items():
        labels.update(lbls)
        if kind == "histogram":
            metrics.update({name + "_bucket", name + "_sum", name + "_count"})
            labels.add("le")
        else:
            metrics.add(name)
    return metrics, labels


def lint_scrape(path):
    types, samples = parse_scrape(path)
    errors = []
    for name, labels, value in samples:
        for key, value_re in LABEL_VALUES.items():
            if key in labels and not value_re.match(labels[key]):
                errors.append(f"{name}: label {key}={labels[key]!r} is not in its fixed set")
    for family, kind in types.items():
        if kind != "histogram":
            continue
        groups = {}
        counts = {}
        for name, labels, value in samples:
            key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            if name == family + "_bucket":
                groups.setdefault(key, []).append((float(labels["le"]), value))
            elif name == family + "_count":
                counts[key] = value
        for key, buckets in groups.items():
            buckets.sort()
            values = [v for _, v in buckets]
            if any(b < a for a, b in zip(values, values[1:])):
                errors.append(f"{family}{dict(key)}: bucket counts decrease: {values}")
            if buckets[-1][0] != float("inf"):
                errors.append(f"{family}{dict(key)}: no le=\"+Inf\" bucket")
            elif key in counts and buckets[-1][1] != counts[key]:
                errors.append(f"{family}{dict(key)}: +Inf bucket {buckets[-1][1]} != _count {counts[key]}")
    modes = [(labels.get("mode"), value) for name, labels, value in samples if name == "trafficgen_mode"]
    if modes and sum(1 for _, v in modes if v == 1) != 1:
        errors.append(f"trafficgen_mode: exactly one mode must be 1, got {modes}")
    if modes and any(v not in (0, 1) for _, v in modes):
        errors.append(f"trafficgen_mode: values must be 0 or 1, got {modes}")
    for name, labels, value in samples:
        if name == "trafficgen_build_info" and ("version" not in labels or value != 1):
            errors.append(f"trafficgen_build_info: want version label and value 1, got {labels} {value}")
    return errors


def require_contract(paths):
    metrics, _ = exported_from_scrapes(paths)
    missing = []
    for name, (kind, _) in CONTRACT.items():
        want = name + "_bucket" if kind == "histogram" else name
        if want not in metrics:
            missing.append(want)
    return missing


# ---------------------------------------------------------------- PromQL

GRAFANA_DURATIONS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
GRAFANA_VARS = re.compile(r"\$\{[a-zA-Z0-9_]+(?::[a-z]+)?\}|\$[a-zA-Z_][a-zA-Z0-9_]*")
STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{([^{}]*)\}")
RANGES = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
IDENT = re.compile(r"(?<![\w.:])[a-zA-Z_:][a-zA-Z0-9_:]*")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "atan2", "start", "end"}


def substitute(expr):
    expr = GRAFANA_DURATIONS.sub("1m", expr)
    return GRAFANA_VARS.sub(".*", expr)


def names_in(expr):
    """(metric names, label names) an expression refers to."""
    text = STRINGS.sub('""', substitute(expr))
    labels = set()
    for block in MATCHERS.findall(text):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    text = MATCHERS.sub(" ", text)
    text = RANGES.sub(" ", text)
    for _, inner in GROUPING.findall(text):
        labels.update(x.strip() for x in inner.split(",") if x.strip())
    text = GROUPING.sub(" ", text)
    metrics = set()
    for m in IDENT.finditer(text):
        rest = text[m.end():].lstrip()
        if rest.startswith("(") or m.group(0) in KEYWORDS:
            continue
        metrics.add(m.group(0))
    return metrics, labels


def dashboard_exprs(path):
    with open(path, encoding="utf-8") as fh:
        dash = json.load(fh)
    out = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((f"panel {panel.get('id')} {panel.get('title')!r}", target["expr"]))
            walk(panel.get("panels", []))

    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query":
            q = query.get("query") if isinstance(query, dict) else query
            m = re.match(r"^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)\s*$", q or "")
            if m:
                out.append((f"variable {var.get('name')}", m.group(1)))
    return out


def rule_exprs(path):
    # alerts.yml is YAML; its expressions are plain or block scalars. Parse
    # with PyYAML when present (the CI venv has it), else a minimal reader.
    try:
        import yaml  # noqa: PLC0415
    except ImportError:
        yaml = None
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    out = []
    if yaml is not None:
        doc = yaml.safe_load(text)
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                out.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]))
        return out
    raise SystemExit("metrics_tool: PyYAML is needed to read rule files")


def dashboard_lint(path):
    errors = []
    with open(path, encoding="utf-8") as fh:
        dash = json.load(fh)
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dash:
            errors.append(f"dashboard has no {key!r}")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ids, boxes = set(), []
    for panel in dash.get("panels", []):
        pid = panel.get("id")
        if pid in ids:
            errors.append(f"duplicate panel id {pid}")
        ids.add(pid)
        ds = panel.get("datasource") or {}
        if ds.get("type") != "prometheus":
            errors.append(f"panel {pid}: datasource type {ds.get('type')!r}, want prometheus")
        uid = ds.get("uid", "")
        if uid.startswith("$"):
            name = uid.strip("${}")
            if name not in variables or variables[name].get("type") != "datasource":
                errors.append(f"panel {pid}: datasource variable {uid} is not defined")
        if panel.get("type") != "row" and not panel.get("targets"):
            errors.append(f"panel {pid}: no queries")
        for target in panel.get("targets", []):
            if not target.get("expr"):
                errors.append(f"panel {pid}: query {target.get('refId')} has no expr")
        g = panel.get("gridPos") or {}
        if not all(k in g for k in ("x", "y", "w", "h")) or g.get("x", 0) + g.get("w", 0) > 24:
            errors.append(f"panel {pid}: bad gridPos {g}")
            continue
        for other_id, o in boxes:
            if (g["x"] < o["x"] + o["w"] and o["x"] < g["x"] + g["w"]
                    and g["y"] < o["y"] + o["h"] and o["y"] < g["y"] + g["h"]):
                errors.append(f"panel {pid} overlaps panel {other_id}")
        boxes.append((pid, g))
    return errors


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "exported":
        metrics, labels = exported_from_scrapes(args) if args else exported_from_contract()
        print(json.dumps({"metrics": sorted(metrics), "labels": sorted(labels)}, indent=1))
        return 0
    if cmd == "lint-scrape":
        errors = lint_scrape(args[0])
        for e in errors:
            print(f"  {args[0]}: {e}")
        return 1 if errors else 0
    if cmd == "require-contract":
        missing = require_contract(args)
        for name in missing:
            print(f"  not exported: {name}")
        return 1 if missing else 0
    if cmd == "dashboard-lint":
        errors = dashboard_lint(args[0])
        for e in errors:
            print(f"  {args[0]}: {e}")
        return 1 if errors else 0
    if cmd == "exprs":
        exprs = dashboard_exprs(args[0])
        for path in args[1:]:
            exprs += rule_exprs(path)
        for _, expr in exprs:
            print(json.dumps(substitute(expr)))
        if not exprs:
            print(f"metrics_tool: no expressions in {args}", file=sys.stderr)
        return 0 if exprs else 1
    if cmd == "check-names":
        with open(args[0], encoding="utf-8") as fh:
            exported = json.load(fh)
        metrics, labels = set(exported["metrics"]), set(exported["labels"])
        sources = [(args[1], dashboard_exprs(args[1]))] + [(p, rule_exprs(p)) for p in args[2:]]
        errors, used = [], set()
        for path, exprs in sources:
            for where, expr in exprs:
                m, lbl = names_in(expr)
                used |= m
                for name in sorted(m - metrics):
                    errors.append(f"{path}: {where}: metric {name!r} is not exported")
                for name in sorted(lbl - labels):
                    errors.append(f"{path}: {where}: label {name!r} is on no exported metric")
        # Expressions that could not be found must not read as "all names exported".
        for path, exprs in sources:
            if not exprs:
                errors.append(f"{path}: no expressions found")
        for e in errors:
            print("  " + e)
        print(f"  {len(used)} metric names used, {len(sources)} files")
        return 1 if errors else 0
    if cmd == "rules-from-exprs":
        exprs = dashboard_exprs(args[0])
        with open(args[1], "w", encoding="utf-8") as fh:
            fh.write("groups:\n  - name: dashboard-exprs\n    rules:\n")
            for i, (_, expr) in enumerate(exprs):
                fh.write(f"      - record: dashboard:expr_{i}\n")
                fh.write(f"        expr: {json.dumps(substitute(expr))}\n")
        print(f"  {len(exprs)} expressions written to {args[1]}")
        return 0 if exprs else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
