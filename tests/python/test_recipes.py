"""Server-side recipes (issue 11, docs/recipes.md) called by real clients: kazoo through the repo's
``python/wazoo`` package, and ``wazoo recipe call``.

wazoo only, except the last test: a real ZooKeeper answers the recipe opcode UNIMPLEMENTED and closes the
connection, which is how a client tells the two apart.
"""

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest
from kazoo.exceptions import ConnectionLoss, NoAuthError, UnimplementedError

import harness
import twins

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))

import wazoo  # noqa: E402


def hostile_server(factory):
    return factory(extra_cfg={"wazoo.recipes": "counter,hostile"})


def test_the_counter_is_exact_under_8_concurrent_sessions_and_a_restart(wazoo_server_factory, kazoo_factory):
    srv = wazoo_server_factory()
    path = "/counters/exact"
    seen = []
    errors = []
    lock = threading.Lock()

    def phase(adds_each):
        clients = [kazoo_factory(srv) for _ in range(8)]

        def worker(zk):
            try:
                c = wazoo.Counter(zk, path)
                for _ in range(adds_each):
                    v = c.add(1)
                    with lock:
                        seen.append(v)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(zk,)) for zk in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for zk in clients:
            zk.stop()
            zk.close()

    kazoo_factory(srv).ensure_path("/counters")
    phase(40)
    srv.restart()
    phase(40)
    assert not errors, errors
    # Atomic: every add saw a distinct value, and together they are exactly 1..640.
    assert sorted(seen) == list(range(1, 641))
    data, stat = kazoo_factory(srv).get(path)
    assert struct.unpack("<q", data)[0] == 640
    assert stat.version == 639, "one txn per add: created, then 639 setData"


def test_a_recipe_call_takes_effect_in_request_order_with_the_sessions_other_requests(wazoo_server, kazoo_factory):
    zk = kazoo_factory(wazoo_server)
    zk.ensure_path("/order")
    # Pipelined without waiting: a create, the call, then a read of what the call wrote.
    a = zk.create_async("/order/before", b"")
    call = wazoo.recipe_call_async(zk, "counter", "add", {"path": "/order/c", "delta": 7})
    read = zk.get_async("/order/c")
    assert a.get(timeout=10) == "/order/before"
    assert call.get(timeout=10) == (False, msgpack.packb(7))
    data, stat = read.get(timeout=10)
    assert data == struct.pack("<q", 7), "the read behind the call sees its write"
    before = zk.exists("/order/before")
    assert before.czxid < stat.czxid, "the call's txn follows the create sent before it"


def test_each_hostile_recipe_fails_only_its_own_call_while_other_clients_are_served(wazoo_server_factory,
                                                                                  kazoo_factory):
    srv = hostile_server(wazoo_server_factory)
    caller = kazoo_factory(srv)
    caller.ensure_path("/hostile/flood")
    other = kazoo_factory(srv)
    stop = threading.Event()
    served = []
    failures = []

    def plain_creates():
        i = 0
        while not stop.is_set():
            try:
                other.create(f"/hostile/plain-{i}", b"x")
                served.append(i)
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(e)
            i += 1

    t = threading.Thread(target=plain_creates)
    t.start()
    try:
        for op, args in [("spin", b""), ("trap", b""), ("bomb", b""), ("recurse", b""), ("huge", b"2000000")]:
            before = len(served)
            with pytest.raises(wazoo.RecipeFailedError):
                wazoo.recipe_call(caller, "hostile", op, args)
            harness.wait_until(lambda: len(served) > before + 5, 10, what=f"plain creates after {op}")
        with pytest.raises(wazoo.RecipeAborted) as aborted:
            wazoo.recipe_call(caller, "hostile", "flood", b"/hostile/flood")
        assert aborted.value.error == b"flood: limit-exceeded after 1000"
        with pytest.raises(wazoo.RecipeAborted) as aborted:
            wazoo.recipe_call(caller, "hostile", "escape", b"")
        assert aborted.value.error == b"escape: no-auth, no-auth, no-auth, no-auth"
        with pytest.raises(wazoo.RecipeAborted) as aborted:
            wazoo.recipe_call(caller, "hostile", "children", b"/zookeeper")
        assert aborted.value.error == b"children: no-auth"
        with pytest.raises(wazoo.NoRecipeError):
            wazoo.recipe_call(caller, "nonesuch", "x")
    finally:
        stop.set()
        t.join(10)
    assert not failures, failures
    assert caller.get_children("/hostile/flood") == [], "the flood left nothing"
    # The caller's session is unharmed: its next call works.
    assert wazoo.Counter(caller, "/hostile/count").add(2) == 2


