"""The preview video: the source with the detected 2D skeleton, beside the solved 3D motion (and the robot).

Layout, for a source of ``W x H`` pixels: the output is ``h = min(max_height_px, H)`` pixels tall
(rounded down to even; ``max_height_px`` is 720 by default, jobs use ``PIPELINE_PREVIEW_HEIGHT_PX``);
the first panel is the source scaled by ``h / H`` with the BlazePose landmarks drawn over it; the second panel (width ``clamp(source panel width, 0.6 h, h)``) renders the solved motion with
``mocapd.formats.render3d`` from a fixed camera that follows the pelvis horizontally; a third panel of
the same width shows the robot's bodies when a robot motion is given.

Time: source frame ``i`` is shown at ``t = i / fps``; the motion (and the robot motion) is sampled at
that time by linear interpolation of its world positions, so motion at another rate stays in sync.

Streaming: frames are consumed one at a time and encoded at once; memory does not grow with the clip
(the world positions of the motion, F x J x 3 floats, are the only per-clip arrays).

Decode once: the pipeline keeps the preview-size copy of every frame it decodes for detection
(`mocapd.pipeline.source_copy`) and reads it back for the preview instead of decoding the source again.

Without the source (a re-export decodes no video): `encode_motion_preview` draws the figure panels only,
each ``h x h``, over the motion's duration.

Speed: the RGB canvas is converted to yuv420p with OpenCV (BT.601 limited range, the same matrix as
FFmpeg's default scaler, about 3x cheaper) and libx264 runs with its own frame threads; the source
panel of the next frame is drawn in a helper thread while the current one is encoded (OpenCV and
libx264 release the GIL).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol, cast

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from mocapd.errors import SystemFault
from mocapd.formats.render3d import (
    OrthoCamera,
    draw_hands_2d,
    draw_landmarks_2d,
    render_figure_panel,
    sample_at_time,
)
from mocapd.pipeline.detect import PREVIEW_HEIGHT_PX
from mocapd.pipeline.fingers import FINGER_NAMES
from mocapd.pipeline.skeleton import Motion

__all__ = [
    "MAX_PREVIEW_HEIGHT_PX",
    "PIPELINE_PREVIEW_HEIGHT_PX",
    "PIPELINE_PREVIEW_MAX_FPS",
    "PreviewLayout",
    "RobotPoses",
    "encode_motion_preview",
    "encode_preview",
    "preview_frame_step",
    "preview_layout",
]

FloatArray = NDArray[np.float64]

MAX_PREVIEW_HEIGHT_PX = 720
PIPELINE_PREVIEW_HEIGHT_PX = PREVIEW_HEIGHT_PX  # what jobs use (the pipeline keeps its frames at this size)
PIPELINE_PREVIEW_MAX_FPS = 30.0  # jobs show every n-th frame of faster sources (`preview_frame_step`)
_HUMAN_CAMERA = OrthoCamera(view_height_m=2.6)
_ROBOT_CAMERA = OrthoCamera(view_height_m=2.0)
_ENCODERS = ("libx264", "h264")
# ultrafast with CABAC, B-frames, adaptive quantisation and the deblocking filter back: superfast's picture
# (41.1 dB luma PSNR both) in 36 % less time for 17 % more bytes; see bench/results/preview.md
_X264_OPTIONS = {"crf": "23", "preset": "ultrafast", "x264-params": "cabac=1:bframes=3:aq-mode=1:deblock=1"}


class RobotPoses(Protocol):
    """What the preview needs of ``mocapd.robots.motion.RobotMotion``: timed body positions and their tree."""

    @property
    def fps(self) -> float: ...

    @property
    def body_positions_m(self) -> FloatArray: ...  # (F, B, 3)

    @property
    def body_parents(self) -> Sequence[int] | NDArray[np.int_]: ...  # (B,)


@dataclass(frozen=True)
class PreviewLayout:
    """Pixel sizes of the preview: all even, as yuv420p needs."""

    height_px: int
    source_width_px: int  # 0: no source panel (`encode_motion_preview`)
    panel_width_px: int
    num_panels: int  # the source panel included

    @property
    def width_px(self) -> int:
        return self.source_width_px + (self.num_panels - 1) * self.panel_width_px


def preview_frame_step(fps: float, max_fps: float = PIPELINE_PREVIEW_MAX_FPS) -> int:
    """Show every n-th frame of a ``fps`` clip in a job's preview: ``n = max(1, round(fps / max_fps))``.

    60 fps -> every 2nd (30 fps), 50 -> 25, 120 -> 30, 30 / 25 / 24 -> every frame. A preview is for
    checking the tracking by eye, so a 60 fps phone clip costs half the drawing and encoding.
    """
    return max(1, round(fps / max_fps)) if fps > 0 and max_fps > 0 else 1


def _even_floor(x: float) -> int:
    return max(2, int(math.floor(x / 2.0)) * 2)


def preview_layout(
    source_width_px: int,
    source_height_px: int,
    *,
    with_robot: bool,
    max_height_px: int = MAX_PREVIEW_HEIGHT_PX,
) -> PreviewLayout:
    """Output height ``h = even(min(max_height_px, H))``; source panel ``even(W h / H)``; 3D panels ``even(clamp(., 0.6 h, h))``."""
    if source_width_px <= 0 or source_height_px <= 0:
        raise ValueError("source frames must have a positive size")
    if max_height_px < 2:
        raise ValueError("max_height_px must be at least 2")
    h = _even_floor(min(max_height_px, source_height_px))
    src_w = _even_floor(source_width_px * h / source_height_px)
    panel_w = _even_floor(min(max(src_w, 0.6 * h), float(h)))
    return PreviewLayout(h, src_w, panel_w, 3 if with_robot else 2)


def _vertical_centre_m(positions_m: FloatArray) -> float:
    """Median over frames of the middle of each frame's vertical extent, (F, K, 3) -> metres."""
    z = positions_m[..., 2]  # (F, K)
    with np.errstate(invalid="ignore"):
        mid = 0.5 * (np.nanmin(np.where(np.isfinite(z), z, np.inf), axis=1)
                     + np.nanmax(np.where(np.isfinite(z), z, -np.inf), axis=1))  # (F,)  # fmt: skip
    mid = mid[np.isfinite(mid)]
    return float(np.median(mid)) if mid.size else 0.9


