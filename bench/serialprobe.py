"""A client doing serial creates on one server in a thread of its own, each latency recorded in the
list of the phase it is in (``bench/snapstall.py``, ``bench/watchlist_stall.py``): how long a server
stops while something else happens to it. Needs ``tests/python`` on ``sys.path``."""

from __future__ import annotations

import threading
import time

import harness
import zkwire


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


class SerialProbe:
    def __init__(self, port: int, first_phase: str = "before", io_timeout: float = 60) -> None:
        self.port, self.io_timeout = port, io_timeout
        self.phases: dict[str, list[float]] = {first_phase: []}
        self._current = self.phases[first_phase]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> "SerialProbe":
        self._thread.start()
        return self

    def phase(self, name: str) -> None:
        """Latencies from now on go to ``name``."""
        self._current = self.phases.setdefault(name, [])

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        p = zkwire.Conn(harness.HOST, self.port, timeout_ms=30000, io_timeout=self.io_timeout)
        i = 0
        while not self._stop.is_set():
            t = time.monotonic()
            assert p.create(f"/probe{i}", b"").err == 0
            self._current.append(time.monotonic() - t)
            i += 1
        p.close()
