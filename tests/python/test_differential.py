"""Differential test: one deterministic scripted sequence of raw protocol operations (hand-written failure
cases followed by a seeded random mix, > 300 operations over several sessions) produces *identical*
normalised replies on a real ZooKeeper 3.8 and on the server under test: error codes, reply bodies (paths,
Stats, data, ACLs, children, multi results), reply-header zxids and the watch notifications each connection
receives, in order.

Normalisation (the only things allowed to differ): zxids are renamed z1, z2, ... in order of first
appearance (so equalities, order and the number of zxids consumed - failed writes and sessions included -
must match, but not the absolute values); ctime/mtime become "T" (0 stays 0); session ids and
ephemeralOwner become the label of the session that owns them; children lists, getEphemerals and whoAmI
results are sorted; the header zxid of notifications is ignored (-1 in 3.8, the txn zxid in 3.9+).

Events are collected deterministically: after every operation each *other* connection does a plain
``exists /zookeeper`` (a read), whose reply must come after any notification for the change just made.

With WAZOO_TEST_TARGET=wazoo the reference is a fresh ZooKeeper and the candidate a fresh wazoo; with
WAZOO_TEST_TARGET=zookeeper both are fresh ZooKeepers (a self-check of the script's determinism and of the
normalisation). On a mismatch the first differing entry is printed with context and both transcripts are
written to files.
"""

import difflib
import json
import random

import struct

import pytest

import zkwire

from zkwire import (AddWatchMode, CreateFlags, ERR_NAMES, MultiOp, MultiResult, OPEN_ACL_UNSAFE, Op, Stat,
                    create_body, create_ttl_body, digest_id)

SEED = 20261122
RANDOM_OPS = 260
TICK = 500

BOB = digest_id("bob", "pw")
ACL_CHOICES = [
    OPEN_ACL_UNSAFE,
    [(1, "world", "anyone"), (31, "digest", BOB)],
    [(1 | 2 | 16, "world", "anyone")],          # read, write, admin: no create/delete of children
]


