"""Crash safety: several sessions stream writes (creates with unique names, and multis of 2-3 creates) and
record every acknowledged one; the server is SIGKILLed mid-stream and restarted on the same data dir. Then
every acknowledged write is present, every multi is all-or-nothing (acknowledged ones: all), no node appears
that nobody tried to create, new zxids are larger than every acknowledged one, a session that reconnects
after the restart keeps its ephemeral, and the ephemerals of sessions that never came back are deleted once
their timeout passes.

Runs against either target (ZooKeeper with forceSync=yes acknowledges a write only after fsync too). A
second round crashes the restarted server again to check recovery is repeatable.
"""

import threading

import pytest

from harness import wait_until
from zkwire import ConnectionClosed, CreateFlags, DecodeError, Err, MultiOp, WireTimeout

TICK = 200
# Sessions that will not come back: 10 ticks, so that a writer thread starved for a second on a loaded
# machine does not expire while it is still writing.
WRITER_TIMEOUT = 10 * TICK
# The session that resumes after the restart: pinged while the writers run (which may take up to
# WRITE_PHASE_LIMIT on a slow machine) and given a long timeout (maxSessionTimeout is raised to it) for
# the kill, the restart and its resumption.
RETURNING_TIMEOUT = 30000
WRITE_PHASE_LIMIT = 60
WRITERS = 4


class Pinger(threading.Thread):
    """Pings one connection (used by no other thread meanwhile) until stopped."""

    def __init__(self, conn, every):
        super().__init__(daemon=True)
        self.conn, self.every = conn, every
        self.stop_flag = threading.Event()
        self.failure = None

    def run(self):
        while not self.stop_flag.wait(self.every):
            try:
                r = self.conn.ping()
                assert r.ok, r
            except BaseException as e:  # noqa: BLE001
                self.failure = e
                return

    def finish(self):
        self.stop_flag.set()
        self.join(15)
        assert not self.is_alive(), "the pinger is stuck"
        assert self.failure is None, f"pinging the returning session failed: {self.failure!r}"


class Writer(threading.Thread):
    def __init__(self, srv, idx, round_no):
        super().__init__(daemon=True)
        self.srv, self.idx, self.round = srv, idx, round_no
        self.acked = []          # paths of acknowledged creates
        self.attempted = []      # every path a create was sent for
        self.acked_multis = []   # lists of paths
        self.unknown_multis = [] # sent, no reply
        self.max_zxid = 0
        self.failure = None
        self.stop_flag = threading.Event()
        self.session_id = None
        self.eph = f"/crash/eph-r{round_no}-w{idx}"
        self.count = 0

    def run(self):
        try:
            c = self.srv.wire(timeout_ms=WRITER_TIMEOUT, io_timeout=5.0)
            self.session_id = c.session_id
            r = c.create(self.eph, b"", flags=CreateFlags.EPHEMERAL)
            assert r.ok, r
            n = 0
            while not self.stop_flag.is_set():
                n += 1
                if n % 5 == 0:
                    names = [f"/crash/m-r{self.round}-w{self.idx}-{n}-{j}" for j in range(2 + n % 2)]
                    self.attempted += names
                    try:
                        r = c.multi([MultiOp.create(p, b"m") for p in names])
                    except BaseException:
                        self.unknown_multis.append(names)
                        raise
                    assert r.ok and all(m.err == 0 for m in r.value), r
                    self.acked_multis.append(names)
                else:
                    p = f"/crash/w-r{self.round}-w{self.idx}-{n}"
                    self.attempted.append(p)
                    r = c.create(p, str(n).encode())
                    assert r.ok, r
                    self.acked.append(p)
                self.max_zxid = max(self.max_zxid, r.zxid)
                self.count += 1
        except (ConnectionClosed, WireTimeout, ConnectionResetError, BrokenPipeError, OSError, DecodeError) as e:
            self.failure = e      # expected once the server is killed
        except BaseException as e:  # noqa: BLE001
            self.failure = e


