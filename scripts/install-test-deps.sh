#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian bookworm machine:
#   apt: libclang-dev clang (RocksDB bindgen), zookeeper + default-jre-headless (real ZooKeeper 3.8 for the
#        differential / compatibility tests and zkCli), zookeeper-bin (the C client's shell, cli_mt)
#   pip: tests/python/requirements.txt (kazoo, pytest, pytest-timeout)
#   rustup: the wasm32-wasip2 target (host/recipes' build script compiles the built-in recipes with it)
# Idempotent: a fast no-op when everything is already present. Non-interactive.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export DEBIAN_FRONTEND=noninteractive

APT_PKGS=(libclang-dev clang zookeeper zookeeper-bin default-jre-headless)

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi

missing=()
for p in "${APT_PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: apt installing: ${missing[*]}"
    # Keep maintainer scripts from starting services (Debian's zookeeper would listen on 2181).
    policy_tmp=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy_tmp=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy_tmp" >/dev/null
        "${SUDO[@]}" chmod +x "$policy_tmp"
    fi
    cleanup_policy() { if [ -n "$policy_tmp" ]; then "${SUDO[@]}" rm -f "$policy_tmp"; fi; }
    trap cleanup_policy EXIT
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
    cleanup_policy
    trap - EXIT
fi

# If a system ZooKeeper service got started anyway (e.g. systemd ignoring policy-rc.d), stop it: the tests
# start their own servers on free ports and nothing should hold 2181.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    if systemctl is-active --quiet zookeeper 2>/dev/null; then
        "${SUDO[@]}" systemctl stop zookeeper || true
    fi
    "${SUDO[@]}" systemctl disable zookeeper >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/zookeeper ] && /etc/init.d/zookeeper status >/dev/null 2>&1; then
    "${SUDO[@]}" /etc/init.d/zookeeper stop >/dev/null 2>&1 || true
fi

# The recipes' target: `rustup target add` is a fast no-op when it is installed.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "install-test-deps: rustup target add wasm32-wasip2"
    rustup target add wasm32-wasip2
fi

# Python packages: only if an import check fails (pip is slow even when nothing is to be done).
PY="${PYTHON:-python3}"
if ! "$PY" - <<'PYEOF' 2>/dev/null
import importlib.metadata as m
import sys
want = {"kazoo": "2.11.0"}
if m.version("kazoo") != want["kazoo"]:
    sys.exit(1)
import msgpack, pytest, pytest_timeout  # noqa: F401
PYEOF
then
    echo "install-test-deps: pip installing tests/python/requirements.txt"
    "$PY" -m pip install --disable-pip-version-check -q -r "$ROOT/tests/python/requirements.txt"
fi
