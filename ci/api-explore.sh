#!/usr/bin/env bash
# Wider Schemathesis exploration of the control API, under a fresh seed and
# for longer than the gating run: NOT part of .ci/run, so a new find never
# fails a submission by the luck of a draw. Run it by hand (or on a
# schedule) now and then:
#
#   cargo build && ci/api-explore.sh target/debug/trafficgen [SECONDS]
#
# SECONDS (default 600) bounds each of the two runs (without and with a
# token); SCHEMATHESIS_SEED reruns a draw (the seed used is printed first).
# Finds are kept under target/api-explore/ (SCHEMATHESIS_FINDS): the
# Hypothesis example database, and JUnit and VCR reports with each failing
# request. A find is fixed in the code, then kept as a line of
# ci/api-cases.tsv (and a black-box test in tests/api/ where it says more),
# which the gating run, ci/api-checks.sh, sends every time from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:?usage: ci/api-explore.sh BINARY [SECONDS]}"
export SCHEMATHESIS_EXPLORE=1
export SCHEMATHESIS_SECS="${2:-600}"
export SCHEMATHESIS_SEED="${SCHEMATHESIS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
export SCHEMATHESIS_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-1000}"
echo "api-explore: seed $SCHEMATHESIS_SEED (SCHEMATHESIS_SEED=$SCHEMATHESIS_SEED reruns this draw)" >&2
exec bash ci/api-checks.sh "$bin"
