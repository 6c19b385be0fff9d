#!/usr/bin/env bash
# End-to-end test of the image and the compose stack, for real, offline.
#
#   ci/compose-e2e.sh BINARY_PATH
#
# BINARY_PATH: a static trafficgen binary, e.g. from
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
#
# 1. builds the image from it offline (ci/docker-build-offline.sh) and checks
#    its size (< 15 MB), user, port, healthcheck, entrypoint and labels;
# 2. `docker-compose up -d` of compose/docker-compose.yml (default profile)
#    under a unique project name, ports on 127.0.0.1 only; waits for healthy;
#    traffic reaches the demo target by its service name; POST /mode/burst
#    raises the rate seen by the demo target; /status and /metrics answer;
#    `promtool check metrics` and the exposition invariants on live scrapes;
# 3. profile `monitoring` with a Prometheus image built from Debian's package
#    (Grafana cannot be pulled here, so it is checked statically only, by
#    ci/packaging-checks.sh): up == 1 for both jobs, the alert rules load,
#    every dashboard query evaluates;
# 4. compose/sidecar.yml as an override of a stand-in user stack
#    (ci/fixtures/app-stack.yml): traffic reaches its `nginx` service;
# 5. `docker stop` ends both containers with exit code 0 within the grace time;
# 6. removes everything it created (containers, networks, volumes, images,
#    build cache), also on failure or interrupt.
#
# Environment (all optional): E2E_PROJECT, E2E_IMAGE, E2E_TRAFFICGEN_PORT,
# E2E_DEMO_TARGET_PORT, E2E_PROMETHEUS_PORT, E2E_APP_PORT, E2E_SIDECAR_PORT
# (default: free ports), E2E_MONITORING (auto|0|1, default auto = when Debian's
# prometheus is installed or installable), E2E_KEEP=1 keeps the stack up.
#
# With CI=true (as .ci/run sets it) a step that cannot run is a failure, not
# a note: every check either checks or fails.

# `cond && pass ... || fail ...` is safe here: pass always returns 0.
# Functions called from traps look unreachable to shellcheck.
# shellcheck disable=SC2015,SC2317
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root" || exit 1

binary="${1:?usage: $0 BINARY_PATH}"
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
suffix="$$-$(date +%s)"
project="${E2E_PROJECT:-tge2e-$suffix}"
app_project="${project}-app"
image="${E2E_IMAGE:-trafficgen-e2e/trafficgen:$suffix}"
prom_image="trafficgen-e2e/prometheus:$suffix"
compose_file="compose/docker-compose.yml"
monitoring="${E2E_MONITORING:-auto}"
work="$(mktemp -d "${TMPDIR:-/tmp}/trafficgen-e2e.XXXXXX")"
built_prom=0

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
export TRAFFICGEN_IMAGE="$image"
export PUBLISH_ADDR=127.0.0.1
export TRAFFICGEN_PORT="${E2E_TRAFFICGEN_PORT:-$(free_port)}"
export DEMO_TARGET_PORT="${E2E_DEMO_TARGET_PORT:-$(free_port)}"
export PROMETHEUS_PORT="${E2E_PROMETHEUS_PORT:-$(free_port)}"
GRAFANA_PORT="$(free_port)"
export GRAFANA_PORT
export APP_PORT="${E2E_APP_PORT:-$(free_port)}"
sidecar_port="${E2E_SIDECAR_PORT:-$(free_port)}"
# Settings the compose files interpolate: fixed here, whatever the caller's
# environment holds (a TARGET_URL there must not aim the test elsewhere).
unset TARGET_URL INITIAL_MODE OVERLOAD_RPS MAX_RPS PROMETHEUS_IMAGE GRAFANA_IMAGE \
  TRAFFICGEN_TARGET_URL TRAFFICGEN_INITIAL_MODE TRAFFICGEN_STEADY_RPS TRAFFICGEN_BURST_RPS \
  TRAFFICGEN_OVERLOAD_RPS TRAFFICGEN_MAX_RPS TRAFFICGEN_RUST_LOG TRAFFICGEN_PUBLISH_ADDR \
  TRAFFICGEN_WORKLOAD_FILE TRAFFICGEN_WORKLOADS_DIR
