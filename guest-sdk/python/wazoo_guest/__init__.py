"""wazoo_guest for Python: write a wazoo recipe in Python (componentize-py), the twin of the Rust
crate in ``guest-sdk/``. A recipe is a function from a :class:`Call` to an outcome made by
:func:`done` or :func:`park`; raising :class:`Abort` (or a tree error) aborts the call, and nothing
it staged is written. Arguments, outputs, abort messages and parked state are MessagePack, so the
same clients call a Python recipe and its Rust twin alike.

The app module of a recipe::

    import wazoo_guest
    from wazoo_guest import tree, done

    def run(call):
        if call.op != "hello":
            raise wazoo_guest.Abort(f"no op {call.op}")
        return done({"text": "hello, " + call.args["name"]})

    Runner = wazoo_guest.runner(run)

and its build (``guest-sdk/README.md``)::

    componentize-py -d wit -w recipe componentize -p guest-sdk/python -p . app -o hello.wasm
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import runner as _runner
from wit_world.imports import context
from wit_world.imports import tree as _tree
from wit_world.imports.types import (
    CreateMode,
    ErrorCode,
    Watch_ChildrenChanged,
    Watch_DataChanged,
    Watch_NodeCreated,
    Watch_NodeDeleted,
)

from .mpack import packb, unpackb
from .names import name_of, sequence, sort_by_sequence

Reason = _runner.Reason

__all__ = [
    "Abort", "TreeError", "Call", "Reason", "CreateMode", "ErrorCode", "done", "park", "runner",
    "dispatch",
    "tree", "holds", "context", "session_prefix", "sequence", "sort_by_sequence", "name_of",
    "node_created", "node_deleted", "data_changed", "children_changed", "held", "gave_up",
    "packb", "unpackb",
]


class Abort(Exception):
    """Ends the call with this message as the client's error (a MessagePack string)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = str(message)


class TreeError(Abort):
    """A tree access failed with a ZooKeeper error: ``code`` is an :class:`ErrorCode`, the
    message its WIT name (``no-node``), as the Rust SDK's abort says it."""

    def __init__(self, code):
        super().__init__(code.name.lower().replace("_", "-"))
        self.code = code


_REQUIRED = object()


class Call:
    """One run of a recipe: the client's call, or a re-run of a parked one."""

    def __init__(self, inv):
        self.op = inv.op
        self.reason = inv.reason
        self.raw_args = inv.args
        self._deadline_ms = None
        self._state = None
        self._parked = inv.state is not None
        if self._parked:
            try:
                kept = unpackb(inv.state)
                self._deadline_ms = kept["deadline_ms"]
                self._state = unpackb(kept["state"])
            except (ValueError, KeyError, TypeError) as e:
                raise Abort(f"{self.op}: parked state: {e}") from None
        try:
            self.args = unpackb(inv.args) if inv.args else {}
        except ValueError as e:
            raise Abort(f"{self.op}: arguments: {e}") from None
        if not isinstance(self.args, dict):
            raise Abort(f"{self.op}: arguments: not a map")

    def arg(self, name, default=_REQUIRED, kind=None):
        """The argument `name` (`default` if absent or nil; without a default, an abort); an
        abort if it is not a `kind`."""
        v = self.args.get(name)
        if v is None:
            if default is _REQUIRED:
                raise Abort(f"{self.op}: arguments: missing field `{name}`")
            return default
        if kind is not None and not isinstance(v, kind) or isinstance(v, bool) and kind is int:
            raise Abort(f"{self.op}: arguments: {name} is not {getattr(kind, '__name__', kind)}")
        return v

    @property
    def state(self):
        """What the call parked with (:func:`park`); None on the first run."""
        return self._state

    @property
    def is_initial(self):
        """True on the client's own call (not a re-run of a parked one)."""
        return self.reason == Reason.INITIAL

    def deadline_ms(self, timeout_ms):
        """The deadline (leader ms) of a wait of `timeout_ms` (None or 0: none): fixed by the
        first run and kept by :func:`park` across re-runs."""
        if self._parked:
            return self._deadline_ms
        if not timeout_ms or timeout_ms <= 0:
            return None
        return context.now_ms() + int(timeout_ms)


def done(output):
    """Commit the staged writes; the client gets `output` (MessagePack)."""
    return _runner.Outcome_Commit(packb(output))


def park(on, deadline_ms, state=None):
    """Commit the staged writes and wait until one of the watches `on` fires or `deadline_ms`
    passes; the call then runs again (reason WOKEN — maybe spuriously, so re-check — or
    TIMED_OUT) with `state`."""
    kept = packb({"deadline_ms": deadline_ms, "state": packb(state)})
    return _runner.Outcome_CommitAndPark(_runner.Park(list(on), deadline_ms, kept))


def node_created(path):
    return Watch_NodeCreated(path)


def node_deleted(path):
    return Watch_NodeDeleted(path)


def data_changed(path):
    return Watch_DataChanged(path)