class Transcript:
    def __init__(self, srv):
        self.srv = srv
        self.lines = []
        self.conns = {}
        self._zx = {}
        self._sessions = {}
        self.ops = 0

    # -- normalisation --------------------------------------------------------------------------------

    def z(self, v):
        if v in (0, -1):
            return v
        if v not in self._zx:
            self._zx[v] = f"z{len(self._zx) + 1}"
        return self._zx[v]

    def sess(self, sid):
        if sid == 0:
            return 0
        return self._sessions.get(sid, "S?unknown")

    def stat(self, s: Stat):
        return {"czxid": self.z(s.czxid), "mzxid": self.z(s.mzxid), "pzxid": self.z(s.pzxid),
                "ctime": "T" if s.ctime else 0, "mtime": "T" if s.mtime else 0,
                "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
                "ephemeralOwner": self.sess(s.ephemeralOwner), "dataLength": s.dataLength,
                "numChildren": s.numChildren}

    def data(self, d):
        return None if d is None else d.hex()

    def value(self, op, v):
        if v is None:
            return None
        if op == Op.CREATE:
            return v
        if op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
            return [v[0], self.stat(v[1])]
        if op in (Op.EXISTS, Op.SET_DATA, Op.SET_ACL):
            return self.stat(v)
        if op == Op.GET_DATA:
            return [self.data(v[0]), self.stat(v[1])]
        if op == Op.GET_ACL:
            return [[list(a) for a in v[0]], self.stat(v[1])]
        if op in (Op.GET_CHILDREN, Op.GET_EPHEMERALS):
            return sorted(v)
        if op == Op.GET_CHILDREN2:
            return [sorted(v[0]), self.stat(v[1])]
        if op in (Op.MULTI, Op.MULTI_READ):
            return [self.multi_result(m) for m in v]
        if op == Op.WHO_AM_I:
            return sorted([list(x) for x in v])
        return v

    def multi_result(self, m: MultiResult):
        if m.type == -1:
            val = m.value
        else:
            val = self.value({1: Op.CREATE, 15: Op.CREATE2, 5: Op.SET_DATA, 4: Op.GET_DATA,
                              8: Op.GET_CHILDREN}.get(m.type), m.value)
        return [m.type, m.err, val]

    def events(self, evs):
        return [[e.type, e.state, e.path] for e in evs]

    def emit(self, what, result):
        self.lines.append(f"{len(self.lines):04d} {what} => {json.dumps(result, sort_keys=True)}")

    # -- actions --------------------------------------------------------------------------------------

    def connect(self, name, timeout_ms=30000, auth=None):
        c = self.srv.wire(timeout_ms=timeout_ms)
        label = f"S{len(self._sessions) + 1}"
        self._sessions[c.session_id] = label
        self.conns[name] = c
        r = c.connect_response
        self.emit(f"{name}: connect", {"timeout": r.timeout, "session": label, "readOnly": r.read_only,
                                       "passwdLen": len(r.passwd), "proto": r.protocol_version})
        if auth:
            self.op(name, f"auth digest {auth}", lambda c: c.add_digest(*auth.split(":")))

    def op(self, name, desc, fn):
        c = self.conns[name]
        r = fn(c)
        self.ops += 1
        self.emit(f"{name}: {desc}", {"xid": r.xid, "zxid": self.z(r.zxid), "err": ERR_NAMES.get(r.err, r.err),
                                      "value": self.value(r.op, r.value), "events": self.events(r.events)})
        self.barrier(exclude=name)
        return r

    def close_session(self, name):
        c = self.conns.pop(name)
        r = c.close_session()
        self.ops += 1
        self.emit(f"{name}: closeSession", {"zxid": self.z(r.zxid), "err": r.err,
                                            "events": self.events(r.events)})
        c.wait_closed(10.0)
        c.close()
        self.barrier(exclude=None)

    def pipelined_close(self, path):
        """A new session sends ConnectRequest, closeSession, create(path, EPHEMERAL) and getData(path,
        watch) back to back, without waiting: every frame it gets until the server closes the socket."""
        c = zkwire.Conn(self.srv.host, self.srv.port, handshake=False)
        try:
            c.send_raw(zkwire.frame(zkwire.connect_request(timeout_ms=30000))
                       + zkwire.frame(struct.pack(">ii", 1, Op.CLOSE_SESSION))
                       + zkwire.frame(struct.pack(">ii", 2, Op.CREATE)
                                      + create_body(path, b"x", flags=CreateFlags.EPHEMERAL))
                       + zkwire.frame(struct.pack(">ii", 3, Op.GET_DATA) + zkwire.path_watch_body(path, True)))
            frames = [f"connect response ({len(c.read_frame())} bytes)"]
            while True:
                try:
                    r = c.read_any(timeout=10.0)
                except zkwire.ConnectionClosed:
                    break
                if r.xid != 1 and r.err == zkwire.Err.SESSIONEXPIRED:
                    # ZooKeeper's race (see the caller): its checkSession path answers the create
                    # SESSIONEXPIRED before the socket closes, its touchSession path drops it. Both
                    # are right; the transcript keeps what both always send.
                    continue
                frames.append({"xid": r.xid, "zxid": self.z(r.zxid), "err": ERR_NAMES.get(r.err, r.err)})
        finally:
            c.close()
        self.ops += 1
        self.emit(f"pipelined connect, closeSession, create {path} EPHEMERAL, getData", frames)
        self.barrier(exclude=None)

    def barrier(self, exclude):
        for n, c in self.conns.items():
            if n == exclude:
                continue
            r = c.exists("/zookeeper")
            assert r.err == 0, f"barrier read failed on {n}: {r!r}"
            if r.events:
                self.emit(f"{n}: notifications", self.events(r.events))


