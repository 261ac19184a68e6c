"""Pose detectors over a stream of frames, plus identity-switch gating.

A detector (`Detector`) returns, per frame, the landmarks of its `LandmarkLayout`
(`mocapd.pipeline.layout`). `open_detector(model)` starts the one registered for the model's family
(`DETECTORS`); the service's family is BlazePose (MediaPipe 0.10.21, Full or Heavy: `PoseDetector`),
whose 33 landmarks (`BLAZEPOSE_33`) the rest of the pipeline reads by name. Another model registers a
factory for its family here; one with more landmarks (a holistic model's hands) keeps BlazePose's 33
first in its layout.

Per frame we keep, for the 33 BlazePose landmarks:

* ``landmarks_px`` (F, 33, 2): image coordinates in pixels of the *original* display frame
  (MediaPipe returns coordinates normalised to the input image, so a downscaled input maps back
  exactly by multiplying by the original width and height);
* ``world_m`` (F, 33, 3): MediaPipe's metric world landmarks, hip-centred, camera-aligned axes
  (x image right, y image down, z away from the camera);
* ``visibility`` (F, 33) in [0, 1].

Frames without a detection are NaN and ``person[f]`` is False. ``valid[f]`` is ``person[f]``
minus the frames rejected as a likely switch to another person (`mark_identity_switches`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.layout import BLAZEPOSE_33, LandmarkLayout

__all__ = [
    "DETECTORS",
    "FULL",
    "NUM_LANDMARKS",
    "Detection",
    "Detector",
    "PoseDetector",
    "PoseModel",
    "PoseTrack",
    "TrackBuilder",
    "detect_poses",
    "hip_centre_and_torso_px",
    "mark_identity_switches",
    "open_detector",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
NUM_LANDMARKS = BLAZEPOSE_33.num_landmarks
_L_SHOULDER, _R_SHOULDER, _L_HIP, _R_HIP = BLAZEPOSE_33.indices("left_shoulder", "right_shoulder", "left_hip", "right_hip")
# One frame's detection: landmarks normalised to the input image (L, 2), world landmarks in metres
# (L, 3: hip-centred, camera-aligned x right, y down, z away), visibility (L,) in [0, 1].
Detection = tuple[FloatArray, FloatArray, FloatArray]


@dataclass(frozen=True)
class PoseTrack:
    time_s: FloatArray  # (F,)
    image_size_px: tuple[int, int]  # (width, height) of the display frame
    landmarks_px: FloatArray  # (F, 33, 2)
    world_m: FloatArray  # (F, 33, 3)
    visibility: FloatArray  # (F, 33)
    person: BoolArray  # (F,) a detection was returned
    valid: BoolArray  # (F,) detection kept (not an identity switch)

    @property
    def num_frames(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(frozen=True)
class PoseModel:
    """Which BlazePose landmark model a detector runs. Full ships in the mediapipe wheel; Heavy is a
    file installed by `mocapd models fetch`, found under ``resource_root`` (see `mocapd.model_files`)."""

    name: str = "blazepose_full"
    family: str = "blazepose"  # the `DETECTORS` entry that runs it
    complexity: int = 1  # MediaPipe's model_complexity: 1 Full, 2 Heavy
    label: str = "BlazePose Full"
    resource_root: Path | None = None  # None: the wheel's own files
    sha256: str | None = None  # of the landmark model file, for the manifest
    source: str = "mediapipe-0.10.21 wheel"


FULL = PoseModel()
_GRAPH_LOCK = threading.Lock()  # MediaPipe's resource root is process-wide while a graph is built


def _build_pose(model: PoseModel, min_detection_confidence: float, min_tracking_confidence: float) -> Any:
    from mediapipe.python.solutions import pose as mp_pose  # heavy import, kept local

    if model.resource_root is None:
        return mp_pose.Pose(
            static_image_mode=False,
            model_complexity=model.complexity,
            smooth_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
    # mp_pose.Pose would try to download a model the wheel lacks into the installed package; build the
    # same graph with its own base class instead, resolving model files under our resource root.
    from mediapipe.python import solution_base
    from mediapipe.python._framework_bindings import resource_util

    class _OurRoot:
        @staticmethod
        def set_resource_dir(_wheel_root: str) -> None:
            resource_util.set_resource_dir(str(model.resource_root))

    pose: Any = mp_pose.Pose.__new__(mp_pose.Pose)
    with _GRAPH_LOCK:
        saved = solution_base.resource_util
        solution_base.resource_util = _OurRoot
        try:
            solution_base.SolutionBase.__init__(
                pose,
                binary_graph_path=mp_pose._BINARYPB_FILE_PATH,
                side_inputs={"model_complexity": model.complexity, "smooth_landmarks": False,
                             "enable_segmentation": False, "smooth_segmentation": False, "use_prev_landmarks": True},
                calculator_params={
                    "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": min_detection_confidence,
                    "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__ThresholdingCalculator.threshold":
                        min_tracking_confidence,
                },
                outputs=["pose_landmarks", "pose_world_landmarks", "segmentation_mask"],
            )
        finally:
            solution_base.resource_util = saved
    return pose


class Detector(Protocol):
    """A pose model in tracking mode over one stream of frames; a context manager (native state)."""

    @property
    def layout(self) -> LandmarkLayout: ...

    def detect(self, rgb: NDArray[np.uint8]) -> Detection | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Detector: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class PoseDetector:
    """One MediaPipe Pose graph in tracking mode; use as a context manager (it owns native state).

    ``detect(rgb)`` returns ``(landmarks_norm (33, 2), world_m (33, 3), visibility (33,))`` or None.
    The Full model ships inside the wheel; Heavy is read from the models directory. Nothing is downloaded.
    """

    layout = BLAZEPOSE_33

    def __init__(
        self, model: PoseModel = FULL, *, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5
    ) -> None:
        self.model = model
        self._pose: Any = _build_pose(model, min_detection_confidence, min_tracking_confidence)

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pose is not None:
            self._pose.close()
            self._pose = None

    def detect(self, rgb: NDArray[np.uint8]) -> Detection | None:
        result = self._pose.process(rgb)
        if result.pose_landmarks is None or result.pose_world_landmarks is None:
            return None
        lm = result.pose_landmarks.landmark
        wl = result.pose_world_landmarks.landmark
        norm = np.array([(p.x, p.y) for p in lm], dtype=np.float64)  # (33, 2)
        world = np.array([(p.x, p.y, p.z) for p in wl], dtype=np.float64)  # (33, 3)
        vis = np.array([p.visibility for p in lm], dtype=np.float64)  # (33,)
        return norm, world, vis


DETECTORS: dict[str, Callable[[PoseModel], Detector]] = {"blazepose": PoseDetector}


def open_detector(model: PoseModel = FULL) -> Detector:
    """A new detector running ``model``, from the factory registered for its family."""
    try:
        factory = DETECTORS[model.family]
    except KeyError:
        raise LookupError(f"no pose detector for {model.family!r}; registered: {sorted(DETECTORS)}") from None
    return factory(model)


class TrackBuilder:
    """Accumulates per-frame detections (a few hundred bytes per frame, never images).

    One thread may append while another reads: ``add`` appends the time last, so a reader that sees
    ``len(times) > i`` also sees frame ``i``'s landmarks (list appends are atomic)."""

    def __init__(self, image_size_px: tuple[int, int]) -> None:
        self.image_size_px = image_size_px
        self.times: list[float] = []
        self.px: list[FloatArray] = []
        self.world: list[FloatArray] = []
        self.vis: list[FloatArray] = []
        self.person: list[bool] = []

    def add(self, time_s: float, det: Detection | None) -> None:
        if det is None:
            self.px.append(np.full((NUM_LANDMARKS, 2), np.nan))
            self.world.append(np.full((NUM_LANDMARKS, 3), np.nan))
            self.vis.append(np.zeros(NUM_LANDMARKS))
            self.person.append(False)
        else:
            norm, world, vis = det
            w, h = self.image_size_px
            self.px.append(norm * np.array([w, h], dtype=np.float64))
            self.world.append(world)
            self.vis.append(vis)
            self.person.append(True)
        self.times.append(float(time_s))

    def spliced(self, stop: int, other: TrackBuilder, start: int) -> TrackBuilder:
        """Frames ``[:stop]`` of this builder followed by frames ``[start:]`` of ``other``."""
        out = TrackBuilder(self.image_size_px)
        n = len(other.times)
        out.times = self.times[:stop] + other.times[start:n]
        out.px = self.px[:stop] + other.px[start:n]
        out.world = self.world[:stop] + other.world[start:n]
        out.vis = self.vis[:stop] + other.vis[start:n]
        out.person = self.person[:stop] + other.person[start:n]
        return out

    def build(self) -> PoseTrack:
        n = len(self.times)
        px = np.array(self.px[:n]).reshape(n, NUM_LANDMARKS, 2)
        person = np.array(self.person[:n], dtype=bool).reshape(n)
        return PoseTrack(
            time_s=np.array(self.times, dtype=np.float64).reshape(n),
            image_size_px=self.image_size_px,
            landmarks_px=px,
            world_m=np.array(self.world[:n]).reshape(n, NUM_LANDMARKS, 3),
            visibility=np.array(self.vis[:n]).reshape(n, NUM_LANDMARKS),
            person=person,
            valid=mark_identity_switches(px, person),
        )


