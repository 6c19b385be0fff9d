# trafficgen container image: one static binary on `scratch`.
#
# Normal build (any machine that can pull images; BuildKit, i.e. Docker >= 23,
# `docker buildx build`, or Compose v2):
#
#   docker build -t trafficgen:local .
#
# Offline build (what CI does on a machine that can pull nothing): compile a
# static binary on the host, then select the `prebuilt` stage as the binary
# source. BuildKit skips the unused Rust stage, so nothing is pulled, and the
# image is produced by the very same `runtime` stage as the normal build:
#
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --target x86_64-unknown-linux-gnu
#   docker build --build-arg TRAFFICGEN_BINARY_SOURCE=prebuilt -t trafficgen:local .
#
# (ci/docker-build-offline.sh does the same through the engine's BuildKit API
# where the docker CLI has no buildx plugin.)
#
# The legacy builder (DOCKER_BUILDKIT=0, `docker-compose build` of v1) builds
# every stage before the target whether used or not: it produces the same image
# but needs to pull the Rust image even with TRAFFICGEN_BINARY_SOURCE=prebuilt.

# `build` (compile in a Rust image) or `prebuilt` (binary from the host).
ARG TRAFFICGEN_BINARY_SOURCE=build
ARG RUST_IMAGE=rust:1-bookworm

# ---------------------------------------------------------------------------
# prebuilt: a static binary compiled on the host (offline path).
# Cargo.toml is listed so that this stage also builds, empty, when there is no
# host binary (the legacy builder builds it even when it is not selected);
# `trafficge[n]` is a pattern that matches only the binary. .dockerignore lets
# only the default TRAFFICGEN_BINARY_DIR through from target/.
FROM scratch AS prebuilt
ARG TRAFFICGEN_BINARY_DIR=target/x86_64-unknown-linux-gnu/release
COPY Cargo.toml ${TRAFFICGEN_BINARY_DIR}/trafficge[n] /out/

# ---------------------------------------------------------------------------
# build: compile a static glibc binary (crt-static), stripped.
FROM ${RUST_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# .dockerignore keeps build output, .git and the packaging files out.
COPY . .
# An explicit --target keeps RUSTFLAGS away from build scripts and
# proc-macros, which cannot be linked statically.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN host="$(rustc -vV | sed -n 's/^host: //p')" \
    && cargo build --release --locked --target "$host" \
    && mkdir -p /out \
    && cp "target/$host/release/trafficgen" /out/trafficgen

# ---------------------------------------------------------------------------
# binary: whichever source was selected.
# hadolint ignore=DL3006
FROM ${TRAFFICGEN_BINARY_SOURCE} AS binary

# ---------------------------------------------------------------------------
# runtime: what users run. No shell, no libc files, no package manager.
FROM scratch AS runtime
COPY --from=binary /out/trafficgen /usr/local/bin/trafficgen

# 65532 = "nonroot" in distroless; numeric so Kubernetes' runAsNonRoot can
# verify it without an /etc/passwd.
USER 65532:65532

# A container is reached through its network: listen on every address of
# it (a bare binary defaults to 127.0.0.1, so nothing is open by surprise).
ENV BIND=0.0.0.0

# Control API (the demo-target subcommand listens on 8080 unless PORT is set).
EXPOSE 8089

# `trafficgen healthcheck` GETs http://127.0.0.1:${PORT:-8089}/health, so the
# same check works for a demo-target container started with PORT=8080.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/trafficgen", "healthcheck"]

# `docker run IMAGE` runs the sidecar; `docker run IMAGE demo-target` and
# `docker run IMAGE healthcheck --url ...` run the other subcommands.
ENTRYPOINT ["/usr/local/bin/trafficgen"]

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="trafficgen" \
      org.opencontainers.image.description="HTTP traffic-generator sidecar with a control API and Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="scratch"