def hand_written(t: Transcript):
    """Failure cases and features, one by one. A: no auth, B: digest bob:pw, C: owns ephemerals."""
    t.connect("A")
    t.connect("B", auth="bob:pw")
    t.connect("C")
    op = t.op

    # system nodes
    for p in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        op("A", f"delete {p}", lambda c, p=p: c.delete(p))
        op("A", f"getData {p}", lambda c, p=p: c.get_data(p))
        op("A", f"getACL {p}", lambda c, p=p: c.get_acl(p))
    op("A", "getChildren2 /zookeeper", lambda c: c.get_children2("/zookeeper"))
    op("A", "create /zookeeper/config/x", lambda c: c.create("/zookeeper/config/x"))
    op("A", "setData /zookeeper/config", lambda c: c.set_data("/zookeeper/config", b"x"))

    # basic create / NodeExists / NoNode, create2 stats, exists watches
    op("A", "exists /d watch", lambda c: c.exists("/d", True))
    op("B", "create /d", lambda c: c.create("/d", b"root"))
    op("A", "exists /d watch", lambda c: c.exists("/d", True))
    op("A", "create /d (exists)", lambda c: c.create("/d", b"again"))
    op("A", "create /d/x/y (no parent)", lambda c: c.create("/d/x/y"))
    op("A", "create2 /d/a", lambda c: c.create2("/d/a", b"data-a"))
    op("A", "getChildren2 / ", lambda c: c.get_children2("/"))
    op("A", "exists /", lambda c: c.exists("/"))
    op("B", "getData /d/a watch", lambda c: c.get_data("/d/a", True))
    op("C", "getData /d/a watch", lambda c: c.get_data("/d/a", True))
    op("A", "setData /d/a", lambda c: c.set_data("/d/a", b"data-a2"))
    op("A", "setData /d/a v5", lambda c: c.set_data("/d/a", b"x", 5))
    op("A", "setData /d/a null", lambda c: c.set_data("/d/a", None, 1))
    op("A", "getData /d/a", lambda c: c.get_data("/d/a"))
    op("A", "delete /d/a v0", lambda c: c.delete("/d/a", 0))
    op("A", "create /d/a/c", lambda c: c.create("/d/a/c", b""))
    op("A", "delete /d/a (not empty)", lambda c: c.delete("/d/a"))
    op("A", "exists /d watch", lambda c: c.exists("/d", True))
    op("A", "delete /d (not empty)", lambda c: c.delete("/d"))
    op("A", "setData /d (fires exists watch)", lambda c: c.set_data("/d", b"root2"))

    # ephemerals
    op("C", "create /d/e ephemeral", lambda c: c.create("/d/e", b"e", flags=CreateFlags.EPHEMERAL))
    op("A", "create /d/e/x", lambda c: c.create("/d/e/x"))
    op("A", "create /d/e/s- seq", lambda c: c.create("/d/e/s-", flags=CreateFlags.PERSISTENT_SEQUENTIAL))
    op("C", "create2 /d/es- eph seq", lambda c: c.create2("/d/es-", b"", flags=CreateFlags.EPHEMERAL_SEQUENTIAL))
    op("C", "getEphemerals /", lambda c: c.get_ephemerals("/"))
    op("C", "getEphemerals /d/e", lambda c: c.get_ephemerals("/d/e"))
    op("C", "getEphemerals /nomatch", lambda c: c.get_ephemerals("/nomatch"))
    op("A", "getEphemerals / (none)", lambda c: c.get_ephemerals("/"))
    op("A", "exists /d/e watch", lambda c: c.exists("/d/e", True))

    # invalid ACLs
    for desc, acl in [("empty", []), ("auth without auth", [(31, "auth", "")]), ("digest no colon", [(31, "digest", "abc")]),
                      ("world nobody", [(31, "world", "nobody")]), ("unknown scheme", [(31, "nosuch", "x")]),
                      ("bad ip", [(31, "ip", "not-an-ip")])]:
        op("A", f"create /d/acl0 acl {desc}", lambda c, acl=acl: c.create("/d/acl0", b"", acl=acl))
    # auth scheme, digest protection, duplicate removal, setACL versions
    op("B", "create /d/acl1 acl auth", lambda c: c.create("/d/acl1", b"s", acl=[(31, "auth", "")]))
    op("B", "getACL /d/acl1", lambda c: c.get_acl("/d/acl1"))
    op("A", "getACL /d/acl1 (noauth)", lambda c: c.get_acl("/d/acl1"))
    op("A", "getData /d/acl1 (noauth)", lambda c: c.get_data("/d/acl1"))
    op("A", "setData /d/acl1 (noauth)", lambda c: c.set_data("/d/acl1", b"x"))
    op("A", "create /d/acl1/c (noauth)", lambda c: c.create("/d/acl1/c"))
    op("B", "create /d/acl1/c", lambda c: c.create("/d/acl1/c"))
    op("A", "delete /d/acl1/c (noauth)", lambda c: c.delete("/d/acl1/c"))
    op("A", "getChildren /d/acl1 (noauth)", lambda c: c.get_children("/d/acl1"))
    op("A", "getAllChildrenNumber /d/acl1 (noauth)", lambda c: c.get_all_children_number("/d/acl1"))
    op("B", "create /d/dup dup acl", lambda c: c.create("/d/dup", b"", acl=[(31, "world", "anyone"), (31, "world", "anyone"), (1, "digest", BOB), (1, "digest", BOB)]))
    op("B", "getACL /d/dup", lambda c: c.get_acl("/d/dup"))
    op("B", "setACL /d/dup v3", lambda c: c.set_acl("/d/dup", OPEN_ACL_UNSAFE, 3))
    op("B", "setACL /d/dup v0", lambda c: c.set_acl("/d/dup", [(1, "world", "anyone"), (31, "auth", "")], 0))
    op("B", "getACL /d/dup", lambda c: c.get_acl("/d/dup"))
    op("A", "setACL /d/dup (noauth)", lambda c: c.set_acl("/d/dup", OPEN_ACL_UNSAFE))
    op("A", "setACL /d/dup empty", lambda c: c.set_acl("/d/dup", []))
    op("A", "setACL /d/missing", lambda c: c.set_acl("/d/missing", OPEN_ACL_UNSAFE))
    op("B", "create /d/ro world-read", lambda c: c.create("/d/ro", b"r", acl=[(1, "world", "anyone")]))
    op("A", "setData /d/ro (noauth)", lambda c: c.set_data("/d/ro", b"w"))
    op("A", "getData /d/ro", lambda c: c.get_data("/d/ro"))
    op("A", "whoAmI", lambda c: c.who_am_i())
    op("B", "whoAmI", lambda c: c.who_am_i())

    # sequential
    op("A", "create /d/q", lambda c: c.create("/d/q"))
    for i in range(3):
        op("A", f"create /d/q/n- seq {i}", lambda c: c.create("/d/q/n-", b"", flags=CreateFlags.PERSISTENT_SEQUENTIAL))
    op("A", "create /d/q/ seq (trailing slash)", lambda c: c.create("/d/q/", b"", flags=CreateFlags.PERSISTENT_SEQUENTIAL))
    op("A", "create /d/q/ (trailing slash, not seq)", lambda c: c.create("/d/q/", b""))
    op("A", "delete /d/q/n-0000000001", lambda c: c.delete("/d/q/n-0000000001"))
    op("A", "create2 /d/q/m- seq", lambda c: c.create2("/d/q/m-", b"m", flags=CreateFlags.PERSISTENT_SEQUENTIAL))
    op("A", "getChildren2 /d/q watch", lambda c: c.get_children2("/d/q", True))
    op("B", "create /d/q/plain", lambda c: c.create("/d/q/plain"))
    op("A", "getChildren2 /d/q", lambda c: c.get_children2("/d/q"))

    # bad paths and flags
    for p in ["d", "/d/", "/d//x", "/d/.", "/d/..", "/d/x\x00y", "/d/x\x01", "/d/\u007f", "/d/\ufff0"]:
        op("A", f"create {p!r}", lambda c, p=p: c.create(p))
    op("A", "create /d/f7 flags 7", lambda c: c.create("/d/f7", flags=7))
    op("A", "create /d/fneg flags -1", lambda c: c.create("/d/fneg", flags=-1))
    op("A", "create2 /d/t flags 5 (TTL via create2)", lambda c: c.create2("/d/t", flags=5))
    op("A", "exists NUL", lambda c: c.exists("/d/x\x00"))
    op("A", "getData bad path", lambda c: c.get_data("/d//a"))

    # TTL and container nodes
    op("A", "createTTL /d/ttl", lambda c: c.create_ttl("/d/ttl", b"t", ttl=600000))
    op("A", "createTTL /d/ttl-s seq", lambda c: c.create_ttl("/d/ttl-s", b"", flags=CreateFlags.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=600000))
    op("A", "createTTL ttl 0", lambda c: c.create_ttl("/d/ttl0", b"", ttl=0))
    op("A", "createTTL ttl too big", lambda c: c.create_ttl("/d/ttl1", b"", ttl=1 << 41))
    op("A", "createTTL flags 0", lambda c: c.create_ttl("/d/ttl2", b"", flags=0, ttl=5))
    op("A", "createTTL ephemeral", lambda c: c.create_ttl("/d/ttl3", b"", flags=1, ttl=5))
    op("A", "createContainer /d/cont", lambda c: c.create_container("/d/cont", b"c"))
    op("A", "create /d/cont/child", lambda c: c.create("/d/cont/child"))
    op("A", "exists /d/cont", lambda c: c.exists("/d/cont"))

    # multi
    op("A", "multi ok", lambda c: c.multi([
        MultiOp.create("/d/m1", b"1"), MultiOp.create("/d/m1/c", b""), MultiOp.set_data("/d/m1", b"11", 0),
        MultiOp.check("/d/m1", 1), MultiOp.create("/d/m1/s-", b"", flags=CreateFlags.PERSISTENT_SEQUENTIAL),
        MultiOp.delete("/d/m1/c")]))
    op("A", "multi fail at 2nd (NoNode)", lambda c: c.multi([MultiOp.create("/d/m2"), MultiOp.set_data("/d/none", b"x"), MultiOp.create("/d/m3")]))
    op("A", "multi fail at 3rd (BadVersion check)", lambda c: c.multi([MultiOp.create("/d/m2"), MultiOp.delete("/d/m1/s-0000000001"), MultiOp.check("/d/m1", 9)]))
    op("A", "multi fail at 1st (NodeExists)", lambda c: c.multi([MultiOp.create("/d"), MultiOp.create("/d/m4")]))
    op("A", "multi fail NotEmpty", lambda c: c.multi([MultiOp.delete("/d/m1")]))
    op("A", "multi fail NoAuth", lambda c: c.multi([MultiOp.set_data("/d/ro", b"w")]))
    op("A", "multi fail bad path", lambda c: c.multi([MultiOp.create("/d/ok"), MultiOp.create("/d/bad/")]))
    op("A", "multi check missing", lambda c: c.multi([MultiOp.check("/d/nothere", -1)]))
    op("A", "multi empty", lambda c: c.multi([]))
    op("A", "multi mixed read+write", lambda c: c.multi([MultiOp.get_data("/d"), MultiOp.create("/d/mx")]))
    op("A", "multi ttl+container", lambda c: c.multi([
        MultiOp(Op.CREATE_TTL, create_ttl_body("/d/mttl", b"", OPEN_ACL_UNSAFE, 5, 600000)),
        MultiOp(Op.CREATE_CONTAINER, create_body("/d/mcont", b"", OPEN_ACL_UNSAFE, 4))]))
    op("A", "exists /d/m2", lambda c: c.exists("/d/m2"))
    op("A", "getChildren2 /d/m1", lambda c: c.get_children2("/d/m1"))
    op("A", "multiRead", lambda c: c.multi_read([MultiOp.get_data("/d/m1"), MultiOp.get_children("/d/none"),
                                                 MultiOp.get_children("/d/q"), MultiOp.get_data("/d/acl1")]))
    op("A", "multiRead empty", lambda c: c.multi_read([]))

    # child watches and persistent watches
    op("B", "getChildren /d/q watch", lambda c: c.get_children("/d/q", True))
    op("C", "addWatch /d/q persistent", lambda c: c.add_watch("/d/q", AddWatchMode.PERSISTENT))
    op("A", "addWatch /d recursive", lambda c: c.add_watch("/d", AddWatchMode.PERSISTENT_RECURSIVE))
    op("B", "create /d/q/w", lambda c: c.create("/d/q/w", b"1"))
    op("B", "setData /d/q/w", lambda c: c.set_data("/d/q/w", b"2"))
    op("B", "setData /d/q", lambda c: c.set_data("/d/q", b"q"))
    op("B", "delete /d/q/w", lambda c: c.delete("/d/q/w"))
    op("A", "removeWatches /d/q data (none)", lambda c: c.remove_watches("/d/q", 2))
    op("B", "getData /d/q watch", lambda c: c.get_data("/d/q", True))
    op("B", "removeWatches /d/q data", lambda c: c.remove_watches("/d/q", 2))
    op("A", "setData /d/q again", lambda c: c.set_data("/d/q", b"q2"))

    # counts and sync
    op("A", "getAllChildrenNumber /d", lambda c: c.get_all_children_number("/d"))
    op("A", "getAllChildrenNumber /", lambda c: c.get_all_children_number("/"))
    op("A", "getAllChildrenNumber /d/none", lambda c: c.get_all_children_number("/d/none"))
    op("A", "sync /d", lambda c: c.sync("/d"))
    op("A", "sync /d/none", lambda c: c.sync("/d/none"))

    # closeSession deletes C's ephemerals and fires watches; then C comes back as a new session
    op("B", "getChildren /d watch", lambda c: c.get_children("/d", True))
    t.close_session("C")
    op("A", "exists /d/e", lambda c: c.exists("/d/e"))
    op("A", "getChildren2 /d", lambda c: c.get_children2("/d"))
    op("A", "delete /d/cont/child", lambda c: c.delete("/d/cont/child"))

    # An ephemeral pipelined behind closeSession (before the handshake even completed) is never
    # created, and the connection closes after the close's reply. ZooKeeper either drops the create
    # (its submit-time touchSession fails) or preps it as a SESSIONEXPIRED error txn (checkSession),
    # depending on a race between its threads: whether a zxid was taken is not compared (no reply
    # zxid is read until the next write, and zxids are renamed in order of first appearance). The
    # create by A proves no orphan exists: it would fail NODEEXISTS.
    op("B", "exists /d/orphan watch", lambda c: c.exists("/d/orphan", True))
    t.pipelined_close("/d/orphan")
    op("A", "create /d/orphan (no orphan left)", lambda c: c.create("/d/orphan"))
    op("A", "delete /d/orphan", lambda c: c.delete("/d/orphan"))


