#!/usr/bin/env bash
# Installs the real servers and tools the black-box tests run on 127.0.0.1
# (tests/api/real_servers.rs, tls.rs, dns.rs, openapi_derive.rs): nginx from
# Debian, strace, and uvicorn and FastAPI (with python-multipart, which its
# form login needs) from PyPI in a private virtualenv. Idempotent: installs only
# what is missing. Prints the directory to put first on PATH (the
# virtualenv's bin) as its only line on stdout; everything else goes to
# stderr.
set -euo pipefail

venv="${TRAFFICGEN_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/trafficgen/test-servers-venv}"
pip_pkgs=(uvicorn==0.54.0 fastapi==0.163.2 python-multipart==0.0.34)

{
  apt_pkgs=()
  command -v nginx >/dev/null 2>&1 || apt_pkgs+=(nginx-light)
  command -v strace >/dev/null 2>&1 || apt_pkgs+=(strace)
  command -v unshare >/dev/null 2>&1 || apt_pkgs+=(util-linux)
  if [ "${#apt_pkgs[@]}" -gt 0 ]; then
    echo "installing with apt: ${apt_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  fi
  stamp="$venv/.trafficgen-requirements"
  if [ ! -x "$venv/bin/uvicorn" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pip_pkgs[*]}" ]; then
    echo "installing into $venv: ${pip_pkgs[*]}"
    timeout 120 python3 -m venv "$venv"
    timeout 600 "$venv/bin/pip" install -q --disable-pip-version-check "${pip_pkgs[@]}"
    echo "${pip_pkgs[*]}" >"$stamp"
  fi
  echo "test servers: $(nginx -v 2>&1), $("$venv/bin/uvicorn" --version), $(strace -V | head -1)"
} >&2

echo "$venv/bin"
