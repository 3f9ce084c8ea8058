"""Four-letter words that report the data directory: `dirs` and `conf` give the sizes of the data and
txn log directories (ZooKeeper: its snapshot and log directories). The reported numbers must be the
sizes of the files actually on disk, measured by the test the way each server defines them, before and
after writes. Runs against either target.

What each server reports:
  wazoo      datadir_size = the regular files directly in the data dir (RocksDB's files),
             logdir_size  = the regular files in <dataDir>/txnlog (the log segments, preallocated);
  ZooKeeper  both sizes   = every file under <dataDir>/version-2 (here dataDir == dataLogDir, and
             ZooKeeper sums its snapshot dir and its txn log dir recursively).
Sizes are apparent sizes (st_size), which is what both servers sum.
"""

import os
import re
from pathlib import Path

import harness


def reported(srv) -> tuple[int, int]:
    out = srv.four_letter("dirs")
    data = re.search(r"^datadir_size: (\d+)$", out, re.M)
    log = re.search(r"^logdir_size: (\d+)$", out, re.M)
    assert data and log, out
    return int(data.group(1)), int(log.group(1))


def reported_conf(srv) -> tuple[int, int]:
    conf = srv.four_letter("conf")
    data = re.search(r"^dataDirSize=(\d+)$", conf, re.M)
    log = re.search(r"^dataLogSize=(\d+)$", conf, re.M)
    assert data and log, conf
    return int(data.group(1)), int(log.group(1))


def _files_in(d: Path) -> int:
    return sum(n for _, n in harness.files_in(d))


def _files_under(d: Path) -> int:
    return sum((Path(root) / f).stat().st_size for root, _, files in os.walk(d) for f in files)


def measured(srv) -> tuple[int, int]:
    if srv.kind == "wazoo":
        return _files_in(srv.data_dir), _files_in(srv.data_dir / "txnlog")
    total = _files_under(srv.data_dir / "version-2")
    return total, total


def assert_reports_match_disk(srv, ask) -> tuple[int, int]:
    """``ask(srv)`` must equal the on-disk sizes. Background work (a RocksDB flush, the next log segment
    being prepared) may change the files while we look, so a comparison only counts when the disk was the
    same just before and just after the report; that must happen within a few tries."""
    seen = []

    def matches():
        before = measured(srv)
        rep = ask(srv)
        after = measured(srv)
        seen.append((before, rep, after))
        return rep if before == rep == after else None

    try:
        return harness.wait_until(matches, timeout=10, interval=0.2, what="reported sizes to match the disk")
    except AssertionError:
        raise AssertionError("reported (data, log) sizes never matched the files on disk; last tries "
                             f"(measured before, reported, measured after): {seen[-5:]}") from None


def test_dirs_and_conf_report_the_sizes_of_the_files_on_disk(server_factory, kazoo_factory):
    srv = server_factory()
    zk = kazoo_factory(srv)
    zk.ensure_path("/dirs")
    data0, log0 = assert_reports_match_disk(srv, reported)
    assert log0 > 0 and data0 > 0
    for i in range(200):
        zk.create(f"/dirs/n{i:04d}", b"x" * 1000)
    data1, log1 = assert_reports_match_disk(srv, reported)
    # The log holds at least the 200 kB just written (logs are preallocated: it may already have).
    assert log1 >= 200 * 1000 and data1 > 0, (log0, log1)
    assert_reports_match_disk(srv, reported_conf)
    # A server restarted on the same data dir reports the same files.
    zk.stop()
    srv.restart()
    assert_reports_match_disk(srv, reported)
    assert_reports_match_disk(srv, reported_conf)
