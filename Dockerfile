# One image, three binaries: mcp-server, kb-init and kb-sync-sidecar.
#
# Why one image and not one per binary: the three are built from one Cargo
# workspace and one Cargo.lock, they are deployed together (kb-init and the
# sidecar only exist to feed mcp-server), and they must agree on the file
# formats they share. One image means one build, one tag to pin and roll back,
# and the three containers of a Pod (or the compose services) share every
# layer, so a node pulls it once. Each container picks its binary with
# `command` (Kubernetes, docker compose); the default CMD runs the server.
#
# Build:  docker build -t pg-mcp-fleet:dev .
# Run:    docker run --rm -p 8080:8080 -v "$PWD/data:/data:ro" pg-mcp-fleet:dev
#         docker run --rm pg-mcp-fleet:dev kb-init --help
#
# From binaries built outside Docker (`cargo build --release`, in CI or in
# this project's container tests, which build offline on a locally made
# base), the same final stage takes them instead of compiling: the build
# context must hold target/release/{mcp-server,kb-init,kb-sync-sidecar}
# (.dockerignore keeps target/ out of the usual context, so stage one;
# scripts/container-images.sh does) and
#
#   docker build --build-arg BINARIES=prebuilt \
#                --build-arg RUNTIME_BASE=<a base like distroless/cc> \
#                -f Dockerfile -t pg-mcp-fleet:dev <staged context>
#
# The binaries link glibc dynamically: build them on (or for) the glibc of
# RUNTIME_BASE (Debian 12 for the default).
#
# There is no `# syntax=` line: BuildKit would fetch that frontend image
# from Docker Hub before building anything, which fails on an offline
# builder. Nothing here needs more than the Dockerfile frontend built into
# Docker 20.10 and newer (RUN --mount, COPY --chown, ARG in FROM).

ARG RUST_VERSION=1.95
# The builder and the runtime must share a Debian release: the binaries link
# glibc dynamically, and a binary built against a newer glibc (trixie) does
# not start on an older one (bookworm).
ARG DEBIAN_RELEASE=bookworm
# distroless/cc: glibc, libgcc_s, CA certificates, /tmp, a nonroot user
# (65532) and nothing else: no shell, no package manager. Pin it by digest in
# production (gcr.io/distroless/cc-debian12:nonroot@sha256:...).
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
# Where the binaries come from: `builder` (compiled below) or `prebuilt`
# (copied from the build context).
ARG BINARIES=builder

# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

WORKDIR /src
# The whole workspace is needed: cargo loads every member's manifest (bench
# included), and mcp-server embeds README.md and docs/*.md for its demo.
# .dockerignore keeps target/, .git/, the Python venv and the deployment files
# out of the context, so editing k8s/ or compose/ does not invalidate this layer.
COPY . .

# The cache mounts keep the crate registry and the target directory between
# builds (BuildKit). target/ lives in a cache mount, so the binaries are copied
# out within the same RUN. The SQLite library is compiled in (rusqlite
# "bundled") and TLS is rustls, so the binaries need only glibc and libgcc_s at
# run time, which distroless/cc provides.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        -p mcp-server -p kb-init -p kb-sync-sidecar \
 && install -D -m 0755 -t /out/usr/local/bin \
        target/release/mcp-server \
        target/release/kb-init \
        target/release/kb-sync-sidecar \
 && install -d -m 0755 /out/data

# ---------------------------------------------------------------------------
# The same layout from binaries built outside Docker. WORKDIR makes the empty
# /out/data without a shell.
FROM scratch AS prebuilt
COPY target/release/mcp-server target/release/kb-init target/release/kb-sync-sidecar /out/usr/local/bin/
WORKDIR /out/data

# ---------------------------------------------------------------------------
# BuildKit builds only the stage named here (and what it needs).
FROM ${BINARIES} AS binaries

# ---------------------------------------------------------------------------
# The image users run, whichever way the binaries came.
FROM ${RUNTIME_BASE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="pg-mcp-fleet" \
      org.opencontainers.image.description="Stateless Postgres MCP server fleet: mcp-server, kb-init, kb-sync-sidecar" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=binaries /out/usr/local/bin/ /usr/local/bin/
# /data exists in the image and belongs to the runtime user, so a fresh docker
# named volume mounted there inherits that ownership and kb-init (non-root)
# can publish into it. In Kubernetes an emptyDir replaces it.
COPY --from=binaries --chown=65532:65532 /out/data /data

ENV PATH=/usr/local/bin:/usr/bin:/bin \
    MCP_DATA_DIR=/data

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
EXPOSE 8080

# No HEALTHCHECK here: one image runs three different programs, so the check
# belongs to each container: `mcp-server healthcheck` (GET /health over
# loopback) and `kb-sync-sidecar healthcheck --listen ADDR` (/healthz and
# /readyz), exit 0 healthy and 1 not, as compose/docker-compose.yml uses
# them. Kubernetes probes /health, /livez, /healthz and /readyz over HTTP.
#
# No ENTRYPOINT, so `command` (compose) or `command`/`args` (Kubernetes) names
# the binary: ["kb-init", "--config", ...], ["kb-sync-sidecar", ...].
CMD ["mcp-server", "serve"]
