"""Bounded memory per client, with backpressure rather than errors (README "Limits"): a client that pipelines
big reads and never reads its replies, or streams large writes faster than the disk takes them, costs the
server a bounded amount of memory and gets every reply, complete and in order, once it reads again; a
connection whose output makes no progress for its session timeout is closed, even half-closed, and keeps its
place in ``maxClientCnxns`` until its socket is closed; a connection that sends no ConnectRequest within
``nio.sessionlessCnxnTimeout`` is closed; ``maxCnxns`` limits connections in all.

wazoo only: these are the server's own resource rules (ZooKeeper's differ: it closes oversized requests and
has no output bound at all). Memory is read from /proc/<pid>/status: VmHWM is the peak resident size, so a
transient pile-up between two samples is still seen.
"""

import socket
import struct
import subprocess
import sys
import time

import pytest

import harness
import zkwire
from zkwire import ConnectionClosed, Err, Op, WireTimeout

MIB = 1 << 20
# Just under the default jute.maxbuffer (1048575) with the setData request's own fields.
BIG = 1_000_000


def status_kib(srv, field: str) -> int:
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/{srv.proc.pid}/status")


def settle(srv, seconds: float = 0.5) -> int:
    """Resident KiB once the server is idle."""
    time.sleep(seconds)
    return status_kib(srv, "VmRSS")


def mntr(srv) -> dict:
    out = {}
    for line in srv.four_letter("mntr").splitlines():
        k, _, v = line.partition("\t")
        try:
            out[k] = int(v)
        except ValueError:
            out[k] = v
    return out


@pytest.fixture
def srv(wazoo_server_factory):
    return wazoo_server_factory(tick_time=500, name="limits")


def test_pipelined_big_reads_never_read_cost_bounded_memory_and_all_arrive_in_order(srv, wire):
    """400 getData of a ~1 MB node, pipelined without reading: before the bound the server built all 400
    replies (about 400 MB). Now it answers while the connection's queued output is under
    wazoo.maxConnectionOutputBytes and holds the rest unprocessed until the client reads."""
    setup = wire(srv)
    data = bytes(range(256)) * (BIG // 256)
    assert setup.create("/big", data).err == Err.OK
    base = settle(srv)
    hog = wire(srv, timeout_ms=10000)
    xids = [hog.send(Op.GET_DATA, zkwire.path_watch_body("/big", False)) for _ in range(400)]
    time.sleep(2.0)
    # Another client is served meanwhile.
    assert setup.create("/while-hogged", b"x").err == Err.OK
    peak = status_kib(srv, "VmHWM")
    assert peak - base < 100 * 1024, f"peak RSS grew by {(peak - base) // 1024} MiB"
    for xid in xids:
        r = hog.read_reply(xid, Op.GET_DATA)
        assert r.err == Err.OK and r.value[0] == data
    assert hog.exists("/big").err == Err.OK


def test_a_stream_of_large_writes_faster_than_the_disk_costs_bounded_memory(srv, wire):
    """400 setData of ~1 MB pipelined as fast as the socket takes them: the server admits requests of at least
    largeRequestThreshold bytes only within largeRequestMaxBytes (32 MiB), so it reads the rest of the
    stream only as writes are applied. Before the bound it read all 400 MB into its queues at once."""
    c = wire(srv, timeout_ms=10000)
    assert c.create("/stream", b"").err == Err.OK
    base = settle(srv)
    blob = b"\x5a" * BIG
    xids = [c.send(Op.SET_DATA, zkwire.set_data_body("/stream", blob, -1)) for _ in range(400)]
    versions = [c.read_reply(xid, Op.SET_DATA, timeout=120).value.version for xid in xids]
    assert versions == list(range(1, 401))
    peak = status_kib(srv, "VmHWM")
    assert peak - base < 160 * 1024, f"peak RSS grew by {(peak - base) // 1024} MiB"


def test_a_half_closed_connection_with_unread_output_is_closed_and_holds_its_slot_until_then(
        wazoo_server_factory):
    """A client sends requests whose replies fill its socket, shuts down its sending side and never reads.
    The server closes it once its output has made no progress for the session timeout, frees what was
    queued, and counts the connection against maxClientCnxns until the socket is really closed (before,
    the count was given back when the reading side saw EOF, while the socket and its buffer lived on)."""
    srv = wazoo_server_factory(tick_time=500, name="half-closed", extra_cfg={"maxClientCnxns": "2"})
    with srv.wire() as setup:
        assert setup.create("/big", b"\x01" * BIG).err == Err.OK
    time.sleep(0.5)  # the closed setup connection's place comes back
    hog = srv.wire(timeout_ms=2000)
    assert hog.negotiated_timeout == 2000
    # 100 MB of replies: more than the kernel's socket buffers can take (tcp_rmem allows 32 MiB here).
    hog.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    for _ in range(100):
        hog.send(Op.GET_DATA, zkwire.path_watch_body("/big", False))
    hog.sock.shutdown(socket.SHUT_WR)
    time.sleep(0.5)
    other = srv.wire()
    # The hog's socket is open: a third connection from this address is over maxClientCnxns.
    with pytest.raises((ConnectionClosed, ConnectionResetError, BrokenPipeError, WireTimeout)):
        srv.wire(io_timeout=3.0)
    # Stuck output is closed after the 2 s session timeout (plus whatever the socket took meanwhile).
    deadline = time.monotonic() + 20
    while True:
        try:
            third = srv.wire(io_timeout=3.0)
            break
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError, WireTimeout):
            assert time.monotonic() < deadline, "the stuck half-closed connection was never closed"
            time.sleep(0.5)
    third.close()
    got = hog.wait_closed(timeout=10.0)
    assert len(got) < 100 * BIG, "the server wrote every reply, so nothing was stuck"
    hog.close()
    assert other.exists("/big").err == Err.OK