def _follow_centre(pose_m: FloatArray, anchor: int, z_centre_m: float) -> FloatArray:
    """View centre: the anchor body's horizontal position (or the mean of known points) at a fixed height."""
    p = pose_m[anchor] if 0 <= anchor < len(pose_m) else np.full(3, np.nan)
    if not np.all(np.isfinite(p[:2])):
        known = pose_m[np.all(np.isfinite(pose_m), axis=1)]
        p = known.mean(axis=0) if len(known) else np.zeros(3)
    return np.array([p[0], p[1], z_centre_m])


class _FigureTrack:
    """A clip of world positions (F, K, 3) at ``fps`` with its tree, rendered at any time."""

    def __init__(
        self,
        positions_m: FloatArray,
        fps: float,
        parents: Sequence[int],
        names: Sequence[str],
        anchor: int,
        camera: OrthoCamera,
        label: str,
        small: Sequence[bool] | None = None,
    ) -> None:
        if positions_m.ndim != 3 or positions_m.shape[0] == 0 or positions_m.shape[2] != 3:
            raise ValueError("positions must be (F, K, 3) with F > 0")
        self.positions_m = positions_m
        self.fps = fps
        self.parents = list(parents)
        self.names = list(names)
        self.anchor = anchor
        self.camera = camera
        self.label = label
        self.small = list(small) if small is not None else None
        self.z_centre_m = _vertical_centre_m(positions_m)

    def render(self, t_s: float, size_px: tuple[int, int]) -> NDArray[np.uint8]:
        pose = sample_at_time(self.positions_m, self.fps, t_s)  # (K, 3)
        centre = self.camera.snap_centre(_follow_centre(pose, self.anchor, self.z_centre_m), size_px[0])
        return render_figure_panel(pose, self.parents, self.names, size_px=size_px, centre_m=centre,
                                   camera=self.camera, label=self.label, small=self.small)  # fmt: skip


