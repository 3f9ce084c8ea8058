"""The watch four-letter words list every watch of every session in ZooKeeper's format: ``wchs`` the
counts, ``wchc`` each session's watched paths, ``wchp`` each path's watching sessions. Runs against
either target. wazoo builds the two listings from pieces of at most 1,024 paths (the core answers each
piece between client requests), so the table of thousands below spans several pieces and a session
continued from one piece into the next.

One departure, on purpose: ZooKeeper 3.8 lists only its data-watch table (getData and exists watches)
in all three, so a getChildren watch is missing from its counts and listings; wazoo lists every watch
(README, four-letter words). The expectations below say which is which.
"""

import re

import harness
import zkwire


def sections(text: str) -> dict:
    """``head\\n\\titem\\n...`` blocks as {head: set(items)}."""
    out, head = {}, None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("\t"):
            out[head].add(line.strip())
        else:
            head = line.strip()
            out[head] = set()
    return out


def hexid(session: int) -> str:
    return f"0x{session:x}"


def test_wchs_wchc_and_wchp_list_each_session_s_watches(server_factory, kazoo_factory):
    srv = server_factory()
    a, b = kazoo_factory(srv), kazoo_factory(srv)
    a.create("/x", b"")
    a.exists("/x", watch=lambda e: None)
    a.get_children("/x", watch=lambda e: None)
    b.exists("/missing", watch=lambda e: None)
    b.get("/x", watch=lambda e: None)
    sa, sb = hexid(a.client_id[0]), hexid(b.client_id[0])
    counts = srv.four_letter("wchs")
    # a's getChildren watch: counted by wazoo only.
    total = 4 if srv.kind == "wazoo" else 3
    assert re.search(rf"2 connections watching 2 paths\s+Total watches:{total}\s", counts), counts
    assert sections(srv.four_letter("wchc")) == {sa: {"/x"}, sb: {"/missing", "/x"}}
    assert sections(srv.four_letter("wchp")) == {"/x": {sa, sb}, "/missing": {sb}}
    c = kazoo_factory(srv)
    c.get_children("/x", watch=lambda e: None)
    sc = hexid(c.client_id[0])
    listed = sc in sections(srv.four_letter("wchc"))
    assert listed == (srv.kind == "wazoo"), "a session with only a child watch"


def test_thousands_of_watches_of_one_session_are_listed_whole(server_factory, kazoo_factory):
    srv = server_factory()
    n = 3000
    c = zkwire.Conn(harness.HOST, srv.port)
    xids = [c.send(zkwire.Op.EXISTS, zkwire.path_watch_body(f"/w{i:05}", True)) for i in range(n)]
    for x in xids:
        assert c.read_reply(x, zkwire.Op.EXISTS).err == zkwire.Err.NONODE
    other = kazoo_factory(srv)
    other.exists("/w00000", watch=lambda e: None)
    s, so = hexid(c.session_id), hexid(other.client_id[0])
    paths = {f"/w{i:05}" for i in range(n)}
    by_session = sections(srv.four_letter("wchc"))
    assert by_session.keys() == {s, so}
    assert by_session[s] == paths
    assert by_session[so] == {"/w00000"}
    by_path = sections(srv.four_letter("wchp"))
    assert by_path.keys() == paths
    assert by_path["/w00000"] == {s, so}
    assert all(by_path[p] == {s} for p in paths - {"/w00000"})
    assert f"Total watches:{n + 1}" in srv.four_letter("wchs")
    c.close()
