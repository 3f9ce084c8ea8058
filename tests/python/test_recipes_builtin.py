"""The built-in recipes (issue 11, item 8; docs/recipes.md) under concurrent real clients: each is
driven by 8 kazoo sessions through the repo's ``python/wazoo`` package, across a server restart,
with a session that dies while it holds or waits. Safety is checked from what the clients recorded
(never two writers, never more leases than permits, one leader at a time, each barrier round
released once for everyone, each queue item consumed exactly once).

wazoo only: ZooKeeper has no recipe opcode (test_recipes.py shows how it answers).
"""

import random
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest

import harness
import twins

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import wazoo  # noqa: E402

CLIENTS = 8


def run_all(worker, clients, timeout=120):
    """Runs worker(i, zk) for each client in its own thread; raises the first error."""
    errors = []

    def wrap(i, zk):
        try:
            worker(i, zk)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i, zk)) for i, zk in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a worker is stuck"
    if errors:
        raise errors[0]


class Occupancy:
    """How many are inside, and the most there ever were."""

    def __init__(self):
        self.guard = threading.Lock()
        self.now = 0
        self.most = 0

    def enter(self):
        with self.guard:
            self.now += 1
            self.most = max(self.most, self.now)
            return self.now

    def leave(self):
        with self.guard:
            self.now -= 1


def sessions(kazoo_factory, srv, n=CLIENTS, **kw):
    return [kazoo_factory(srv, **kw) for _ in range(n)]


def close(clients):
    for zk in clients:
        zk.stop()
        zk.close()


def test_the_semaphore_never_grants_more_than_its_permits_and_a_dead_holders_lease_goes_to_a_waiter(
        wazoo_server, kazoo_factory):
    inside = Occupancy()
    grants = []

    def worker(i, zk):
        sem = wazoo.Semaphore(zk, "/sem", 3)
        for _ in range(8):
            lease = sem.acquire(timeout=60)
            assert lease is not None and lease.startswith("/sem/")
            n = inside.enter()
            assert n <= 3, f"{n} holders of 3 leases"
            grants.append(i)
            time.sleep(0.005)
            inside.leave()
            assert sem.release(lease) == lease

    for _phase in range(2):
        clients = sessions(kazoo_factory, wazoo_server)
        run_all(worker, clients)
        close(clients)
        wazoo_server.restart()
    assert len(grants) == 2 * CLIENTS * 8
    assert inside.most >= 2, "leases are shared"

    # The count is stored with the semaphore: a client naming another one is refused.
    a, b, c, d = sessions(kazoo_factory, wazoo_server, 4)
    with pytest.raises(wazoo.RecipeAborted, match="has 3 permits"):
        wazoo.Semaphore(a, "/sem", 2).acquire()
    held = [wazoo.Semaphore(zk, "/sem2", 2).acquire() for zk in (a, b)]
    assert all(held)
    assert wazoo.Semaphore(c, "/sem2", 2).acquire(timeout=0.3) is None, "both leases are out"
    waiting = wazoo.Semaphore(c, "/sem2", 2)._call_async("acquire", permits=2)
    time.sleep(0.3)
    assert not waiting.ready()
    shown = wazoo.Semaphore(d, "/sem2", 2).leases()
    assert len(shown["holders"]) == 2 and len(shown["waiting"]) == 1, shown
    close([a])  # a holder's session ends: its lease goes to the waiter
    aborted, _ = waiting.get(timeout=10)
    assert not aborted
    with pytest.raises(wazoo.RecipeAborted, match="not held"):
        wazoo.Semaphore(d, "/sem2", 2).release()

    # A waiter that dies in the middle of the queue: the one behind it still moves up.
    h1, h2, w1, w2, w3 = sessions(kazoo_factory, wazoo_server, 5)
    leases = [wazoo.Semaphore(zk, "/sem3", 2).acquire() for zk in (h1, h2)]
    waits = []
    for zk in (w1, w2, w3):
        waits.append(wazoo.Semaphore(zk, "/sem3", 2)._call_async("acquire", permits=2))
        harness.wait_until(lambda: len(wazoo.Semaphore(h1, "/sem3", 2).leases()["waiting"]) == len(waits), 10,
                           what="queued")
    close([w2])
    assert wazoo.Semaphore(h1, "/sem3", 2).release(leases[0])
    assert waits[0].get(timeout=10)[0] is False, "the first waiter got the lease"
    assert not waits[2].ready()
    assert wazoo.Semaphore(h2, "/sem3", 2).release(leases[1])
    assert waits[2].get(timeout=10)[0] is False, "the one behind the dead waiter got the next"


