#!/usr/bin/env python3
"""wazoo vs Apache ZooKeeper, side by side (issue 3 §2; method in shared/design/performance.md).

Both servers are started the same way: standalone (or 3-server ensembles with ``--ensemble 3``), on loopback, fresh data dirs under /var/tmp, the same durability (ZooKeeper
``forceSync=yes``; wazoo always fsyncs before acknowledging), ONE system at a time, alternating
A B A B for ``--pairs`` pairs per workload, with the same ``wazoo bench`` client against each.

For every run it records the disk's fsync latency just before (200 × 4 KiB write + fsync in the data
dir's filesystem), the client's JSON report, and the server's CPU seconds over exactly the client's
measured window (sampled from /proc/<pid>/stat). ``--memory`` populates 1M znodes of 100 B into each
system and reports RSS, data dir size, and the restart time until the first successful read.

It prints a markdown table of wazoo/ZooKeeper ratios (median and range over the pairs) and writes it,
with the raw results as JSON, under bench/results/<date>-<host>.md.

    bench/compare.py --quick                 # 1 pair, 3 s runs: a smoke test of a couple of minutes
    bench/compare.py                         # 3 pairs, 10 s after 2 s warm-up, the default workloads
    bench/compare.py --memory                # plus 1M znodes: RSS, data dir, restart time
    bench/compare.py --ensemble 3            # 3-server ensembles, clients spread over the servers
    bench/compare.py --workloads create,get --pairs 5

Benchmarks use the release build (``cargo build --release -p wazoo-cli``); CARGO_TARGET_DIR
defaults to /var/tmp/wazoo-target like the rest of the project.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))

import zkwire  # noqa: E402  (the tests' raw wire client: readiness and restart probes)
from harness import ZK_JARS, ZK_JAVA_DIR, ZK_LOG4J, free_port  # noqa: E402
from zkwire import four_letter  # noqa: E402

HOST = "127.0.0.1"
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/wazoo-target"))
RUNS_DIR = Path("/var/tmp/wazoo-compare")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------
# Workloads


@dataclass
class Workload:
    key: str
    label: str
    args: List[str]
    metric: str = "ops_per_sec"          # or "p50" (latency, lower is better)
    target: str = ""                     # performance.md's target for wazoo/ZooKeeper
    ensemble_only: bool = False
    note: str = ""
    # Open loop at half of ZooKeeper's median throughput in this invocation's runs of that workload.
    half_rate_of: str = ""
    # Extra `wazoo bench` arguments for wazoo's runs only (ZooKeeper runs the workload without them).
    wazoo_args: List[str] = field(default_factory=list)


WORKLOADS: Dict[str, Workload] = {w.key: w for w in [
    Workload("create", "create 16x8", ["-w", "create", "--sessions", "16", "--inflight", "8"],
             target=">= 3x"),
    Workload("set", "setData 16x8", ["-w", "set", "--sessions", "16", "--inflight", "8"],
             target=">= 3x"),
    Workload("get", "getData 16x8", ["-w", "get", "--sessions", "16", "--inflight", "8"],
             target=">= 2x"),
    Workload("create1", "create 1x1 (serial)", ["-w", "create", "--sessions", "1", "--inflight", "1"],
             metric="p50", target="p50 <= 0.5x"),
    Workload("lock", "lock, 8 clients", ["-w", "lock", "--sessions", "8"],
             target=">= 5x (server-side lock)",
             note="'lock, 8 clients': both systems run the Curator-style client recipe"),
    Workload("lockserver", "lock, 8 clients, wazoo's mutex recipe", ["-w", "lock", "--sessions", "8"],
             target=">= 5x", wazoo_args=["--recipe-impl", "server"],
             note="'lock, 8 clients, wazoo's mutex recipe': wazoo's built-in mutex (acquire waits on the "
                  "server in one call) against ZooKeeper running the Curator-style client recipe"),
    Workload("barrier", "double barrier, 8 participants", ["-w", "barrier", "--participants", "8"],
             target=">= 10x"),
    Workload("barrierserver", "double barrier, 8 participants, wazoo's recipe",
             ["-w", "barrier", "--participants", "8"], target=">= 10x", wazoo_args=["--recipe-impl", "server"],
             note="'double barrier, 8 participants, wazoo's recipe': wazoo's built-in double-barrier (enter and "
                  "leave each one call that waits on the server) against ZooKeeper running the Curator-style "
                  "client recipe"),
    # Not in the default set.
    Workload("exists", "exists 16x8", ["-w", "exists", "--sessions", "16", "--inflight", "8"]),
    Workload("children", "getChildren 16x8", ["-w", "children", "--sessions", "16", "--inflight", "8"]),
    Workload("mix", "mix 90% get 16x8", ["-w", "mix:90", "--sessions", "16", "--inflight", "8"]),
    Workload("multi", "multi (create+set) 16x8", ["-w", "multi", "--sessions", "16", "--inflight", "8"]),
    Workload("failover", "leader kill -9 -> first write", ["-w", "failover"], metric="failover",
             target="<= 300 ms", ensemble_only=True),
    Workload("createhalf", "create 16x8 at half ZK's max", ["-w", "create", "--sessions", "16", "--inflight", "8"],
             metric="p99", target="p99 <= 0.5x", half_rate_of="create",
             note="'create 16x8 at half ZK's max' offers both systems the same open-loop load, half of "
                  "ZooKeeper's median create 16x8 throughput in this run; latency counts from when each "
                  "request was due"),
]}
DEFAULT_SET = ["create", "set", "get", "create1", "lock", "barrier"]


# ------------------------------------------------------------------------------------------------
# Processes


STARTED: List[subprocess.Popen] = []


def _kill_leftovers() -> None:
    for p in STARTED:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
            except OSError:
                pass


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    try:
        return int(out.stdout.split()[0])
    except (IndexError, ValueError):
        return 0


class Member:
    """One server process (wazoo, or one ZooKeeper of a standalone or ensemble setup)."""

    def __init__(self, kind: str, workdir: Path, myid: int = 1) -> None:
        self.kind = kind
        self.workdir = workdir
        self.myid = myid
        self.data_dir = workdir / "data"
        self.conf_dir = workdir / "conf"
        self.cfg_path = self.conf_dir / "zoo.cfg"
        self.log_path = workdir / "server.log"
        self.port = free_port()
        self.peer_port = free_port()
        self.elect_port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.started_at = 0.0
        for d in (self.data_dir, self.conf_dir):
            d.mkdir(parents=True, exist_ok=True)

    def write_config(self, peers: List["Member"], wazoo_bin: Path) -> None:
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": HOST,
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
        }
        if len(peers) > 1:
            # The same ensemble lines for both systems.
            cfg["initLimit"] = "10"
            cfg["syncLimit"] = "5"
            for p in peers:
                cfg[f"server.{p.myid}"] = f"{HOST}:{p.peer_port}:{p.elect_port}"
            (self.data_dir / "myid").write_text(f"{self.myid}\n")
        if self.kind == "zookeeper":
            cfg["dataLogDir"] = str(self.data_dir)
            cfg["forceSync"] = "yes"
            (self.conf_dir / "log4j.properties").write_text(ZK_LOG4J)
        self.cfg_path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        self.wazoo_bin = wazoo_bin

    def command(self) -> List[str]:
        if self.kind == "wazoo":
            return [str(self.wazoo_bin), "server", "--config", str(self.cfg_path)]
        cp = ":".join([str(self.conf_dir)] + [str(ZK_JAVA_DIR / j) for j in ZK_JARS])
        return ["java", "-Xmx1000m", "-cp", cp,
                "-Dzookeeper.4lw.commands.whitelist=*",
                "-Dzookeeper.admin.enableServer=false",
                "-Dzookeeper.jmx.log4j.disable=true",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.cfg_path)]

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        log = open(self.log_path, "ab", buffering=0)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir), env=env,
                                     start_new_session=True)
        log.close()
        STARTED.append(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, graceful: bool = True, grace: float = 20.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(line for line in lines if not line.startswith("\tat "))[-4000:]

    def session_ok(self, timeout: float = 2.0) -> bool:
        c = zkwire.Conn(HOST, self.port, timeout_ms=10000, io_timeout=timeout)
        try:
            return c.close_session().err == 0
        finally:
            c.close()

    def mode(self) -> str:
        out = four_letter(HOST, self.port, "srvr", timeout=2.0)
        for line in out.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return ""


class Cluster:
    """A standalone server, or a ZooKeeper ensemble of n processes."""

    def __init__(self, kind: str, workdir: Path, n: int, wazoo_bin: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.members = [Member(kind, workdir / (f"s{i + 1}" if n > 1 else "s"), i + 1) for i in range(n)]
        for m in self.members:
            m.write_config(self.members, wazoo_bin)

    @property
    def servers(self) -> str:
        return ",".join(f"{HOST}:{m.port}" for m in self.members)

    def start(self, timeout: float = 90.0) -> None:
        for m in self.members:
            m.start()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for m in self.members:
                if not m.alive():
                    raise RuntimeError(f"{self.kind} exited during startup; log {m.log_path}:\n{m.log_tail()}")
            try:
                ok = True
                for m in self.members:
                    if four_letter(HOST, m.port, "ruok", timeout=2.0) != "imok":
                        ok = False
                        break
                    if len(self.members) > 1 and m.mode() not in ("leader", "follower"):
                        ok = False
                        break
                if ok and all(m.session_ok() for m in self.members):
                    return
            except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError) as e:
                last = repr(e)
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind} not ready after {timeout}s ({last}); log:\n{self.members[0].log_tail()}")

    def pids(self) -> List[int]:
        return [m.proc.pid for m in self.members if m.alive() and m.proc is not None]

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                total += proc_cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
        return total

    def leader(self) -> Optional[Member]:
        for m in self.members:
            try:
                if m.mode() == "leader":
                    return m
            except OSError:
                pass
        return None

    def stop(self, graceful: bool) -> None:
        for m in self.members:
            m.stop(graceful=graceful)


class CpuSampler(threading.Thread):
    """Samples a cluster's CPU seconds every 50 ms, to read it off at the client's window edges."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples: List[Tuple[float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.time(), self.cluster.cpu_seconds()))
            self.halt.wait(0.05)
        self.samples.append((time.time(), self.cluster.cpu_seconds()))

    def at(self, t: float) -> float:
        s = self.samples
        if not s:
            return 0.0
        if t <= s[0][0]:
            return s[0][1]
        for (t0, c0), (t1, c1) in zip(s, s[1:]):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return s[-1][1]

    def between(self, a: float, b: float) -> float:
        if a <= 0 or b <= a:
            return self.samples[-1][1] - self.samples[0][1] if self.samples else 0.0
        return self.at(b) - self.at(a)


