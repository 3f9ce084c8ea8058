"""Call wazoo's server-side recipes from kazoo (docs/recipes.md, "Wire").

A recipe call is one request (opcode 1000) on the kazoo client's own session, in order with its
other requests. Arguments and outputs are MessagePack (what the guest SDK decodes and encodes):
``recipe_call`` packs a dict and returns the unpacked output, or raises RecipeAborted with what
the recipe said, or one of wazoo's error codes as a kazoo exception. Each built-in recipe has a
wrapper here: Counter, Lock, Semaphore, ReadWriteLock, LeaderLatch, Barrier, DoubleBarrier,
Queue. Every acquire, wait, enter and take is one call that waits on the server.
"""

import uuid
from collections import namedtuple

import msgpack

from kazoo.exceptions import EXCEPTIONS, ZookeeperError
from kazoo.protocol.serialization import int_struct, read_buffer, write_buffer, write_string

__all__ = [
    "Barrier",
    "Counter",
    "DoubleBarrier",
    "LeaderLatch",
    "Lock",
    "NoRecipeError",
    "Queue",
    "ReadWriteLock",
    "RecipeAborted",
    "RecipeConflictError",
    "RecipeFailedError",
    "Semaphore",
    "recipe_call",
    "recipe_call_async",
    "recipe_call_raw",
]

RECIPE_CALL = 1000


class NoRecipeError(ZookeeperError):
    """No recipe of that name is loaded (NORECIPE, -1001)."""

    code = -1001


class RecipeFailedError(ZookeeperError):
    """The recipe trapped, ran out of fuel, broke a limit or returned too much (RECIPEFAILED)."""

    code = -1002


class RecipeConflictError(ZookeeperError):
    """What the recipe read kept changing while it ran (RECIPECONFLICT, -1003)."""

    code = -1003


# kazoo raises RuntimeError on a code it does not know, in its connection thread.
for _klass in (NoRecipeError, RecipeFailedError, RecipeConflictError):
    EXCEPTIONS[_klass.code] = _klass


class RecipeAborted(Exception):
    """The recipe aborted: nothing it staged was written; `error` is what it said (a str from a
    recipe built with the guest SDK, else bytes)."""

    def __init__(self, error):
        super().__init__(error)
        self.error = error


class _RecipeCall(namedtuple("RecipeCall", "recipe op args request_id")):
    type = RECIPE_CALL

    def serialize(self):
        b = bytearray()
        b.extend(write_string(self.recipe))
        b.extend(write_string(self.op))
        b.extend(write_buffer(self.args))
        b.extend(write_string(self.request_id))
        return b

    @classmethod
    def deserialize(cls, bytes, offset):
        aborted = int_struct.unpack_from(bytes, offset)[0]
        output, _ = read_buffer(bytes, offset + int_struct.size)
        return bool(aborted), output or b""


def _pack(args):
    if isinstance(args, (bytes, bytearray)):
        return bytes(args)
    return msgpack.packb(args, use_bin_type=True)


