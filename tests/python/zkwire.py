"""A small raw ZooKeeper wire-protocol client (jute encoding with ``struct``).

Used by the differential and bad-input tests, and wherever a test must see frames exactly as they arrive
(ordering of watch notifications against replies, handshake fields, multi layouts). It speaks the protocol
described in /work/shared/design/zk-protocol.md §1–§5 and does no retries, no pings on its own and no
reconnects: every byte on the wire is the test's decision.

Typical use::

    c = Conn(host, port)                   # TCP connect + ConnectRequest/ConnectResponse
    r = c.create("/a", b"x")               # -> Reply(xid, zxid, err, body, value="/a")
    r = c.get_data("/a", watch=True)       # value = (data, Stat)
    r = c.set_data("/a", b"y")             # events that arrived before the reply: r.events
    c.close_session()                      # closeSession (-11) then the server closes the socket

Every request method returns a :class:`Reply`; ``reply.err`` is the ReplyHeader err (0 = OK),
``reply.value`` the decoded body (only when err == 0), ``reply.body``/``reply.raw`` the raw bytes, and
``reply.events`` the watch notifications (xid -1) that arrived on this connection *before* this reply.
All frames ever received are also kept, in arrival order, in ``conn.frames``.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Optional, Sequence, Tuple

# ---------------------------------------------------------------------------------------------------------
# Constants (zk-protocol.md §3, §6, §7)

class Op:
    NOTIFICATION = 0
    CREATE = 1
    DELETE = 2
    EXISTS = 3
    GET_DATA = 4
    SET_DATA = 5
    GET_ACL = 6
    SET_ACL = 7
    GET_CHILDREN = 8
    SYNC = 9
    PING = 11
    GET_CHILDREN2 = 12
    CHECK = 13
    MULTI = 14
    CREATE2 = 15
    RECONFIG = 16
    CHECK_WATCHES = 17
    REMOVE_WATCHES = 18
    CREATE_CONTAINER = 19
    DELETE_CONTAINER = 20
    CREATE_TTL = 21
    MULTI_READ = 22
    AUTH = 100
    SET_WATCHES = 101
    SASL = 102
    GET_EPHEMERALS = 103
    GET_ALL_CHILDREN_NUMBER = 104
    SET_WATCHES2 = 105
    ADD_WATCH = 106
    WHO_AM_I = 107
    CREATE_SESSION = -10
    CLOSE_SESSION = -11
    ERROR = -1


class Err:
    OK = 0
    SYSTEMERROR = -1
    RUNTIMEINCONSISTENCY = -2
    DATAINCONSISTENCY = -3
    CONNECTIONLOSS = -4
    MARSHALLINGERROR = -5
    UNIMPLEMENTED = -6
    OPERATIONTIMEOUT = -7
    BADARGUMENTS = -8
    UNKNOWNSESSION = -12
    NEWCONFIGNOQUORUM = -13
    RECONFIGINPROGRESS = -14
    APIERROR = -100
    NONODE = -101
    NOAUTH = -102
    BADVERSION = -103
    NOCHILDRENFOREPHEMERALS = -108
    NODEEXISTS = -110
    NOTEMPTY = -111
    SESSIONEXPIRED = -112
    INVALIDCALLBACK = -113
    INVALIDACL = -114
    AUTHFAILED = -115
    SESSIONMOVED = -118
    NOTREADONLY = -119
    EPHEMERALONLOCALSESSION = -120
    NOWATCHER = -121
    RECONFIGDISABLED = -123
    QUOTAEXCEEDED = -125
    THROTTLEDOP = -127


ERR_NAMES = {v: k for k, v in vars(Err).items() if not k.startswith("_")}


class EventType:
    NONE = -1
    NODE_CREATED = 1
    NODE_DELETED = 2
    NODE_DATA_CHANGED = 3
    NODE_CHILDREN_CHANGED = 4


class Perm:
    READ = 1
    WRITE = 2
    CREATE = 4
    DELETE = 8
    ADMIN = 16
    ALL = 31


class CreateFlags:
    PERSISTENT = 0
    EPHEMERAL = 1
    PERSISTENT_SEQUENTIAL = 2
    EPHEMERAL_SEQUENTIAL = 3
    CONTAINER = 4
    PERSISTENT_WITH_TTL = 5
    PERSISTENT_SEQUENTIAL_WITH_TTL = 6


class AddWatchMode:
    PERSISTENT = 0
    PERSISTENT_RECURSIVE = 1


NOTIFICATION_XID = -1
PING_XID = -2
AUTH_XID = -4
SET_WATCHES_XID = -8

DEFAULT_MAX_BUFFER = 0xFFFFF

OPEN_ACL_UNSAFE = [(Perm.ALL, "world", "anyone")]
READ_ACL_UNSAFE = [(Perm.READ, "world", "anyone")]


# ---------------------------------------------------------------------------------------------------------
# Jute encoding

class Writer:
    """Jute BinaryOutputArchive."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []

    def int(self, v: int) -> "Writer":
        self.parts.append(struct.pack(">i", v))
        return self

    def long(self, v: int) -> "Writer":
        self.parts.append(struct.pack(">q", v))
        return self

    def bool(self, v: bool) -> "Writer":
        self.parts.append(b"\x01" if v else b"\x00")
        return self

    def buffer(self, v: Optional[bytes]) -> "Writer":
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.parts.append(bytes(v))
        return self

    def ustring(self, v: Optional[str]) -> "Writer":
        if v is None:
            return self.int(-1)
        return self.buffer(v.encode("utf-8", "surrogatepass"))

    def raw(self, b: bytes) -> "Writer":
        self.parts.append(bytes(b))
        return self

    def acl_list(self, acl: Optional[Sequence[Tuple[int, str, str]]]) -> "Writer":
        if acl is None:
            return self.int(-1)
        self.int(len(acl))
        for perms, scheme, ident in acl:
            self.int(perms).ustring(scheme).ustring(ident)
        return self

    def string_vector(self, items: Optional[Sequence[str]]) -> "Writer":
        if items is None:
            return self.int(-1)
        self.int(len(items))
        for s in items:
            self.ustring(s)
        return self

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class DecodeError(Exception):
    pass


