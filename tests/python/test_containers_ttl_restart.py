"""Container and TTL nodes across a restart (graceful and SIGKILL): their types and clocks survive it.

Before the restart the reaper is effectively off (znode.container.checkIntervalMs = 10 minutes), so
nothing is reaped before it; the server then restarts with a 200 ms interval. After the restart:
* a container emptied before the restart is reaped;
* a TTL node without children whose TTL (1 s) ran out around the restart is reaped;
* a container with a child and a TTL node with a child stay (several reaper passes later), and once their
  child is deleted they are reaped too: they are still a container and a TTL node;
* a container that never had a child stays (maxNeverUsedIntervalMs is 0).
Runs against either target (ZooKeeper reads the container settings as system properties; the harness
passes them).
"""

import time

import pytest

import harness
import zkwire
from zkwire import CreateFlags, Err, Op, create_ttl_body

FAST_MS = 200
OFF_MS = 600_000
TTL_MS = 1000


def ttl_op(path, ttl=TTL_MS):
    return zkwire.MultiOp(Op.CREATE_TTL, create_ttl_body(path, b"t", zkwire.OPEN_ACL_UNSAFE,
                                                         CreateFlags.PERSISTENT_WITH_TTL, ttl))


def container_op(path):
    return zkwire.MultiOp(Op.CREATE_CONTAINER, zkwire.create_body(path, b"c", zkwire.OPEN_ACL_UNSAFE,
                                                                   CreateFlags.CONTAINER))


def set_reaper_interval(srv, ms):
    srv.extra_cfg["znode.container.checkIntervalMs"] = str(ms)
    srv._write_config()


@pytest.mark.parametrize("kill", [False, True], ids=["graceful", "sigkill"])
def test_containers_and_ttl_nodes_keep_their_type_and_are_reaped_after_a_restart(server_factory, kill):
    srv = server_factory(tick_time=200, extra_cfg={"znode.container.checkIntervalMs": str(OFF_MS)})
    c = srv.wire()
    # Every node is created with its child in one multi, so none is ever reapable for lack of a child.
    r = c.multi([container_op("/ctr-emptied"), zkwire.MultiOp.create("/ctr-emptied/child"),
                 container_op("/ctr-full"), zkwire.MultiOp.create("/ctr-full/child"),
                 container_op("/ctr-never"),
                 ttl_op("/ttl-full"), zkwire.MultiOp.create("/ttl-full/child")])
    assert r.ok and all(m.err == 0 for m in r.value), r
    assert c.delete("/ctr-emptied/child").ok
    assert c.create_ttl("/ttl-alone", b"t", ttl=TTL_MS).ok
    created = time.monotonic()
    # The reaper is off: nothing goes before the restart, even past the TTL.
    time.sleep(max(0.0, created + TTL_MS / 1000 + 0.3 - time.monotonic()))
    for p in ("/ctr-emptied", "/ctr-full", "/ctr-never", "/ttl-full", "/ttl-alone"):
        assert c.exists(p).ok, p

    set_reaper_interval(srv, FAST_MS)
    srv.restart(kill=kill)
    v = srv.wire()
    harness.wait_until(lambda: v.exists("/ctr-emptied").err == Err.NONODE
                       and v.exists("/ttl-alone").err == Err.NONODE,
                       timeout=15, what="the emptied container and the expired TTL node to be reaped")
    time.sleep(3 * FAST_MS / 1000)             # a few more passes: the others stay
    for p in ("/ctr-full", "/ctr-full/child", "/ctr-never", "/ttl-full", "/ttl-full/child"):
        assert v.exists(p).ok, f"{p} was reaped after the restart"
    # Still a container and a TTL node: without their child they go.
    assert v.delete("/ctr-full/child").ok
    assert v.delete("/ttl-full/child").ok
    harness.wait_until(lambda: v.exists("/ctr-full").err == Err.NONODE
                       and v.exists("/ttl-full").err == Err.NONODE,
                       timeout=15, what="the container and the TTL node to be reaped once childless")
    assert v.exists("/ctr-never").ok
