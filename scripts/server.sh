#!/usr/bin/env bash
# Builds wazoo and starts a standalone server: 127.0.0.1:2181, data in ./wazoo-data, admin HTTP on
# 127.0.0.1:8080, built-in recipes installed. Extra arguments go to `wazoo server` (e.g. --config zoo.cfg).
# Installs the build dependencies a fresh Debian machine lacks (libclang for RocksDB's bindings, rustup's
# wasm32-wasip2 target for the built-in recipes).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wazoo-target}"
if ! dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q '^install ok installed$'; then
    SUDO=(); [ "$(id -u)" != 0 ] && SUDO=(sudo -n)
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends libclang-dev clang
fi
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
cd "$ROOT"
# The dev profile is the one the test suite builds, so this reuses its artifacts.
cargo build -p wazoo-cli --bin wazoo
exec "$CARGO_TARGET_DIR/debug/wazoo" server "$@"
