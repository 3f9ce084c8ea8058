"""Pipelining on one connection (ZooKeeper's per-session FIFO, zk-protocol.md §2.3 and §8.12): requests
sent back to back without waiting are answered in request order, every read sees the writes the same
connection sent before it, and requests may follow the ConnectRequest before its reply arrives (the C
client does this). Checked against wazoo and real ZooKeeper alike.
"""

import struct

import zkwire
from zkwire import Err, Op


def test_requests_sent_before_the_connect_response_are_served(server):
    c = zkwire.Conn("127.0.0.1", server.port, handshake=False)
    try:
        c.send_frame(zkwire.connect_request(timeout_ms=10000))
        x1 = c.send(Op.CREATE, zkwire.create_body("/pipelined-early", b"e", flags=zkwire.CreateFlags.EPHEMERAL))
        x2 = c.send(Op.GET_DATA, zkwire.path_watch_body("/pipelined-early", False))
        resp = c.read_frame()
        assert len(resp) in (36, 37), resp  # the ConnectResponse comes first
        r1 = c.read_reply(x1, Op.CREATE)
        r2 = c.read_reply(x2, Op.GET_DATA)
        assert (r1.err, r1.value) == (Err.OK, "/pipelined-early")
        assert r2.err == Err.OK and r2.value[0] == b"e"
    finally:
        c.close()


def test_pipelined_reads_see_earlier_writes_of_the_same_connection_in_order(server, wire):
    c = wire()
    sent = []
    sent.append((c.send(Op.CREATE, zkwire.create_body("/pipe", b"0")), Op.CREATE))
    for i in range(1, 60):
        sent.append((c.send(Op.SET_DATA, zkwire.set_data_body("/pipe", str(i).encode(), i - 1)), Op.SET_DATA))
        sent.append((c.send(Op.GET_DATA, zkwire.path_watch_body("/pipe", False)), Op.GET_DATA))
        sent.append((c.send(Op.EXISTS, zkwire.path_watch_body("/pipe", False)), Op.EXISTS))
    sent.append((c.send(Op.DELETE, zkwire.path_version_body("/pipe", 59)), Op.DELETE))
    sent.append((c.send(Op.EXISTS, zkwire.path_watch_body("/pipe", False)), Op.EXISTS))
    replies = [c.read_reply(xid, op) for xid, op in sent]
    zxids = [r.zxid for r in replies]
    assert zxids == sorted(zxids), "reply zxids must not go backwards"
    version = 0
    for (xid, op), r in zip(sent[:-2], replies[:-2]):
        if op == Op.SET_DATA:
            assert r.err == Err.OK, r
            version = r.value.version
        elif op == Op.GET_DATA:
            data, stat = r.value
            assert stat.version == version and data == str(version).encode(), r
        elif op == Op.EXISTS:
            assert r.value.version == version
    assert replies[-2].err == Err.OK
    assert replies[-1].err == Err.NONODE


def test_a_client_that_stops_reading_gets_every_reply_in_order_and_stalls_no_one(server, wire):
    """Replies the socket cannot take wait in the server: the core writes straight to the socket while it
    can and the connection's writer task takes over when it cannot. They arrive complete and in order once
    the client reads again, and other connections are served meanwhile (the core never waits for a slow
    reader)."""
    slow = wire()
    big = bytes(range(256)) * 1024  # 256 KiB: 128 replies are far more than the socket buffers hold
    assert slow.read_reply(slow.send(Op.CREATE, zkwire.create_body("/big-replies", big)), Op.CREATE).err == Err.OK
    sent = [slow.send(Op.GET_DATA, zkwire.path_watch_body("/big-replies", False)) for _ in range(128)]
    marker = slow.send(Op.EXISTS, zkwire.path_watch_body("/big-replies", False))
    other = wire()
    created = other.read_reply(other.send(Op.CREATE, zkwire.create_body("/while-slow", b"x")), Op.CREATE)
    assert (created.err, created.value) == (Err.OK, "/while-slow")
    for xid in sent:
        r = slow.read_reply(xid, Op.GET_DATA)
        assert r.err == Err.OK and r.value[0] == big
    assert slow.read_reply(marker, Op.EXISTS).err == Err.OK


def _pipelined_close_then_ephemeral(port: int, path: str):
    """ConnectRequest, closeSession, create(path, EPHEMERAL) and getData(path), sent back to back
    without waiting for any reply. Returns every frame the server sent before it closed the socket."""
    c = zkwire.Conn("127.0.0.1", port, handshake=False)
    try:
        c.send_raw(zkwire.frame(zkwire.connect_request(timeout_ms=10000))
                   + zkwire.frame(struct.pack(">ii", 1, Op.CLOSE_SESSION))
                   + zkwire.frame(struct.pack(">ii", 2, Op.CREATE)
                                  + zkwire.create_body(path, b"x", flags=zkwire.CreateFlags.EPHEMERAL))
                   + zkwire.frame(struct.pack(">ii", 3, Op.GET_DATA) + zkwire.path_watch_body(path, True)))
        connect = c.read_frame()
        replies = []
        while True:
            try:
                replies.append(c.read_any(timeout=10.0))
            except zkwire.ConnectionClosed:
                return connect, replies
    finally:
        c.close()


def test_an_ephemeral_pipelined_behind_a_close_session_is_never_created(server, wire):
    """zk-protocol.md §2.3: requests are prepped in order; PrepRequestProcessor marks the session
    closing at closeSession, and every later request of it is then dropped (touchSession fails) or,
    if it raced past that, refused by checkSession (SESSIONEXPIRED). The connection closes after the
    closeSession reply, so no reply of the create arrives, and no ephemeral may outlive its session."""
    connect, replies = _pipelined_close_then_ephemeral(server.port, "/pipelined-orphan")
    assert len(connect) in (36, 37), connect
    assert [(r.xid, r.err) for r in replies] == [(1, Err.OK)], replies
    other = wire()
    assert other.exists("/pipelined-orphan").err == Err.NONODE
    assert "/pipelined-orphan" not in (other.get_ephemerals("/").value or [])


def test_a_pipelined_close_leaves_no_ephemeral_across_a_restart(wazoo_server_factory):
    srv = wazoo_server_factory()
    _pipelined_close_then_ephemeral(srv.port, "/orphan")
    srv.restart(kill=True)
    with srv.wire() as c:
        assert c.exists("/orphan").err == Err.NONODE
    # A graceful restart loads the persisted tree instead of replaying the log: nothing there either.
    srv.restart()
    with srv.wire() as c:
        assert c.exists("/orphan").err == Err.NONODE