export WARMUP_SECS=2 STEADY_RPS=2 BURST_RPS=20 LOG_FORMAT=json RUST_LOG=info
# The replicas' shared secret, which both compose files require: fresh each run.
CLUSTER_SECRET="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export CLUSTER_SECRET TRAFFICGEN_CLUSTER_SECRET="$CLUSTER_SECRET"

dc() { timeout 180 docker-compose -p "$project" -f "$compose_file" "$@"; }
# The sidecar runs a workload file from a workloads folder, as README's
# "Aim it at your own API" does: the repository's users-crud.yaml, whose
# requests the stand-in's demo target counts by route.
dc_app() {
  TRAFFICGEN_PORT="$sidecar_port" TRAFFICGEN_WARMUP_SECS=1 \
    TRAFFICGEN_WORKLOADS_DIR="$root/compose/workloads" \
    TRAFFICGEN_WORKLOAD_FILE=/etc/trafficgen/workloads/users-crud.yaml \
    timeout 180 docker-compose -p "$app_project" -f ci/fixtures/app-stack.yml -f compose/sidecar.yml "$@"
}

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$1"); printf 'FAIL  %s\n' "$*"; }
info() { printf '      %s\n' "$*"; }
# skip NAME REASON: a step that could not run fails in CI and is noted elsewhere.
skip() {
  if [ "${CI:-}" = true ]; then fail "$1 (CI=true: a skipped step is a failure): $2"; else printf 'SKIP  %s: %s\n' "$1" "$2"; fi
}
is_count() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }

show_logs() {
  echo "---- docker-compose logs (last 30 lines per service)"
  dc --profile monitoring logs --no-color --tail=30 2>&1 | sed 's/^/      /'
}

cleanup_done=0
cleanup() {
  [ "$cleanup_done" = 1 ] && return
  cleanup_done=1
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "E2E_KEEP=1: leaving project $project up (docker-compose -p $project -f $compose_file --profile monitoring down -v)"
    rm -rf "$work"
    return
  fi
  dc --profile monitoring down -v --remove-orphans -t 5 >/dev/null 2>&1
  dc_app down -v --remove-orphans -t 5 >/dev/null 2>&1
  docker rmi -f "$image" >/dev/null 2>&1
  [ "$built_prom" = 1 ] && docker rmi -f "$prom_image" >/dev/null 2>&1
  timeout 120 python3 "$here/docker_api_build.py" --prune-since "$started_at" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "compose-e2e: interrupted"; exit 130' INT TERM

finish() {
  echo
  [ "$failed" -gt 0 ] && echo "compose-e2e: failed: ${failures[*]}"
  echo "compose-e2e: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
abort() { fail "$@"; show_logs; finish; }

# --------------------------------------------------------------- tools
need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing with apt: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; } \
    || fail "apt-get install ${need_apt[*]}"
fi
for tool in docker docker-compose jq curl python3; do
  command -v "$tool" >/dev/null 2>&1 || abort "tool $tool is missing"
done
timeout 20 docker info >/dev/null 2>&1 || abort "no Docker engine reachable"

echo "compose-e2e: project $project, image $image"
echo "compose-e2e: ports on 127.0.0.1: trafficgen $TRAFFICGEN_PORT, demo-target $DEMO_TARGET_PORT, prometheus $PROMETHEUS_PORT, sidecar $sidecar_port, app $APP_PORT"

# --------------------------------------------------------------- image
t=$SECONDS
if bash "$here/docker-build-offline.sh" "$binary" "$image" >"$work/build.log" 2>&1; then
  pass "image built offline from $binary in $((SECONDS - t)) s (BuildKit, runtime stage with TRAFFICGEN_BINARY_SOURCE=prebuilt)"
else
  sed 's/^/      /' "$work/build.log"
  abort "offline image build"
fi

inspect() { docker image inspect -f "$1" "$image"; }
size="$(inspect '{{.Size}}')"
size_mb="$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1000000 }')"
if [ "$size" -lt 15000000 ]; then pass "image size $size_mb MB (< 15 MB)"; else fail "image size $size_mb MB is not under 15 MB"; fi
user="$(inspect '{{.Config.User}}')"
case "$user" in ""|0|0:*|root|root:*) fail "image runs as root (User '$user')" ;; *) pass "image runs as non-root user $user" ;; esac
[ "$(inspect '{{json .Config.ExposedPorts}}')" = '{"8089/tcp":{}}' ] && pass "EXPOSE 8089" || fail "EXPOSE: $(inspect '{{json .Config.ExposedPorts}}')"
inspect '{{json .Config.Healthcheck.Test}}' | grep -q '"CMD","/usr/local/bin/trafficgen","healthcheck"' \
  && pass "HEALTHCHECK is the binary's healthcheck (exec form)" || fail "HEALTHCHECK: $(inspect '{{json .Config.Healthcheck}}')"
