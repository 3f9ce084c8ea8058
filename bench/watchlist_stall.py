#!/usr/bin/env python3
"""How long the watch listings stop a server (issue 9, item 7: "only dump, wchc, wchp, cons may walk
the tables, and not on the core task in one piece").

One wazoo server; one connection sets ``--watches`` exists watches (pipelined), then a client does
serial creates while ``wchp`` and ``wchc`` are asked ``--rounds`` times each. Prints the creates'
p99 and max before and during the listings, and how long each listing took.

    bench/watchlist_stall.py --watches 300000     # $WAZOO_BIN (default: the debug build)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
import harness  # noqa: E402
import zkwire  # noqa: E402
from serialprobe import SerialProbe, pct  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--watches", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wazoo-watchlist-"))
    srv = harness.ServerProcess("wazoo", base / "data", name="watchlist")
    srv.start()
    try:
        c = zkwire.Conn(harness.HOST, srv.port, timeout_ms=30000, io_timeout=120)
        t0 = time.monotonic()
        for start in range(0, args.watches, 5000):
            xids = [c.send(zkwire.Op.EXISTS, zkwire.path_watch_body(f"/w{i:07}", True))
                    for i in range(start, min(args.watches, start + 5000))]
            for x in xids:
                assert c.read_reply(x, zkwire.Op.EXISTS).err == zkwire.Err.NONODE
        print(f"set {args.watches} watches in {time.monotonic() - t0:.1f} s")
        probe = SerialProbe(srv.port, io_timeout=120).start()
        time.sleep(2.0)
        probe.phase("during")
        took = {"wchp": [], "wchc": []}
        for _ in range(args.rounds):
            for word in ("wchp", "wchc"):
                t = time.monotonic()
                out = srv.four_letter(word, timeout=120)
                took[word].append(time.monotonic() - t)
                assert out.count("/w") >= args.watches, (word, len(out))
        probe.stop()
        for word, ts in took.items():
            print(f"  {word}: " + ", ".join(f"{x:.2f} s" for x in ts))
        for name, xs in (("before", probe.phases["before"]),
                         ("during the listings", probe.phases["during"])):
            print(f"  serial create {name}: n={len(xs)} p50={pct(xs, 0.5) * 1000:.2f} ms "
                  f"p99={pct(xs, 0.99) * 1000:.2f} ms max={max(xs) * 1000:.1f} ms")
        c.close()
    finally:
        srv.kill()


if __name__ == "__main__":
    main()
