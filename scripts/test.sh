#!/usr/bin/env bash
# The project's one test command: installs what the tests need (idempotently),
# then runs formatting and lint checks, the Rust tests and the end-to-end tests.
# Usage: scripts/test.sh            (from anywhere; CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
need_apt=()
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# npm installs Azurite (the Azure Blob emulator) for the object store tests.
command -v npm >/dev/null || need_apt+=(nodejs npm)
# PostgreSQL 15 for the Postgres tools' tests (initdb/pg_ctl refuse root; the
# tests run them as the postgres user).
if ! command -v initdb >/dev/null && [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  need_apt+=(postgresql-15)
fi
# The PostgreSQL 15 HTML manual: the real corpus of the relevance test
# (bench/tests/relevance.rs) and of bench/run.py's kbbuild row.
[ -f /usr/share/doc/postgresql-doc-15/html/index.html ] || need_apt+=(postgresql-doc-15)
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

[ -d /usr/lib/postgresql/15/bin ] && export PATH="$PATH:/usr/lib/postgresql/15/bin"

step "python test environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
# Pinned versions: a no-op (no download) when they are already installed.
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt

step "Azure Blob emulator (Azurite, npm, into .tools/azurite)"
# Pinned: azurite 3.37 and later need Node 22, and Debian's Node is older.
# fake-gcs-server (GCS) comes in a PyPI wheel with tests/requirements.txt.
AZURITE_VERSION=3.35.0
if [ "$(cat .tools/azurite/.installed 2>/dev/null)" != "$AZURITE_VERSION" ]; then
  npm install --prefix .tools/azurite --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
  echo "$AZURITE_VERSION" > .tools/azurite/.installed
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build binaries"
cargo build --workspace --bins --locked

step "deployment artifacts (offline: hadolint, kustomize, helm, kubernetes-validate, compose, nginx)"
MCP_BIN_DIR="$ROOT/target/debug" scripts/validate-deploy.sh

step "cargo test"
cargo test --workspace --locked

step "end-to-end tests (pytest)"
rm -rf target/e2e-logs
MCP_BIN_DIR="$ROOT/target/debug" .venv/bin/python -m pytest -q "$@"