[ "$(inspect '{{json .Config.Entrypoint}}')" = '["/usr/local/bin/trafficgen"]' ] \
  && pass "ENTRYPOINT trafficgen" || fail "ENTRYPOINT: $(inspect '{{json .Config.Entrypoint}}')"
labels="$(inspect '{{json .Config.Labels}}')"
echo "$labels" | jq -e '."org.opencontainers.image.title" and ."org.opencontainers.image.version" and ."org.opencontainers.image.revision"' >/dev/null \
  && pass "OCI labels (version $(echo "$labels" | jq -r '."org.opencontainers.image.version"'))" || fail "OCI labels: $labels"
if timeout 30 docker run --rm --network none "$image" --help >"$work/help.txt" 2>&1; then
  pass "docker run IMAGE --help"
else
  fail "docker run IMAGE --help"; sed 's/^/      /' "$work/help.txt" | head -n 20
fi
timeout 30 docker run --rm --network none "$image" healthcheck --url http://127.0.0.1:9/health >/dev/null 2>&1
rc=$?
[ "$rc" = 1 ] && pass "healthcheck exits 1 when nothing answers" || fail "healthcheck against a closed port exited $rc, want 1"

# ------------------------------------------------------- compose: default
t0="$(date +%s.%N)"
if dc up -d --no-build >"$work/up.log" 2>&1; then
  pass "docker-compose up -d (default profile) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
else
  sed 's/^/      /' "$work/up.log"
  abort "docker-compose up -d (default profile)"
fi
gen_cid="$(dc ps -q traffic-generator)"
demo_cid="$(dc ps -q demo-target)"

# demo_total: requests the demo target has answered; prints nothing and
# fails when it cannot be scraped (an empty scrape is not 0 requests).
demo_total() {
  local scrape
  scrape="$(curl -sf --max-time 3 "http://127.0.0.1:$DEMO_TARGET_PORT/metrics")" || return 1
  echo "$scrape" | grep -q '^# TYPE demo_target_requests_total counter' || return 1
  echo "$scrape" | awk '/^demo_target_requests_total[{ ]/ { s += $NF } END { printf "%d\n", s }'
}
first=""
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
  n="$(demo_total)"
  if [ "${n:-0}" -gt 0 ]; then first="$(date +%s.%N)"; break; fi
  sleep 0.2
done
if [ -n "$first" ]; then
  up_to_first="$(awk -v a="$t0" -v b="$first" 'BEGIN { printf "%.1f", b - a }')"
  pass "traffic reaches the demo target by service name (http://demo-target:8080): up -> first request $up_to_first s"
else
  fail "no request reached the demo target within 60 s"
  info "generator /status: $(curl -s --max-time 3 "http://127.0.0.1:$TRAFFICGEN_PORT/status")"
  info "errors by kind: $(curl -s --max-time 3 "http://127.0.0.1:$TRAFFICGEN_PORT/metrics" | grep '^trafficgen_request_errors_total' | grep -v ' 0$' | tr '\n' ' ')"
  abort "traffic to the demo target (name resolution in the scratch image?)"
