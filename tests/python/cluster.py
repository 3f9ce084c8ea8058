"""An ensemble of real ``wazoo server`` processes on 127.0.0.1..n whose peer links all pass
through a ``faultnet.FaultNet`` (issue 10, item 5): voters first, then observers; member k is
sid k on 127.0.0.k, with its client port on 127.0.0.1 like every test server's.

Besides starting and stopping members (kill -9, SIGSTOP/SIGCONT, restart on the same data) it
reads their role, zxid and tree digest through the four-letter words, and waits for the
ensemble to agree on them.
"""

from __future__ import annotations

import os
import signal
from typing import Dict, List, Optional

import harness
from faultnet import FaultNet, addr


class Cluster:
    def __init__(self, make, voters: int = 3, observers: int = 0, tick_time: int = 200,
                 init_limit: int = 10, sync_limit: int = 5, extra_cfg: Optional[Dict[str, str]] = None,
                 member_cfg: Optional[Dict[int, Dict[str, str]]] = None, name: str = "m") -> None:
        n = voters + observers
        self.sids = list(range(1, n + 1))
        self.observers = set(range(voters + 1, n + 1))
        ports = {k: (harness.free_port(addr(k)), harness.free_port(addr(k))) for k in self.sids}
        self.net = FaultNet(ports, harness.free_port)
        self.members: Dict[int, harness.ServerProcess] = {}
        for k in self.sids:
            cfg = {"initLimit": str(init_limit), "syncLimit": str(sync_limit)}
            for j in self.sids:
                q, e = ports[j] if j == k else self.net.port_for(k, j)
                cfg[f"server.{j}"] = f"{addr(j)}:{q}:{e}" + (":observer" if j in self.observers else "")
            if k in self.observers:
                cfg["peerType"] = "observer"
            cfg.update(extra_cfg or {})
            cfg.update((member_cfg or {}).get(k, {}))
            s = make(start=False, name=f"{name}{k}", tick_time=tick_time, extra_cfg=cfg)
            (s.data_dir / "myid").write_text(f"{k}\n")
            self.members[k] = s
        self.stopped: set = set()
        for s in self.members.values():
            s.start(probe_session=False)

    def close(self) -> None:
        for k in list(self.stopped):
            self.cont(k)
        self.net.close()

    # -- processes ------------------------------------------------------------------------------------

    def __getitem__(self, k: int) -> harness.ServerProcess:
        return self.members[k]

    def running(self) -> List[int]:
        return [k for k, s in self.members.items() if s.is_running() and k not in self.stopped]

    def kill(self, k: int) -> None:
        self.members[k].kill()

    def start(self, k: int) -> None:
        self.members[k].start(probe_session=False)

    def stop_process(self, k: int) -> None:
        """SIGSTOP: the process keeps its sockets and answers nothing."""
        os.kill(self.members[k].proc.pid, signal.SIGSTOP)
        self.stopped.add(k)

    def cont(self, k: int) -> None:
        os.kill(self.members[k].proc.pid, signal.SIGCONT)
        self.stopped.discard(k)

    def ports(self) -> List[int]:
        return [self.members[k].port for k in self.sids]

    # -- what the members report ----------------------------------------------------------------------

    def srvr(self, k: int) -> dict:
        try:
            text = harness.four_letter(self.members[k].port, "srvr", timeout=1.0)
        except OSError:
            return {}
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    def mode(self, k: int) -> str:
        return self.srvr(k).get("Mode", "down")

    def modes(self, ks=None) -> Dict[int, str]:
        return {k: self.mode(k) for k in (ks or self.running())}

    def mntr(self, k: int) -> dict:
        text = harness.four_letter(self.members[k].port, "mntr", timeout=1.0)
        return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)

    def digest(self, k: int) -> Optional[tuple]:
        """(zxid, tree digest) from ``hash``."""
        try:
            text = harness.four_letter(self.members[k].port, "hash", timeout=1.0).strip()
        except OSError:
            return None
        if not text or ": " not in text:
            return None
        z, d = text.splitlines()[-1].split(": ", 1)
        return int(z, 16), int(d)

    def leader(self, among=None, timeout: float = 20.0) -> int:
        """Waits until exactly one of ``among`` (default: the running members) leads and every
        other one of them follows (observers observe); returns the leader's sid."""
        def settled():
            ks = among or self.running()
            m = self.modes(ks)
            leaders = [k for k, v in m.items() if v == "leader"]
            others_ok = all(v == ("observer" if k in self.observers else "follower")
                            for k, v in m.items() if v != "leader")
            return leaders[0] if len(leaders) == 1 and others_ok else None
        try:
            return harness.wait_until(settled, timeout, what="one leader, the others following")
        except AssertionError as e:
            raise AssertionError(f"{e}; modes now {self.modes(among)}") from None

    def converged(self, among=None) -> bool:
        ks = among or self.running()
        ds = [self.digest(k) for k in ks]
        return all(d is not None and d == ds[0] for d in ds)

    def wait_converged(self, among=None, timeout: float = 20.0) -> tuple:
        try:
            harness.wait_until(lambda: self.converged(among), timeout,
                               what="the same zxid and digest on every member")
        except AssertionError as e:
            now = {k: self.digest(k) for k in (among or self.running())}
            raise AssertionError(f"{e}; (zxid, digest) now {now}") from None
        return self.digest((among or self.running())[0])
