"""Kazoo's recipes work unchanged against the server with several concurrent sessions (separate
KazooClient instances on separate threads): Lock (mutual exclusion, every waiter served), Election (one
leader at a time, every candidate leads once), Barrier (nobody passes until it is removed), DoubleBarrier
(nobody enters before all arrived, nobody leaves before all left), Counter (no lost increments), Queue
(every item delivered exactly once, priority order), LockingQueue (exactly-once with consume, a held item is
invisible to others until released), Semaphore (never more than max_leases holders) and Party (membership
counts). Every wait is bounded.
"""

import threading
import time
from collections import Counter as Multiset

import pytest
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock, Semaphore
from kazoo.recipe.party import Party, ShallowParty
from kazoo.recipe.queue import LockingQueue, Queue

N = 5          # concurrent clients per recipe
JOIN = 60.0    # seconds any thread may take


def run_threads(fns):
    """Run callables on threads; re-raise the first exception; fail if any does not finish in time."""
    errors = []

    def wrap(fn):
        def inner():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
        return inner

    ts = [threading.Thread(target=wrap(f), daemon=True) for f in fns]
    for t in ts:
        t.start()
    deadline = time.monotonic() + JOIN
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in ts), "a recipe thread is still blocked"


@pytest.fixture
def clients(kazoo_factory):
    return [kazoo_factory() for _ in range(N)]


def test_lock_gives_mutual_exclusion_and_serves_every_waiter(clients, base):
    inside = []
    max_inside = [0]
    guard = threading.Lock()
    entries = Multiset()

    def worker(i, c):
        lock = Lock(c, base, identifier=f"w{i}")
        for _ in range(3):
            assert lock.acquire(timeout=30), f"w{i} could not get the lock"
            try:
                with guard:
                    inside.append(i)
                    max_inside[0] = max(max_inside[0], len(inside))
                entries[i] += 1
                time.sleep(0.005)
                with guard:
                    inside.remove(i)
            finally:
                lock.release()

    run_threads([lambda i=i, c=c: worker(i, c) for i, c in enumerate(clients)])
    assert max_inside[0] == 1
    assert entries == Multiset({i: 3 for i in range(N)})
    clients[0].sync(base)
    assert clients[0].get_children(base) == []


def test_lock_contenders_are_listed_in_queue_order(clients, base):
    holder = Lock(clients[0], base, identifier="holder")
    assert holder.acquire(timeout=10)
    waiters = []
    started = []
    for i, c in enumerate(clients[1:4], start=1):
        lk = Lock(c, base, identifier=f"waiter{i}")
        t = threading.Thread(target=lambda lk=lk: lk.acquire(timeout=30), daemon=True)
        t.start()
        waiters.append((lk, t))
        started.append(f"waiter{i}")
        # wait until this waiter's node is queued before starting the next one
        deadline = time.monotonic() + 10
        while len(holder.contenders()) < i + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert holder.contenders() == ["holder"] + started
    holder.release()
    for lk, t in waiters:
        t.join(30)
        assert lk.is_acquired
        lk.release()


def test_election_has_one_leader_at_a_time_and_every_candidate_leads(clients, base):
    leading = []
    led = []
    guard = threading.Lock()
    overlap = [False]

    def lead(i):
        with guard:
            if leading:
                overlap[0] = True
            leading.append(i)
            led.append(i)
        time.sleep(0.02)
        with guard:
            leading.remove(i)

    def candidate(i, c):
        Election(c, base, identifier=f"c{i}").run(lead, i)

    run_threads([lambda i=i, c=c: candidate(i, c) for i, c in enumerate(clients)])
    assert not overlap[0]
    assert sorted(led) == list(range(N))


def test_barrier_blocks_every_waiter_until_removed(clients, base):
    Barrier(clients[0], base).create()
    passed = []
    removed_at = []

    def waiter(c):
        c.sync(base)   # the waiter's member has the barrier (an ensemble's members may lag)
        assert Barrier(c, base).wait(timeout=30)
        passed.append(time.monotonic())

    threads = [threading.Thread(target=waiter, args=(c,), daemon=True) for c in clients[1:]]
    [t.start() for t in threads]
    time.sleep(0.3)
    assert passed == [], "a waiter passed a barrier that still exists"
    removed_at.append(time.monotonic())
    assert Barrier(clients[0], base).remove()
    [t.join(30) for t in threads]
    assert len(passed) == N - 1 and min(passed) >= removed_at[0]


def test_double_barrier_admits_all_together_and_releases_all_together(clients, base):
    arrived = []
    entered_with = []
    left = []
    guard = threading.Lock()

    def participant(i, c):
        db = DoubleBarrier(c, base, N, identifier=f"p{i}")
        with guard:
            arrived.append(i)
        db.enter()
        with guard:
            entered_with.append(len(arrived))
        db.leave()
        with guard:
            left.append(i)

    run_threads([lambda i=i, c=c: participant(i, c) for i, c in enumerate(clients)])
    assert entered_with == [N] * N, f"someone entered before everyone arrived: {entered_with}"
    assert sorted(left) == list(range(N))
    assert clients[0].exists(base) is None or clients[0].get_children(base) == []


