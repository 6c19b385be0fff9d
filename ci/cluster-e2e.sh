#!/usr/bin/env bash
# End-to-end test of replicas (PEERS) with Compose, for real, offline.
#
#   ci/cluster-e2e.sh BINARY_PATH
#
# BINARY_PATH: a static trafficgen binary (see ci/compose-e2e.sh).
#
# 1. builds the image offline (ci/docker-build-offline.sh), noting the
#    build-cache records the build made;
# 2. `docker-compose up --scale traffic-generator=3` of
#    compose/docker-compose.yml under a unique project name, the three
#    control ports on a range of 127.0.0.1 (TRAFFICGEN_PORT=a-b, as docs/replicas.md
#    says), until every replica counts three;
# 3. the demo target sees 30/s within 3 % (STEADY_RPS=30, split three ways);
# 4. one POST /mode/custom {"rps": 300} to one replica switches all three
#    within a second, pushed to them (their logs say source=peer), and the
#    demo target sees 300/s within 3 %;
# 5. `docker kill` of one replica: the other two split the rate within
#    10 s and the target sees 300/s within 3 % again;
# 6. `docker start` of it: it catches up (same plan version), the three
#    split three ways again, 300/s within 3 %;
# 7. prints the rate the target saw, second by second, across the kill and
#    the restart;
# 8. one POST /jobs (normal, 6 s, 60 req/s) to one replica: every
#    replica's /status shows the job within 2 s, the demo target sees
#    60/s within 10 % (3 s window), and after it every replica is back at
#    custom 300/s;
# 9. one PUT /workload to one replica: every replica's GET /workload shows
#    it within 3 s, and the target then sees only its request;
# 10. removes what it created, by the names and ids it recorded: the
#    project's containers and network (`down -v`), its image, its
#    build-cache records; and checks that none is left.
#
# Environment (optional): E2E_KEEP=1 keeps the stack up.
# With CI=true (as .ci/run sets it) a step that cannot run is a failure.

# `cond && pass ... || fail ...` is safe here: pass always returns 0.
# Functions called from traps look unreachable to shellcheck.
# shellcheck disable=SC2015,SC2317
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root" || exit 1

binary="${1:?usage: $0 BINARY_PATH}"
suffix="$$-$(date +%s)"
project="tgcluster-$suffix"
image="trafficgen-e2e/trafficgen-cluster:$suffix"
compose_file="compose/docker-compose.yml"
work="$(mktemp -d "${TMPDIR:-/tmp}/trafficgen-cluster-e2e.XXXXXX")"
replicas=3

# free_ports N: N consecutive free ports on 127.0.0.1, as "first-last".
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 30000 - n)
    socks = []
    try:
        for port in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", port))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(f"{base}-{base + n - 1}")
    sys.exit(0)
sys.exit("no free port range")
EOF
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

export TRAFFICGEN_IMAGE="$image"
export PUBLISH_ADDR=127.0.0.1
TRAFFICGEN_PORT="$(free_ports "$replicas")" || { echo "cluster-e2e: no free port range"; exit 1; }
export TRAFFICGEN_PORT
DEMO_TARGET_PORT="$(free_port)"
export DEMO_TARGET_PORT
# Fixed here, whatever the caller's environment holds.
unset TARGET_URL INITIAL_MODE OVERLOAD_RPS BURST_RPS MAX_RPS PROMETHEUS_IMAGE GRAFANA_IMAGE
export WARMUP_SECS=2 STEADY_RPS=30 LOG_FORMAT=json RUST_LOG=info PEERS=dns:traffic-generator:8089
# The secret the replicas prove to each other they share: fresh each run.
CLUSTER_SECRET="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
export CLUSTER_SECRET

dc() { timeout 180 docker-compose -p "$project" -f "$compose_file" "$@"; }

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$1"); printf 'FAIL  %s\n' "$*"; }
info() { printf '      %s\n' "$*"; }
is_count() { case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac; }

cache_records=()
sampler_pid=""
cleanup_done=0
cleanup() {
  [ "$cleanup_done" = 1 ] && return
  cleanup_done=1
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "E2E_KEEP=1: leaving project $project up (docker-compose -p $project -f $compose_file down -v)"
    return
  fi
  dc down -v --remove-orphans -t 5 >/dev/null 2>&1
  docker rmi -f "$image" >/dev/null 2>&1
  if [ "${#cache_records[@]}" -gt 0 ]; then
    timeout 120 python3 "$here/docker_api_build.py" --prune-ids "${cache_records[@]}" >"$work/cache-left.txt" 2>&1
  fi
}
trap cleanup EXIT
trap 'echo "cluster-e2e: interrupted"; exit 130' INT TERM