def children_changed(path):
    return Watch_ChildrenChanged(path)


def dispatch(ops):
    """A recipe function that runs ``ops[call.op](call)``, aborting ``no op <op>`` for others:
    ``Runner = wazoo_guest.runner(wazoo_guest.dispatch({"acquire": acquire, ...}))``."""

    def run(call):
        op = ops.get(call.op)
        if op is None:
            raise Abort(f"no op {call.op}")
        return op(call)

    return run


def runner(fn):
    """The component's export: ``Runner = wazoo_guest.runner(run)`` in the app module."""

    class Runner(exports.Runner):
        def run(self, inv):
            try:
                return fn(Call(inv))
            except Abort as e:
                return _runner.Outcome_Abort(packb(e.message))
            except Exception as e:  # noqa: BLE001 - a recipe's bug aborts its call only
                return _runner.Outcome_Abort(packb(f"{type(e).__name__}: {e}"))

    return Runner


def session_prefix():
    """The calling session as 16 hex digits and a dash: the prefix of the nodes a recipe names
    after their session (``<session>-<sequence>``), so a re-run finds its own."""
    return f"{context.session_id() & 0xFFFF_FFFF_FFFF_FFFF:016x}-"


def _tree_call(f, *args):
    try:
        return f(*args)
    except Err as e:
        raise TreeError(e.value) from None


def _unless_no_node(f, path, missing):
    """`f(path)`, or `missing` if there is no node at `path`."""
    try:
        return _tree_call(f, path)
    except TreeError as e:
        if e.code == ErrorCode.NO_NODE:
            return missing
        raise


class _Tree:
    """The tree as of the call plus the call's staged writes. Writes are staged: they commit
    with the run's outcome and vanish with an abort. Failures raise :class:`TreeError`."""

    @staticmethod
    def get(path):
        """(data, stat) of the node at `path`."""
        return _tree_call(_tree.get, path)

    @staticmethod
    def get_opt(path):
        """(data, stat), or None if there is no node at `path`."""
        return _unless_no_node(_tree.get, path, None)

    @staticmethod
    def exists(path):
        """The stat of `path`, or None."""
        return _tree.exists(path)

    @staticmethod
    def children(path):
        """The children's names, sorted by name."""
        return _tree_call(_tree.children, path)

    @staticmethod
    def children_or_none(path):
        """The children's names, or [] if `path` does not exist."""
        return _unless_no_node(_tree.children, path, [])

    @staticmethod
    def queue(path):
        """The children in the order they were created (:func:`sort_by_sequence`), or [] if
        `path` does not exist: the waiters of a lock."""
        names = _Tree.children_or_none(path)
        sort_by_sequence(names)
        return names

    @staticmethod
    def create(path, data=b"", mode=CreateMode.PERSISTENT):
        """Stages a create; the path created (with a sequential node's suffix)."""
        return _tree_call(_tree.create, path, bytes(data), mode)

    @staticmethod
    def set(path, data, version=None):
        """Stages a setData (`version`: the expected one, None: any); the new stat."""
        return _tree_call(_tree.set, path, bytes(data), version)

    @staticmethod
    def delete(path, version=None):
        """Stages a delete (`version`: the expected one, None: any)."""
        _tree_call(_tree.delete, path, version)

    @staticmethod
    def check(path, version):
        """Stages a check that `path` is at `version`."""
        _tree_call(_tree.check, path, version)

    @staticmethod
    def ensure(path, mode=CreateMode.CONTAINER):
        """Stages `path` and any missing ancestors as `mode` nodes; whether it was missing."""
        if _tree.exists(path) is not None:
            return False
        cut = path.rfind("/")
        if cut > 0:
            _Tree.ensure(path[:cut], mode)
        try:
            _tree_call(_tree.create, path, b"", mode)
        except TreeError as e:
            if e.code != ErrorCode.NODE_EXISTS:
                raise
        return True


tree = _Tree()


class _Holds:
    """Reentrant holds kept in a waiter node's data: 8 little-endian bytes (a node without
    them counts one), the layout the Rust SDK's ``holds`` uses."""

    ONE = (1).to_bytes(8, "little")

    @staticmethod
    def _count(path):
        data, _ = tree.get(path)
        return int.from_bytes(data, "little") if len(data) == 8 else 1

    def add_one(self, path):
        """Stages one more hold of the node at `path`."""
        tree.set(path, (self._count(path) + 1).to_bytes(8, "little"))

    def release_one(self, path):
        """Stages one hold fewer, deleting the node at the last; the holds left."""
        left = self._count(path) - 1
        if left > 0:
            tree.set(path, left.to_bytes(8, "little"))
        else:
            tree.delete(path)
        return left


holds = _Holds()


def held(node):
    """A lock-like acquire's output while held through the waiter node `node`."""
    return done({"acquired": True, "node": node})


def gave_up(node):
    """A lock-like acquire's output after its wait timed out: the waiter `node` is deleted."""
    tree.delete(node)
    return done({"acquired": False, "node": None})
