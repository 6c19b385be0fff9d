#!/usr/bin/env bash
# Build a Prometheus image offline from Debian's package, for the compose
# `monitoring` profile in CI (the machine cannot pull prom/prometheus):
#
#   ci/build-prometheus-image.sh [IMAGE_TAG]        (default trafficgen-ci/prometheus:local)
#
# Installs the `prometheus` package when missing (its service is not started).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="${1:-trafficgen-ci/prometheus:local}"

if ! command -v prometheus >/dev/null 2>&1; then
  echo "build-prometheus-image: installing Debian's prometheus package"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq
  timeout 600 apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
bin="$(command -v prometheus)"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/trafficgen-prom-ctx.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc/prometheus" "$ctx/data"
cp "$bin" "$ctx/rootfs/bin/prometheus"
# The dynamic loader and every library the binary needs, at the same paths.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
printf 'hosts: files dns\n' > "$ctx/rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' \
  > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$ctx/rootfs/etc/group"
cp /etc/prometheus/prometheus.yml "$ctx/rootfs/etc/prometheus/prometheus.yml" 2>/dev/null \
  || printf 'global: {}\n' > "$ctx/rootfs/etc/prometheus/prometheus.yml"
touch "$ctx/data/.keep"
cp "$here/prometheus.Dockerfile" "$ctx/Dockerfile"

# FROM scratch only: the legacy builder needs no pull and no buildx.
DOCKER_BUILDKIT=0 timeout 300 docker build -q -t "$tag" "$ctx" >/dev/null
echo "build-prometheus-image: built $tag ($("$bin" --version 2>&1 | head -n1))"
