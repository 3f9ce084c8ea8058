"""Basic client-visible semantics through a real client (kazoo 2.11) plus raw frames (zkwire) where the
order of bytes on the wire is the property: CRUD, makepath, ephemeral and sequential nodes (%010d suffix,
one counter per parent shared by every create, trailing-slash sequential), Stat maintenance (versions,
cversion = creates + deletes, czxid/mzxid/pzxid relations, ephemeralOwner), one-shot watches of every kind
kazoo registers, notification-before-reply ordering, persistent and persistent-recursive watches (addWatch),
multi success and failure layouts, ACLs (digest, auth, super, InvalidACL, de-duplication), sync,
get_children(include_data) and the common error codes.
"""

import queue
import struct
import threading

import pytest
from kazoo.exceptions import (BadVersionError, InvalidACLError, NoAuthError, NoChildrenForEphemeralsError,
                              NodeExistsError, NoNodeError, NotEmptyError, RolledBackError)
from kazoo.protocol.states import EventType
from kazoo.security import ACL, Id, OPEN_ACL_UNSAFE, make_digest_acl, make_digest_acl_credential

import harness
import zkwire
from zkwire import (AddWatchMode, CreateFlags, Err, EventType as WEv, MultiOp, Op, Perm, WatchEvent, digest_id)


class Watcher:
    """Collects kazoo watch callbacks; events are delivered on kazoo's (single) callback thread, in order."""

    def __init__(self):
        self.q = queue.Queue()

    def __call__(self, event):
        self.q.put(event)

    def get(self, timeout=10.0):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("watch callback did not fire within %ss" % timeout) from None

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.q.get_nowait())
            except queue.Empty:
                return out


def fence(zk, base):
    """Return only after every watch callback for changes made so far has run.

    Kazoo runs callbacks on one thread in arrival order, and the server sends a change's notification
    before the reply to the change. So: arm a fresh watch, trigger it, wait for it; anything queued
    earlier has been delivered by then."""
    path = base + "-fence"
    zk.ensure_path(path)
    w = Watcher()
    zk.get(path, watch=w)
    zk.set(path, b"f")
    assert w.get().type == EventType.CHANGED


# ------------------------------------------------------------------------------------------------------
# CRUD

def test_create_get_set_delete_roundtrip(zk, base):
    assert zk.create(base, b"v1") == base
    data, stat = zk.get(base)
    assert data == b"v1" and stat.version == 0 and stat.dataLength == 2
    stat2 = zk.set(base, b"value-2")
    assert stat2.version == 1 and stat2.dataLength == 7
    assert zk.get(base)[0] == b"value-2"
    zk.delete(base)
    assert zk.exists(base) is None
    with pytest.raises(NoNodeError):
        zk.get(base)
    with pytest.raises(NoNodeError):
        zk.set(base, b"x")
    with pytest.raises(NoNodeError):
        zk.delete(base)


def test_create_existing_node_is_node_exists(zk, base):
    zk.create(base)
    with pytest.raises(NodeExistsError):
        zk.create(base, b"again")
    assert zk.get(base)[0] == b""


def test_create_without_parent_is_no_node_and_makepath_creates_parents(zk, base):
    with pytest.raises(NoNodeError):
        zk.create(base + "/a/b/c", b"leaf")
    assert zk.create(base + "/a/b/c", b"leaf", makepath=True) == base + "/a/b/c"
    assert zk.get(base + "/a/b/c")[0] == b"leaf"
    for p in (base, base + "/a", base + "/a/b"):
        data, stat = zk.get(p)
        assert data == b"" and stat.numChildren == 1
    zk.ensure_path(base + "/a/b/c")   # idempotent
    assert zk.get_children(base + "/a/b") == ["c"]


def test_empty_and_binary_data_round_trip(zk, base):
    blob = bytes(range(256)) * 40
    zk.create(base, blob)
    data, stat = zk.get(base)
    assert data == blob and stat.dataLength == len(blob)
    zk.set(base, b"")
    data, stat = zk.get(base)
    assert data == b"" and stat.dataLength == 0