fi

# The control panel is served in the default profile at the published port.
page="$(curl -s --max-time 5 -D "$work/panel-headers.txt" "http://127.0.0.1:$TRAFFICGEN_PORT/")"
if echo "$page" | grep -qi '<title>' && grep -qi '^content-security-policy:' "$work/panel-headers.txt" \
    && curl -sf --max-time 5 -o /dev/null "http://127.0.0.1:$TRAFFICGEN_PORT/panel.js"; then
  pass "the control panel answers at http://127.0.0.1:$TRAFFICGEN_PORT/ (${#page} bytes of HTML, its script served, a CSP set)"
else
  fail "the control panel at http://127.0.0.1:$TRAFFICGEN_PORT/"; head -n 5 "$work/panel-headers.txt" | sed 's/^/      /'
fi

# The one-shot CI mode runs from the image too: on the compose network,
# against the demo target by name, 3 s, exit 0 with its summary.
net="$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$demo_cid" | awk '{print $1}')"
if timeout 60 docker run --rm --network "$net" "$image" run --duration 3s --max-rps 10 \
    --slo "error_rate<50%" --progress plain http://demo-target:8080 >"$work/run.txt" 2>&1 \
    && grep -q '^PASSED' "$work/run.txt"; then
  pass "docker run IMAGE run --duration 3s … http://demo-target:8080: exit 0, $(grep -m1 '^sent ' "$work/run.txt" | cut -d' ' -f1-2)"
else
  fail "docker run IMAGE run … against the demo target"; sed 's/^/      /' "$work/run.txt" | tail -n 20
fi

health_ok=1
for cid in "$demo_cid" "$gen_cid"; do
  status=""
  deadline=$((SECONDS + 60))
  while [ $SECONDS -lt $deadline ]; do
    status="$(docker inspect -f '{{.State.Health.Status}}' "$cid" 2>/dev/null)"
    [ "$status" = healthy ] && break
    sleep 1
  done
  [ "$status" = healthy ] || { health_ok=0; info "$(docker inspect -f '{{.Name}}: {{.State.Health.Status}} {{json .State.Health.Log}}' "$cid" | cut -c1-400)"; }
done
[ "$health_ok" = 1 ] && pass "both containers healthy (HEALTHCHECK = trafficgen healthcheck, PORT-aware)" || fail "containers not healthy within 60 s"

rate_over() {  # rate_over SECONDS -> requests/s seen by the demo target; fails if unscrapable
  local a b
  a="$(demo_total)" && is_count "$a" || return 1
  sleep "$1"
  b="$(demo_total)" && is_count "$b" || return 1
  awk -v a="$a" -v b="$b" -v s="$1" 'BEGIN { printf "%.1f", (b - a) / s }'
}
sleep 1
steady="$(rate_over 5)" || steady=""
resp="$(curl -s --max-time 5 -X POST -w '\n%{http_code}' "http://127.0.0.1:$TRAFFICGEN_PORT/mode/burst")"
code="$(echo "$resp" | tail -n1)"
body="$(echo "$resp" | head -n -1)"
if [ "$code" = 200 ] && [ "$(echo "$body" | jq -r .mode 2>/dev/null)" = burst ]; then
  pass "POST /mode/burst -> 200 $body"
else
  fail "POST /mode/burst -> $code $body"
fi
sleep 1
burst="$(rate_over 5)" || burst=""
# Each rate near its setting (2/s and 20/s, with a request of slack at the
# window's edges): a steady rate of 0 must fail, not make any burst "3x".
if [ -n "$steady" ] && [ -n "$burst" ] \
   && awk -v s="$steady" -v b="$burst" 'BEGIN { exit !(s >= 1.4 && s <= 2.6 && b >= 16 && b <= 24) }'; then
  pass "rate at the demo target: steady $steady/s -> burst $burst/s (want 2 and 20, within 0.6 and 4)"
