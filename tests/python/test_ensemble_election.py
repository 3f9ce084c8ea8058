"""Ensemble members over real sockets (issue 10, item 3, first part): three `wazoo server`
processes with `server.N` lines on 127.0.0.1-3 elect one leader (fast leader election, then
discovery and synchronisation of an empty history), report their role in `srvr` and `mntr`, elect
again when the leader is killed, and take a restarted server back as a follower. Client requests
are not served yet (replication is not wired), so sessions are refused.

The failover time printed is kill -9 of the leader to a new leader reporting `Mode: leader` (the
issue's metric, kill -9 to the first successful write, needs client writes)."""

import socket
import time

import pytest

import harness
import zkwire

pytestmark = pytest.mark.skipif(harness.target() != "wazoo", reason="wazoo's ensemble runtime")


def free_port_on(addr: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def mode(server) -> str:
    try:
        text = harness.four_letter(server.port, "srvr", timeout=1.0)
    except OSError:
        return "down"
    for line in text.splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):]
    return "looking"


def mntr(server) -> dict:
    text = harness.four_letter(server.port, "mntr", timeout=1.0)
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


@pytest.fixture
def ensemble(wazoo_server_factory):
    n = 3
    addrs = [f"127.0.0.{i}" for i in range(1, n + 1)]
    ports = [(free_port_on(a), free_port_on(a)) for a in addrs]
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


def test_three_members_elect_one_leader_and_two_followers(ensemble):
    wait_roles(ensemble, ["leader", "follower", "follower"])
    epochs = {mntr(s)["zk_current_epoch"] for s in ensemble}
    assert len(epochs) == 1 and int(epochs.pop()) >= 1, "every member acknowledged the leader's epoch"


def test_a_killed_leader_is_replaced_and_rejoins_as_a_follower(ensemble):
    wait_roles(ensemble, ["leader", "follower", "follower"])
    times = []
    for _ in range(3):
        leader = next(s for s in ensemble if mode(s) == "leader")
        epoch = int(mntr(leader)["zk_current_epoch"])
        others = [s for s in ensemble if s is not leader]
        t0 = time.monotonic()
        leader.kill()
        harness.wait_until(lambda: roles(others) == ["follower", "leader"], 15.0,
                           what=f"a new leader among the others (now {roles(others)})")
        times.append(time.monotonic() - t0)
        new_epoch = {int(mntr(s)["zk_current_epoch"]) for s in others}
        assert new_epoch == {max(new_epoch)} and max(new_epoch) > epoch, new_epoch
        leader.start(probe_session=False)
        wait_roles(ensemble, ["leader", "follower", "follower"])
    print("failover (kill -9 to a new leader), s:", ", ".join(f"{t:.3f}" for t in times))


def test_a_member_serves_no_session_yet(ensemble):
    wait_roles(ensemble, ["leader", "follower", "follower"])
    for s in ensemble:
        with pytest.raises((zkwire.ConnectionClosed, OSError, zkwire.WireTimeout)):
            c = zkwire.Conn(harness.HOST, s.port, timeout_ms=4000, io_timeout=2.0)
            c.close()