finish() {
  echo
  [ "$failed" -gt 0 ] && echo "cluster-e2e: failed: ${failures[*]}"
  echo "cluster-e2e: $passed passed, $failed failed"
  rm -rf "$work"
  [ "$failed" -eq 0 ]
  exit $?
}
show_logs() {
  echo "---- docker-compose logs (last 20 lines per container)"
  dc logs --no-color --tail=20 2>&1 | sed 's/^/      /'
}
abort() { fail "$@"; show_logs; cleanup; finish; }

# --------------------------------------------------------------- tools
need_apt=()
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
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
echo "cluster-e2e: project $project, image $image, replicas on 127.0.0.1:$TRAFFICGEN_PORT, demo target on 127.0.0.1:$DEMO_TARGET_PORT"

# --------------------------------------------------------------- image
records_before="$work/records-before.txt"
timeout 60 python3 "$here/docker_api_build.py" --record-ids >"$records_before" 2>&1 \
  || abort "cannot list the build cache (ci/docker_api_build.py --record-ids)"
t=$SECONDS
if bash "$here/docker-build-offline.sh" "$binary" "$image" >"$work/build.log" 2>&1; then
  pass "image built offline from $binary in $((SECONDS - t)) s"
else
  sed 's/^/      /' "$work/build.log"
  abort "offline image build"
fi
# The records this build made: cleaned up by id at the end, nobody else's.
mapfile -t cache_records < <(timeout 60 python3 "$here/docker_api_build.py" --record-ids | grep -vxF -f "$records_before")

# --------------------------------------------------- up with three replicas
if dc up -d --no-build --scale traffic-generator="$replicas" >"$work/up.log" 2>&1; then
  pass "docker-compose up -d --scale traffic-generator=$replicas (control ports in 127.0.0.1:$TRAFFICGEN_PORT)"
else
  sed 's/^/      /' "$work/up.log"
  abort "docker-compose up --scale traffic-generator=$replicas"
fi

# replica_port I: the host port of replica I (1-based), empty if none.
replica_port() { dc port --index="$1" traffic-generator 8089 2>/dev/null | sed -n 's/.*:\([0-9][0-9]*\)$/\1/p' | head -n1; }
replica_cid() { docker ps -aq --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.service=traffic-generator" --filter "label=com.docker.compose.container-number=$1"; }
status_of() { curl -sf --max-time 3 "http://127.0.0.1:$1/status"; }
ports=()
for i in $(seq 1 "$replicas"); do ports+=("$(replica_port "$i")"); done
[ "${#ports[@]}" = "$replicas" ] && is_count "${ports[0]}" && is_count "${ports[1]}" && is_count "${ports[2]}" \
  && pass "each replica has its own host port: ${ports[*]}" || abort "replica ports: '${ports[*]}'"

# split_is N PORT...: every replica at these ports counts N members and
# their shares are 0..N-1.
split_is() {
  local n="$1" port out indexes=""
  shift
  for port in "$@"; do
    out="$(status_of "$port")" || return 1
    [ "$(echo "$out" | jq -r '.cluster.share.count')" = "$n" ] || return 1
    indexes+="$(echo "$out" | jq -r '.cluster.share.index') "
  done
  [ "$(echo "$indexes" | tr ' ' '\n' | grep -v '^$' | sort -n | tr '\n' ' ')" = "$(seq 0 $((n - 1)) | tr '\n' ' ')" ]
}
# wait_split N SECONDS PORT...: prints the seconds it took; fails on timeout.
wait_split() {
  local n="$1" limit="$2" t0
  shift 2
  t0="$(date +%s.%N)"
  while ! split_is "$n" "$@"; do
    awk -v a="$t0" -v b="$(date +%s.%N)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && return 1
    sleep 0.1
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
if took="$(wait_split 3 60 "${ports[@]}")"; then
  pass "the three replicas found each other and split the rate three ways ($took s after up)"
else
  for p in "${ports[@]}"; do info "$p: $(status_of "$p" | jq -c '.cluster | {share, members, unreachable, lookup}')"; done
  abort "no three-way split within 60 s"
fi

demo_total() {
  local scrape
  scrape="$(curl -sf --max-time 3 "http://127.0.0.1:$DEMO_TARGET_PORT/metrics")" || return 1
  echo "$scrape" | grep -q '^# TYPE demo_target_requests_total counter' || return 1
  echo "$scrape" | awk '/^demo_target_requests_total[{ ]/ { s += $NF } END { printf "%d\n", s }'
}
# rate_over SECONDS: requests/s the demo target answered, by its counter and the clock.
rate_over() {
  local a b t0 t1
  a="$(demo_total)" && is_count "$a" || return 1
  t0="$(date +%s.%N)"
  sleep "$1"
  b="$(demo_total)" && is_count "$b" || return 1
  t1="$(date +%s.%N)"
  awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", (b - a) / (t1 - t0) }'
}
# check_rate NAME WANT: the target's rate over 10 s within 3 % of WANT.
check_rate() {
  local got
  got="$(rate_over 10)" || { fail "$1: the demo target cannot be scraped"; return; }
  if awk -v g="$got" -v w="$2" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= 0.03 * w) }'; then
    pass "$1: the demo target sees $got/s (want $2 within 3 %)"
  else
    fail "$1: the demo target sees $got/s (want $2 within 3 %)"
    for p in "${ports[@]}"; do info "$p: $(status_of "$p" | jq -c '{mode, rps, achieved_rps, share: .cluster.share, dropped: .stats.dropped, failed: .stats.failed}')"; done
  fi
}

