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
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

step "python test environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -m pip freeze 2>/dev/null | grep -qxF -f tests/requirements.txt \
   || [ "$(.venv/bin/python -m pip freeze | grep -cxF -f tests/requirements.txt)" -ne "$(grep -c . tests/requirements.txt)" ]; then
  .venv/bin/python -m pip install -q -r tests/requirements.txt
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build binaries"
cargo build --workspace --bins --locked

step "cargo test"
cargo test --workspace --locked

step "end-to-end tests (pytest)"
rm -rf target/e2e-logs
MCP_BIN_DIR="$ROOT/target/debug" .venv/bin/python -m pytest -q "$@"
