"""Client histories recorded against an ensemble under faults, and the checker they must pass
(issue 10, items 4 and 5).

``Workload`` runs sequential clients (one request at a time each, so a client's invocation order
is its real-time order) on every member: unconditional and compare-and-set setData on a few
shared keys, reads with and without a preceding ``sync``, creates of unique nodes, and one
ephemeral per session. A client whose connection fails moves its session to another member with
its id, password and last zxid seen, as ZooKeeper's clients do, and checks there that its
ephemeral is still there. Every operation is recorded with its invocation and completion times
and its outcome: ``ok``, ``fail`` (a definite error code: the write did not happen) or
``unknown`` (no answer, connection loss, operation timeout: it may have happened, at any time
after its invocation).

``check`` decides whether the history is one a linearizable ZooKeeper could have produced, key by
key. ZooKeeper's data versions make that cheap: every setData that takes effect bumps its node's
version by exactly one, so the versions the writes and reads report order them, and the checks
are (per key):

- integrity: every value read was written by a write that did not fail, at the version it
  reports; two acknowledged writes never report the same version; a compare-and-set that
  succeeded made exactly its expected version plus one;
- real-time order: an acknowledged write that began after another ended has a higher version;
- linearizable sync-then-read: it sees at least every write acknowledged and every read completed
  before the sync was sent; no read sees a write invoked after the read ended;
- sessions: a session's reads never go back, and see the session's own acknowledged writes;
- a compare-and-set refused with BADVERSION was not refused while the version was certainly the
  expected one;
- acknowledged writes are never lost: the final version (read on every member after the
  ensemble converged, all equal) is at least the number of acknowledged writes and at most that
  plus the unknown ones; acknowledged creates exist on every member, failed ones on none;
- after every session is closed, no ephemeral is left on any member.
"""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import zkwire

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
INITIAL = b"init"
ROOT = "/h"
# Error codes after which a write's fate is unknown (ZooKeeper's clients treat them so).
UNKNOWN_ERRS = {-4, -7}      # CONNECTIONLOSS, OPERATIONTIMEOUT
BADVERSION = -103


@dataclass
class Event:
    client: int
    session: int
    kind: str                 # "set" | "cas" | "read" | "sync_read" | "create"
    key: str                  # the znode (for creates, the created path)
    invoke: float
    value: bytes = b""        # written (set, cas)
    expect: int = -1          # cas: the expected version
    complete: float = math.inf
    outcome: str = UNKNOWN
    version: int = -1         # set/cas ok: the version made; reads: the version read
    read_value: bytes = b""
    err: int = 0
    port: int = 0             # the client port of the member that served it

    def __str__(self) -> str:
        what = {"set": f"set {self.value!r}", "cas": f"cas {self.expect}->{self.value!r}",
                "read": "read", "sync_read": "sync+read", "create": "create"}[self.kind]
        got = (f" = ({self.read_value!r}, v{self.version})" if self.kind in ("read", "sync_read") and
               self.outcome == OK else f" v{self.version}" if self.outcome == OK and self.kind != "create" else "")
        return (f"[client {self.client} session {self.session:#x} port {self.port}] {what} {self.key} "
                f"[{self.invoke:.3f}, {self.complete:.3f}] {self.outcome}{got}"
                + (f" err {self.err}" if self.err else ""))


# -- the checker ----------------------------------------------------------------------------------------

@dataclass
class Final:
    """What one member holds after the run: (value, version) per key, the created nodes that
    exist, and the ephemerals left."""
    keys: Dict[str, Tuple[bytes, int]]
    created: set
    ephemerals: set


def check(events: Sequence[Event], finals: Dict[str, Final], keys: Sequence[str],
          attempted_creates: Optional[set] = None) -> List[str]:
    """Every violation found, as a readable line (empty: the history is linearizable per key)."""
    bad: List[str] = []
    for key in keys:
        bad += _check_key([e for e in events if e.key == key and e.kind != "create"], key)
    bad += _check_sessions(events)
    bad += _check_finals(events, finals, keys)
    return bad