# ------------------------------------------------------------------------------------------------
# Measurements


def fsync_probe(directory: Path, n: int = 200) -> Dict[str, float]:
    """n × (4 KiB pwrite into a preallocated file + fsync) in `directory`: p50/p99 in ms."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"\0" * (4096 * n))
        os.fsync(fd)
        block = os.urandom(4096)
        lat = []
        for i in range(n):
            t = time.perf_counter()
            os.pwrite(fd, block, i * 4096)
            os.fsync(fd)
            lat.append((time.perf_counter() - t) * 1e3)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    lat.sort()
    return {"p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


@dataclass
class RunResult:
    system: str
    workload: str
    pair: int
    ok: bool
    fsync: Dict[str, float] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    server_cpu_s: float = 0.0
    exit_code: int = 0
    error: str = ""

    def metric(self, metric: str) -> Optional[float]:
        if not self.ok:
            return None
        r = self.report
        if metric == "ops_per_sec":
            return r.get("ops_per_sec") or None
        if metric in ("p50", "p99"):
            lat = r.get("latency_ms") or {}
            return lat.get(metric)
        if metric == "failover":
            return (r.get("failover") or {}).get("first_write_ms")
        return None

    def cpu_per_op(self) -> Optional[float]:
        ops = self.report.get("ops") or 0
        return self.server_cpu_s / ops if self.ok and ops else None


class Runner:
    def __init__(self, opts: argparse.Namespace, bench_cmd: List[str], wazoo_bin: Path) -> None:
        self.opts = opts
        self.bench_cmd = bench_cmd
        self.wazoo_bin = wazoo_bin
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.base = RUNS_DIR / f"{stamp}-{os.getpid()}"
        self.counter = 0

    def workdir(self, name: str) -> Path:
        self.counter += 1
        return self.base / f"{self.counter:03d}-{name}"

    def bench(self, servers: str, args: List[str], timeout: float) -> Tuple[int, dict, str]:
        cmd = self.bench_cmd + ["--servers", servers, "--json", "--no-progress"] + args
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, {}, f"timed out after {timeout:.0f}s: {' '.join(cmd)}"
        report = {}
        for line in reversed(p.stdout.strip().splitlines()):
            if line.startswith("{"):
                try:
                    report = json.loads(line)
                except json.JSONDecodeError:
                    pass
                break
        return p.returncode, report, p.stderr.strip()

    def one_run(self, system: str, w: Workload, pair: int, extra: Optional[List[str]] = None) -> RunResult:
        o = self.opts
        wd = self.workdir(f"{w.key}-{pair}-{system}")
        cluster = Cluster(system, wd, o.ensemble, self.wazoo_bin)
        res = RunResult(system, w.key, pair, ok=False)
        res.fsync = fsync_probe(cluster.members[0].data_dir)
        try:
            cluster.start()
            args = list(w.args) + list(extra or []) + (list(w.wazoo_args) if system == "wazoo" else [])
            if w.key == "failover":
                leader = cluster.leader()
                if leader is None or leader.proc is None:
                    raise RuntimeError("no leader found")
                args += ["--kill-cmd", f"kill -9 {leader.proc.pid}", "--failover-timeout", "30s"]
                timeout = 120.0
            else:
                args += ["--duration", o.duration, "--warmup", o.warmup, "--payload", str(o.payload)]
                timeout = 300.0 + parse_seconds(o.duration) + parse_seconds(o.warmup)
            if not o.cleanup_each:
                args.append("--keep")   # the data dir is thrown away after the run anyway
            sampler = CpuSampler(cluster)
            sampler.start()
            code, report, err = self.bench(cluster.servers, args, timeout)
            sampler.halt.set()
            sampler.join()
            res.exit_code = code
            res.report = report
            res.ok = bool(report) and code in (0, 2)
            if res.ok and w.key != "failover":   # a killed process takes its CPU time with it
                res.server_cpu_s = sampler.between(report.get("window_start_unix", 0.0),
                                                   report.get("window_end_unix", 0.0))
            if code != 0:
                res.error = err.splitlines()[-1] if err else f"exit {code}"
            for m in cluster.members:
                if not m.alive() and w.key != "failover":
                    res.ok = False
                    res.error = f"{system} died during the run; log {m.log_path}:\n{m.log_tail()}"
        except Exception as e:  # noqa: BLE001 - record and go on with the next run
            res.error = str(e)
        finally:
            cluster.stop(graceful=False)
            if not o.keep_dirs:
                shutil.rmtree(wd, ignore_errors=True)
        return res

    def memory_run(self, system: str) -> dict:
        """Populate, measure RSS and data dir, restart (SIGTERM), time until the first read."""
        o = self.opts
        wd = self.workdir(f"memory-{system}")
        cluster = Cluster(system, wd, 1, self.wazoo_bin)
        m = cluster.members[0]
        out: dict = {"system": system, "count": o.memory_count}
        try:
            out["fsync"] = fsync_probe(m.data_dir)
            cluster.start()
            code, report, err = self.bench(
                cluster.servers,
                ["-w", "populate", "--count", str(o.memory_count), "--payload", "100",
                 "--sessions", "16", "--inflight", "16", "--prefix", "/mem", "--keep"],
                timeout=3600)
            if not report or code not in (0, 2):
                raise RuntimeError(f"populate failed (exit {code}): {err}")
            out["populate_ops_per_sec"] = report["ops_per_sec"]
            out["populate_s"] = report["populate"]["total_s"]
            out["populate_errors"] = report["errors_total"]
            probe = report["populate"]["probe_path"]
            time.sleep(2.0)
            assert m.proc is not None
            out["rss_bytes"] = proc_rss_bytes(m.proc.pid)
            out["server_cpu_s"] = cluster.cpu_seconds()
            out["data_dir_bytes"] = dir_bytes(m.data_dir)
            cluster.stop(graceful=True)
            t0 = time.monotonic()
            m.start()
            out["restart_s"] = first_read(m, probe, t0, timeout=600.0)
            time.sleep(1.0)
            out["rss_after_restart_bytes"] = proc_rss_bytes(m.proc.pid)
            out["data_dir_after_restart_bytes"] = dir_bytes(m.data_dir)
            out["ok"] = True
        except Exception as e:  # noqa: BLE001
            out["ok"] = False
            out["error"] = f"{e}\n{m.log_tail()}"
        finally:
            cluster.stop(graceful=False)
            if not o.keep_dirs:
                shutil.rmtree(wd, ignore_errors=True)
        return out


def first_read(m: Member, path: str, t0: float, timeout: float) -> float:
    """Seconds from t0 until getData(path) succeeds on m."""
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if not m.alive():
            raise RuntimeError(f"{m.kind} exited during restart")
        try:
            c = zkwire.Conn(HOST, m.port, timeout_ms=30000, io_timeout=2.0)
            try:
                if c.get_data(path).err == 0:
                    return time.monotonic() - t0
            finally:
                c.close()
        except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError):
            pass
        time.sleep(0.02)
    raise RuntimeError(f"no successful read of {path} within {timeout}s")


def parse_seconds(s: str) -> float:
    s = s.strip()
    for unit, mult in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * mult
    return float(s)


# ------------------------------------------------------------------------------------------------
# Setup: dependencies, build, machine


def ensure_zookeeper() -> None:
    missing = [j for j in ZK_JARS if not (ZK_JAVA_DIR / j).exists()]
    if missing or shutil.which("java") is None:
        print("compare: installing ZooKeeper and a JRE (scripts/install-test-deps.sh)", flush=True)
        subprocess.run(["bash", str(ROOT / "scripts" / "install-test-deps.sh")], check=True)


def build(opts: argparse.Namespace) -> None:
    cmd = ["cargo", "build", "--release", "-p", "wazoo-cli", "-p", "wazoo-bench"]
    print(f"compare: {' '.join(cmd)}  (CARGO_TARGET_DIR={TARGET_DIR})", flush=True)
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET_DIR))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def bench_command(wazoo_bin: Path, explicit: Optional[str]) -> List[str]:
    """`wazoo bench` when the binary has the subcommand, else the standalone `wazoo-bench`."""
    if explicit:
        return explicit.split()
    p = subprocess.run([str(wazoo_bin), "bench", "--help"], capture_output=True, text=True)
    if p.returncode == 0 and "--workload" in p.stdout:
        return [str(wazoo_bin), "bench"]
    alt = wazoo_bin.parent / "wazoo-bench"
    if alt.exists():
        return [str(alt)]
    raise SystemExit(f"neither `{wazoo_bin} bench` nor {alt} is available")


def write_report(script: str, title: str, argv: List[str], details: str, body: str, results: list,
                 out: Optional[str]) -> Path:
    """Prints and writes a side script's report: `bench/results/<date>-<host>-<HHMM>-<script>.md` (or
    `out`), headed by the command, the machine and the commit, with the raw results beside it as JSON."""
    info = machine()
    text = (f"# {title}, {dt.datetime.now().isoformat(timespec='seconds')}\n\n"
            f"`bench/{script}.py {' '.join(argv)}` on {info.get('host')} ({info.get('nproc')} cores), "
            f"commit {sh(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'])}{details}\n\n" + body)
    print()
    print(text)
    path = Path(out) if out else ROOT / "bench" / "results" / (
        f"{dt.date.today().isoformat()}-{info.get('host', 'host')}-{dt.datetime.now().strftime('%H%M')}-{script}.md")
    path.write_text(text)
    path.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
    print(f"{script}: wrote {path}")
    return path


def sh(cmd: List[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine() -> Dict[str, str]:
    info: Dict[str, str] = {}
    info["host"] = socket.gethostname()
    info["nproc"] = str(os.cpu_count())
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    info["kernel"] = platform.release()
    src_fs = sh(["findmnt", "-n", "-o", "SOURCE,FSTYPE", "-T", str(RUNS_DIR.parent)])
    dev = src_fs.split()[0] if src_fs else ""
    disk = src_fs
    if dev.startswith("/dev/"):
        blk = sh(["lsblk", "-d", "-n", "-o", "NAME,SIZE,ROTA,MODEL", dev])
        if blk:
            disk += f" ({blk}; ROTA=1 means rotational as the kernel reports it)"
    info["disk"] = disk or "?"
    info["zookeeper"] = sh(["dpkg-query", "-W", "-f=${Version}", "zookeeper"]) or "?"
    jv = subprocess.run(["java", "-version"], capture_output=True, text=True)
    info["java"] = (jv.stderr.splitlines() or ["?"])[0]
    info["wazoo_rev"] = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "?"
    if sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]):
        info["wazoo_rev"] += " (+ uncommitted changes)"
    return info


# ------------------------------------------------------------------------------------------------
# Tables


def med_range(vals: List[float]) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt_num(v: Optional[float], digits: int = 0) -> str:
    if v is None:
        return "–"
    if digits == 0 and abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(vals: List[Optional[float]]) -> str:
    m, lo, hi = med_range([v for v in vals if v is not None])
    if m is None:
        return "–"
    if lo == hi:
        return f"**{m:.2f}x**"
    return f"**{m:.2f}x** [{lo:.2f}–{hi:.2f}]"


def metric_label(w: Workload) -> str:
    return {"ops_per_sec": f"{'acquisitions' if w.key in ('lock', 'lockserver') else 'rounds' if w.key in ('barrier', 'barrierserver') else 'ops'}/s",
            "p50": "p50 ms", "p99": "p99 ms", "failover": "ms"}[w.metric]


def tables(opts: argparse.Namespace, results: List[RunResult], memory: List[dict],
           info: Dict[str, str], bench_cmd: List[str], argv: List[str]) -> str:
    out: List[str] = []
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    topo = "standalone" if opts.ensemble == 1 else f"{opts.ensemble}-server ensemble on loopback"
    out.append(f"# wazoo vs Apache ZooKeeper: {now}, {info.get('host', '?')}\n")
    out.append(f"- machine: {info.get('nproc')} cores ({info.get('cpu', '?')}), {info.get('memory', '?')} RAM, "
               f"kernel {info.get('kernel')}, disk {info.get('disk')}")
    out.append(f"- ZooKeeper {info.get('zookeeper')} (Debian), {info.get('java')}, -Xmx1000m, forceSync=yes; "
               f"wazoo {info.get('wazoo_rev')} (release build; fsync before every ack)")
    out.append(f"- {topo}; {opts.pairs} alternating pair(s) (wazoo, then ZooKeeper) per workload; "
               f"{opts.duration} measured after {opts.warmup} warm-up; {opts.payload} B payloads; "
               f"fresh data dir per run; the same client: `{' '.join(Path(bench_cmd[0]).name.split() + bench_cmd[1:])}` "
               f"(one thread, pipelined)")
    out.append(f"- reproduce: `bench/compare.py {' '.join(argv)}`".rstrip() + "\n")
    out.append("Ratios are wazoo / ZooKeeper per pair: median [min–max] over the pairs. Throughput: higher is "
               "better; latency and CPU per op: lower is better. Server CPU is user+system seconds of the "
               "server process(es) over the client's measured window, divided by the operations counted in it.\n")

    keys = [k for k in opts.workload_keys]
    # Ratio table.
    out.append("| workload | metric | wazoo (median) | ZooKeeper (median) | ratio wazoo/ZK | target | "
               "server CPU/op ratio | fsync p50 ms before runs (wazoo; ZK) |")
    out.append("|---|---|---|---|---|---|---|---|")
    for k in keys:
        w = WORKLOADS[k]
        wz = [r for r in results if r.workload == k and r.system == "wazoo"]
        zk = [r for r in results if r.workload == k and r.system == "zookeeper"]
        metrics = [w.metric] + (["p99"] if w.metric == "p50" else [])
        for metric in metrics:
            label = metric_label(w) if metric == w.metric else "p99 ms"
            zk_m = med_range([r.metric(metric) for r in zk])[0]
            fs_z = med_range([r.fsync.get("p50") for r in zk if r.fsync])[0]
            target = w.target if metric == w.metric else "(disk-bound; see fsync)"
            wz_m = med_range([r.metric(metric) for r in wz])[0]
            ratios, cpu_ratios = [], []
            for a in wz:
                b = next((x for x in zk if x.pair == a.pair), None)
                if b is None:
                    continue
                va, vb = a.metric(metric), b.metric(metric)
                if va is not None and vb:
                    ratios.append(va / vb)
                ca, cb = a.cpu_per_op(), b.cpu_per_op()
                if ca is not None and cb:
                    cpu_ratios.append(ca / cb)
            fs_w = med_range([r.fsync.get("p50") for r in wz if r.fsync])[0]
            cpu_cell = fmt_ratio(cpu_ratios) if metric == w.metric else ""
            out.append(f"| {w.label} | {label} | {fmt_num(wz_m)} | {fmt_num(zk_m)} | {fmt_ratio(ratios)} | "
                       f"{target} | {cpu_cell} | {fmt_num(fs_w)}; {fmt_num(fs_z)} |")
    notes = [WORKLOADS[k].note for k in keys if WORKLOADS[k].note]
    for n in notes:
        out.append(f"\nNote: {n}.")
    out.append("")

    # Per-run table.
    out.append("## Every run\n")
    out.append("| workload | pair | system | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | "
               "server CPU s | server CPU us/op | client CPU s | fsync p50 / p99 ms |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        w = WORKLOADS[r.workload]
        if not r.ok:
            out.append(f"| {w.label} | {r.pair + 1} | {r.system} | FAILED: {r.error.splitlines()[0] if r.error else '?'} "
                       f"| | | | | | | | | |")
            continue
        rep = r.report
        lat = rep.get("latency_ms") or {}
        cpo = r.cpu_per_op()
        if r.workload == "failover":
            f = rep.get("failover") or {}
            ops = f"first write {fmt_num(f.get('first_write_ms'))} ms"
        else:
            ops = fmt_num(rep.get("ops_per_sec"))
        out.append(
            f"| {w.label} | {r.pair + 1} | {r.system} | {ops} | {fmt_num(lat.get('p50'))} | "
            f"{fmt_num(lat.get('p99'))} | {fmt_num(lat.get('p999'))} | {fmt_num(lat.get('max'))} | "
            f"{rep.get('errors_total', 0)} | {fmt_num(r.server_cpu_s if r.server_cpu_s else None)} | "
            f"{fmt_num(cpo * 1e6 if cpo else None)} | "
            f"{rep.get('client_cpu_s', 0):.2f} | {fmt_num(r.fsync.get('p50'))} / {fmt_num(r.fsync.get('p99'))} |")
    out.append("")

    if memory:
        out.append(f"## Memory and restart: {memory[0].get('count', 0):,} znodes x 100 B\n")
        out.append("| system | populate ops/s | populate s | RSS MiB | data dir MiB | restart -> first read s | "
                   "RSS after restart MiB | data dir after restart MiB | fsync p50 ms |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        by = {}
        for m in memory:
            by.setdefault(m["system"], []).append(m)
            if not m.get("ok"):
                out.append(f"| {m['system']} | FAILED: {m.get('error', '?').splitlines()[0]} | | | | | | | |")
                continue
            out.append(
                f"| {m['system']} | {fmt_num(m['populate_ops_per_sec'])} | {m['populate_s']:.1f} | "
                f"{m['rss_bytes'] / 2**20:,.0f} | {m['data_dir_bytes'] / 2**20:,.0f} | {m['restart_s']:.2f} | "
                f"{m['rss_after_restart_bytes'] / 2**20:,.0f} | {m['data_dir_after_restart_bytes'] / 2**20:,.0f} | "
                f"{fmt_num(m['fsync']['p50'])} |")

        def ratio(key: str) -> str:
            a = [m[key] for m in by.get("wazoo", []) if m.get("ok")]
            b = [m[key] for m in by.get("zookeeper", []) if m.get("ok")]
            if not a or not b:
                return "–"
            return f"**{statistics.median(a) / statistics.median(b):.2f}x**"
        out.append(f"| ratio wazoo/ZK (target <= 0.25x) | {ratio('populate_ops_per_sec')} | {ratio('populate_s')} | "
                   f"{ratio('rss_bytes')} | {ratio('data_dir_bytes')} | {ratio('restart_s')} | "
                   f"{ratio('rss_after_restart_bytes')} | {ratio('data_dir_after_restart_bytes')} | |")
        out.append("")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=None, help="alternating pairs per workload (default 3; quick 1)")
    ap.add_argument("--duration", default=None, help="measured time per run (default 10s; quick 3s)")
    ap.add_argument("--warmup", default=None, help="warm-up per run (default 2s; quick 1s)")
    ap.add_argument("--payload", type=int, default=100)
    ap.add_argument("--workloads", default=None,
                    help=f"comma list of {', '.join(WORKLOADS)} (default {','.join(DEFAULT_SET)}"
                         f"; with --ensemble 3 failover is added)")
    ap.add_argument("--quick", action="store_true", help="1 pair, 3 s runs after 1 s warm-up")
    ap.add_argument("--memory", action="store_true", help="also populate, measure RSS/data dir/restart")
    ap.add_argument("--memory-only", action="store_true", help="only the memory measurement")
    ap.add_argument("--memory-count", type=int, default=None, help="znodes for --memory (default 1000000; quick 100000)")
    ap.add_argument("--ensemble", type=int, default=1, choices=(1, 3),
                    help="1: standalone; 3: a 3-server ensemble of each, clients spread over the servers")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build --release")
    ap.add_argument("--wazoo-bin", default=None, help=f"default {TARGET_DIR}/release/wazoo")
    ap.add_argument("--bench-cmd", default=None, help="client command (default: `wazoo bench`, else wazoo-bench)")
    ap.add_argument("--cleanup-each", action="store_true",
                    help="let the client delete its znodes after each run (default --keep: the dir is discarded)")
    ap.add_argument("--keep-dirs", action="store_true", help=f"keep the run directories under {RUNS_DIR}")
    ap.add_argument("--out", default=None, help="markdown output (default bench/results/<date>-<host>.md)")
    opts = ap.parse_args(argv)
    opts.pairs = opts.pairs or (1 if opts.quick else 3)
    opts.duration = opts.duration or ("3s" if opts.quick else "10s")
    opts.warmup = opts.warmup or ("1s" if opts.quick else "2s")
    opts.memory_count = opts.memory_count or (100_000 if opts.quick else 1_000_000)
    if opts.workloads:
        keys = [k.strip() for k in opts.workloads.split(",") if k.strip()]
        bad = [k for k in keys if k not in WORKLOADS]
        if bad:
            ap.error(f"unknown workloads {bad}; known: {', '.join(WORKLOADS)}")
    else:
        keys = list(DEFAULT_SET) + (["failover"] if opts.ensemble > 1 else [])
    if opts.memory_only:
        keys = []
        opts.memory = True
    if opts.ensemble == 1 and "failover" in keys:
        ap.error("failover needs --ensemble 3 (a standalone server has nothing to fail over to)")
    opts.workload_keys = keys

    import atexit
    atexit.register(_kill_leftovers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    ensure_zookeeper()
    if not opts.no_build:
        build(opts)
    wazoo_bin = Path(opts.wazoo_bin) if opts.wazoo_bin else TARGET_DIR / "release" / "wazoo"
    if not wazoo_bin.exists():
        raise SystemExit(f"{wazoo_bin} not found (build it, or pass --wazoo-bin)")
    bench_cmd = bench_command(wazoo_bin, opts.bench_cmd)
    info = machine()
    runner = Runner(opts, bench_cmd, wazoo_bin)
    systems = ["wazoo", "zookeeper"]

    results: List[RunResult] = []
    t_start = time.monotonic()
    for k in keys:
        w = WORKLOADS[k]
        extra: List[str] = []
        if w.half_rate_of:
            base = med_range([r.metric("ops_per_sec") for r in results
                              if r.workload == w.half_rate_of and r.system == "zookeeper"])[0]
            if not base:
                print(f"  {w.label}: skipped, needs a ZooKeeper run of {w.half_rate_of!r} earlier in "
                      f"--workloads", flush=True)
                continue
            extra = ["--rate", f"{base / 2:.0f}"]
            print(f"  {w.label}: offering {base / 2:,.0f} ops/s to both systems", flush=True)
        for pair in range(opts.pairs):
            for system in systems:
                r = runner.one_run(system, w, pair, extra)
                results.append(r)
                if r.ok:
                    rep = r.report
                    if k == "failover":
                        shown = f"first write {fmt_num((rep.get('failover') or {}).get('first_write_ms'))} ms"
                    else:
                        lat = rep.get("latency_ms") or {}
                        shown = (f"{fmt_num(rep.get('ops_per_sec'))} {rep.get('unit', 'ops')}/s  "
                                 f"p50 {fmt_num(lat.get('p50'))} ms  p99 {fmt_num(lat.get('p99'))} ms")
                    errs = f"  errors {rep.get('errors_total')}" if rep.get("errors_total") else ""
                    print(f"  {w.label:<32} pair {pair + 1} {system:<9} {shown}  server CPU {r.server_cpu_s:.2f} s"
                          f"  fsync p50 {fmt_num(r.fsync.get('p50'))} ms{errs}", flush=True)
                else:
                    print(f"  {w.label:<32} pair {pair + 1} {system:<9} FAILED: {r.error}", flush=True)

    memory: List[dict] = []
    if opts.memory:
        for system in ["wazoo", "zookeeper"]:
            print(f"  memory: populating {opts.memory_count:,} znodes into {system} ...", flush=True)
            m = runner.memory_run(system)
            memory.append(m)
            if m.get("ok"):
                print(f"  memory {system:<9} RSS {m['rss_bytes'] / 2**20:,.0f} MiB, data dir "
                      f"{m['data_dir_bytes'] / 2**20:,.0f} MiB, restart->first read {m['restart_s']:.2f} s", flush=True)
            else:
                print(f"  memory {system:<9} FAILED: {m.get('error')}", flush=True)
    if not opts.keep_dirs:
        shutil.rmtree(runner.base, ignore_errors=True)

    text = tables(opts, results, memory, info, bench_cmd, argv)
    text += f"\n(total time {time.monotonic() - t_start:.0f} s)\n"
    print()
    print(text)
    if opts.out:
        out = Path(opts.out)
    else:
        day = dt.date.today().isoformat()
        out = ROOT / "bench" / "results" / f"{day}-{info.get('host', 'host')}.md"
        if out.exists():
            out = out.with_name(f"{day}-{info.get('host', 'host')}-{dt.datetime.now().strftime('%H%M%S')}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw = {"machine": info, "options": {k: v for k, v in vars(opts).items()},
           "runs": [r.__dict__ for r in results], "memory": memory}
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    print(f"compare: wrote {out} and {out.with_suffix('.json').name}")
    failed = [r for r in results if not r.ok] + [m for m in memory if not m.get("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
