"""A 3-server wazoo ensemble of real processes on 127.0.0.1-3 (issue 10, item 3): one leader is
elected, client writes on the leader are committed by a quorum and applied on every member, an
acknowledged write survives kill -9 of the leader, the killed server rejoins as a follower and
catches up, and clients on followers (kazoo, zkCli, the raw protocol) write (forwarded to the
leader), read, sync and move their sessions between servers.

The failover time printed is the issue's metric: kill -9 of the leader to the first successful
write from a fresh session."""

import time

import pytest

import harness
import zkwire

pytestmark = pytest.mark.skipif(harness.target() != "wazoo", reason="wazoo's ensemble runtime")


def srvr(server) -> dict:
    try:
        text = harness.four_letter(server.port, "srvr", timeout=1.0)
    except OSError:
        return {}
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def mode(server) -> str:
    return srvr(server).get("Mode", "looking")


@pytest.fixture
def ensemble(wazoo_server_factory):
    n = 3
    addrs = [f"127.0.0.{i}" for i in range(1, n + 1)]
    ports = [(harness.free_port(a), harness.free_port(a)) for a in addrs]
    lines = {f"server.{i + 1}": f"{addrs[i]}:{ports[i][0]}:{ports[i][1]}" for i in range(n)}
    servers = []
    for i in range(n):
        cfg = dict(lines)
        cfg.update({"initLimit": "10", "syncLimit": "5"})
        s = wazoo_server_factory(start=False, name=f"member-{i + 1}", tick_time=200, extra_cfg=cfg)
        (s.data_dir / "myid").write_text(f"{i + 1}\n")
        servers.append(s)
    for s in servers:
        s.start(probe_session=False)
    return servers


def roles(servers):
    return sorted(mode(s) for s in servers)


def wait_roles(servers, want, timeout=15.0):
    harness.wait_until(lambda: roles(servers) == sorted(want), timeout,
                       what=f"roles {sorted(want)} (now {roles(servers)})")


def the_leader(servers):
    wait_roles(servers, ["leader"] + ["follower"] * (len(servers) - 1))
    return next(s for s in servers if mode(s) == "leader")


def session(server) -> zkwire.Conn:
    return zkwire.Conn(harness.HOST, server.port, timeout_ms=6000, io_timeout=2.0)


def converged(servers) -> bool:
    views = [srvr(s) for s in servers]
    return all(v.get("Zxid") == views[0].get("Zxid") and v.get("Node count") == views[0].get("Node count")
               and "Zxid" in v for v in views)


def mntr(server) -> dict:
    text = harness.four_letter(server.port, "mntr", timeout=1.0)
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


def test_three_members_elect_one_leader_and_two_followers(ensemble):
    leader = the_leader(ensemble)
    # The quorum metrics: the leader counts its synced followers; every member its peer state.
    harness.wait_until(lambda: mntr(leader).get("zk_synced_followers") == "2", 5.0,
                       what=f"zk_synced_followers 2 (mntr: {mntr(leader)})")
    assert mntr(leader)["zk_peer_state"] == "leading - broadcast"
    assert mntr(leader)["zk_learners"] == "2"
    for s in ensemble:
        if s is not leader:
            assert mntr(s)["zk_peer_state"] == "following - broadcast"
            assert mntr(s)["zk_server_state"] == "follower"


def test_writes_on_the_leader_reach_every_member(ensemble):
    leader = the_leader(ensemble)
    c = session(leader)
    try:
        for i in range(20):
            assert c.create(f"/k{i}", b"v%d" % i).err == 0
        assert c.set_data("/k3", b"changed").err == 0
        assert c.delete("/k4").err == 0
    finally:
        c.close()
    harness.wait_until(lambda: converged(ensemble), 10.0, what="every member at the same zxid and node count")
    counts = {srvr(s)["Node count"] for s in ensemble}
    assert len(counts) == 1
    # The leader's proposal sizes (published once per tick): a create of /kN with 2-3 bytes of
    # data is a txn of some tens of bytes.
    harness.wait_until(lambda: int(mntr(leader).get("zk_max_proposal_size", "-1")) > 0, 5.0,
                       what="the leader's proposal sizes")
    m = mntr(leader)
    assert 0 < int(m["zk_min_proposal_size"]) <= int(m["zk_last_proposal_size"]) <= int(m["zk_max_proposal_size"]) < 1000, m
    assert "Proposal sizes last/min/max: " in harness.four_letter(leader.port, "srvr")