def _human_track(motion: Motion) -> _FigureTrack:
    """The solved skeleton; its ``root`` (the pelvis' ground projection, not a body part) is not drawn;
    finger bones (`handTracking`) are drawn thin."""
    names = motion.skeleton.names
    positions = motion.world_positions_m()  # (F, J, 3)
    if "root" in names:
        positions[:, names.index("root")] = np.nan
    anchor = names.index("pelvis") if "pelvis" in names else 0
    fingers = set(FINGER_NAMES)
    small = [n in fingers for n in names] if fingers.intersection(names) else None
    return _FigureTrack(positions, motion.fps, motion.skeleton.parents, names, anchor, _HUMAN_CAMERA, "3D", small)


def _robot_track(robot: RobotPoses) -> _FigureTrack:
    positions = np.asarray(robot.body_positions_m, dtype=np.float64)  # (F, B, 3)
    parents = [int(p) for p in np.asarray(robot.body_parents).reshape(-1)]
    if positions.ndim != 3 or len(parents) != positions.shape[1]:
        raise ValueError("robot body_positions_m must be (F, B, 3) with one parent per body")
    names = list(getattr(robot, "body_names", None) or [""] * len(parents))
    anchor = names.index("pelvis") if "pelvis" in names else 0
    return _FigureTrack(positions, float(robot.fps), parents, names, anchor, _ROBOT_CAMERA, "G1")


def _source_panel(
    frame: NDArray[np.uint8],
    landmarks_px: FloatArray | None,
    layout: PreviewLayout,
    hands_px: FloatArray | None = None,
) -> NDArray[np.uint8]:
    """The frame scaled to (h, source panel width) with the landmarks (33, 2) in source pixels drawn over,
    and the hands' landmarks (2, 21, 2) when given, thin, over those."""
    fh, fw = frame.shape[:2]
    size = (layout.source_width_px, layout.height_px)
    # area averaging only for strong reductions (> 2x); bilinear is 5x faster and clean enough below that
    shrink = fh / layout.height_px
    interpolation = cv2.INTER_AREA if shrink > 2.0 else cv2.INTER_LINEAR
    panel: NDArray[np.uint8] = np.ascontiguousarray(
        cv2.resize(frame, size, interpolation=interpolation), dtype=np.uint8
    )
    if landmarks_px is not None:
        scale = np.array([layout.source_width_px / fw, layout.height_px / fh])  # (2,)
        draw_landmarks_2d(panel, landmarks_px * scale, thickness_px=max(2, round(layout.height_px / 240)))
    if hands_px is not None:
        scale = np.array([layout.source_width_px / fw, layout.height_px / fh])  # (2,)
        draw_hands_2d(panel, hands_px * scale, thickness_px=max(1, round(layout.height_px / 540)))
    return panel


def _check_frame(frame: NDArray[Any]) -> NDArray[np.uint8]:
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"preview frames must be (H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}")
    return arr


