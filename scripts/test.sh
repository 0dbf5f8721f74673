#!/usr/bin/env bash
# The project's one test command: installs what the tests need (idempotently),
# then runs formatting and lint checks, the Rust tests and the end-to-end tests,
# the container tests among them (a Docker engine is installed and started
# when none runs; see "Docker engine" below).
# Usage: scripts/test.sh            (from anywhere; CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }
START=$(date +%s)

step "system packages"
need_apt=()
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# npm installs Azurite (the Azure Blob emulator) for the object store tests
# and oidc-provider (an OpenID provider) for the OAuth tests.
command -v npm >/dev/null || need_apt+=(nodejs npm)
# PostgreSQL 15 for the Postgres tools' tests (initdb/pg_ctl refuse root; the
# tests run them as the postgres user).
if ! command -v initdb >/dev/null && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  need_apt+=(postgresql-15)
fi
# The PostgreSQL 15 HTML manual: the real corpus of the relevance test
# (bench/tests/relevance.rs) and of bench/run.py's kbbuild row.
[ -f /usr/share/doc/postgresql-doc-15/html/index.html ] || need_apt+=(postgresql-doc-15)
# The container tests: Debian's Docker engine (dockerd 20.10, whose client
# still builds with BuildKit without the buildx plugin) and docker-compose.
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

[ -d /usr/lib/postgresql/15/bin ] && export PATH="$PATH:/usr/lib/postgresql/15/bin"

step "Docker engine"
# A running engine is left alone. Otherwise dockerd is started in the
# background (it needs root) and stays up after the tests. Where none can
# start, the test command fails here, loudly: the container tests are part
# of it. A developer may skip them on purpose with
# PG_MCP_SKIP_CONTAINER_TESTS=1, which CI (CI set) refuses.
engine_up() { docker info >/dev/null 2>&1; }
if engine_up; then
  echo "a Docker engine is running ($(docker info --format '{{.ServerVersion}}' 2>/dev/null)): left alone"
else
  DOCKERD_LOG=${TMPDIR:-/tmp}/pg-mcp-fleet-dockerd.log
  if [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null; then
    echo "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    for _ in $(seq 1 60); do engine_up && break; sleep 1; done
  fi
  if engine_up; then
    echo "dockerd $(docker info --format '{{.ServerVersion}}') is up"
  elif [ "${PG_MCP_SKIP_CONTAINER_TESTS:-}" = 1 ] && [ -z "${CI:-}" ]; then
    printf '\n!!! NO DOCKER ENGINE: the container tests will be SKIPPED (PG_MCP_SKIP_CONTAINER_TESTS=1) !!!\n\n' >&2
  else
    printf '\nERROR: no Docker engine could be started, and the container tests need one.\n' >&2
    [ "$(id -u)" -eq 0 ] || echo "  (not root: start dockerd yourself, or run this as root)" >&2
    [ -f "${DOCKERD_LOG:-}" ] && tail -n 20 "$DOCKERD_LOG" >&2
    echo "  To skip the container tests on purpose outside CI: PG_MCP_SKIP_CONTAINER_TESTS=1 scripts/test.sh" >&2
    exit 1
  fi
fi

step "python test environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
# Pinned versions: a no-op (no download) when they are already installed.
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt

step "embedding model (wordllama l2_supercat, 256 d, from its PyPI wheel, into .tools/models)"
# The local static model of the semantic-search tests and of bench/run.py:
# the wheel (tests/requirements.txt) carries its weights and tokenizer; they
# are copied into the directory layout `--kb-embedding-model-dir` reads.
MODEL_DIR=.tools/models/wordllama-l2-supercat-256
if [ ! -f "$MODEL_DIR/model.safetensors" ] || [ ! -f "$MODEL_DIR/tokenizer.json" ]; then
  WL=$(.venv/bin/python -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("wordllama").origin))')
  rm -rf "$MODEL_DIR.tmp" && mkdir -p "$MODEL_DIR.tmp"
  cp "$WL/weights/l2_supercat_256.safetensors" "$MODEL_DIR.tmp/model.safetensors"
  cp "$WL/tokenizers/l2_supercat_tokenizer_config.json" "$MODEL_DIR.tmp/tokenizer.json"
  rm -rf "$MODEL_DIR" && mv "$MODEL_DIR.tmp" "$MODEL_DIR"
