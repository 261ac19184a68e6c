"""Byte-level binary FBX decoder: bytes -> a tree of `FbxNode` (the inverse of ``encode.py``).

Used by the dump tool and the tests; it reads any binary FBX 7.x (32-bit and 64-bit node headers).
Arrays come back as numpy arrays, ``L`` as `Int64`, ``F`` as `Float32`, ``Y`` as `Int16`, so
``encode_fbx(decode_fbx(data))`` reproduces ``data`` for files this package wrote.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import DTypeLike

from mocapd.formats.fbx.encode import HEAD_MAGIC, FbxNode, Float32, Int16, Int64, PropValue

__all__ = ["FbxFormatError", "decode_fbx", "fbx_version"]

_ARRAY_DTYPES: dict[bytes, DTypeLike] = {b"b": np.bool_, b"i": "<i4", b"l": "<i8", b"f": "<f4", b"d": "<f8"}


class FbxFormatError(ValueError):
    """The bytes are not a well-formed binary FBX file."""


def fbx_version(data: bytes) -> int:
    if not data.startswith(HEAD_MAGIC) or len(data) < 27:
        raise FbxFormatError("not a binary FBX file (bad header magic)")
    return int(struct.unpack_from("<I", data, 23)[0])


def decode_fbx(data: bytes) -> tuple[int, list[FbxNode]]:
    """(version, top-level nodes) of a binary FBX file."""
    version = fbx_version(data)
    header = struct.Struct("<3Q" if version >= 7500 else "<3I")
    nodes: list[FbxNode] = []
    offset = 27
    while True:
        node, offset = _read_node(data, offset, header)
        if node is None:
            return version, nodes
        nodes.append(node)


def _read_node(data: bytes, offset: int, header: struct.Struct) -> tuple[FbxNode | None, int]:
    try:
        end, num_props, _props_len = header.unpack_from(data, offset)
    except struct.error as exc:
        raise FbxFormatError(f"truncated node header at byte {offset}") from exc
    name_len = data[offset + header.size]
    pos = offset + header.size + 1
    if end == 0:
        return None, pos  # null record: end of a node list
    if end > len(data) or end <= offset:
        raise FbxFormatError(f"bad end offset {end} for the node at byte {offset}")
    name = data[pos : pos + name_len].decode("ascii")
    pos += name_len
    props: list[PropValue] = []
    for _ in range(num_props):
        value, pos = _read_property(data, pos)
        props.append(value)
    node = FbxNode(name, props)
    while pos < end:
        child, pos = _read_node(data, pos, header)
        if child is None:
            break
        node.children.append(child)
    if pos != end:
        raise FbxFormatError(f"node {name!r} ends at byte {pos}, its header says {end}")
    return node, end


def _read_property(data: bytes, pos: int) -> tuple[PropValue, int]:
    code = data[pos : pos + 1]
    pos += 1
    if code == b"C":
        return bool(data[pos]), pos + 1
    if code == b"Y":
        return Int16(struct.unpack_from("<h", data, pos)[0]), pos + 2
    if code == b"I":
        return int(struct.unpack_from("<i", data, pos)[0]), pos + 4
    if code == b"L":
        return Int64(struct.unpack_from("<q", data, pos)[0]), pos + 8
    if code == b"F":
        return Float32(struct.unpack_from("<f", data, pos)[0]), pos + 4
    if code == b"D":
        return float(struct.unpack_from("<d", data, pos)[0]), pos + 8
    if code in (b"S", b"R"):
        (length,) = struct.unpack_from("<I", data, pos)
        raw = data[pos + 4 : pos + 4 + length]
        value: PropValue = raw.decode("utf-8", errors="surrogateescape") if code == b"S" else bytes(raw)
        return value, pos + 4 + length
    if code in _ARRAY_DTYPES:
        count, encoding, length = struct.unpack_from("<3I", data, pos)
        raw = data[pos + 12 : pos + 12 + length]
        if encoding == 1:
            raw = zlib.decompress(raw)
        elif encoding != 0:
            raise FbxFormatError(f"unknown array encoding {encoding}")
        arr = np.frombuffer(raw, dtype=_ARRAY_DTYPES[code], count=count)
        return arr.astype(arr.dtype.newbyteorder("=")), pos + 12 + length
    raise FbxFormatError(f"unknown property type {code!r} at byte {pos - 1}")