def _check_key(evs: List[Event], key: str) -> List[str]:
    bad: List[str] = []
    writes = [e for e in evs if e.kind in ("set", "cas")]
    reads = [e for e in evs if e.kind in ("read", "sync_read") and e.outcome == OK]
    ok_writes = [w for w in writes if w.outcome == OK]
    by_value = {w.value: w for w in writes}
    # Integrity: versions of acknowledged writes are distinct; CAS made expect + 1.
    made: Dict[int, Event] = {}
    for w in ok_writes:
        if w.version in made:
            bad.append(f"{key}: two acknowledged writes made version {w.version}: {made[w.version]} / {w}")
        made[w.version] = w
        if w.kind == "cas" and w.version != w.expect + 1:
            bad.append(f"{key}: a compare-and-set on version {w.expect} made version {w.version}: {w}")
    # Integrity of reads: the value was written (by a write that did not fail) at that version.
    pinned: Dict[int, Event] = dict(made)
    writer_of: Dict[int, Event] = {}
    for r in reads:
        if r.version == 0:
            if r.read_value != INITIAL:
                bad.append(f"{key}: version 0 read with a value other than the initial one: {r}")
            continue
        w = by_value.get(r.read_value)
        if w is None:
            bad.append(f"{key}: read a value nobody wrote: {r}")
            continue
        if w.outcome == FAIL:
            bad.append(f"{key}: read the value of a write that was refused ({w}): {r}")
            continue
        if w.outcome == OK and w.version != r.version:
            bad.append(f"{key}: read {r.read_value!r} at version {r.version}, written at version {w.version}: {r}")
            continue
        other = pinned.get(r.version)
        if other is not None and other is not w:
            bad.append(f"{key}: version {r.version} read with two values ({other.value!r} and {w.value!r}): {r}")
            continue
        pinned[r.version] = w
        writer_of[id(r)] = w
        # No read from the future.
        if w.invoke > r.complete:
            bad.append(f"{key}: read a write invoked after the read completed ({w}): {r}")
    # Real-time order of acknowledged writes.
    by_complete = sorted(ok_writes, key=lambda w: w.complete)
    bad += _order_violations(key, by_complete, ok_writes, "acknowledged write", strict=True)
    # Sync-then-read sees every write acknowledged, and every read completed, before its sync.
    done = sorted(ok_writes + reads, key=lambda e: e.complete)
    bad += _order_violations(key, done, [r for r in reads if r.kind == "sync_read"], "sync+read",
                             strict=False)
    # BADVERSION: refused while the version was certainly the expected one?
    for c in writes:
        if c.kind != "cas" or c.outcome != FAIL or c.err != BADVERSION:
            continue
        e = c.expect
        set_before = (e == 0) or (e in made and made[e].complete < c.invoke)
        if not set_before:
            continue
        # Something that could have moved the version past e, invoked before the refusal.
        moved = any(w.invoke < c.complete and (w.outcome == UNKNOWN or (w.outcome == OK and w.version > e))
                    for w in writes if w is not c)
        if not moved:
            bad.append(f"{key}: compare-and-set on version {e} refused while the version was {e}: {c}")
    return bad


def _order_violations(key, done_sorted, checked, what, strict) -> List[str]:
    """For each event X in ``checked``: every event in ``done_sorted`` (by completion time) that
    completed before X was invoked has a version below X's (``strict``) or at most X's."""
    completes = [e.complete for e in done_sorted]
    best: List[Tuple[int, Optional[Event]]] = []
    cur: Tuple[int, Optional[Event]] = (-1, None)
    for e in done_sorted:
        if e.version > cur[0]:
            cur = (e.version, e)
        best.append(cur)
    bad = []
    for x in checked:
        i = bisect.bisect_left(completes, x.invoke)
        if i == 0:
            continue
        v, before = best[i - 1]
        if before is x:
            continue
        if (v >= x.version) if strict else (v > x.version):
            bad.append(f"{key}: {what} {x} is behind {before}, which completed before it began")
    return bad


def _check_sessions(events: Sequence[Event]) -> List[str]:
    """A session's reads of a key never go back, and see the session's own acknowledged writes."""
    bad = []
    seen: Dict[Tuple[int, str], Event] = {}
    for e in sorted(events, key=lambda e: e.invoke):
        if e.outcome != OK or e.kind == "create":
            continue
        k = (e.session, e.key)
        prev = seen.get(k)
        if e.kind in ("read", "sync_read") and prev is not None and e.version < prev.version:
            bad.append(f"{e.key}: session {e.session:#x} went back from version {prev.version} ({prev}) to {e}")
        if prev is None or e.version >= prev.version:
            seen[k] = e
    return bad