def crash_round(srv, round_no):
    setup = srv.wire(timeout_ms=4000)
    if round_no == 0:
        assert setup.create("/crash").ok
    returning = srv.wire(timeout_ms=RETURNING_TIMEOUT)
    ret_eph = f"/crash/returning-r{round_no}"
    assert returning.create(ret_eph, b"", flags=CreateFlags.EPHEMERAL).ok
    assert setup.close_session().ok
    pinger = Pinger(returning, every=1.0)
    pinger.start()

    writers = [Writer(srv, i, round_no) for i in range(WRITERS)]
    for w in writers:
        w.start()
    wait_until(lambda: sum(w.count for w in writers) >= 300 or all(not w.is_alive() for w in writers),
               WRITE_PHASE_LIMIT, what="300 acknowledged writes")
    for w in writers:
        if not w.is_alive():
            pytest.fail(f"writer {w.idx} stopped before the crash after {w.count} writes: {w.failure!r}")
    pinger.finish()
    srv.kill()
    for w in writers:
        w.join(15)
        assert not w.is_alive(), "a writer is stuck after the server was killed"
        assert w.failure is not None and not isinstance(w.failure, AssertionError), repr(w.failure)
    killed_during = [w for w in writers if w.count > 0]
    assert len(killed_during) == WRITERS

    srv.start()

    # The returning session resumes right away and keeps its ephemeral.
    r2 = srv.wire(handshake=False)
    resp = r2.handshake(timeout_ms=RETURNING_TIMEOUT, session_id=returning.session_id, passwd=returning.passwd)
    assert resp.session_id == returning.session_id and resp.timeout > 0, \
        "a live session could not be resumed after the restart"
    st = r2.exists(ret_eph)
    assert st.ok and st.value.ephemeralOwner == returning.session_id

    v = srv.wire(timeout_ms=4000)
    r = v.get_children("/crash")
    assert r.ok
    present = {"/crash/" + c for c in r.value}
    acked = {p for w in writers for p in w.acked}
    missing = sorted(acked - present)
    assert not missing, f"{len(missing)} acknowledged creates lost after SIGKILL, e.g. {missing[:5]}"
    for w in writers:
        for names in w.acked_multis:
            lost = [p for p in names if p not in present]
            assert not lost, f"acknowledged multi {names} lost {lost}"
        for names in w.unknown_multis:
            got = [p in present for p in names]
            assert all(got) or not any(got), f"multi {names} was applied partially: {got}"
    attempted = {p for w in writers for p in w.attempted} | {w.eph for w in writers}
    invented = sorted(p for p in present if p.startswith(f"/crash/w-r{round_no}") or
                      p.startswith(f"/crash/m-r{round_no}") or p.startswith(f"/crash/eph-r{round_no}")
                      if p not in attempted)
    assert not invented, f"nodes nobody tried to create: {invented[:5]}"
    for p in acked:
        if p.startswith("/crash/w-"):
            n = p.rsplit("-", 1)[1]
            assert v.get_data(p).value[0] == n.encode()
            break

    # zxids keep growing across the crash.
    w = v.create(f"/crash/after-r{round_no}")
    assert w.ok and w.zxid > max(x.max_zxid for x in writers)

    # Sessions that never came back expire and their ephemerals go.
    def ephemerals_gone():
        assert r2.ping().ok           # keep the resumed session alive meanwhile
        ch = v.get_children("/crash")
        assert ch.ok
        return not any(c.startswith(f"eph-r{round_no}-") for c in ch.value)
    wait_until(ephemerals_gone, WRITER_TIMEOUT / 1000 + TICK / 1000 + 15, interval=0.1,
               what="ephemerals of dead sessions to be deleted after their timeout")
    # ...while the resumed session's ephemeral stays (it keeps pinging meanwhile).
    assert r2.ping().ok
    st = v.exists(ret_eph)
    assert st.ok and st.value.ephemeralOwner == returning.session_id
    assert r2.close_session().ok
    assert v.exists(ret_eph).err == Err.NONODE
    assert v.close_session().ok
    return len(acked)


def test_acknowledged_writes_survive_sigkill_and_multis_are_all_or_nothing(server_factory):
    srv = server_factory(tick_time=TICK, name="crash", max_session_timeout=RETURNING_TIMEOUT)
    for round_no in range(2):
        n = crash_round(srv, round_no)
        assert n >= 100, f"round {round_no}: only {n} acknowledged creates before the crash"
