"""Streaming video decode with real timestamps and rotation metadata (PyAV).

`iter_frames` is a generator: it holds one decoded frame at a time, so memory does not grow with
the clip length. Frame times come from the presentation timestamps (``time_s = (pts - start_pts)
* time_base``), so variable-frame-rate sources keep their real timing. The display matrix (the
``rotate`` tag of phone videos) is applied: a frame whose matrix rotates it counter-clockwise by
``r`` degrees is returned turned by ``r`` degrees counter-clockwise, i.e. as a player shows it.

Every PyAV/FFmpeg error is converted here into ``InputFault("source_unreadable")`` (the file is
not a video container we can open) or ``InputFault("source_unsupported")`` (no decodable video
stream), with ``raise ... from exc``.

Every frame is held to the admission's pixel limit (`MAX_PIXELS`), not just the first one probed: the
decoder is given ``max_pixels`` and refuses a larger frame before allocating it (a stream may switch
from 270x480 to 16000x16000 mid-way), and that refusal fails the job as ``source_unsupported``
rather than ending the clip early as a damaged tail would.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from numpy.typing import NDArray

from mocapd.errors import InputFault
from mocapd.media.probe import DECODER_OPTIONS, MAX_PIXELS
from mocapd.proc import lower_thread_priority

__all__ = ["DecodedFrame", "VideoInfo", "iter_frames", "prefetch", "read_video_info"]

UInt8Image = NDArray[np.uint8]


@dataclass(frozen=True)
class VideoInfo:
    """Facts about the first video stream, in display orientation (after rotation)."""

    width_px: int
    height_px: int
    coded_width_px: int
    coded_height_px: int
    rotation_deg: int  # counter-clockwise turn applied to decoded frames (multiple of 90)
    fps: float  # average frame rate (frames / s)
    duration_s: float
    codec: str
    frame_count: int  # from the container; 0 when unknown


@dataclass(frozen=True)
class DecodedFrame:
    index: int  # running index within the decoded window, from 0
    time_s: float  # presentation time from the start of the stream
    rgb: UInt8Image  # (H, W, 3) display orientation
    second_yuv420: UInt8Image | None = None  # (3 H2 / 2, W2) I420 planes at ``second_max_side_px``, if asked


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", options=dict(DECODER_OPTIONS))
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputFault("source_unreadable", f"cannot open the video: {exc}") from exc


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise InputFault("source_unsupported", "the file has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.name is None:
        raise InputFault("source_unsupported", "the video codec is not supported")
    stream.codec_context.options = {**stream.codec_context.options, **DECODER_OPTIONS}  # before it opens
    _check_size(stream.codec_context.width or 0, stream.codec_context.height or 0)
    return stream


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InputFault(
            "source_unsupported", f"a frame of {width}x{height} is larger than the limit of {MAX_PIXELS} pixels"
        )


def _quarter_turns(rotation_deg: float) -> int:
    """Number of counter-clockwise quarter turns (0..3) for a display rotation in degrees."""
    return int(round(rotation_deg / 90.0)) % 4


def _stream_rotation_deg(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Rotation from the first decoded frame's display matrix (FFmpeg attaches it to frames)."""
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation)) if frame.rotation else 0
    except av.FFmpegError as exc:
        raise InputFault("source_unsupported", f"the video cannot be decoded: {exc}") from exc
    raise InputFault("source_unsupported", "the video stream has no decodable frame")


def read_video_info(path: Path) -> VideoInfo:
    """Open ``path``, read the stream facts and decode the first frame (to read the rotation)."""
    container = _open(Path(path))
    try:
        stream = _video_stream(container)
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / 1_000_000.0
        else:
            duration_s = 0.0
        rotation_deg = _stream_rotation_deg(container, stream)
        w, h = int(ctx.width), int(ctx.height)
        turns = _quarter_turns(rotation_deg)
        dw, dh = (h, w) if turns % 2 else (w, h)
        if fps <= 0 and duration_s > 0 and stream.frames:
            fps = stream.frames / duration_s
        return VideoInfo(
            width_px=dw,
            height_px=dh,
            coded_width_px=w,
            coded_height_px=h,
            rotation_deg=turns * 90 if turns != 3 else -90,
            fps=fps,
            duration_s=duration_s,
            codec=str(ctx.name),
            frame_count=int(stream.frames or 0),
        )
    finally:
        container.close()