def test_a_connection_that_sends_no_connect_request_is_closed(wazoo_server_factory):
    srv = wazoo_server_factory(tick_time=500, name="sessionless",
                               extra_cfg={"zookeeper.nio.sessionlessCnxnTimeout": "1000"})
    silent = socket.create_connection(("127.0.0.1", srv.port))
    partial = socket.create_connection(("127.0.0.1", srv.port))
    partial.sendall(struct.pack(">i", 44) + b"\x00" * 10)  # a ConnectRequest that never completes
    try:
        for s in (silent, partial):
            s.settimeout(10.0)
            assert s.recv(100) == b"", "expected the server to close the connection"
    finally:
        silent.close()
        partial.close()
    assert "nio.sessionlessCnxnTimeout" in srv.log_since(0)
    assert mntr(srv)["zk_sessionless_connections_expired"] == 2


REFUSED = (ConnectionClosed, ConnectionResetError, BrokenPipeError, WireTimeout)


def connect_once_free(srv, timeout: float = 10.0):
    """A connection, retried while the server still counts one that was just closed (the harness's
    readiness probe, or the test's own): a closed connection's place comes back once the server has
    seen the socket close."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return srv.wire(io_timeout=3.0)
        except REFUSED:
            assert time.monotonic() < deadline, "no connection place came free"
            time.sleep(0.2)


def test_max_cnxns_limits_connections_in_all(wazoo_server_factory):
    srv = wazoo_server_factory(tick_time=500, name="maxcnxns", extra_cfg={"maxCnxns": "3"})
    conns = [connect_once_free(srv) for _ in range(3)]
    with pytest.raises(REFUSED):
        srv.wire(io_timeout=3.0)
    conns.pop().close()
    conns.append(connect_once_free(srv))
    conns.pop().close()
    # A four-letter word needs a connection place too.
    deadline = time.monotonic() + 10
    while "zk_connection_rejected" not in (stats := mntr(srv)):
        assert time.monotonic() < deadline, "mntr never got a connection place"
        time.sleep(0.2)
    assert stats["zk_connection_rejected"] >= 1
    for c in conns:
        assert c.exists("/").err == Err.OK
        c.close()


def test_each_group_commit_carries_at_most_one_large_write(srv, wire):
    """Two connections pipeline ~1 MB setData: the core preps a large write only when no other large
    write (1 MiB in all) is waiting for the disk, so every group commit carries at most one of them, and
    the small writes that share those commits wait for one megabyte, not dozens. The group commit sizes
    are read from mntr's sync_processor_batch_size (txns per commit), reset with srst just before.
    (Which connection goes first depends on when its frames arrive, so the order is not checked.)"""
    a, b = wire(srv, timeout_ms=10000), wire(srv, timeout_ms=10000)
    for c, path in ((a, "/la"), (b, "/lb")):
        assert c.create(path, b"").err == Err.OK
    assert srv.four_letter("srst").strip()
    blob = b"\x42" * BIG
    sent = {c: [c.send(Op.SET_DATA, zkwire.set_data_body(p, blob, -1)) for _ in range(30)]
            for c, p in ((a, "/la"), (b, "/lb"))}
    for c, xs in sent.items():
        assert all(c.read_reply(x, Op.SET_DATA, timeout=120).err == Err.OK for x in xs)
    stats = mntr(srv)
    assert stats["zk_cnt_sync_processor_batch_size"] >= 60
    assert stats["zk_max_sync_processor_batch_size"] == 1, stats["zk_max_sync_processor_batch_size"]


READER = """
import sys, time
sys.path.insert(0, %r)
import zkwire
c = zkwire.Conn(sys.argv[1], int(sys.argv[2]), timeout_ms=10000)
for _ in range(10):
    assert c.exists("/pace").err == 0
