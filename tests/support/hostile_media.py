"""Hostile video files, made small and fast with PyAV (tests and bench/ read them; nothing is committed).

- `person_clip`: real frames of a person (pose2sim cam01, downscaled), written at any frame rate.
- `patch_mkv_duration`: an MKV whose Segment Duration header claims other seconds than it holds.
- `gray_jpeg` / `jpeg_of_size`: a valid baseline JPEG of any size, built from a tiny encoded one: with
  the standard Huffman tables a uniform mid-grey 16x16 4:2:0 macro-block is exactly 4 bytes, so a
  16000x16000 frame is 4 MB to write and decodes (to a 384 MB picture) in a fraction of a second.
- `mjpeg_file`: an MJPEG stream of given JPEG packets (sizes may change from frame to frame).
- `h264_claiming`: a raw H.264 stream whose sequence header claims another frame size; FFmpeg's
  decoder allocates frames of the claimed size (the file is a few hundred bytes).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "gray_jpeg",
    "h264_claiming",
    "jpeg_of_size",
    "mjpeg_file",
    "patch_mkv_duration",
    "person_clip",
    "person_frames",
]

_MKV_DURATION_ID = b"\x44\x89"


def person_frames(source: Path, size: tuple[int, int], count: int, fps: float, source_fps: float = 60.0) -> Iterator[NDArray[np.uint8]]:
    """``count`` RGB frames (H, W, 3) at ``size`` = (w, h), sampled from ``source`` as if it ran at
    ``fps``: frame i shows the source at i / fps seconds (held at its last frame)."""
    frames: list[NDArray[np.uint8]] = []
    with av.open(str(source)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
            if len(frames) * fps >= count * source_fps + fps:
                break
    for i in range(count):
        yield frames[min(len(frames) - 1, int(round(i / fps * source_fps)))]


def person_clip(
    path: Path, source: Path, *, seconds: float, fps: int, size: tuple[int, int] = (136, 240), codec: str = "libx264",
    container: str | None = None,
) -> Path:
    """A clip of a person: ``seconds`` at ``fps`` (any rate: 1000 fps repeats source frames)."""
    count = int(round(seconds * fps))
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for rgb in person_frames(source, size, count, fps):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def patch_mkv_duration(path: Path, seconds: float) -> None:
    """Overwrite the Segment Duration (EBML 0x4489, a float in TimestampScale units: ms as FFmpeg writes)."""
    data = bytearray(path.read_bytes())
    at = data.find(_MKV_DURATION_ID)
    if at < 0:
        raise ValueError("no Duration element")
    size = data[at + 2] & 0x7F  # one-byte EBML size: 0x84 or 0x88
    fmt = {4: ">f", 8: ">d"}[size]
    data[at + 3 : at + 3 + size] = struct.pack(fmt, seconds * 1000.0)
    path.write_bytes(bytes(data))


def gray_jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    """One baseline JPEG (4:2:0, standard Huffman tables) of uniform mid-grey."""
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height = size
    cc.pix_fmt = "yuvj420p"
    cc.time_base = Fraction(1, 30)
    cc.options = {"huffman": "default"}
    frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 128, np.uint8), format="rgb24")
    packets = list(cc.encode(frame)) + list(cc.encode(None))
    return bytes(packets[0])


def jpeg_of_size(width: int, height: int) -> bytes:
    """A valid mid-grey JPEG of ``width`` x ``height``: `gray_jpeg`'s tables, a new frame header and
    one 4-byte all-zero macro-block (Y: DC 0 = '00', EOB = '1010', four times; Cb, Cr: '00' '00') per
    16x16 block."""
    small = bytearray(gray_jpeg())
    sof = small.find(b"\xff\xc0")
    small[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    sos = small.find(b"\xff\xda")
    header = bytes(small[: sos + 2 + struct.unpack(">H", small[sos + 2 : sos + 4])[0]])
    blocks = -(-width // 16) * -(-height // 16)
    return header + b"\x28\xa2\x8a\x00" * blocks + b"\xff\xd9"


def mjpeg_file(path: Path, jpegs: Sequence[bytes], *, fps: int = 30, size: tuple[int, int] = (64, 48), container: str = "matroska") -> Path:
    """An MJPEG stream of the given JPEG packets; the container header states ``size``."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("mjpeg", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p"
        for i, jpeg in enumerate(jpegs):
            packet = av.Packet(jpeg)
            packet.pts = packet.dts = i
            packet.time_base = Fraction(1, fps)
            packet.stream = stream
            packet.is_keyframe = True
            out.mux(packet)
    return path


