#!/usr/bin/env python3
"""Neighbour benchmark: plain clients' create latency while recipes written in other languages are called in
a loop, beside the same run without them (issue 11: "a slow recipe must not stall other clients"; a Python
recipe costs milliseconds per call, and plain creates from other clients should keep their latency).

wazoo only (ZooKeeper has no recipes). For each pair (fresh data dir, same zoo.cfg as compare.py) it loads
the twins built by scripts/build-guest-recipes.sh (``mutex-py``, ``mutex-c``) and measures ``wazoo bench -w
create`` (16 sessions x 8 in flight, open loop at ``--rate`` ops/s so that p99 is latency, not queueing at
saturation) first alone, then while ``--callers`` kazoo sessions loop acquire + release of a recipe (each on a
lock of its own: the cost is the recipe's, not contention), one condition per recipe in ``--recipes``. It
reports create p50/p99 for each condition, the recipe calls/s achieved meanwhile, and the server's CPU.

The callers run in this process at nice 19 (``--caller-nice``), as abuse.py's hostile clients do: on a real
network they would be other machines, and on this 2-core one kazoo's own client-side work would otherwise
take CPU from the server and the measured clients alike.

    bench/recipe_neighbour.py                        # 2 pairs, 10 s runs, mutex-py and mutex
    bench/recipe_neighbour.py --pairs 1 --duration 5s --no-build --recipes mutex-py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import compare  # noqa: E402
from compare import HOST, ROOT, TARGET_DIR, Cluster, Runner, fmt_num, med_range  # noqa: E402


class Callers:
    """`n` kazoo sessions looping acquire + release of `recipe`, each on its own lock."""

    def __init__(self, port: int, recipe: str, n: int, nice: int) -> None:
        self.port, self.recipe, self.n, self.nice = port, recipe, n, nice
        self.halt = threading.Event()
        self.calls = 0
        self.errors: List[str] = []
        self.lock = threading.Lock()
        self.threads: List[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.n):
            t = threading.Thread(target=self.loop, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def loop(self, i: int) -> None:
        from kazoo.client import KazooClient

        import wazoo
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        zk = KazooClient(hosts=f"{HOST}:{self.port}", timeout=30)
        zk.start(timeout=30)
        lock = wazoo.Lock(zk, f"/neighbour-{i}", self.recipe)
        try:
            while not self.halt.is_set():
                lock.acquire()
                lock.release()
                with self.lock:
                    self.calls += 2
        except Exception as e:  # noqa: BLE001 - reported in the results
            self.errors.append(repr(e))
        finally:
            zk.stop()
            zk.close()

    def stop(self) -> None:
        self.halt.set()
        for t in self.threads:
            t.join(30)


def load(wazoo_bin: Path, servers: str, name: str, path: Path) -> None:
    out = subprocess.run([str(wazoo_bin), "recipe", "-s", servers, "load", name, str(path)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"load {name}: {out.stderr}")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        out = subprocess.run([str(wazoo_bin), "recipe", "-s", servers, "call", name, "no-such-op", "{}"],
                             capture_output=True, text=True, timeout=60)
        if "aborted" in out.stdout + out.stderr:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{name} not callable after 300 s")


def run_pair(runner: Runner, opts, pair: int) -> List[dict]:
    wd = runner.workdir(f"neighbour-{pair}")
    cluster = Cluster("wazoo", wd, 1, runner.wazoo_bin)
    m = cluster.members[0]
    results = []
    try:
        cluster.start()
        for name in opts.recipe_list:
            if name in ("mutex",):
                continue  # the built-in
            lang = name.rsplit("-", 1)[1]
            load(runner.wazoo_bin, cluster.servers, name, opts.guest_dir / f"mutex-{lang}.wasm")
        args = ["-w", "create", "--sessions", "16", "--inflight", "8", "--duration", opts.duration,
                "--warmup", opts.warmup, "--payload", "100", "--keep"]
        if opts.rate:
            args += ["--rate", str(opts.rate)]
        for cond in ["alone"] + opts.recipe_list:
            r = {"pair": pair, "condition": cond}
            callers = None
            if cond != "alone":
                callers = Callers(m.port, cond, opts.callers, opts.caller_nice)
                callers.start()
                time.sleep(2.0)  # the callers connected and looping
            assert m.proc is not None
            cpu0, t0 = compare.proc_cpu_seconds(m.proc.pid), time.monotonic()
            calls0 = callers.calls if callers else 0
            code, rep, err = runner.bench(cluster.servers, args + ["--prefix", f"/c-{cond}"], 300)
            wall = time.monotonic() - t0
            r["server_cpu_pct"] = 100 * (compare.proc_cpu_seconds(m.proc.pid) - cpu0) / wall
            if callers:
                r["recipe_calls_per_s"] = (callers.calls - calls0) / wall
                callers.stop()
                r["caller_errors"] = callers.errors[:3]
            if rep:
                r["p50_ms"] = rep["latency_ms"]["p50"]
                r["p99_ms"] = rep["latency_ms"]["p99"]
                r["ops"] = rep["ops_per_sec"]
                r["errors"] = rep.get("errors_total")
            else:
                r["error"] = f"exit {code}: {err[-500:]}"
            r["ok"] = bool(rep) and not r.get("caller_errors")
            results.append(r)
            print(f"  pair {pair + 1} {cond:<9} " + json.dumps(r), flush=True)
    except Exception as e:  # noqa: BLE001
        results.append({"pair": pair, "condition": "setup", "ok": False, "error": f"{e}\n{m.log_tail()}"})
    finally:
        cluster.stop(graceful=False)
        if not opts.keep_dirs:
            shutil.rmtree(wd, ignore_errors=True)
    return results


def table(results: List[dict], recipes: List[str]) -> str:
    lines = ["| pair | condition | create p50 ms | create p99 ms | creates/s | recipe calls/s beside | server CPU % | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "p99_ms" not in r:
            lines.append(f"| {r['pair'] + 1} | {r['condition']} | FAILED: {r.get('error', '')[:200]} |")
            continue
        lines.append(f"| {r['pair'] + 1} | {r['condition']} | {fmt_num(r['p50_ms'], 2)} | {fmt_num(r['p99_ms'], 2)} | "
                     f"{fmt_num(r['ops'])} | {fmt_num(r.get('recipe_calls_per_s'))} | "
                     f"{fmt_num(r['server_cpu_pct'])} | {r.get('errors')} {' '.join(r.get('caller_errors') or [])} |")
    lines.append("")
    for cond in recipes:
        ratios = []
        for pair in {r["pair"] for r in results}:
            alone = [r for r in results if r["pair"] == pair and r["condition"] == "alone" and "p99_ms" in r]
            beside = [r for r in results if r["pair"] == pair and r["condition"] == cond and "p99_ms" in r]
            if alone and beside:
                ratios.append(beside[0]["p99_ms"] / alone[0]["p99_ms"])
        if ratios:
            med = med_range(ratios)
            lines.append(f"- create p99 beside `{cond}` / alone: median {fmt_num(med[0], 2)}x "
                         f"[{fmt_num(med[1], 2)}-{fmt_num(med[2], 2)}] over {len(ratios)} pair(s)")
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--warmup", default="2s")
    ap.add_argument("--rate", type=int, default=5000, help="offered creates/s (0: closed loop)")
    ap.add_argument("--recipes", default="mutex-py,mutex-c,mutex",
                    help="recipes the callers loop, one condition each (mutex: the Rust built-in)")
    ap.add_argument("--callers", type=int, default=2)
    ap.add_argument("--caller-nice", type=int, default=19)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--wazoo-bin", default=None)
    ap.add_argument("--bench-cmd", default=None)
    ap.add_argument("--keep-dirs", action="store_true")
    ap.add_argument("--cleanup-each", action="store_true")
    ap.add_argument("--out", default=None)
    opts = ap.parse_args(argv)
    opts.recipe_list = [r for r in opts.recipes.split(",") if r]
    opts.guest_dir = TARGET_DIR / "guest-recipes"
    import atexit
    atexit.register(compare._kill_leftovers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not opts.no_build:
        compare.build(opts)
    subprocess.run(["bash", str(ROOT / "scripts" / "build-guest-recipes.sh")], check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=str(TARGET_DIR)))
    wazoo_bin = Path(opts.wazoo_bin) if opts.wazoo_bin else TARGET_DIR / "release" / "wazoo"
    runner = Runner(opts, compare.bench_command(wazoo_bin, opts.bench_cmd), wazoo_bin)
    results: List[dict] = []
    for pair in range(opts.pairs):
        results += run_pair(runner, opts, pair)
    if not opts.keep_dirs:
        shutil.rmtree(runner.base, ignore_errors=True)
    details = (f": creates 16x8 at {opts.rate or 'max'} ops/s, {opts.callers} caller session(s) per recipe at "
               f"nice {opts.caller_nice}")
    compare.write_report("recipe-neighbour", "Recipe neighbour benchmark", argv, details,
                         table(results, opts.recipe_list), results, opts.out)
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
