"""Probe an uploaded file with PyAV: container, video stream, a decodable first frame, duration,
frame rate, size and rotation. Used at admission; every failure becomes an `InputFault`.

Frame sizes are checked before any frame is decoded: FFmpeg decodes frames while it opens some files
(H.264: up to 7, to learn the stream's reorder delay), so the decoders get ``max_pixels``
(`DECODER_OPTIONS`) and refuse a larger frame before allocating it, then the size the stream headers
give is checked. The API runs this module as a child process (``python -m``, see `main`), so a hostile
file costs the child's memory, not the API's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mocapd.errors import InputFault

if TYPE_CHECKING:  # pragma: no cover
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

__all__ = ["DECODER_OPTIONS", "MAX_PIXELS", "SourceFacts", "main", "probe_video"]

# Refuse absurd frame sizes before decoding anything (a hostile header can claim 65535 x 65535).
MAX_PIXELS = 8192 * 8192
# Given to `av.open` (the decoders it opens to read stream facts) and to every decoder: FFmpeg refuses
# a frame of more pixels before allocating it (a 16384x8192 H.264 file took 1.2 GB to open without it).
DECODER_OPTIONS = {"max_pixels": str(MAX_PIXELS)}


@dataclass(frozen=True)
class SourceFacts:
    container: str
    codec: str
    width: int  # as displayed (after rotation)
    height: int
    rotation_deg: int
    fps: float
    duration_s: float
    frame_count: int | None
    has_audio: bool

    def to_wire(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            "container": d["container"],
            "codec": d["codec"],
            "width": d["width"],
            "height": d["height"],
            "rotationDeg": d["rotation_deg"],
            "fps": round(d["fps"], 4),
            "durationSec": round(d["duration_s"], 4),
            "frameCount": d["frame_count"],
            "hasAudio": d["has_audio"],
        }


def _rotation(stream: Any, frame: Any) -> int:
    try:
        rot = frame.rotation  # PyAV >= 13: from the display matrix side data
        if rot:
            return int(round(-rot)) % 360
    except AttributeError:
        pass
    meta = getattr(stream, "metadata", {}) or {}
    try:
        return int(float(meta.get("rotate", 0))) % 360
    except ValueError:
        return 0


def probe_video(path: Path) -> SourceFacts:
    import av  # heavy: imported where used

    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore", options=dict(DECODER_OPTIONS))
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputFault("source_unreadable", "The file is not a video container mocapd can read.") from exc
    with container:
        videos = [s for s in container.streams if s.type == "video"]
        if not videos:
            raise InputFault("source_no_video_stream", "The file has no video stream.")
        stream = cast("VideoStream", videos[0])  # a stream of type video
        has_audio = any(s.type == "audio" for s in container.streams)
        cc = stream.codec_context
        if cc is None or not cc.name:
            raise InputFault("source_unsupported", "The video codec is not supported.")
        if (cc.width or 0) * (cc.height or 0) > MAX_PIXELS:
            raise InputFault("source_unsupported", f"Frames of {cc.width}x{cc.height} are too large.")
        cc.options = {**cc.options, **DECODER_OPTIONS}  # the decoder about to open refuses larger frames
        stream.thread_type = "AUTO"
        first: VideoFrame | None = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.ArgumentError as exc:  # EINVAL: the decoder refused the frame's size (max_pixels)
            raise InputFault("source_unsupported", "The first video frame is too large or malformed.") from exc
        except (av.error.FFmpegError, ValueError) as exc:
            raise InputFault("source_unsupported", "The first video frame cannot be decoded.") from exc
        if first is None:
            raise InputFault("source_unsupported", "The video stream holds no decodable frame.")
        if first.width * first.height > MAX_PIXELS:
            raise InputFault("source_unsupported", f"Frames of {first.width}x{first.height} are too large.")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration_s = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / 1_000_000
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise InputFault("source_unreadable", "The video's duration cannot be read.")
        if not (math.isfinite(fps) and 0 < fps <= 1000):
            raise InputFault("source_unsupported", "The video's frame rate cannot be read.")
        rotation = _rotation(stream, first)
        w, h = int(first.width), int(first.height)
        if rotation in (90, 270):
            w, h = h, w
        frames = int(stream.frames) if stream.frames else None
        return SourceFacts(
            container=container.format.name,
            codec=cc.name,
            width=w,
            height=h,
            rotation_deg=rotation,
            fps=fps,
            duration_s=duration_s,
            frame_count=frames,
            has_audio=has_audio,
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m mocapd.media.probe PATH``: one JSON line on stdout, ``{"facts": {...}}`` or
    ``{"fault": {"code", "message"}}``; exit status 0 either way (anything else is a crash).

    ``--max-memory-mb`` caps the process's address space first, so even a decoder bug cannot take
    more than that."""
    import argparse
    import json
    import resource
    import sys

    parser = argparse.ArgumentParser(prog="python -m mocapd.media.probe")
    parser.add_argument("path", type=Path)
    parser.add_argument("--max-memory-mb", type=int, default=0)
    args = parser.parse_args(argv)
    from mocapd.proc import die_with_parent

    die_with_parent()
    if args.max_memory_mb > 0:
        limit = args.max_memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        out: dict[str, Any] = {"facts": probe_video(args.path).to_wire()}
    except InputFault as exc:
        out = {"fault": {"code": exc.code, "message": exc.message}}
    except MemoryError:
        out = {"fault": {"code": "source_unsupported", "message": "The video needs too much memory to decode."}}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