def _unpack(output):
    try:
        return msgpack.unpackb(output, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return output


def recipe_call_async(client, recipe, op, args=b"", request_id=""):
    """Starts a call with `args` (a dict, packed as MessagePack, or bytes sent as they are);
    kazoo's async result yields (aborted, output bytes)."""
    result = client.handler.async_result()
    client._call(_RecipeCall(recipe, op, _pack(args), request_id), result)
    return result


def recipe_call_raw(client, recipe, op, args=b"", request_id=""):
    """Calls `recipe`'s `op`; returns the output bytes."""
    aborted, output = recipe_call_async(client, recipe, op, args, request_id).get()
    if aborted:
        raise RecipeAborted(_unpack(output))
    return output


def recipe_call(client, recipe, op, args=None, request_id=""):
    """Calls `recipe`'s `op` with `args` (a dict); returns the output, unpacked."""
    return _unpack(recipe_call_raw(client, recipe, op, {} if args is None else args, request_id))


def _ms(timeout):
    """Seconds (None: no limit) as a recipe's `timeout_ms`."""
    return None if timeout is None else max(1, int(timeout * 1000))


def _with_timeout(args, timeout):
    if timeout is not None:
        args["timeout_ms"] = _ms(timeout)
    return args


class _Recipe:
    recipe = ""

    def __init__(self, client, path, recipe=None):
        """`recipe`: the name of the recipe to call, if not the built-in's (a twin loaded under
        another name, or a version of your own)."""
        self.client = client
        self.path = path
        if recipe is not None:
            self.recipe = recipe

    def _call(self, op, timeout=None, **args):
        """One call, retried after a lost connection (kazoo's retry policy) under one request
        id: while the session lives, the server answers a retry with the call's own result or
        hands it the call still waiting, so nothing happens twice (docs/recipes.md)."""
        args["path"] = self.path
        args = _with_timeout(args, timeout)
        request_id = uuid.uuid4().hex
        return self.client.retry(recipe_call, self.client, self.recipe, op, args, request_id)


    def _call_async(self, op, timeout=None, **args):
        args["path"] = self.path
        return recipe_call_async(self.client, self.recipe, op, _with_timeout(args, timeout))


class Counter(_Recipe):
    """The built-in counter: an atomic add on the server, one round trip. The node holds the
    value as 8 little-endian bytes."""

    recipe = "counter"

    def add(self, delta=1):
        """Adds `delta` (created at it the first time; the parent must exist); returns the new
        value."""
        return self._call("add", delta=delta)

    def wait_async(self, target, timeout=None):
        """Starts a wait for the counter to reach `target`; kazoo's async result yields
        (aborted, output bytes)."""
        return self._call_async("wait", timeout, target=target)

    def wait(self, target, timeout=None):
        """Returns the counter's value once it is at least `target`: one call that waits on the
        server. Raises RecipeAborted("timed out") after `timeout` seconds."""
        return self._call("wait", timeout, target=target)


class Lock(_Recipe):
    """The built-in mutex: a fair lock whose acquire is one call that waits on the server (no
    herd: a release wakes only the next waiter). Reentrant per session: each acquire by the
    holding session needs a release. The waiter is an ephemeral node: a session that ends
    releases."""

    recipe = "mutex"

    def acquire(self, timeout=None):
        """Waits for the lock; True once held, False after `timeout` seconds (None: no limit)."""
        return self._call("acquire", timeout)["acquired"]

    def release(self):
        """Gives one hold back; raises RecipeAborted("not held") if the session holds none."""
        return self._call("release")["held"]

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class Semaphore(_Recipe):
    """The built-in semaphore: `permits` leases at a path (stored with it: every client must
    name the same count), each acquire one call that waits on the server, in arrival order. A
    session's end gives its leases back."""

    recipe = "semaphore"

    def __init__(self, client, path, permits):
        super().__init__(client, path)
        self.permits = permits

    def acquire(self, timeout=None):
        """Waits for a lease; its node path once held, None after `timeout` seconds."""
        out = self._call("acquire", timeout, permits=self.permits)
        return out["node"] if out["acquired"] else None

    def release(self, lease=None):
        """Gives back `lease` (a path `acquire` returned), or the session's oldest."""
        args = {} if lease is None else {"node": lease}
        return self._call("release", **args)["released"]

    def leases(self):
        """{"permits", "holders", "waiting"}: the lease nodes' names."""
        return self._call("leases")


class _RwSide:
    def __init__(self, lock, mode):
        self.lock = lock
        self.mode = mode

    def acquire(self, timeout=None):
        """Waits for the lock in this mode; True once held, False after `timeout` seconds."""
        return self.lock._call("acquire", timeout, mode=self.mode)["acquired"]

    def release(self):
        """Gives one hold in this mode back; the holds left."""
        return self.lock._call("release", mode=self.mode)["held"]

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class ReadWriteLock(_Recipe):
    """The built-in read-write lock: `read_lock` is shared, `write_lock` exclusive, granted in
    arrival order (a waiting writer keeps later readers out). Reentrant per session and mode; a
    writer may also take the read lock (downgrade), not the other way round."""

    recipe = "rwlock"

    def __init__(self, client, path):
        super().__init__(client, path)
        self.read_lock = _RwSide(self, "read")
        self.write_lock = _RwSide(self, "write")


class LeaderLatch(_Recipe):
    """The built-in leader latch (election): the oldest candidate at a path leads, one at a
    time; a session's end hands leadership on."""

    recipe = "latch"

    def __init__(self, client, path, identifier=""):
        super().__init__(client, path)
        self.identifier = identifier

    def join(self):
        """Becomes a candidate without waiting; True if it leads."""
        return self._call("join", id=self.identifier)["leader"]

    def await_leadership(self, timeout=None):
        """Joins if need be and waits until it leads; False after `timeout` seconds (still a
        candidate then)."""
        return self._call("await", timeout, id=self.identifier)["leader"]

    def leader(self):
        """(id, node) of the current leader, or None."""
        out = self._call("leader")
        return None if out is None else (out["id"], out["node"])

    def leave(self):
        """Stops being a candidate; True if it was the leader."""
        return self._call("leave")["was_leader"]


class Barrier(_Recipe):
    """The built-in barrier: waiters pass once it is removed."""

    recipe = "barrier"

    def create(self):
        """Puts the barrier up; False if it was up already."""
        return self._call("set")["set"]

    def remove(self):
        """Takes it down, releasing every waiter; False if it was not up."""
        return self._call("remove")["removed"]

    def wait(self, timeout=None):
        """Returns True once the barrier is down, False after `timeout` seconds."""
        return self._call("wait", timeout)["passed"]


class DoubleBarrier(_Recipe):
    """The built-in double barrier: `enter` returns once `count` sessions have entered, `leave`
    once all of them have left."""

    recipe = "double-barrier"

    def __init__(self, client, path, count):
        super().__init__(client, path)
        self.count = count

    def enter(self, timeout=None):
        """True once `count` have entered; False after `timeout` seconds (no longer in then)."""
        return self._call("enter", timeout, count=self.count)["entered"]

    def leave(self, timeout=None):
        """True once every participant has left; False after `timeout` seconds."""
        return self._call("leave", timeout)["left"]


class Queue(_Recipe):
    """The built-in queue: FIFO within a priority (lower first), exactly-once take. A taken item
    belongs to the taker's session until it consumes it or gives it back; if the session ends
    first, the item goes back to the queue."""

    recipe = "queue"

    def put(self, data, priority=0):
        """Adds `data` (bytes); the item's name."""
        return self._call("put", data=bytes(data), priority=priority)["item"]

    def take(self, timeout=None):
        """Waits for an item and claims it: (item, data), or None after `timeout` seconds.
        Follow with consume(item) or give_back(item)."""
        out = self._call("take", timeout)
        return None if out["item"] is None else (out["item"], out["data"])

    def get(self, timeout=None):
        """Takes and removes an item in one txn (at most once: no claim); its data, or None
        after `timeout` seconds."""
        out = self._call("take", timeout, consume=True)
        return None if out["item"] is None else out["data"]

    def consume(self, item):
        """Removes a taken item for good."""
        return self._call("consume", item=item)["consumed"]

    def give_back(self, item):
        """Returns a taken item to the queue."""
        return self._call("give_back", item=item)["given_back"]

    def size(self):
        """{"items": all items, "taken": those claimed}."""
        return self._call("size")
