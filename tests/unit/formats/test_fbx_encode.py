"""The byte layer of the FBX writer: property codes, node records, footer, decode round trip, dump tool."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from mocapd.formats.fbx.decode import FbxFormatError, decode_fbx
from mocapd.formats.fbx.dump import main as dump_main
from mocapd.formats.fbx.encode import (
    FOOT_MAGIC,
    HEAD_MAGIC,
    FbxNode,
    Float32,
    Int16,
    Int64,
    encode_fbx,
    encode_property,
)


def _sample_tree() -> list[FbxNode]:
    root = FbxNode("Objects")
    model = root.add("Model", Int64(123456789012), "hips\x00\x01Model", "LimbNode")
    props = FbxNode("Properties70")
    props.add("P", "Lcl Translation", "Lcl Translation", "", "A", 1.5, -2.0, 3.25)
    model.children.append(props)
    model.add("Flags", True, False, Int16(-7), 42, Float32(0.5))
    model.add("Raw", b"\x00\x01\xff")
    model.add("Small", np.arange(5, dtype=np.int32))
    model.add("Big", np.linspace(0.0, 1.0, 100))  # 800 bytes: compressed
    model.add("Times", np.arange(50, dtype=np.int64) * 1539538600)
    model.add("Floats", np.linspace(-1, 1, 64, dtype=np.float32))
    model.add("Bools", np.array([True, False, True]))
    root.add("Empty")
    return [FbxNode("Header", [7]), root, FbxNode("Last")]


def test_scalar_property_codes_and_little_endian_payloads() -> None:
    assert encode_property(True) == b"C\x01"
    assert encode_property(Int16(-2)) == b"Y" + struct.pack("<h", -2)
    assert encode_property(7) == b"I" + struct.pack("<i", 7)
    assert encode_property(Int64(-(2**40))) == b"L" + struct.pack("<q", -(2**40))
    assert encode_property(Float32(1.5)) == b"F" + struct.pack("<f", 1.5)
    assert encode_property(2.5) == b"D" + struct.pack("<d", 2.5)
    assert encode_property("ab") == b"S\x02\x00\x00\x00ab"
    assert encode_property(b"\x00\x01") == b"R\x02\x00\x00\x00\x00\x01"


def test_small_arrays_are_raw_and_large_ones_zlib() -> None:
    small = encode_property(np.arange(4, dtype=np.int32))
    assert small[:1] == b"i"
    count, encoding, length = struct.unpack_from("<3I", small, 1)
    assert (count, encoding, length) == (4, 0, 16)
    big = encode_property(np.zeros(100))
    count, encoding, length = struct.unpack_from("<3I", big, 1)
    assert (count, encoding) == (100, 1) and length == len(big) - 13 < 800


def test_rejects_unsupported_values() -> None:
    with pytest.raises(TypeError):
        encode_property(np.zeros((2, 2)))
    with pytest.raises(TypeError):
        encode_property(np.zeros(3, dtype=np.int8))
    with pytest.raises(TypeError):
        encode_property(None)  # type: ignore[arg-type]


def test_header_footer_and_end_offsets() -> None:
    data = encode_fbx(_sample_tree(), 7400)
    assert data.startswith(HEAD_MAGIC) and struct.unpack_from("<I", data, 23)[0] == 7400
    assert data.endswith(FOOT_MAGIC)
    # Footer: version, then 120 zero bytes, then the magic; padding made the version 16-aligned.
    version_at = len(data) - 16 - 120 - 4
    assert struct.unpack_from("<I", data, version_at)[0] == 7400
    assert data[version_at + 4 : version_at + 124] == b"\0" * 120
    assert version_at % 16 == 0
    # The first node's end offset points at the next node's header.
    end, num_props, props_len = struct.unpack_from("<3I", data, 27)
    assert num_props == 1 and props_len == 5
    assert data[end + 13 : end + 13 + len(b"Objects")] == b"Objects"


def test_decode_round_trip_is_exact() -> None:
    nodes = _sample_tree()
    data = encode_fbx(nodes)
    version, decoded = decode_fbx(data)
    assert version == 7400
    assert [n.name for n in decoded] == ["Header", "Objects", "Last"]
    model = decoded[1].children[0]
    assert model.props == [123456789012, "hips\x00\x01Model", "LimbNode"]
    assert isinstance(model.props[0], Int64)
    flags = model.find("Flags")
    assert flags is not None and flags.props == [True, False, -7, 42, 0.5]
    assert [type(p) for p in flags.props] == [bool, bool, Int16, int, Float32]
    big = model.find("Big")
    assert big is not None and np.array_equal(big.props[0], np.linspace(0.0, 1.0, 100))
    assert encode_fbx(decoded) == data


def test_wide_headers_for_version_7500() -> None:
    data = encode_fbx(_sample_tree(), 7500)
    version, decoded = decode_fbx(data)
    assert version == 7500 and encode_fbx(decoded, 7500) == data
    assert len(data) > len(encode_fbx(_sample_tree(), 7400))


def test_decoder_rejects_garbage_and_truncation() -> None:
    with pytest.raises(FbxFormatError):
        decode_fbx(b"not an fbx file at all, clearly")
    data = encode_fbx(_sample_tree())
    with pytest.raises(FbxFormatError):
        decode_fbx(data[:200])


def test_dump_tool_prints_the_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.fbx"
    path.write_bytes(encode_fbx(_sample_tree()))
    assert dump_main([str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "; FBX 7400 binary"
    assert '  Model: 123456789012L, "hips::Model", "LimbNode"' in out
    assert any(line.startswith("    Big: float64[100] {0.0,") and line.endswith(", ...}") for line in out)
    assert dump_main([str(tmp_path / "missing.fbx")]) == 1
