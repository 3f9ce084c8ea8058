"""Session lifecycle as clients observe it: expiry (no pings, or an abruptly closed socket) deletes the
session's ephemerals and notifies watchers within timeout + one tick (+ slack); closeSession deletes them at
once and the server then closes the socket; a session survives a dropped TCP connection and is resumed with
its id + password (ephemerals kept, the old connection closed); a wrong password or an unknown/expired id
gets the "expired" handshake (timeOut 0, sessionId 0, 16 zero bytes); the negotiated timeout is clamped to
[minSessionTimeout, maxSessionTimeout] (defaults 2 and 20 ticks); handshake details (readOnly echo rule,
client zxid ahead of the server).

The server here uses tickTime=200 ms so expiry tests take about two seconds. Lower bounds on expiry are
measured from the instant before the victim's last request was sent, so a slow test cannot shorten them.
"""

import socket
import threading
import time

import pytest
from kazoo.protocol.states import EventType, KazooState

from zkwire import CreateFlags, Err, EventType as WEv, connect_request

TICK = 200


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory(tick_time=TICK, name="session-tick200")


@pytest.fixture
def kz(kazoo_factory, srv):
    return lambda **kw: kazoo_factory(srv, **kw)


def _event_waiter():
    got = threading.Event()
    events = []

    def cb(ev):
        events.append((ev, time.monotonic()))
        got.set()
    return cb, got, events


def test_session_without_pings_expires_and_its_ephemerals_are_deleted(srv, kz, base):
    # 10 ticks (2 s): a loaded machine can stall this test for a second without the victim expiring
    # before it is set up; the lower bound below is measured from the victim's last request.
    timeout = 10 * TICK
    watcher = kz()
    watcher.ensure_path(base)
    victim = srv.wire(timeout_ms=timeout)
    assert victim.negotiated_timeout == timeout
    cb, got, events = _event_waiter()
    # The watch is set before the ephemeral exists (NodeCreated, then NodeDeleted): no race with expiry.
    assert watcher.exists(base + "/eph", watch=cb) is None
    assert victim.create(base + "/eph-seq-", b"", flags=CreateFlags.EPHEMERAL_SEQUENTIAL).ok
    last_activity = time.monotonic()   # the victim's last request is sent after this instant
    assert victim.create(base + "/eph", b"", flags=CreateFlags.EPHEMERAL).ok
    # The victim keeps its socket open but sends nothing more (no pings).
    assert got.wait(10), "no NodeCreated for the ephemeral"
    got.clear()
    assert events[0][0].type == EventType.CREATED
    st = watcher.exists(base + "/eph", watch=cb)
    assert st is not None and st.ephemeralOwner == victim.session_id, \
        f"the victim expired {time.monotonic() - last_activity:.2f}s after its last request (timeout {timeout} ms)"
    assert got.wait(timeout / 1000 + TICK / 1000 + 10.0), "ephemeral not deleted after session timeout"
    ev, at = events[1]
    assert (ev.type, ev.path) == (EventType.DELETED, base + "/eph")
    elapsed = at - last_activity
    assert elapsed >= 0.75 * timeout / 1000, f"session expired after {elapsed:.3f}s, before its {timeout}ms"
    assert watcher.get_children(base) == []
    # The server closes the expired session's connection...
    victim.wait_closed(5.0)
    # ...and refuses to resume it: the "expired" ConnectResponse, then close.
    again = srv.wire(handshake=False)
    r = again.handshake(timeout_ms=timeout, session_id=victim.session_id, passwd=victim.passwd)
    assert (r.timeout, r.session_id, r.passwd) == (0, 0, b"\x00" * 16)
    again.wait_closed(5.0)


def test_abruptly_closed_connection_keeps_session_until_timeout_then_expires(srv, kz, base):
    timeout = 10 * TICK
    watcher = kz()
    victim = srv.wire(timeout_ms=timeout)
    cb, got, events = _event_waiter()
    assert watcher.exists(base, watch=cb) is None
    last_activity = time.monotonic()   # the victim's last request is sent after this instant
    assert victim.create(base, b"", flags=CreateFlags.EPHEMERAL).ok
    victim.close()                     # no closeSession
    assert got.wait(10) and events[0][0].type == EventType.CREATED
    got.clear()
    st = watcher.exists(base, watch=cb)
    if time.monotonic() - last_activity < 0.5 * timeout / 1000:
        assert st is not None and st.ephemeralOwner == victim.session_id, \
            "a dropped TCP connection must not end the session before its timeout"
    assert got.wait(timeout / 1000 + TICK / 1000 + 10.0)
    assert events[1][0].type == EventType.DELETED
    assert events[1][1] - last_activity >= 0.75 * timeout / 1000