def test_a_parked_call_whose_session_closes_runs_once_more_cancelled_and_its_cleanup_commits(
        wazoo_server_factory, kazoo_factory):
    """docs/recipes.md, "Cancelled runs": the call leaves a persistent node and parks; its session
    closes; the recipe runs again with reason cancelled, after the close: its delete and create
    commit, its ephemeral is refused (the session is closed), and nobody is left waiting."""
    srv = hostile_server(wazoo_server_factory)
    setup, caller = kazoo_factory(srv), kazoo_factory(srv)
    wazoo.recipe_call_async(caller, "hostile", "linger", b"/linger")
    harness.wait_until(lambda: setup.exists("/linger") is not None, 10, what="the call parked")
    caller.stop()
    caller.close()
    harness.wait_until(lambda: setup.exists("/linger-cancelled") is not None, 10, what="the cancelled run")
    assert setup.exists("/linger") is None, "its delete committed"
    assert setup.get("/linger-cancelled")[0] == b"system-error", "its ephemeral was refused"
    assert setup.exists("/linger-ephemeral") is None
    assert mntr(srv)["zk_recipe_calls_cancelled"] == "1"


def test_wazoo_recipe_call_takes_json_and_prints_the_output_as_json(wazoo_server):
    def call(*args):
        return subprocess.run([str(harness.wazoo_bin()), "recipe", "-s", wazoo_server.hosts, "call", *args],
                              capture_output=True, text=True, timeout=30)

    out = call("counter", "add", '{"path": "/cli-counter", "delta": 5}')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "5"
    out = call("mutex", "acquire", '{"path": "/cli-lock"}')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["acquired"] is True
    # Bytes as they are: the same add, packed by hand.
    out = call("counter", "add", "--hex", msgpack.packb({"path": "/cli-counter", "delta": 2}).hex())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7"
    out = call("counter", "add", '{"path": "/cli-counter"}')
    assert out.returncode == 1, "an abort is a failure"
    assert "missing field" in out.stderr and "delta" in out.stderr, out.stderr
    out = subprocess.run([str(harness.wazoo_bin()), "recipe", "-s", wazoo_server.hosts, "call", "nonesuch", "x"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "NORECIPE (-1001)" in out.stderr


def test_zookeeper_answers_a_recipe_call_unimplemented_and_closes(zk_server, kazoo_factory):
    zk = kazoo_factory(zk_server)
    with pytest.raises((UnimplementedError, ConnectionLoss)):
        wazoo.recipe_call(zk, "counter", "add", b"")


def test_a_wait_parks_on_the_server_until_the_counter_reaches_its_target(wazoo_server, kazoo_factory):
    # A 4 s session: the waiter's heartbeats must be answered while its call is parked for longer.
    waiter = kazoo_factory(wazoo_server, timeout=4.0)
    adder = kazoo_factory(wazoo_server)
    waiter.ensure_path("/latch")
    pending = wazoo.Counter(waiter, "/latch/n").wait_async(3)
    c = wazoo.Counter(adder, "/latch/n")
    for i in range(1, 3):
        assert c.add(1) == i
        time.sleep(2.0)
        assert not pending.ready(), f"still waiting at {i}"
    c.add(1)
    assert pending.get(timeout=10) == (False, msgpack.packb(3))
    assert waiter.connected
    # The waiter's session goes on: its next request is answered.
    assert waiter.exists("/latch/n") is not None


def test_a_wait_with_a_timeout_aborts_timed_out_and_leaves_the_session_usable(wazoo_server, kazoo_factory):
    zk = kazoo_factory(wazoo_server)
    zk.ensure_path("/latch2")
    t0 = time.monotonic()
    with pytest.raises(wazoo.RecipeAborted) as aborted:
        wazoo.Counter(zk, "/latch2/n").wait(5, timeout=1.5)
    waited = time.monotonic() - t0
    assert aborted.value.error == "timed out"
    assert 1.5 <= waited < 5.0, waited
    assert wazoo.Counter(zk, "/latch2/n").add(5) == 5
    assert wazoo.Counter(zk, "/latch2/n").wait(5) == 5, "already there: no wait"


def test_a_recipe_parking_on_too_many_paths_fails_and_parked_calls_go_with_their_session(wazoo_server_factory,
                                                                                        kazoo_factory):
    srv = hostile_server(wazoo_server_factory)
    zk = kazoo_factory(srv)
    with pytest.raises(wazoo.RecipeFailedError):
        wazoo.recipe_call(zk, "hostile", "park", b"5000")
    # Many sessions parked forever, then gone: the server goes on serving.
    parked = [kazoo_factory(srv) for _ in range(20)]
    calls = [wazoo.recipe_call_async(p, "hostile", "park", b"1000") for p in parked]
    time.sleep(0.5)
    assert not any(c.ready() for c in calls)
    for p in parked:
        p.stop()
        p.close()
    assert zk.create("/after-parking", b"") == "/after-parking"


@pytest.mark.parametrize("lang", twins.LANGS["mutex"])
def test_the_mutex_excludes_8_sessions_hands_over_fairly_and_survives_a_holder_that_dies(wazoo_server,
                                                                                        kazoo_factory, lang):
    """Each of 8 sessions takes the lock 15 times and, holding it, does a read-modify-write of a shared
    node without a version (a lost update if two held it at once); the holders recorded in order never
    overlap. Then a session that dies holding the lock hands it to the next waiter, and a holder and a
    waiter keep their places across a server restart. The same for the built-in (Rust) and its twins
    in Python and C, loaded as recipes of their own."""
    mutex = twins.load(wazoo_server, "mutex", lang)
    setup = kazoo_factory(wazoo_server)
    setup.create("/mx-count", b"0")
    rounds = 15
    holders = []
    inside = [0]
    errors = []
    guard = threading.Lock()

    def worker(i, zk):
        try:
            lock = wazoo.Lock(zk, "/mx", mutex)
            for _ in range(rounds):
                assert lock.acquire()
                with guard:
                    inside[0] += 1
                    overlap = inside[0]
                    holders.append(i)
                assert overlap == 1, "two holders at once"
                data, _ = zk.get("/mx-count")
                zk.set("/mx-count", str(int(data) + 1).encode())
                with guard:
                    inside[0] -= 1
                lock.release()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    clients = [kazoo_factory(wazoo_server) for _ in range(8)]
    threads = [threading.Thread(target=worker, args=(i, zk)) for i, zk in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert int(setup.get("/mx-count")[0]) == 8 * rounds, "no lost update: never two holders"
    assert sorted(set(holders)) == list(range(8))

    # Reentrant: the holder takes it twice and must give it back twice.
    a, b = kazoo_factory(wazoo_server), kazoo_factory(wazoo_server)
    la, lb = wazoo.Lock(a, "/mx2", mutex), wazoo.Lock(b, "/mx2", mutex)
    assert la.acquire() and la.acquire()
    la.release()
    assert lb.acquire(timeout=0.5) is False, "still held once"
    la.release()
    assert lb.acquire(timeout=5)
    # A holder whose session dies: the next waiter gets it.
    waiting = wazoo.recipe_call_async(a, mutex, "acquire", {"path": "/mx2"})
    time.sleep(0.3)
    assert not waiting.ready()
    b.stop()
    b.close()
    aborted, out = waiting.get(timeout=10)
    out = msgpack.unpackb(out)
    assert not aborted and out["acquired"] and out["node"].startswith("/mx2/"), out
    with pytest.raises(wazoo.RecipeAborted):
        wazoo.Lock(kazoo_factory(wazoo_server), "/mx2", mutex).release()

    # Across a restart: the holder keeps the lock (its node is durable, its session lives), the
    # waiter's call is parked as data, re-armed and taken over by the wrapper's retry, and the
    # release after the restart hands the lock over.
    h, w = kazoo_factory(wazoo_server), kazoo_factory(wazoo_server)
    lh, lw = wazoo.Lock(h, "/mx3", mutex), wazoo.Lock(w, "/mx3", mutex)
    assert lh.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(lw.acquire(timeout=60)))
    waiter.start()
    harness.wait_until(lambda: len(setup.get_children("/mx3")) == 2, 10, what="the waiter queued")
    wazoo_server.restart()
    harness.wait_until(lambda: h.connected and w.connected and setup.connected, 30, what="reconnected")
    harness.wait_until(lambda: len(setup.get_children("/mx3")) == 2, 10, what="both nodes back")
    assert not got, "still held after the restart"
    assert lh.release() == 0
    waiter.join(30)
    assert got == [True], got


def builtin_wasm(name):
    """A built-in recipe's component as the build made it (host/recipes' build script output)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/wazoo-target"))
    found = sorted(target.glob(f"*/build/wazoo-recipes-*/out/{name}.wasm"), key=lambda p: p.stat().st_mtime)
    assert found, f"no {name}.wasm under {target}: build the workspace first"
    return found[-1]


def mntr(srv):
    return dict(line.split("\t", 1) for line in srv.four_letter("mntr").splitlines() if "\t" in line)


def recipe_cli(srv, *args):
    out = subprocess.run([str(harness.wazoo_bin()), "recipe", "-s", srv.hosts, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_recipe_hot_loaded_under_load_serves_new_calls_while_a_parked_call_finishes_on_its_version(
        wazoo_server, kazoo_factory):
    """Version 1 of "dynlock" is the mutex, version 2 the semaphore: both take acquire {path, permits}
    and both succeed at once on a free path, but the semaphore stores its permits in the lock node
    (8 bytes) and the mutex does not, so each call's lock node says which version served it."""
    recipe_cli(wazoo_server, "load", "dynlock", str(builtin_wasm("mutex")))
    probe = kazoo_factory(wazoo_server)
    harness.wait_until(lambda: wazoo.recipe_call(probe, "dynlock", "acquire", {"path": "/probe", "permits": 1}),
                       30, what="version 1 compiled")
    holder, waiter = kazoo_factory(wazoo_server), kazoo_factory(wazoo_server)
    assert wazoo.recipe_call(holder, "dynlock", "acquire", {"path": "/held", "permits": 1})["acquired"]
    parked = wazoo.recipe_call_async(waiter, "dynlock", "acquire", {"path": "/held", "permits": 1})

    stop = threading.Event()
    errors = []
    served = {i: [] for i in range(4)}

    def load(i, zk):
        n = 0
        while not stop.is_set():
            path = f"/dl/{i}-{n}"
            try:
                out = wazoo.recipe_call(zk, "dynlock", "acquire", {"path": path, "permits": 1})
                assert out["acquired"], out
                served[i].append(path)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            n += 1

    clients = [kazoo_factory(wazoo_server) for _ in range(4)]
    threads = [threading.Thread(target=load, args=(i, zk)) for i, zk in enumerate(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    recipe_cli(wazoo_server, "load", "dynlock", str(builtin_wasm("semaphore")), "--expect-version", "1")

    def by_version_2():
        paths = [p for i in served for p in served[i][-3:]]
        return paths and all(len(probe.get(p)[0]) == 8 for p in paths)

    harness.wait_until(by_version_2, 30, what="new calls served by version 2")
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    for i, paths in served.items():
        versions = [2 if len(probe.get(p)[0]) == 8 else 1 for p in paths]
        assert versions[0] == 1 and versions[-1] == 2, (i, versions[:3], versions[-3:])
        assert versions == sorted(versions), f"client {i}: once on version 2, never back"
    assert not parked.ready(), "still waiting for the holder"
    holder.stop()
    holder.close()
    aborted, out = parked.get(timeout=10)
    assert not aborted, out
    assert msgpack.unpackb(out)["acquired"], "woken on version 1 (the mutex's parked state)"
    # Version 1 is retired once its last call is done (checked at each tick).
    harness.wait_until(lambda: int(mntr(wazoo_server)["zk_recipe_versions_retired"]) >= 1, 10,
                       what="version 1 retired")
    assert int(mntr(wazoo_server)["zk_recipe_versions_installed"]) == 2

    # A restart comes back with the loaded version (from the tree; compiled from the cache).
    wazoo_server.restart()
    harness.wait_until(lambda: probe.connected, 30, what="reconnected")
    harness.wait_until(lambda: wazoo.recipe_call(probe, "dynlock", "acquire", {"path": "/restarted", "permits": 1}),
                       30, what="dynlock after the restart")
    assert len(probe.get("/restarted")[0]) == 8, "version 2 after the restart"
    assert "dynlock" in recipe_cli(wazoo_server, "list")
    recipe_cli(wazoo_server, "remove", "dynlock")
    harness.wait_until(lambda: pytest.raises(wazoo.NoRecipeError, wazoo.recipe_call, probe, "dynlock",
                                             "acquire", {"path": "/after", "permits": 1}), 10, what="removed")


class CuttingProxy:
    """A TCP proxy in front of a server that can hold back the server's replies and cut every
    connection, so a client loses its connection after its request took effect and before the
    reply reached it."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.hold_replies = threading.Event()
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self.lock:
                self.conns.append((client, server))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src, dst, replies):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and self.hold_replies.is_set():
                    continue  # dropped: the client never sees it
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for pair in conns:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.cut()
        self.listener.close()


@contextlib.contextmanager
def add_whose_reply_is_lost(server, kazoo_factory, path, meanwhile):
    """Adds 10 to a counter at `path` (at 1) through a proxy that drops the add's reply; once the
    add applied, runs `meanwhile()` and cuts the connection; the package's retry goes on under the
    same request id. Checks the retry got the first add's answer and the counter moved once;
    yields the adding client (through the proxy, stopped after) and an observer (direct)."""
    from kazoo.client import KazooClient

    proxy = CuttingProxy(server.port)
    try:
        zk = KazooClient(hosts=f"127.0.0.1:{proxy.port}", timeout=10.0)
        zk.start(timeout=10)
        observer = kazoo_factory(server)
        zk.ensure_path(path.rsplit("/", 1)[0])
        counter = wazoo.Counter(zk, path)
        assert counter.add(1) == 1
        proxy.hold_replies.set()
        result = []
        adding = threading.Thread(target=lambda: result.append(counter.add(10)))
        adding.start()
        harness.wait_until(lambda: observer.exists(path).version == 1, 10, what="the add applied")
        meanwhile()
        proxy.cut()
        proxy.hold_replies.clear()
        adding.join(60)
        assert result == [11], "the retry got the first add's answer"
        harness.wait_until(lambda: observer.connected, 30, what="observer connected")
        data, stat = observer.get(path)
        assert struct.unpack("<q", data)[0] == 11 and stat.version == 1, "added once"
        yield zk, observer
        zk.stop()
        zk.close()
    finally:
        proxy.close()


def test_a_call_retried_after_its_reply_was_lost_takes_effect_once(wazoo_server, kazoo_factory):
    """A counter add commits, its reply is lost with the connection, and the package retries it
    with the same request id on the resumed session: the server answers with the first result,
    and the counter moved once."""
    with add_whose_reply_is_lost(wazoo_server, kazoo_factory, "/retry/n", lambda: None):
        pass
    assert int(mntr(wazoo_server)["zk_recipe_retries_answered"]) >= 1


def test_a_recipe_listing_more_children_than_the_cap_gets_limit_exceeded_and_the_server_goes_on(
        wazoo_server_factory, kazoo_factory):
    srv = hostile_server(wazoo_server_factory)
    zk = kazoo_factory(srv)
    zk.create("/wide", b"")
    cap = 1 << 16  # MAX_CHILDREN_PER_READ
    batches = []
    for start in range(0, cap + 1, 2048):
        t = zk.transaction()
        for i in range(start, min(start + 2048, cap + 1)):
            t.create(f"/wide/{i}", b"")
        batches.append(t.commit_async())
    for b in batches:
        assert all(r.startswith("/wide/") for r in b.get(timeout=60))
    with pytest.raises(wazoo.RecipeAborted) as aborted:
        wazoo.recipe_call(zk, "hostile", "children", b"/wide")
    assert aborted.value.error == b"children: limit-exceeded"
    zk.delete("/wide/0")
    assert wazoo.recipe_call_raw(zk, "hostile", "children", b"/wide") == str(cap).encode(), "at the cap: listed"


def test_a_call_whose_reply_a_restart_lost_is_answered_once_after_it(wazoo_server, kazoo_factory):
    """The same as above, but the server restarts between the add's commit and its reply: the
    answer was kept as data in the add's own txn, so the retry on the resumed session gets it."""
    with add_whose_reply_is_lost(wazoo_server, kazoo_factory, "/restart-retry/n",
                                 wazoo_server.restart) as (zk, observer):
        answers = observer.get_children("/wazoo/answers")
        assert len(answers) == 2 and all(a.startswith(f"{zk.client_id[0]:016x}-") for a in answers), answers
    harness.wait_until(lambda: observer.get_children("/wazoo/answers") == [], 10,
                       what="the answers go with their session")


def test_a_parked_call_survives_a_restart_with_its_deadline(wazoo_server, kazoo_factory):
    """A wait parked with a 6 s timeout is recorded in the tree; the server restarts 3 s in;
    the call is re-armed from its record and the client's retry takes it over, so it times out 6 s
    after it was first made (a fresh call would wait 6 s from the retry)."""
    waiter = kazoo_factory(wazoo_server, timeout=10.0)
    waiter.ensure_path("/survive")
    outcome = []

    def wait():
        t0 = time.monotonic()
        try:
            wazoo.Counter(waiter, "/survive/n").wait(5, timeout=6.0)
            outcome.append(("returned", time.monotonic() - t0))
        except wazoo.RecipeAborted as e:
            outcome.append((e.error, time.monotonic() - t0))

    t = threading.Thread(target=wait)
    t.start()
    observer = kazoo_factory(wazoo_server)  # the waiter's own requests queue behind its call
    harness.wait_until(lambda: observer.exists("/wazoo/parked") and observer.get_children("/wazoo/parked"), 10,
                       what="the parked call's record")
    time.sleep(3.0)
    wazoo_server.restart()
    t.join(30)
    assert outcome and outcome[0][0] == "timed out", outcome
    # A fresh call would time out 6 s after the retry, 9 s or more in.
    assert 5.5 <= outcome[0][1] < 8.0, f"the first call's deadline, not a new one: {outcome[0][1]:.2f} s"
    assert mntr(wazoo_server)["zk_recipe_calls_rearmed"] == "1"
    harness.wait_until(lambda: observer.connected, 30, what="reconnected")
    harness.wait_until(lambda: observer.get_children("/wazoo/parked") == [], 10, what="its end deleted the record")


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def test_a_component_larger_than_a_request_loads_in_chunks(wazoo_server, kazoo_factory, tmp_path):
    """The counter with a 1.5 MB custom section appended (still a valid component): more than a
    request may carry, so it is written in 512 KiB chunks and made current by one multi."""
    name = b"padding"
    payload = leb128(len(name)) + name + bytes(1_500_000)
    big = builtin_wasm("counter").read_bytes() + b"\x00" + leb128(len(payload)) + payload
    path = tmp_path / "big.wasm"
    path.write_bytes(big)
    out = recipe_cli(wazoo_server, "load", "bigcounter", str(path))
    assert "in 4 chunk(s)" in out, out
    zk = kazoo_factory(wazoo_server)
    zk.ensure_path("/big")
    harness.wait_until(lambda: wazoo.recipe_call(zk, "bigcounter", "add", {"path": "/big/n", "delta": 2}) == 2,
                       60, what="the big component compiled and current")
    assert len(zk.get_children("/wazoo/recipes/bigcounter")) == 4


def test_loading_a_component_the_server_cannot_compile_fails_with_the_reason(wazoo_server, kazoo_factory,
                                                                            tmp_path):
    """`wazoo recipe load` waits to hear what the server made of the load (its status node under
    /wazoo/recipe-status, written by the server, read-only to clients): a module that is not a
    recipe component fails the load with the compile's error, a good one reports it current, and
    calls of the bad name are answered NORECIPE (nothing to run)."""
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\x00\x00\x00" + bytes(64))  # a core module header and garbage
    out = subprocess.run([str(harness.wazoo_bin()), "recipe", "-s", wazoo_server.hosts, "load", "broken",
                          str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0, out.stdout
    assert "could not compile broken" in out.stderr, out.stderr
    zk = kazoo_factory(wazoo_server)
    status, _ = zk.get("/wazoo/recipe-status/broken")
    assert b"state=failed error=" in status
    with pytest.raises(wazoo.NoRecipeError):
        wazoo.recipe_call(zk, "broken", "x", {})
    with pytest.raises(NoAuthError):
        zk.set("/wazoo/recipe-status/broken", b"forged")
    good = recipe_cli(wazoo_server, "load", "counter2", str(builtin_wasm("counter")))
    assert "compiled: version 0x" in good, good
    assert b"state=current" in zk.get("/wazoo/recipe-status/counter2")[0]
    listed = recipe_cli(wazoo_server, "list")
    assert any(line.startswith("counter2\t") and "state=current" in line for line in listed.splitlines()), listed
    assert any(line.startswith("broken\t") and "state=failed" in line for line in listed.splitlines()), listed
    recipe_cli(wazoo_server, "remove", "counter2")
    harness.wait_until(lambda: zk.exists("/wazoo/recipe-status/counter2") is None, 10,
                       what="the status removed with the recipe")


def test_a_call_that_arrives_while_its_recipe_compiles_waits_for_it(wazoo_server, kazoo_factory, tmp_path):
    """docs/recipes.md, "Loading recipes": a call of a recipe whose first version is still compiling
    waits for the compile instead of being answered NORECIPE. The counter with a custom section of
    random bytes, so that no cached artifact exists and the server must compile it; loaded with
    --no-wait and called at once."""
    name = b"nonce"
    payload = leb128(len(name)) + name + os.urandom(32)
    fresh = builtin_wasm("counter").read_bytes() + b"\x00" + leb128(len(payload)) + payload
    path = tmp_path / "fresh.wasm"
    path.write_bytes(fresh)
    zk = kazoo_factory(wazoo_server)
    zk.ensure_path("/fresh")
    out = recipe_cli(wazoo_server, "load", "freshcounter", str(path), "--no-wait")
    assert "compiled" not in out, out
    assert wazoo.recipe_call(zk, "freshcounter", "add", {"path": "/fresh/n", "delta": 3}) == 3
    status, _ = zk.get("/wazoo/recipe-status/freshcounter")
    assert b"state=current" in status
