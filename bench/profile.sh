#!/usr/bin/env bash
# Profile trafficgen against nginx at 10 000 req/s and at a high rate
# (PROFILE_CEIL_RATE, default 40 000; or the ceiling, when run as part of
# bench/run.sh with FIGURES including both `ceiling` and `profile`).
#
#   bench/profile.sh          # writes bench/out/profile/PROFILE.md and the perf reports
#
# Uses a separate build with symbols and frame pointers (the release profile
# strips symbols), in target/profiling; PROFILE_BIN uses a given binary.
# perf samples with the software cpu-clock event, so it works where hardware
# counters are not available; without perf it falls back to callgrind.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export OUT_DIR=${OUT_DIR:-$HERE/out/profile}
mkdir -p "$OUT_DIR"

if [[ -z ${PROFILE_BIN:-} ]]; then
    if [[ ${SKIP_INSTALL:-0} != 1 ]] && ! command -v perf >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null 2>&1 \
            || echo "[profile.sh] linux-perf not installable; callgrind fallback" >&2
    fi
    dir=${PROFILE_TARGET_DIR:-$ROOT/target/profiling}
    echo "[profile.sh] building a symbolized trafficgen in $dir" >&2
    (cd "$ROOT" && CARGO_TARGET_DIR=$dir CARGO_PROFILE_RELEASE_STRIP=none \
        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
        cargo build --release)
    PROFILE_BIN=$dir/release/trafficgen
fi

FIGURES=${FIGURES:-profile} TRAFFICGEN_BIN=$PROFILE_BIN SKIP_INSTALL=1 RESULTS_MD=$OUT_DIR/PROFILE.md \
    "$HERE/run.sh"
