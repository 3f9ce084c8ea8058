"""A TCP fault proxy for the peer links of an ensemble under test (issue 10, item 5).

Every ordered pair of members (i, j) gets two proxies, one for j's quorum port and one for its
election port, listening on j's address (127.0.0.j) with ports of their own: member i's zoo.cfg
names those proxies in its ``server.j`` line, so every connection i dials to j passes through
them (its own ``server.i`` line keeps its real ports, which it binds). A connection dialled by i
carries bytes i -> j one way and j -> i the other, and each direction is gated separately, so a
fault can be one-way.

Faults, as a real network has them:

- ``block(src, dst)`` holds every byte from src to dst: the proxies stop reading that direction,
  so the sender's socket buffer fills and TCP pushes back, as on a partition where packets are
  lost and retransmitted; ``unblock`` lets the held bytes through in order. A connection dialled
  while its direction is blocked is accepted and held the same way (the dialler sees a link that
  is up and silent, and must notice by its own timeouts).
- ``isolate(k)`` / ``partition(groups)`` / ``heal()`` build on ``block``.
- ``reset(k)`` closes every connection through k's proxies now (both ends see the reset); new ones
  pass again.

Threads, not asyncio: two pump threads per connection, each blocking in recv; a few hundred
connections at most in a test.
"""

from __future__ import annotations

import socket
import threading
from typing import Dict, Iterable, List, Set, Tuple


def addr(member: int) -> str:
    """Member k's loopback address (members are numbered from 1)."""
    return f"127.0.0.{member}"


class _Conn:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class _Proxy:
    """Connections dialled by ``src`` to ``target`` (a port of ``dst``)."""

    def __init__(self, net: "FaultNet", src: int, dst: int, target: Tuple[str, int], port: int) -> None:
        self.net, self.src, self.dst, self.target = net, src, dst, target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr(dst), port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: List[_Conn] = []
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{src}-{dst}").start()

    def _accept(self) -> None:
        while not self.net.stopped:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client: socket.socket) -> None:
        # The dialler's connection is held until the way to the target is open, then joined.
        if not self.net.wait_open(self.src, self.dst, lambda: False):
            client.close()
            return
        try:
            up = socket.create_connection(self.target, timeout=2.0, source_address=(addr(self.src), 0))
        except OSError:
            client.close()       # the target is down: the dialler sees the connection fail
            return
        up.settimeout(None)
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = _Conn(client, up)
        with self.net.lock:
            if self.net.stopped:
                c.close()
                return
            self.conns.append(c)
        threading.Thread(target=self._pump, args=(c, client, up, self.src, self.dst), daemon=True).start()
        threading.Thread(target=self._pump, args=(c, up, client, self.dst, self.src), daemon=True).start()

    def _pump(self, c: _Conn, a: socket.socket, b: socket.socket, src: int, dst: int) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if not self.net.wait_open(src, dst, lambda: c.closed):
                    break
                b.sendall(data)
        except OSError:
            pass
        c.close()
        with self.net.lock:
            if c in self.conns:
                self.conns.remove(c)

    def reset(self) -> None:
        with self.net.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            c.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        self.reset()


class FaultNet:
    """The proxies between ``members`` (sids, numbered from 1): ``ports[k] = (quorum, election)``
    are member k's real ports on ``addr(k)``. ``port_for(i, j)`` is what member i's ``server.j``
    line names. ``free_port(address)`` picks each proxy's port: the caller's allocator, so that no
    proxy takes a port it has promised to a member that has not bound it yet."""

    def __init__(self, ports: Dict[int, Tuple[int, int]], free_port) -> None:
        self.stopped = False
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.blocked: Set[Tuple[int, int]] = set()
        self.proxies: Dict[Tuple[int, int], Tuple[_Proxy, _Proxy]] = {}
        for i in ports:
            for j, (q, e) in ports.items():
                if i != j:
                    self.proxies[(i, j)] = (_Proxy(self, i, j, (addr(j), q), free_port(addr(j))),
                                            _Proxy(self, i, j, (addr(j), e), free_port(addr(j))))

    def port_for(self, i: int, j: int) -> Tuple[int, int]:
        """The (quorum, election) ports member i dials to reach member j."""
        q, e = self.proxies[(i, j)]
        return q.port, e.port

    def wait_open(self, src: int, dst: int, gone) -> bool:
        """Blocks while bytes src -> dst are held; False if the net stopped or ``gone()``."""
        with self.lock:
            while (src, dst) in self.blocked and not self.stopped and not gone():
                self.changed.wait(0.1)
            return not self.stopped and not gone()

    # -- faults -------------------------------------------------------------------------------------

    def block(self, src: int, dst: int) -> None:
        with self.lock:
            self.blocked.add((src, dst))

    def unblock(self, src: int, dst: int) -> None:
        with self.lock:
            self.blocked.discard((src, dst))
            self.changed.notify_all()

    def isolate(self, k: int) -> None:
        """Member k can neither send to nor hear from anyone."""
        self.partition([[k], [m for m in self.members() if m != k]])

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Members hear only the members of their own group."""
        groups = [set(g) for g in groups]
        for g in groups:
            for h in groups:
                if g is not h:
                    for a in g:
                        for b in h:
                            self.block(a, b)

    def heal(self) -> None:
        with self.lock:
            self.blocked.clear()
            self.changed.notify_all()

    def reset(self, k: int) -> None:
        """Closes every connection to or from member k now."""
        for (i, j), pair in self.proxies.items():
            if k in (i, j):
                for p in pair:
                    p.reset()

    def members(self) -> List[int]:
        return sorted({i for i, _ in self.proxies})

    def close(self) -> None:
        with self.lock:
            self.stopped = True
            self.changed.notify_all()
        for pair in self.proxies.values():
            for p in pair:
                p.close()