def random_mix(t: Transcript, rng: random.Random, n: int):
    t.connect("E")
    op = t.op
    op("A", "create /d/r", lambda c: c.create("/d/r"))
    paths = [f"/d/r/{x}" for x in "abc"] + [f"/d/r/{x}/{y}" for x in "abc" for y in "ab"]

    def data():
        if rng.random() < 0.05:
            return None
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 7)))

    def version():
        return rng.choice([-1, -1, -1, 0, 1, 2])

    def sub_op():
        k = rng.choice(["create", "create", "delete", "set", "check"])
        p = rng.choice(paths)
        if k == "create":
            return MultiOp.create(p, data(), flags=rng.choice([0, 0, 1, 2]))
        if k == "delete":
            return MultiOp.delete(p, version())
        if k == "set":
            return MultiOp.set_data(p, data(), version())
        return MultiOp.check(p, version())

    kinds = (["create"] * 20 + ["create2"] * 8 + ["delete"] * 14 + ["set"] * 12 + ["get"] * 8 + ["exists"] * 8
             + ["children"] * 5 + ["children2"] * 5 + ["multi"] * 10 + ["getacl"] * 3 + ["setacl"] * 3
             + ["sync"] * 1 + ["multiread"] * 2 + ["count"] * 1)
    for i in range(n):
        if i == n // 2:
            t.close_session("E")
            t.connect("E")
        who = rng.choice(["A", "B", "E"])
        k = rng.choice(kinds)
        p = rng.choice(paths)
        if k in ("create", "create2"):
            flags = rng.choice([0, 0, 0, 1, 1, 2, 3])
            d = data()
            fn = (lambda c, p=p, d=d, f=flags: c.create(p, d, flags=f)) if k == "create" else \
                 (lambda c, p=p, d=d, f=flags: c.create2(p, d, flags=f))
            op(who, f"{k} {p} flags={flags}", fn)
        elif k == "delete":
            v = version()
            op(who, f"delete {p} v{v}", lambda c, p=p, v=v: c.delete(p, v))
        elif k == "set":
            v, d = version(), data()
            op(who, f"setData {p} v{v}", lambda c, p=p, v=v, d=d: c.set_data(p, d, v))
        elif k == "get":
            w = rng.random() < 0.4
            op(who, f"getData {p} watch={w}", lambda c, p=p, w=w: c.get_data(p, w))
        elif k == "exists":
            w = rng.random() < 0.5
            op(who, f"exists {p} watch={w}", lambda c, p=p, w=w: c.exists(p, w))
        elif k == "children":
            pp = rng.choice(paths + ["/d/r"])
            w = rng.random() < 0.4
            op(who, f"getChildren {pp} watch={w}", lambda c, p=pp, w=w: c.get_children(p, w))
        elif k == "children2":
            pp = rng.choice(paths + ["/d/r"])
            w = rng.random() < 0.4
            op(who, f"getChildren2 {pp} watch={w}", lambda c, p=pp, w=w: c.get_children2(p, w))
        elif k == "multi":
            subs = [sub_op() for _ in range(rng.randrange(2, 4))]
            op(who, f"multi {subs}", lambda c, s=subs: c.multi(s))
        elif k == "getacl":
            op("B", f"getACL {p}", lambda c, p=p: c.get_acl(p))       # B has ADMIN on every ACL used
        elif k == "setacl":
            acl = rng.choice(ACL_CHOICES)
            v = rng.choice([-1, -1, 0, 1])
            op(who, f"setACL {p} {acl} v{v}", lambda c, p=p, a=acl, v=v: c.set_acl(p, a, v))
        elif k == "sync":
            op(who, f"sync {p}", lambda c, p=p: c.sync(p))
        elif k == "multiread":
            subs = [rng.choice([MultiOp.get_data, MultiOp.get_children])(rng.choice(paths)) for _ in range(3)]
            op(who, f"multiRead {subs}", lambda c, s=subs: c.multi_read(s))
        elif k == "count":
            op(who, "getAllChildrenNumber /d/r", lambda c: c.get_all_children_number("/d/r"))
        else:
            raise AssertionError(k)
    op("E", "getEphemerals /d", lambda c: c.get_ephemerals("/d"))
    t.close_session("E")


