"""Probe an uploaded file with PyAV: container, video stream, a decodable first frame, duration,
frame rate, size and rotation. Used at admission; every failure becomes an `InputFault`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mocapd.errors import InputFault

__all__ = ["SourceFacts", "probe_video"]

# Refuse absurd frame sizes before decoding anything (a hostile header can claim 65535 x 65535).
MAX_PIXELS = 8192 * 8192


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
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputFault("source_unreadable", "The file is not a video container mocapd can read.") from exc
    with container:
        videos = [s for s in container.streams if s.type == "video"]
        if not videos:
            raise InputFault("source_no_video_stream", "The file has no video stream.")
        stream = videos[0]
        has_audio = any(s.type == "audio" for s in container.streams)
        cc = stream.codec_context
        if cc is None or not cc.name:
            raise InputFault("source_unsupported", "The video codec is not supported.")
        if (cc.width or 0) * (cc.height or 0) > MAX_PIXELS:
            raise InputFault("source_unsupported", f"Frames of {cc.width}x{cc.height} are too large.")
        stream.thread_type = "AUTO"
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except (av.error.FFmpegError, ValueError) as exc:
            raise InputFault("source_unsupported", "The first video frame cannot be decoded.") from exc
        if first is None:
            raise InputFault("source_unsupported", "The video stream holds no decodable frame.")
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
