#!/usr/bin/env bash
# Checks the control API against its own description (GET /openapi.json):
# openapi-spec-validator (PyPI) validates the document the sidecar serves,
# then Schemathesis (PyPI) fuzzes the running sidecar, aimed at the demo
# target on 127.0.0.1, once without and once with CONTROL_TOKEN: no 5xx,
# every answer of a documented status and content type and matching its
# schema, input the schema forbids refused with a 4xx. The event streams
# (SSE, never ending) are left out. Each run is bounded (SCHEMATHESIS_SECS,
# default 80 s; the whole script stays under 3 minutes of fuzzing).
#
# Installs both tools, pinned, into a private virtualenv; idempotent. When a
# tool cannot be installed the checks are skipped with a message, except in
# CI (CI=true), where that is a failure.
#
# Usage: ci/api-checks.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:?usage: ci/api-checks.sh BINARY}"
venv="${TRAFFICGEN_API_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/trafficgen/api-checks-venv}"
pip_pkgs=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
fuzz_secs="${SCHEMATHESIS_SECS:-80}"

stamp="$venv/.trafficgen-requirements"
if [ ! -x "$venv/bin/st" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pip_pkgs[*]}" ]; then
  echo "installing into $venv: ${pip_pkgs[*]}" >&2
  if ! { timeout 120 python3 -m venv "$venv" &&
    timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "${pip_pkgs[@]}"; }; then
    if [ "${CI:-}" = "true" ]; then
      echo "FAIL: could not install ${pip_pkgs[*]}" >&2
      exit 1
    fi
    echo "SKIP: could not install ${pip_pkgs[*]}; the API checks did not run" >&2
    exit 0
  fi
  echo "${pip_pkgs[*]}" >"$stamp"
fi

work="$(mktemp -d)"
# `start` runs in a command substitution (a subshell), so the PIDs of what
# it starts are kept in files, not in a variable that would die with it.
cleanup() {
  local f pid
  for f in "$work"/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts BINARY ARGS… with the environment given before it, logging JSON to
# $work/NAME.log; prints the port its "listening" line names.
start() {
  local name="$1"
  shift
  env "$@" >"$work/$name.log" 2>&1 &
  echo "$!" >"$work/$name.pid"
  local port=""
  for _ in $(seq 1 150); do
    port="$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if "listening" in v.get("message", "") and "port" in v:
        print(v["port"]); break
' "$work/$name.log")"
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "FAIL: $name did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
  fi
  echo "$port"
}

target_port="$(start demo-target "$bin" demo-target --bind 127.0.0.1 --port 0)"
# Rates kept low: the fuzzer starts jobs and switches modes at random.
sidecar_env=(TARGET_URL="http://127.0.0.1:$target_port" PORT=0 BIND=127.0.0.1 WARMUP_SECS=0
  MAX_RPS=20 STEADY_RPS=2 BURST_RPS=5 OVERLOAD_RPS=10 STATS_INTERVAL_SECS=0)

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection

fuzz() {
  local label="$1"
  shift
  echo "--- Schemathesis, $label" >&2
  local port
  port="$(start "sidecar-$label" "${sidecar_env[@]}" "$@")"
  curl -sf "http://127.0.0.1:$port/openapi.json" >"$work/openapi.json"
  "$venv/bin/openapi-spec-validator" "$work/openapi.json"
  local auth=()
  if [ -n "${token:-}" ]; then
    auth=(-H "Authorization: Bearer $token")
  fi
  timeout $((fuzz_secs + 60)) "$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
    --checks "$checks" --exclude-path-regex '/events$' \
    --max-time "$fuzz_secs" --max-examples 40 --request-timeout 10 --workers 2 --seed 11 \
    --suppress-health-check too_slow \
    "${auth[@]}" 2>&1 | tee "$work/st-$label.log"
  local status="${PIPESTATUS[0]}"
  if [ "$status" -ne 0 ]; then
    echo "FAIL: Schemathesis found problems ($label); sidecar log tail:" >&2
    tail -20 "$work/sidecar-$label.log" >&2
    exit 1
  fi
}

token=""
fuzz "without a token" "$bin"
token="api-checks-$RANDOM$RANDOM"
fuzz "with a token" CONTROL_TOKEN="$token" "$bin"
echo "API checks passed: the document is valid OpenAPI, and the sidecar answers as it says, with and without a token" >&2
