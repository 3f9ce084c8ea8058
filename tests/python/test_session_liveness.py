"""Session liveness (zk-protocol.md §4): a session resumed on a new connection is expired by the timeout that
connection negotiated, the one its client was told (ZooKeeper's revalidateSession and every later touch use
the connection's timeout), not by the timeout it was created with. Checked against wazoo and ZooKeeper alike.
"""

import time

import zkwire
from zkwire import CreateFlags, Err


def test_a_resumed_session_expires_by_the_timeout_its_new_connection_was_told(server, wire):
    first = wire(timeout_ms=10000)
    assert first.negotiated_timeout == 10000
    assert first.create("/resumed-eph", b"", flags=CreateFlags.EPHEMERAL).err == Err.OK
    sid, pw = first.session_id, first.passwd
    first.close()
    second = zkwire.Conn("127.0.0.1", server.port, timeout_ms=2000, session_id=sid, passwd=pw)
    assert (second.session_id, second.negotiated_timeout) == (sid, 2000)
    assert second.exists("/resumed-eph").err == Err.OK
    second.close()
    gone = time.monotonic()
    watcher = wire()
    deadline = gone + 8.0   # 2 s + a tick if the told timeout is used; over 10 s if the first one is
    while watcher.exists("/resumed-eph").err == Err.OK:
        assert time.monotonic() < deadline, \
            "the session outlived the 2 s timeout its client was told (the tracker used the first one)"
        time.sleep(0.1)
