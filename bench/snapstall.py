#!/usr/bin/env python3
"""How long a leader stops while it sends a SNAP (issue 10, item 3: "SNAP streams a consistent
snapshot without stopping the leader").

A 3-server wazoo ensemble on 127.0.0.1-3 with a 1 MiB DIFF window; the tree is filled with
``--nodes`` znodes of ``--size`` bytes; a follower is killed, more than the window is written,
and the follower restarts, so the leader must send it the whole tree. Meanwhile one client on the
leader does serial creates: their latencies from the restart until the follower is synced again
are compared with the same client's latencies before the restart (no SNAP). Prints the max and
p99 of both, and the time the SNAP took; and the memory the SNAP cost each side, sampled from
/proc every 10 ms: the leader's peak RSS during the SNAP above its RSS before it, and the
follower's peak RSS while it syncs above its RSS once synced and settled.

    bench/snapstall.py --nodes 100000 --size 512     # uses $WAZOO_BIN (default: the debug build)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
import harness  # noqa: E402
import zkwire  # noqa: E402
from failover import mode  # noqa: E402  (bench/ is the script's directory)
from serialprobe import SerialProbe, pct  # noqa: E402


def mntr(s) -> dict:
    text = harness.four_letter(s.port, "mntr", timeout=2.0)
    return dict(l.split("\t", 1) for l in text.splitlines() if "\t" in l)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wazoo-snapstall-"))
    addrs = [f"127.0.0.{i}" for i in (1, 2, 3)]
    lines = {f"server.{i + 1}": f"{a}:{harness.free_port(a)}:{harness.free_port(a)}" for i, a in enumerate(addrs)}
    servers = []
    for i in range(3):
        cfg = dict(lines)
        cfg.update({"initLimit": "50", "syncLimit": "25", "wazoo.diffWindowBytes": str(1 << 20)})
        s = harness.ServerProcess("wazoo", base / f"m{i + 1}", name=f"m{i + 1}", tick_time=200, extra_cfg=cfg)
        (s.data_dir / "myid").write_text(f"{i + 1}\n")
        servers.append(s)
    try:
        for s in servers:
            s.start(probe_session=False)
        deadline = time.monotonic() + 30
        while sorted(mode(s) for s in servers) != ["follower", "follower", "leader"]:
            assert time.monotonic() < deadline, "no leader"
            time.sleep(0.05)
        leader = next(s for s in servers if mode(s) == "leader")
        follower = next(s for s in servers if s is not leader)
        c = zkwire.Conn(harness.HOST, leader.port, timeout_ms=30000, io_timeout=60)
        payload = b"x" * args.size
        t0 = time.monotonic()
        for start in range(0, args.nodes, 1000):
            xids = [c.send(zkwire.Op.CREATE, zkwire.create_body(f"/n{i}", payload))
                    for i in range(start, min(args.nodes, start + 1000))]
            for x in xids:
                assert c.read_reply(x, zkwire.Op.CREATE).err == 0
        print(f"filled {args.nodes} nodes of {args.size} B in {time.monotonic() - t0:.1f} s")
        follower.kill()
        # Past the 1 MiB DIFF window whatever the payload, so that the follower needs a SNAP.
        for i in range(max(3000, (2 << 20) // max(args.size, 1))):
            assert c.create(f"/after{i}", payload).err == 0

        probe = SerialProbe(leader.port).start()
        time.sleep(3.0)
        snaps = int(mntr(leader)["zk_snap_count"])
        probe.phase("during")
        leader_before = rss_mib(leader.proc.pid)
        t1 = time.monotonic()
        follower.start(probe_session=False)
        peaks = {"leader": leader_before, "follower": 0.0}
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                peaks["leader"] = max(peaks["leader"], rss_mib(leader.proc.pid))
                peaks["follower"] = max(peaks["follower"], rss_mib(follower.proc.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        deadline = time.monotonic() + 300
        while not (mode(follower) == "follower" and int(mntr(leader)["zk_snap_count"]) > snaps
                   and int(mntr(leader).get("zk_synced_followers", "0")) == 2):
            assert time.monotonic() < deadline, "the follower was not synced by a SNAP within 300 s"
            time.sleep(0.01)
        synced = time.monotonic() - t1
        time.sleep(0.5)
        sampling.set()
        sampler.join()
        probe.stop()
        time.sleep(2.0)
        follower_after = rss_mib(follower.proc.pid)
        print(f"follower restarted and synced by SNAP in {synced:.2f} s")
        print(f"  leader RSS: {leader_before:.0f} MiB before, peak {peaks['leader']:.0f} MiB during the SNAP "
              f"(+{peaks['leader'] - leader_before:.0f} MiB)")
        print(f"  follower RSS: peak {peaks['follower']:.0f} MiB while syncing, {follower_after:.0f} MiB synced "
              f"(+{peaks['follower'] - follower_after:.0f} MiB)")
        for name, xs in (("before (no SNAP)", probe.phases["before"]),
                         ("during the SNAP", probe.phases["during"])):
            print(f"  leader serial create latency {name}: n={len(xs)} p50={pct(xs, 0.5) * 1000:.1f} ms "
                  f"p99={pct(xs, 0.99) * 1000:.1f} ms max={max(xs) * 1000:.1f} ms")
        c.close()
    finally:
        for s in servers:
            s.kill()


if __name__ == "__main__":
    main()