class Reader:
    """Jute BinaryInputArchive over a bytes object."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(f"need {n} bytes at {self.pos}, have {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def long(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def bool(self) -> bool:
        return self._take(1) != b"\x00"

    def buffer(self) -> Optional[bytes]:
        n = self.int()
        if n == -1:
            return None
        return self._take(n)

    def ustring(self) -> Optional[str]:
        b = self.buffer()
        return None if b is None else b.decode("utf-8", "replace")

    def stat(self) -> "Stat":
        return Stat(*struct.unpack(">qqqqiiiqiiq", self._take(68)))

    def acl_list(self) -> Optional[List[Tuple[int, str, str]]]:
        n = self.int()
        if n == -1:
            return None
        out = []
        for _ in range(n):
            perms = self.int()
            scheme = self.ustring()
            ident = self.ustring()
            out.append((perms, scheme, ident))
        return out

    def string_vector(self) -> Optional[List[str]]:
        n = self.int()
        if n == -1:
            return None
        return [self.ustring() for _ in range(n)]

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def at_end(self) -> bool:
        return self.pos == len(self.data)


@dataclass(frozen=True)
class Stat:
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ConnectResponse:
    protocol_version: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: Optional[bool]  # None when the server did not send the byte
    raw: bytes                 # frame payload (without the 4-byte length)


@dataclass
class WatchEvent:
    type: int
    state: int
    path: str
    zxid: int      # header zxid: -1 in ZooKeeper <= 3.8, the txn zxid in 3.9+
    raw: bytes

    def key(self) -> Tuple[int, int, str]:
        return (self.type, self.state, self.path)


@dataclass
class Reply:
    xid: int
    zxid: int
    err: int
    body: bytes                 # payload after the 16-byte ReplyHeader
    raw: bytes                  # whole frame payload (header + body), without the length prefix
    op: Optional[int] = None
    value: Any = None           # decoded body when err == 0 (op-specific)
    events: List[WatchEvent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.err == 0

    def __repr__(self) -> str:  # compact for assertion messages
        return (f"Reply(xid={self.xid}, zxid={self.zxid:#x}, err={self.err} {ERR_NAMES.get(self.err, '')}, "
                f"value={self.value!r}, events={[e.key() for e in self.events]})")


@dataclass
class MultiResult:
    type: int       # opcode of the result (1, 2, 5, 13, 15, 4, 8) or -1 for an error result
    err: int        # header err (0 for non-error results, the code for error results)
    value: Any      # path / (path, stat) / stat / None / error code / (data, stat) / children

    def key(self):
        return (self.type, self.err, self.value)


class ConnectionClosed(Exception):
    """The server closed the connection (EOF) or reset it."""


class WireTimeout(Exception):
    """Nothing (or not enough) arrived within the timeout."""


# ---------------------------------------------------------------------------------------------------------
# Request bodies

def create_body(path: str, data: Optional[bytes] = b"", acl=OPEN_ACL_UNSAFE, flags: int = 0) -> bytes:
    return Writer().ustring(path).buffer(data).acl_list(acl).int(flags).getvalue()


def create_ttl_body(path: str, data: Optional[bytes], acl, flags: int, ttl: int) -> bytes:
    return Writer().ustring(path).buffer(data).acl_list(acl).int(flags).long(ttl).getvalue()


def path_version_body(path: str, version: int) -> bytes:
    return Writer().ustring(path).int(version).getvalue()


def path_watch_body(path: str, watch: bool) -> bytes:
    return Writer().ustring(path).bool(watch).getvalue()


def set_data_body(path: str, data: Optional[bytes], version: int) -> bytes:
    return Writer().ustring(path).buffer(data).int(version).getvalue()


def set_acl_body(path: str, acl, version: int) -> bytes:
    return Writer().ustring(path).acl_list(acl).int(version).getvalue()


def path_body(path: str) -> bytes:
    return Writer().ustring(path).getvalue()


def set_watches_body(relative_zxid: int, data: Sequence[str] = (), exist: Sequence[str] = (),
                     child: Sequence[str] = ()) -> bytes:
    """SetWatches (101): relativeZxid, dataWatches, existWatches, childWatches."""
    return (Writer().long(relative_zxid).string_vector(list(data)).string_vector(list(exist))
            .string_vector(list(child)).getvalue())


def set_watches2_body(relative_zxid: int, data: Sequence[str] = (), exist: Sequence[str] = (),
                      child: Sequence[str] = (), persistent: Sequence[str] = (),
                      persistent_recursive: Sequence[str] = ()) -> bytes:
    """SetWatches2 (105): SetWatches' lists, then persistentWatches and persistentRecursiveWatches."""
    return (Writer().raw(set_watches_body(relative_zxid, data, exist, child))
            .string_vector(list(persistent)).string_vector(list(persistent_recursive)).getvalue())