# ------------------------------------------------------------------------------------------------------
# Ephemeral and sequential

def test_ephemeral_node_is_owned_by_session_and_persistent_by_nobody(zk, base):
    zk.create(base)
    zk.create(base + "/e", ephemeral=True)
    assert zk.exists(base + "/e").ephemeralOwner == zk.client_id[0]
    assert zk.exists(base).ephemeralOwner == 0


def test_ephemeral_cannot_have_children(zk, base):
    zk.create(base, ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(base + "/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(base + "/seq-", sequence=True)


def test_sequential_suffix_is_10_digits_from_a_per_parent_counter_shared_by_all_creates(zk, base):
    zk.create(base)
    assert zk.create(base + "/s-", sequence=True) == base + "/s-0000000000"
    zk.create(base + "/plain")                                    # counter 1 (a plain create counts too)
    assert zk.create(base + "/s-", sequence=True) == base + "/s-0000000002"
    zk.delete(base + "/plain")                                    # deletes do not advance it
    assert zk.create(base + "/other-", sequence=True, ephemeral=True) == base + "/other-0000000003"
    # A name that already ends in digits just gets the suffix appended.
    assert zk.create(base + "/x9", sequence=True) == base + "/x90000000004"
    # Trailing slash: the suffix becomes the whole name.
    assert zk.create(base + "/", sequence=True) == base + "/0000000005"
    # The counter is per parent.
    zk.create(base + "/sub")
    assert zk.create(base + "/sub/n", sequence=True) == base + "/sub/n0000000000"
    assert sorted(zk.get_children(base)) == sorted(
        ["s-0000000000", "s-0000000002", "other-0000000003", "x90000000004", "0000000005", "sub"])


def test_trailing_slash_without_sequential_is_rejected(wire, base):
    c = wire()
    assert c.create(base).ok
    assert c.create(base + "/").err == Err.BADARGUMENTS


# ------------------------------------------------------------------------------------------------------
# Stat

def test_stat_versions_and_zxid_relations(zk, base):
    zk.create(base, b"abc")
    s0 = zk.exists(base)
    assert s0.czxid == s0.mzxid == s0.pzxid > 0
    assert s0.ctime == s0.mtime > 0
    assert (s0.version, s0.cversion, s0.aversion, s0.numChildren, s0.dataLength) == (0, 0, 0, 0, 3)

    s1 = zk.set(base, b"abcdef")
    assert s1.version == 1 and s1.dataLength == 6
    assert s1.mzxid > s0.mzxid and s1.czxid == s0.czxid
    assert s1.pzxid == s0.pzxid and s1.mtime >= s0.mtime and s1.ctime == s0.ctime

    s2 = zk.set_acls(base, OPEN_ACL_UNSAFE)
    assert s2.aversion == 1
    assert s2.mzxid == s1.mzxid and s2.version == 1      # setACL does not touch mzxid/version

    zk.create(base + "/c1")
    c1 = zk.exists(base + "/c1")
    p = zk.exists(base)
    assert p.pzxid == c1.czxid and p.mzxid == s1.mzxid and p.version == 1
    assert p.cversion == 1 and p.numChildren == 1

    zk.delete(base + "/c1")
    p2 = zk.exists(base)
    assert p2.pzxid > c1.czxid and p2.numChildren == 0
    assert p2.cversion == 2                  # visible cversion counts creates and deletes

    zk.create(base + "/c2")
    p3 = zk.exists(base)
    assert p3.cversion == 3 and p3.numChildren == 1
    # zxids only grow
    assert p3.pzxid > p2.pzxid


def test_version_wraps_through_each_set(zk, base):
    zk.create(base)
    for i in range(1, 6):
        assert zk.set(base, str(i).encode()).version == i
    assert zk.exists(base).version == 5


def test_system_nodes_exist_and_root_lists_zookeeper(zk):
    assert "zookeeper" in zk.get_children("/")
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    st = zk.exists("/zookeeper")
    assert st.czxid == 0 and st.ctime == 0 and st.ephemeralOwner == 0
    acl, _ = zk.get_acls("/zookeeper/config")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(Perm.READ, "world", "anyone")]


# ------------------------------------------------------------------------------------------------------
# Watches (kazoo)

def test_data_watch_fires_node_data_changed_once(zk, base):
    zk.create(base, b"0")
    w = Watcher()
    zk.get(base, watch=w)
    zk.set(base, b"1")
    ev = w.get()
    assert (ev.type, ev.path) == (EventType.CHANGED, base)
    zk.set(base, b"2")
    fence(zk, base)
    assert w.drain() == [], "a one-shot data watch fired twice"


def test_exists_watch_on_missing_node_fires_node_created(zk, base):
    w = Watcher()
    assert zk.exists(base, watch=w) is None
    zk.create(base)
    ev = w.get()
    assert (ev.type, ev.path) == (EventType.CREATED, base)


def test_exists_watch_on_existing_node_fires_changed_and_deleted(zk, base):
    zk.create(base)
    w = Watcher()
    zk.exists(base, watch=w)
    zk.set(base, b"x")
    assert w.get().type == EventType.CHANGED
    zk.exists(base, watch=w)
    zk.delete(base)
    assert w.get().type == EventType.DELETED


def test_child_watch_fires_on_child_create_and_delete_but_not_on_data_change(zk, base):
    zk.create(base)
    w = Watcher()
    assert zk.get_children(base, watch=w) == []
    zk.create(base + "/a")
    ev = w.get()
    assert (ev.type, ev.path) == (EventType.CHILD, base)
    zk.get_children(base, watch=w)
    zk.set(base, b"data")          # data change on the parent: not a child event
    zk.set(base + "/a", b"data")   # data change on a child: not a child event either
    zk.delete(base + "/a")
    ev = w.get()
    assert (ev.type, ev.path) == (EventType.CHILD, base)
    fence(zk, base)
    assert w.drain() == []


def test_delete_fires_node_deleted_on_data_and_child_watches_and_child_event_on_parent(zk, base):
    zk.create(base + "/n", makepath=True)
    wd, wc, wp = Watcher(), Watcher(), Watcher()
    zk.get(base + "/n", watch=wd)
    zk.get_children(base + "/n", watch=wc)
    zk.get_children(base, watch=wp)
    zk.delete(base + "/n")
    assert (wd.get().type, wc.get().type) == (EventType.DELETED, EventType.DELETED)
    ev = wp.get()
    assert (ev.type, ev.path) == (EventType.CHILD, base)


def test_watches_of_one_client_do_not_fire_for_another_clients_reads(kazoo_factory, base):
    a, b = kazoo_factory(), kazoo_factory()
    a.create(base, b"0")
    wa = Watcher()
    a.get(base, watch=wa)
    b.sync(base)                    # b's member has a's create (an ensemble's members may lag)
    b.get(base)                     # a read by another session triggers nothing
    b.set(base, b"1")               # a write by another session triggers a's watch
    ev = wa.get()
    assert (ev.type, ev.path) == (EventType.CHANGED, base)


def test_kazoo_data_watch_recipe_follows_every_change_until_deletion(zk, base):
    seen = queue.Queue()

    @zk.DataWatch(base)
    def watch(data, stat):
        seen.put((data, None if stat is None else stat.version))

    assert seen.get(timeout=10) == (None, None)          # missing at first
    zk.create(base, b"a")
    assert seen.get(timeout=10) == (b"a", 0)
    zk.set(base, b"b")
    assert seen.get(timeout=10) == (b"b", 1)
    zk.delete(base)
    assert seen.get(timeout=10) == (None, None)


def test_kazoo_children_watch_recipe_tracks_the_child_set(zk, base):
    zk.create(base)
    seen = queue.Queue()
    zk.ChildrenWatch(base)(lambda children: seen.put(sorted(children)))
    assert seen.get(timeout=10) == []
    zk.create(base + "/a")
    assert seen.get(timeout=10) == ["a"]
    zk.create(base + "/b")
    assert seen.get(timeout=10) == ["a", "b"]
    zk.delete(base + "/a")
    assert seen.get(timeout=10) == ["b"]


# ------------------------------------------------------------------------------------------------------
# Notification ordering and persistent watches (raw frames)

def test_notification_frame_precedes_the_reply_of_the_write_that_caused_it(wire, base):
    c = wire()
    assert c.create(base, b"0").ok
    assert c.get_data(base, watch=True).ok
    xid = c.send(Op.SET_DATA, zkwire.set_data_body(base, b"1", -1))
    first = c.read_any()
    second = c.read_any()
    assert isinstance(first, WatchEvent), f"first frame after setData was {first!r}, not the notification"
    assert (first.type, first.state, first.path) == (WEv.NODE_DATA_CHANGED, 3, base)
    assert not isinstance(second, WatchEvent) and second.xid == xid and second.err == 0
    # ZooKeeper <= 3.8 sends -1 as the notification zxid, 3.9+ the txn zxid; both are compatible.
    assert first.zxid in (-1, second.zxid)


def test_notification_precedes_a_later_read_reply_on_another_connection(wire, base):
    a, b = wire(), wire()
    assert b.exists(base, watch=True).err == Err.NONODE
    assert a.create(base, b"new").ok
    r = b.get_data(base)           # the read reveals the node: the NodeCreated event must come first
    assert [e.key() for e in r.events] == [(WEv.NODE_CREATED, 3, base)]
    assert r.value[0] == b"new"


def test_exists_on_missing_node_registers_watch_but_get_data_does_not(wire, base):
    a, b = wire(), wire()
    assert b.exists(base + "-e", watch=True).err == Err.NONODE
    assert b.get_data(base + "-g", watch=True).err == Err.NONODE
    assert b.get_children(base + "-c", watch=True).err == Err.NONODE
    for suffix in ("-g", "-c", "-e"):
        assert a.create(base + suffix).ok
    r = b.sync("/")
    assert [e.key() for e in r.events] == [(WEv.NODE_CREATED, 3, base + "-e")]


def test_one_notification_per_connection_when_data_and_child_watch_see_a_delete(wire, base):
    a, b = wire(), wire()
    assert a.create(base).ok
    assert not b.sync(base).err   # b's member has the node (an ensemble's members may lag)
    assert b.get_data(base, watch=True).ok
    assert b.exists(base, watch=True).ok
    assert b.get_children(base, watch=True).ok
    assert a.delete(base).ok
    r = b.sync("/")
    assert [e.key() for e in r.events] == [(WEv.NODE_DELETED, 3, base)]


def test_pipelined_requests_are_answered_in_order(wire, base):
    c = wire()
    assert c.create(base).ok
    body = b"".join(zkwire.frame(struct.pack(">ii", x, Op.EXISTS) + zkwire.path_watch_body(
        base if x % 2 else base + "/missing", False)) for x in range(1, 101))
    c._xid = 100
    c.send_raw(body)
    for x in range(1, 101):
        r = c.read_any()
        assert r.xid == x and r.err == (0 if x % 2 else Err.NONODE)


def test_persistent_watch_fires_repeatedly_for_node_and_child_changes(wire, base):
    c = wire()
    r = c.add_watch(base, AddWatchMode.PERSISTENT)
    assert r.err == 0 and r.body == b"\x00\x00\x00\x00", f"addWatch reply must carry a 4-byte 0: {r.raw!r}"

    def evs(reply):
        assert reply.ok, reply
        return [e.key() for e in reply.events]

    assert evs(c.create(base, b"0")) == [(WEv.NODE_CREATED, 3, base)]
    assert evs(c.set_data(base, b"1")) == [(WEv.NODE_DATA_CHANGED, 3, base)]
    assert evs(c.set_data(base, b"2")) == [(WEv.NODE_DATA_CHANGED, 3, base)]     # still armed
    assert evs(c.create(base + "/k")) == [(WEv.NODE_CHILDREN_CHANGED, 3, base)]
    assert evs(c.create(base + "/k/g")) == []                                  # not recursive
    assert evs(c.set_data(base + "/k", b"x")) == []
    assert evs(c.delete(base + "/k/g")) == []
    assert evs(c.delete(base + "/k")) == [(WEv.NODE_CHILDREN_CHANGED, 3, base)]
    assert evs(c.delete(base)) == [(WEv.NODE_DELETED, 3, base)]
    assert evs(c.create(base)) == [(WEv.NODE_CREATED, 3, base)]                # survives the delete


def test_persistent_recursive_watch_sees_the_subtree_without_child_events(wire, base):
    c = wire()
    r = c.add_watch(base, AddWatchMode.PERSISTENT_RECURSIVE)
    assert r.err == 0 and r.body == b"\x00\x00\x00\x00"

    def evs(reply):
        assert reply.ok, reply
        return [e.key() for e in reply.events]

    assert evs(c.create(base)) == [(WEv.NODE_CREATED, 3, base)]
    assert evs(c.create(base + "/a", b"")) == [(WEv.NODE_CREATED, 3, base + "/a")]
    assert evs(c.create(base + "/a/b")) == [(WEv.NODE_CREATED, 3, base + "/a/b")]
    assert evs(c.set_data(base + "/a/b", b"1")) == [(WEv.NODE_DATA_CHANGED, 3, base + "/a/b")]
    assert evs(c.set_data(base + "/a/b", b"2")) == [(WEv.NODE_DATA_CHANGED, 3, base + "/a/b")]
    assert evs(c.delete(base + "/a/b")) == [(WEv.NODE_DELETED, 3, base + "/a/b")]
    assert evs(c.create(base + "-sibling")) == []                              # not under base
    m = c.multi([MultiOp.create(base + "/m1"), MultiOp.set_data(base + "/a", b"z")])
    assert evs(m) == [(WEv.NODE_CREATED, 3, base + "/m1"), (WEv.NODE_DATA_CHANGED, 3, base + "/a")]


def test_persistent_watch_notifies_other_connections_too(wire, base):
    a, b = wire(), wire()
    assert b.add_watch(base, AddWatchMode.PERSISTENT_RECURSIVE).ok
    assert a.create(base).ok
    assert a.create(base + "/x").ok
    assert a.set_data(base + "/x", b"1").ok
    r = b.sync("/")
    assert [e.key() for e in r.events] == [(WEv.NODE_CREATED, 3, base), (WEv.NODE_CREATED, 3, base + "/x"),
                                           (WEv.NODE_DATA_CHANGED, 3, base + "/x")]


# ------------------------------------------------------------------------------------------------------
# multi

def test_transaction_success_returns_per_op_results_and_applies_atomically(zk, base):
    zk.create(base)
    zk.create(base + "/old", b"o")
    t = zk.transaction()
    t.create(base + "/new", b"n")
    t.set_data(base + "/old", b"o2")
    t.check(base + "/old", 1)            # sees the pending setData
    t.delete(base + "/new")
    t.create(base + "/seq-", sequence=True)
    res = t.commit()
    assert res[0] == base + "/new"
    assert res[1].version == 1
    assert res[2] is True and res[3] is True
    assert res[4] == base + "/seq-0000000002"
    assert zk.get(base + "/old")[0] == b"o2"
    assert zk.exists(base + "/new") is None
    # one zxid for the whole multi
    assert zk.exists(base + "/old").mzxid == zk.exists(base + "/seq-0000000002").czxid


def test_failed_transaction_reports_rolled_back_then_real_error_and_changes_nothing(zk, base):
    zk.create(base)
    t = zk.transaction()
    t.create(base + "/a")
    t.delete(base + "/missing")
    res = t.commit()
    assert [type(r) for r in res] == [RolledBackError, NoNodeError]
    assert zk.exists(base + "/a") is None
    assert zk.exists(base).cversion == 0


def test_failed_multi_raw_layout_header_ok_and_error_results_0_code_minus2(wire, base):
    c = wire()
    assert c.create(base, b"v").ok
    r = c.multi([MultiOp.create(base + "/x"), MultiOp.check(base, 7), MultiOp.set_data(base, b"w")])
    assert r.err == 0, "a failed multi still has ReplyHeader err 0"
    assert [m.key() for m in r.value] == [(-1, 0, 0), (-1, Err.BADVERSION, Err.BADVERSION), (-1, -2, -2)]
    # byte layout: MultiHeader{-1,false,err} ErrorResponse{err} ... MultiHeader{-1,true,-1}
    expect = b"".join(struct.pack(">i?ii", -1, False, e, e) for e in (0, Err.BADVERSION, -2))
    expect += struct.pack(">i?i", -1, True, -1)
    assert r.body == expect
    assert c.get_data(base).value[0] == b"v"
    assert c.exists(base + "/x").err == Err.NONODE


def test_multi_sequential_creates_get_consecutive_suffixes_and_one_zxid(wire, base):
    c = wire()
    assert c.create(base).ok
    r = c.multi([MultiOp.create(base + "/q-", flags=CreateFlags.PERSISTENT_SEQUENTIAL)] * 3)
    assert r.ok
    assert [m.value for m in r.value] == [f"{base}/q-{i:010d}" for i in range(3)]
    stats = [c.exists(m.value).value for m in r.value]
    assert len({s.czxid for s in stats}) == 1


def test_empty_multi_returns_only_the_terminator(wire):
    c = wire()
    r = c.multi([])
    assert r.ok and r.value == []


# ------------------------------------------------------------------------------------------------------
# ACLs

def test_digest_acl_denies_other_sessions_and_admits_the_same_credentials(kazoo_factory, base):
    owner = kazoo_factory(auth_data=[("digest", "alice:secret")])
    other = kazoo_factory()
    same = kazoo_factory(auth_data=[("digest", "alice:secret")])
    wrong = kazoo_factory(auth_data=[("digest", "alice:guess")])
    owner.create(base, b"private", acl=[make_digest_acl("alice", "secret", all=True)])
    for c in (other, wrong, same):
        c.sync(base)   # each client's member has the node (an ensemble's members may lag)
    for c in (other, wrong):
        with pytest.raises(NoAuthError):
            c.get(base)
        with pytest.raises(NoAuthError):
            c.set(base, b"x")
        with pytest.raises(NoAuthError):
            c.create(base + "/child")
    assert same.get(base)[0] == b"private"
    same.create(base + "/child")
    with pytest.raises(NoAuthError):
        other.delete(base + "/child")     # DELETE is checked on the parent
    same.delete(base + "/child")


def test_read_only_world_acl_allows_reads_and_denies_writes(kazoo_factory, base):
    owner, other = kazoo_factory(), kazoo_factory()
    owner.create(base, b"r", acl=[ACL(Perm.READ, Id("world", "anyone"))])
    assert other.get(base)[0] == b"r"
    with pytest.raises(NoAuthError):
        other.set(base, b"w")
    with pytest.raises(NoAuthError):
        other.create(base + "/c")
    with pytest.raises(NoAuthError):
        other.set_acls(base, OPEN_ACL_UNSAFE)


def test_auth_scheme_expands_to_the_callers_digest_identity(kazoo_factory, base):
    c = kazoo_factory(auth_data=[("digest", "bob:pw")])
    c.create(base, acl=[ACL(Perm.ALL, Id("auth", ""))])
    acl, stat = c.get_acls(base)
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(Perm.ALL, "digest", digest_id("bob", "pw"))]