def test_acknowledged_writes_survive_killing_the_leader(ensemble):
    written = []
    times = []
    for round_ in range(3):
        leader = the_leader(ensemble)
        c = session(leader)
        try:
            for i in range(5):
                path = f"/r{round_}-{i}"
                assert c.create(path, path.encode()).err == 0
                written.append(path)
        finally:
            c.close()
        others = [s for s in ensemble if s is not leader]
        t0 = time.monotonic()
        leader.kill()
        harness.wait_until(lambda: roles(others) == ["follower", "leader"], 15.0,
                           what=f"a new leader among the others (now {roles(others)})")
        new = next(s for s in others if mode(s) == "leader")
        probe = f"/after-kill-{round_}"
        def first_write():
            try:
                c = session(new)
            except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout):
                return False
            try:
                return c.create(probe, b"").err == 0
            finally:
                c.close()
        harness.wait_until(first_write, 15.0, what="a write on the new leader")
        times.append(time.monotonic() - t0)
        c = session(new)
        try:
            for path in written:
                r = c.get_data(path)
                assert r.err == 0 and r.value[0] == path.encode(), f"{path} lost after killing the leader: {r!r}"
        finally:
            c.close()
        # The killed server comes back as a follower and catches up.
        leader.start(probe_session=False)
        wait_roles(ensemble, ["leader", "follower", "follower"])
        harness.wait_until(lambda: converged(ensemble), 15.0, what="the returning member caught up")
    print("failover (kill -9 of the leader to the first write), s:", ", ".join(f"{t:.3f}" for t in times))


def test_clients_on_followers_write_read_sync_and_move_their_sessions(ensemble):
    leader = the_leader(ensemble)
    f1, f2 = [s for s in ensemble if s is not leader]
    a = session(f1)
    try:
        # Writes forwarded to the leader, answered in order; errors come back as error codes.
        assert a.create("/on-follower", b"one").err == 0
        assert a.create("/on-follower", b"again").err == -110   # NODEEXISTS
        assert a.set_data("/on-follower", b"two").err == 0
        assert a.create("/eph", b"", flags=1).err == 0           # EPHEMERAL
        assert a.get_data("/on-follower").value[0] == b"two", "a follower reads its own writes"
        # A write on the other follower, then sync-then-read here sees it.
        b = session(f2)
        try:
            assert b.create("/from-f2", b"x").err == 0
        finally:
            b.close_session()
            b.close()
        assert a.sync("/").err == 0
        assert a.exists("/from-f2").err == 0, "sync then read sees a write acknowledged before"
        sid, pw = a.session_id, a.passwd
    finally:
        a.close()          # the TCP connection only: the session stays
    # The session moves to the other follower with its id and password, ephemeral included.
    moved = zkwire.Conn(harness.HOST, f2.port, timeout_ms=6000, session_id=sid, passwd=pw, io_timeout=2.0)
    try:
        assert moved.session_id == sid
        assert moved.exists("/eph").err == 0
        assert moved.close_session().err == 0
    finally:
        moved.close()
    # The closed session's ephemeral is gone on every member.
    harness.wait_until(lambda: converged(ensemble), 10.0, what="every member converged")
    for s in ensemble:
        c = session(s)
        try:
            assert c.exists("/eph").err == -101, f"the ephemeral outlived its session on {s.name}"
            assert c.get_data("/on-follower").value[0] == b"two"
        finally:
            c.close_session()
            c.close()



