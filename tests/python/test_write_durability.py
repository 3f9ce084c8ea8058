"""setData, delete and setACL are durable across SIGKILL: three sessions interleave setData (with and
without an expected version), delete (including a delete and re-create of the same path), setACL (with
digest ids, versioned) and multis of setData and delete, and record every acknowledged result. The server is SIGKILLed
right after the last reply and restarted on the same data dir; then, read with super auth:
* every node has exactly the data and Stat it had (the last acknowledged Stat of each write, and the full
  Stat read just before the kill: versions, aversion, cversion, mzxid, pzxid, numChildren, ...);
* every ACL is the last one set, and it is enforced (a stranger gets NoAuth where it should);
* deleted nodes stay deleted, a re-created node is the new one (version 0, new czxid);
* a second SIGKILL + restart right away changes nothing.
Runs against either target (ZooKeeper with forceSync=yes).
"""

from harness import SUPER_PASSWORD, SUPER_USER
from zkwire import Err, MultiOp, OPEN_ACL_UNSAFE, Perm, digest_id

ALICE = ("alice", "secret-a")
BOB = ("bob", "secret-b")


def snapshot(conn, paths):
    """path -> (data, Stat, ACL) or None for a missing node."""
    out = {}
    for p in paths:
        r = conn.get_data(p)
        if r.err == Err.NONODE:
            out[p] = None
            continue
        assert r.ok, (p, r)
        a = conn.get_acl(p)
        assert a.ok, (p, a)
        assert a.value[1] == r.value[1], p
        out[p] = (r.value[0], r.value[1], a.value[0])
    return out


def test_acknowledged_set_data_delete_and_set_acl_survive_sigkill_exactly(server_factory):
    srv = server_factory(name="durability")
    s1, s2, s3 = srv.wire(), srv.wire(), srv.wire()
    assert s2.add_digest(*ALICE).ok
    assert s3.add_digest(*BOB).ok
    alice_only = [(Perm.ALL, "digest", digest_id(*ALICE))]
    bob_rw = [(Perm.ALL, "digest", digest_id(*BOB)), (Perm.READ, "world", "anyone")]

    nodes = ["/dur"] + [f"/dur/n{i}" for i in range(12)]
    for p in nodes:
        assert s1.create(p, b"v0").ok
    acked = {}         # path -> last acknowledged Stat of a write to it
    deleted = set()

    def ok(r, path=None):
        assert r.ok, r
        if path is not None and r.value is not None:
            acked[path] = r.value
        return r

    for rnd in range(5):
        for i in range(0, 12, 3):
            p = f"/dur/n{i}"
            ok(s1.set_data(p, f"s1-{rnd}".encode()), p)                   # unconditional
            ok(s2.set_data(p, f"s2-{rnd}".encode(), acked[p].version), p)  # with the expected version
        # A stale version is refused and changes nothing.
        assert s3.set_data("/dur/n0", b"stale", acked["/dur/n0"].version - 1).err == Err.BADVERSION
    for i in (1, 4, 7):
        ok(s3.set_data(f"/dur/n{i}", b"x" * (1000 * i)), f"/dur/n{i}")
    ok(s2.set_acl("/dur/n1", alice_only, 0), "/dur/n1")
    ok(s2.set_acl("/dur/n1", alice_only + [(Perm.READ, "world", "anyone")], 1), "/dur/n1")
    ok(s3.set_acl("/dur/n4", bob_rw, -1), "/dur/n4")
    ok(s3.set_data("/dur/n4", b"bob was here"), "/dur/n4")        # bob can still write it
    assert s1.set_data("/dur/n4", b"denied").err == Err.NOAUTH
    for p in ("/dur/n2", "/dur/n5", "/dur/n8"):
        ok(s1.delete(p))
        deleted.add(p)
    ok(s2.delete("/dur/n11", 0))
    assert s1.create("/dur/n11", b"reborn").ok                  # the same path, a new node
    # A multi of setData and delete.
    r = ok(s3.multi([MultiOp.set_data("/dur/n10", b"multi", 0), MultiOp.delete("/dur/n9"),
                     MultiOp.set_data("/dur/n6", b"multi too")]))
    assert [m.err for m in r.value] == [0, 0, 0]
    acked["/dur/n10"], acked["/dur/n6"] = r.value[0].value, r.value[2].value
    deleted.add("/dur/n9")
    # A failing multi changes nothing.
    r = s3.multi([MultiOp.set_data("/dur/n3", b"never"), MultiOp.delete("/dur/n2")])
    assert r.ok and [(m.type, m.err) for m in r.value] == [(-1, Err.OK), (-1, Err.NONODE)], r

    admin = srv.wire()
    assert admin.add_digest(SUPER_USER, SUPER_PASSWORD).ok
    before = snapshot(admin, nodes)
    # The acknowledged Stats are the state (nothing wrote these nodes after their last ack).
    for p, st in acked.items():
        if p not in deleted:
            assert before[p][1] == st, p
    for p in deleted:
        assert before[p] is None, p
    assert before["/dur/n11"][0] == b"reborn" and before["/dur/n11"][1].version == 0
    assert before["/dur/n1"][2] == alice_only + [(Perm.READ, "world", "anyone")]
    assert before["/dur/n1"][1].aversion == 2
    assert before["/dur/n3"][0] == b"s2-4"                     # not the failed multi's "never"

    for round_no in range(2):
        srv.restart(kill=True)
        admin = srv.wire()
        assert admin.add_digest(SUPER_USER, SUPER_PASSWORD).ok
        after = snapshot(admin, nodes)
        for p in nodes:
            assert after[p] == before[p], f"round {round_no}: {p}: before {before[p]}, after {after[p]}"
        stranger = srv.wire()
        assert stranger.set_data("/dur/n1", b"no").err == Err.NOAUTH
        assert stranger.get_data("/dur/n1").ok                   # world READ was granted
        assert stranger.set_data("/dur/n4", b"no").err == Err.NOAUTH
        bob = srv.wire()
        assert bob.add_digest(*BOB).ok
        assert bob.exists("/dur/n4").value == before["/dur/n4"][1]
        for c in (admin, stranger, bob):
            assert c.close_session().ok
    # The data dir still takes writes after all this.
    w = srv.wire()
    assert w.set_data("/dur/n0", b"after", before["/dur/n0"][1].version).ok
    assert w.get_acl("/dur/n0").value[0] == OPEN_ACL_UNSAFE