def test_auth_scheme_without_authentication_is_invalid_acl(zk, base):
    with pytest.raises(InvalidACLError):
        zk.create(base, acl=[ACL(Perm.ALL, Id("auth", ""))])


def test_empty_acl_is_invalid_acl(zk, wire, base):
    # kazoo's create() turns acl=[] into its default ACL, so the empty-list create is sent raw.
    c = wire()
    assert c.create(base, acl=[]).err == Err.INVALIDACL
    assert c.exists(base).err == Err.NONODE
    zk.create(base)
    with pytest.raises(InvalidACLError):
        zk.set_acls(base, [])
    assert c.set_acl(base, []).err == Err.INVALIDACL


def test_super_user_bypasses_acls(kazoo_factory, base):
    owner = kazoo_factory(auth_data=[("digest", "carol:pw")])
    owner.create(base, b"locked", acl=[make_digest_acl("carol", "pw", all=True)])
    owner.create(base + "/c", acl=[make_digest_acl("carol", "pw", read=True)])
    su = kazoo_factory(auth_data=[("digest", f"{harness.SUPER_USER}:{harness.SUPER_PASSWORD}")])
    assert su.get(base)[0] == b"locked"
    su.set(base, b"overwritten")
    su.set_acls(base + "/c", OPEN_ACL_UNSAFE)
    su.delete(base + "/c")
    su.delete(base)
    assert su.exists(base) is None