else
  fail "rate at the demo target: steady '$steady'/s -> burst '$burst'/s (want 2 and 20, within 0.6 and 4)"
fi

status="$(curl -sf --max-time 5 "http://127.0.0.1:$TRAFFICGEN_PORT/status")"
if echo "$status" | jq -e '.mode == "burst" and .state == "running" and .stats.total > 0' >/dev/null 2>&1; then
  pass "GET /status: $(echo "$status" | jq -c '{mode, rps, state, total: .stats.total, successful: .stats.successful, failed: .stats.failed, dropped: .stats.dropped}')"
else
  fail "GET /status: $status"
fi
routes="$(curl -sf --max-time 3 "http://127.0.0.1:$DEMO_TARGET_PORT/metrics" | grep -o 'route="[a-z_]*"' | sort -u | tr '\n' ' ')"
[ "$(echo "$routes" | wc -w)" = 3 ] && pass "demo target saw all three routes: $routes" || fail "demo target routes: $routes"

if curl -sf --max-time 5 "http://127.0.0.1:$TRAFFICGEN_PORT/metrics" >"$work/gen.prom" \
   && curl -sf --max-time 5 "http://127.0.0.1:$DEMO_TARGET_PORT/metrics" >"$work/demo.prom"; then
  pass "GET /metrics answers ($(grep -vc '^#' "$work/gen.prom") samples from the generator, $(grep -vc '^#' "$work/demo.prom") from the demo target)"
  for s in gen demo; do
    if out="$(timeout 30 promtool check metrics <"$work/$s.prom" 2>&1)"; then
      pass "promtool check metrics on the live $s scrape"
    else
      fail "promtool check metrics on the live $s scrape"; echo "$out" | sed 's/^/      /' | head -n 20
    fi
    if out="$(python3 "$here/metrics_tool.py" lint-scrape "$work/$s.prom")"; then
      pass "exposition invariants on the live $s scrape"
    else
      fail "exposition invariants on the live $s scrape"; echo "$out" | head -n 20
    fi
  done
  out="$(python3 "$here/metrics_tool.py" require-contract "$work/gen.prom" "$work/demo.prom")" \
    && pass "every contract metric is exported by the containers" || { fail "contract metrics missing"; echo "$out"; }
else
  fail "GET /metrics"
fi

# ---------------------------------------------------- compose: monitoring
if [ "$monitoring" = auto ]; then
  if command -v prometheus >/dev/null 2>&1 || [ "${CI:-}" = true ]; then monitoring=1; else monitoring=0; fi
fi
if [ "$monitoring" = 1 ]; then
  if bash "$here/build-prometheus-image.sh" "$prom_image" >"$work/prom-build.log" 2>&1; then
    built_prom=1
    pass "Prometheus image built offline from Debian's package ($(docker image inspect -f '{{.Size}}' "$prom_image" | awk '{ printf "%.0f", $1 / 1000000 }') MB, CI only)"
  else
    sed 's/^/      /' "$work/prom-build.log"
    fail "Prometheus image build"
  fi
