"""The preview-size frames kept while detecting, read back when the preview is drawn.

The pipeline hands the preview-size copy of every frame it decodes for detection to a `SourceCopy`,
written by a background thread while BlazePose runs on the other core, and the preview reads it back
instead of decoding the source a second time.

Two formats, chosen by the caller from the clip's expected size (`raw_copy_fits`):

* **raw** I420 planes, one frame after another: nothing to encode or decode, so the copy costs no CPU
  beside detection (an H.264 copy of a 1080p clip took 0.6 CPU-s to write and 0.4 to read per 230
  frames, and its writer slowed the detector it shares the cores with); 1.5 bytes a pixel on disk,
  so only while the copy stays within ``RAW_COPY_BUDGET_BYTES`` (about 22 s of 960x540 frames at 30 fps)
  and takes under half of the free space where it is written;
* **H.264** (``crf 15``, ultrafast: near-transparent) for longer clips, whose disk use would grow with length.

A copy that fails (a full disk, say) deletes its file at once and is reported unusable; the preview
then decodes the source again.
"""

from __future__ import annotations

import contextlib
import math
import queue
import shutil
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from mocapd.proc import lower_thread_priority

__all__ = ["RAW_COPY_BUDGET_BYTES", "SourceCopies", "SourceCopy", "raw_copy_fits", "to_i420"]

RAW_COPY_BUDGET_BYTES = 512 * 1024 * 1024
_COPY_X264_OPTIONS = {"crf": "15", "preset": "ultrafast"}
_COPY_QUEUE_DEPTH = 8
_END = object()


def raw_copy_fits(frames: float, width_px: int, height_px: int, directory: Path | None = None) -> bool:
    """Whether ``frames`` frames of ``width_px x height_px`` fit a raw copy: within ``RAW_COPY_BUDGET_BYTES``
    and, given the ``directory`` it goes to, in under half of that file system's free space (the job's
    own files must still fit beside it)."""
    even_w, even_h = width_px // 2 * 2, height_px // 2 * 2
    size = math.ceil(max(0.0, frames)) * even_w * even_h * 3 // 2
    if size > RAW_COPY_BUDGET_BYTES:
        return False
    if directory is None:
        return True
    try:
        return 2 * size <= shutil.disk_usage(directory).free
    except OSError:
        return False


