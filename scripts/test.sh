#!/usr/bin/env bash
# The project's test command: format check, clippy, then the whole workspace's tests.
# Integration tests drive the real Python clients through $MESOS_TEST_PYTHON.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [[ -z "${MESOS_TEST_PYTHON:-}" ]]; then
    [[ -x "$REPO/.venv/bin/python" ]] || "$REPO/scripts/setup-python.sh"
    export MESOS_TEST_PYTHON="$REPO/.venv/bin/python"
fi
echo "MESOS_TEST_PYTHON=$MESOS_TEST_PYTHON"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo build --bins (the end-to-end tests start these binaries)"
cargo build --workspace --bins

if cargo nextest --version >/dev/null 2>&1; then
    echo "== cargo nextest run"
    cargo nextest run --workspace --no-fail-fast
else
    echo "== cargo test (cargo-nextest not installed)"
    cargo test --workspace --no-fail-fast
fi
