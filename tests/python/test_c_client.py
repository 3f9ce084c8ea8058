"""ZooKeeper's C client (Debian's zookeeper-bin 3.8: ``cli_mt``, the libzookeeper_mt shell) in batch
mode, one session per command: create (plain and ephemeral), set, get, ls, sync and delete, with the texts the C shell prints. Against the target server (so it also runs against a
real ZooKeeper), then against a follower of a 3-server wazoo ensemble (issue 10, item 6), whose
writes must reach the leader.
"""

import os
import re
import subprocess

import pytest

import harness
from cluster import Cluster

CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"


def ccli(port: int, cmd: str, timeout: float = 20.0) -> str:
    """One batch command in its own session; the lines the C shell prints for it."""
    if not os.access(CLI_MT, os.X_OK):
        pytest.fail(f"{CLI_MT} missing: run scripts/install-test-deps.sh (zookeeper-bin)", pytrace=False)
    p = subprocess.run([CLI_MT, "-h", f"{harness.HOST}:{port}", "-c", cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout)
    noise = re.compile(r"^(\d{4}-\d\d-\d\d|Watcher SESSION_EVENT|Got a new session id|Batch mode|time = )")
    return "\n".join(l for l in p.stdout.splitlines() if not noise.match(l))


def run_the_commands(write_port: int, read_port: int, base: str) -> None:
    out = ccli(write_port, f"create {base}")
    assert f"[{base}]: rc = 0" in out and f"name = {base}" in out, out
    out = ccli(write_port, f"set {base} world")
    assert f"{base}: rc = 0 Stat:" in out and "version=1" in out, out
    out = ccli(read_port, f"sync {base}")
    assert f"[{base}]: rc = 0" in out, out
    out = ccli(read_port, f"get {base}")
    lines = out.splitlines()
    assert f"{base}: rc = 0" in lines and "world" in lines and " value_len = 5" in lines, out
    out = ccli(write_port, f"create +e {base}/eph")
    assert f"[{base}/eph]: rc = 0" in out, out
    out = ccli(read_port, f"ls {base}")
    assert f"{base}: rc = 0" in out and "\tzookeeper" not in out, out
    # The ephemeral's session ended with its command: it is gone (maybe after the close commits).
    harness.wait_until(lambda: "eph" not in ccli(read_port, f"ls {base}"), 10.0,
                       what="the ephemeral gone with its session")
    out = ccli(write_port, f"create {base}")
    assert f"[{base}]: rc = -110" in out, out          # NODEEXISTS
    out = ccli(write_port, f"delete {base}")
    assert f"{base}: rc = 0" in out, out
    out = ccli(read_port, f"sync {base}")
    out = ccli(read_port, f"get {base}")
    assert f"{base}: rc = -101" in out, out            # NONODE (the shell's `exists` of a missing
                                                       # node never exits in batch mode)


def test_the_c_client_creates_sets_gets_lists_syncs_and_deletes(server, base):
    run_the_commands(server.port, server.port, base)


@pytest.mark.skipif(harness.target() != "wazoo", reason="wazoo's ensemble runtime")
def test_the_c_client_works_against_a_follower(wazoo_server_factory):
    c = Cluster(wazoo_server_factory, name="cc")
    try:
        leader = c.leader()
        follower = next(k for k in c.sids if k != leader)
        other = next(k for k in c.sids if k not in (leader, follower))
        # Writes through the follower, reads on the other follower after a sync.
        run_the_commands(c[follower].port, c[other].port, "/c-client")
        c.wait_converged()
    finally:
        c.close()
