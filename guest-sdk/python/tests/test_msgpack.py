"""The Python guest SDK's MessagePack codec against msgpack-python (the clients' codec): every
value the clients send or read encodes to the same bytes and decodes back; truncated or lying input
is a FormatError, never a huge allocation. The pure name helpers match the Rust SDK's tests."""

import random
import sys
from pathlib import Path

import msgpack
import pytest

# The pure modules alone: the package itself imports the component's bindings.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wazoo_guest"))

import mpack as guest  # noqa: E402
from names import name_of, sequence, sort_by_sequence  # noqa: E402

EDGES = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63,
    0.5, -1e300, "", "a" * 31, "a" * 32, "é" * 200, "x" * 70000, b"", b"\x00" * 300, b"y" * 70000,
    [], list(range(15)), list(range(16)), list(range(70000)), {}, {str(i): i for i in range(15)},
    {str(i): i for i in range(16)}, {"path": "/q", "data": b"\xff", "priority": -3, "nested": [{}]},
]


def random_value(rng, depth=0):
    kind = rng.randrange(8 if depth < 3 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-2**63, 2**64 - 1) if rng.random() < 0.3 else rng.randint(-300, 70000)
    if kind == 2:
        return rng.uniform(-1e9, 1e9)
    if kind == 3:
        return "".join(rng.choice("abcé/-0") for _ in range(rng.choice([0, 5, 31, 32, 300])))
    if kind == 4:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 7, 256, 300])))
    if kind == 5:
        return rng.randint(-40, 200)
    if kind == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.choice([0, 3, 15, 16, 20]))]
    return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.choice([0, 2, 15, 16, 17]))}


@pytest.mark.parametrize("value", EDGES, ids=lambda v: repr(v)[:30])
def test_edge_values_encode_as_msgpack_python_does_and_decode_back(value):
    want = msgpack.packb(value, use_bin_type=True)
    assert guest.packb(value) == want
    assert guest.unpackb(want) == msgpack.unpackb(want, raw=False, strict_map_key=False)


def test_random_values_round_trip_both_ways():
    rng = random.Random(11)
    for _ in range(500):
        v = random_value(rng)
        ours = guest.packb(v)
        assert ours == msgpack.packb(v, use_bin_type=True)
        assert guest.unpackb(ours) == msgpack.unpackb(ours, raw=False, strict_map_key=False)


def test_float32_and_non_minimal_encodings_decode():
    assert guest.unpackb(b"\xca\x3f\x80\x00\x00") == 1.0
    assert guest.unpackb(b"\xcd\x00\x05") == 5
    assert guest.unpackb(b"\xd9\x01a") == "a"
    assert guest.unpackb(b"\xde\x00\x01\xa1k\xc0") == {"k": None}


@pytest.mark.parametrize("bad", [
    b"", b"\x92\x01", b"\xdd\xff\xff\xff\xff", b"\xdf\x7f\xff\xff\xff\x01", b"\xc6\x00\x10\x00\x00",
    b"\xa3ab", b"\xc1", b"\xd4\x01\x02", b"\x01\x02", b"\xa2\xff\xfe", b"\x81\x90\x01",
])
def test_truncated_lying_or_unsupported_input_is_a_format_error(bad):
    with pytest.raises(guest.FormatError):
        guest.unpackb(bad)


def test_values_out_of_range_or_of_other_types_are_refused():
    for bad in (2**64, -2**63 - 1, object(), {1, 2}):
        with pytest.raises((OverflowError, TypeError)):
            guest.packb(bad)


def test_sequences_and_names_read_as_the_rust_sdk_reads_them():
    assert sequence("00000000000000ab-0000000042") == 42
    assert sequence("read-0000000007") == 7
    assert sequence("lock") is None
    assert sequence("x-00000000a1") is None
    names = ["write-0000000003", "read-0000000001", "b-0000000002", "zz"]
    sort_by_sequence(names)
    assert names == ["read-0000000001", "b-0000000002", "write-0000000003", "zz"]
    assert name_of("/a/b-0000000001") == "b-0000000001"
