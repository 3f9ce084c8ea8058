"""Server processes for the end-to-end tests: wazoo (``$WAZOO_BIN server --config zoo.cfg``) and a real
Apache ZooKeeper 3.8 from Debian's ``zookeeper`` package, both started in temporary directories on free
loopback ports, with their logs collected to files that the conftest shows when a test fails.

Which server the ordinary tests talk to is chosen by ``WAZOO_TEST_TARGET=wazoo|zookeeper`` (default wazoo).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import zkwire

HOST = "127.0.0.1"

SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="   # digest of super:test
SUPER_USER, SUPER_PASSWORD = "super", "test"

TARGETS = ("wazoo", "zookeeper")

ZK_JAVA_DIR = Path("/usr/share/java")
ZK_JARS = ["zookeeper.jar", "slf4j-log4j12.jar", "log4j-1.2.jar"]
ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")

ZK_LOG4J = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.err
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
"""


def target() -> str:
    t = os.environ.get("WAZOO_TEST_TARGET", "wazoo").strip().lower() or "wazoo"
    if t not in TARGETS:
        raise RuntimeError(f"WAZOO_TEST_TARGET must be one of {TARGETS}, not {t!r}")
    return t


def wazoo_bin() -> Path:
    b = os.environ.get("WAZOO_BIN")
    if b:
        return Path(b)
    tgt = os.environ.get("CARGO_TARGET_DIR", "/var/tmp/wazoo-target")
    return Path(tgt) / "debug" / "wazoo"


def wazoo_missing_reason() -> Optional[str]:
    b = wazoo_bin()
    if not b.is_file() or not os.access(b, os.X_OK):
        return (f"wazoo binary not found at {b} (set WAZOO_BIN, or build it with `cargo build --bins`; "
                f"to validate the tests against real ZooKeeper instead run with WAZOO_TEST_TARGET=zookeeper)")
    return None


def zookeeper_missing_reason() -> Optional[str]:
    missing = [str(ZK_JAVA_DIR / j) for j in ZK_JARS if not (ZK_JAVA_DIR / j).exists()]
    if missing:
        return f"ZooKeeper jars missing: {missing} (run scripts/install-test-deps.sh)"
    if shutil.which("java") is None:
        return "java not on PATH (run scripts/install-test-deps.sh)"
    return None


_ISSUED_PORTS: set = set()


