#!/usr/bin/env python3
"""Offline check of deploy/otel-collector/config.yaml (no image to run
`otelcol validate` with): the structure the collector requires, only
components of the core distribution the compose file runs, every
pipeline naming components defined in the file, the OTLP/HTTP receiver on
4318 (where OTEL_EXPORTER_OTLP_ENDPOINT points) and the traces exported to
the jaeger compose service.

  otel_collector_check.py CONFIG.yaml RESOLVED_COMPOSE.yml

Prints one line per problem; exit 1 if any. Needs PyYAML.
"""

import sys

import yaml

# Component types of otel/opentelemetry-collector (the core distribution).
CORE = {
    "receivers": {"otlp", "nop"},
    "processors": {"batch", "memory_limiter"},
    "exporters": {"otlp", "otlphttp", "debug", "nop"},
    "extensions": {"health_check", "zpages", "pprof", "memory_ballast"},
    "connectors": {"forward"},
}


def main(config_path, compose_path):
    errors = []
    config = yaml.safe_load(open(config_path, encoding="utf-8")) or {}
    services = (yaml.safe_load(open(compose_path, encoding="utf-8")) or {}).get("services", {})
    unknown = set(config) - set(CORE) - {"service"}
    if unknown:
        errors.append(f"unknown top-level keys {sorted(unknown)}")
    for kind, types in CORE.items():
        for name in config.get(kind) or {}:
            if name.split("/")[0] not in types:
                errors.append(f"{kind}.{name}: not a component of the core distribution")
    service = config.get("service") or {}
    for ext in service.get("extensions") or []:
        if ext not in (config.get("extensions") or {}):
            errors.append(f"service.extensions names undefined extension {ext}")
    pipelines = service.get("pipelines") or {}
    if "traces" not in pipelines:
        errors.append("no traces pipeline")
    for pname, pipeline in pipelines.items():
        if pname.split("/")[0] not in ("traces", "metrics", "logs"):
            errors.append(f"pipeline {pname}: not traces, metrics or logs")
        for kind in ("receivers", "processors", "exporters"):
            names = pipeline.get(kind) or []
            if kind != "processors" and not names:
                errors.append(f"pipeline {pname}: no {kind}")
            for name in names:
                if name not in (config.get(kind) or {}):
                    errors.append(f"pipeline {pname}: {kind[:-1]} {name} is not defined")
        procs = pipeline.get("processors") or []
        if "memory_limiter" in procs and procs[0] != "memory_limiter":
            errors.append(f"pipeline {pname}: memory_limiter must come first")
    http = (((config.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("http") or {}
    if not str(http.get("endpoint", "")).endswith(":4318"):
        errors.append(f"receivers.otlp.protocols.http.endpoint is {http.get('endpoint')!r}, want port 4318")
    exporters = config.get("exporters") or {}
    targets = [str((e or {}).get("endpoint", "")) for n, e in exporters.items() if n.split("/")[0] == "otlp"]
    if not any(t.split(":")[0] in services for t in targets):
        errors.append(f"no otlp exporter aimed at a compose service: {targets}")
    collector = services.get("otel-collector", {})
    if not any(str(p).endswith(":4318") or "4318" in str(p) for p in collector.get("ports", [])):
        errors.append("otel-collector does not publish 4318")
    for gen in ("traffic-generator", "demo-target"):
        if "OTEL_EXPORTER_OTLP_ENDPOINT" not in (services.get(gen, {}).get("environment") or {}):
            errors.append(f"{gen} has no OTEL_EXPORTER_OTLP_ENDPOINT")
    for e in errors:
        print("  " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