def encode_preview(
    frames: Iterable[NDArray[np.uint8]],
    landmarks_px: NDArray[np.floating[Any]],
    motion: Motion,
    out_path: Path,
    *,
    fps: float,
    robot: RobotPoses | None = None,
    max_height_px: int = MAX_PREVIEW_HEIGHT_PX,
    hands_px: NDArray[np.floating[Any]] | None = None,
) -> None:
    """Write the preview MP4 (H.264, yuv420p, faststart) to ``out_path``.

    ``frames`` yields (H, W, 3) uint8 RGB source frames at ``fps`` (they are pulled in the caller's
    thread, so a generator may report progress); ``landmarks_px`` (F, 33, 2) holds the detected
    BlazePose landmarks of frame ``i`` in that frame's pixels, NaN where missing (frames past its end
    are drawn without landmarks). ``motion`` and ``robot`` (anything with ``fps``, ``body_positions_m``
    (F, B, 3), ``body_parents`` (B,), e.g. a ``RobotMotion``) are sampled at ``i / fps``. The output
    is at most ``max_height_px`` tall (see `preview_layout`); frames already at that height are not
    rescaled. ``hands_px`` (F, 2, 21, 2), when given (`handTracking`), holds both hands' landmarks of
    frame ``i`` (the performer's left hand first) in the same pixels, NaN where a hand is not seen; they
    are drawn thin over the body's. PyAV/FFmpeg failures become ``SystemFault("packaging_failed")``.
    """
    if not fps > 0:
        raise ValueError("fps must be positive")
    lms = np.asarray(landmarks_px, dtype=np.float64)
    if lms.ndim != 3 or lms.shape[1:] != (33, 2):
        raise ValueError(f"landmarks_px must be (F, 33, 2), got {lms.shape}")
    hands = None if hands_px is None else np.asarray(hands_px, dtype=np.float64)
    if hands is not None and (hands.ndim != 4 or hands.shape[1:] != (2, 21, 2)):
        raise ValueError(f"hands_px must be (F, 2, 21, 2), got {hands.shape}")
    tracks = [_human_track(motion)] + ([_robot_track(robot)] if robot is not None else [])
    out_path = Path(out_path)
    try:
        _encode(iter(frames), lms, tracks, out_path, fps, max_height_px, hands)
    except (av.FFmpegError, OSError) as exc:
        raise SystemFault("packaging_failed", f"the preview video could not be written: {exc}") from exc


def _open_stream(
    out_path: Path, layout: PreviewLayout, fps: float
) -> tuple[av.container.OutputContainer, av.VideoStream]:
    rate = Fraction(fps).limit_denominator(1001)
    container = av.open(str(out_path), mode="w", format="mp4", options={"movflags": "+faststart"})
    last_error: Exception | None = None
    for name in _ENCODERS:
        try:
            options = dict(_X264_OPTIONS) if name == "libx264" else {}
            stream = container.add_stream(name, rate=rate, options=options)
        except (av.FFmpegError, ValueError) as exc:  # encoder not in this FFmpeg build
            last_error = exc
            continue
        if not isinstance(stream, av.VideoStream):  # pragma: no cover - add_stream of a video codec
            raise TypeError(f"{name} did not give a video stream")
        stream.width = layout.width_px
        stream.height = layout.height_px
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1) / rate
        stream.codec_context.gop_size = max(1, round(2 * fps))
        return container, stream
    container.close()
    raise SystemFault("packaging_failed", f"no H.264 encoder available: {last_error}")


class _Composer:
    """Draws frame ``i`` of the preview (source panel + figure panels) and converts it to yuv420p."""

    def __init__(
        self,
        layout: PreviewLayout,
        lms: FloatArray,
        tracks: list[_FigureTrack],
        fps: float,
        hands: FloatArray | None = None,
    ) -> None:
        self.layout = layout
        self.lms = lms
        self.hands = hands
        self.tracks = tracks
        self.fps = fps
        self.canvas = np.empty((layout.height_px, layout.width_px, 3), dtype=np.uint8)  # (h, W, 3)

    def __call__(self, frame: NDArray[np.uint8] | None, i: int) -> NDArray[np.uint8]:
        """The (3 h / 2, W) I420 planes of frame ``i`` (BT.601, limited range, as FFmpeg's default)."""
        layout, canvas = self.layout, self.canvas
        panel_size = (layout.height_px, layout.panel_width_px)
        hands = self.hands[i] if self.hands is not None and i < len(self.hands) else None
        if frame is not None:
            canvas[:, : layout.source_width_px] = _source_panel(
                frame, self.lms[i] if i < len(self.lms) else None, layout, hands
            )
        for k, track in enumerate(self.tracks):
            x0 = layout.source_width_px + k * layout.panel_width_px
            canvas[:, x0 : x0 + layout.panel_width_px] = track.render(i / self.fps, panel_size)
        yuv = cast("NDArray[np.uint8]", cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420))  # (3 h / 2, W)
        return yuv