def free_port(addr: str = HOST) -> int:
    """A port free on ``addr`` now and not handed out before by this process: the kernel may offer
    a just-released port again, and servers configured back to back would then share it."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
        if port not in _ISSUED_PORTS:
            _ISSUED_PORTS.add(port)
            return port


def four_letter(port: int, cmd: str, timeout: float = 5.0) -> str:
    return zkwire.four_letter(HOST, port, cmd, timeout)


def files_in(d: Path) -> List[tuple]:
    """(name, size) of the regular files directly in ``d``. A running server renames and unlinks files
    there (purged log segments, RocksDB compaction), so a file listed may be gone before it is stat'ed
    (CI saw a `log.*.purged` vanish in between): a file gone is simply not counted."""
    out = []
    for e in os.scandir(d):
        try:
            if e.is_file(follow_symlinks=False):
                out.append((e.name, e.stat(follow_symlinks=False).st_size))
        except FileNotFoundError:
            pass
    return sorted(out)


def wait_until(pred, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Poll ``pred`` until it returns a truthy value; return it, or raise AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


class ServerDied(AssertionError):
    pass


ALL_SERVERS: List["ServerProcess"] = []


@atexit.register
def _kill_leftover_servers() -> None:
    """Never leave a server running when the test process exits, however it exits."""
    for s in ALL_SERVERS:
        if s.proc is not None and s.proc.poll() is None:
            try:
                os.kill(s.proc.pid, signal.SIGKILL)
            except OSError:
                pass


class ServerProcess:
    """One standalone server (wazoo or ZooKeeper) with its own config, data dir and log file.

    ``start()`` spawns it and waits for ``ruok`` -> ``imok``. ``stop()`` sends SIGTERM (then SIGKILL after a
    grace period), ``kill()`` sends SIGKILL; both keep the data dir so ``start()`` restarts on the same data.
    """

    def __init__(self, kind: str, workdir: Path, tick_time: int = 500, name: str = "",
                 min_session_timeout: Optional[int] = None, max_session_timeout: Optional[int] = None,
                 jute_maxbuffer: Optional[int] = None, extra_cfg: Optional[Dict[str, str]] = None,
                 rust_log: Optional[str] = None) -> None:
        if kind not in TARGETS:
            raise ValueError(kind)
        self.kind = kind
        self.name = name or kind
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.conf_dir = self.workdir / "conf"
        self.conf_dir.mkdir(exist_ok=True)
        self.cfg_path = self.conf_dir / "zoo.cfg"
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        self.tick_time = tick_time
        self.min_session_timeout = min_session_timeout
        self.max_session_timeout = max_session_timeout
        self.jute_maxbuffer = jute_maxbuffer
        self.extra_cfg = dict(extra_cfg or {})
        self.rust_log = rust_log or os.environ.get("WAZOO_TEST_RUST_LOG", "info")
        self.proc: Optional[subprocess.Popen] = None
        self._log_fh = None
        self.starts = 0
        self.started_at: Optional[float] = None
        self.stopped_at: Optional[float] = None
        self.expected_exit = False
        self.stop_problems: List[str] = []
        self._write_config()
        ALL_SERVERS.append(self)

    # -- config ---------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def hosts(self) -> str:
        """Connect string for kazoo / zkCli."""
        return f"{HOST}:{self.port}"

    @property
    def min_timeout(self) -> int:
        return self.min_session_timeout or 2 * self.tick_time

    @property
    def max_timeout(self) -> int:
        return self.max_session_timeout or 20 * self.tick_time

    def _write_config(self) -> None:
        cfg = {
            "tickTime": str(self.tick_time),
            "dataDir": str(self.data_dir),
            "dataLogDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": HOST,
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "admin.serverPort": str(free_port()),
            "DigestAuthenticationProvider.superDigest": SUPER_DIGEST,
            "extendedTypesEnabled": "true",
        }
        if self.min_session_timeout:
            cfg["minSessionTimeout"] = str(self.min_session_timeout)
        if self.max_session_timeout:
            cfg["maxSessionTimeout"] = str(self.max_session_timeout)
        if self.jute_maxbuffer:
            cfg["jute.maxbuffer"] = str(self.jute_maxbuffer)
        if self.kind == "wazoo":
            # Compiled recipes shared by every server of the run: compiling the built-ins costs
            # seconds per start, loading them a millisecond.
            cfg["wazoo.recipeCacheDir"] = os.environ.get(
                "WAZOO_RECIPE_CACHE", str(Path(tempfile.gettempdir()) / "wazoo-recipe-cache")
            )
        if self.kind == "zookeeper":
            cfg["forceSync"] = "yes"
            (self.conf_dir / "log4j.properties").write_text(ZK_LOG4J)
        cfg.update(self.extra_cfg)
        self.cfg_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))

    def command(self) -> List[str]:
        if self.kind == "wazoo":
            return [str(wazoo_bin()), "server", "--config", str(self.cfg_path)]
        cp = ":".join([str(self.conf_dir)] + [str(ZK_JAVA_DIR / j) for j in ZK_JARS])
        cmd = ["java", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
               "-cp", cp,
               "-Dzookeeper.4lw.commands.whitelist=*",
               f"-Dzookeeper.DigestAuthenticationProvider.superDigest={SUPER_DIGEST}",
               "-Dzookeeper.extendedTypesEnabled=true",
               "-Dzookeeper.admin.enableServer=false",
               "-Dzookeeper.jmx.log4j.disable=true",
               "-Dfile.encoding=UTF-8"]
        if self.jute_maxbuffer:
            cmd.append(f"-Djute.maxbuffer={self.jute_maxbuffer}")
        # ZooKeeper reads the container manager's settings from system properties only.
        for k, v in self.extra_cfg.items():
            if k.startswith("znode.container."):
                cmd.append(f"-D{k}={v}")
        cmd += ["org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.cfg_path)]
        return cmd

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self, timeout: Optional[float] = None, probe_session: bool = True) -> "ServerProcess":
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.name} already running")
        if self.kind == "wazoo":
            reason = wazoo_missing_reason()
        else:
            reason = zookeeper_missing_reason()
        if reason:
            raise RuntimeError(reason)
        env = dict(os.environ)
        if self.kind == "wazoo":
            env["RUST_LOG"] = self.rust_log
            env.setdefault("RUST_BACKTRACE", "1")
        self._log_fh = open(self.log_path, "ab", buffering=0)
        self.starts += 1
        self._log_fh.write(f"===== harness: start #{self.starts}: {' '.join(self.command())}\n".encode())
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log_fh,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir), env=env,
                                     start_new_session=True)
        self.expected_exit = False
        self.started_at = time.monotonic()
        self.stopped_at = None
        if timeout is None:
            timeout = 60.0 if self.kind == "zookeeper" else 30.0
        self.wait_ready(timeout, probe_session)
        return self

    def wait_ready(self, timeout: float, probe_session: bool = True) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerDied(f"{self.name} exited with code {self.proc.returncode} during startup; "
                                 f"log {self.log_path}:\n{self.log_tail()}")
            try:
                last = four_letter(self.port, "ruok", timeout=2.0)
                if last == "imok" and not probe_session:
                    return  # an ensemble member that serves no session yet
                if last == "imok":
                    # ZooKeeper answers ruok before its ZooKeeperServer runs (early handshakes get EOF), so
                    # readiness also needs one session to open and close.
                    c = zkwire.Conn(HOST, self.port, timeout_ms=4000, io_timeout=2.0)
                    try:
                        r = c.close_session()
                        if r.err == 0:
                            return
                        last = f"imok, but closeSession of a probe session replied {r!r}"
                    finally:
                        c.close()
            except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError) as e:
                last = f"{last!r}, then {e!r}" if last == "imok" else repr(e)
            time.sleep(0.05)
        raise AssertionError(f"{self.name} not ready after {timeout}s (last ruok answer: {last!r}); "
                             f"log {self.log_path}:\n{self.log_tail()}")

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise if the server exited without the harness asking it to."""
        if self.proc is not None and not self.expected_exit and self.proc.poll() is not None:
            raise ServerDied(f"{self.name} died unexpectedly with exit code {self.proc.returncode}; "
                             f"log {self.log_path}:\n{self.log_tail()}")

    def _close_log(self) -> None:
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def kill(self) -> None:
        """SIGKILL (crash) the server; its data dir is kept."""
        if self.proc is None:
            return
        self.expected_exit = True
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.stopped_at = time.monotonic()
        self._close_log()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL (recorded as a problem for wazoo)."""
        if self.proc is None:
            return
        self.expected_exit = True
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.stop_problems.append(f"{self.name} did not exit within {grace}s of SIGTERM; killed")
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.stopped_at = time.monotonic()
        self._close_log()

    def restart(self, kill: bool = False) -> "ServerProcess":
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def teardown(self) -> List[str]:
        """Stop at the end of a test/module. Returns problems (unexpected death, hang on SIGTERM)."""
        problems = []
        if self.proc is not None and self.proc.poll() is not None and not self.expected_exit:
            problems.append(f"{self.name} died unexpectedly with exit code {self.proc.returncode}")
        if self.kind == "zookeeper":
            self.kill()          # nothing of ZooKeeper's own shutdown is under test; save the time
        else:
            self.stop()
            problems += self.stop_problems
        return problems

    # -- logs -----------------------------------------------------------------------------------------

    def log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes().replace(b"\x00", b"")
        except FileNotFoundError:
            return b""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().replace(b"\x00", b"").decode("utf-8", "replace")

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_bytes().decode("utf-8", "replace").splitlines()
        text = [t for t in text if not t.startswith("\tat ")]   # Java stack frames: noise here
        return "\n".join(text[-lines:])

    # -- convenience ----------------------------------------------------------------------------------

    def four_letter(self, cmd: str, timeout: float = 5.0) -> str:
        return four_letter(self.port, cmd, timeout)

    def wire(self, **kw) -> zkwire.Conn:
        """A raw zkwire connection (handshake done unless handshake=False)."""
        return zkwire.Conn(HOST, self.port, **kw)

    def __repr__(self) -> str:
        return f"<{self.name} {self.kind} port={self.port} dir={self.workdir}>"


class ServerPool:
    """Creates servers under one temp directory and tears them all down together."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.servers: List[ServerProcess] = []

    def make(self, kind: str, start: bool = True, **kw) -> ServerProcess:
        if kind == "wazoo":
            reason = wazoo_missing_reason()
            if reason:
                import pytest
                pytest.fail(reason, pytrace=False)
        else:
            reason = zookeeper_missing_reason()
            if reason:
                import pytest
                pytest.fail(reason, pytrace=False)
        name = kw.pop("name", None) or f"{kind}-{len(self.servers) + 1}"
        s = ServerProcess(kind, self.base_dir / name, name=name, **kw)
        self.servers.append(s)
        if start:
            s.start()
        return s

    def teardown(self) -> List[str]:
        problems: List[str] = []
        for s in self.servers:
            try:
                problems += s.teardown()
            except Exception as e:  # noqa: BLE001
                problems.append(f"{s.name}: teardown failed: {e!r}")
        return problems


