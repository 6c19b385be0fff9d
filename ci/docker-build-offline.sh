#!/usr/bin/env bash
# Build the trafficgen image offline from a static binary built on the host.
#
#   ci/docker-build-offline.sh BINARY_PATH [IMAGE_TAG]     (default trafficgen:local)
#
# Uses the root Dockerfile with TRAFFICGEN_BINARY_SOURCE=prebuilt: its
# `runtime` stage (the one users get) takes the binary from the `prebuilt`
# stage instead of compiling it in a Rust image, so nothing is pulled.
# The context sent is small and prepared here: the Dockerfile, Cargo.toml
# and the binary at target/x86_64-unknown-linux-gnu/release/trafficgen.
#
# BuildKit is needed (the legacy builder would pull the Rust image of the
# stage it skips): `docker buildx` when the CLI has it, else the engine's
# BuildKit through its API (ci/docker_api_build.py).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

binary="${1:?usage: $0 BINARY_PATH [IMAGE_TAG]}"
tag="${2:-trafficgen:local}"

[ -f "$binary" ] || { echo "docker-build-offline: no binary at $binary" >&2; exit 1; }
if ! file -b "$binary" | grep -Eq 'static(-pie)? linked|statically linked'; then
  echo "docker-build-offline: $binary is not statically linked ($(file -b "$binary" | cut -c1-120))." >&2
  echo "  build it with: RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target x86_64-unknown-linux-gnu" >&2
  exit 1
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/trafficgen-image-ctx.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
cp "$root/Dockerfile" "$root/Cargo.toml" "$ctx/"
mkdir -p "$ctx/target/x86_64-unknown-linux-gnu/release"
install -m 0755 "$binary" "$ctx/target/x86_64-unknown-linux-gnu/release/trafficgen"

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
revision="$(git -C "$root" rev-parse --verify -q HEAD 2>/dev/null || echo unknown)"
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

build_args=(
  --build-arg TRAFFICGEN_BINARY_SOURCE=prebuilt
  --build-arg "VERSION=${version:-unknown}"
  --build-arg "REVISION=$revision"
  --build-arg "CREATED=$created"
)

if docker buildx version >/dev/null 2>&1; then
  echo "docker-build-offline: docker buildx build --target runtime -t $tag"
  timeout 600 docker buildx build --load --target runtime "${build_args[@]}" -t "$tag" "$ctx"
else
  echo "docker-build-offline: no buildx plugin; BuildKit through the engine API -t $tag"
  timeout 600 python3 "$here/docker_api_build.py" --context "$ctx" --tag "$tag" \
    --target runtime "${build_args[@]}"
fi
docker image inspect "$tag" >/dev/null
