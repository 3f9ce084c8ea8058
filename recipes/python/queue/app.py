"""The queue recipe in Python: the twin of recipes/queue (Rust), same layout, ops and outputs.
A FIFO queue with priorities and exactly-once take; a take is one call that waits on the server.

Under the queue's path (a container):
- ``item-<priority + 2**31, 10 digits>-<sequence>``: the items (persistent sequential, the data).
- ``claims/<item>``: an ephemeral node per taken item, owned by the taker's session; if that
  session ends the claim goes with it and the item is taken again.
- ``takers/<session>-<sequence>``: the waiting takers; the first parks on changes of the items
  and claims, each later one on its predecessor's deletion.

- ``put {path, data, priority?}`` -> ``{item}``
- ``take {path, timeout_ms?, consume?}`` -> ``{item, data}``, or after the timeout ``{item: nil}``
- ``consume {path, item}`` -> ``{consumed: true}``; abort ``not taken by this session``
- ``give_back {path, item}`` -> ``{given_back: true}``; abort ``not taken by this session``
- ``size {path}`` -> ``{items, taken}``
"""

import wazoo_guest
from wazoo_guest import Abort, CreateMode, ErrorCode, Reason, TreeError, context, name_of
from wazoo_guest import session_prefix, tree


def put(call):
    queue = call.arg("path", kind=str)
    data = call.arg("data", b"", kind=bytes)
    priority = call.arg("priority", 0, kind=int)
    if not -(1 << 31) <= priority < 1 << 31:
        raise Abort("put: arguments: priority is not an i32")
    tree.ensure(queue, CreateMode.CONTAINER)
    created = tree.create(f"{queue}/item-{priority + (1 << 31):010}-", data,
                          CreateMode.PERSISTENT_SEQUENTIAL)
    return wazoo_guest.done({"item": name_of(created)})


def items(queue):
    """The items in queue order and the set of those claimed."""
    names = sorted(n for n in tree.children_or_none(queue) if n.startswith("item-"))
    return names, set(tree.children_or_none(f"{queue}/claims"))


def take_first(queue, consume):
    """Claims (or consumes) the first item not taken: {item, data}, or None."""
    names, claims = items(queue)
    item = next((i for i in names if i not in claims), None)
    if item is None:
        return None
    path = f"{queue}/{item}"
    data, _ = tree.get(path)
    if consume:
        tree.delete(path)
    else:
        tree.ensure(f"{queue}/claims", CreateMode.CONTAINER)
        tree.create(f"{queue}/claims/{item}", b"", CreateMode.EPHEMERAL)
    return {"item": item, "data": data}


def take(call):
    queue = call.arg("path", kind=str)
    consume = call.arg("consume", False, kind=bool)
    takers_dir = f"{queue}/takers"
    takers = tree.queue(takers_dir)
    if call.state is not None:
        own = call.state["taker"]
        if own not in takers:
            raise Abort("the taker is gone")
    else:
        # A session's calls run one at a time: a taker of the session on a first run is a lost
        # call's (the connection dropped), and this retry takes its place.
        own = next((n for n in takers if n.startswith(session_prefix())), None)
    first = takers[0] == own if own is not None else not takers
    if first:
        taken = take_first(queue, consume)
        if taken is not None:
            if own is not None:
                tree.delete(f"{takers_dir}/{own}")  # hands the front to the next taker
            return wazoo_guest.done(taken)
    if call.reason == Reason.TIMED_OUT:
        if own is not None:
            tree.delete(f"{takers_dir}/{own}")
        return wazoo_guest.done({"item": None, "data": b""})
    if own is None:
        tree.ensure(takers_dir, CreateMode.CONTAINER)
        own = name_of(tree.create(f"{takers_dir}/{session_prefix()}", b"",
                                  CreateMode.EPHEMERAL_SEQUENTIAL))
        takers.append(own)
    at = takers.index(own)
    if at == 0:
        on = [wazoo_guest.children_changed(queue),
              wazoo_guest.children_changed(f"{queue}/claims")]
    else:
        on = [wazoo_guest.node_deleted(f"{takers_dir}/{takers[at - 1]}")]
    deadline = call.deadline_ms(call.arg("timeout_ms", None, int))
    return wazoo_guest.park(on, deadline, {"taker": own})


def own_claim(call):
    """The claim of the call's item if the calling session holds it: (queue, item, claim)."""
    queue = call.arg("path", kind=str)
    item = name_of(call.arg("item", kind=str))
    claim = f"{queue}/claims/{item}"
    stat = tree.exists(claim)
    if stat is None or stat.ephemeral_owner != context.session_id():
        raise Abort("not taken by this session")
    return queue, item, claim


def consume(call):
    queue, item, claim = own_claim(call)
    tree.delete(claim)
    try:
        tree.delete(f"{queue}/{item}")
    except TreeError as e:
        if e.code == ErrorCode.NO_NODE:
            raise Abort("the item is gone") from None
        raise
    return wazoo_guest.done({"consumed": True})


def give_back(call):
    _, _, claim = own_claim(call)
    tree.delete(claim)
    return wazoo_guest.done({"given_back": True})


def size(call):
    names, claims = items(call.arg("path", kind=str))
    return wazoo_guest.done({"items": len(names), "taken": sum(1 for i in names if i in claims)})


OPS = {"put": put, "take": take, "consume": consume, "give_back": give_back, "size": size}
Runner = wazoo_guest.runner(wazoo_guest.dispatch(OPS))
