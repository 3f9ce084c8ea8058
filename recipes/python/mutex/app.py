"""The mutex recipe in Python: the twin of recipes/mutex (Rust), same layout, same ops, same
outputs, so the same clients and tests drive either.

The lock at a path is a container whose children are the waiters, one ephemeral sequential node
per session named ``<session id, 16 hex digits>-<sequence>``: the holder is the lowest sequence.
A waiter parks until its predecessor's node is deleted, so a release wakes exactly one waiter.
Re-acquiring by the holding session counts (8 little-endian bytes of the node's data).

- ``acquire {path, timeout_ms?}`` -> ``{acquired: true, node}``, or after the timeout
  ``{acquired: false}`` (the waiter is gone then).
- ``release {path}`` -> ``{held}``: the holds the session still has; abort ``not held``.
"""

import wazoo_guest
from wazoo_guest import Abort, CreateMode, Reason, holds, name_of, session_prefix, tree


def acquire(call):
    lock = call.arg("path", kind=str)
    mine = session_prefix()
    waiters = tree.queue(lock)
    existing = next((n for n in waiters if n.startswith(mine)), None)
    if existing is not None:
        own = existing
    elif call.is_initial:
        tree.ensure(lock, CreateMode.CONTAINER)
        created = tree.create(f"{lock}/{mine}", holds.ONE, CreateMode.EPHEMERAL_SEQUENTIAL)
        own = name_of(created)
        waiters.append(own)
    else:
        # A re-run whose waiter is gone: its session lost it.
        raise Abort("the waiter is gone")
    own_path = f"{lock}/{own}"
    at = waiters.index(own)
    if at == 0:
        if existing is not None and call.is_initial:
            holds.add_one(own_path)  # the session holds it already: one more hold
        return wazoo_guest.held(own_path)
    if call.reason == Reason.TIMED_OUT:
        return wazoo_guest.gave_up(own_path)
    before = wazoo_guest.node_deleted(f"{lock}/{waiters[at - 1]}")
    return wazoo_guest.park([before], call.deadline_ms(call.arg("timeout_ms", None, int)))


def release(call):
    lock = call.arg("path", kind=str)
    waiters = tree.queue(lock)
    if not waiters or not waiters[0].startswith(session_prefix()):
        raise Abort("not held")
    return wazoo_guest.done({"held": holds.release_one(f"{lock}/{waiters[0]}")})


Runner = wazoo_guest.runner(wazoo_guest.dispatch({"acquire": acquire, "release": release}))
