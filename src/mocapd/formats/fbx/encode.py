"""Byte-level binary FBX encoder: a tree of `FbxNode` -> bytes.

No library writes binary FBX, so mocapd encodes it itself, following the published binary layout
(FBX 7.x, as documented by the Blender and Assimp projects):

* header: ``b"Kaydara FBX Binary  \\x00"``, ``b"\\x1a\\x00"``, uint32 version;
* node record: uint32 end offset (absolute, from the start of the file), uint32 property count,
  uint32 byte length of the property list, uint8 name length, name, properties, then the children
  followed by a 13-byte null record (versions >= 7500 widen the three header fields to uint64 and
  the null record to 25 bytes);
* property: a one-byte type code then the value: ``C`` bool (1 byte), ``Y`` int16, ``I`` int32,
  ``L`` int64, ``F`` float32, ``D`` float64, ``S`` string / ``R`` raw (uint32 length + bytes),
  arrays ``b i l f d`` (uint32 count, uint32 encoding 0 = raw / 1 = zlib, uint32 byte length, data);
* the top-level list ends with a null record, then the footer: a 16-byte id, 4 zero bytes, zero
  padding to a 16-byte boundary (a full 16 when already aligned), uint32 version, 120 zero bytes and a
  16-byte magic.

Output is byte-stable: nothing here depends on the clock, and arrays are compressed with a fixed
zlib level. The scene code (``scene.py``) supplies fixed ids and the fixed creation time.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FBX_VERSION",
    "FbxNode",
    "Float32",
    "Int16",
    "Int64",
    "PropValue",
    "encode_fbx",
    "encode_property",
]

FBX_VERSION = 7400

HEAD_MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"
FOOT_ID = b"\xfa\xbc\xab\x09\xd0\xc8\xd4\x66\xb1\x76\xfb\x83\x1c\xf7\x26\x7e"
FOOT_MAGIC = b"\xf8\x5a\x8c\x6a\xde\xf5\xd9\x7e\xec\xe9\x0c\xe3\x75\x8f\x29\x0b"

# Arrays longer than this many bytes are zlib-compressed (what Autodesk's converter does).
_COMPRESS_ABOVE_BYTES = 128
_ZLIB_LEVEL = 1


class Int16(int):
    """An int written as ``Y`` (int16)."""


class Int64(int):
    """An int written as ``L`` (int64); plain ints are written as ``I`` (int32)."""


class Float32(float):
    """A float written as ``F`` (float32); plain floats are written as ``D`` (float64)."""


PropValue = bool | int | float | str | bytes | NDArray[np.generic]

_ARRAY_CODES: dict[np.dtype[np.generic], bytes] = {
    np.dtype(np.bool_): b"b",
    np.dtype(np.int32): b"i",
    np.dtype(np.int64): b"l",
    np.dtype(np.float32): b"f",
    np.dtype(np.float64): b"d",
}


@dataclass
class FbxNode:
    """One FBX node: a name, a list of typed properties and child nodes."""

    name: str
    props: list[PropValue] = field(default_factory=list)
    children: list[FbxNode] = field(default_factory=list)

    def add(self, name: str, *props: PropValue) -> FbxNode:
        """Append a child node and return it."""
        child = FbxNode(name, list(props))
        self.children.append(child)
        return child

    def find(self, name: str) -> FbxNode | None:
        return next((c for c in self.children if c.name == name), None)


def encode_property(value: PropValue) -> bytes:
    """One property record: type code + payload (see the module doc for the codes)."""
    if isinstance(value, np.ndarray):
        code = _ARRAY_CODES.get(value.dtype)
        if code is None or value.ndim != 1:
            raise TypeError(f"FBX arrays must be 1-D bool/int32/int64/float32/float64, got {value.dtype}")
        raw = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
        encoding = 0
        if len(raw) > _COMPRESS_ABOVE_BYTES:
            raw, encoding = zlib.compress(raw, _ZLIB_LEVEL), 1
        return code + struct.pack("<3I", value.shape[0], encoding, len(raw)) + raw
    if isinstance(value, bool) or isinstance(value, np.bool_):
        return b"C" + struct.pack("<?", bool(value))
    if isinstance(value, Int16):
        return b"Y" + struct.pack("<h", value)
    if isinstance(value, Int64):
        return b"L" + struct.pack("<q", value)
    if isinstance(value, int):
        return b"I" + struct.pack("<i", value)
    if isinstance(value, Float32):
        return b"F" + struct.pack("<f", value)
    if isinstance(value, float):
        return b"D" + struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return b"S" + struct.pack("<I", len(data)) + data
    if isinstance(value, bytes):
        return b"R" + struct.pack("<I", len(value)) + value
    raise TypeError(f"cannot encode {type(value).__name__} as an FBX property")


class _Writer:
    def __init__(self, version: int) -> None:
        self.wide = version >= 7500
        self.header = struct.Struct("<3Q" if self.wide else "<3I")
        self.null_record = b"\0" * (self.header.size + 1)
        self.chunks: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.offset += len(data)

    def node(self, node: FbxNode) -> None:
        name = node.name.encode("ascii")
        if len(name) > 255:
            raise ValueError(f"FBX node name too long: {node.name!r}")
        props = b"".join(encode_property(p) for p in node.props)
        # The end offset is only known after the children are written: reserve, then patch.
        slot = len(self.chunks)
        self.write(b"\0" * self.header.size)
        self.write(bytes((len(name),)) + name + props)
        if node.children:
            for child in node.children:
                self.node(child)
            self.write(self.null_record)
        elif not node.props:
            # An empty node still closes with a null record (as Autodesk's writer does).
            self.write(self.null_record)
        self.chunks[slot] = self.header.pack(self.offset, len(node.props), len(props))


def encode_fbx(nodes: list[FbxNode], version: int = FBX_VERSION) -> bytes:
    """The whole file: header, top-level ``nodes`` with their subtrees, null record, footer."""
    w = _Writer(version)
    w.write(HEAD_MAGIC + struct.pack("<I", version))
    for node in nodes:
        w.node(node)
    w.write(w.null_record)
    w.write(FOOT_ID + b"\0" * 4)
    pad = 16 - (w.offset % 16)  # 1..16: a full 16 when already aligned
    w.write(b"\0" * pad + struct.pack("<I", version) + b"\0" * 120 + FOOT_MAGIC)
    return b"".join(w.chunks)
