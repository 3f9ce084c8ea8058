"""The data dir stays bounded: log entries older than `wazoo.logRetainTxns` behind the applied tree are
purged while the server runs, and a restart still recovers every node (from the persisted tree, not
from the purged log). wazoo only: ZooKeeper keeps its log until an operator purges it.
"""

import re

import pytest

import harness


@pytest.fixture
def srv(server_factory, target):
    if target != "wazoo":
        pytest.skip("log retention is a wazoo setting (ZooKeeper purges with PurgeTxnLog)")
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
    srv.stop()
    srv.start()
    zk2 = kazoo_factory(srv)
    children = zk2.get_children("/purge")
    assert len(children) == 2000
    assert zk2.get("/purge/n00001")[0] == b"999"