def _scaled_size(width: int, height: int, max_side_px: int | None) -> tuple[int, int]:
    """Even-sized (w, h) no larger than ``max_side_px`` on the long side, aspect kept."""
    if max_side_px is None or max(width, height) <= max_side_px:
        return width, height
    scale = max_side_px / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def iter_frames(
    path: Path,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    max_side_px: int | None = None,
    threads: int = 0,
    second_max_side_px: int | None = None,
    min_interval_s: float = 0.0,
) -> Iterator[DecodedFrame]:
    """Yield the frames whose presentation time lies in ``[start_s, end_s)``, RGB, display-oriented.

    Seeks to the key frame at or before ``start_s`` and decodes forward, so the cost of a trim is
    independent of where the window starts. ``max_side_px`` downscales in FFmpeg's scaler before
    the RGB conversion (the long *display* side is at most that many pixels). ``threads`` = 0 lets
    FFmpeg choose (frame + slice threading). ``second_max_side_px`` also scales each decoded frame to
    that size, even-sized, as yuv420p planes (``DecodedFrame.second_yuv420``: scaling without the RGB
    conversion costs half as much), so one decode feeds two consumers (detection and preview).
    ``min_interval_s`` > 0 yields a frame only that long or longer after the previous one yielded; the
    others are decoded (they have to be) but neither converted nor scaled (an analysis rate below a
    high source rate, see `mocapd.pipeline.detect.analysis_step`).

    Each output keeps one scaler (`VideoReformatter`) for the whole clip: ``frame.reformat`` makes a
    new one per frame, whose set-up cost more than the scaling itself (sports2d_demo.mp4 to 640 px RGB
    and 960x540 yuv420p: 9.0-10.5 CPU-ms and 20 wall-ms a frame that way, 3.5-4.5 and 7 reused; the
    pixels are identical). It scales on one thread: the decoder's own threads and the detector already
    share the cores.
    """
    container = _open(Path(path))
    try:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        time_base: Fraction = stream.time_base or Fraction(1, 1_000_000)
        start_pts = stream.start_time or 0
        if start_s > 0:
            target = start_pts + int(math.floor(start_s / time_base))
            try:
                container.seek(target, stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:
                container.seek(0)
        index = 0
        last_time_s = -math.inf
        last_kept_s = -math.inf
        fallback_dt_s = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / 30.0
        size: tuple[int, int] | None = None
        second_size: tuple[int, int] | None = None
        turns = 0
        to_rgb, to_second = VideoReformatter(), VideoReformatter()
        try:
            for frame in container.decode(stream):
                _check_size(frame.width, frame.height)
                if frame.pts is not None:
                    time_s = float((frame.pts - start_pts) * time_base)
                else:  # no timestamp at all: continue the previous spacing
                    time_s = last_time_s + fallback_dt_s if math.isfinite(last_time_s) else 0.0
                if time_s <= last_time_s:  # duplicate or reordered pts: drop it
                    continue
                if time_s < start_s - 1e-9:
                    continue
                if end_s is not None and time_s >= end_s - 1e-9:
                    break
                last_time_s = time_s
                if min_interval_s > 0 and time_s < last_kept_s + min_interval_s:
                    continue
                last_kept_s = time_s
                if size is None:
                    turns = _quarter_turns(frame.rotation or 0)
                    dw, dh = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
                    sw, sh = _scaled_size(dw, dh, max_side_px)
                    size = (sh, sw) if turns % 2 else (sw, sh)  # coded-orientation target size
                    sw, sh = _scaled_size(dw, dh, second_max_side_px)
                    sw, sh = max(2, sw // 2 * 2), max(2, sh // 2 * 2)  # yuv420p needs even sizes
                    second_size = (sh, sw) if turns % 2 else (sw, sh)
                rgb = _rgb(frame, size, turns, to_rgb)  # (H, W, 3)
                second = None
                if second_size is not None and second_max_side_px is not None:
                    second = _yuv420(frame, second_size, turns, to_second)  # (3 H2 / 2, W2)
                yield DecodedFrame(index=index, time_s=time_s, rgb=rgb, second_yuv420=second)
                index += 1
        except av.error.ArgumentError as exc:  # EINVAL: the decoder refused a frame's size (max_pixels)
            raise InputFault(
                "source_unsupported", f"a frame is larger than the limit of {MAX_PIXELS} pixels (8192x8192)"
            ) from exc
        except av.FFmpegError as exc:
            if index == 0:
                raise InputFault("source_unsupported", f"the video cannot be decoded: {exc}") from exc
            # A damaged tail: keep what decoded, as players do.
            return
    finally:
        container.close()


def _rgb(
    frame: av.VideoFrame, size: tuple[int, int] | None, turns: int, scaler: VideoReformatter | None = None
) -> UInt8Image:
    """``frame`` as RGB at ``size`` (coded orientation; FFmpeg's scaler, ``scaler`` when given), then
    turned to display orientation."""
    scaler = scaler or VideoReformatter()
    w, h = size if size is not None else (frame.width, frame.height)
    rgb = cast("UInt8Image", scaler.reformat(frame, width=w, height=h, format="rgb24", threads=1).to_ndarray())
    if turns:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
    return rgb


def _yuv420(
    frame: av.VideoFrame, size: tuple[int, int], turns: int, scaler: VideoReformatter | None = None
) -> UInt8Image:
    """``frame`` as packed I420 planes (3 h / 2, w) at the even ``size`` (coded orientation, ``scaler``
    when given), then turned."""
    w, h = size
    scaler = scaler or VideoReformatter()
    planes = scaler.reformat(frame, width=w, height=h, format="yuv420p", threads=1).to_ndarray()  # (3 h / 2, w)
    if not turns:
        return np.ascontiguousarray(planes, dtype=np.uint8)
    y = np.rot90(planes[:h], k=turns)  # (h', w')
    u = np.rot90(planes[h : h + h // 4].reshape(h // 2, w // 2), k=turns)
    v = np.rot90(planes[h + h // 4 :].reshape(h // 2, w // 2), k=turns)
    out = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return cast("UInt8Image", out.reshape(3 * y.shape[0] // 2, y.shape[1]))


_DONE = object()


def prefetch(items: Iterable[DecodedFrame], depth: int = 4, *, nice: int = 0) -> Iterator[DecodedFrame]:
    """Run ``items`` (e.g. `iter_frames`) in a background thread, at most ``depth`` frames ahead.

    Decoding then overlaps with the consumer (pose detection runs in native code; keep the producer's
    own Python work small: a thread busy in Python slowed BlazePose from 19 to 33 ms a frame).
    Memory stays bounded by ``depth`` frames. Exceptions of the producer are re-raised here; when
    the consumer stops early the producer is told to stop and is joined. ``nice`` > 0 runs the
    producer (and its decoder's threads) at a lower priority (`lower_thread_priority`).
    """
    buf: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        lower_thread_priority(nice)
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buf.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            payload: object = _DONE
        except BaseException as exc:  # re-raised in the consumer
            payload = exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        while not stop.is_set():
            try:
                buf.put(payload, timeout=0.1)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="mocapd-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = buf.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5.0)
