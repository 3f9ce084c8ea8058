#!/usr/bin/env python3
"""Leader failover, wazoo and Apache ZooKeeper 3.8 side by side on this machine (issue 10).

For each system, a 3-server ensemble on 127.0.0.1-3 (the same zoo.cfg values: tickTime 2000, initLimit 10,
syncLimit 5), then ``--runs`` times: kill -9 the leader and time

- ``elected``: until the two survivors report ``Mode: leader`` and ``Mode: follower`` in ``srvr`` (polled
  every 5 ms);
- ``write``: until a fresh session on a survivor completes a create (the issue's failover metric; wazoo's
  followers do not serve sessions yet, so for it the survivor that answers is the new leader).

then restart the killed server and wait until it follows again. The systems alternate run by run (wazoo,
ZooKeeper, wazoo, ...) so that a noisy minute hurts both. Prints the medians and every sample.

    bench/failover.py --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
import harness  # noqa: E402
import zkwire  # noqa: E402


def mode(server) -> str:
    try:
        text = harness.four_letter(server.port, "srvr", timeout=0.5)
    except OSError:
        return "down"
    for line in text.splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):]
    return "looking"


def ensemble(kind: str, base: Path):
    addrs = [f"127.0.0.{i}" for i in (1, 2, 3)]
    lines = {f"server.{i + 1}": f"{a}:{harness.free_port(a)}:{harness.free_port(a)}" for i, a in enumerate(addrs)}
    servers = []
    for i in range(3):
        cfg = dict(lines)
        cfg.update({"initLimit": "10", "syncLimit": "5"})
        s = harness.ServerProcess(kind, base / f"{kind}-{i + 1}", name=f"{kind}-{i + 1}", tick_time=2000,
                                  extra_cfg=cfg)
        (s.data_dir / "myid").write_text(f"{i + 1}\n")
        servers.append(s)
    for s in servers:
        s.start(timeout=90, probe_session=False)
    return servers


def wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out: {what}")


def roles(servers) -> list:
    return sorted(mode(s) for s in servers)


def try_create(server, path: str) -> bool:
    try:
        c = zkwire.Conn(harness.HOST, server.port, timeout_ms=4000, io_timeout=0.5)
    except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError):
        return False
    try:
        r = c.create(path, b"x")
        return r.err == 0
    except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError):
        return False
    finally:
        c.close()


def one_failover(kind: str, servers, run: int) -> tuple:
    wait(lambda: roles(servers) == ["follower", "follower", "leader"], 60, f"{kind}: initial roles")
    leader = next(s for s in servers if mode(s) == "leader")
    others = [s for s in servers if s is not leader]
    t0 = time.monotonic()
    leader.kill()
    wait(lambda: roles(others) == ["follower", "leader"], 60, f"{kind}: a new leader")
    elected = time.monotonic() - t0
    path = f"/failover-{run}"
    wait(lambda: any(try_create(s, path) for s in others), 60, f"{kind}: a write")
    written = time.monotonic() - t0
    leader.start(timeout=90, probe_session=False)
    return elected, written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    for kind in ("wazoo", "zookeeper"):
        reason = harness.wazoo_missing_reason() if kind == "wazoo" else harness.zookeeper_missing_reason()
        if reason:
            print(reason, file=sys.stderr)
            return 2
    results = {"wazoo": [], "zookeeper": []}
    with tempfile.TemporaryDirectory(prefix="wazoo-failover-") as tmp:
        systems = {k: ensemble(k, Path(tmp)) for k in ("wazoo", "zookeeper")}
        try:
            for run in range(args.runs):
                for kind in ("wazoo", "zookeeper"):
                    results[kind].append(one_failover(kind, systems[kind], run))
        finally:
            for servers in systems.values():
                for s in servers:
                    s.teardown()
    for kind, rs in results.items():
        el = [r[0] for r in rs]
        line = f"{kind:9}  elected median {statistics.median(el) * 1000:7.0f} ms"
        wr = [r[1] for r in rs]
        line += f"   first write median {statistics.median(wr) * 1000:7.0f} ms"
        print(line)
        print(f"{'':9}  elected ms: {', '.join(f'{x * 1000:.0f}' for x in el)}")
        print(f"{'':9}  write ms:   {', '.join(f'{x * 1000:.0f}' for x in wr)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
