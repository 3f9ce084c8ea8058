"""The data dir stays bounded: log entries older than `wazoo.logRetainTxns` behind the applied tree are
purged while the server runs, so the txn log directory's files (measured on disk: segments, the spare
segment being prepared, purged ones not yet unlinked) stay under a fixed bound while many times that bound
is written; and a restart, graceful or after SIGKILL, still recovers every node with its last data (from
the persisted tree, not from the purged log). wazoo only: ZooKeeper keeps its log until an operator purges
it.
"""

import re

import pytest

import harness

MiB = 1 << 20
# wazoo's txn log segments are preallocated files of up to 32 MiB (SEGMENT_BYTES in
# host/disk/src/segment.rs), deleted whole once everything in them is purged. With logRetainTxns=100 the
# server purges every 100 applied txns below the last 100, so the entries it must keep (at most 200 txns
# of 128 KiB = 25 MiB, plus whatever the persisted tree lags behind, which is load dependent) span two or
# three segments; with the active segment, the spare one prepared ahead of need and a purged one not yet
# unlinked the directory holds at most 6 segment-size files (typically 3 or 4 were seen). Without
# purging it would hold everything written, 300 MiB here.
SEGMENT = 32 * MiB
BOUND = 6 * SEGMENT
VALUE = 128 * 1024
WRITES = 2400
BATCH = 48


def log_dir_bytes(srv) -> tuple[int, list]:
    files = harness.files_in(srv.data_dir / "txnlog")
    return sum(n for _, n in files), files


def wazoo_only(target):
    if target != "wazoo":
        pytest.skip("log retention is a wazoo setting (ZooKeeper purges with PurgeTxnLog)")


@pytest.fixture
def srv(server_factory, target):
    wazoo_only(target)
    return server_factory(extra_cfg={"wazoo.logRetainTxns": "300"})


def test_log_is_purged_and_restart_recovers_every_node(srv, kazoo_factory):
    zk = kazoo_factory(srv)
    zk.ensure_path("/purge")
    for i in range(0, 2000, 100):
        t = zk.transaction()
        for j in range(i, i + 100):
            t.create(f"/purge/n{j:05d}", b"x" * 50)
        assert all(isinstance(r, str) for r in t.commit())
    for i in range(1000):
        zk.set("/purge/n00001", str(i).encode())
    harness.wait_until(lambda: re.search(rb"purged log entries", srv.log_bytes()), timeout=10,
                       what="a log purge")
    zk.stop()
    for kill in (False, True):
        srv.restart(kill=kill)
        zk2 = kazoo_factory(srv)
        children = zk2.get_children("/purge")
        assert len(children) == 2000, f"after a {'SIGKILL' if kill else 'graceful'} restart"
        assert zk2.get("/purge/n00001")[0] == b"999"
        assert zk2.get("/purge/n01999")[0] == b"x" * 50
        zk2.set("/purge/n00002", b"written after restart %d" % kill)
        zk2.stop()
    zk3 = kazoo_factory(srv)
    assert zk3.get("/purge/n00002")[0] == b"written after restart 1"


def test_txn_log_directory_stays_bounded_across_many_writes_and_sigkill(server_factory, target,
                                                                        kazoo_factory):
    wazoo_only(target)
    srv = server_factory(extra_cfg={"wazoo.logRetainTxns": "100"})
    zk = kazoo_factory(srv)
    keys = [f"/bounded/k{i}" for i in range(16)]
    for k in keys:
        zk.create(k, b"", makepath=True)
    last = {}
    peak, peak_files = 0, []
    for start in range(0, WRITES, BATCH):
        pending = []
        for n in range(start, start + BATCH):
            k = keys[n % len(keys)]
            last[k] = n.to_bytes(4, "big") * (VALUE // 4)
            pending.append(zk.set_async(k, last[k]))
        for p in pending:
            p.get(timeout=60)
        size, files = log_dir_bytes(srv)
        if size > peak:
            peak, peak_files = size, files
    written = WRITES * VALUE
    assert written >= BOUND + 2 * SEGMENT
    assert peak <= BOUND, (f"txn log dir reached {peak / MiB:.1f} MiB (bound {BOUND / MiB:.0f} MiB) while "
                           f"{written / MiB:.0f} MiB were written; files then: {peak_files}")
    # The purge really ran (a log that never grew past the bound would prove nothing).
    assert re.search(rb"purged log entries", srv.log_bytes())
    # Still bounded at the end.
    final, _ = log_dir_bytes(srv)
    assert final <= BOUND

    zk.stop()
    srv.restart(kill=True)
    zk2 = kazoo_factory(srv)
    for k, v in last.items():
        assert zk2.get(k)[0] == v, f"{k}: not the last acknowledged value after SIGKILL"
    assert zk2.get("/bounded/k0")[1].version == WRITES // len(keys)
    size, files = log_dir_bytes(srv)
    assert size <= BOUND, files
