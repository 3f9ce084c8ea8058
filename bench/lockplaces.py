#!/usr/bin/env python3
"""The mutex in a 3-server wazoo ensemble by where its 8 contenders connect: all on the leader, all
on the followers, or spread over the three; wazoo's server-side mutex and the Curator-style client
recipe. Prints acquisitions/s per case (one run each, `--duration` seconds after 2 s of warm-up).

    bench/lockplaces.py [--wazoo-bin /var/tmp/wazoo-target/release/wazoo] [--duration 8]

Uses compare.py's cluster setup (same configs, fresh data dirs under /var/tmp/wazoo-lockplaces).
"""
import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "python"))
import compare  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wazoo-bin", default="/var/tmp/wazoo-target/release/wazoo")
    ap.add_argument("--duration", type=int, default=8)
    o = ap.parse_args()
    wazoo = Path(o.wazoo_bin)
    wd = Path("/var/tmp/wazoo-lockplaces")
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    cluster = compare.Cluster("wazoo", wd, 3, wazoo)
    cluster.start()
    try:
        leader = next(m for m in cluster.members if m.mode() == "leader")
        followers = [m for m in cluster.members if m is not leader]
        places = {
            "leader only": f"{compare.HOST}:{leader.port}",
            "followers only": ",".join(f"{compare.HOST}:{m.port}" for m in followers),
            "all three": cluster.servers,
        }
        for impl in ["server", "client"]:
            for name, servers in places.items():
                cmd = [str(wazoo), "bench", "-w", "lock", "--sessions", "8", "--recipe-impl", impl,
                       "--duration", f"{o.duration}s", "--warmup", "2s", "--servers", servers,
                       "--json", "--no-progress"]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=60 + o.duration)
                try:
                    ops = json.loads(r.stdout.strip().splitlines()[-1])["ops_per_sec"]
                    print(f"{impl}-side mutex, {name}: {ops:,.0f} acquisitions/s", flush=True)
                except (ValueError, IndexError, KeyError):
                    print(f"{impl}-side mutex, {name}: no result: {r.stderr[-300:]}", flush=True)
    finally:
        cluster.stop(graceful=False)
        shutil.rmtree(wd, ignore_errors=True)


if __name__ == "__main__":
    main()
