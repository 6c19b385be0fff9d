#!/usr/bin/env python3
"""Policy checks for compose/ that `docker-compose config` does not make.

  compose_policy.py ROOT RESOLVED_FULL.yml RESOLVED_SIDECAR.yml

ROOT is the repository; RESOLVED_* are `docker-compose ... config` outputs
(all profiles enabled) of compose/docker-compose.yml and of
ci/fixtures/app-stack.yml + compose/sidecar.yml. Needs PyYAML.
Prints one line per problem; exit 1 if any.
"""

import os
import re
import sys
from urllib.parse import urlparse

import yaml

errors = []


def err(msg):
    errors.append(msg)


def load(path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def walk(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + (k,), v
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def portable_subset(path, doc):
    """Keys docker-compose v1.29 rejects or ignores (OFFLINE-CHECKS.md)."""
    for key in ("name", "version", "include"):
        if key in doc:
            err(f"{path}: top-level {key!r} is not accepted by both Compose v1.29 and v2")
    for keys, _ in walk(doc.get("services", {})):
        if keys[-1] == "start_interval":
            err(f"{path}: healthcheck.start_interval ({'.'.join(map(str, keys))}) breaks docker-compose v1")
        if keys[-3:] == ("resources", "limits", "pids"):
            err(f"{path}: use pids_limit, not deploy.resources.limits.pids")
        if len(keys) >= 3 and keys[-3] == "depends_on" and keys[-1] in ("required", "restart"):
            err(f"{path}: depends_on.{keys[-1]} breaks docker-compose v1")


def service_policy(where, name, svc):
    if svc.get("restart") != "unless-stopped":
        err(f"{where}: {name}: restart is {svc.get('restart')!r}, want unless-stopped")
    limits = (svc.get("deploy") or {}).get("resources", {}).get("limits", {})
    if not limits.get("cpus") or not limits.get("memory"):
        err(f"{where}: {name}: deploy.resources.limits needs cpus and memory, has {limits}")
    log = svc.get("logging") or {}
    opts = log.get("options") or {}
    if log.get("driver") != "json-file" or str(opts.get("max-size")) != "10m" or str(opts.get("max-file")) != "3":
        err(f"{where}: {name}: logging must be json-file with max-size 10m, max-file 3; is {log}")
    for port in svc.get("ports", []):
        text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
        if not str(text).startswith("127.0.0.1:"):
            err(f"{where}: {name}: port {port} is not published on 127.0.0.1 by default")
    for vol in svc.get("volumes", []):
        if isinstance(vol, str) and ":" not in vol:
            continue  # an anonymous volume: only a path in the container
        src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
        if src.startswith("/") and not os.path.exists(src):
            err(f"{where}: {name}: bind mount source {src} does not exist")


def mem_bytes(value):
    m = re.match(r"^(\d+(?:\.\d+)?)([kKmMgG]?)[bB]?$", str(value))
    if not m:
        return None
    return float(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2).lower()]


def main(root, resolved_full, resolved_sidecar):
    raw_path = os.path.join(root, "compose/docker-compose.yml")
    side_path = os.path.join(root, "compose/sidecar.yml")
    raw_text = open(raw_path, encoding="utf-8").read()
    side_text = open(side_path, encoding="utf-8").read()
    for path, text in ((raw_path, raw_text), (side_path, side_text)):
        portable_subset(path, yaml.safe_load(text))

    for needle in ("${TRAFFICGEN_IMAGE:-trafficgen:local}", "${PROMETHEUS_IMAGE:-prom/prometheus",
                   "${GRAFANA_IMAGE:-grafana/grafana", "${OTEL_COLLECTOR_IMAGE:-otel/opentelemetry-collector:",
                   "${JAEGER_IMAGE:-jaegertracing/all-in-one:"):
        if needle not in raw_text:
            err(f"{raw_path}: image not overridable as {needle}...")
    if "${TRAFFICGEN_IMAGE:-trafficgen:local}" not in side_text:
        err(f"{side_path}: image not overridable as ${{TRAFFICGEN_IMAGE:-trafficgen:local}}")
    if "Profiles" not in raw_text.split("services:")[-1]:
        err(f"{raw_path}: no comment block describing the profiles at the bottom")

    # `up` creates every top-level volume, whichever profiles are on: one
    # used only by profiled services would appear in a default `up` too.
    raw = yaml.safe_load(raw_text)
    default_services = {n: s for n, s in raw.get("services", {}).items() if not s.get("profiles")}
    for vol in raw.get("volumes") or {}:
        used = any(str(v).split(":")[0] == vol for s in default_services.values() for v in s.get("volumes", []))
        if not used:
            err(f"{raw_path}: top-level volume {vol!r} is not used by a default-profile service")

    full = load(resolved_full)["services"]
    want = {"demo-target": None, "traffic-generator": None,
            "prometheus": {"monitoring", "full"}, "grafana": {"monitoring", "full"},
            "otel-collector": {"tracing", "full"}, "jaeger": {"tracing", "full"}}
    for name, profiles in want.items():
        if name not in full:
            err(f"{raw_path}: no service {name}")
            continue
        have = set(full[name].get("profiles") or [])
        if profiles is None and have:
            err(f"{raw_path}: {name} must be in the default profile, has profiles {sorted(have)}")
        if profiles is not None and have != profiles:
            err(f"{raw_path}: {name} profiles {sorted(have)}, want {sorted(profiles)}")
    for name, svc in full.items():
        service_policy(raw_path, name, svc)

    gen = full.get("traffic-generator", {})
    lim = (gen.get("deploy") or {}).get("resources", {}).get("limits", {})
    if mem_bytes(lim.get("memory")) != 256 * 2**20 or float(lim.get("cpus", 0)) != 0.5:
        err(f"{raw_path}: traffic-generator limits must be 256M / 0.5 CPU, are {lim}")
    env = gen.get("environment") or {}
    if env.get("TARGET_URL") != "http://demo-target:8080":
        err(f"{raw_path}: traffic-generator TARGET_URL is {env.get('TARGET_URL')!r}")
    if float(env.get("WARMUP_SECS", 99)) > 5:
        err(f"{raw_path}: traffic-generator warm-up {env.get('WARMUP_SECS')} s is not short")
    dep = (gen.get("depends_on") or {}).get("demo-target") or {}
    if dep.get("condition") != "service_healthy":
        err(f"{raw_path}: traffic-generator must depend on demo-target with condition service_healthy")
    for name in ("demo-target", "traffic-generator"):
        test = (full.get(name, {}).get("healthcheck") or {}).get("test") or []
        if "healthcheck" not in " ".join(test):
            err(f"{raw_path}: {name} has no `trafficgen healthcheck` healthcheck")
    demo_env = full.get("demo-target", {}).get("environment") or {}
    if str(demo_env.get("PORT")) != "8080":
        err(f"{raw_path}: demo-target must set PORT=8080 (its healthcheck probes $PORT)")

    # Prometheus scrapes the compose services; Grafana's provisioning matches its mounts.
    prom = load(os.path.join(root, "deploy/prometheus/prometheus.yml"))
    targets = {t for job in prom.get("scrape_configs", [])
               for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
    # DNS service discovery: every replica of a scaled service.
    targets |= {f"{name}:{sd.get('port')}" for job in prom.get("scrape_configs", [])
                for sd in job.get("dns_sd_configs", []) if sd.get("type") == "A" for name in sd.get("names", [])}
    for t in ("traffic-generator:8089", "demo-target:8080"):
        if t not in targets:
            err(f"deploy/prometheus/prometheus.yml: does not scrape {t}")
    gen_env = full.get("traffic-generator", {}).get("environment") or {}
    if gen_env.get("PEERS") != "dns:traffic-generator:8089":
        err(f"{raw_path}: traffic-generator must set PEERS=dns:traffic-generator:8089 (replicas with --scale), "
            f"has {gen_env.get('PEERS')!r}")
    # Replicas need a shared secret; a default in the file would be public,
    # so it comes from the user's variable with no default (empty: alone).
    for path, text, var in ((raw_path, raw_text, "CLUSTER_SECRET"), (side_path, side_text, "TRAFFICGEN_CLUSTER_SECRET")):
        if f"CLUSTER_SECRET: ${{{var}:-}}" not in text:
            err(f"{path}: traffic-generator must take CLUSTER_SECRET from {var} with no default (${{{var}:-}})")
    jobs = {job["job_name"] for job in prom.get("scrape_configs", [])}
    if "trafficgen" not in jobs:
        err("deploy/prometheus/prometheus.yml: no job 'trafficgen' (the alert rules select it)")

    graf = full.get("grafana", {})
    mounts = {}
    for vol in graf.get("volumes", []):
        if isinstance(vol, str):
            parts = vol.split(":")
            if len(parts) >= 2:  # an anonymous volume has only its target
                mounts[parts[1]] = parts[0]
        else:
            mounts[vol.get("target")] = vol.get("source")
    providers = load(os.path.join(root, "deploy/grafana/provisioning/dashboards/trafficgen.yml"))
    for prov in providers.get("providers", []):
        path = prov.get("options", {}).get("path")
        if path not in mounts:
            err(f"grafana provider path {path} is not mounted in compose (mounts: {sorted(mounts)})")
        elif not any(f.endswith(".json") for f in os.listdir(mounts[path])):
            err(f"grafana provider path {path} -> {mounts[path]} has no dashboard JSON")
    home = (graf.get("environment") or {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        base = next((t for t in mounts if home.startswith(t.rstrip("/") + "/")), None)
        if not base or not os.path.exists(mounts[base] + home[len(base):]):
            err(f"grafana home dashboard {home} is not in a mounted directory")
    datasources = {"datasources": [
        ds for f in ("prometheus.yml", "jaeger.yml")
        for ds in load(os.path.join(root, "deploy/grafana/provisioning/datasources", f)).get("datasources", [])]}
    for ds in datasources.get("datasources", []):
        host = urlparse(ds.get("url", "")).hostname
        if host not in full:
            err(f"grafana datasource {ds.get('name')} points at {host!r}, not a compose service")

    # Tracing: both programs pass the endpoint through (empty: no spans),
    # and the collector's config is the one in deploy/ (checked by
    # ci/otel_collector_check.py).
    for name in ("traffic-generator", "demo-target"):
        if f"OTEL_EXPORTER_OTLP_ENDPOINT: ${{OTEL_EXPORTER_OTLP_ENDPOINT:-}}" not in raw_text:
            err(f"{raw_path}: {name} must take OTEL_EXPORTER_OTLP_ENDPOINT from the variable, empty by default")
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in (full.get(name, {}).get("environment") or {}):
            err(f"{raw_path}: {name} does not set OTEL_EXPORTER_OTLP_ENDPOINT")
    collector_mounts = [str(v) for v in full.get("otel-collector", {}).get("volumes", [])]
    if not any("deploy/otel-collector/config.yaml" in str(v) for v in full.get("otel-collector", {}).get("volumes", [])):
        err(f"{raw_path}: otel-collector does not mount deploy/otel-collector/config.yaml: {collector_mounts}")

    side = load(resolved_sidecar)["services"]
    gen = side.get("traffic-generator")
    if not gen:
        err(f"{side_path}: no traffic-generator service")
    else:
        service_policy(side_path, "traffic-generator", gen)
        url = (gen.get("environment") or {}).get("TARGET_URL", "")
        if not url.startswith("http://"):
            err(f"{side_path}: TARGET_URL {url!r} is not set to an http:// URL")
        # Aiming at your own API needs only variables: a workload file named
        # by TRAFFICGEN_WORKLOAD_FILE (empty: built-in), from a mounted folder.
        if "WORKLOAD_FILE: ${TRAFFICGEN_WORKLOAD_FILE:-}" not in side_text:
            err(f"{side_path}: WORKLOAD_FILE must come from TRAFFICGEN_WORKLOAD_FILE, empty by default")
        def workloads_mount(vol):
            if isinstance(vol, str):
                return vol.split(":")[1:3] == ["/etc/trafficgen/workloads", "ro"]
            return vol.get("target") == "/etc/trafficgen/workloads" and vol.get("read_only") is True
        if not any(workloads_mount(v) for v in gen.get("volumes", [])):
            err(f"{side_path}: no read-only workloads mount at /etc/trafficgen/workloads: {gen.get('volumes')}")

    for e in errors:
        print("  " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