def test_counter_loses_no_concurrent_increments(clients, base):
    per = 20

    def inc(c):
        counter = Counter(c, base)
        for _ in range(per):
            counter += 1

    run_threads([lambda c=c: inc(c) for c in clients])
    assert Counter(clients[0], base).value == N * per
    counter = Counter(clients[0], base)
    counter -= 5
    assert counter.value == N * per - 5


def test_queue_delivers_every_item_exactly_once(clients, base):
    producers, consumers = clients[:N // 2 + 1], clients[N // 2 + 1:] + clients[:1]
    items = {f"{i}-{k}".encode() for i in range(len(producers)) for k in range(10)}
    got = []
    guard = threading.Lock()
    done = threading.Event()

    def produce(i, c):
        q = Queue(c, base)
        for k in range(10):
            q.put(f"{i}-{k}".encode())

    def consume(c):
        q = Queue(c, base)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            v = q.get()
            if v is not None:
                with guard:
                    got.append(v)
                    if len(got) == len(items):
                        done.set()
            elif done.is_set():
                return
            else:
                time.sleep(0.005)

    run_threads([lambda i=i, c=c: produce(i, c) for i, c in enumerate(producers)]
                + [lambda c=c: consume(c) for c in consumers])
    assert sorted(got) == sorted(items)
    assert len(Queue(clients[0], base)) == 0


def test_queue_orders_by_priority_then_insertion(clients, base):
    q = Queue(clients[0], base)
    for v, prio in [(b"low-1", 200), (b"high-1", 10), (b"mid", 100), (b"high-2", 10), (b"low-2", 200)]:
        q.put(v, priority=prio)
    assert len(q) == 5
    reader = Queue(clients[1], base)
    assert [reader.get() for _ in range(5)] == [b"high-1", b"high-2", b"mid", b"low-1", b"low-2"]
    assert reader.get() is None


def test_locking_queue_consumes_each_item_once(clients, base):
    total = 24
    LockingQueue(clients[0], base).put_all([f"item-{k}".encode() for k in range(total)])
    got = []
    guard = threading.Lock()

    def consumer(c):
        q = LockingQueue(c, base)
        while True:
            with guard:
                if len(got) >= total:
                    return
            v = q.get(timeout=0.5)
            if v is None:
                continue
            with guard:
                got.append(v)
            assert q.consume()

    run_threads([lambda c=c: consumer(c) for c in clients[:4]])
    assert sorted(got) == sorted(f"item-{k}".encode() for k in range(total))
    assert len(LockingQueue(clients[0], base)) == 0


def test_locking_queue_hides_a_held_item_until_released(clients, base):
    a, b = LockingQueue(clients[0], base), LockingQueue(clients[1], base)
    a.put(b"only")
    assert a.get(timeout=5) == b"only"
    assert b.get(timeout=0.3) is None          # held by a
    assert a.release()
    assert b.get(timeout=5) == b"only"
    assert b.consume()
    clients[0].sync(base)   # a's member sees b's consume (an ensemble's members may lag)
    assert len(a) == 0


def test_semaphore_never_exceeds_max_leases(clients, base):
    holding = []
    peak = [0]
    guard = threading.Lock()

    def worker(i, c):
        sem = Semaphore(c, base, identifier=f"s{i}", max_leases=2)
        for _ in range(2):
            assert sem.acquire(timeout=30)
            try:
                with guard:
                    holding.append(i)
                    peak[0] = max(peak[0], len(holding))
                    assert len(holding) <= 2
                time.sleep(0.05)
                with guard:
                    holding.remove(i)
            finally:
                sem.release()

    run_threads([lambda i=i, c=c: worker(i, c) for i, c in enumerate(clients)])
    assert peak[0] == 2
    assert Semaphore(clients[0], base, max_leases=2).lease_holders() == []


@pytest.mark.parametrize("cls", [Party, ShallowParty])
def test_party_membership_is_counted_by_everyone(clients, base, cls):
    parties = [cls(c, base, identifier=f"m{i}") for i, c in enumerate(clients)]
    run_threads([p.join for p in parties])
    # sync before counting: in an ensemble (WAZOO_TEST_ENSEMBLE) the clients may sit on different
    # members, and only sync-then-read sees the others' writes (ZooKeeper's guarantee too).
    for c in clients:
        c.sync(base)
    for p in parties:
        assert len(p) == N
    assert sorted(parties[0]) == sorted(f"m{i}" for i in range(N))
    parties[0].leave()
    parties[1].leave()
    clients[2].sync(base)
    assert len(parties[2]) == N - 2
    # A member that disappears with its session leaves the party too.
    clients[2].stop()
    clients[3].sync(base)
    assert len(parties[3]) == N - 3
