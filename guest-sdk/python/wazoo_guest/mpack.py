"""MessagePack for recipes written in Python: the subset wazoo's clients send and read (nil,
booleans, integers to 64 bits, floats, str, bin, arrays, maps), in pure Python so that it runs
inside the component (componentize-py bundles CPython, not PyPI's C extension).

``packb`` writes the smallest encoding of each value, as msgpack-python does with
``use_bin_type=True``: ``bytes`` become bin, ``str`` becomes str. ``unpackb`` reads every
encoding of those types (ext types are refused) and returns str for str, bytes for bin.
"""

import struct

__all__ = ["packb", "unpackb", "FormatError"]


class FormatError(ValueError):
    """The bytes are not one MessagePack value of the supported types."""


def packb(value):
    out = bytearray()
    _pack(value, out)
    return bytes(out)


def _pack(v, out):
    if v is None:
        out.append(0xC0)
    elif v is True:
        out.append(0xC3)
    elif v is False:
        out.append(0xC2)
    elif isinstance(v, int):
        _pack_int(v, out)
    elif isinstance(v, float):
        out.append(0xCB)
        out += struct.pack(">d", v)
    elif isinstance(v, str):
        b = v.encode("utf-8")
        n = len(b)
        if n < 32:
            out.append(0xA0 | n)
        else:
            _pack_len(n, out, 0xD9, 0xDA, 0xDB)
        out += b
    elif isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        _pack_len(len(b), out, 0xC4, 0xC5, 0xC6)
        out += b
    elif isinstance(v, (list, tuple)):
        n = len(v)
        if n < 16:
            out.append(0x90 | n)
        else:
            _pack_len(n, out, None, 0xDC, 0xDD)
        for x in v:
            _pack(x, out)
    elif isinstance(v, dict):
        n = len(v)
        if n < 16:
            out.append(0x80 | n)
        else:
            _pack_len(n, out, None, 0xDE, 0xDF)
        for k, x in v.items():
            _pack(k, out)
            _pack(x, out)
    else:
        raise TypeError(f"cannot pack {type(v).__name__}")


def _pack_len(n, out, m8, m16, m32):
    if m8 is not None and n < 1 << 8:
        out += bytes([m8, n])
    elif n < 1 << 16:
        out.append(m16)
        out += struct.pack(">H", n)
    elif n < 1 << 32:
        out.append(m32)
        out += struct.pack(">I", n)
    else:
        raise ValueError("too long for MessagePack")


def _pack_int(v, out):
    if 0 <= v < 128:
        out.append(v)
    elif -32 <= v < 0:
        out.append(v & 0xFF)
    elif v >= 0:
        for marker, fmt, limit in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16),
                                   (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):
            if v < limit:
                out.append(marker)
                out += struct.pack(fmt, v)
                return
        raise OverflowError("integer above 2**64 - 1")
    else:
        for marker, fmt, limit in ((0xD0, ">b", 1 << 7), (0xD1, ">h", 1 << 15),
                                   (0xD2, ">i", 1 << 31), (0xD3, ">q", 1 << 63)):
            if v >= -limit:
                out.append(marker)
                out += struct.pack(fmt, v)
                return
        raise OverflowError("integer below -2**63")


def unpackb(data):
    data = bytes(data)
    value, at = _unpack(data, 0)
    if at != len(data):
        raise FormatError(f"{len(data) - at} bytes after the value")
    return value


# Fixed-size scalars: marker -> (struct format, size).
_SCALARS = {
    0xCA: (">f", 4), 0xCB: (">d", 8),
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
}
# Length-prefixed: marker -> (kind, struct format of the length, its size).
_SIZED = {
    0xC4: ("bin", ">B", 1), 0xC5: ("bin", ">H", 2), 0xC6: ("bin", ">I", 4),
    0xD9: ("str", ">B", 1), 0xDA: ("str", ">H", 2), 0xDB: ("str", ">I", 4),
    0xDC: ("array", ">H", 2), 0xDD: ("array", ">I", 4),
    0xDE: ("map", ">H", 2), 0xDF: ("map", ">I", 4),
}


def _take(data, at, n):
    if at + n > len(data):
        raise FormatError("truncated")
    return data[at:at + n], at + n


def _unpack(data, at):
    b, at = _take(data, at, 1)
    m = b[0]
    if m < 0x80:
        return m, at
    if m >= 0xE0:
        return m - 0x100, at
    if m <= 0x8F:
        return _items(data, at, m & 0x0F, "map")
    if m <= 0x9F:
        return _items(data, at, m & 0x0F, "array")
    if m <= 0xBF:
        raw, at = _take(data, at, m & 0x1F)
        return _text(raw), at
    if m == 0xC0:
        return None, at
    if m == 0xC2:
        return False, at
    if m == 0xC3:
        return True, at
    if m in _SCALARS:
        fmt, size = _SCALARS[m]
        raw, at = _take(data, at, size)
        return struct.unpack(fmt, raw)[0], at
    if m in _SIZED:
        kind, fmt, size = _SIZED[m]
        raw, at = _take(data, at, size)
        n = struct.unpack(fmt, raw)[0]
        if kind in ("array", "map"):
            return _items(data, at, n, kind)
        raw, at = _take(data, at, n)
        return (bytes(raw) if kind == "bin" else _text(raw)), at
    raise FormatError(f"unsupported marker 0x{m:02x}")


def _text(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"str is not UTF-8: {e}") from None


def _items(data, at, n, kind):
    if n > len(data) - at:
        # Every item takes at least one byte: a count past the end is a lie, not a reason to
        # build a huge list.
        raise FormatError("truncated")
    if kind == "array":
        items = []
        for _ in range(n):
            v, at = _unpack(data, at)
            items.append(v)
        return items, at
    mapping = {}
    for _ in range(n):
        k, at = _unpack(data, at)
        v, at = _unpack(data, at)
        try:
            mapping[k] = v
        except TypeError:
            raise FormatError("unhashable map key") from None
    return mapping, at