def _check_finals(events: Sequence[Event], finals: Dict[str, Final], keys: Sequence[str]) -> List[str]:
    bad = []
    names = sorted(finals)
    if not names:
        return ["no member's final state was read"]
    first = finals[names[0]]
    for n in names[1:]:
        f = finals[n]
        if f.keys != first.keys:
            bad.append(f"members disagree: {names[0]} has {first.keys}, {n} has {f.keys}")
        if f.created != first.created:
            bad.append(f"members disagree on the created nodes: {names[0]} has "
                       f"{sorted(first.created ^ f.created)} where {n} differs")
    for key in keys:
        writes = [e for e in events if e.key == key and e.kind in ("set", "cas")]
        ok = [w for w in writes if w.outcome == OK]
        unknown = [w for w in writes if w.outcome == UNKNOWN]
        for n in names:
            value, version = finals[n].keys.get(key, (None, -1))
            if version < len(ok):
                bad.append(f"{key}: acknowledged writes lost on {n}: final version {version}, "
                           f"{len(ok)} writes acknowledged")
            if version > len(ok) + len(unknown):
                bad.append(f"{key}: final version {version} on {n} but only {len(ok)} acknowledged and "
                           f"{len(unknown)} unknown writes")
            top = max((w.version for w in ok), default=0)
            if version < top:
                bad.append(f"{key}: final version {version} on {n} is below acknowledged version {top}")
            w = next((w for w in writes if w.value == value), None)
            if version > 0 and (w is None or w.outcome == FAIL or (w.outcome == OK and w.version != version)):
                bad.append(f"{key}: final ({value!r}, v{version}) on {n} was not written at that version")
    creates = [e for e in events if e.kind == "create"]
    for n in names:
        have = finals[n].created
        for c in creates:
            if c.outcome == OK and c.key not in have:
                bad.append(f"acknowledged create lost on {n}: {c}")
            if c.outcome == FAIL and c.key in have:
                bad.append(f"refused create exists on {n}: {c}")
        attempted = {c.key for c in creates}
        for path in have - attempted:
            bad.append(f"{path} exists on {n} but nobody created it")
        if finals[n].ephemerals:
            bad.append(f"ephemerals left on {n} after every session closed: {sorted(finals[n].ephemerals)}")
    return bad


# -- the workload -------------------------------------------------------------------------------------

