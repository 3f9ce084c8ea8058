#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run) and what the README's quick start names.
#
#   1. install test dependencies (apt: clang/libclang, zookeeper, JRE; pip: kazoo, pytest)
#   2. cargo build --workspace --bins --tests   (one dev profile: the binaries the tests spawn are built once)
#   3. the built-in recipes' twins in Python and C (scripts/build-guest-recipes.sh), cargo test --workspace,
#      then the guest SDKs' own tests (guest-sdk/: the Rust crate, the Python package)
#   4. purity check: wazoo-proto, -tree, -store, -admin, -zab, -core and -sim must not depend on tokio / rocksdb / wasmtime
#   5. python3 -m pytest tests/python           (real clients against $WAZOO_BIN; see tests/python/README.md),
#      then the client suites again against a 3-server ensemble (WAZOO_TEST_ENSEMBLE=3)
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

step "the built-in recipes' twins in Python and C (scripts/build-guest-recipes.sh; the recipe tests load them)"
bash "$ROOT/scripts/build-guest-recipes.sh"

step "cargo test --workspace (with a throwaway wazoo server for the client's live tests)"
LIVE_DIR="$(mktemp -d /tmp/wazoo-live.XXXXXX)"
LIVE_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
printf 'tickTime=500\ndataDir=%s/data\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\nextendedTypesEnabled=true\nwazoo.recipeCacheDir=/tmp/wazoo-recipe-cache\n' \
    "$LIVE_DIR" "$LIVE_PORT" > "$LIVE_DIR/zoo.cfg"
"$WAZOO_BIN" server --config "$LIVE_DIR/zoo.cfg" > "$LIVE_DIR/server.log" 2>&1 &
LIVE_PID=$!
stop_live() { kill "$LIVE_PID" 2>/dev/null || true; wait "$LIVE_PID" 2>/dev/null || true; rm -rf "$LIVE_DIR"; }
trap stop_live EXIT
for _ in $(seq 100); do
    if [ "$(python3 -c "import socket,sys
try:
    s=socket.create_connection(('127.0.0.1',$LIVE_PORT),1); s.sendall(b'ruok'); print(s.recv(4).decode())
except Exception: print('')")" = imok ]; then break; fi
    sleep 0.1
done
WAZOO_CLIENT_TEST_SERVER="127.0.0.1:$LIVE_PORT" cargo test --workspace
stop_live
trap - EXIT

step "the guest SDKs' own tests: the Rust crate (built for wasm32-wasip2 by the recipes) and the Python package"
cargo test --locked --manifest-path guest-sdk/Cargo.toml
python3 -m pytest -q -p no:cacheprovider guest-sdk/python/tests

step "purity check: pure crates must not depend on tokio, rocksdb or wasmtime"
pure_failed=0
for crate in wazoo-proto wazoo-tree wazoo-store wazoo-admin wazoo-zab wazoo-core wazoo-sim; do
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

if [ "$WAZOO_TEST_TARGET" = wazoo ]; then
    step "pytest: the client suites again against a 3-server wazoo ensemble (each test on one member, in turn)"
    WAZOO_TEST_ENSEMBLE=3 python3 -m pytest -q -ra \
        tests/python/test_kazoo_basic.py tests/python/test_kazoo_recipes.py \
        tests/python/test_pipelining.py tests/python/test_set_watches.py \
        tests/python/test_exists_acl.py tests/python/test_session_liveness.py
fi

step "all tests passed"
