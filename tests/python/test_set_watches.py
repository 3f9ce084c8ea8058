"""setWatches (101) and setWatches2 (105) after a reconnect.

A client sets data, exist and child watches (and, for setWatches2, persistent and persistent-recursive
watches with addWatch), loses its TCP connection, other clients change things meanwhile, and the client
resumes its session (session id + password) on a new connection and sends setWatches / setWatches2 with
the last zxid it saw (xid -8). Then:

* the notifications for what changed after that zxid arrive at once, before the setWatches reply: a data
  watch on a node changed -> NodeDataChanged, on a node deleted -> NodeDeleted; an exist watch on a node
  now present -> NodeCreated; a child watch on a node whose children changed -> NodeChildrenChanged, on
  a deleted node -> NodeDeleted; nothing for watches whose node did not change;
* the watches that did not fire are registered again and fire on later changes (once: they are ordinary
  one-shot watches), the ones that fired are not;
* persistent watches get no catch-up notification (ZooKeeper only re-adds them) and keep firing for every
  later change, a persistent-recursive one for the whole subtree.

Runs against either target; every expected list was checked against ZooKeeper 3.8.
"""

import pytest

from zkwire import AddWatchMode, CreateFlags, EventType as E, SET_WATCHES_XID

CONNECTED = 3     # KeeperState.SyncConnected


def keys(events):
    return sorted((e.type, e.state, e.path) for e in events)


def ev(typ, path):
    return (typ, CONNECTED, path)


def settle(conn):
    """Notifications caused by writes acknowledged so far (on any connection) arrive before the reply to a
    sync sent afterwards on this connection; returns them."""
    r = conn.sync("/")
    assert r.ok, r
    return r.events + conn.take_events()


def resume(srv, wire, old, last_zxid):
    """The same session on a new TCP connection, the old one already closed."""
    c = wire(srv, session_id=old.session_id, passwd=old.passwd, last_zxid=last_zxid,
             timeout_ms=old.negotiated_timeout)
    assert c.session_id == old.session_id and c.negotiated_timeout > 0, "the session could not be resumed"
    return c


@pytest.fixture
def admin(server, wire):
    return wire(server)


def test_set_watches_after_reconnect_delivers_missed_changes_and_rearms_the_rest(server, wire, admin, base):
    A, B, U = f"{base}/data-changed", f"{base}/deleted", f"{base}/unchanged"
    C, X = f"{base}/created", f"{base}/still-absent"
    K, KU, GP = f"{base}/kids", f"{base}/kids-unchanged", f"{base}/gone-parent"
    for p in (base, A, B, U, K, K + "/k0", KU, GP, GP + "/g0"):
        assert admin.create(p, b"0").ok
    c = wire(server, timeout_ms=10000)
    for p in (A, B, U):
        assert c.get_data(p, watch=True).ok
    for p in (C, X):
        assert c.exists(p, watch=True).err == -101
    for p in (K, KU, GP):
        assert c.get_children(p, watch=True).ok
    last = c.last_zxid
    assert last > 0
    c.close()                                    # TCP gone, session kept

    assert admin.set_data(A, b"1").ok
    assert admin.delete(B).ok
    assert admin.create(C).ok
    assert admin.create(K + "/k1").ok
    assert admin.delete(GP + "/g0").ok and admin.delete(GP).ok

    c2 = resume(server, wire, c, last)
    r = c2.set_watches(last, data=[A, B, U], exist=[C, X], child=[K, KU, GP])
    assert (r.xid, r.err, r.body) == (SET_WATCHES_XID, 0, b""), r
    # Everything that changed after `last` is reported at once, before the reply.
    assert keys(r.events) == sorted([ev(E.NODE_DATA_CHANGED, A), ev(E.NODE_DELETED, B),
                                     ev(E.NODE_CREATED, C), ev(E.NODE_CHILDREN_CHANGED, K),
                                     ev(E.NODE_DELETED, GP)]), r
    assert settle(c2) == []

    # The unchanged ones were registered again; the fired ones were not (one-shot).
    assert admin.set_data(U, b"1").ok
    assert admin.create(X).ok
    assert admin.create(KU + "/x").ok
    assert admin.set_data(A, b"2").ok
    assert admin.create(K + "/k2").ok
    assert admin.set_data(C, b"1").ok
    assert keys(settle(c2)) == sorted([ev(E.NODE_DATA_CHANGED, U), ev(E.NODE_CREATED, X),
                                       ev(E.NODE_CHILDREN_CHANGED, KU)])
    # ...and they were one-shot watches.
    assert admin.set_data(U, b"2").ok and admin.delete(X).ok and admin.create(KU + "/y").ok
    assert settle(c2) == []
    assert c2.close_session().ok


