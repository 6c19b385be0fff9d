#!/usr/bin/env bash
# trafficgen benchmark: accuracy, cost, ceiling, mode switch and idle cost,
# against nginx (and the built-in demo target), next to wrk, oha, hey and
# Locust. Not part of the test suite. Writes bench/RESULTS.md.
#
#   bench/run.sh                      # full run (about 15 minutes, plus installs)
#   REPEATS=1 SECS=3 LOW_SECS=10 IDLE_SECS=10 bench/run.sh   # quick pass
#
# Environment (see bench/bench.py for the measurement settings):
#   TRAFFICGEN_BIN   use this binary instead of building (`cargo build --release`)
#   SKIP_INSTALL=1   do not install anything (missing peers are skipped)
#   OUT_DIR          raw results and logs (bench/out)
#   RESULTS_MD       the report (bench/RESULTS.md)
#   BENCH_NOTE       one line printed at the top of the report (e.g. "noisy machine")
#
# Safety: traffic goes to 127.0.0.1 only; every process is started under
# `timeout` and stopped by its PID; nothing is killed by name.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export OUT_DIR=${OUT_DIR:-$HERE/out}
RESULTS_MD=${RESULTS_MD:-$HERE/RESULTS.md}
mkdir -p "$OUT_DIR"

say() { printf '[run.sh] %s\n' "$*" >&2; }

# ------------------------------------------------------------- cleanup
export BENCH_PIDFILE="$OUT_DIR/pids"
: >"$BENCH_PIDFILE"
: >"$BENCH_PIDFILE.dirs"
DRIVER_PID=""
cleanup() {
    local rc=$?
    set +e  # clean up as much as possible, whatever fails
    if [[ -n $DRIVER_PID ]] && kill -0 "$DRIVER_PID" 2>/dev/null; then
        kill -TERM "$DRIVER_PID" 2>/dev/null || true
        wait "$DRIVER_PID" 2>/dev/null || true
    fi
    # Anything the driver started and left behind: by PID, and only if that
    # PID is still the very process it started (same start time: PIDs are
    # reused, and other people's processes run on this machine).
    if [[ -s $BENCH_PIDFILE ]]; then
        local pid start now
        while read -r pid start; do
            [[ -n $pid && -n $start && -r /proc/$pid/stat ]] || continue
            now=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20)
            if [[ $now == "$start" ]]; then kill -TERM "$pid" 2>/dev/null; fi
        done <"$BENCH_PIDFILE"
    fi
    if [[ -s $BENCH_PIDFILE.dirs ]]; then
        local dir
        while read -r dir; do
            if [[ $dir == /tmp/tg-bench-nginx-* || $dir == "${TMPDIR:-/tmp}"/tg-bench-nginx-* ]]; then
                rm -rf -- "$dir"
            fi
        done <"$BENCH_PIDFILE.dirs"
    fi
    if [[ $rc != 0 ]]; then say "stopped (exit $rc); processes cleaned up"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------- install
NOTES="$OUT_DIR/install-notes.txt"
: >"$NOTES"
note() { say "$*"; printf '%s\n' "$*" >>"$NOTES"; }

SUDO=""
[[ $(id -u) == 0 ]] || SUDO=sudo
apt_updated=0
apt_install() { # apt_install PACKAGE... (each tried alone, failures noted)
    local p
    command -v apt-get >/dev/null || { note "no apt-get: install $* yourself"; return 0; }
    for p in "$@"; do
        if [[ $apt_updated == 0 ]]; then
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
            apt_updated=1
        fi
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null \
            || note "apt: could not install $p"
    done
}

find_oha() {
    if command -v oha >/dev/null; then command -v oha
    elif [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/oha ]]; then echo "${CARGO_HOME:-$HOME/.cargo}/bin/oha"
    fi
}

if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
    command -v nginx >/dev/null || apt_install nginx-light
    command -v openssl >/dev/null || apt_install openssl
    command -v wrk >/dev/null || apt_install wrk
    command -v hey >/dev/null || apt_install hey
    command -v taskset >/dev/null || apt_install util-linux
    command -v timeout >/dev/null || apt_install coreutils
    if [[ -z $(find_oha) ]]; then
        say "installing oha with cargo (several minutes)"
        timeout 1800 cargo install oha --locked >"$OUT_DIR/oha-install.log" 2>&1 \
            || note "oha: cargo install failed (see $OUT_DIR/oha-install.log); skipped"
    fi
    if ! python3 -c 'import locust' 2>/dev/null && ! "$OUT_DIR/venv/bin/python3" -c 'import locust' 2>/dev/null; then
        say "installing locust with pip"
        # Debian's own python3 refuses system-wide pip installs (PEP 668):
        # fall back to a virtualenv under OUT_DIR.
        if ! timeout 900 python3 -m pip install -q locust >"$OUT_DIR/locust-install.log" 2>&1; then
            { command -v python3 >/dev/null && python3 -c 'import venv' 2>/dev/null; } || apt_install python3-venv
            { timeout 60 python3 -m venv "$OUT_DIR/venv" \
                && timeout 900 "$OUT_DIR/venv/bin/python3" -m pip install -q locust; } >>"$OUT_DIR/locust-install.log" 2>&1 \
                || note "locust: pip install failed (see $OUT_DIR/locust-install.log); skipped"
        fi
    fi
fi
for tool in nginx taskset timeout python3; do
    command -v "$tool" >/dev/null || { say "missing $tool; cannot run"; exit 1; }
done
OHA_BIN=$(find_oha || true)
export OHA_BIN
if [[ -z ${LOCUST_PYTHON:-} ]]; then
    if python3 -c 'import locust' 2>/dev/null; then LOCUST_PYTHON=$(python3 -c 'import sys; print(sys.executable)')
    elif "$OUT_DIR/venv/bin/python3" -c 'import locust' 2>/dev/null; then LOCUST_PYTHON=$OUT_DIR/venv/bin/python3
    fi
fi
export LOCUST_PYTHON=${LOCUST_PYTHON:-}

# ------------------------------------------------------------- build
if [[ -n ${TRAFFICGEN_BIN:-} ]]; then
    TG_BIN=$(readlink -f "$TRAFFICGEN_BIN")
else
    say "building trafficgen (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
    TG_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/trafficgen"
    [[ $TG_BIN == /* ]] || TG_BIN="$ROOT/$TG_BIN"
fi
[[ -x $TG_BIN ]] || { say "no trafficgen binary at $TG_BIN"; exit 1; }
export TG_BIN

# ------------------------------------------------------------- measure
say "measuring with $TG_BIN (logs in $OUT_DIR/logs)"
python3 "$HERE/bench.py" &
DRIVER_PID=$!
wait "$DRIVER_PID"
DRIVER_PID=""

python3 "$HERE/report.py" "$OUT_DIR/results.json" >"$RESULTS_MD.tmp"
mv "$RESULTS_MD.tmp" "$RESULTS_MD"
say "wrote $RESULTS_MD"
