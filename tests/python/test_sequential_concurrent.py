"""Sequential numbering under many concurrent clients: 8 kazoo clients, each on its own session, each
pipelining 50 sequential creates (persistent and ephemeral alternating) under one parent at the same time.
The 400 suffixes are distinct and gap-free (0..399: the suffix is the parent's cversion at the create),
each client's own suffixes increase in the order it sent its requests (one session's requests are applied
in order), and the parent ends with 400 children and cversion 400. Runs against either target.
"""

import threading

CLIENTS = 8
PER_CLIENT = 50


def test_concurrent_sequential_creates_get_distinct_gap_free_suffixes_increasing_per_client(
        kazoo_factory, base):
    clients = [kazoo_factory() for _ in range(CLIENTS)]
    clients[0].create(base)
    start = threading.Barrier(CLIENTS)
    results = [None] * CLIENTS
    errors = []

    def run(i, zk):
        try:
            start.wait(30)
            asyncs = [zk.create_async(f"{base}/c{i}-", b"", sequence=True, ephemeral=bool(n % 2))
                      for n in range(PER_CLIENT)]
            results[i] = [a.get(timeout=60) for a in asyncs]
        except BaseException as e:  # noqa: BLE001
            errors.append((i, e))

    threads = [threading.Thread(target=run, args=(i, zk), daemon=True) for i, zk in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)

    suffixes = []
    for i, paths in enumerate(results):
        assert len(paths) == PER_CLIENT
        mine = []
        for p in paths:
            prefix = f"{base}/c{i}-"
            assert p.startswith(prefix) and len(p) == len(prefix) + 10, p
            mine.append(int(p[len(prefix):]))
        assert mine == sorted(mine) and len(set(mine)) == PER_CLIENT, f"client {i}: {mine}"
        suffixes += mine
    assert sorted(suffixes) == list(range(CLIENTS * PER_CLIENT))

    children = clients[0].get_children(base)
    assert len(children) == CLIENTS * PER_CLIENT
    st = clients[0].exists(base)
    assert (st.numChildren, st.cversion) == (CLIENTS * PER_CLIENT, CLIENTS * PER_CLIENT)
