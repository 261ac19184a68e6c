"""Hand landmarks for `handTracking`: MediaPipe Holistic (in the mediapipe wheel) over a job's window.

The plain hand detector finds no hands in full-body shots; Holistic crops each hand from the body pose
and runs the hand landmark model on the crop, so small hands in a wide shot are found. Holistic's own
left and right are the performer's. Its pose part re-runs BlazePose Full, and it also runs the face
mesh, so this pass costs more per frame than body detection (see BENCHMARKS.md); it is a second pass
over the window, only for jobs that ask for fingers, and leaves the body's detection untouched (a job
without `handTracking` is unchanged).

``points`` are (x * width, y * height, z * width): MediaPipe's normalised image coordinates with its
relative depth on the x scale, a frame in which the angles between finger segments are meaningful.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.decode import iter_frames, prefetch
from mocapd.pipeline.layout import HAND_21

__all__ = ["HandTrack", "HandsPass", "detect_hands", "on_grid"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
DETECT_MAX_SIDE_PX = 1280  # hands are small: keep more pixels than the body detector does
_NICE = 5
_N = HAND_21.num_landmarks  # landmarks per hand


@dataclass(frozen=True)
class HandTrack:
    time_s: FloatArray  # (F,)
    left: FloatArray  # (F, 21, 3), NaN where not seen
    right: FloatArray  # (F, 21, 3)
    image_size_px: tuple[int, int] = (0, 0)  # (width, height) of the frames the points are in

    def image_xy(self, size_px: tuple[int, int]) -> FloatArray:
        """Both hands' 2D landmarks in the pixels of a ``size_px`` (width, height) picture of the same
        frames, (F, 2, 21, 2): left hand first, NaN where not seen."""
        w, h = self.image_size_px
        if w <= 0 or h <= 0:
            return np.full((self.time_s.shape[0], 2, _N, 2), np.nan)
        scale = np.array([size_px[0] / w, size_px[1] / h])  # (2,)
        return cast("FloatArray", np.stack([self.left[..., :2], self.right[..., :2]], axis=1) * scale)  # (F, 2, 21, 2)

    @property
    def left_seen(self) -> BoolArray:
        return cast("BoolArray", np.isfinite(self.left).all(axis=(1, 2)))

    @property
    def right_seen(self) -> BoolArray:
        return cast("BoolArray", np.isfinite(self.right).all(axis=(1, 2)))


def _points(landmarks: Any, width: int, height: int) -> FloatArray:
    if landmarks is None:
        return np.full((_N, 3), np.nan)
    return np.array([(p.x * width, p.y * height, p.z * width) for p in landmarks.landmark], dtype=np.float64)


def detect_hands(
    source: Path, start_s: float, end_s: float, *, min_interval_s: float = 0.0, stop: threading.Event | None = None
) -> HandTrack:
    """Both hands on every analysed frame of ``[start_s, end_s)`` (``min_interval_s`` as the body pass).
    A set ``stop`` ends the pass early (what was detected so far is returned)."""
    from mediapipe.python.solutions import holistic as mp_holistic  # heavy import, kept local

    times: list[float] = []
    left: list[FloatArray] = []
    right: list[FloatArray] = []
    size = (0, 0)
    frames = prefetch(iter_frames(Path(source), start_s=start_s, end_s=end_s, max_side_px=DETECT_MAX_SIDE_PX,
                                  min_interval_s=min_interval_s), nice=_NICE)
    try:
        with mp_holistic.Holistic(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                  refine_face_landmarks=False) as holistic:
            for frame in frames:
                if stop is not None and stop.is_set():
                    break
                h, w = frame.rgb.shape[:2]
                size = (w, h)
                result = holistic.process(frame.rgb)
                times.append(frame.time_s)
                left.append(_points(result.left_hand_landmarks, w, h))
                right.append(_points(result.right_hand_landmarks, w, h))
    finally:
        frames.close()  # type: ignore[attr-defined]
    if not times:
        return HandTrack(np.zeros(0), np.zeros((0, _N, 3)), np.zeros((0, _N, 3)))
    return HandTrack(np.array(times), np.stack(left), np.stack(right), size)


class HandsPass:
    """`detect_hands` in a background thread, started at once: the job's body pass and this one then
    share the two cores instead of running one after the other (each detector runs its networks on
    one thread). ``result()`` waits for it (re-raising its error); ``cancel()`` stops it (a job that
    fails before it needs the hands). Frames and results are those of `detect_hands`."""

    def __init__(self, source: Path, start_s: float, end_s: float, *, min_interval_s: float = 0.0) -> None:
        self._stop = threading.Event()
        self._track: HandTrack | None = None
        self._error: BaseException | None = None
        self.duration_s = 0.0
        self._args = (Path(source), start_s, end_s, min_interval_s)
        self._thread = threading.Thread(target=self._run, name="mocapd-hands", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        source, start_s, end_s, min_interval_s = self._args
        try:
            self._track = detect_hands(source, start_s, end_s, min_interval_s=min_interval_s, stop=self._stop)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self._error = exc
        self.duration_s = time.monotonic() - started

    def result(self) -> HandTrack:
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._track is None or self._stop.is_set():
            raise RuntimeError("the hands pass was cancelled")
        return self._track

    def cancel(self) -> None:
        self._stop.set()
        self._thread.join()


def on_grid(track: HandTrack, grid_s: FloatArray, tolerance_s: float) -> HandTrack:
    """The detections nearest each grid time (within ``tolerance_s``; NaN otherwise)."""
    g = np.asarray(grid_s, dtype=np.float64)
    left = np.full((g.shape[0], _N, 3), np.nan)
    right = np.full((g.shape[0], _N, 3), np.nan)
    if track.time_s.size:
        idx = np.clip(np.searchsorted(track.time_s, g), 1, max(1, track.time_s.size - 1))
        lo = np.clip(idx - 1, 0, track.time_s.size - 1)
        hi = np.clip(idx, 0, track.time_s.size - 1)
        nearest = np.where(np.abs(track.time_s[lo] - g) <= np.abs(track.time_s[hi] - g), lo, hi)
        ok = np.abs(track.time_s[nearest] - g) <= tolerance_s
        left[ok] = track.left[nearest[ok]]
        right[ok] = track.right[nearest[ok]]
    return HandTrack(g, left, right, track.image_size_px)