fi
if [ "$built_prom" = 1 ]; then
  if PROMETHEUS_IMAGE="$prom_image" dc --profile monitoring up -d --no-build prometheus >"$work/up-prom.log" 2>&1; then
    pass "docker-compose --profile monitoring up -d prometheus (Grafana: upstream image, not pullable here)"
    prom="http://127.0.0.1:$PROMETHEUS_PORT"
    query() { curl -sfG --max-time 10 --data-urlencode "query=$1" "$prom/api/v1/query"; }
    ups=""
    deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
      ups="$(query 'up' 2>/dev/null | jq -r '[.data.result[] | select(.value[1] == "1") | .metric.job] | sort | join(",")' 2>/dev/null)"
      case ",$ups," in *,demo-target,*) case ",$ups," in *,trafficgen,*) break ;; esac ;; esac
      sleep 1
    done
    case ",$ups," in
      *,trafficgen,*) case ",$ups," in
        *,demo-target,*) pass "Prometheus scrapes the compose services: up == 1 for jobs $ups" ;;
        *) fail "Prometheus: up == 1 only for [$ups]" ;; esac ;;
      *) fail "Prometheus: up == 1 only for [$ups]"; info "$(curl -s "$prom/api/v1/targets" | jq -c '[.data.activeTargets[] | {job: .labels.job, health, lastError}]')" ;;
    esac
    rules="$(curl -sf --max-time 10 "$prom/api/v1/rules")"
    nrules="$(echo "$rules" | jq '[.data.groups[].rules[]] | length')"
    bad="$(echo "$rules" | jq -c '[.data.groups[].rules[] | select(.health == "err") | {name, lastError}]')"
    if [ "${nrules:-0}" -gt 0 ] && [ "$bad" = "[]" ]; then
      pass "Prometheus loaded $nrules alert rules from deploy/prometheus/alerts.yml, none in error"
    else
      fail "Prometheus rules: $nrules loaded, in error: $bad"
    fi
    # Two scrapes are needed for rate(); wait until the achieved rate shows.
    deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
      v="$(query 'sum(rate(trafficgen_requests_total[1m]))' | jq -r '.data.result[0].value[1] // empty' 2>/dev/null)"
      [ -n "$v" ] && break
      sleep 1
    done
    n=0; errs=0; empty=0
    # The list is written to a file first: the exit status of a process
    # substitution is lost, and an empty list would "pass" with 0 queries.
    if python3 "$here/metrics_tool.py" exprs deploy/grafana/dashboards/trafficgen.json >"$work/exprs.jsonl"; then
      want="$(wc -l <"$work/exprs.jsonl")"
      while IFS= read -r expr_json; do
        expr="$(echo "$expr_json" | jq -r .)"
        n=$((n + 1))
        out="$(query "$expr")"
        if [ "$(echo "$out" | jq -r .status 2>/dev/null)" != success ]; then
          errs=$((errs + 1)); info "query failed: $expr -> $(echo "$out" | head -c 300)"
        elif [ "$(echo "$out" | jq '.data.result | length')" = 0 ]; then
          empty=$((empty + 1))
        fi
      done <"$work/exprs.jsonl"
      if [ "$errs" = 0 ] && [ "$n" -ge 10 ] && [ "$n" = "$want" ]; then
        pass "all $n dashboard queries evaluate in Prometheus ($((n - empty)) return data now)"
      else
        fail "dashboard queries in Prometheus: $errs of $n failed ($want listed; at least 10 expected)"
      fi
    else
      fail "listing the dashboard queries (ci/metrics_tool.py exprs)"
    fi
    target="$(query 'sum(trafficgen_target_rps)' | jq -r '.data.result[0].value[1] // empty')"
    achieved="$(query 'sum(rate(trafficgen_requests_total[1m]))' | jq -r '.data.result[0].value[1] // empty')"
    [ "$target" = 20 ] && pass "Prometheus sees trafficgen_target_rps 20 (burst), achieved $(printf "%.1f" "${achieved:-0}")/s over 1m" \
      || fail "Prometheus trafficgen_target_rps = '$target', want 20"
  else
    sed 's/^/      /' "$work/up-prom.log"
    fail "docker-compose --profile monitoring up -d prometheus"
  fi
elif [ "$monitoring" = 1 ]; then
  fail "monitoring profile: no Prometheus image to run"
else
  skip "monitoring profile" "no prometheus package (E2E_MONITORING=$monitoring); Grafana is validated statically by ci/packaging-checks.sh"
fi