print("reading", flush=True)
end = time.monotonic() + float(sys.argv[3])
last, gaps = time.monotonic(), 0.0
while time.monotonic() < end:
    assert c.exists("/pace").err == 0
    now = time.monotonic()
    if now - last > 0.05:
        gaps += now - last
    last = now
print("gaps", gaps, flush=True)
""" % str(__import__("pathlib").Path(__file__).resolve().parent)


def test_large_writes_are_paced_while_others_are_served_and_not_when_alone(wazoo_server_factory):
    """wazoo.largeWriteBytesPerSecond (README "Limits"): while other requests are being served, large
    writes (at least largeRequestThreshold bytes) go at no more than that rate, so that one client
    streaming big setData cannot take the server from everyone else; with no one else to serve they are
    not paced. Before the pacer, a 1 MB setData stream kept ~250 MB/s flowing on the 2-core machine and cut
    16x8 creates beside it 4x. A low rate (2 MiB/s) makes the two cases far apart on any machine: the
    stream alone writes many times the rate, beside a busy reader no more than rate x time plus the
    bucket's burst and the writes already in flight."""
    rate = 2 * MIB
    srv = wazoo_server_factory(tick_time=500, name="pace",
                               extra_cfg={"wazoo.largeWriteBytesPerSecond": str(rate)})
    writer = srv.wire(timeout_ms=10000)
    assert writer.create("/pace", b"").err == Err.OK
    blob = b"\x61" * (100 * 1024)
    inflight = 8

    def stream(seconds: float):
        """Bytes of setData answered in about `seconds`, 8 in flight, and the time they took: from the
        first send to the last reply counted (the last read ends after the deadline, and CI once saw
        the 3 s window's one extra blob come from that overrun)."""
        t0 = time.monotonic()
        xids = [writer.send(Op.SET_DATA, zkwire.set_data_body("/pace", blob, -1)) for _ in range(inflight)]
        done, deadline = 0, t0 + seconds
        while time.monotonic() < deadline:
            assert writer.read_reply(xids.pop(0), Op.SET_DATA, timeout=30).err == Err.OK
            done += len(blob)
            xids.append(writer.send(Op.SET_DATA, zkwire.set_data_body("/pace", blob, -1)))
        elapsed = time.monotonic() - t0
        for x in xids:
            assert writer.read_reply(x, Op.SET_DATA, timeout=30).err == Err.OK
        return done, elapsed

    alone, _ = stream(2.0)
    assert alone > 4 * rate * 2.0, f"alone the stream must not be paced: {alone / MIB:.1f} MiB in 2 s"

    # The reader is a process of its own: as a thread of this one it shared the GIL with the
    # stream, and a pause of 50 ms in its requests (the pacer's window for "others are being
    # served") let unpaced writes through: CI saw 73 blobs where pacing allows 72.
    # The reader outlasts the stream and reports the time between its requests that exceeded the
    # pacer's 50 ms window ("others being served"): unpaced writes may flow then, by design, and
    # on a loaded 2-core machine the reader or the server is sometimes descheduled that long (a
    # run in isolation saw 10-15 MiB with the bound at 7.1, the reader's gaps unaccounted).
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, harness.HOST, str(srv.port), "3.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert reader.stdout.readline().strip() == "reading", "the reader did not start"
        busy, took = stream(3.0)
        gaps = float(reader.stdout.readline().split()[1])
    finally:
        reader.kill()
        reader.wait(timeout=10)
    assert gaps < 1.0, f"the reader was idle {gaps:.2f} s of 3: too loaded a machine to tell"
    unpaced = alone / 2.0
    most = rate * took + rate / 10 + (inflight + 1) * len(blob) + unpaced * gaps
    assert busy <= most, (f"beside a reader: {busy / MIB:.2f} MiB in {took:.2f} s, more than {most / MIB:.2f} "
                          f"(reader idle {gaps:.3f} s)")
    assert busy > 0