class Workload:
    """``clients`` sequential clients over the members' client ``ports`` (client c starts on
    member c mod n), on ``keys`` shared keys under /h."""

    def __init__(self, ports: Sequence[int], clients: int = 6, keys: int = 4, seed: int = 0,
                 session_timeout_ms: int = 8000, io_timeout: float = 3.0, pause: float = 0.002,
                 host: str = "127.0.0.1") -> None:
        self.ports = list(ports)
        self.host = host
        self.clients = clients
        self.keys = [f"{ROOT}/k{i}" for i in range(keys)]
        self.seed = seed
        self.session_timeout_ms = session_timeout_ms
        self.io_timeout = io_timeout
        self.pause = pause
        self.events: List[Event] = []
        self.violations: List[str] = []      # seen by the clients themselves
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads: List[threading.Thread] = []
        self.t0 = time.monotonic()
        self.sessions_closed: List[int] = []
        self.reconnects = 0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def setup(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = zkwire.Conn(self.host, self.ports[0], timeout_ms=self.session_timeout_ms,
                                io_timeout=self.io_timeout)
                try:
                    for p in [ROOT, f"{ROOT}/c", f"{ROOT}/e"] + self.keys:
                        r = c.create(p, INITIAL if p in self.keys else b"")
                        assert r.err in (0, -110), f"setup create {p}: {r!r}"
                    c.close_session()
                    return
                finally:
                    c.close()
            except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def start(self) -> None:
        for c in range(self.clients):
            t = threading.Thread(target=self._client, args=(c,), daemon=True, name=f"client-{c}")
            t.start()
            self.threads.append(t)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), f"{t.name} did not stop"

    def counts(self) -> Dict[str, int]:
        with self.lock:
            out: Dict[str, int] = {}
            for e in self.events:
                out[f"{e.kind} {e.outcome}"] = out.get(f"{e.kind} {e.outcome}", 0) + 1
            return out

    def acked_writes(self) -> int:
        with self.lock:
            return sum(1 for e in self.events if e.kind in ("set", "cas", "create") and e.outcome == OK)

    def _record(self, e: Event) -> None:
        with self.lock:
            self.events.append(e)

    # -- one client ----------------------------------------------------------------------------------

    def _connect(self, c: int, start: int, sid: int, passwd: bytes, last_zxid: int):
        """A connection to the first member (from ``start``, round robin) that takes it."""
        n = len(self.ports)
        i = start
        while not self.stopping.is_set():
            port = self.ports[i % n]
            i += 1
            try:
                conn = zkwire.Conn(self.host, port, timeout_ms=self.session_timeout_ms, session_id=sid,
                                   passwd=passwd, last_zxid=last_zxid, io_timeout=self.io_timeout)
            except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError):
                time.sleep(0.05)
                continue
            if conn.session_id == 0 or conn.negotiated_timeout <= 0:
                conn.close()
                if sid:
                    return None, i    # the session expired: the caller opens a new one
                time.sleep(0.05)
                continue
            return conn, i
        return None, i

    def _client(self, c: int) -> None:
        rng = random.Random(self.seed * 1000 + c)
        conn = None
        sid, passwd, last_zxid = 0, b"", 0
        member = c
        n_ops = 0
        eph = None             # (path, acknowledged)
        versions: Dict[str, int] = {}
        while not self.stopping.is_set():
            if conn is None:
                conn, member = self._connect(c, member, sid, passwd, last_zxid)
                if conn is None:
                    if self.stopping.is_set():
                        break
                    sid, passwd, eph = 0, b"", None      # expired: a new session
                    continue
                if sid and conn.session_id == sid:
                    with self.lock:
                        self.reconnects += 1
                    if eph is not None and eph[1]:
                        try:
                            r = conn.exists(eph[0])
                            if r.err == -101:
                                with self.lock:
                                    self.violations.append(
                                        f"client {c}: session {sid:#x} kept across a reconnect to port "
                                        f"{conn.port} but its ephemeral {eph[0]} is gone")
                        except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout):
                            conn.close()
                            conn = None
                            continue
                sid, passwd = conn.session_id, conn.passwd
                if eph is None:
                    path = f"{ROOT}/e/c{c}-{sid:x}"
                    try:
                        r = conn.create(path, b"", flags=1)
                        eph = (path, r.err == 0)
                    except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout):
                        eph = (path, False)
                        conn.close()
                        conn = None
                        continue
            n_ops += 1
            try:
                self._one(c, conn, rng, n_ops, versions)
            except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError):
                last_zxid = max(last_zxid, conn.last_zxid)
                conn.close()
                conn = None
                continue
            last_zxid = max(last_zxid, conn.last_zxid)
            if self.pause:
                time.sleep(self.pause)
        if conn is not None:
            try:
                if conn.close_session().err == 0:
                    with self.lock:
                        self.sessions_closed.append(sid)
            except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout):
                pass
            conn.close()

    def _one(self, c: int, conn: zkwire.Conn, rng: random.Random, n: int, versions: Dict[str, int]) -> None:
        key = rng.choice(self.keys)
        roll = rng.random()
        e = Event(client=c, session=conn.session_id, kind="", key=key, invoke=0.0, port=conn.port)
        try:
            if roll < 0.25:
                e.kind, e.value = "set", f"c{c}-{n}".encode()
                e.invoke = self.now()
                r = conn.set_data(key, e.value, -1)
                self._write_outcome(e, r)
            elif roll < 0.45:
                e.kind, e.value, e.expect = "cas", f"c{c}-{n}".encode(), versions.get(key, 0)
                e.invoke = self.now()
                r = conn.set_data(key, e.value, e.expect)
                self._write_outcome(e, r)
            elif roll < 0.85:
                e.kind = "sync_read" if roll < 0.65 else "read"
                e.invoke = self.now()
                if e.kind == "sync_read":
                    s = conn.sync(key)
                    if s.err != 0:
                        return              # not a read: nothing to record
                r = conn.get_data(key)
                e.complete = self.now()
                if r.err != 0:
                    return
                e.outcome = OK
                e.read_value, stat = r.value
                e.version = stat.version
            else:
                e.kind, e.key = "create", f"{ROOT}/c/c{c}-{n}"
                e.invoke = self.now()
                r = conn.create(e.key, b"")
                self._write_outcome(e, r)
        except (OSError, zkwire.ConnectionClosed, zkwire.WireTimeout, zkwire.DecodeError):
            if e.kind in ("set", "cas", "create"):
                e.outcome = UNKNOWN
                self._record(e)
            raise
        if e.outcome == OK and e.kind != "create":
            versions[key] = e.version
        self._record(e)

    def _write_outcome(self, e: Event, r: zkwire.Reply) -> None:
        e.complete = self.now()
        if r.err == 0:
            e.outcome = OK
            if e.kind != "create":
                e.version = r.value.version
        elif r.err in UNKNOWN_ERRS:
            e.outcome, e.err, e.complete = UNKNOWN, r.err, math.inf
        else:
            e.outcome, e.err = FAIL, r.err

    # -- the end -------------------------------------------------------------------------------------

    def final(self, port: int) -> Final:
        """One member's final state (read directly: the caller waits for convergence first)."""
        c = zkwire.Conn(self.host, port, timeout_ms=self.session_timeout_ms, io_timeout=self.io_timeout)
        try:
            keys = {}
            for k in self.keys:
                r = c.get_data(k)
                assert r.err == 0, f"final read of {k} on port {port}: {r!r}"
                keys[k] = (r.value[0], r.value[1].version)
            created = {f"{ROOT}/c/{p}" for p in c.get_children(f"{ROOT}/c").value}
            ephemerals = set(c.get_children(f"{ROOT}/e").value)
            c.close_session()
            return Final(keys, created, ephemerals)
        finally:
            c.close()
