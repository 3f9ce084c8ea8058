"""Admin commands off the hot path, and only real numbers (wazoo only).

- `ruok`, `srvr` and `mntr` stay correct and prompt while clients write and read at full speed: they are
  answered from what the core publishes, not by a round trip through its inbox.
- `cons` and `dump` with thousands of sessions, connections and ephemerals answer completely (the core
  answers them in bounded pieces), with real expiry times.
- `mntr` lists no metric wazoo never measures, and the ones it lists move with their events.
"""

import calendar
import re
import socket
import threading
import time
import urllib.request

import pytest

import harness
import zkwire
from zkwire import Conn, CreateFlags, Op, create_body


@pytest.fixture
def wazoo_only(target):
    if target != "wazoo":
        pytest.skip("wazoo's admin internals")


def mntr(srv) -> dict:
    out = srv.four_letter("mntr")
    values = {}
    for line in out.splitlines():
        k, v = line.split("\t", 1)
        values[k] = v
    return values


def srvr_fields(srv) -> dict:
    out = srv.four_letter("srvr")
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert "Zxid" in fields and "Node count" in fields, out
    return fields


def test_ruok_srvr_mntr_stay_correct_under_load(wazoo_only, wazoo_server_factory):
    srv = wazoo_server_factory(name="admin-load")
    base_nodes = int(srvr_fields(srv)["Node count"])
    stop = threading.Event()
    errors = []
    created = [0] * 4

    def load(k: int) -> None:
        try:
            with Conn(harness.HOST, srv.port) as c:
                c.create(f"/load{k}")
                i = 0
                while not stop.is_set():
                    # Pipelined: 32 creates and 32 reads in flight.
                    xids = [(c.send(Op.CREATE, create_body(f"/load{k}/n{i + j}")), Op.CREATE)
                            for j in range(32)]
                    xids += [(c.send(Op.GET_DATA, zkwire.path_watch_body(f"/load{k}", False)), Op.GET_DATA)
                             for _ in range(32)]
                    for x, op in xids:
                        r = c.read_reply(x, op)
                        assert r.ok, r
                    i += 32
                    created[k] = i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    try:
        harness.wait_until(lambda: sum(created) > 500 or errors, timeout=30, what="load to start")
        assert not errors, errors
        last_zxid, worst = -1, 0.0
        deadline = time.monotonic() + 5
        rounds = 0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            assert srv.four_letter("ruok") == "imok"
            f = srvr_fields(srv)
            m = mntr(srv)
            worst = max(worst, time.monotonic() - t0)
            zxid = int(f["Zxid"], 16)
            assert zxid >= last_zxid, (zxid, last_zxid)
            last_zxid = zxid
            assert int(f["Node count"]) >= 5
            assert int(m["zk_znode_count"]) >= 5
            assert m["zk_server_state"] == "standalone"
            rounds += 1
        assert rounds >= 5 and worst < 2.0, (rounds, worst)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not errors, errors
    # Once the load stops, the published values are exact.
    with Conn(harness.HOST, srv.port) as c:
        r = c.exists("/load0")
        assert r.ok

    def settled():
        f = srvr_fields(srv)
        m = mntr(srv)
        nodes = base_nodes + 4 + sum(created)   # /load0..3 and the creates
        ok = int(f["Node count"]) == nodes and int(m["zk_znode_count"]) == nodes
        return ok and int(m["zk_outstanding_requests"]) == 0 and f
    f = harness.wait_until(settled, timeout=10, what="srvr/mntr to show every create")
    with Conn(harness.HOST, srv.port) as c:
        r = c.create2("/last")
        assert r.ok
    harness.wait_until(lambda: int(srvr_fields(srv)["Zxid"], 16) >= int(f["Zxid"], 16) + 1,
                       timeout=5, what="srvr's zxid to follow the last write")


def expire_times(text: str, header: str):
    """(elements, [(bucket time s, count)]) of an ExpiryQueue dump section that starts with `header`."""
    section = text.split(header, 1)[1]
    m = re.match(r"Sets \((\d+)\)/\((\d+)\):\n", section)
    assert m, section[:200]
    buckets = []
    for count, date in re.findall(r"^(\d+) expire at (.+):$", section.split("ephemeral nodes dump:")[0]
                                  if header.startswith("Session") else section, re.M):
        buckets.append((calendar.timegm(time.strptime(date, "%a %b %d %H:%M:%S UTC %Y")), int(count)))
    assert len(buckets) == int(m.group(1)), (m.group(0), buckets[:5])
    return int(m.group(2)), buckets


