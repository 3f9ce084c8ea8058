#!/usr/bin/env bash
# Runs the wazoo-proto cargo-fuzz target for a bounded time (default 60 s): every decoder on arbitrary
# bytes, never a panic. cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain here
# accept them. Usage: scripts/fuzz.sh [seconds]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wazoo-target}/fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd "$ROOT/host/proto"
RUSTC_BOOTSTRAP=1 cargo fuzz run decode -- -max_total_time="${1:-60}" -max_len=4096