def test_the_read_write_lock_lets_readers_share_and_writers_exclude_across_a_restart(wazoo_server,
                                                                                   kazoo_factory):
    setup = kazoo_factory(wazoo_server)
    setup.create("/rw-count", b"0")
    readers = Occupancy()
    writers = Occupancy()
    rounds = 10

    def worker(i, zk):
        rw = wazoo.ReadWriteLock(zk, "/rw")
        for r in range(rounds):
            if (i + r) % 3 == 0:
                assert rw.write_lock.acquire(timeout=60)
                assert writers.enter() == 1, "two writers"
                assert readers.now == 0, "a reader beside a writer"
                # An unversioned read-modify-write: a lost update if two wrote at once.
                data, _ = zk.get("/rw-count")
                zk.set("/rw-count", str(int(data) + 1).encode())
                writers.leave()
                assert rw.write_lock.release() == 0
            else:
                assert rw.read_lock.acquire(timeout=60)
                readers.enter()
                assert writers.now == 0, "a writer beside a reader"
                time.sleep(0.005)
                readers.leave()
                assert rw.read_lock.release() == 0

    writes = sum(1 for i in range(CLIENTS) for r in range(rounds) if (i + r) % 3 == 0)
    for _phase in range(2):
        clients = sessions(kazoo_factory, wazoo_server)
        run_all(worker, clients)
        close(clients)
        wazoo_server.restart()
    assert int(setup.get("/rw-count")[0]) == 2 * writes, "no lost update"

    # A writer waiting behind a reader keeps later readers out; the reader's death lets it in.
    a, b, c = sessions(kazoo_factory, wazoo_server, 3)
    assert wazoo.ReadWriteLock(a, "/rw2").read_lock.acquire()
    w = wazoo.ReadWriteLock(b, "/rw2")._call_async("acquire", mode="write")
    time.sleep(0.3)
    assert not w.ready()
    assert wazoo.ReadWriteLock(c, "/rw2").read_lock.acquire(timeout=0.3) is False, "queued behind the writer"
    close([a])
    assert w.get(timeout=10)[0] is False, "the writer holds once the reader's session is gone"
    # Reentrant, and a writer may take the read lock too.
    wb = wazoo.ReadWriteLock(b, "/rw2")
    assert wb.write_lock.acquire(timeout=5)
    assert wb.read_lock.acquire(timeout=5), "a downgrade"
    assert wb.write_lock.release() == 1 and wb.write_lock.release() == 0
    assert wb.read_lock.release() == 0


def test_the_latch_has_one_leader_at_a_time_and_a_dead_leader_hands_over(wazoo_server, kazoo_factory):
    leading = Occupancy()
    order = []

    def worker(i, zk):
        latch = wazoo.LeaderLatch(zk, "/election", f"c{i}")
        for _ in range(3):
            assert latch.await_leadership(timeout=60)
            assert leading.enter() == 1, "two leaders"
            seen = wazoo.LeaderLatch(zk, "/election").leader()
            assert seen is not None and seen[0] == f"c{i}", seen
            order.append(i)
            time.sleep(0.005)
            leading.leave()
            assert latch.leave() is True

    for _phase in range(2):
        clients = sessions(kazoo_factory, wazoo_server)
        run_all(worker, clients)
        close(clients)
        wazoo_server.restart()
    assert sorted(order) == sorted(list(range(CLIENTS)) * 6)

    a, b, observer = sessions(kazoo_factory, wazoo_server, 3)
    assert wazoo.LeaderLatch(a, "/election2", "a").join() is True
    assert wazoo.LeaderLatch(b, "/election2", "b").join() is False
    assert wazoo.LeaderLatch(b, "/election2", "b").await_leadership(timeout=0.3) is False, "still a candidate"
    pending = wazoo.LeaderLatch(b, "/election2", "b")._call_async("await", id="b")
    assert wazoo.LeaderLatch(observer, "/election2").leader()[0] == "a"
    close([a])  # the leader dies
    assert pending.get(timeout=10)[0] is False
    assert wazoo.LeaderLatch(observer, "/election2").leader()[0] == "b"


