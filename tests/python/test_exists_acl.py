"""`exists` on a node whose ACL denies the caller READ.

ZooKeeper changed this in 3.8.4 / 3.9.2 (ZOOKEEPER-2590, apache/zookeeper#2093): before, exists checked no
ACL at all; since, an existing node needs READ (-102 NoAuth otherwise, and no watch is left), while a
missing node is still NoNode whatever its parent's ACL (so only existence can be probed, as before). The
Debian ZooKeeper the suite validates against is 3.8.0: there exists succeeds, returns the Stat and sets
the watch. (Both versions deliver a watch event only to a watcher that may READ the node, so the test
grants READ before the change that would fire the watch.) wazoo implements the 3.8.4+ rule (README: "per-op permission checks of 3.8.4+/3.9.2+ (exists
needs READ ...)"), so the expectation depends on the target; both branches are exact, and the parts both
versions agree on (a caller with only READ succeeds, a missing node is NoNode, getData is NoAuth) are
asserted for both.
"""

from zkwire import Err, EventType, Perm, digest_id

OWNER = ("owner", "pw")


def test_exists_without_read_permission(server, target, wire, base):
    owner = wire(server)
    assert owner.add_digest(*OWNER).ok
    me = [(Perm.ALL, "digest", digest_id(*OWNER))]
    no_read = me + [(Perm.ALL & ~Perm.READ, "world", "anyone")]
    read_only = me + [(Perm.READ, "world", "anyone")]
    assert owner.create(base, b"", acl=no_read).ok
    assert owner.create(base + "/secret", b"hidden", acl=no_read).ok
    assert owner.create(base + "/readable", b"open", acl=read_only).ok
    st_secret = owner.exists(base + "/secret").value

    stranger = wire(server)
    # What every version agrees on.
    assert stranger.get_data(base + "/secret").err == Err.NOAUTH
    assert stranger.get_children(base).err == Err.NOAUTH
    r = stranger.exists(base + "/readable")
    assert r.ok and r.value.dataLength == 4
    assert stranger.exists(base + "/missing", watch=True).err == Err.NONODE   # parent unreadable: still NoNode

    r = stranger.exists(base + "/secret", watch=True)
    if target == "zookeeper":
        # 3.8.0: no ACL check; the Stat is the real one and the watch is set.
        assert r.ok and r.value == st_secret, r
        expected_events = [(EventType.NODE_DATA_CHANGED, base + "/secret")]
    else:
        # 3.8.4+: READ required; nothing is revealed and no watch is left behind.
        assert (r.err, r.body) == (Err.NOAUTH, b""), r
        expected_events = []
    # Both versions deliver an event only to a watcher that may READ the node: grant READ first, so the
    # change shows whether the exists above left a watch.
    assert owner.set_acl(base + "/secret", read_only).ok
    assert owner.set_data(base + "/secret", b"changed").ok
    assert owner.create(base + "/missing").ok        # the NoNode exists above did set its watch
    r = stranger.sync("/")
    got = [(e.type, e.path) for e in r.events + stranger.take_events()]
    assert got == expected_events + [(EventType.NODE_CREATED, base + "/missing")], got