# -- ensembles ------------------------------------------------------------------------------------------

class Ensemble:
    """n wazoo servers on 127.0.0.1..n with server.N lines and myid, as one target. ``hosts`` and
    ``wire()`` name one member, which ``next_member()`` rotates (conftest does it after every test):
    a test's clients share a member, as a single server's do (so tests that read what another
    session just wrote need no sync), and successive tests run on the leader and the followers
    in turn. tests/python/test_ensemble.py covers clients spread over the members."""

    def __init__(self, make, n: int = 3, tick_time: int = 500, name: str = "member") -> None:
        addrs = [f"127.0.0.{i}" for i in range(1, n + 1)]
        lines = {f"server.{i + 1}": f"{a}:{free_port(a)}:{free_port(a)}" for i, a in enumerate(addrs)}
        self.members: List[ServerProcess] = []
        for i in range(n):
            cfg = dict(lines)
            cfg.update({"initLimit": "10", "syncLimit": "5"})
            s = make(start=False, name=f"{name}-{i + 1}", tick_time=tick_time, extra_cfg=cfg)
            (s.data_dir / "myid").write_text(f"{i + 1}\n")
            self.members.append(s)
        for s in self.members:
            s.start(probe_session=False)
        self.tick_time = tick_time
        self.current = 0
        wait_until(self.serving, 30.0, what="an ensemble with a leader, every member serving")

    def serving(self) -> bool:
        modes = []
        for s in self.members:
            try:
                text = s.four_letter("srvr", timeout=1.0)
            except OSError:
                return False
            modes += [l[6:] for l in text.splitlines() if l.startswith("Mode: ")]
        return sorted(modes) == sorted(["leader"] + ["follower"] * (len(self.members) - 1))

    def next_member(self) -> None:
        self.current = (self.current + 1) % len(self.members)

    @property
    def hosts(self) -> str:
        return self.members[self.current].hosts

    @property
    def port(self) -> int:
        return self.members[self.current].port

    @property
    def min_timeout(self) -> int:
        return self.members[0].min_timeout

    @property
    def max_timeout(self) -> int:
        return self.members[0].max_timeout

    def wire(self, **kw) -> zkwire.Conn:
        return self.members[self.current].wire(**kw)

    def four_letter(self, cmd: str, timeout: float = 5.0) -> str:
        return self.members[0].four_letter(cmd, timeout)

    def check_alive(self) -> None:
        for s in self.members:
            s.check_alive()
