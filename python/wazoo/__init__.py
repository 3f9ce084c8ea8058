"""Call wazoo's server-side recipes from kazoo (docs/recipes.md, "Wire").

A recipe call is one request (opcode 1000) on the kazoo client's own session, in order with its
other requests. It returns the recipe's output bytes, or raises RecipeAborted with the recipe's
error bytes, or one of wazoo's error codes as a kazoo exception.
"""

import struct
from collections import namedtuple

from kazoo.exceptions import EXCEPTIONS, ZookeeperError
from kazoo.protocol.serialization import int_struct, read_buffer, write_buffer, write_string

__all__ = [
    "Counter",
    "Lock",
    "NoRecipeError",
    "RecipeAborted",
    "RecipeConflictError",
    "RecipeFailedError",
    "recipe_call",
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
    """The recipe aborted: nothing it staged was written; `error` is what it said."""

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


def recipe_call_async(client, recipe, op, args=b"", request_id=""):
    """Starts a call; kazoo's async result yields (aborted, output)."""
    result = client.handler.async_result()
    client._call(_RecipeCall(recipe, op, bytes(args), request_id), result)
    return result


def recipe_call(client, recipe, op, args=b"", request_id=""):
    """Calls `recipe`'s `op` with `args` (bytes); returns the output bytes."""
    aborted, output = recipe_call_async(client, recipe, op, args, request_id).get()
    if aborted:
        raise RecipeAborted(output)
    return output


class Counter:
    """The built-in counter recipe: an atomic add on the server, one round trip."""

    def __init__(self, client, path):
        self.client = client
        self.path = path

    def add(self, delta=1):
        """Adds `delta` (created at it the first time); returns the new value."""
        args = struct.pack("<q", delta) + self.path.encode()
        out = recipe_call(self.client, "counter", "add", args)
        return struct.unpack("<q", out)[0]

    def wait_async(self, target, timeout_ms=0):
        """Starts a wait for the counter to reach `target`; kazoo's async result yields
        (aborted, output)."""
        args = struct.pack("<qq", target, timeout_ms) + self.path.encode()
        return recipe_call_async(self.client, "counter", "wait", args)

    def wait(self, target, timeout_ms=0):
        """Returns the counter's value once it is at least `target`: the call waits on the
        server, one round trip. Raises RecipeAborted(b"timed out") after `timeout_ms` (0: never).
        """
        aborted, out = self.wait_async(target, timeout_ms).get()
        if aborted:
            raise RecipeAborted(out)
        return struct.unpack("<q", out)[0]


class Lock:
    """The built-in mutex recipe: a fair lock whose acquire is one call that waits on the server
    (no herd: a release wakes only the next waiter). Reentrant per session: each acquire by the
    holding session needs a release. The waiter is an ephemeral node: a session that ends
    releases."""

    def __init__(self, client, path):
        self.client = client
        self.path = path

    def acquire(self, timeout=None):
        """Waits for the lock; True once held, False after `timeout` seconds (None: no limit)."""
        ms = 0 if timeout is None else max(1, int(timeout * 1000))
        out = recipe_call(self.client, "mutex", "acquire", struct.pack("<q", ms) + self.path.encode())
        return out.startswith(b"acquired")

    def release(self):
        """Gives one hold back; raises RecipeAborted(b"not held") if the session holds none."""
        recipe_call(self.client, "mutex", "release", self.path.encode())

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
