#!/usr/bin/env bash
# The control panel (GET /) in a real browser: Debian's headless Chromium
# driven by Selenium (ci/panel_checks.py) against the given binary and its
# demo target, all on 127.0.0.1. Saves screenshots (desktop and phone) in
# target/panel-screenshots/.
#
# Installs chromium and chromium-driver with apt and Selenium, pinned, into
# a private virtualenv; idempotent (installs only what is missing). With
# CI=true a failed install fails the run; elsewhere it is reported and the
# checks are skipped (exit 0), so a machine without apt can still run the rest.
#
# PANEL_JOBS=0 skips the checks that need the jobs API (POST /jobs, /events,
# /presets, /logs, ramps); the default runs them all. PANEL_HEAP_SECS (120)
# is how long the page is left open for the heap check.
#
# Usage: ci/panel-checks.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${1:?usage: ci/panel-checks.sh BINARY}"
venv="${TRAFFICGEN_PANEL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/trafficgen/panel-checks-venv}"
pip_pkgs=(selenium==4.51.0)

install_failed() {
  if [ "${CI:-}" = "true" ]; then
    echo "panel checks: $1 (CI=true: failing)" >&2
    exit 1
  fi
  echo "panel checks skipped: $1" >&2
  exit 0
}

apt_pkgs=()
command -v chromium >/dev/null 2>&1 || apt_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || apt_pkgs+=(chromium-driver)
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
  echo "installing with apt: ${apt_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq || install_failed "apt-get update failed"
  timeout 900 apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null \
    || install_failed "apt-get install ${apt_pkgs[*]} failed"
fi
stamp="$venv/.trafficgen-requirements"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pip_pkgs[*]}" ]; then
  echo "installing into $venv: ${pip_pkgs[*]}" >&2
  timeout 120 python3 -m venv "$venv" || install_failed "python3 -m venv failed"
  timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "${pip_pkgs[@]}" \
    || install_failed "pip install ${pip_pkgs[*]} failed"
  echo "${pip_pkgs[*]}" >"$stamp"
fi
echo "panel checks with $(chromium --version 2>/dev/null | head -1), $(chromedriver --version | head -1)" >&2

# Bounded: the heap check leaves the page open PANEL_HEAP_SECS (120 s) and
# the rest takes about a minute.
timeout 420 "$venv/bin/python" ci/panel_checks.py "$bin"
