"""Recipes in a 3-server ensemble (docs/recipes.md, "Recipes in an ensemble"): calls run on the
leader; a follower relays its clients' calls there and their replies back, in each client's order and
never ahead of what the follower has applied. Clients are spread over every member.
"""

import sys
import threading
import time
from pathlib import Path

import pytest

import harness

from test_ensemble import ensemble, mode, the_leader  # noqa: F401  (the fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
import wazoo  # noqa: E402


def clients_on(servers, per_member, kazoo_factory):
    """Clients on every member (the recipes' parent path made first)."""
    out = []
    for s in servers:
        for _ in range(per_member):
            zk = kazoo_factory(s, timeout=10.0)
            out.append((s, zk))
    out[0][1].ensure_path("/ens")
    return out


def test_counter_adds_from_every_member_each_count_once(ensemble, kazoo_factory):
    the_leader(ensemble)
    clients = clients_on(ensemble, 2, kazoo_factory)
    got, lock = [], threading.Lock()

    stale = []

    def adder(zk):
        c = wazoo.Counter(zk, "/ens/count")
        for _ in range(20):
            v = c.add(1)
            # A plain read on the same member right after the reply sees the add: the reply
            # waited for this member to apply it (no sync needed).
            seen = int.from_bytes(zk.get("/ens/count")[0], "little", signed=True)
            with lock:
                got.append(v)
                if seen < v:
                    stale.append((v, seen))

    threads = [threading.Thread(target=adder, args=(zk,)) for _, zk in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == list(range(1, 121)), "every add answered once, with its own value"
    assert not stale, f"reads behind the reply saw older values: {stale[:5]}"
    # A follower's client reads what its own call wrote, at once (the reply waited for the apply).
    for s, zk in clients:
        assert wazoo.Counter(zk, "/ens/count").add(0) == 120
    # The leader's relay connections for the followers' clients are not its client connections.
    leader = the_leader(ensemble)
    stats = dict(l.split("\t", 1) for l in leader.four_letter("mntr").splitlines() if "\t" in l)
    assert stats["zk_num_alive_connections"] == "2", stats["zk_num_alive_connections"]
    assert leader.four_letter("cons").count("sid=") == 2


def test_a_mutex_held_from_clients_on_every_member_is_held_by_one_at_a_time(ensemble, kazoo_factory):
    the_leader(ensemble)
    clients = clients_on(ensemble, 2, kazoo_factory)
    inside, most, rounds, lock = [0], [0], [0], threading.Lock()

    def contender(zk):
        m = wazoo.Lock(zk, "/ens/mutex")
        for _ in range(5):
            assert m.acquire(timeout=30)
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.005)
            with lock:
                inside[0] -= 1
                rounds[0] += 1
            m.release()

    threads = [threading.Thread(target=contender, args=(zk,)) for _, zk in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert rounds[0] == 30 and most[0] == 1


def test_a_waiter_parked_on_the_leader_acquires_after_the_leader_is_killed(ensemble, kazoo_factory):
    leader = the_leader(ensemble)
    followers = [s for s in ensemble if s is not leader]
    holder = kazoo_factory(followers[0], timeout=10.0)
    waiter = kazoo_factory(followers[1], timeout=10.0)
    holder.ensure_path("/ens")
    assert wazoo.Lock(holder, "/ens/failover").acquire(timeout=10)
    pending = {}

    def wait():
        pending["got"] = wazoo.Lock(waiter, "/ens/failover").acquire(timeout=60)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(1.0)  # parked on the leader, recorded as a znode
    leader.kill()
    harness.wait_until(lambda: sorted(mode(s) for s in followers) == ["follower", "leader"], 30,
                       what="a new leader")
    # The holder's session lives on (its client reconnects); its release wakes the re-armed waiter.
    wazoo.Lock(holder, "/ens/failover").release()
    t.join(60)
    assert pending.get("got") is True
    new_leader = next(s for s in followers if mode(s) == "leader")
    stats = dict(l.split("\t", 1) for l in new_leader.four_letter("mntr").splitlines() if "\t" in l)
    assert int(stats["zk_recipe_calls_rearmed"]) >= 1, "the waiter was re-armed from its record"


def test_a_waiting_call_whose_session_moves_to_another_member_is_taken_over_there(ensemble,
                                                                                 kazoo_factory):
    """The client moves its session from one follower to the other while its acquire waits, and
    the first follower has not seen its connection close (its socket stays open): the retry under
    the same request id from the second follower takes the parked call over instead of being
    refused as a request id reused on a live connection."""
    leader = the_leader(ensemble)
    first, second = [s for s in ensemble if s is not leader]
    holder = kazoo_factory(leader, timeout=10.0)
    holder.ensure_path("/ens")
    assert wazoo.Lock(holder, "/ens/moved").acquire(timeout=10)
    a = kazoo_factory(first, timeout=10.0)
    args = {"path": "/ens/moved", "timeout_ms": 30_000}
    wazoo.recipe_call_async(a, "mutex", "acquire", args, request_id="moved-1")
    time.sleep(0.5)  # parked on the leader
    b = kazoo_factory(second, timeout=10.0, client_id=a.client_id)
    retry = wazoo.recipe_call_async(b, "mutex", "acquire", args, request_id="moved-1")
    time.sleep(0.3)
    wazoo.Lock(holder, "/ens/moved").release()
    aborted, output = retry.get(timeout=20)
    assert not aborted and wazoo._unpack(output)["acquired"] is True



def test_counter_adds_through_a_leader_kill_each_count_exactly_once(ensemble, kazoo_factory):
    """Clients on the two followers add while the leader is killed: each add retried under its
    request id after the connection loss is answered once, by the new leader from the answer
    recorded with the add (or it runs then, if it never committed), so the counter ends at the
    number of adds and every add got its own value."""
    leader = the_leader(ensemble)
    followers = [s for s in ensemble if s is not leader]
    clients = [kazoo_factory(s, timeout=15.0) for s in followers for _ in range(2)]
    clients[0].ensure_path("/ens")
    got, errors, lock = [], [], threading.Lock()
    per_client = 40

    def adder(zk):
        c = wazoo.Counter(zk, "/ens/killed")
        for _ in range(per_client):
            try:
                v = c.add(1)
            except Exception as e:  # noqa: BLE001 - recorded, asserted below
                with lock:
                    errors.append(repr(e))
                continue
            with lock:
                got.append(v)

    threads = [threading.Thread(target=adder, args=(zk,)) for zk in clients]
    for t in threads:
        t.start()
    harness.wait_until(lambda: len(got) >= 20, 30, what="adds before the kill")
    leader.kill()
    at_kill = len(got)
    for t in threads:
        t.join(120)
    assert "leader" in [mode(s) for s in followers]
    assert at_kill < per_client * len(clients), "adds went on after the kill"
    assert not errors, errors[:3]
    assert len(got) == per_client * len(clients)
    assert sorted(got) == list(range(1, len(got) + 1)), "each add counted once, with its own value"
    assert wazoo.Counter(clients[0], "/ens/killed").add(0) == len(got)
