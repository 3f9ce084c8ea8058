#!/usr/bin/env python3
"""wazoo against wazoo: two builds alternating A B A B on the same machine (compare.py's runs, no ZooKeeper).

For a change's effect on the standalone numbers when the machine's speed moves between days: both builds
see the same disk and CPU phases. Build the older one from a git worktree into a copy of the target dir
(only the workspace crates are rebuilt), then:

    bench/ab.py --old /var/tmp/wazoo-old/release/wazoo --new /var/tmp/wazoo-target/release/wazoo \\
                --workloads create,set,get,create1 --pairs 3

It prints each run and a table of medians: ops/s, p50 and p99 ms, server CPU µs per op.
"""

from __future__ import annotations

import argparse
import atexit
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402
from compare import WORKLOADS, Runner  # noqa: E402


def main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", required=True, help="the baseline wazoo binary")
    ap.add_argument("--new", required=True, help="the wazoo binary under test")
    ap.add_argument("--workloads", default="create,set,get,create1")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--warmup", default="2s")
    opts = ap.parse_args(argv)
    run_opts = argparse.Namespace(duration=opts.duration, warmup=opts.warmup, payload=100, ensemble=1,
                                  cleanup_each=False, keep_dirs=False)
    atexit.register(compare._kill_leftovers)
    builds = (("old", Path(opts.old)), ("new", Path(opts.new)))
    keys = opts.workloads.split(",")
    res: dict = {}
    for k in keys:
        for p in range(opts.pairs):
            for name, binary in builds:
                r = Runner(run_opts, compare.bench_command(binary, None), binary).one_run("wazoo", WORKLOADS[k], p)
                rep = r.report or {}
                lat = rep.get("latency_ms") or {}
                cpu = (r.server_cpu_s / rep["ops"] * 1e6) if r.server_cpu_s and rep.get("ops") else None
                res.setdefault((k, name), []).append((rep.get("ops_per_sec"), lat.get("p50"), lat.get("p99"), cpu))
                print(f"{k} pair {p + 1} {name}: {rep.get('ops_per_sec')} ops/s p50 {lat.get('p50')} "
                      f"p99 {lat.get('p99')} cpu/op {cpu} {r.error or ''}", flush=True)

    def med(xs, i):
        vals = [x[i] for x in xs if x[i] is not None]
        return statistics.median(vals) if vals else float("nan")

    print("\n| workload | old ops/s | new ops/s | new/old | old p50 ms | new p50 ms | old p99 | new p99 "
          "| old CPU µs/op | new CPU µs/op |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        o, n = res[(k, "old")], res[(k, "new")]
        print(f"| {k} | {med(o, 0):,.0f} | {med(n, 0):,.0f} | {med(n, 0) / med(o, 0):.2f} | {med(o, 1):.3f} | "
              f"{med(n, 1):.3f} | {med(o, 2):.2f} | {med(n, 2):.2f} | {med(o, 3):.1f} | {med(n, 3):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