def test_pings_keep_a_session_alive_past_its_timeout(srv, kz, base):
    # 6 ticks (1.2 s) with a ping every 150 ms: only a stall of a second would let it lapse; the test
    # runs for 2.5 timeouts.
    timeout = 6 * TICK
    c = srv.wire(timeout_ms=timeout)
    assert c.create(base, b"", flags=CreateFlags.EPHEMERAL).ok
    end = time.monotonic() + 2.5 * timeout / 1000
    while time.monotonic() < end:
        r = c.ping()
        assert r.xid == -2 and r.err == 0 and r.body == b""
        time.sleep(timeout / 1000 / 8)
    r = c.exists(base)
    assert r.ok and r.value.ephemeralOwner == c.session_id
    assert c.close_session().ok


def test_close_session_deletes_ephemerals_immediately_and_server_closes_socket(srv, kz, base):
    watcher = kz()
    watcher.ensure_path(base)
    c = srv.wire(timeout_ms=4000)
    for i in range(3):
        assert c.create(f"{base}/e{i}", b"", flags=CreateFlags.EPHEMERAL).ok
    w = srv.wire(timeout_ms=4000)
    assert w.get_children(base, watch=True).ok
    assert w.exists(base + "/e0", watch=True).ok
    r = c.close_session()
    assert r.err == 0 and r.body == b""
    c.wait_closed(5.0)
    # Already gone for everyone, without waiting for any timeout.
    assert watcher.get_children(base) == []
    r = w.sync("/")
    keys = [e.key() for e in r.events]
    assert (WEv.NODE_DELETED, 3, base + "/e0") in keys
    assert (WEv.NODE_CHILDREN_CHANGED, 3, base) in keys
    assert len(keys) == 2
    assert w.close_session().ok


def test_kazoo_stop_closes_session_and_deletes_ephemerals(kz, base):
    owner, other = kz(), kz()
    owner.create(base + "/lock", ephemeral=True, makepath=True)
    owner.create(base + "/seq-", ephemeral=True, sequence=True)
    assert len(other.get_children(base)) == 2
    owner.stop()
    assert other.get_children(base) == []


def test_reconnect_with_session_id_and_password_keeps_session_and_ephemerals(srv, base):
    c = srv.wire(timeout_ms=10 * TICK)
    sid, pw, to = c.session_id, c.passwd, c.negotiated_timeout
    assert len(pw) == 16 and sid != 0
    assert c.create(base, b"mine", flags=CreateFlags.EPHEMERAL).ok
    last = c.last_zxid
    c.close()                          # TCP gone, session not closed
    c2 = srv.wire(handshake=False)
    r = c2.handshake(timeout_ms=10 * TICK, session_id=sid, passwd=pw, last_zxid=last)
    assert (r.session_id, r.timeout, r.passwd) == (sid, to, pw)
    st = c2.exists(base)
    assert st.ok and st.value.ephemeralOwner == sid
    assert c2.get_data(base).value[0] == b"mine"
    assert c2.set_data(base, b"still mine").ok     # the resumed session can write
    assert c2.close_session().ok
    probe = srv.wire(timeout_ms=4000)
    assert probe.exists(base).err == Err.NONODE


def test_resuming_a_session_on_a_new_connection_closes_the_old_connection(srv, base):
    old = srv.wire(timeout_ms=4000)
    assert old.create(base, b"", flags=CreateFlags.EPHEMERAL).ok
    new = srv.wire(handshake=False)
    r = new.handshake(timeout_ms=4000, session_id=old.session_id, passwd=old.passwd, last_zxid=old.last_zxid)
    assert r.session_id == old.session_id
    old.wait_closed(5.0)
    assert new.exists(base).value.ephemeralOwner == old.session_id
    assert new.close_session().ok