# ------------------------------------------------------ sidecar override
if dc_app up -d --no-build >"$work/up-app.log" 2>&1; then
  pass "compose/sidecar.yml added to a stand-in user stack (ci/fixtures/app-stack.yml) starts"
  app_total=0
  deadline=$((SECONDS + 45))
  while [ $SECONDS -lt $deadline ]; do
    app_total="$(curl -sf --max-time 3 "http://127.0.0.1:$APP_PORT/metrics" | awk '/^demo_target_requests_total[{ ]/ { s += $NF } END { printf "%d\n", s }')"
    [ "${app_total:-0}" -gt 0 ] && break
    sleep 0.5
  done
  [ "${app_total:-0}" -gt 0 ] && pass "sidecar traffic reaches the stack's entry point http://nginx:80 ($app_total requests)" \
    || { fail "no sidecar traffic reached http://nginx:80 within 45 s"; dc_app logs --no-color --tail=20 2>&1 | sed 's/^/      /'; }
  users_total="$(curl -sf --max-time 3 "http://127.0.0.1:$APP_PORT/metrics" \
    | awk '/^demo_target_requests_total[{].*route="(create_user|get_user|list_users|update_user)"/ { s += $NF } END { printf "%d\n", s }')"
  [ "${users_total:-0}" -gt 0 ] && pass "sidecar runs TRAFFICGEN_WORKLOAD_FILE from the mounted workloads folder ($users_total users requests)" \
    || { fail "sidecar did not send users-crud.yaml's requests"; dc_app logs --no-color --tail=20 2>&1 | sed 's/^/      /'; }
  curl -sf --max-time 3 "http://127.0.0.1:$sidecar_port/health" >/dev/null \
    && pass "sidecar control API on 127.0.0.1:$sidecar_port" || fail "sidecar control API on 127.0.0.1:$sidecar_port"
  dc_app down -v --remove-orphans -t 5 >/dev/null 2>&1
else
  sed 's/^/      /' "$work/up-app.log"
  fail "compose/sidecar.yml override up"
fi

# ------------------------------------------------------- graceful stop
for svc in traffic-generator demo-target; do
  cid="$(dc ps -q "$svc")"
  if [ -z "$cid" ] || [ "$(docker inspect -f '{{.State.Running}}' "$cid" 2>/dev/null)" != true ]; then
    fail "docker stop $svc: no running container to stop (id '$cid')"
    continue
  fi
  t="$(date +%s.%N)"
  timeout 30 docker stop -t 10 "$cid" >/dev/null 2>&1
  stop_rc=$?
  took="$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  # .State.ExitCode is 0 while a container still runs: read the state too.
  state="$(docker inspect -f '{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}' "$cid" 2>&1)"
  if [ "$stop_rc" = 0 ] && [ "$state" = "exited false 0" ] && awk -v s="$took" 'BEGIN { exit !(s < 9) }'; then
    pass "docker stop $svc: exit 0 after $took s (SIGTERM handled as PID 1)"
  else
    fail "docker stop $svc: docker stop exited $stop_rc after $took s, state '$state' (want 'exited false 0', well within the 10 s grace)"
  fi
done

# ---------------------------------------------------------------- clean up
summary="image size $size_mb MB; up -> first request at the demo target ${up_to_first:-?} s; steady ${steady:-?}/s -> burst ${burst:-?}/s"
cleanup
if [ "${E2E_KEEP:-0}" != 1 ]; then
  left=""
  for p in "$project" "$app_project"; do
    left+="$(docker ps -aq --filter "label=com.docker.compose.project=$p")"
    left+="$(docker network ls -q --filter "label=com.docker.compose.project=$p")"
    left+="$(docker volume ls -q --filter "label=com.docker.compose.project=$p")"
  done
  left+="$(docker images -q "$image")"
  [ "$built_prom" = 1 ] && left+="$(docker images -q "$prom_image")"
  cache="$(timeout 60 python3 "$here/docker_api_build.py" --count-since "$started_at" 2>&1)"
  # No output, or anything but a count, is a failure to look, not 0 records.
  if ! is_count "$cache"; then
    left+=" (build cache could not be counted: $cache)"
  elif [ "$cache" != 0 ]; then
    left+=" $cache build-cache records"
  fi
  [ -z "$left" ] && pass "down -v: no container, network, volume, image or build cache of this run is left" \
    || fail "left behind: $left"
fi

echo
echo "compose-e2e: $summary; total $SECONDS s"
finish