sleep 3
check_rate "steady, 3 replicas" 30

# ------------------------------------------------ one POST switches all three
t0="$(date +%s.%N)"
resp="$(curl -s --max-time 5 -X POST -w '\n%{http_code}' "http://127.0.0.1:${ports[1]}/mode/custom" -d '{"rps": 300}')"
[ "$(echo "$resp" | tail -n1)" = 200 ] || fail "POST /mode/custom to replica 2 -> $resp"
switched=""
while awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { exit !(b - a < 5) }'; do
  versions=""
  all=1
  for p in "${ports[@]}"; do
    out="$(status_of "$p")" || { all=0; break; }
    [ "$(echo "$out" | jq -r '.rps')" = 300 ] || { all=0; break; }
    versions+="$(echo "$out" | jq -c '.cluster.versions') "
  done
  if [ "$all" = 1 ] && [ "$(echo "$versions" | tr ' ' '\n' | grep -v '^$' | sort -u | wc -l)" = 1 ]; then
    switched="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')"
    break
  fi
done
if [ -n "$switched" ]; then
  pass "one POST to replica 2: all three report 300/s and the same plan version $switched s later (polled with curl)"
else
  fail "one POST did not switch all three within 5 s"
fi
# How long the switch took, by the replicas' own log lines (one host
# clock, milliseconds): from replica 2 applying it to the last of the
# others applying it, pushed to them (source=peer), not fetched later.
applied_ms() {  # applied_ms CONTAINER SOURCE: when it applied the 300/s plan, ms since the epoch
  docker logs "$1" 2>&1 | jq -r --arg source "$2" '
    select(.source? == $source and .rps? == 300 and (.message? // "" | test("plan version")))
    | (.timestamp | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601) * 1000
      + (.timestamp | capture("\\.(?<ms>[0-9]+)Z$").ms | tonumber)' 2>/dev/null | head -n1
}
local_ms="$(applied_ms "$(replica_cid 2)" local)"
peer_ms=()
for i in 1 3; do peer_ms+=("$(applied_ms "$(replica_cid "$i")" peer)"); done
if is_count "$local_ms" && is_count "${peer_ms[0]}" && is_count "${peer_ms[1]}"; then
  spread="$(printf '%s\n' "${peer_ms[@]}" | awk -v l="$local_ms" '{ d = $1 - l; if (d > m) m = d } END { print m + 0 }')"
  if [ "$spread" -lt 1000 ]; then
    pass "all three switched within $spread ms of the POST's replica (their logs: replicas 1 and 3 applied it as a peer's fan-out)"
  else
    fail "the switch reached the last replica $spread ms after the first (want under 1 s)"
  fi
else
  fail "the change was not pushed to both other replicas (applied at: replica 2 '$local_ms', peers '${peer_ms[*]}'; want source=peer log lines)"
fi
sleep 2
check_rate "custom 300/s, 3 replicas" 300

# ------------------------------------------------ kill one, restart it
# A sampler of the target's counter, once a second, for the table below.
( while true; do printf '%s %s\n' "$(date +%s.%N)" "$(demo_total || echo -)"; sleep 1; done ) >"$work/samples.txt" 2>/dev/null &
sampler_pid=$!
sleep 3
victim="$(replica_cid 3)"
t_kill="$(date +%s.%N)"
if timeout 30 docker kill "$victim" >/dev/null 2>&1; then
  pass "docker kill replica 3 ($(echo "$victim" | cut -c1-12))"
else
  fail "docker kill replica 3"
fi
if took="$(wait_split 2 10 "${ports[0]}" "${ports[1]}")"; then
  pass "the other two split the rate two ways $took s after the kill (want within 10 s)"
else
  fail "no two-way split within 10 s of the kill"
  for p in "${ports[0]}" "${ports[1]}"; do info "$p: $(status_of "$p" | jq -c '.cluster | {share, members, unreachable}')"; done
fi
sleep 2
check_rate "after the kill, 2 replicas" 300

t_start="$(date +%s.%N)"
if timeout 30 docker start "$victim" >/dev/null 2>&1; then
  pass "docker start replica 3"
else
  fail "docker start replica 3"
fi
port3=""
for _ in $(seq 1 50); do port3="$(replica_port 3)"; is_count "$port3" && break; sleep 0.2; done
ports[2]="$port3"
if took="$(wait_split 3 20 "${ports[@]}")"; then
  pass "restarted, it rejoined: three-way split again $took s after docker start"
else
  fail "no three-way split within 20 s of the restart"
  for p in "${ports[@]}"; do info "$p: $(status_of "$p" | jq -c '.cluster | {share, members, unreachable}')"; done
fi
v1="$(status_of "${ports[0]}" | jq -c '.cluster.versions')"
v3="$(status_of "${ports[2]}" | jq -c '{rps, versions: .cluster.versions}')"
[ "$(echo "$v3" | jq -c '.versions')" = "$v1" ] && [ "$(echo "$v3" | jq -r '.rps')" = 300 ] \
  && pass "the restarted replica caught up: 300/s, plan version $(echo "$v1" | jq -r '.plan.clock')" \
  || fail "the restarted replica did not catch up: $v3, the others $v1"
sleep 2
check_rate "after the restart, 3 replicas" 300
sleep 2
kill "$sampler_pid" 2>/dev/null
wait "$sampler_pid" 2>/dev/null
sampler_pid=""

echo
echo "Rate at the demo target, second by second (custom 300/s; kill and start of replica 3):"
awk -v kill="$t_kill" -v start="$t_start" '
  $2 == "-" { next }
  NR > 1 && pt != "" {
    t = $1 - kill; event = ""
    if (pt < kill && $1 >= kill) event = "<- docker kill replica 3"
    if (pt < start && $1 >= start) event = "<- docker start replica 3"
    printf "  %6.1f s  %6.1f/s  %s\n", t, ($2 - pn) / ($1 - pt), event
  }
  { pt = $1; pn = $2 }' "$work/samples.txt"
echo

# ------------------------------------------------ a job on one runs on all
# all_within SECONDS JQ_FILTER: every replica's /status passes the filter
# within SECONDS; prints the seconds it took.
all_within() {
  local limit="$1" filter="$2" t0 p ok
  t0="$(date +%s.%N)"
  while true; do
    ok=1
    for p in "${ports[@]}"; do
      status_of "$p" | jq -e "$filter" >/dev/null 2>&1 || { ok=0; break; }
    done
    [ "$ok" = 1 ] && break
    awk -v a="$t0" -v b="$(date +%s.%N)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && return 1
    sleep 0.1
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
resp="$(curl -s --max-time 5 -X POST -w '\n%{http_code}' "http://127.0.0.1:${ports[0]}/jobs" \
  -d '{"scenario": "normal", "duration_secs": 6, "max_rps": 60}')"
job_id="$(echo "$resp" | sed '$d' | jq -r '.job_id // empty' 2>/dev/null)"
if [ "$(echo "$resp" | tail -n1)" = 201 ] && [ -n "$job_id" ]; then
  pass "POST /jobs to replica 1: job $job_id (normal, 6 s, 60 req/s)"
  if took="$(all_within 2 ".job.job_id == \"$job_id\"")"; then
    pass "every replica's /status shows job $job_id within $took s"
  else
    fail "not every replica shows job $job_id within 2 s"
    for p in "${ports[@]}"; do info "$p: $(status_of "$p" | jq -c '{mode, rps, job: .job.job_id}')"; done
  fi
  sleep 1
  got="$(rate_over 3)" || got=""
  if [ -n "$got" ] && awk -v g="$got" 'BEGIN { d = g - 60; if (d < 0) d = -d; exit !(d <= 6) }'; then
    pass "during the job the demo target sees $got/s (want 60 within 10 %, 3 s window)"
  else
    fail "during the job the demo target sees '$got'/s (want 60 within 10 %)"
  fi
  if took="$(all_within 8 '.job == null and .mode == "custom" and .rps == 300')"; then
    pass "after the job every replica is back at custom 300/s, the mode before ($took s after the rate check)"
  else
    fail "not every replica is back at custom 300/s after the job"
    for p in "${ports[@]}"; do info "$p: $(status_of "$p" | jq -c '{mode, rps, job: .job.job_id}')"; done
  fi
else
  fail "POST /jobs to replica 1 -> $resp"
fi

# -------------------------------------- a workload PUT on one runs on all
# demo_routes: "route count" per route the demo target counted.
demo_routes() {
  curl -sf --max-time 3 "http://127.0.0.1:$DEMO_TARGET_PORT/metrics" \
    | awk '/^demo_target_requests_total[{]/ { match($0, /route="[^"]*"/); r = substr($0, RSTART + 7, RLENGTH - 8); s[r] += $NF }
           END { for (r in s) printf "%s %d\n", r, s[r] }' | sort
}
workload='requests:
  - {name: orders_only, weight: 1, method: GET, path: /orders}
'
resp="$(curl -s --max-time 5 -X PUT -w '\n%{http_code}' "http://127.0.0.1:${ports[1]}/workload" --data-binary "$workload")"
if [ "$(echo "$resp" | tail -n1)" = 200 ]; then
  t0="$(date +%s.%N)"
  shown=""
  while awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { exit !(b - a < 3) }'; do
    n=0
    for p in "${ports[@]}"; do
      [ "$(curl -sf --max-time 3 "http://127.0.0.1:$p/workload" | jq -r '.mix')" = "orders_only=1" ] && n=$((n + 1))
    done
    if [ "$n" = "$replicas" ]; then
      shown="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
      break
    fi
    sleep 0.1
  done
  if [ -n "$shown" ]; then
    pass "PUT /workload to replica 2: every replica's GET /workload shows it $shown s later"
  else
    fail "PUT /workload to replica 2 did not reach every replica within 3 s"
    for p in "${ports[@]}"; do info "$p: $(curl -sf --max-time 3 "http://127.0.0.1:$p/workload" | jq -c '{source, mix}')"; done
  fi
  sleep 1
  before="$(demo_routes)"
  sleep 2
  after="$(demo_routes)"
  grown="$(join -a 2 <(echo "$before") <(echo "$after") | awk 'NF == 3 && $3 > $2 { print $1 } NF == 2 && $2 > 0 { print $1 }' | tr '\n' ' ')"
  [ "$grown" = "list_orders " ] && pass "the demo target then sees only the new workload's request (list_orders)" \
    || fail "after the workload swap the demo target's counts grew for: '$grown' (want list_orders alone)"
else
  fail "PUT /workload to replica 2 -> $resp"
fi

# ---------------------------------------------------------------- clean up
cleanup
if [ "${E2E_KEEP:-0}" != 1 ]; then
  left=""
  left+="$(docker ps -aq --filter "label=com.docker.compose.project=$project")"
  left+="$(docker network ls -q --filter "label=com.docker.compose.project=$project")"
  left+="$(docker volume ls -q --filter "label=com.docker.compose.project=$project")"
  left+="$(docker images -q "$image")"
  if [ -s "$work/cache-left.txt" ]; then left+=" build-cache records: $(tr '\n' ' ' <"$work/cache-left.txt")"; fi
  [ -z "$left" ] && pass "down -v: none of this run's containers, network, image or ${#cache_records[@]} build-cache records is left" \
    || fail "left behind: $left"
fi
echo
echo "cluster-e2e: total $SECONDS s"
finish
