"""Pose detection over a job's trimmed window: preflight, then one pass or two halves with a checked seam.

BlazePose costs about 19-23 ms a frame here on one core (its networks run on one thread each), so on
a machine with cores to spare (`detect_segments`) a long window is detected as two *segments* at once,
each with its own decoder and detector: the first from the start, the second from a split point near
the middle (a key frame when one is near, so its decoder does not decode the first half only to drop it).

The seam. A detector that starts cold in the middle of a clip picks whoever is most prominent there,
which need not be the person the first detector has been following (sports2d_demo.mp4: a passer-by).
So the first segment does not stop at the split: it carries on, and each of its frames past the split
is compared with the second segment's result for the same frame. When both follow the same person
(2D landmarks within ``SEAM_TOLERANCE`` torso lengths) on ``SEAM_AGREE_FRAMES`` consecutive frames,
or both see nobody, the tracks are spliced there and the first segment stops. From that frame on both
detectors track from (nearly) the same region, so the result is what one pass would have given.
If they never agree, the first segment simply runs to the end: the one-pass result, at no loss but the
second segment's wasted core. If the second segment fails, the first one likewise runs to the end.

Preview frames: each segment hands the frames of its own range, at preview size, to its own
`SourceCopy`; `SourceCopies` reads the parts back as one sequence (the frames past the split that
the first segment detects again are not copied twice).
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from mocapd.errors import InputFault
from mocapd.pipeline.decode import VideoInfo, iter_frames, prefetch
from mocapd.pipeline.layout import BLAZEPOSE_33
from mocapd.pipeline.pose import (
    FULL,
    PoseModel,
    PoseTrack,
    TrackBuilder,
    hip_centre_and_torso_px,
    open_detector,
)

if TYPE_CHECKING:  # pragma: no cover
    from mocapd.pipeline.source_copy import SourceCopies, SourceCopy

__all__ = [
    "ANALYSIS_MAX_FPS",
    "DECODE_NICE",
    "DETECT_MAX_SIDE_PX",
    "PREFLIGHT_S",
    "PREVIEW_HEIGHT_PX",
    "SEAM_AGREE_FRAMES",
    "SEAM_TOLERANCE",
    "SPLIT_MIN_CORES",
    "SPLIT_MIN_WINDOW_S",
    "analysis_step",
    "detect_window",
    "preview_scale",
    "preview_side_px",
    "split_point_s",
]

FloatArray = NDArray[np.float64]

PREFLIGHT_S = 2.0  # seconds of the window searched for a person before committing to the job
PREVIEW_HEIGHT_PX = 540  # the preview's height: 0.56x the pixels of 720 p, skeleton still easy to read
DETECT_MAX_SIDE_PX = 640  # BlazePose works on 224-256 px crops; larger input only costs time
SPLIT_MIN_WINDOW_S = 4.0  # shorter windows: one pass (a second detector's start-up is not worth it)
SPLIT_MIN_CORES = 4  # see `detect_segments`
SEAM_AGREE_FRAMES = 3
SEAM_TOLERANCE = 0.1  # mean 2D landmark distance, in torso lengths, for "the same person"
_SEAM_LANDMARKS = np.array(
    [i for pair in BLAZEPOSE_33.pairs("shoulder", "elbow", "wrist", "hip", "knee", "ankle") for i in pair]
)  # shoulders .. ankles
# The decoder (and the preview copy's writer) run at this lower priority than the detector. BlazePose is
# the bottleneck and takes one core; without it FFmpeg's decoder threads, when they all wake at once,
# take turns with the detector on both cores: BlazePose went from 19.9 to 23.5 ms a frame beside a
# decoding thread, and to 20.2 with the decoder niced by 10.
DECODE_NICE = 10
# Pose is detected on at most this many frames a second of video (or exportFps, when higher): BlazePose
# costs the same per frame whatever the source rate, so a 1000 fps clip detected frame by frame cost
# about 10x a 60 fps one per second (and per credit). 60 keeps every frame of 30 and 60 fps sources
# (results unchanged) and samples human motion well past its content (BlazePose's own landmarks are
# smoothed at a few Hz); the solved motion is interpolated onto the export rate.
ANALYSIS_MAX_FPS = 60.0


def analysis_step(source_fps: float, export_fps: float) -> int:
    """Detect on every n-th frame: the smallest n that brings ``source_fps`` to at most
    max(`ANALYSIS_MAX_FPS`, ``export_fps``) (1 for 30 and 60 fps sources; 4 for 240; 17 for 1000)."""
    cap = max(ANALYSIS_MAX_FPS, float(export_fps))
    if not (math.isfinite(source_fps) and source_fps > cap):
        return 1
    return max(1, math.ceil(source_fps / cap - 1e-9))


class ProgressFn(Protocol):
    def __call__(self, stage: str, fraction: float, *, force: bool = False) -> None: ...


def same_person(a_px: FloatArray, b_px: FloatArray, *, tolerance: float = SEAM_TOLERANCE) -> bool:
    """Whether two detections (33, 2) of one frame are the same person: limb landmarks within
    ``tolerance`` torso lengths of each other on average."""
    a, b = a_px[_SEAM_LANDMARKS], b_px[_SEAM_LANDMARKS]
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    torso = float(hip_centre_and_torso_px(a_px[None])[1][0])
    if torso < 1e-6:
        return False
    return float(np.mean(np.linalg.norm(a - b, axis=1))) <= tolerance * torso


class _Seam:
    """Finds the first frame past the split where both segments agree (checked as results arrive)."""

    def __init__(self, first: TrackBuilder, second: TrackBuilder, split_index: int) -> None:
        self.first, self.second = first, second
        self.i = split_index  # next frame of ``first`` to check
        self.j = 0  # matching position in ``second``
        self.streak = 0

    def find(self) -> tuple[int, int] | None:
        """``(stop, start)``: keep ``first[:stop]`` and ``second[start:]``; None while undecided."""
        first, second = self.first, self.second
        while self.i < len(first.times):
            t = first.times[self.i]
            while self.j < len(second.times) and second.times[self.j] < t - 1e-6:
                self.j += 1
            if self.j >= len(second.times):
                return None  # the second segment has not reached this frame yet
            if abs(second.times[self.j] - t) > 1e-6:  # a frame only one decoder kept
                self.streak = 0
                self.i += 1
                continue
            a, b = first.person[self.i], second.person[self.j]
            if not a and not b:  # nobody in either: both detectors start afresh on the next frame
                return self.i, self.j
            if a and b and same_person(first.px[self.i], second.px[self.j]):
                self.streak += 1
                if self.streak >= SEAM_AGREE_FRAMES:
                    return self.i + 1, self.j + 1
            else:
                self.streak = 0
            self.i += 1
            self.j += 1
        return None


class _SecondSegment(threading.Thread):
    """Decodes and detects ``[start_s, end_s)`` in the background; ``error`` is set if it failed."""

    def __init__(
        self,
        source: Path,
        start_s: float,
        end_s: float,
        size: tuple[int, int],
        copy: SourceCopy | None,
        copy_side_px: int | None,  # None exactly when ``copy`` is None
        min_interval_s: float = 0.0,
        pose_model: PoseModel = FULL,
    ) -> None:
        super().__init__(name="mocapd-detect-2", daemon=True)
        self.pose_model = pose_model
        self.source = source
        self.start_s = start_s
        self.end_s = end_s
        self.copy = copy
        self.copy_side_px = copy_side_px
        self.min_interval_s = min_interval_s
        self.detections = TrackBuilder(size)
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        frames = prefetch(
            iter_frames(
                self.source,
                start_s=self.start_s,
                end_s=self.end_s,
                max_side_px=DETECT_MAX_SIDE_PX,
                second_max_side_px=self.copy_side_px,
                min_interval_s=self.min_interval_s,
            ),
            nice=DECODE_NICE,
        )
        try:
            with open_detector(self.pose_model) as detector:
                for frame in frames:
                    if self.stop.is_set():
                        return
                    if self.copy is not None and frame.second_yuv420 is not None:
                        self.copy.add(frame.time_s, frame.second_yuv420)
                    self.detections.add(frame.time_s, detector.detect(frame.rgb))
        except BaseException as exc:  # noqa: BLE001 - reported to the first segment, which carries on
            self.error = exc
        finally:
            frames.close()  # type: ignore[attr-defined]

    def position_s(self) -> float:
        times = self.detections.times
        return times[-1] if times else self.start_s


def preview_scale(info: VideoInfo) -> float:
    """How the source frames are scaled for the preview: ``PREVIEW_HEIGHT_PX`` tall at most."""
    return min(1.0, PREVIEW_HEIGHT_PX / info.height_px)


def preview_side_px(info: VideoInfo) -> int:
    """Long side of the source frames in the preview (`preview_scale`)."""
    return int(round(max(info.width_px, info.height_px) * preview_scale(info)))


def split_point_s(source: Path, start_s: float, end_s: float) -> float:
    """Where the second segment starts: the key frame nearest the middle of the window when one lies
    in its middle 30 % (its decoder then starts there instead of decoding frames only to drop them),
    else the middle itself."""
    import av

    middle = 0.5 * (start_s + end_s)
    lo, hi = start_s + 0.35 * (end_s - start_s), start_s + 0.65 * (end_s - start_s)
    keys: list[float] = []
    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            time_base = stream.time_base
            base = stream.start_time or 0
            for packet in container.demux(stream):  # packets only: nothing is decoded
                if packet.pts is None or time_base is None:
                    continue
                t = float((packet.pts - base) * time_base)
                if t > hi:
                    break
                if packet.is_keyframe and t >= lo:
                    keys.append(t)
    except Exception:  # noqa: BLE001 - the middle is always a valid split
        return middle
    return min(keys, key=lambda t: abs(t - middle)) if keys else middle


def detect_segments(window_s: float) -> int:
    """How many segments to detect at once: 2 for a long window on a machine with ``SPLIT_MIN_CORES``.

    One pass already keeps about 1.5 cores busy (BlazePose one, the decoder and the preview copy most
    of the other): on 2 cores two segments took the same wall time (4.7-4.8 s for 230 frames of the
    1080p bench clip, 1 or 2 segments) for 2 CPU-s more, so they are only used where cores are left
    over. (MediaPipe's networks can also run on two threads: 11.8 instead of 19 ms a frame alone, but
    beside the decoder they spin against it, 4.95 instead of 4.71 s for 3.3 CPU-s more.)"""
    return 2 if (os.cpu_count() or 1) >= SPLIT_MIN_CORES and window_s >= SPLIT_MIN_WINDOW_S else 1


def detect_window(
    source: Path,
    info: VideoInfo,
    trim_start_s: float,
    trim_end_s: float,
    progress: ProgressFn,
    *,
    copy_dir: Path | None = None,
    processing_share: float = 0.8,
    segments: int | None = None,
    step: int = 1,
    pose_model: PoseModel = FULL,
) -> tuple[PoseTrack, SourceCopies | None]:
    """Preflight then processing-stage pose detection over ``[trim_start_s, trim_end_s)``.

    Returns the track and, with ``copy_dir``, the preview-size frames kept while decoding (None when
    they are incomplete; the caller then decodes the source again). Progress: ``preflight`` 0..1,
    then ``processing`` 0..``processing_share``. Raises ``InputFault("no_person_detected")`` when
    nobody is found in the first ``PREFLIGHT_S`` of the window. ``segments`` (1 or 2) overrides
    `detect_segments`. ``step`` > 1 detects every ``step``-th frame only (`analysis_step`); the window
    is then one segment (two decoders would keep different frames, and the seam compares equal times).
    """
    from mocapd.pipeline.source_copy import SourceCopies, SourceCopy, raw_copy_fits

    source = Path(source)
    window_s = max(1e-6, trim_end_s - trim_start_s)
    preflight_end_s = trim_start_s + min(PREFLIGHT_S, window_s)
    size = (info.width_px, info.height_px)
    copy_side_px = preview_side_px(info) if copy_dir is not None else None
    # Keep a frame at least (step - 1/2) source periods after the previous one: every step-th frame of a
    # constant-rate source, and no frame dropped that stands further apart (a rate header that overstates).
    min_interval_s = (step - 0.5) / info.fps if step > 1 and info.fps > 0 else 0.0
    rate = info.fps / max(1, step)
    copies: list[SourceCopy] = []
    raw_copy = False
    if copy_dir is not None:
        scale = preview_scale(info)
        copy_w, copy_h = round(info.width_px * scale), round(info.height_px * scale)
        raw_copy = raw_copy_fits(window_s * rate, copy_w, copy_h, Path(copy_dir))
        copies.append(SourceCopy(Path(copy_dir) / "preview-source-0", rate, raw=raw_copy, nice=DECODE_NICE))
    two = (segments or detect_segments(window_s)) >= 2 and min_interval_s == 0.0
    split_s = split_point_s(source, trim_start_s, trim_end_s) if two else math.inf
    own = TrackBuilder(size)
    second: _SecondSegment | None = None
    seam: _Seam | None = None
    cut: tuple[int, int] | None = None
    frames = prefetch(
        iter_frames(
            source,
            start_s=trim_start_s,
            end_s=trim_end_s,
            max_side_px=DETECT_MAX_SIDE_PX,
            second_max_side_px=copy_side_px,
            min_interval_s=min_interval_s,
        ),
        nice=DECODE_NICE,
    )

    def report() -> None:
        done_s = min(own.times[-1] if own.times else trim_start_s, split_s) - trim_start_s
        if second is not None:
            done_s += max(0.0, second.position_s() - split_s)
        progress("processing", processing_share * done_s / window_s)

    progress("preflight", 0.0, force=True)
    in_preflight = True
    try:
        with open_detector(pose_model) as detector:
            for frame in frames:
                past_split = frame.time_s >= split_s - 1e-9
                if copies and (second is None or not past_split):  # the second segment copies its own range
                    copies[0].add(frame.time_s, frame.second_yuv420)  # type: ignore[arg-type]
                own.add(frame.time_s, detector.detect(frame.rgb))
                if in_preflight:
                    if own.person[-1]:
                        in_preflight = False
                        progress("preflight", 1.0, force=True)
                        if math.isfinite(split_s) and split_s > frame.time_s:
                            if copy_dir is not None:
                                part = Path(copy_dir) / "preview-source-1"
                                copies.append(SourceCopy(part, rate, raw=raw_copy, nice=DECODE_NICE))
                            copy = copies[1] if len(copies) > 1 else None
                            second = _SecondSegment(source, split_s, trim_end_s, size, copy, copy_side_px,
                                                            pose_model=pose_model)
                            second.start()
                    elif frame.time_s >= preflight_end_s - 1e-9:
                        break  # nothing in the preflight window: stop decoding
                    else:
                        progress(
                            "preflight", (frame.time_s - trim_start_s) / (preflight_end_s - trim_start_s)
                        )
                    continue
                if past_split and second is not None and second.error is None:
                    if seam is None:
                        seam = _Seam(own, second.detections, len(own.times) - 1)
                    cut = seam.find()
                    if cut is not None:
                        break
                report()
        if second is not None:
            while second.is_alive():
                second.join(timeout=0.25)
                report()
    finally:
        frames.close()  # type: ignore[attr-defined]
        if second is not None:
            second.stop.set()
            second.join()
        complete = second is None or second.error is None
        closed = [c.close() for c in copies]  # every writer is flushed and stopped, whatever happened
    if in_preflight:
        if not own.times:
            raise InputFault("source_unsupported", "no frame could be decoded in the trimmed window")
        raise InputFault("no_person_detected", "no person was found at the start of the trimmed window")
    if cut is not None and second is not None:
        if second.error is not None:  # it failed after the first segment handed over: a system fault
            raise second.error
        detections = own.spliced(cut[0], second.detections, cut[1])
    else:
        detections = own
    kept = SourceCopies(copies) if copies and complete and all(closed) else None
    return detections.build(), kept