def test_a_barrier_holds_waiters_across_a_restart_and_releases_each_once_when_removed(wazoo_server,
                                                                                      kazoo_factory):
    owner = kazoo_factory(wazoo_server)
    barrier = wazoo.Barrier(owner, "/gates/g")
    assert barrier.create() is True and barrier.create() is False
    assert barrier.wait(timeout=0.3) is False
    clients = sessions(kazoo_factory, wazoo_server)
    passed = []
    guard = threading.Lock()

    def worker(i, zk):
        # No timeout: the wrapper waits on the server, and calls again (the barrier is a znode)
        # if the connection is lost meanwhile.
        assert wazoo.Barrier(zk, "/gates/g").wait() is True
        with guard:
            passed.append(i)

    waiting = threading.Thread(target=lambda: run_all(worker, clients))
    waiting.start()
    time.sleep(0.5)
    assert passed == [], "held while it is up"
    wazoo_server.restart()
    harness.wait_until(lambda: all(zk.connected for zk in clients + [owner]), 30, what="reconnected")
    time.sleep(1.0)
    assert passed == [], "still held after the restart"
    assert barrier.remove() is True
    waiting.join(60)
    assert not waiting.is_alive()
    assert sorted(passed) == list(range(CLIENTS)), "each waiter passed once"
    assert barrier.wait() is True and barrier.remove() is False


def test_the_double_barrier_lets_everyone_in_and_out_together_every_round(wazoo_server, kazoo_factory):
    rounds = 6
    guard = threading.Lock()
    entering = [0] * (2 * rounds)
    leaving = [0] * (2 * rounds)

    def phase(first_round):
        def worker(i, zk):
            barrier = wazoo.DoubleBarrier(zk, "/db", CLIENTS)
            for r in range(first_round, first_round + rounds):
                with guard:
                    entering[r] += 1
                assert barrier.enter(timeout=60)
                with guard:
                    assert entering[r] == CLIENTS, f"round {r}: in with {entering[r]} of {CLIENTS}"
                with guard:
                    leaving[r] += 1
                assert barrier.leave(timeout=60)
                with guard:
                    assert leaving[r] == CLIENTS, f"round {r}: out with {leaving[r]} of {CLIENTS}"

        clients = sessions(kazoo_factory, wazoo_server)
        run_all(worker, clients)
        close(clients)

    phase(0)
    wazoo_server.restart()
    phase(rounds)

    # A participant whose session dies between enter and leave counts as gone.
    clients = sessions(kazoo_factory, wazoo_server, 3)
    entered = [wazoo.DoubleBarrier(zk, "/db2", 3)._call_async("enter", count=3) for zk in clients]
    for e in entered:
        assert e.get(timeout=10)[0] is False
    leaves = [wazoo.DoubleBarrier(zk, "/db2", 3)._call_async("leave") for zk in clients[:2]]
    time.sleep(0.3)
    assert not any(l.ready() for l in leaves), "one is still in"
    close(clients[2:])
    for l in leaves:
        assert l.get(timeout=10)[0] is False
    # Too few enter: a timeout says so and takes the participant out again.
    lone = wazoo.DoubleBarrier(clients[0], "/db3", 2)
    assert lone.enter(timeout=0.3) is False
    assert clients[0].get_children("/db3") == []