def encode_jpeg(rgb: NDArray[np.uint8]) -> bytes:
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height = rgb.shape[1], rgb.shape[0]
    cc.pix_fmt = "yuvj420p"
    cc.time_base = Fraction(1, 30)
    packets = list(cc.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24"))) + list(cc.encode(None))
    return bytes(packets[0])


# -- H.264 sequence header rewriting (exp-Golomb fields; there is no library for this in the stack) ----


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, v: int) -> None:
        self.bits += [(v >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, v: int) -> None:
        n = (v + 1).bit_length()
        self.u(n - 1, 0)
        self.u(n, v + 1)

    def bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def _unescape(b: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for x in b:
        if zeros >= 2 and x == 3:
            zeros = 0
            continue
        out.append(x)
        zeros = zeros + 1 if x == 0 else 0
    return bytes(out)


def _escape(b: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for x in b:
        if zeros >= 2 and x <= 3:
            out.append(3)
            zeros = 0
        out.append(x)
        zeros = zeros + 1 if x == 0 else 0
    return bytes(out)


def _resize_sps(payload: bytes, width: int, height: int) -> bytes:
    """A baseline-profile SPS (without its NAL header byte) with the frame size replaced, cropping dropped."""
    r, w = _BitReader(_unescape(payload)), _BitWriter()
    profile = r.u(8)
    if profile != 66:
        raise ValueError(f"baseline profile expected, not {profile}")
    w.u(8, profile)
    w.u(16, r.u(16))  # constraint flags, level
    w.ue(r.ue())  # seq_parameter_set_id
    w.ue(r.ue())  # log2_max_frame_num_minus4
    poc_type = r.ue()
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(r.ue())
    elif poc_type == 1:
        raise ValueError("pic_order_cnt_type 1 is not handled")
    w.ue(r.ue())  # max_num_ref_frames
    w.u(1, r.u(1))  # gaps_in_frame_num_allowed
    r.ue(), r.ue()
    w.ue(width // 16 - 1)
    w.ue(height // 16 - 1)
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        raise ValueError("interlaced streams are not handled")
    w.u(1, 1)
    w.u(1, r.u(1))  # direct_8x8_inference
    if r.u(1):  # frame cropping: dropped
        for _ in range(4):
            r.ue()
    w.u(1, 0)
    while r.pos < len(r.data) * 8:  # VUI and the trailing bits, verbatim
        w.u(1, r.u(1))
    return _escape(w.bytes())


def h264_claiming(path: Path, width: int, height: int, frames: int = 5) -> Path:
    """A raw H.264 (Annex B) stream of tiny frames whose sequence header says ``width`` x ``height``."""
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = 64, 48, "yuv420p"
    cc.time_base = Fraction(1, 30)
    cc.options = {"profile": "baseline", "preset": "ultrafast", "x264-params": "annexb=1"}
    data = b""
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 100, np.uint8), format="rgb24")
        frame.pts = i
        data += b"".join(bytes(p) for p in cc.encode(frame))
    data += b"".join(bytes(p) for p in cc.encode(None))
    units = data.split(b"\x00\x00\x01")
    for i, unit in enumerate(units):
        if unit and unit[0] & 0x1F == 7:  # sequence parameter set
            end = len(unit.rstrip(b"\x00"))
            units[i] = unit[:1] + _resize_sps(unit[1:end], width, height) + unit[end:]
    path.write_bytes(b"\x00\x00\x01".join(units))
    return path
