"""Container and TTL nodes are reaped like ZooKeeper's ContainerManager does: a container goes once it
has had a child and is empty again (one that never had a child stays, maxNeverUsedIntervalMs being 0), a
TTL node goes once it has no children and its mtime is older than its TTL, and a setData resets that
clock. Watchers see NodeDeleted. The reaper runs every 200 ms here (znode.container.checkIntervalMs).
Nothing waits on a fixed sleep for a deletion: tests wait for the condition, and where a node must survive
they compare it with a twin created in the same multi.
"""

import time

import pytest

import harness
import zkwire
from zkwire import CreateFlags, Err, EventType, Op, create_ttl_body

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
    ttl = 300
    c = wire(srv)
    assert c.create_ttl("/ttl-a", b"x", ttl=ttl).ok
    # /ttl-b gets its child in the same multi: it is never childless, however slow this machine is.
    r = c.multi([zkwire.MultiOp(Op.CREATE_TTL, create_ttl_body("/ttl-b", b"x", zkwire.OPEN_ACL_UNSAFE,
                                                               CreateFlags.PERSISTENT_WITH_TTL, ttl)),
                 zkwire.MultiOp.create("/ttl-b/child")])
    assert r.ok and [m.err for m in r.value] == [0, 0], r
    harness.wait_until(lambda: c.exists("/ttl-a").err == Err.NONODE, timeout=10,
                       what="the TTL node to expire")
    # The reaper has seen /ttl-b past its TTL at least once by now; give it a few more passes.
    time.sleep(3 * INTERVAL_MS / 1000)
    assert c.exists("/ttl-b").ok


def test_set_data_resets_the_ttl_clock(srv, wire):
    ttl = 2500
    c = wire(srv)
    # Created together: /ttl-c is touched with setData, /ttl-d is left alone. Once the reaper has taken
    # /ttl-d, /ttl-c's creation is older than its TTL too: only the setData calls can be keeping it.
    r = c.multi([zkwire.MultiOp(Op.CREATE_TTL, create_ttl_body(p, b"x", zkwire.OPEN_ACL_UNSAFE,
                                                               CreateFlags.PERSISTENT_WITH_TTL, ttl))
                 for p in ("/ttl-c", "/ttl-d")])
    assert r.ok, r
    touches = []
    gone_at = None
    deadline = time.monotonic() + ttl / 1000 + 15
    # Touch /ttl-c every 100 ms (a margin of ~2.4 s against a stalled machine) until /ttl-d has been gone
    # for a few reaper passes.
    while gone_at is None or time.monotonic() < gone_at + 3 * INTERVAL_MS / 1000:
        assert time.monotonic() < deadline, "the untouched TTL node never expired"
        touches.append(time.monotonic())
        r = c.set_data("/ttl-c", b"y")
        gaps = [b - a for a, b in zip(touches, touches[1:])]
        assert r.ok, f"{r}: the touched TTL node expired; longest gap between touches {max(gaps, default=0):.2f}s"
        if gone_at is None and c.exists("/ttl-d").err == Err.NONODE:
            gone_at = time.monotonic()
        time.sleep(0.1)
    assert c.exists("/ttl-c").ok
    harness.wait_until(lambda: c.exists("/ttl-c").err == Err.NONODE, timeout=ttl / 1000 + 10,
                       what="the TTL node to expire once left alone")


def test_sequential_ttl_node_gets_a_suffix(srv, wire):
    c = wire(srv)
    assert c.create("/ttl-seq").ok
    r = c.create_ttl("/ttl-seq/n-", b"", flags=CreateFlags.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=60000)
    assert r.ok and r.value[0].startswith("/ttl-seq/n-00000000"), r