def dump_tree(t: Transcript, name: str, path: str):
    r = t.op(name, f"dump getChildren2 {path}", lambda c: c.get_children2(path))
    t.op(name, f"dump getData {path}", lambda c: c.get_data(path))
    t.op("B", f"dump getACL {path}", lambda c: c.get_acl(path))
    if r.ok:
        for child in sorted(r.value[0]):
            dump_tree(t, name, f"{path.rstrip('/')}/{child}")


def run_script(srv) -> Transcript:
    t = Transcript(srv)
    hand_written(t)
    random_mix(t, random.Random(SEED), RANDOM_OPS)
    t.connect("F")
    dump_tree(t, "F", "/d")
    t.op("F", "getAllChildrenNumber /", lambda c: c.get_all_children_number("/"))
    t.op("F", "getChildren2 /", lambda c: c.get_children2("/"))
    for n in list(t.conns):
        t.close_session(n)
    return t


def compare(ref: Transcript, got: Transcript, ref_name: str, got_name: str, tmp_path):
    (tmp_path / f"transcript-{ref_name}.txt").write_text("\n".join(ref.lines) + "\n")
    (tmp_path / f"transcript-{got_name}.txt").write_text("\n".join(got.lines) + "\n")
    for i, (a, b) in enumerate(zip(ref.lines, got.lines)):
        if a != b:
            ctx = "\n".join("    " + l for l in ref.lines[max(0, i - 6):i])
            diff = "\n".join(difflib.ndiff([a], [b]))
            pytest.fail(
                f"first mismatch at entry {i} ({ref_name} vs {got_name}).\n"
                f"context (identical on both):\n{ctx}\n"
                f"{ref_name:>10}: {a}\n{got_name:>10}: {b}\n\ncharacter diff:\n{diff}\n\n"
                f"full transcripts: {tmp_path}/transcript-{ref_name}.txt and transcript-{got_name}.txt",
                pytrace=False)
    if len(ref.lines) != len(got.lines):
        i = min(len(ref.lines), len(got.lines))
        extra = (ref.lines[i:] or got.lines[i:])[:5]
        pytest.fail(f"transcripts differ in length ({ref_name} {len(ref.lines)}, {got_name} "
                    f"{len(got.lines)}); first extra entries:\n" + "\n".join(extra), pytrace=False)


