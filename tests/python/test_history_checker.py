"""The history checker of the ensemble fault scenarios (history.py) catches what it claims to:
each test builds a small history by hand with one anomaly in it, and one valid history of the
same shapes passes. No server is involved."""

import math

import history
from history import FAIL, OK, UNKNOWN, Event, Final

K = "/h/k0"


def w(kind, value, version, t0, t1, outcome=OK, expect=-1, client=1, session=1, err=0):
    return Event(client=client, session=session, kind=kind, key=K, invoke=t0, complete=t1,
                 value=value, version=version, outcome=outcome, expect=expect, err=err)


def r(value, version, t0, t1, kind="sync_read", client=2, session=2):
    return Event(client=client, session=session, kind=kind, key=K, invoke=t0, complete=t1,
                 read_value=value, version=version, outcome=OK)


def finals(value, version, created=(), ephemerals=()):
    f = Final({K: (value, version)}, set(created), set(ephemerals))
    return {"m1": f, "m2": Final(dict(f.keys), set(created), set(ephemerals))}


def violations(events, fin):
    return history.check(events, fin, [K])


def test_a_valid_history_passes():
    events = [
        w("set", b"a", 1, 0.0, 1.0),
        r(b"a", 1, 1.5, 2.0),
        w("cas", b"b", 2, 2.5, 3.0, expect=1),
        w("set", b"c", 3, 3.1, math.inf, outcome=UNKNOWN),   # took effect: read later
        r(b"c", 3, 4.0, 4.5),
        r(b"a", 1, 0.5, 1.2, kind="read", client=3, session=3),   # concurrent with the set
        w("cas", b"d", -1, 5.0, 5.5, outcome=FAIL, expect=1, err=-103),  # version was 3
        Event(client=1, session=1, kind="create", key="/h/c/x", invoke=6.0, complete=6.5, outcome=OK),
    ]
    assert violations(events, finals(b"c", 3, created={"/h/c/x"})) == []


def test_a_lost_acknowledged_write_is_caught():
    events = [w("set", b"a", 1, 0.0, 1.0), w("set", b"b", 2, 1.0, 2.0)]
    v = violations(events, finals(b"a", 1))
    assert any("acknowledged writes lost" in x for x in v), v


def test_a_stale_sync_read_is_caught():
    events = [w("set", b"a", 1, 0.0, 1.0), w("set", b"b", 2, 1.1, 2.0), r(b"a", 1, 2.5, 3.0)]
    v = violations(events, finals(b"b", 2))
    assert any("sync+read" in x and "behind" in x for x in v), v


def test_a_plain_read_may_lag_but_a_session_never_goes_back():
    events = [w("set", b"a", 1, 0.0, 1.0), w("set", b"b", 2, 1.1, 2.0),
              r(b"b", 2, 2.5, 3.0, kind="read"), r(b"a", 1, 3.5, 4.0, kind="read")]
    v = violations(events, finals(b"b", 2))
    assert any("went back" in x for x in v), v
    # The same stale read from another session is allowed (no sync before it).
    events[-1] = r(b"a", 1, 3.5, 4.0, kind="read", client=9, session=9)
    assert violations(events, finals(b"b", 2)) == []


def test_a_session_misses_its_own_write():
    events = [w("set", b"a", 1, 0.0, 1.0, session=5), r(b"init", 0, 1.5, 2.0, kind="read", session=5)]
    v = violations(events, finals(b"a", 1))
    assert any("went back" in x for x in v), v


def test_reading_a_refused_write_or_a_value_nobody_wrote_is_caught():
    events = [w("set", b"a", -1, 0.0, 1.0, outcome=FAIL, err=-101), r(b"a", 1, 1.5, 2.0)]
    v = violations(events, finals(b"a", 1))
    assert any("refused" in x for x in v), v
    v = violations([r(b"zzz", 1, 1.5, 2.0)], finals(b"init", 0))
    assert any("nobody wrote" in x for x in v), v


def test_two_acknowledged_writes_with_one_version_and_a_bad_cas_are_caught():
    events = [w("set", b"a", 1, 0.0, 1.0), w("set", b"b", 1, 0.5, 1.5)]
    v = violations(events, finals(b"b", 2))
    assert any("two acknowledged writes made version 1" in x for x in v), v
    events = [w("set", b"a", 1, 0.0, 1.0), w("cas", b"b", 3, 1.5, 2.0, expect=1)]
    v = violations(events, finals(b"b", 3))
    assert any("compare-and-set on version 1 made version 3" in x for x in v), v


def test_writes_out_of_real_time_order_are_caught():
    events = [w("set", b"a", 2, 0.0, 1.0), w("set", b"b", 1, 1.5, 2.0)]
    v = violations(events, finals(b"a", 2))
    assert any("acknowledged write" in x and "behind" in x for x in v), v


def test_a_read_from_the_future_is_caught():
    events = [r(b"a", 1, 0.0, 0.5), w("set", b"a", 1, 1.0, 2.0)]
    v = violations(events, finals(b"a", 1))
    assert any("invoked after the read completed" in x for x in v), v


def test_a_cas_refused_while_the_version_matched_is_caught():
    events = [w("set", b"a", 1, 0.0, 1.0), w("cas", b"b", -1, 1.5, 2.0, outcome=FAIL, expect=1, err=-103)]
    v = violations(events, finals(b"a", 1))
    assert any("refused while the version was 1" in x for x in v), v


def test_diverged_members_lost_creates_and_leftover_ephemerals_are_caught():
    create = Event(client=1, session=1, kind="create", key="/h/c/x", invoke=0.0, complete=1.0, outcome=OK)
    fin = finals(b"init", 0, created={"/h/c/x"})
    fin["m2"].created = set()
    v = violations([create], fin)
    assert any("disagree on the created nodes" in x for x in v), v
    assert any("acknowledged create lost on m2" in x for x in v), v
    v = violations([create], finals(b"init", 0, created={"/h/c/x"}, ephemerals={"c1-1"}))
    assert any("ephemerals left" in x for x in v), v
    fin = finals(b"init", 0, created={"/h/c/x"})
    fin["m2"].keys = {K: (b"init", 1)}
    v = violations([create], fin)
    assert any("members disagree" in x for x in v), v
