#!/usr/bin/env python3
"""Captures reply frames from a real Apache ZooKeeper 3.8 (Debian package) into replies.txt.

Each line is `name opcode hex-payload`: the payload of one server frame (without the 4-byte length) as
ZooKeeper sent it. `host/proto/tests/golden.rs` decodes each with wazoo-proto and re-encodes it, which
must give the same bytes. Re-run with `python3 host/proto/tests/golden/capture.py` (needs the test
dependencies: scripts/install-test-deps.sh).
"""
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests" / "python"))
import harness  # noqa: E402
import zkwire  # noqa: E402
from zkwire import Op, MultiOp, CreateFlags  # noqa: E402

OUT = Path(__file__).with_name("replies.txt")


def main() -> None:
    lines = []
    with tempfile.TemporaryDirectory() as d:
        srv = harness.ServerProcess("zookeeper", Path(d))
        srv.start()
        try:
            c = zkwire.Conn("127.0.0.1", srv.port)
            lines.append(("connect_response", 0, c.connect_response.raw))

            def cap(name, op, body=b"", xid=None):
                xid = c.send(op, body, xid=xid)
                while True:
                    payload = c.read_frame()
                    hdr = zkwire.Reader(payload)
                    rxid = hdr.int()
                    if rxid == -1:
                        lines.append((name + "_notification", 0, payload))
                        continue
                    assert rxid == xid, (rxid, xid)
                    lines.append((name, op, payload))
                    return

            cap("create", Op.CREATE, zkwire.create_body("/g", b"data"))
            cap("create2", Op.CREATE2, zkwire.create_body("/g/c", None))
            cap("create_exists_error", Op.CREATE, zkwire.create_body("/g", b""))
            cap("create_seq_ephemeral", Op.CREATE2,
                zkwire.create_body("/g/s-", b"x", flags=CreateFlags.EPHEMERAL_SEQUENTIAL))
            cap("create_container", Op.CREATE_CONTAINER,
                zkwire.create_body("/cont", b"", flags=CreateFlags.CONTAINER))
            cap("create_ttl", Op.CREATE_TTL,
                zkwire.create_ttl_body("/ttl", b"t", zkwire.OPEN_ACL_UNSAFE, CreateFlags.PERSISTENT_WITH_TTL, 60000))
            cap("exists_watch", Op.EXISTS, zkwire.path_watch_body("/g", True))
            cap("exists_missing", Op.EXISTS, zkwire.path_watch_body("/none", False))
            cap("get_data_null", Op.GET_DATA, zkwire.path_watch_body("/g/c", False))
            cap("get_data", Op.GET_DATA, zkwire.path_watch_body("/g", True))
            cap("set_data", Op.SET_DATA, zkwire.set_data_body("/g", b"v2", 0))
            cap("set_data_bad_version", Op.SET_DATA, zkwire.set_data_body("/g", b"v3", 7))
            cap("get_acl", Op.GET_ACL, zkwire.path_body("/zookeeper/config"))
            cap("set_acl", Op.SET_ACL, zkwire.set_acl_body("/g/c", [(zkwire.Perm.READ | zkwire.Perm.WRITE, "world", "anyone")], -1))
            cap("get_children", Op.GET_CHILDREN, zkwire.path_watch_body("/zookeeper", False))
            cap("get_children2", Op.GET_CHILDREN2, zkwire.path_watch_body("/g", True))
            cap("sync", Op.SYNC, zkwire.path_body("/g"))
            cap("multi_ok", Op.MULTI, zkwire.multi_body([
                MultiOp.create("/m"), MultiOp.create2("/m/a"), MultiOp.set_data("/m", b"1"),
                MultiOp.check("/m", 1), MultiOp.delete("/m/a")]))
            cap("multi_failed", Op.MULTI, zkwire.multi_body([
                MultiOp.create("/m2"), MultiOp.delete("/missing"), MultiOp.set_data("/m", b"x")]))
            cap("multi_empty", Op.MULTI, zkwire.multi_body([]))
            cap("multi_read", Op.MULTI_READ, zkwire.multi_body([
                MultiOp.get_data("/g"), MultiOp.get_children("/missing"), MultiOp.get_children("/m")]))
            cap("add_watch", Op.ADD_WATCH, zkwire.Writer().ustring("/g").int(1).getvalue())
            cap("get_ephemerals", Op.GET_EPHEMERALS, zkwire.path_body("/"))
            cap("get_all_children_number", Op.GET_ALL_CHILDREN_NUMBER, zkwire.path_body("/"))
            cap("who_am_i", Op.WHO_AM_I)
            cap("delete_with_watchers", Op.DELETE, zkwire.path_version_body("/g/c", -1))
            cap("ping", Op.PING, xid=-2)
            c.close()
        finally:
            srv.stop()
    with OUT.open("w") as f:
        f.write("# name opcode payload-hex: frames captured from Apache ZooKeeper 3.8.0 (Debian) by capture.py\n")
        for name, op, payload in lines:
            f.write(f"{name} {op} {payload.hex()}\n")
    print(f"wrote {len(lines)} frames to {OUT}")


if __name__ == "__main__":
    main()