def test_scripted_replies_are_identical_to_real_zookeeper(target, zk_server_factory, server_factory, tmp_path):
    ref_srv = zk_server_factory(tick_time=TICK, name="zookeeper-reference")
    ref = run_script(ref_srv)
    if target == "wazoo":
        cand_srv, cand_name = server_factory("wazoo", tick_time=TICK, name="wazoo-candidate"), "wazoo"
    else:
        cand_srv, cand_name = zk_server_factory(tick_time=TICK, name="zookeeper-selfcheck"), "zookeeper2"
    got = run_script(cand_srv)
    assert ref.ops >= 300, f"the script ran only {ref.ops} operations"
    compare(ref, got, "zookeeper", cand_name, tmp_path)


class _Reply:
    def __init__(self, err):
        self.err, self.ok, self.value, self.xid, self.zxid, self.events = err, err == 0, None, 0, 0, []


class _RecordingConn:
    """Stands in for a connection: records each call the script makes and answers with a reply drawn
    from ``answers``."""

    def __init__(self, log, name, answers):
        self.log, self.name, self.answers = log, name, answers

    def __getattr__(self, method):
        def call(*args, **kw):
            self.log.append((self.name, method, repr(args), repr(sorted(kw.items()))))
            return _Reply(self.answers.choice([0, 0, -101, -110, -103, -111]))
        return call


class _RecordingTranscript:
    """The part of Transcript that random_mix uses, recording requests instead of sending them."""

    def __init__(self, answers_seed):
        self.log = []
        self.answers = random.Random(answers_seed)

    def connect(self, name, timeout_ms=30000, auth=None):
        self.log.append((name, "connect", repr(timeout_ms), repr(auth)))

    def close_session(self, name):
        self.log.append((name, "closeSession", "", ""))

    def op(self, name, desc, fn):
        return fn(_RecordingConn(self.log, name, self.answers))


def test_random_mix_sends_the_same_requests_whatever_the_replies():
    """Both servers get the same requests only if the random part depends on the seed and never on a
    reply: run it against two recorders whose replies differ, and compare every request made."""
    a, b = _RecordingTranscript(1), _RecordingTranscript(2)
    random_mix(a, random.Random(SEED), RANDOM_OPS)
    random_mix(b, random.Random(SEED), RANDOM_OPS)
    assert len(a.log) > RANDOM_OPS
    assert a.log == b.log
    # The recorder sees the requests themselves: another seed makes other ones.
    c = _RecordingTranscript(1)
    random_mix(c, random.Random(SEED + 1), RANDOM_OPS)
    assert c.log != a.log