def test_kazoo_reconnects_after_tcp_drop_with_same_session_and_ephemerals(kz, base):
    c = kz(timeout=4.0)
    other = kz()
    c.create(base, b"eph", ephemeral=True)
    sid = c.client_id[0]
    states = []
    reconnected = threading.Event()

    def listener(state):
        states.append(state)
        if state == KazooState.CONNECTED and KazooState.SUSPENDED in states:
            reconnected.set()
    c.add_listener(listener)
    c._connection._socket.shutdown(socket.SHUT_RDWR)     # drop TCP under kazoo's feet
    assert reconnected.wait(15), f"kazoo did not reconnect; states={states}"
    assert KazooState.LOST not in states
    assert c.client_id[0] == sid
    assert c.exists(base).ephemeralOwner == sid
    assert other.get(base)[0] == b"eph"


def test_wrong_password_gets_the_expired_handshake_and_the_session_survives(srv, base):
    c = srv.wire(timeout_ms=4000)
    assert c.create(base, b"", flags=CreateFlags.EPHEMERAL).ok
    bad = srv.wire(handshake=False)
    wrong = bytes((b ^ 0xFF) for b in c.passwd)
    r = bad.handshake(timeout_ms=4000, session_id=c.session_id, passwd=wrong)
    assert (r.protocol_version, r.timeout, r.session_id, r.passwd) == (0, 0, 0, b"\x00" * 16)
    bad.wait_closed(5.0)
    # (ZooKeeper 3.8 also closes the session's current connection here; not asserted.)
    good = srv.wire(handshake=False)
    r = good.handshake(timeout_ms=4000, session_id=c.session_id, passwd=c.passwd)
    assert r.session_id == c.session_id and r.timeout == 4000
    assert good.exists(base).value.ephemeralOwner == c.session_id
    assert good.close_session().ok


def test_unknown_session_id_gets_the_expired_handshake(srv):
    c = srv.wire(handshake=False)
    r = c.handshake(timeout_ms=4000, session_id=0x0123456789ABCDEF, passwd=b"\x01" * 16)
    assert (r.timeout, r.session_id, r.passwd) == (0, 0, b"\x00" * 16)
    c.wait_closed(5.0)


@pytest.mark.parametrize("requested,expected", [
    (1, 2 * TICK), (2 * TICK - 1, 2 * TICK), (2 * TICK, 2 * TICK), (1000, 1000),
    (20 * TICK, 20 * TICK), (20 * TICK + 1, 20 * TICK), (10 ** 6, 20 * TICK)])
def test_negotiated_timeout_is_clamped_to_2_and_20_ticks(srv, requested, expected):
    c = srv.wire(timeout_ms=requested)
    assert c.negotiated_timeout == expected
    assert c.close_session().ok


def test_configured_min_and_max_session_timeout_are_honoured(server_factory):
    s = server_factory(tick_time=TICK, min_session_timeout=1000, max_session_timeout=3000)
    for requested, expected in [(500, 1000), (2000, 2000), (5000, 3000)]:
        c = s.wire(timeout_ms=requested)
        assert c.negotiated_timeout == expected, requested
        c.close_session()


def test_session_ids_are_distinct_and_passwords_are_16_bytes(srv):
    conns = [srv.wire(timeout_ms=4000) for _ in range(5)]
    assert len({c.session_id for c in conns}) == 5
    assert all(len(c.passwd) == 16 and c.session_id != 0 for c in conns)
    for c in conns:
        assert c.close_session().ok


def test_read_only_byte_is_echoed_only_if_the_client_sent_it(srv):
    old = srv.wire(handshake=False)
    r = old.handshake(timeout_ms=4000, read_only=None)          # 44-byte ConnectRequest
    assert r.read_only is None and len(r.raw) == 36
    assert old.close_session().ok
    for flag in (False, True):
        c = srv.wire(handshake=False)
        r = c.handshake(timeout_ms=4000, read_only=flag)
        assert r.read_only is False and len(r.raw) == 37          # read-write server
        assert c.close_session().ok


def test_client_with_zxid_ahead_of_server_is_disconnected_without_reply(srv):
    c = srv.wire(handshake=False)
    c.send_frame(connect_request(timeout_ms=4000, last_zxid=0x7FFF_0000_0000_0000))
    assert c.wait_closed(5.0) == b""
