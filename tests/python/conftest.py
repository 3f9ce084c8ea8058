"""Fixtures for the real-client end-to-end tests.

Servers (see harness.py):
  server / server_factory            the target chosen by WAZOO_TEST_TARGET=wazoo|zookeeper (default wazoo)
  wazoo_server / wazoo_server_factory   always wazoo ($WAZOO_BIN); a missing binary FAILS the test
  zk_server / zk_server_factory         always real ZooKeeper 3.8 (Debian package)
``server`` is module-scoped (one server per test file, tests use unique paths); the factories are
function-scoped and give fresh servers (restart/SIGKILL on the same data dir via ServerProcess.restart /
.kill / .start).

Clients:
  kazoo_factory(server=None, **kw)   started KazooClient instances, stopped and closed at teardown
  zk                                  one started KazooClient on ``server``
  wire(server=None, **kw)            raw zkwire.Conn connections, closed at teardown
  base                                a unique znode path for the test (not created)

When a test fails, the tail of the log of every server that was running during it is attached to the report.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import zkwire  # noqa: E402

logging.getLogger("kazoo").setLevel(logging.WARNING)


def pytest_report_header(config):
    t = harness.target()
    lines = [f"wazoo e2e: WAZOO_TEST_TARGET={t}"]
    if t == "wazoo":
        lines.append(f"wazoo binary: {harness.wazoo_bin()}"
                     + ("" if not harness.wazoo_missing_reason() else "  (MISSING: wazoo tests will fail)"))
    return lines


# --------------------------------------------------------------------------------------------------------
# Attach server logs to failure reports

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._wazoo_t0 = time.monotonic()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    t0 = getattr(item, "_wazoo_t0", 0.0)
    for s in harness.ALL_SERVERS:
        if s.started_at is None:
            continue
        if s.stopped_at is not None and s.stopped_at < t0:
            continue
        rep.sections.append((f"server log: {s.name} ({s.kind}, port {s.port}) {s.log_path}",
                             s.log_tail(80)))


# --------------------------------------------------------------------------------------------------------
# Servers

def _finish_pool(pool: harness.ServerPool) -> None:
    problems = pool.teardown()
    if problems:
        pytest.fail("server problems at teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def target() -> str:
    return harness.target()


@pytest.fixture
def server_factory(tmp_path_factory, target):
    """make(kind=None, tick_time=500, ...) -> started ServerProcess; kind defaults to the target."""
    pool = harness.ServerPool(tmp_path_factory.mktemp("servers"))

    def make(kind: str | None = None, **kw) -> harness.ServerProcess:
        return pool.make(kind or target, **kw)

    yield make
    _finish_pool(pool)


@pytest.fixture
def wazoo_server_factory(tmp_path_factory):
    pool = harness.ServerPool(tmp_path_factory.mktemp("wazoo"))
    yield lambda **kw: pool.make("wazoo", **kw)
    _finish_pool(pool)


@pytest.fixture
def zk_server_factory(tmp_path_factory):
    pool = harness.ServerPool(tmp_path_factory.mktemp("zookeeper"))
    yield lambda **kw: pool.make("zookeeper", **kw)
    _finish_pool(pool)


@pytest.fixture
def wazoo_server(wazoo_server_factory):
    return wazoo_server_factory()


@pytest.fixture
def zk_server(zk_server_factory):
    return zk_server_factory()


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory, target):
    """Module-scoped factory, for test files that want their own long-lived server(s)."""
    pool = harness.ServerPool(tmp_path_factory.mktemp("modservers"))

    def make(kind: str | None = None, **kw) -> harness.ServerProcess:
        return pool.make(kind or target, **kw)

    yield make
    _finish_pool(pool)


@pytest.fixture(scope="module")
def server(module_server_factory):
    """The target server shared by a test module (tickTime 500 ms: sessions 1 s .. 10 s). With
    WAZOO_TEST_ENSEMBLE=3 (wazoo only), a 3-server ensemble whose clients spread over the members."""
    n = int(os.environ.get("WAZOO_TEST_ENSEMBLE", "1") or "1")
    if n > 1 and harness.target() == "wazoo":
        return harness.Ensemble(lambda **kw: module_server_factory(**kw), n=n, tick_time=500)
    return module_server_factory(tick_time=500, name=f"{harness.target()}-shared")


@pytest.fixture(autouse=True)
def _server_still_alive(request):
    """After every test: the servers it used must still be alive unless the test stopped them."""
    yield
    for name in ("server",):
        if name in request.fixturenames:
            srv = request.getfixturevalue(name)
            srv.check_alive()
            if isinstance(srv, harness.Ensemble):
                srv.next_member()


# --------------------------------------------------------------------------------------------------------
# Clients

@pytest.fixture
def kazoo_factory(request):
    from kazoo.client import KazooClient

    clients = []

    def make(srv: harness.ServerProcess | None = None, start: bool = True, timeout: float = 10.0,
             **kw) -> "KazooClient":
        srv = srv or request.getfixturevalue("server")
        c = KazooClient(hosts=srv.hosts, timeout=timeout, **kw)
        clients.append(c)
        if start:
            c.start(timeout=15)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:  # noqa: BLE001 - teardown best effort
            pass


@pytest.fixture
def zk(kazoo_factory):
    return kazoo_factory()


@pytest.fixture
def wire(request):
    conns = []

    def make(srv: harness.ServerProcess | None = None, **kw) -> zkwire.Conn:
        srv = srv or request.getfixturevalue("server")
        c = srv.wire(**kw)
        conns.append(c)
        return c

    yield make
    for c in conns:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass


@pytest.fixture
def base(request) -> str:
    """A unique absolute path for this test's znodes (not created)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]
    return f"/{name}-{uuid.uuid4().hex[:8]}"
