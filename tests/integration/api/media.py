"""Small media files made on the fly for admission tests (real containers written with PyAV)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import numpy as np


def synthetic_video(path: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (64, 48)) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.full((size[1], size[0], 3), (i * 7) % 255, dtype=np.uint8)
            for pkt in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=44100)
        samples = int(seconds * 44100)
        t = np.arange(samples) / 44100
        pcm = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="mono")
        frame.sample_rate = 44100
        for pkt in stream.encode(frame):
            out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def png_bytes(w: int = 8, h: int = 8) -> bytes:
    raw = b"".join(b"\x00" + bytes([200, 30, 30] * w) for _ in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
