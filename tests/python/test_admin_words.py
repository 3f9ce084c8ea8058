"""Four-letter words that report the data directory: `dirs` and `conf` give the sizes of the data and
txn log directories (ZooKeeper: its snapshot and log directories), and they grow with writes.
Runs against either target.
"""

import re


def sizes(srv) -> tuple[int, int]:
    out = srv.four_letter("dirs")
    data = re.search(r"^datadir_size: (\d+)$", out, re.M)
    log = re.search(r"^logdir_size: (\d+)$", out, re.M)
    assert data and log, out
    return int(data.group(1)), int(log.group(1))


def test_dirs_and_conf_report_directory_sizes_that_grow_with_writes(server_factory, kazoo_factory):
    srv = server_factory()
    zk = kazoo_factory(srv)
    zk.ensure_path("/dirs")
    _, log_before = sizes(srv)
    assert log_before > 0
    for i in range(200):
        zk.create(f"/dirs/n{i:04d}", b"x" * 1000)
    # The log grows by what was written (wazoo's segments are preallocated: then it is already
    # at least that large).
    data_after, log_after = sizes(srv)
    assert log_after >= 200 * 1000, (log_before, log_after)
    assert data_after > 0
    conf = srv.four_letter("conf")
    data_conf = re.search(r"^dataDirSize=(\d+)$", conf, re.M)
    log_conf = re.search(r"^dataLogSize=(\d+)$", conf, re.M)
    assert data_conf and log_conf, conf
    assert int(data_conf.group(1)) > 0 and int(log_conf.group(1)) >= log_after, conf