def test_set_watches_with_a_zxid_after_every_change_only_rearms(server, wire, admin, base):
    """A relativeZxid that covers the changes made while disconnected reports nothing for them (the
    client says it has seen them) and still registers every watch."""
    A, K = f"{base}/a", f"{base}/k"
    for p in (base, A, K):
        assert admin.create(p, b"0").ok
    c = wire(server, timeout_ms=10000)
    c.close()
    assert admin.set_data(A, b"1").ok
    assert admin.create(K + "/c").ok
    now = admin.sync("/").zxid
    assert now > 0
    c2 = resume(server, wire, c, now)
    r = c2.set_watches(now, data=[A], child=[K])
    assert r.ok and r.events == [], r
    assert admin.set_data(A, b"2").ok and admin.delete(K + "/c").ok
    assert keys(settle(c2)) == sorted([ev(E.NODE_DATA_CHANGED, A), ev(E.NODE_CHILDREN_CHANGED, K)])
    assert c2.close_session().ok


def test_set_watches2_rearms_persistent_and_recursive_watches_and_catches_up_standard_ones(
        server, wire, admin, base):
    P, R, A = f"{base}/persistent", f"{base}/recursive", f"{base}/one-shot"
    for p in (base, P, R, R + "/sub", A):
        assert admin.create(p, b"0").ok
    c = wire(server, timeout_ms=10000)
    assert c.add_watch(P, AddWatchMode.PERSISTENT).ok
    assert c.add_watch(R, AddWatchMode.PERSISTENT_RECURSIVE).ok
    assert c.get_data(A, watch=True).ok
    last = c.last_zxid
    c.close()

    # Changes while disconnected: the one-shot watch is caught up; persistent ones get no catch-up.
    assert admin.set_data(P, b"1").ok
    assert admin.create(R + "/sub/missed").ok
    assert admin.set_data(A, b"1").ok

    c2 = resume(server, wire, c, last)
    r = c2.set_watches2(last, data=[A], persistent=[P], persistent_recursive=[R])
    assert (r.xid, r.err, r.body) == (SET_WATCHES_XID, 0, b""), r
    assert keys(r.events) == [ev(E.NODE_DATA_CHANGED, A)], r
    assert settle(c2) == []

    # Persistent: data and children of P, every time; recursive: every node under R, at any depth.
    assert admin.set_data(P, b"2").ok
    assert admin.create(P + "/child").ok
    assert admin.set_data(P, b"3").ok
    assert admin.create(R + "/sub/deep").ok
    assert admin.create(R + "/sub/deep/deeper").ok
    assert admin.set_data(R + "/sub", b"1").ok
    assert admin.delete(R + "/sub/deep/deeper").ok
    assert admin.set_data(A, b"2").ok            # the one-shot watch fired at the reconnect
    got = settle(c2)
    assert [(e.type, e.path) for e in got] == [
        (E.NODE_DATA_CHANGED, P), (E.NODE_CHILDREN_CHANGED, P), (E.NODE_DATA_CHANGED, P),
        (E.NODE_CREATED, R + "/sub/deep"), (E.NODE_CREATED, R + "/sub/deep/deeper"),
        (E.NODE_DATA_CHANGED, R + "/sub"), (E.NODE_DELETED, R + "/sub/deep/deeper")], got
    assert all(e.state == CONNECTED for e in got)
    # Still armed after firing.
    assert admin.set_data(P, b"4").ok and admin.set_data(R, b"1").ok
    assert [(e.type, e.path) for e in settle(c2)] == [(E.NODE_DATA_CHANGED, P), (E.NODE_DATA_CHANGED, R)]
    assert c2.close_session().ok


def test_watches_are_not_kept_across_a_reconnect_without_set_watches(server, wire, admin, base):
    """The control for the tests above: the watches belong to the connection; a resumed session that does
    not send setWatches gets no notification."""
    A = f"{base}/a"
    for p in (base, A):
        assert admin.create(p, b"0").ok
    c = wire(server, timeout_ms=10000)
    assert c.get_data(A, watch=True).ok
    assert c.add_watch(base, AddWatchMode.PERSISTENT_RECURSIVE).ok
    last = c.last_zxid
    c.close()
    c2 = resume(server, wire, c, last)
    assert admin.set_data(A, b"1").ok
    assert admin.create(base + "/new", b"", flags=CreateFlags.PERSISTENT).ok
    assert settle(c2) == []
    assert c2.close_session().ok
