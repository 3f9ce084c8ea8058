"""A damaged txn log never costs an acknowledged write silently (wazoo only: the segment format is wazoo's).

- A torn final group commit (the last segment ends inside a commit whose fsync never returned) is cut: the
  server starts and every acknowledged znode is there.
- Damage anywhere else (a zeroed page in the middle of the log, a flipped byte in an old commit) stops the
  server at startup with a non-zero exit and an error line naming the segment file and the byte offset.

The segment layout (host/disk/src/frame.rs): a 16-byte file header, then commit frames, each a 40-byte
header (magic b"WZCF", kind u32, body length u64 at offset 8, ...) followed by its body.
"""

import re
import struct

import pytest

from harness import ServerDied

FILE_HEADER = 16
FRAME_HEADER = 40
PAGE = 4096
NODES = 40


@pytest.fixture
def wazoo_only(target):
    if target != "wazoo":
        pytest.skip("the txn log segment format is wazoo's")


def populate(srv, kazoo_factory):
    """Creates NODES znodes one request (one commit) at a time; returns their paths, all acknowledged."""
    zk = kazoo_factory(srv)
    zk.ensure_path("/dmg")
    paths = []
    for i in range(NODES):
        p = f"/dmg/n{i:03d}"
        zk.create(p, bytes([i]) * 300)
        paths.append(p)
    return zk, paths


def segment(srv):
    segs = sorted(p for p in (srv.data_dir / "txnlog").iterdir() if re.fullmatch(r"log\.[0-9a-f]{16}", p.name))
    assert len(segs) == 1, segs
    return segs[0]


def commits(path):
    """(start, end) of every commit frame of a segment file."""
    data = path.read_bytes()
    out, at = [], FILE_HEADER
    while at + FRAME_HEADER <= len(data) and data[at:at + 4] == b"WZCF":
        kind, length = struct.unpack_from("<IQ", data, at + 4)
        if kind != 1:
            break
        out.append((at, at + FRAME_HEADER + length))
        at += FRAME_HEADER + length
    return out


def assert_refuses_to_start(srv, path, offset):
    with pytest.raises(ServerDied):
        srv.start(timeout=20)
    srv.expected_exit = True  # the refusal is the point: not a death for the teardown to report
    assert srv.proc.returncode != 0
    log = srv.log_bytes().decode(errors="replace")
    lines = [ln for ln in log.splitlines() if str(path) in ln and f"offset {offset}" in ln]
    assert lines, f"no error line names {path} at offset {offset}:\n{srv.log_tail(20)}"


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "graceful"])
def test_torn_final_commit_is_cut_and_every_acknowledged_znode_survives(
        wazoo_only, wazoo_server_factory, kazoo_factory, kill):
    srv = wazoo_server_factory()
    zk, paths = populate(srv, kazoo_factory)
    if kill:
        srv.kill()
    else:
        zk.stop()
        srv.stop()
    seg = segment(srv)
    frames = commits(seg)
    start, end = frames[-1]
    # A torn write of the next group commit: the segment ends half way into a copy of the last commit
    # (header intact, body cut short). Its fsync never returned, so nothing in it was acknowledged.
    data = seg.read_bytes()
    torn = data[start:end][:(end - start) // 2]
    with open(seg, "r+b") as f:
        f.seek(end)
        f.write(torn)
        f.truncate(end + len(torn))
    srv.start()
    zk2 = kazoo_factory(srv)
    for i, p in enumerate(paths):
        value, _ = zk2.get(p)
        assert value == bytes([i]) * 300, p
    # The log goes on after the cut, and survives another restart.
    zk2.create("/dmg/after", b"x")
    srv.restart(kill=True)
    zk3 = kazoo_factory(srv)
    assert zk3.exists("/dmg/after")
    assert len(zk3.get_children("/dmg")) == NODES + 1


def test_zeroed_page_in_the_middle_of_the_log_refuses_to_start(wazoo_only, wazoo_server_factory,
                                                               kazoo_factory):
    srv = wazoo_server_factory()
    populate(srv, kazoo_factory)
    srv.kill()
    seg = segment(srv)
    frames = commits(seg)
    assert frames[-1][1] > 3 * PAGE, frames[-1]
    with open(seg, "r+b") as f:
        f.seek(PAGE)
        f.write(bytes(PAGE))
    # The commit holding the page's first byte is where the log stops checking out.
    bad = next(s for s, e in frames if s <= PAGE < e)
    assert_refuses_to_start(srv, seg, bad)


def test_flipped_byte_in_an_old_commit_refuses_to_start(wazoo_only, wazoo_server_factory, kazoo_factory):
    srv = wazoo_server_factory()
    zk, _ = populate(srv, kazoo_factory)
    zk.stop()
    srv.stop()
    seg = segment(srv)
    start, end = commits(seg)[5]
    with open(seg, "r+b") as f:
        f.seek(end - 10)
        b = f.read(1)
        f.seek(end - 10)
        f.write(bytes([b[0] ^ 0x01]))
    assert_refuses_to_start(srv, seg, start)