def test_a_leader_killed_with_writes_in_flight_rejoins_and_every_member_converges(ensemble):
    # Pipelined creates, the leader killed while they are in flight: its log may end in
    # proposals nobody committed, which it must drop (TRUNC) when it rejoins; what was
    # acknowledged must be everywhere.
    for round_ in range(3):
        leader = the_leader(ensemble)
        c = session(leader)
        sent = []
        for i in range(300):
            path = f"/f{round_}-{i}"
            sent.append((c.send(zkwire.Op.CREATE, zkwire.create_body(path, b"x")), path))
        acked = []
        try:
            for xid, path in sent[:50]:
                r = c.read_reply(xid, zkwire.Op.CREATE)
                if r.err == 0:
                    acked.append(path)
        except (zkwire.ConnectionClosed, zkwire.WireTimeout, OSError):
            pass
        leader.kill()
        c.close()
        others = [s for s in ensemble if s is not leader]
        harness.wait_until(lambda: roles(others) == ["follower", "leader"], 15.0,
                           what=f"a new leader (now {roles(others)})")
        new = next(s for s in others if mode(s) == "leader")
        w = session(new)
        try:
            assert w.create(f"/after-{round_}", b"").err == 0
        finally:
            w.close()
        leader.start(probe_session=False)
        wait_roles(ensemble, ["leader", "follower", "follower"])
        harness.wait_until(lambda: converged(ensemble), 15.0, what="every member converged")
        v = session(the_leader(ensemble))
        try:
            for path in acked:
                assert v.exists(path).err == 0, f"acknowledged {path} lost"
        finally:
            v.close()


def test_kazoo_clients_spread_over_the_members_see_each_others_writes_and_watches(ensemble):
    from kazoo.client import KazooClient
    the_leader(ensemble)
    clients = []
    try:
        for s in ensemble:
            c = KazooClient(hosts=f"{harness.HOST}:{s.port}", timeout=6.0)
            c.start(timeout=10)
            clients.append(c)
        a, b, c = clients
        events = []
        a.ensure_path("/w")
        a.get("/w", watch=lambda e: events.append(e))
        b.set("/w", b"from b")
        harness.wait_until(lambda: events, 10.0, what="a watch fired on another member's client")
        assert events[0].type == "CHANGED"
        # A lock taken by one member's client blocks another's until released.
        lock_a = a.Lock("/lock", "a")
        lock_c = c.Lock("/lock", "c")
        assert lock_a.acquire(timeout=5)
        from kazoo.exceptions import LockTimeout
        with pytest.raises(LockTimeout):
            lock_c.acquire(timeout=0.5)
        lock_a.release()
        assert lock_c.acquire(timeout=5)
        lock_c.release()
        counter = b.Counter("/counter")
        for cl in clients:
            cl.Counter("/counter").__add__(1)
        c.sync("/counter")
        assert c.Counter("/counter").value == 3
        del counter
    finally:
        for cl in clients:
            cl.stop()
            cl.close()


def test_every_write_of_a_long_pipelined_burst_on_a_follower_is_answered_in_order(ensemble):
    # Forwarded writes keep their place in the follower's outstanding budgets until answered
    # (64 per connection by default): a burst far past them is read at the quorum's pace, and
    # nothing stalls.
    leader = the_leader(ensemble)
    follower = next(s for s in ensemble if s is not leader)
    c = session(follower)
    try:
        sent = [(c.send(zkwire.Op.CREATE, zkwire.create_body(f"/p{i}", b"x")), i) for i in range(2000)]
        for xid, i in sent:
            assert c.read_reply(xid, zkwire.Op.CREATE).err == 0, f"/p{i}"
    finally:
        c.close()
    harness.wait_until(lambda: converged(ensemble), 10.0, what="every member converged")