def detect_poses(
    frames: Iterable[tuple[float, NDArray[np.uint8]]],
    image_size_px: tuple[int, int],
    *,
    detector: Detector | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> PoseTrack:
    """Run BlazePose on ``(time_s, rgb)`` frames; ``image_size_px`` is the original display size.

    The frames may be downscaled copies: pixel coordinates are returned in the original size.
    ``on_frame(i)`` is called after each frame (progress, cancellation).
    """
    builder = TrackBuilder(image_size_px)
    own = detector is None
    det = detector or open_detector()
    try:
        for i, (time_s, rgb) in enumerate(frames):
            builder.add(time_s, det.detect(rgb))
            if on_frame is not None:
                on_frame(i)
    finally:
        if own:
            det.close()
    return builder.build()


def hip_centre_and_torso_px(landmarks_px: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mid-hip (F, 2) and 2D torso length |mid-shoulder - mid-hip| (F,) in pixels."""
    hip = 0.5 * (landmarks_px[:, _L_HIP] + landmarks_px[:, _R_HIP])  # (F, 2)
    shoulder = 0.5 * (landmarks_px[:, _L_SHOULDER] + landmarks_px[:, _R_SHOULDER])  # (F, 2)
    return hip, np.linalg.norm(shoulder - hip, axis=1)


def mark_identity_switches(
    landmarks_px: FloatArray,
    person: BoolArray,
    *,
    jump_ratio: float = 0.3,
    size_ratio: float = 1.5,
) -> BoolArray:
    """Frames to keep: ``person`` minus frames that belong to a different person than the main one.

    The detections are split into *runs*: consecutive detected frames whose 2D hip centre moves by
    at most ``jump_ratio`` x the 2D torso length between frames and whose torso length changes by
    less than ``size_ratio``. A break inside a run of detections is a likely identity switch.
    The longest run is the main person. Runs are then linked outward from it: a neighbouring run
    is accepted when its first (or last) frame is within ``jump_ratio * torso * sqrt(1 + gap)``
    of the last accepted frame (gap = number of frames between them, so a short dropout does not
    lose the person) and of a similar torso size; otherwise its frames are marked invalid.
    """
    n = int(person.shape[0])
    valid = np.zeros(n, dtype=bool)
    hip, torso = hip_centre_and_torso_px(landmarks_px)
    ok = person & np.all(np.isfinite(hip), axis=1) & np.isfinite(torso) & (torso > 1e-6)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return valid

    def same_person(a: int, b: int, gap: int) -> bool:
        scale = max(torso[a], torso[b])
        jump = float(np.linalg.norm(hip[b] - hip[a]))
        ratio = max(torso[a], torso[b]) / min(torso[a], torso[b])
        return cast("bool", jump <= jump_ratio * scale * np.sqrt(1.0 + gap) and ratio <= size_ratio)

    runs: list[list[int]] = [[int(idx[0])]]
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b == a + 1 and same_person(int(a), int(b), 0):
            runs[-1].append(int(b))
        else:
            runs.append([int(b)])
    main = max(range(len(runs)), key=lambda r: len(runs[r]))
    for f in runs[main]:
        valid[f] = True
    last = runs[main][-1]  # forward
    for run in runs[main + 1 :]:
        if same_person(last, run[0], run[0] - last - 1):
            valid[run] = True
            last = run[-1]
    first = runs[main][0]  # backward
    for run in reversed(runs[:main]):
        if same_person(first, run[-1], first - run[-1] - 1):
            valid[run] = True
            first = run[0]
    return valid
