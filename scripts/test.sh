#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run) and what the README's quick start names.
#
#   1. install test dependencies (apt: clang/libclang, zookeeper, JRE; pip: kazoo, pytest)
#   2. cargo build --workspace --bins --tests   (one dev profile: the binaries the tests spawn are built once)
#   3. cargo test --workspace
#   4. purity check: wazoo-proto, wazoo-tree and wazoo-admin must not depend on tokio / rocksdb / wasmtime
#   5. python3 -m pytest tests/python           (real clients against $WAZOO_BIN; see tests/python/README.md)
#
# Environment: CARGO_TARGET_DIR (default /var/tmp/wazoo-target, outside the clone, reused across runs),
# WAZOO_BIN (default $CARGO_TARGET_DIR/debug/wazoo), WAZOO_TEST_TARGET (wazoo | zookeeper; default wazoo),
# PYTEST_ARGS (extra pytest arguments, e.g. "-x -k session").
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wazoo-target}"
export WAZOO_BIN="${WAZOO_BIN:-$CARGO_TARGET_DIR/debug/wazoo}"
export WAZOO_TEST_TARGET="${WAZOO_TEST_TARGET:-wazoo}"
export PYTHONDONTWRITEBYTECODE=1

START=$SECONDS
step() {
    printf '\n==> [%4ds] %s\n' "$((SECONDS - START))" "$*"
}

step "install test dependencies"
bash "$ROOT/scripts/install-test-deps.sh"

step "cargo build --workspace --bins --tests (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --workspace --bins --tests

step "cargo test --workspace"
cargo test --workspace

step "purity check: pure crates must not depend on tokio, rocksdb or wasmtime"
pure_failed=0
for crate in wazoo-proto wazoo-tree wazoo-admin; do
    if ! deps="$(cargo tree -p "$crate" -e normal --prefix none)"; then
        echo "PURITY CHECK FAILED: cargo tree -p $crate failed" >&2
        pure_failed=1
        continue
    fi
    bad="$(printf '%s\n' "$deps" | grep -E '^(tokio|rocksdb|librocksdb|wasmtime)[A-Za-z0-9_-]* v' | sed 's/ (\*)$//' | sort -u || true)"
    if [ -n "$bad" ]; then
        echo "PURITY CHECK FAILED: $crate (a pure crate) depends on:" >&2
        printf '%s\n' "$bad" | sed 's/^/  /' >&2
        echo "  (see: cargo tree -p $crate -e normal -i <dep>)" >&2
        pure_failed=1
    else
        echo "$crate: pure ($(printf '%s\n' "$deps" | sed 's/ (\*)$//' | sort -u | wc -l) crates in its normal dependency tree)"
    fi
done
if [ "$pure_failed" != 0 ]; then
    exit 1
fi

step "pytest tests/python (WAZOO_TEST_TARGET=$WAZOO_TEST_TARGET, WAZOO_BIN=$WAZOO_BIN)"
# shellcheck disable=SC2086
python3 -m pytest tests/python -q -ra ${PYTEST_ARGS:-}

step "all tests passed"