@pytest.mark.parametrize("lang", twins.LANGS["queue"])
def test_the_queue_hands_each_item_out_once_by_priority_and_takes_back_a_dead_takers(wazoo_server,
                                                                                   kazoo_factory, lang):
    """The same for the built-in (Rust) and its Python twin, loaded as a recipe of its own."""
    name = twins.load(wazoo_server, "queue", lang)

    def Queue(zk, path):  # noqa: N802 - stands for wazoo.Queue
        return wazoo.Queue(zk, path, name)

    setup = kazoo_factory(wazoo_server)
    q = Queue(setup, "/q")
    # Order: priority first (lower first), then arrival.
    for data, prio in [(b"c", 5), (b"a", 1), (b"d", 5), (b"b", 1), (b"z", -3)]:
        q.put(data, priority=prio)
    got = []
    for _ in range(5):
        item, data = q.take(timeout=5)
        got.append(data)
        assert q.consume(item)
    assert got == [b"z", b"a", b"b", b"c", b"d"]
    assert q.take(timeout=0.2) is None

    # 4 producers and 8 takers; two takers die holding an item, which goes to another.
    per_producer = 40
    consumed = []
    guard = threading.Lock()
    producers = sessions(kazoo_factory, wazoo_server, 4)
    takers = sessions(kazoo_factory, wazoo_server)
    # Two takers wait before anything is queued, so they are served first; each then dies
    # holding its item.
    dying = [kazoo_factory(wazoo_server) for _ in range(2)]
    dead_takes = [Queue(zk, "/q")._call_async("take") for zk in dying]
    time.sleep(0.2)

    def produce(i, zk):
        pq = Queue(zk, "/q")
        for n in range(per_producer):
            pq.put(f"{i}-{n}".encode(), priority=random.choice([0, 1]))

    def take(i, zk):
        tq = Queue(zk, "/q")
        while True:
            got = tq.take(timeout=3)
            if got is None:
                return
            item, data = got
            assert tq.consume(item)
            with guard:
                consumed.append(data)

    def both(i, zk):
        if i < 4:
            produce(i, producers[i])
        take(i, zk)

    first_half = threading.Thread(target=lambda: run_all(both, takers))
    first_half.start()
    for t in dead_takes:
        aborted, _ = t.get(timeout=30)
        assert not aborted
    close(dying)  # each held a claimed item: both go back
    first_half.join(180)
    assert not first_half.is_alive()
    expected = sorted(f"{i}-{n}".encode() for i in range(4) for n in range(per_producer))
    assert sorted(consumed) == expected, "every item consumed exactly once"

    # Items survive a restart; one taken and not consumed stays its taker's until given back.
    q = Queue(setup, "/q2")
    for n in range(3):
        q.put(str(n).encode())
    wazoo_server.restart()
    harness.wait_until(lambda: setup.connected, 30, what="reconnected")
    item, data = q.take(timeout=5)
    assert data == b"0"
    other = Queue(kazoo_factory(wazoo_server), "/q2")
    with pytest.raises(wazoo.RecipeAborted, match="not taken by this session"):
        other.consume(item)
    assert q.size() == {"items": 3, "taken": 1}
    assert q.give_back(item)
    assert other.get(timeout=5) == b"0", "given back: first again"
    assert sorted([other.get(timeout=5), other.get(timeout=5)]) == [b"1", b"2"]
    assert other.size() == {"items": 0, "taken": 0}

    # The first of two waiting takers dies: the next item goes to the second.
    t1, t2, producer = sessions(kazoo_factory, wazoo_server, 3)
    first = Queue(t1, "/q3")._call_async("take")
    harness.wait_until(lambda: producer.exists("/q3/takers") and len(producer.get_children("/q3/takers")) == 1,
                       10, what="the first taker waiting")
    second = Queue(t2, "/q3")._call_async("take")
    harness.wait_until(lambda: len(producer.get_children("/q3/takers")) == 2, 10, what="both waiting")
    close([t1])
    Queue(producer, "/q3").put(b"only")
    aborted, out = second.get(timeout=10)
    assert not aborted and msgpack.unpackb(out)["data"] == b"only"