class MultiOp:
    """One sub-operation of a multi / multiRead request."""

    def __init__(self, op: int, body: bytes, desc: str = "") -> None:
        self.op = op
        self.body = body
        self.desc = desc

    @staticmethod
    def create(path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0) -> "MultiOp":
        return MultiOp(Op.CREATE, create_body(path, data, acl, flags), f"create {path} f{flags}")

    @staticmethod
    def create2(path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0) -> "MultiOp":
        return MultiOp(Op.CREATE2, create_body(path, data, acl, flags), f"create2 {path} f{flags}")

    @staticmethod
    def delete(path, version=-1) -> "MultiOp":
        return MultiOp(Op.DELETE, path_version_body(path, version), f"delete {path} v{version}")

    @staticmethod
    def set_data(path, data, version=-1) -> "MultiOp":
        return MultiOp(Op.SET_DATA, set_data_body(path, data, version), f"setData {path} v{version}")

    @staticmethod
    def check(path, version) -> "MultiOp":
        return MultiOp(Op.CHECK, path_version_body(path, version), f"check {path} v{version}")

    @staticmethod
    def get_data(path, watch=False) -> "MultiOp":
        return MultiOp(Op.GET_DATA, path_watch_body(path, watch), f"getData {path}")

    @staticmethod
    def get_children(path, watch=False) -> "MultiOp":
        return MultiOp(Op.GET_CHILDREN, path_watch_body(path, watch), f"getChildren {path}")

    def __repr__(self) -> str:
        return f"MultiOp({self.desc or self.op})"


def multi_body(ops: Iterable[MultiOp]) -> bytes:
    w = Writer()
    for o in ops:
        w.int(o.op).bool(False).int(-1).raw(o.body)
    w.int(-1).bool(True).int(-1)
    return w.getvalue()


def decode_multi(body: bytes) -> List[MultiResult]:
    r = Reader(body)
    out: List[MultiResult] = []
    while True:
        typ = r.int()
        done = r.bool()
        err = r.int()
        if done:
            if typ != -1 or err != -1:
                raise DecodeError(f"bad multi terminator type={typ} err={err}")
            break
        if typ == Op.CREATE:
            val: Any = r.ustring()
        elif typ == Op.CREATE2:
            val = (r.ustring(), r.stat())
        elif typ in (Op.DELETE, Op.CHECK):
            val = None
        elif typ == Op.SET_DATA:
            val = r.stat()
        elif typ == Op.GET_DATA:
            val = (r.buffer(), r.stat())
        elif typ == Op.GET_CHILDREN:
            val = r.string_vector()
        elif typ == Op.ERROR:
            val = r.int()
        else:
            raise DecodeError(f"unknown multi result type {typ}")
        out.append(MultiResult(typ, err, val))
    if not r.at_end():
        raise DecodeError(f"{r.remaining()} trailing bytes after multi response")
    return out