def test_duplicate_acl_entries_are_removed(kazoo_factory, base):
    zk = kazoo_factory(auth_data=[("digest", "dave:pw")])    # has ADMIN, so getACL shows digest ids unmasked
    digest = make_digest_acl("dave", "pw", all=True)
    zk.create(base, acl=[digest, digest, ACL(Perm.READ, Id("world", "anyone")),
                         ACL(Perm.READ, Id("world", "anyone"))])
    acl, _ = zk.get_acls(base)
    assert sorted((a.perms, a.id.scheme, a.id.id) for a in acl) == sorted(
        [(Perm.ALL, "digest", digest_id("dave", "pw")), (Perm.READ, "world", "anyone")])


def test_set_acls_checks_the_acl_version(zk, base):
    zk.create(base)
    s = zk.set_acls(base, [ACL(Perm.ALL, Id("world", "anyone"))], version=0)
    assert s.aversion == 1
    with pytest.raises(BadVersionError):
        zk.set_acls(base, OPEN_ACL_UNSAFE, version=0)
    assert zk.set_acls(base, OPEN_ACL_UNSAFE, version=-1).aversion == 2


def test_make_digest_acl_credential_matches_server_digest(kazoo_factory, base):
    cred = make_digest_acl_credential("erin", "pw")
    assert cred == digest_id("erin", "pw")
    c = kazoo_factory(auth_data=[("digest", "erin:pw")])
    c.create(base, acl=[ACL(Perm.ALL, Id("digest", cred))])
    assert c.get(base)[0] == b""