def _encode(
    frames: Iterable[NDArray[np.uint8]],
    lms: FloatArray,
    tracks: list[_FigureTrack],
    out_path: Path,
    fps: float,
    max_height_px: int,
    hands: FloatArray | None = None,
) -> None:
    """Frame ``i + 1`` is composed in a helper thread while frame ``i`` is encoded in this one.

    Frames are pulled from ``frames`` in this thread only; at most two source frames are alive.
    """
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise SystemFault("packaging_failed", "there are no frames to put in the preview")
    first_h, first_w = _check_frame(first).shape[:2]
    layout = preview_layout(first_w, first_h, with_robot=len(tracks) > 1, max_height_px=max_height_px)
    compose = _Composer(layout, lms, tracks, fps, hands)
    items = _then(first, iterator)
    del first  # hold no frame longer than it takes to draw it
    _encode_composed(compose, layout, out_path, fps, items)


def _then(first: NDArray[np.uint8], rest: Iterator[NDArray[np.uint8]]) -> Iterator[NDArray[np.uint8]]:
    yield first
    del first  # held no longer than the next frame's request
    yield from rest


def encode_motion_preview(
    motion: Motion,
    out_path: Path,
    *,
    robot: RobotPoses | None = None,
    max_height_px: int = MAX_PREVIEW_HEIGHT_PX,
    max_fps: float = PIPELINE_PREVIEW_MAX_FPS,
) -> None:
    """The preview of a motion without its source video (a re-export): the solved motion's 3D panel (and
    the robot's), each ``h x h`` with ``h = even(max_height_px)``, every `preview_frame_step`-th frame of
    the motion, at the motion's rate divided by that step."""
    if motion.num_frames == 0 or not motion.fps > 0:
        raise SystemFault("packaging_failed", "there are no frames to put in the preview")
    step = preview_frame_step(motion.fps, max_fps)
    fps = motion.fps / step
    count = (motion.num_frames + step - 1) // step
    tracks = [_human_track(motion)] + ([_robot_track(robot)] if robot is not None else [])
    h = _even_floor(max_height_px)
    layout = PreviewLayout(h, 0, h, len(tracks) + 1)
    no_landmarks = np.empty((0, 33, 2))
    try:
        _encode_composed(_Composer(layout, no_landmarks, tracks, fps), layout, Path(out_path), fps, repeat(None, count))
    except (av.FFmpegError, OSError) as exc:
        raise SystemFault("packaging_failed", f"the preview video could not be written: {exc}") from exc


def _encode_composed(
    compose: _Composer,
    layout: PreviewLayout,
    out_path: Path,
    fps: float,
    iterator: Iterator[NDArray[np.uint8] | None],
) -> None:
    """Encode each item of ``iterator`` (at least one: a checked source frame, or None where there is no
    source panel), frame ``i + 1`` composed in a helper thread while frame ``i`` is encoded here."""
    container, stream = _open_stream(out_path, layout, fps)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mocapd-preview")
    try:
        pending: Future[NDArray[np.uint8]] | None = pool.submit(compose, next(iterator), 0)
        i = 0
        while pending is not None:
            yuv = pending.result()  # a fresh array: the composer's canvas is free again
            try:
                frame = next(iterator)
            except StopIteration:
                pending = None
            else:
                pending = pool.submit(compose, None if frame is None else _check_frame(frame), i + 1)
                del frame
            video_frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            video_frame.pts = i
            for packet in stream.encode(video_frame):
                container.mux(packet)
            i += 1
        for packet in stream.encode(None):
            container.mux(packet)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        container.close()