def decode_body(op: Optional[int], body: bytes) -> Any:
    """Decode a success reply body for ``op``; raises DecodeError on malformed/trailing bytes."""
    r = Reader(body)
    if op in (Op.CREATE,):
        v: Any = r.ustring()
    elif op in (Op.CREATE2, Op.CREATE_CONTAINER, Op.CREATE_TTL):
        v = (r.ustring(), r.stat())
    elif op in (Op.EXISTS, Op.SET_DATA, Op.SET_ACL):
        v = r.stat()
    elif op == Op.GET_DATA:
        v = (r.buffer(), r.stat())
    elif op == Op.GET_ACL:
        v = (r.acl_list(), r.stat())
    elif op in (Op.GET_CHILDREN, Op.GET_EPHEMERALS):
        v = r.string_vector()
    elif op == Op.GET_CHILDREN2:
        v = (r.string_vector(), r.stat())
    elif op == Op.SYNC:
        v = r.ustring()
    elif op in (Op.MULTI, Op.MULTI_READ):
        return decode_multi(body)
    elif op in (Op.GET_ALL_CHILDREN_NUMBER, Op.ADD_WATCH):
        v = r.int()
    elif op == Op.WHO_AM_I:
        n = r.int()
        v = [(r.ustring(), r.ustring()) for _ in range(max(n, 0))]
    else:
        # delete, ping, auth, closeSession, setWatches, check/removeWatches: no body
        v = None
    if not r.at_end():
        raise DecodeError(f"op {op}: {r.remaining()} unexpected trailing bytes in reply body {body!r}")
    return v


# ---------------------------------------------------------------------------------------------------------
# Connection

def connect_request(timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = b"\x00" * 16,
                    last_zxid: int = 0, read_only: Optional[bool] = False, protocol_version: int = 0) -> bytes:
    """ConnectRequest payload (no length prefix). read_only=None omits the trailing byte (44-byte form)."""
    w = Writer().int(protocol_version).long(last_zxid).int(timeout_ms).long(session_id).buffer(passwd)
    if read_only is not None:
        w.bool(read_only)
    return w.getvalue()


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