def test_cons_and_dump_list_thousands_completely(wazoo_only, wazoo_server_factory):
    n = 2000
    srv = wazoo_server_factory(name="admin-many", tick_time=1000, max_session_timeout=120_000)
    timeout_ms = 60_000
    owner = Conn(harness.HOST, srv.port, timeout_ms=timeout_ms)
    assert owner.create("/e").ok
    conns = []
    try:
        for start in range(0, n, 200):
            batch = [Conn(harness.HOST, srv.port, timeout_ms=timeout_ms) for _ in range(200)]
            xids = [(c, c.send(Op.CREATE, create_body(f"/e/s{start + i}", flags=CreateFlags.EPHEMERAL)))
                    for i, c in enumerate(batch)]
            for c, x in xids:
                assert c.read_reply(x, Op.CREATE).ok
            conns += batch
        # One session owns more ephemerals than a piece holds: its listing continues across pieces.
        big = 3000
        for start in range(0, big, 500):
            xids = [owner.send(Op.CREATE, create_body(f"/e/big{i:05d}", flags=CreateFlags.EPHEMERAL))
                    for i in range(start, start + 500)]
            for x in xids:
                assert owner.read_reply(x, Op.CREATE).ok

        t0 = time.time()
        cons = srv.four_letter("cons", timeout=30)
        lines = [ln for ln in cons.splitlines() if ln.strip()]
        sids = set(re.findall(r"sid=0x([0-9a-f]+)", cons))
        assert len(lines) == n + 1, len(lines)
        assert len(sids) == n + 1
        assert {int(s, 16) for s in sids} == {c.session_id for c in conns} | {owner.session_id}

        dump = srv.four_letter("dump", timeout=30)
        elements, buckets = expire_times(dump, "SessionTracker dump:\nSession ")
        assert elements == n + 1
        # Real expiry times: about now + the session timeout, rounded up to a tick.
        for at, _ in buckets:
            assert t0 - 5 <= at <= t0 + timeout_ms / 1000 + 30, (t0, at)
        eph = dump.split("ephemeral nodes dump:\n", 1)[1].split("Connections dump:\n", 1)[0]
        assert eph.startswith(f"Sessions with Ephemerals ({n + 1}):\n"), eph[:100]
        paths = re.findall(r"^\t(/e/\S+)$", eph, re.M)
        assert len(paths) == n + big
        assert len(set(paths)) == len(paths)
        owner_block = eph.split(f"0x{owner.session_id:x}:\n", 1)[1]
        owner_paths = re.findall(r"^\t(/e/big\d+)$", owner_block, re.M)
        assert owner_paths == [f"/e/big{i:05d}" for i in range(big)]
        conn_elements, conn_buckets = expire_times(dump, "Connections dump:\nConnections ")
        assert conn_elements == n + 1
        for at, _ in conn_buckets:
            assert t0 - 5 <= at <= t0 + timeout_ms / 1000 + 30, (t0, at)

        m = mntr(srv)
        assert int(m["zk_global_sessions"]) == n + 1
        assert int(m["zk_num_alive_connections"]) == n + 1
        harness.wait_until(lambda: int(mntr(srv)["zk_ephemerals_count"]) == n + big, timeout=10,
                           what="the ephemerals count (published per tick)")
    finally:
        for c in conns:
            c.close()
        owner.close()


NEVER_MEASURED = ["proposal_count", "looking_count", "throttled_ops",
                  "large_requests_rejected", "connection_drop_count",
                  "learner_proposal_received_count", "avg_election_time", "avg_snapshottime",
                  "avg_quorum_ack_latency", "avg_propagation_latency", "digest_mismatches_count"]


def test_mntr_lists_measured_metrics_only_and_they_move(wazoo_only, wazoo_server_factory):
    port = harness.free_port()
    srv = wazoo_server_factory(name="admin-metrics", tick_time=500, extra_cfg={
        "admin.enableServer": "true", "admin.serverAddress": "127.0.0.1", "admin.serverPort": str(port)})
    m0 = mntr(srv)
    for key in NEVER_MEASURED:
        assert f"zk_{key}" not in m0, key
    assert int(m0["zk_cnt_dbinittime"]) == 1
    commits0 = int(m0["zk_commit_count"])
    # The readiness probe's connection and this mntr's (the mntr connection counts before it answers).
    assert int(m0["zk_connection_request_count"]) >= 2
    assert int(m0["zk_connection_rejected"]) == 0

    with Conn(harness.HOST, srv.port) as w, Conn(harness.HOST, srv.port) as c:
        w.exists("/watched", watch=True)   # NONODE, with an exist watch
        assert c.create("/watched").ok
        w.wait_event()
        # A session left to expire.
        gone = Conn(harness.HOST, srv.port, timeout_ms=1000)
        gone.sock.close()

        def moved():
            m = mntr(srv)
            return (int(m["zk_commit_count"]) >= commits0 + 2      # createSession x3, create
                    and int(m["zk_cnt_node_created_watch_count"]) == 1
                    and int(m["zk_stale_sessions_expired"]) >= 1
                    and int(m["zk_cnt_sync_processor_batch_size"]) >= 1
                    and int(m["zk_response_bytes"]) > 0 and m)
        harness.wait_until(moved, timeout=15, what="mntr's counters to move")

    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "wazoo_commits_total " in body
    assert "proposals_total" not in body and "election_time" not in body
    cons = urllib.request.urlopen(f"http://127.0.0.1:{port}/commands/dump", timeout=10).read().decode()
    assert "expiry_time_to_session_ids" in cons
    # ruok never waits: also answered while the admin port is busy.
    s = socket.create_connection((harness.HOST, srv.port), timeout=5)
    s.close()
    assert srv.four_letter("ruok") == "imok"


def test_crst_resets_every_connections_statistics(wazoo_only, wazoo_server_factory):
    """`crst` (ZooKeeper's ServerCnxn.resetStats on every connection): received and sent counts go
    back to zero, as they are for a new connection; the next requests count from there. Before, wazoo
    answered "Connection stats reset." and reset nothing."""
    srv = wazoo_server_factory()
    c = Conn(harness.HOST, srv.port, timeout_ms=10000)
    for _ in range(5):
        assert c.exists("/").ok

    def counts() -> tuple:
        cons = srv.four_letter("cons")
        m = re.search(r"recved=(\d+),sent=(\d+),sid=0x%x\b" % c.session_id, cons)
        assert m, cons
        return int(m.group(1)), int(m.group(2))

    assert counts() >= (5, 5)
    assert srv.four_letter("crst").strip() == "Connection stats reset."
    assert counts() == (0, 0)
    assert c.exists("/").ok
    assert counts() == (1, 1)
    c.close()
