"""The built-in recipes' twins in other Wasm languages (issue 11, item 9): the mutex and the queue in
Python, the mutex in C, built by scripts/build-guest-recipes.sh from recipes/python and recipes/c. A
test that takes the ``lang`` of a twin loads it into its server as ``<recipe>-<lang>`` (an ordinary
hot-load through ``wazoo recipe load``) and drives it with the same clients and checks as the Rust
built-in, whose name it keeps.
"""

import os
import subprocess
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[2]

# Which recipes have twins in which languages ("rust": the built-in itself).
LANGS = {
    "mutex": ["rust", "py", "c"],
    "queue": ["rust", "py"],
}

_built = []


def out_dir():
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/wazoo-target"))
    return Path(os.environ.get("WAZOO_GUEST_RECIPES", target / "guest-recipes"))


def component(recipe, lang):
    """The twin's component, built (or brought up to date) by the project's script once per run."""
    if not _built:
        subprocess.run(["bash", str(ROOT / "scripts" / "build-guest-recipes.sh")], check=True,
                       env={**os.environ, "OUT": str(out_dir())}, timeout=1800)
        _built.append(True)
    path = out_dir() / f"{recipe}-{lang}.wasm"
    assert path.is_file(), f"{path} was not built"
    return path


def load(srv, recipe, lang):
    """The name under which `srv` serves `recipe` in `lang`: the built-in for "rust"; else the twin,
    loaded through `wazoo recipe load`, which returns once the server has compiled it (a Python
    component takes tens of seconds the first time, then comes from the artifact cache)."""
    if lang == "rust":
        return recipe
    name = f"{recipe}-{lang}"
    out = subprocess.run([str(harness.wazoo_bin()), "recipe", "-s", srv.hosts, "load", name,
                          str(component(recipe, lang))], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    return name
