#!/usr/bin/env bash
# Checks the control API against its own description (GET /openapi.json):
# openapi-spec-validator (PyPI) validates the document the sidecar serves,
# the kept cases (ci/api-cases.tsv: what earlier fuzzing found) are sent
# one by one, then Schemathesis (PyPI) fuzzes the running sidecar, aimed at
# the demo target on 127.0.0.1, once without and once with CONTROL_TOKEN:
# no 5xx, every answer of a documented status and content type and
# matching its schema, input the schema forbids refused with a 4xx. The
# event streams (SSE, never ending) are left out.
#
# This run gates CI, so it is the same run every time: a fixed seed,
# deterministic generation (which keeps no example database), one worker,
# a number of examples rather than a time budget, a fixed token. It fails only when
# something broke, never on a draw. Wider exploration, under a fresh seed
# and for longer, is ci/api-explore.sh (not part of .ci/run): what it finds
# is fixed in the code and kept as a line of ci/api-cases.tsv (and a test
# in tests/api/ where it says more), so this run checks it from then on.
#
# Installs both tools, pinned, into a private virtualenv; idempotent. When a
# tool cannot be installed the checks are skipped with a message, except in
# CI (CI=true), where that is a failure.
#
# Usage: ci/api-checks.sh BINARY
#   SCHEMATHESIS_SEED (11), SCHEMATHESIS_EXAMPLES (100): the gating run.
#   ci/api-explore.sh sets SCHEMATHESIS_EXPLORE=1 (see there).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:?usage: ci/api-checks.sh BINARY}"
venv="${TRAFFICGEN_API_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/trafficgen/api-checks-venv}"
pip_pkgs=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
explore="${SCHEMATHESIS_EXPLORE:-}"
seed="${SCHEMATHESIS_SEED:-11}"
examples="${SCHEMATHESIS_EXAMPLES:-100}"
# Exploring: a time budget (fuzzing repeats until it is spent); gating: a
# bound only against a hang.
fuzz_secs="${SCHEMATHESIS_SECS:-600}"
cases_file="ci/api-cases.tsv"

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

# Sends every case of ci/api-cases.tsv to the sidecar on $1 (with the token
# $2, if any) and checks its status.
kept_cases() {
  python3 - "$1" "${2:-}" "$cases_file" <<'PY'
import json, sys, urllib.request, urllib.error
port, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
failed = 0
for n, line in enumerate(open(path), 1):
    if not line.strip() or line.startswith("#"):
        continue
    method, target, body, status, why = line.rstrip("\n").split("\t")
    data = None if body == "-" else json.loads(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{target}", data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            got = answer.status
    except urllib.error.HTTPError as e:
        got = e.code
    if str(got) != status:
        print(f"FAIL {path}:{n}: {method} {target} {body} -> {got}, expected {status} ({why})", file=sys.stderr)
        failed += 1
sys.exit(1 if failed else 0)
PY
}

fuzz() {
  local label="$1"
  shift
  echo "--- Schemathesis, $label" >&2
  local port
  port="$(start "sidecar-$label" "${sidecar_env[@]}" "$@")"
  curl -sf "http://127.0.0.1:$port/openapi.json" >"$work/openapi.json"
  "$venv/bin/openapi-spec-validator" "$work/openapi.json"
  if ! kept_cases "$port" "${token:-}"; then
    echo "FAIL: a kept case of $cases_file regressed ($label)" >&2
    exit 1
  fi
  local auth=()
  if [ -n "${token:-}" ]; then
    auth=(-H "Authorization: Bearer $token")
  fi
  local mode=()
  if [ -n "$explore" ]; then
    # Fresh draws for as long as allowed; what is found is kept in the
    # example database and the reports, to become kept cases.
    mode=(--max-time "$fuzz_secs" --workers 2 --generation-database "$finds/examples"
      --report junit,vcr --report-dir "$finds/$label")
  else
    mode=(--generation-deterministic --workers 1)
  fi
  # Schemathesis keeps a cache of crashes in its working directory and
  # replays it next time: the gating run starts from none (a temporary
  # directory), the exploration keeps its own with its finds.
  local cwd="$work"
  if [ -n "$explore" ]; then
    cwd="$finds"
  fi
  (cd "$cwd" && timeout $((fuzz_secs + 60)) "$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
    --checks "$checks" --exclude-path-regex '/events$' \
    --max-examples "$examples" --request-timeout 10 --seed "$seed" \
    --suppress-health-check too_slow \
    "${mode[@]}" "${auth[@]}") 2>&1 | tee "$work/st-$label.log"
  local status="${PIPESTATUS[0]}"
  if [ "$status" -ne 0 ]; then
    echo "FAIL: Schemathesis found problems ($label, seed $seed); sidecar log tail:" >&2
    tail -20 "$work/sidecar-$label.log" >&2
    exit 1
  fi
}

if [ -n "$explore" ]; then
  finds="${SCHEMATHESIS_FINDS:-$PWD/target/api-explore}"
  mkdir -p "$finds"
  echo "exploring with seed $seed for up to $fuzz_secs s per run; finds in $finds" >&2
fi
token=""
fuzz "without a token" "$bin"
token="api-checks-token-$seed"
fuzz "with a token" CONTROL_TOKEN="$token" "$bin"
echo "API checks passed: the document is valid OpenAPI, and the sidecar answers as it says, with and without a token" >&2