fi
export PG_MCP_EMBED_MODEL_DIR="$ROOT/$MODEL_DIR"

step "Azure Blob emulator (Azurite, npm, into .tools/azurite)"
# Pinned: azurite 3.37 and later need Node 22, and Debian's Node is older.
# fake-gcs-server (GCS) comes in a PyPI wheel with tests/requirements.txt.
AZURITE_VERSION=3.35.0
if [ "$(cat .tools/azurite/.installed 2>/dev/null)" != "$AZURITE_VERSION" ]; then
  npm install --prefix .tools/azurite --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
  echo "$AZURITE_VERSION" > .tools/azurite/.installed
fi

step "OpenID provider (oidc-provider, npm, into .tools/oidc)"
# A real, certified OpenID provider for the OAuth tests (tests/e2e/oidc.py
# runs tests/e2e/oidc_provider.mjs with it). Pinned: 9.13 declares no Node
# engine and runs on Debian's Node 20; it installs with no secret and needs
# none (the tests generate their keys and client secrets per run).
OIDC_PROVIDER_VERSION=9.13.3
if [ "$(cat .tools/oidc/.installed 2>/dev/null)" != "$OIDC_PROVIDER_VERSION" ]; then
  npm install --prefix .tools/oidc --no-audit --no-fund --loglevel=error "oidc-provider@$OIDC_PROVIDER_VERSION"
  echo "$OIDC_PROVIDER_VERSION" > .tools/oidc/.installed
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build binaries"
cargo build --workspace --bins --locked

# The container images copy release binaries (the Dockerfile's `prebuilt`
# stage). Their build starts now, in the background at the lowest CPU
# priority (nice 19): it takes only what the foreground leaves, so the
# timing-sensitive tests (cargo test's Postgres tests, the end-to-end ones)
# keep the CPU they need, and it uses the idle time of the deployment checks
# and of pytest, whose servers mostly wait. The container tests, which run
# last, wait for it through cargo's lock on target/release.
RELEASE_LOG=$ROOT/target/release-build.log
RELEASE_PID=
# If this script stops early, the background build stops with it.
stop_release_build() {
  if [ -n "$RELEASE_PID" ] && kill -0 "$RELEASE_PID" 2>/dev/null; then
    pkill -TERM -P "$RELEASE_PID" 2>/dev/null || true
    kill "$RELEASE_PID" 2>/dev/null || true
  fi
}
trap stop_release_build EXIT
mkdir -p target
if engine_up; then
  (
    t0=$(date +%s)
    rc=0
    nice -n 19 cargo build --release --locked -p mcp-server -p kb-init -p kb-sync-sidecar || rc=$?
    echo "release build: exit $rc after $(( $(date +%s) - t0 )) s (background, nice 19)"
    exit "$rc"
  ) >"$RELEASE_LOG" 2>&1 &
  RELEASE_PID=$!
fi

step "deployment artifacts (offline: hadolint, kustomize, helm, kubernetes-validate, compose, nginx)"
MCP_BIN_DIR="$ROOT/target/debug" scripts/validate-deploy.sh

step "cargo test"
cargo test --workspace --locked

# The 25 slowest tests are listed at the end: where the command's time goes.
step "end-to-end tests (pytest; the container tests last)"
rm -rf target/e2e-logs
status=0
MCP_BIN_DIR="$ROOT/target/debug" MCP_RELEASE_DIR="$ROOT/target/release" \
  .venv/bin/python -m pytest -q --durations=25 "$@" || status=$?
if [ -n "$RELEASE_PID" ]; then
  if wait "$RELEASE_PID"; then
    tail -n 1 "$RELEASE_LOG"
  else
    echo "release build FAILED:" >&2; tail -n 30 "$RELEASE_LOG" >&2; status=1
  fi
fi
printf '\ntest command: %d s\n' $(( $(date +%s) - START ))
exit "$status"
