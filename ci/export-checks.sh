#!/usr/bin/env bash
# Proves `trafficgen export` with the real tools PyPI has (ci/export_checks.py):
# Locust runs the exported Locust files headless against the demo target on
# 127.0.0.1 (journeys included), and against a timing server of its own to
# measure how evenly its arrivals are spread; esprima parses the k6 scripts
# and PyYAML the Artillery files, and their stages, thresholds, captures and
# journey flows are checked. k6 and Artillery themselves cannot run here (no
# registry of this machine has them).
#
# Installs Locust, esprima and PyYAML, pinned, into a private virtualenv;
# idempotent (installs only when missing or the pins changed). Takes a few
# seconds once installed.
#
# Usage: ci/export-checks.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:?usage: ci/export-checks.sh BINARY}"
venv="${TRAFFICGEN_EXPORT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/trafficgen/export-checks-venv}"
pip_pkgs=(locust==2.47.0 esprima==4.0.1 PyYAML==6.0.3)

stamp="$venv/.trafficgen-requirements"
if [ ! -x "$venv/bin/locust" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pip_pkgs[*]}" ]; then
  echo "installing into $venv: ${pip_pkgs[*]}" >&2
  timeout 120 python3 -m venv "$venv"
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "${pip_pkgs[@]}"
  echo "${pip_pkgs[*]}" >"$stamp"
fi

PATH="$venv/bin:$PATH" timeout 300 "$venv/bin/python" ci/export_checks.py "$bin"
