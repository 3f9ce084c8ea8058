"""Ensembles of real wazoo processes under faults (issue 10, item 5): 3 and 5 voters (and an
observer) on 127.0.0.x, every peer link through a TCP fault proxy (faultnet.py), sequential
clients with sessions on every member recording their history (history.py) while the fault
happens.

In every scenario: the recorded history passes the checker (linearizable per key, acknowledged
writes never lost, sessions keep their ephemerals when they move, none left after they close),
and the ensemble converges: the same zxid and tree digest (``hash``) on every member.
"""

import time

import pytest

import harness
import history
import zkwire
from cluster import Cluster

pytestmark = pytest.mark.skipif(harness.target() != "wazoo", reason="wazoo's ensemble runtime")

SESSION_TIMEOUT_MS = 8000


@pytest.fixture
def make_cluster(wazoo_server_factory):
    made = []

    def make(**kw):
        c = Cluster(wazoo_server_factory, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def start_load(cluster, clients=6, seed=0, members=None):
    ports = [cluster[k].port for k in (members or cluster.sids)]
    wl = history.Workload(ports, clients=clients, seed=seed, session_timeout_ms=SESSION_TIMEOUT_MS)
    wl.setup()
    wl.start()
    return wl


def loaded(make_cluster, seed):
    """A 3-server ensemble with its leader, and the load running on it for a second."""
    c = make_cluster()
    leader = c.leader()
    wl = start_load(c, seed=seed)
    settle(wl, 1.0)
    return c, leader, wl


def settle(wl, seconds):
    """Lets the load run ``seconds`` and returns how many writes were acknowledged meanwhile."""
    before = wl.acked_writes()
    time.sleep(seconds)
    return wl.acked_writes() - before


def progress(wl, timeout=10.0, what="a write acknowledged"):
    """Waits until the load gets another write acknowledged; returns how long that took. (A
    client that was on a stopped or cut-off member waits out its 3 s I/O timeout first, as a
    real client waits out its own before it moves on.)"""
    t0 = time.monotonic()
    before = wl.acked_writes()
    harness.wait_until(lambda: wl.acked_writes() > before, timeout, what=what)
    return time.monotonic() - t0


def verify(cluster, wl, among=None, min_acked=50):
    """Stops the load, waits for the ensemble to settle and converge, reads every member's final
    state and checks the history against it."""
    wl.stop()
    among = among or cluster.sids
    leader = cluster.leader(among)
    # Sessions whose closeSession went unanswered expire; their ephemerals go with them.
    def no_ephemerals():
        c = zkwire.Conn(harness.HOST, cluster[leader].port, timeout_ms=SESSION_TIMEOUT_MS, io_timeout=3.0)
        try:
            return c.get_children(f"{history.ROOT}/e").value == []
        finally:
            c.close_session()
            c.close()
    harness.wait_until(no_ephemerals, 2 * SESSION_TIMEOUT_MS / 1000 + 5, interval=0.2,
                       what="every session's ephemerals gone")
    cluster.wait_converged(among)
    finals = {f"m{k}": wl.final(cluster[k].port) for k in among}
    cluster.wait_converged(among)
    bad = wl.violations + history.check(wl.events, finals, wl.keys)
    assert not bad, f"{len(bad)} violations:\n" + "\n".join(bad[:40])
    assert wl.acked_writes() >= min_acked, f"too little load to mean anything: {wl.counts()}"
    return wl.counts()


def bulk_create(cluster, k, prefix, n, data=b""):
    """Creates ``prefix0`` .. ``prefix{n-1}`` through member k, pipelined, each acknowledged."""
    w = zkwire.Conn(harness.HOST, cluster[k].port, timeout_ms=SESSION_TIMEOUT_MS)
    try:
        xids = [w.send(zkwire.Op.CREATE, zkwire.create_body(f"{prefix}{i}", data)) for i in range(n)]
        for x in xids:
            assert w.read_reply(x, zkwire.Op.CREATE).err == 0
    finally:
        w.close()


def cut_off_then_healed(c, wl, minority, majority):
    """After a fault that cuts ``minority`` off: the majority elects a leader and acknowledges
    writes, the minority stops serving (syncLimit without a quorum); then the network heals, the
    ensemble settles, and the history is checked."""
    c.leader(majority)
    harness.wait_until(lambda: all(c.mode(k) not in ("leader", "follower") for k in minority), 10.0,
                       what=f"the cut-off members {minority} to stop serving")
    progress(wl, what="a write acknowledged by the majority")
    settle(wl, 0.5)
    c.net.heal()
    c.leader()
    settle(wl, 0.5)
    verify(c, wl)


def others(cluster, k):
    return [m for m in cluster.sids if m != k]


def test_kill_9_of_the_leader_under_load_loses_no_acknowledged_write(make_cluster):
    c = make_cluster()
    leader = c.leader()
    wl = start_load(c)
    assert settle(wl, 1.0) > 0
    t0 = time.monotonic()
    c.kill(leader)
    new = c.leader(others(c, leader))
    progress(wl, what="a write acknowledged after the failover")
    print(f"kill -9 of the leader to a new leader: {time.monotonic() - t0:.3f} s")
    c.start(leader)
    c.leader()
    assert settle(wl, 0.5) >= 0
    counts = verify(c, wl)
    assert wl.reconnects > 0, "no session moved to another member"
    print(counts, "new leader", new, "reconnects", wl.reconnects)


def test_a_leader_stopped_past_sync_limit_is_replaced_and_rejoins_when_it_resumes(make_cluster):
    c, leader, wl = loaded(make_cluster, seed=1)
    c.stop_process(leader)          # SIGSTOP: sockets open, nothing answered
    c.leader(others(c, leader))
    progress(wl, what="a write acknowledged while the old leader is stopped")
    settle(wl, 0.5)
    c.cont(leader)
    c.leader()
    assert c.mode(leader) == "follower", "the resumed leader did not step down"
    settle(wl, 0.5)
    verify(c, wl)


def test_a_leader_partitioned_into_a_minority_steps_down_and_the_majority_goes_on(make_cluster):
    c, leader, wl = loaded(make_cluster, seed=2)
    c.net.isolate(leader)
    cut_off_then_healed(c, wl, [leader], others(c, leader))


def test_a_leader_cut_off_from_its_quorum_answers_no_sync_from_its_stale_tree(make_cluster):
    # Member 3 is given a long syncLimit, so that once cut off it believes it leads for seconds
    # after the other two elected a new leader and acknowledged a write. A sync on it must not
    # complete from its stale tree (docs/ensemble.md, departure 7: a sync is confirmed by a
    # quorum); the read after it would miss an acknowledged write.
    c = make_cluster(member_cfg={3: {"syncLimit": "20"}})
    # Equal (epoch, zxid) everywhere at the first election: the highest sid wins.
    assert c.leader() == 3
    w = zkwire.Conn(harness.HOST, c[3].port, timeout_ms=SESSION_TIMEOUT_MS, io_timeout=10.0)
    assert w.create("/x", b"old").err == 0
    c.net.isolate(3)
    new = c.leader([1, 2])
    n = zkwire.Conn(harness.HOST, c[new].port, timeout_ms=SESSION_TIMEOUT_MS)
    try:
        assert n.set_data("/x", b"new").err == 0
    finally:
        n.close()
    assert c.mode(3) == "leader", "member 3 already stepped down: the window under test is gone"
    try:
        s = w.sync("/x")
        r = w.get_data("/x")
    except (zkwire.ConnectionClosed, OSError):
        return                      # it stepped down and closed the connection: no stale read
    finally:
        w.close()
    assert s.err != 0 or r.err != 0 or r.value[0] == b"new", \
        f"sync then read on a deposed leader returned {r.value[0]!r}, missing an acknowledged write"


def test_a_leader_whose_messages_are_lost_one_way_is_replaced(make_cluster):
    # An asymmetric partition: the leader hears its followers, they do not hear it (no PINGs,
    # no PROPOSALs): they elect another leader; the old one gets no ACK for what it proposes
    # and steps down at syncLimit.
    c, leader, wl = loaded(make_cluster, seed=9)
    for k in others(c, leader):
        c.net.block(leader, k)
    cut_off_then_healed(c, wl, [leader], others(c, leader))


def test_peer_links_reset_again_and_again_under_load_lose_nothing(make_cluster):
    # Every peer connection of one member, then of another, cut (both ends see a reset) every
    # 300 ms: links are dialled again, syncs restart, and nothing acknowledged is lost.
    c = make_cluster()
    c.leader()
    wl = start_load(c, seed=10)
    settle(wl, 0.5)
    for i in range(8):
        c.net.reset(c.sids[i % len(c.sids)])
        time.sleep(0.3)
    c.leader()
    progress(wl)
    settle(wl, 0.5)
    verify(c, wl)


def test_five_servers_split_two_three_keep_serving_on_the_three(make_cluster):
    c = make_cluster(voters=5)
    leader = c.leader()
    minority = [leader, others(c, leader)[0]]
    majority = [k for k in c.sids if k not in minority]
    wl = start_load(c, clients=8, seed=3)
    settle(wl, 1.0)
    c.net.partition([minority, majority])
    cut_off_then_healed(c, wl, minority, majority)


def test_followers_that_restart_behind_catch_up_by_diff_and_by_snap(make_cluster):
    # A 64 KiB DIFF window: a follower that missed more than that gets a SNAP.
    c = make_cluster(extra_cfg={"wazoo.diffWindowBytes": "65536"})
    leader = c.leader()
    f1, f2 = others(c, leader)
    wl = start_load(c, seed=4, members=[leader, f2])
    settle(wl, 0.5)
    before = c.mntr(leader)
    c.kill(f1)
    settle(wl, 0.3)                 # a few hundred txns at most: within the window
    c.start(f1)
    c.leader()
    c.wait_converged()
    after = c.mntr(leader)
    assert int(after["zk_diff_count"]) > int(before["zk_diff_count"]), "no DIFF sync counted"
    # Far behind: more than the window's bytes of txns while it is down.
    c.kill(f1)
    bulk_create(c, leader, "/bulk", 1500, b"x" * 200)
    snaps = int(c.mntr(leader)["zk_snap_count"])
    c.start(f1)
    c.leader()
    harness.wait_until(lambda: int(c.mntr(leader)["zk_snap_count"]) > snaps, 10.0, what="a SNAP sync")
    settle(wl, 0.5)
    verify(c, wl)


def test_a_session_opened_while_a_follower_was_away_moves_to_it_after_its_snap(make_cluster):
    # Found by the server-pipeline simulator (seed 31): a follower synced by SNAP did not track
    # the sessions the SNAP brought, and told a client moving one of them there that it had
    # expired, while the session and its ephemeral lived on.
    c = make_cluster(extra_cfg={"wazoo.diffWindowBytes": "65536"})
    leader = c.leader()
    f1, _ = others(c, leader)
    c.kill(f1)
    w = zkwire.Conn(harness.HOST, c[leader].port, timeout_ms=SESSION_TIMEOUT_MS)
    assert w.create("/mine", b"", flags=zkwire.CreateFlags.EPHEMERAL).err == 0
    snaps = int(c.mntr(leader)["zk_snap_count"])
    bulk_create(c, leader, "/bulk", 1500, b"x" * 200)   # past the DIFF window: f1 needs a SNAP
    c.start(f1)
    harness.wait_until(lambda: int(c.mntr(leader)["zk_snap_count"]) > snaps, 10.0, what="a SNAP sync")
    c.wait_converged()
    moved = zkwire.Conn(harness.HOST, c[f1].port, timeout_ms=SESSION_TIMEOUT_MS,
                        session_id=w.session_id, passwd=w.passwd, last_zxid=w.last_zxid)
    try:
        resp = moved.connect_response
        assert resp.timeout > 0 and resp.session_id == w.session_id, \
            f"the follower refused the live session: {resp}"
        assert moved.exists("/mine").err == 0, "the session's ephemeral is gone"
    finally:
        moved.close()
        w.close()


def test_an_old_leader_with_uncommitted_txns_is_truncated_when_it_rejoins(make_cluster):
    c, leader, wl = loaded(make_cluster, seed=5)
    wl.stop()
    # Cut the leader off, then write to it: it logs the txns, nobody else gets them. It comes
    # back before the new leader commits anything of its own epoch (that would make it a SNAP:
    # a TRUNC never crosses an epoch), so the new leader must cut its log back.
    w = zkwire.Conn(harness.HOST, c[leader].port, timeout_ms=SESSION_TIMEOUT_MS)
    c.net.isolate(leader)
    for i in range(50):
        w.send(zkwire.Op.CREATE, zkwire.create_body(f"/lost{i}", b""))
    time.sleep(0.4)                 # logged (group commit), never committed
    c.kill(leader)
    w.close()
    new = c.leader(others(c, leader))
    truncs = int(c.mntr(new)["zk_trunc_count"])
    c.net.heal()
    c.start(leader)
    assert c.leader() == new
    harness.wait_until(lambda: int(c.mntr(new)["zk_trunc_count"]) > truncs, 10.0, what="a TRUNC sync")
    verify(c, wl)
    for k in c.sids:
        r = zkwire.Conn(harness.HOST, c[k].port, timeout_ms=SESSION_TIMEOUT_MS)
        try:
            survivors = [i for i in range(50) if r.exists(f"/lost{i}").err == 0]
        finally:
            r.close()
        assert survivors == [], f"txns only the cut-off leader logged are on m{k}: {survivors}"


def test_a_follower_crashed_during_its_sync_recovers(make_cluster):
    c = make_cluster(extra_cfg={"wazoo.diffWindowBytes": "65536"})
    leader = c.leader()
    f1 = others(c, leader)[0]
    c.kill(f1)
    bulk_create(c, leader, "/big", 3000, b"y" * 1000)
    wl = start_load(c, seed=6, members=[k for k in c.sids if k != f1])
    for delay in (0.05, 0.2, 0.4):
        c.start(f1)
        time.sleep(delay)            # a SNAP of ~3 MB in flight or being installed
        c.kill(f1)
    c.start(f1)
    c.leader()
    settle(wl, 0.5)
    verify(c, wl)


def test_killing_a_majority_and_restarting_it_loses_no_acknowledged_write(make_cluster):
    c, leader, wl = loaded(make_cluster, seed=7)
    survivor = others(c, leader)[0]
    victims = [k for k in c.sids if k != survivor]
    for k in victims:
        c.kill(k)
    harness.wait_until(lambda: c.mode(survivor) not in ("leader", "follower"), 10.0,
                       what="the lone survivor to stop serving")
    for k in victims:
        c.start(k)
    c.leader()
    progress(wl)
    verify(c, wl)


def test_an_observer_follows_serves_reads_and_forwards_writes_through_a_failover(make_cluster):
    c = make_cluster(voters=3, observers=1)
    leader = c.leader()
    obs = max(c.sids)
    assert c.mode(obs) == "observer"
    harness.wait_until(lambda: c.mntr(leader).get("zk_synced_observers") == "1", 10.0,
                       what="the leader counting its synced observer")
    wl = start_load(c, clients=8, seed=8)
    settle(wl, 1.0)
    c.kill(leader)
    c.leader(others(c, leader))
    progress(wl)
    settle(wl, 0.5)
    c.start(leader)
    c.leader()
    settle(wl, 0.5)
    verify(c, wl)
    # An observer is not a voter: with two voters down, nothing commits.
    voters = [k for k in c.sids if k != obs]
    for k in voters[:2]:
        c.kill(k)
    harness.wait_until(lambda: c.mode(obs) != "observer", 10.0, what="the observer to lose its leader")


def test_the_log_kept_for_diffs_counts_txns_across_epochs(make_cluster):
    # wazoo.logRetainTxns keeps that many txns behind the applied one, whatever their epochs: a
    # member that missed txns of the previous epoch still gets a DIFF from a leader that
    # restarted since (its DIFF window is its log). Subtracting from the zxid instead purged the
    # whole previous epoch at the first purge after an election, and such a member got a SNAP.
    c = make_cluster(voters=5, extra_cfg={"wazoo.logRetainTxns": "1000"})

    l1 = c.leader()
    bulk_create(c, l1, "/a", 100, b"v")
    behind = others(c, l1)[0]
    c.kill(behind)                          # misses the rest of epoch 1 and all of epoch 2
    bulk_create(c, l1, "/b", 200, b"v")
    c.kill(l1)
    live = [k for k in c.sids if k not in (l1, behind)]
    l2 = c.leader(live)
    bulk_create(c, l2, "/c", 600, b"v")     # past a purge (every 250 applied txns here)
    w = zkwire.Conn(harness.HOST, c[l2].port, timeout_ms=SESSION_TIMEOUT_MS)
    try:
        for i in range(20):                 # one at a time: every member checks for a purge
            assert w.create(f"/d{i}", b"").err == 0
    finally:
        w.close()
    c.wait_converged(live)
    for k in live:                          # restart them: their DIFF windows are their logs now
        c.kill(k)
    for k in live:
        c.start(k)
    l3 = c.leader(live)
    diffs, snaps = int(c.mntr(l3)["zk_diff_count"]), int(c.mntr(l3)["zk_snap_count"])
    c.start(behind)
    c.leader(live + [behind])
    c.wait_converged(live + [behind])
    m = c.mntr(l3)
    assert int(m["zk_snap_count"]) == snaps, "the member behind got a SNAP: the log lost the older epoch"
    assert int(m["zk_diff_count"]) > diffs, "no DIFF counted"


def test_a_leader_that_must_snap_a_follower_to_establish_itself_does(make_cluster):
    # The only other live member is too far behind for a DIFF: the new leader must send it a
    # SNAP before it can establish its epoch (it needs its NEWLEADER ACK), while its own tree is
    # not persisted yet. That SNAP comes from memory; reading the store's lagging tree for it
    # stopped the leader with a storage error.
    c = make_cluster(extra_cfg={"wazoo.diffWindowBytes": "65536"})
    leader = c.leader()
    behind, other = others(c, leader)
    c.kill(behind)
    bulk_create(c, leader, "/far", 1500, b"z" * 200)
    c.wait_converged([leader, other])
    c.kill(leader)
    c.start(behind)
    assert c.leader([other, behind]) == other
    c.start(leader)
    c.leader()
    c.wait_converged()
    r = zkwire.Conn(harness.HOST, c[behind].port, timeout_ms=SESSION_TIMEOUT_MS)
    try:
        assert r.exists("/far1499").err == 0
    finally:
        r.close()