def to_i420(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Packed I420 planes (3 h / 2, w) of an RGB image (cropped to even sizes) or of I420 planes as given.

    RGB is converted with OpenCV (BT.601 limited range, the matrix of FFmpeg's default scaler).
    """
    if image.ndim == 2:
        if image.shape[0] % 3 or image.shape[1] % 2 or (image.shape[0] * 2 // 3) % 2:
            raise ValueError(f"I420 planes must be (3 h / 2, w) with h, w even, got {image.shape}")
        return np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    yuv = cast("NDArray[np.uint8]", cv2.cvtColor(np.ascontiguousarray(image[:h, :w]), cv2.COLOR_RGB2YUV_I420))
    return yuv


class SourceCopy:
    """A temporary copy of frames (raw I420 or H.264, see the module doc), written by a background thread.

    ``add(time_s, image)`` queues a frame, either RGB (H, W, 3) or packed I420 planes (3 H / 2, W)
    (`mocapd.pipeline.decode.iter_frames`' ``second_yuv420``, which spares a colour conversion),
    blocking when ``_COPY_QUEUE_DEPTH`` frames wait, so memory is bounded; ``close()`` flushes and
    returns whether the copy is complete; ``frames()`` reads it back as ``(time_s, rgb)`` with the
    times given to ``add``. Frames are cropped to even sizes (yuv420p) and must all have one size.
    Any failure (no encoder, disk full) only marks the copy unusable: the caller then decodes the
    source again. The file is the caller's to delete. ``nice`` > 0 runs the writer (and the encoder's
    threads) at a lower priority (`mocapd.proc.lower_thread_priority`).
    """

    def __init__(self, path: Path, fps: float, *, raw: bool = False, nice: int = 0) -> None:
        self.path = Path(path)
        self.raw = raw
        self._nice = nice
        self._rate = Fraction(fps if fps > 0 else 30.0).limit_denominator(1001)
        self._times_s: list[float] = []
        self._shape: tuple[int, int] | None = None  # (3 h / 2, w) of every frame
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_COPY_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._closed = False
        self._ended = False  # the writer has taken the end marker
        self._thread = threading.Thread(target=self._write, name="mocapd-source-copy", daemon=True)
        self._thread.start()

    def add(self, time_s: float, image: NDArray[np.uint8]) -> None:
        if self._closed or self._error is not None:
            return
        self._times_s.append(float(time_s))
        self._queue.put(image)

    def close(self) -> bool:
        """Flush and stop the writer; True when every added frame is in the file."""
        if not self._closed:
            self._closed = True
            self._queue.put(_END)
            self._thread.join()
        return self._error is None and len(self._times_s) > 0

    def frames(self) -> Iterator[tuple[float, NDArray[np.uint8]]]:
        """``(time_s, rgb (h, w, 3))`` for every frame of the copy, in order."""
        planes = self._read_raw() if self.raw else self._read_h264()
        for time_s, yuv in zip(self._times_s, planes, strict=False):
            yield time_s, cast("NDArray[np.uint8]", cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420))

    # -- writer thread ------------------------------------------------------------------------------

    def _write(self) -> None:
        lower_thread_priority(self._nice)
        try:
            if self.raw:
                self._write_raw()
            else:
                self._write_h264()
        except Exception as exc:  # noqa: BLE001 - a failed copy is only a slower preview, never a failed job
            self._error = exc
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)  # give the space back at once (a full disk is one cause)
            while not self._ended:  # drain, so that add() never blocks
                self._ended = self._queue.get() is _END

    def _next(self) -> NDArray[np.uint8] | None:
        """The next queued frame as I420 planes, None at the end; all frames must share one size."""
        item = self._queue.get()
        if item is _END:
            self._ended = True
            return None
        yuv = to_i420(np.asarray(item))  # (3 h / 2, w)
        if self._shape is None:
            self._shape = (yuv.shape[0], yuv.shape[1])
        elif yuv.shape != self._shape:
            raise ValueError(f"frame of {yuv.shape} in a copy of {self._shape} frames")
        return yuv

    def _write_raw(self) -> None:
        with open(self.path, "wb") as file:
            while (yuv := self._next()) is not None:
                file.write(memoryview(yuv.data).cast("B"))

    def _write_h264(self) -> None:
        container: av.container.OutputContainer | None = None
        stream: av.VideoStream | None = None
        try:
            i = 0
            while (yuv := self._next()) is not None:
                if container is None or stream is None:
                    container = av.open(str(self.path), mode="w", format="mp4")
                    added = container.add_stream("libx264", rate=self._rate, options=_COPY_X264_OPTIONS)
                    if not isinstance(added, av.VideoStream):  # pragma: no cover - a video codec
                        raise TypeError("libx264 did not give a video stream")
                    stream = added
                    stream.width, stream.height, stream.pix_fmt = yuv.shape[1], yuv.shape[0] * 2 // 3, "yuv420p"
                    stream.codec_context.time_base = Fraction(1) / self._rate
                frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                frame.pts = i
                for packet in stream.encode(frame):
                    container.mux(packet)
                i += 1
            if container is not None and stream is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
        finally:
            if container is not None:
                container.close()

    # -- reading back -------------------------------------------------------------------------------

    def _read_raw(self) -> Iterator[NDArray[np.uint8]]:
        if self._shape is None:
            return
        size = self._shape[0] * self._shape[1]
        with open(self.path, "rb") as file:
            while len(data := file.read(size)) == size:
                yield np.frombuffer(data, dtype=np.uint8).reshape(self._shape)

    def _read_h264(self) -> Iterator[NDArray[np.uint8]]:
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield cast("NDArray[np.uint8]", frame.to_ndarray())  # (3 h / 2, w) I420 planes, as written


class SourceCopies:
    """Consecutive `SourceCopy` parts (one per detection segment), read back as one sequence."""

    def __init__(self, parts: Sequence[SourceCopy]) -> None:
        self.parts = list(parts)

    def close(self) -> bool:
        """Flush every part; True when every part is complete."""
        done = [part.close() for part in self.parts]  # close all, even after a failed one
        return bool(done) and all(done)

    def frames(self) -> Iterator[tuple[float, NDArray[np.uint8]]]:
        for part in self.parts:
            yield from part.frames()
