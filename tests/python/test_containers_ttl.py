"""Container and TTL nodes are reaped like ZooKeeper's ContainerManager does: a container goes once it
has had a child and is empty again (one that never had a child stays, maxNeverUsedIntervalMs being 0), a
TTL node goes once it has no children and its mtime is older than its TTL, and a setData resets that
clock. Watchers see NodeDeleted. The reaper runs every 200 ms here (znode.container.checkIntervalMs).
"""

import time

import pytest

import harness
import zkwire
from zkwire import CreateFlags, Err, EventType

INTERVAL_MS = 200


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory(
        tick_time=200, name="containers",
        extra_cfg={"znode.container.checkIntervalMs": str(INTERVAL_MS)})


def test_container_is_deleted_after_its_last_child_goes_and_watchers_see_it(srv, wire):
    c = wire(srv)
    assert c.create_container("/cont-a").ok
    assert c.create("/cont-a/child").ok
    assert c.exists("/cont-a", watch=True).ok
    assert c.delete("/cont-a/child").ok
    harness.wait_until(lambda: c.exists("/cont-a").err == Err.NONODE, timeout=10,
                       what="the emptied container to be reaped")
    # The exist watch fired exactly once, before the reply that showed the node gone.
    events = [(f.type, f.path) for f in c.frames if isinstance(f, zkwire.WatchEvent)]
    assert events == [(EventType.NODE_DELETED, "/cont-a")]


def test_container_that_never_had_a_child_stays(srv, wire):
    c = wire(srv)
    assert c.create_container("/cont-b").ok
    time.sleep(5 * INTERVAL_MS / 1000)
    assert c.exists("/cont-b").ok
    # It still reports ephemeralOwner 0 to clients.
    assert c.exists("/cont-b").value.ephemeralOwner == 0


def test_ttl_node_without_children_expires_and_one_with_children_stays(srv, wire):
    c = wire(srv)
    assert c.create_ttl("/ttl-a", b"x", ttl=300).ok
    assert c.create_ttl("/ttl-b", b"x", ttl=300).ok
    assert c.create("/ttl-b/child").ok
    harness.wait_until(lambda: c.exists("/ttl-a").err == Err.NONODE, timeout=10,
                       what="the TTL node to expire")
    assert c.exists("/ttl-b").ok


def test_set_data_resets_the_ttl_clock(srv, wire):
    c = wire(srv)
    assert c.create_ttl("/ttl-c", b"x", ttl=1500).ok
    deadline = time.monotonic() + 3.0
    # Keep touching it for longer than its TTL: it must survive.
    while time.monotonic() < deadline:
        assert c.set_data("/ttl-c", b"y").ok
        time.sleep(0.3)
    assert c.exists("/ttl-c").ok
    harness.wait_until(lambda: c.exists("/ttl-c").err == Err.NONODE, timeout=10,
                       what="the TTL node to expire once left alone")


def test_sequential_ttl_node_gets_a_suffix(srv, wire):
    c = wire(srv)
    assert c.create("/ttl-seq").ok
    r = c.create_ttl("/ttl-seq/n-", b"", flags=CreateFlags.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=60000)
    assert r.ok and r.value[0].startswith("/ttl-seq/n-00000000"), r