class Conn:
    """One TCP connection speaking the client protocol. Not thread-safe."""

    def __init__(self, host: str, port: int, timeout_ms: int = 10000, session_id: int = 0,
                 passwd: bytes = b"\x00" * 16, last_zxid: int = 0, read_only: Optional[bool] = False,
                 handshake: bool = True, io_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.io_timeout = io_timeout
        self.sock = socket.create_connection((host, port), timeout=io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self._xid = 0
        self.frames: List[Any] = []          # every Reply / WatchEvent in arrival order
        self.pending_events: List[WatchEvent] = []
        self.last_zxid = last_zxid
        self.session_id = 0
        self.passwd = b""
        self.negotiated_timeout = 0
        self.connect_response: Optional[ConnectResponse] = None
        if handshake:
            self.handshake(timeout_ms, session_id, passwd, last_zxid, read_only)

    # -- low level -----------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(frame(payload))

    def _recv_exact(self, n: int, timeout: Optional[float]) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self._buf) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WireTimeout(f"timed out waiting for {n} bytes (have {len(self._buf)})")
                self.sock.settimeout(left)
            else:
                self.sock.settimeout(None)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise WireTimeout(f"timed out waiting for {n} bytes (have {len(self._buf)})") from None
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ConnectionClosed(f"connection reset: {e}") from None
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(self._buf)} of {n} bytes")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_frame(self, timeout: Optional[float] = -1.0) -> bytes:
        """Read one length-prefixed frame payload. timeout=-1 means the connection's io_timeout."""
        if timeout == -1.0:
            timeout = self.io_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        n = struct.unpack(">i", self._recv_exact(4, timeout))[0]
        if n < 0 or n > 64 * 1024 * 1024:
            raise DecodeError(f"server sent frame length {n}")
        left = None if deadline is None else max(0.001, deadline - time.monotonic())
        return self._recv_exact(n, left)

    def wait_closed(self, timeout: float = 5.0) -> bytes:
        """Wait until the server closes the connection; returns whatever bytes arrived before EOF."""
        deadline = time.monotonic() + timeout
        got = self._buf
        self._buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireTimeout(f"server did not close the connection within {timeout}s (got {got!r})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return got
            if not chunk:
                return got
            got += chunk

    def is_closed_by_server(self, timeout: float = 0.2) -> bool:
        try:
            self.wait_closed(timeout)
            return True
        except WireTimeout:
            return False

    def close(self) -> None:
        """Close the TCP socket abruptly (no closeSession)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- handshake -----------------------------------------------------------------------------------

    def handshake(self, timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = b"\x00" * 16,
                  last_zxid: int = 0, read_only: Optional[bool] = False) -> ConnectResponse:
        self.send_frame(connect_request(timeout_ms, session_id, passwd, last_zxid, read_only))
        payload = self.read_frame()
        r = Reader(payload)
        proto = r.int()
        to = r.int()
        sid = r.long()
        pw = r.buffer() or b""
        ro: Optional[bool] = None
        if r.remaining() >= 1:
            ro = r.bool()
        if not r.at_end():
            raise DecodeError(f"{r.remaining()} trailing bytes in ConnectResponse {payload!r}")
        resp = ConnectResponse(proto, to, sid, pw, ro, payload)
        self.connect_response = resp
        self.session_id, self.passwd, self.negotiated_timeout = sid, pw, to
        return resp

    # -- requests ------------------------------------------------------------------------------------

    def next_xid(self) -> int:
        self._xid = (self._xid % 2147483647) + 1
        return self._xid

    def send(self, op: int, body: bytes = b"", xid: Optional[int] = None) -> int:
        if xid is None:
            xid = self.next_xid()
        self.send_frame(struct.pack(">ii", xid, op) + body)
        return xid

    def _parse(self, payload: bytes):
        if len(payload) < 16:
            raise DecodeError(f"short reply frame {payload!r}")
        xid, zxid, err = struct.unpack(">iqi", payload[:16])
        body = payload[16:]
        if xid == NOTIFICATION_XID:
            r = Reader(body)
            ev = WatchEvent(r.int(), r.int(), r.ustring(), zxid, payload)
            if not r.at_end():
                raise DecodeError(f"trailing bytes in notification {payload!r}")
            return ev
        return Reply(xid, zxid, err, body, payload)

    def read_any(self, timeout: Optional[float] = -1.0):
        """Read the next frame: a WatchEvent or a Reply (body not decoded)."""
        item = self._parse(self.read_frame(timeout))
        self.frames.append(item)
        if isinstance(item, WatchEvent):
            self.pending_events.append(item)
        elif item.zxid > 0:
            self.last_zxid = max(self.last_zxid, item.zxid)
        return item

    def read_reply(self, xid: int, op: Optional[int] = None, timeout: Optional[float] = -1.0) -> Reply:
        """Read frames until the reply with ``xid``; notifications seen on the way go into reply.events."""
        while True:
            item = self.read_any(timeout)
            if isinstance(item, WatchEvent):
                continue
            if item.xid != xid:
                raise AssertionError(f"reply out of order: expected xid {xid}, got {item!r}")
            item.op = op
            item.events = self.pending_events
            self.pending_events = []
            if item.err == 0:
                item.value = decode_body(op, item.body)
            return item

    def wait_event(self, timeout: float = 5.0) -> WatchEvent:
        """Return the next notification (already received, or the next frame, which must be one)."""
        if self.pending_events:
            return self.pending_events.pop(0)
        item = self.read_any(timeout)
        if not isinstance(item, WatchEvent):
            raise AssertionError(f"expected a notification, got {item!r}")
        self.pending_events.remove(item)
        return item

    def take_events(self) -> List[WatchEvent]:
        ev, self.pending_events = self.pending_events, []
        return ev

    def request(self, op: int, body: bytes = b"", xid: Optional[int] = None,
                timeout: Optional[float] = -1.0) -> Reply:
        x = self.send(op, body, xid)
        return self.read_reply(x, op, timeout)

    # -- operations ----------------------------------------------------------------------------------

    def create(self, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0) -> Reply:
        return self.request(Op.CREATE, create_body(path, data, acl, flags))

    def create2(self, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0) -> Reply:
        return self.request(Op.CREATE2, create_body(path, data, acl, flags))

    def create_container(self, path, data=b"", acl=OPEN_ACL_UNSAFE) -> Reply:
        return self.request(Op.CREATE_CONTAINER, create_body(path, data, acl, CreateFlags.CONTAINER))

    def create_ttl(self, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=CreateFlags.PERSISTENT_WITH_TTL,
                   ttl=60000) -> Reply:
        return self.request(Op.CREATE_TTL, create_ttl_body(path, data, acl, flags, ttl))

    def delete(self, path, version=-1) -> Reply:
        return self.request(Op.DELETE, path_version_body(path, version))

    def exists(self, path, watch=False) -> Reply:
        return self.request(Op.EXISTS, path_watch_body(path, watch))

    def get_data(self, path, watch=False) -> Reply:
        return self.request(Op.GET_DATA, path_watch_body(path, watch))

    def set_data(self, path, data, version=-1) -> Reply:
        return self.request(Op.SET_DATA, set_data_body(path, data, version))

    def get_acl(self, path) -> Reply:
        return self.request(Op.GET_ACL, path_body(path))

    def set_acl(self, path, acl, version=-1) -> Reply:
        return self.request(Op.SET_ACL, set_acl_body(path, acl, version))

    def get_children(self, path, watch=False) -> Reply:
        return self.request(Op.GET_CHILDREN, path_watch_body(path, watch))

    def get_children2(self, path, watch=False) -> Reply:
        return self.request(Op.GET_CHILDREN2, path_watch_body(path, watch))

    def sync(self, path) -> Reply:
        return self.request(Op.SYNC, path_body(path))

    def multi(self, ops: Sequence[MultiOp]) -> Reply:
        return self.request(Op.MULTI, multi_body(ops))

    def multi_read(self, ops: Sequence[MultiOp]) -> Reply:
        return self.request(Op.MULTI_READ, multi_body(ops))

    def get_ephemerals(self, prefix="/") -> Reply:
        return self.request(Op.GET_EPHEMERALS, path_body(prefix))

    def get_all_children_number(self, path) -> Reply:
        return self.request(Op.GET_ALL_CHILDREN_NUMBER, path_body(path))

    def add_watch(self, path, mode=AddWatchMode.PERSISTENT) -> Reply:
        return self.request(Op.ADD_WATCH, Writer().ustring(path).int(mode).getvalue())

    def remove_watches(self, path, watcher_type) -> Reply:
        return self.request(Op.REMOVE_WATCHES, Writer().ustring(path).int(watcher_type).getvalue())

    def who_am_i(self) -> Reply:
        return self.request(Op.WHO_AM_I)

    def ping(self) -> Reply:
        return self.request(Op.PING, b"", xid=PING_XID)

    def auth(self, scheme: str, auth: bytes) -> Reply:
        body = Writer().int(0).ustring(scheme).buffer(auth).getvalue()
        return self.request(Op.AUTH, body, xid=AUTH_XID)

    def add_digest(self, user: str, password: str) -> Reply:
        return self.auth("digest", f"{user}:{password}".encode())

    def close_session(self) -> Reply:
        return self.request(Op.CLOSE_SESSION)

    def set_watches(self, relative_zxid: int, data=(), exist=(), child=()) -> Reply:
        """SetWatches (101) with xid -8, as clients send it after a reconnect; notifications the server
        sends for changes after ``relative_zxid`` arrive in reply.events when they precede the reply."""
        return self.request(Op.SET_WATCHES, set_watches_body(relative_zxid, data, exist, child),
                            xid=SET_WATCHES_XID)

    def set_watches2(self, relative_zxid: int, data=(), exist=(), child=(), persistent=(),
                     persistent_recursive=()) -> Reply:
        """SetWatches2 (105) with xid -8: also re-registers persistent and persistent-recursive watches."""
        return self.request(Op.SET_WATCHES2, set_watches2_body(relative_zxid, data, exist, child, persistent,
                                                               persistent_recursive), xid=SET_WATCHES_XID)


# ---------------------------------------------------------------------------------------------------------
# Helpers

def digest_id(user: str, password: str) -> str:
    """The digest scheme id for user:password (user:base64(sha1(user:password)))."""
    import base64
    import hashlib
    h = base64.b64encode(hashlib.sha1(f"{user}:{password}".encode()).digest()).decode()
    return f"{user}:{h}"


def four_letter(host: str, port: int, cmd: str, timeout: float = 5.0) -> str:
    """Send a four-letter word and return the text until the server closes the connection."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
    return out.decode("utf-8", "replace")