def test_zkcli_works_against_a_follower(ensemble):
    from test_zkcli import zkcli
    leader = the_leader(ensemble)
    follower = next(s for s in ensemble if s is not leader)
    out = zkcli(follower, """
create /zkcli-f "hello"
get /zkcli-f
set /zkcli-f "world"
get /zkcli-f
ls /
sync /
delete /zkcli-f
ls /
""")
    lines = out.splitlines()
    assert "Created /zkcli-f" in out, out
    assert "hello" in lines and "world" in lines, out
    assert any(l.startswith("[") and "zkcli-f" in l for l in lines), out
    assert "Sync is OK" in lines, out
    harness.wait_until(lambda: converged(ensemble), 10.0, what="every member converged")
    c = session(leader)
    try:
        assert c.exists("/zkcli-f").err == -101, "deleted through the follower"
    finally:
        c.close()


def test_writes_and_syncs_pipelined_on_any_member_are_answered_in_order(ensemble):
    # create, sync, create, ... without waiting, on the leader and on a follower: the second
    # create of each triple can commit in the same step as the first (one group commit), before
    # the sync between them is answered; every reply must still come, in order, on an open
    # connection.
    leader = the_leader(ensemble)
    follower = next(s for s in ensemble if s is not leader)
    for name, member in (("l", leader), ("f", follower)):
        for round_ in range(10):
            c = session(member)
            try:
                sent = []
                for i in range(5):
                    for op, body in ((zkwire.Op.CREATE, zkwire.create_body(f"/{name}{round_}-{i}a", b"")),
                                     (zkwire.Op.SYNC, zkwire.path_body("/")),
                                     (zkwire.Op.CREATE, zkwire.create_body(f"/{name}{round_}-{i}b", b""))):
                        sent.append((c.send(op, body), op))
                for xid, op in sent:
                    r = c.read_reply(xid, op)
                    assert r.err == 0, f"round {round_} on the {'leader' if member is leader else 'follower'}: {r!r}"
            finally:
                c.close()


def test_a_kazoo_client_with_every_member_rides_through_kills(ensemble):
    # kazoo with all three members in its connect string, its session and ephemeral on one of
    # them, a data watch set. Round 1: kill -9 the member it is connected to; round 2: kill -9
    # the leader (a follower drops its clients when it loses its leader). Each time kazoo is
    # suspended, then reconnects with the same session: the ephemeral is still there, the watch
    # fires, writes go on; the session is never lost.
    from kazoo.client import KazooClient
    from kazoo.protocol.states import KazooState
    the_leader(ensemble)
    hosts = ",".join(f"{harness.HOST}:{s.port}" for s in ensemble)
    zk = KazooClient(hosts=hosts, timeout=8.0)
    states = []
    zk.add_listener(states.append)
    zk.start(timeout=15)
    try:
        zk.create("/ride/eph", b"", ephemeral=True, makepath=True)
        zk.ensure_path("/ride/w")
        session = zk.client_id[0]
        for round_ in range(2):
            events = []
            zk.get("/ride/w", watch=events.append)
            if round_ == 0:
                port = zk._connection._socket.getpeername()[1]
                victim = next(s for s in ensemble if s.port == port)
            else:
                victim = the_leader(ensemble)
            suspended = states.count(KazooState.SUSPENDED)
            victim.kill()
            harness.wait_until(lambda: states.count(KazooState.SUSPENDED) > suspended
                               and zk.state == KazooState.CONNECTED, 20.0,
                               what="kazoo suspended, then connected again")
            assert zk.client_id[0] == session, "the session changed"
            assert zk.exists("/ride/eph") is not None, "the ephemeral was lost"
            zk.set("/ride/w", b"round %d" % round_)
            harness.wait_until(lambda: events, 10.0, what="the data watch to fire after the move")
            victim.start(probe_session=False)
            wait_roles(ensemble, ["leader", "follower", "follower"])
        assert KazooState.LOST not in states, states
    finally:
        zk.stop()
        zk.close()
