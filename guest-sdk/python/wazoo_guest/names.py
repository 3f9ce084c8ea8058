"""Names of sequential nodes, as the Rust SDK reads them (pure: importable outside a component)."""


def sequence(name):
    """The sequence ZooKeeper appended to a sequential node's name (its last ten digits)."""
    tail = name[-10:]
    if len(tail) == 10 and tail.isascii() and tail.isdigit():
        return int(tail)
    return None


def sort_by_sequence(names):
    """Sorts sequential nodes' names in place by sequence (names without one last, by name)."""
    big = 1 << 64
    names.sort(key=lambda n: (sequence(n) if sequence(n) is not None else big, n))


def name_of(path):
    """The last path segment."""
    return path.rsplit("/", 1)[-1]