# ------------------------------------------------------------------------------------------------------
# Misc

def test_sync_returns_the_path(zk, base):
    assert zk.sync(base) == base
    assert zk.sync("/") == "/"


def test_get_children_include_data_returns_the_parent_stat(zk, base):
    zk.create(base + "/a", makepath=True)
    zk.create(base + "/b")
    children, stat = zk.get_children(base, include_data=True)
    assert sorted(children) == ["a", "b"]
    assert stat.numChildren == 2 and stat.cversion == 2 and stat == zk.exists(base)


def test_create_include_data_returns_the_new_stat(zk, base):
    path, stat = zk.create(base, b"xyz", include_data=True)
    assert path == base and stat.dataLength == 3 and stat.version == 0
    assert stat == zk.exists(base)


def test_delete_non_empty_node_is_not_empty(zk, base):
    zk.create(base + "/child", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete(base)
    zk.delete(base, recursive=True)
    assert zk.exists(base) is None


def test_versioned_set_and_delete_report_bad_version(zk, base):
    zk.create(base)
    with pytest.raises(BadVersionError):
        zk.set(base, b"x", version=3)
    assert zk.set(base, b"x", version=0).version == 1
    with pytest.raises(BadVersionError):
        zk.delete(base, version=0)
    zk.delete(base, version=1)
    assert zk.exists(base) is None


def test_concurrent_versioned_sets_only_one_wins(kazoo_factory, base):
    clients = [kazoo_factory() for _ in range(4)]
    clients[0].create(base, b"0")
    results = []
    barrier = threading.Barrier(len(clients))

    def run(c):
        barrier.wait()
        try:
            c.set(base, b"mine", version=0)
            results.append("ok")
        except BadVersionError:
            results.append("bad")

    ts = [threading.Thread(target=run, args=(c,)) for c in clients]
    [t.start() for t in ts]
    [t.join(30) for t in ts]
    assert sorted(results) == ["bad", "bad", "bad", "ok"]
    assert clients[1].exists(base).version == 1
