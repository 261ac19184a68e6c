"""The motion pipeline: one source video + settings -> the `Analysis` (arrays: the track, the camera, the
solved and resampled motion). Writing files from it (formats, preview, quality, robot motion, manifest) is
the worker's job (`mocapd.worker.produce`).

Stages (reported through ``on_progress(stage, fraction)``; a callback that raises aborts the run):

* **preflight**: decode the first frames of the trimmed window (up to ``PREFLIGHT_S``) and run
  BlazePose on them; no person -> ``InputFault("no_person_detected")``. The detector and the
  frame stream carry on into processing, so nothing is decoded or detected twice.
* **processing**: pose over the whole window (`mocapd.pipeline.detect`: downscaled to
  ``DETECT_MAX_SIDE_PX``, decode in a background thread; where cores are left over, long windows
  as two segments spliced where both follow the same person; at most ``ANALYSIS_MAX_FPS`` frames a
  second of video, or exportFps when higher: `analysis_step`), resampling onto a uniform clock at
  the analysis rate (the source rate up to 60 fps; VFR sources),
  identity-switch gating, cleaning (`clean`), joints (`landmarks`), camera fit (`world`), the
  joints fitted to the 2D landmarks over the clip (`image_fit`), gravity and ground (`world`), skeleton solve, foot contacts and sliding removal, resampling to ``export_fps``.

The preview-size frames decoded for detection are kept (`mocapd.pipeline.source_copy`) and read back
onto the processing clock by `preview_frames`.

Memory is bounded by the per-frame landmark arrays (about 2 kB per frame), never by frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray

from mocapd.errors import InputFault, SystemFault
from mocapd.pipeline.clean import CleanedTrack, clean_track, resample_uniform
from mocapd.pipeline.decode import DecodedFrame, VideoInfo, iter_frames, prefetch, read_video_info
from mocapd.pipeline.detect import analysis_step, detect_window, preview_scale, preview_side_px
from mocapd.pipeline.flips import repair_flips
from mocapd.pipeline.landmarks import (
    DERIVED_JOINTS,
    LANDMARKS_USED,
    ZUP_FROM_MEDIAPIPE,
    joint_visibility,
    joints_from_landmarks,
    torso_from_limbs,
    zup_from_mediapipe,
)
from mocapd.pipeline.layout import BLAZEPOSE_33
from mocapd.pipeline.pose import FULL, PoseModel, PoseTrack
from mocapd.pipeline.settings import JobSettings
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from mocapd.pipeline.world import (
    CameraIntrinsics,
    WorldPlacement,
    camera_intrinsics,
    fit_body_rotation,
    fit_root_translation,
    place_in_world,
    smooth_rotations,
    smooth_translation,
)

if TYPE_CHECKING:  # pragma: no cover
    from mocapd.pipeline.fingers import HandAngles
    from mocapd.pipeline.hands import HandsPass
    from mocapd.pipeline.source_copy import SourceCopies

__all__ = [
    "HIP_WIDTH_FACTOR",
    "Analysis",
    "JobSettings",
    "PreviewFrames",
    "Progress",
    "StageCallback",
    "add_fingers",
    "analyse_video",
    "clean_landmarks",
    "export_motion",
    "preview_frames",
    "solve_placed",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
StageCallback = Callable[[str, float], None]

PROGRESS_INTERVAL_S = 0.25
HIP_WIDTH_FACTOR = 0.85  # BlazePose hip landmarks -> hip joint centres (see `_narrow_hips`)
_PELVIS = DEFAULT_SKELETON.index("pelvis")
_THIGHS = (DEFAULT_SKELETON.index("thigh_l"), DEFAULT_SKELETON.index("thigh_r"))
_TORSO = BLAZEPOSE_33.indices("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_PROCESSING_SHARE_POSE = 0.8  # fraction of the processing stage spent in pose detection


class Progress:
    """Throttled progress reports: at most one call per ``PROGRESS_INTERVAL_S`` unless forced."""

    def __init__(self, callback: StageCallback) -> None:
        self._callback = callback
        self._last = -math.inf

    def __call__(self, stage: str, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self._callback(stage, float(min(1.0, max(0.0, fraction))))


def _processing_fps(info: VideoInfo, times_s: FloatArray, step: int = 1) -> float:
    """The uniform clock: the stream's average rate (divided by the analysis ``step``), or the median
    spacing of the analysed frames if that rate is absent or they disagree with it."""
    nominal = float(info.fps) / step
    if step == 1 and 1.0 <= info.fps <= 480.0:
        return nominal
    if times_s.size >= 2:
        dt = float(np.median(np.diff(times_s)))
        if dt > 0:
            return nominal if step > 1 and abs(dt * nominal - 1.0) < 0.01 else 1.0 / dt
    return nominal if step > 1 else 30.0


def _processed_s(grid_s: FloatArray, fps: float, window_s: float) -> float:
    """Seconds of video the job processed: one period of the processing clock per tick of the uniform
    clock from the first decoded frame of the window to the last (so a container's millisecond
    timestamps do not turn 30 frames at 30 fps into 1.0003 s), at most the trimmed window."""
    return float(min(window_s, grid_s.size / fps))


def _grid(times_s: FloatArray, fps: float) -> FloatArray:
    """Uniform times from the first to the last decoded frame (inclusive within half a period)."""
    n = int(math.floor((times_s[-1] - times_s[0]) * fps + 0.5)) + 1
    return cast("FloatArray", times_s[0] + np.arange(n) / fps)  # (G,)


def _nearest(times_s: FloatArray, grid_s: FloatArray) -> NDArray[np.intp]:
    idx = np.clip(np.searchsorted(times_s, grid_s), 1, max(1, times_s.size - 1))
    left = idx - 1
    right = np.minimum(idx, times_s.size - 1)
    return np.where(np.abs(times_s[left] - grid_s) <= np.abs(times_s[right] - grid_s), left, right)


def _track_on_grid(track: PoseTrack, grid_s: FloatArray) -> PoseTrack:
    """Resample the detections onto the uniform clock (exact copies for constant-rate sources)."""
    keep = track.valid[:, None, None]
    px = resample_uniform(track.time_s, np.where(keep, track.landmarks_px, np.nan), grid_s)  # (G, 33, 2)
    world = resample_uniform(track.time_s, np.where(keep, track.world_m, np.nan), grid_s)  # (G, 33, 3)
    vis = resample_uniform(
        track.time_s, np.where(track.valid[:, None], track.visibility, 0.0), grid_s
    )  # (G, 33)
    near = _nearest(track.time_s, grid_s)
    person = track.person[near]
    valid = track.valid[near] & np.all(np.isfinite(px[:, list(_TORSO)]), axis=(1, 2))
    return PoseTrack(grid_s, track.image_size_px, px, world, np.nan_to_num(vis), person, valid)


def _frames_on_grid(
    frames: Iterator[DecodedFrame], grid_s: FloatArray, fps: float
) -> Iterator[NDArray[np.uint8]]:
    """For each grid time, the latest decoded frame at or before it, with half a period of the
    processing clock ``fps`` of tolerance (the grid may take only every n-th tick of that clock)."""
    half = 0.5 / fps
    current = next(frames, None)
    if current is None:
        return
    upcoming = next(frames, None)
    for t in grid_s:
        while upcoming is not None and upcoming.time_s <= t + half:
            current, upcoming = upcoming, next(frames, None)
        yield current.rgb


def _narrow_hips(joints_m: FloatArray, factor: float = HIP_WIDTH_FACTOR) -> FloatArray:
    """Thigh joints moved towards the pelvis: ``thigh' = pelvis + factor (thigh - pelvis)``, (F, J, 3).

    BlazePose's hip landmarks sit on the outside of the hips, not at the hip joint centres: their
    distance is about 0.23 m on adults, where regressions from pelvic landmarks (Harrington et al.
    2007) put the joint centres about 0.18 m apart and a 4-view triangulation of another detector's
    hip keypoints gives 0.20 m. ``HIP_WIDTH_FACTOR`` = 0.85 sits between the two; on cam01 the error
    is flat over 0.77-0.87 (MPJPE 110.3-110.4 mm against 111.2 mm unnarrowed).
    """
    out = np.array(joints_m, dtype=np.float64)
    pelvis = out[:, _PELVIS]  # (F, 3)
    for j in _THIGHS:
        out[:, j] = pelvis + factor * (out[:, j] - pelvis)
    return out


def _used(values: FloatArray) -> FloatArray:
    """Keep only the landmarks that feed a joint; the others become NaN."""
    out = np.full_like(values, np.nan)
    ids = list(LANDMARKS_USED)
    out[:, ids] = values[:, ids]
    return out


@dataclass(frozen=True)
class Analysis:
    """Everything the processing stage produced, before packaging (also used by the benchmarks)."""

    info: VideoInfo
    fps: float  # the uniform processing clock (source rate)
    grid_s: FloatArray  # (G,) source times of the processing frames
    track: PoseTrack  # detections on the uniform clock
    world_clean: CleanedTrack  # cleaned world landmarks (G, 33, 3), MediaPipe axes
    intrinsics: CameraIntrinsics
    translation_cam: FloatArray  # (G, 3) raw per-frame camera fit, OpenCV axes
    body_rotation: FloatArray  # (G, 3, 3) smoothed rotation of the world landmarks into the camera frame
    placement: WorldPlacement
    raw_joints: FloatArray  # (G, J, 3) uncleaned, body-centred joints (bone-length spread input)
    motion: Motion  # solved at ``fps`` (feet cleaned for full_body)
    solve_report: Any
    export: Motion  # resampled to the export rate
    export_contacts: Any
    timings_s: dict[str, float]
    source_copy: SourceCopies | None = None  # preview-size frames kept while detecting (decode once)
    step: int = 1  # pose detected on every step-th source frame (`analysis_step`)
    processed_s: float = 0.0  # seconds of video processed (decoded timestamps of the window): the charge
    pose_model: PoseModel = FULL  # the landmark model that ran
    hands: dict[str, Any] | None = None  # handTracking: hands seen per side, the detector, its time
    misread_frames: int = 0  # frames read front-to-back by the detector, repaired (`mocapd.pipeline.flips`)
    hands_px: FloatArray | None = None  # handTracking: (G, 2, 21, 2) hand landmarks (left, right), source px
    hand_angles: tuple[HandAngles, HandAngles] | None = None  # handTracking: (left, right) on the processing clock
    finger_scale: float = 1.0  # handTracking: the hands' size (1.0 = the 1.75 m rest)


PLANTED_FOOT_NOISE_MPS = 0.8
# The world landmarks of a joint BlazePose rates hidden are still its estimate from the whole body (the
# image shows where the rest of the limb is): kept, they beat a value held over the occlusion. On the
# balancing clip's cam03 the right arm and knee are rated hidden on 30-46 % of the frames; gating them
# at 0.5 raised the cleaned landmarks' PA-MPJPE from 92.7 (raw) to 105.3 mm, ungated it is 91.9. The 2D
# landmarks stay gated: the camera fit weights only what the image shows.
WORLD_MIN_VISIBILITY = 0.0
# The landmarks the camera fits read (`world.FIT_LANDMARKS` and the body-rotation fit's).
_FIT_MASK_LANDMARKS = tuple(
    i for pair in BLAZEPOSE_33.pairs("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "heel", "foot_index")
    for i in pair
)


def clean_landmarks(track: PoseTrack, fps: float) -> tuple[CleanedTrack, CleanedTrack, BoolArray]:
    """The cleaned world landmarks (gated at ``WORLD_MIN_VISIBILITY``) and 2D landmarks (gated at
    `clean_track`'s default visibility) of the landmarks that feed a joint, and where the camera fit
    may use them (G, 33): where the world landmarks gated at that default visibility are measured or
    bridged, as before hidden joints were kept (on cam01 the fit and every figure are unchanged; a
    mask from the 2D cleaning instead moved cam01's G1 foot skate from 0.0 to 0.7-0.8 cm/s)."""
    world = clean_track(_used(track.world_m), track.visibility, track.valid, fps,
                        min_visibility=WORLD_MIN_VISIBILITY)
    px = clean_track(_used(track.landmarks_px), track.visibility, track.valid, fps)
    ids = list(_FIT_MASK_LANDMARKS)  # only what the fit reads: half the channels, half the cost
    gated = clean_track(track.world_m[:, ids], track.visibility[:, ids], track.valid, fps, smooth=False)
    mask = np.zeros(track.visibility.shape, dtype=bool)
    mask[:, ids] = gated.known | gated.interpolated
    return world, px, mask


IMAGE_FIT = True
_DERIVED = [DEFAULT_SKELETON.index(n) for n in DERIVED_JOINTS]


def _fit_to_image(
    joints_cam: FloatArray, translation_cam: FloatArray, px_clean: CleanedTrack, visibility: FloatArray,
    intrinsics: CameraIntrinsics, fps: float,
) -> tuple[FloatArray, Any]:
    """Body-centred joints (G, J, 3, our axes) refined against the 2D landmarks (`mocapd.pipeline.image_fit`)
    in the camera frame where `place_in_world` puts them, and the fit's report."""
    from mocapd.pipeline.image_fit import fit_to_image
    from mocapd.pipeline.solve import rest_bone_lengths

    t_s = smooth_translation(translation_cam, fps)  # (G, 3) what place_in_world adds
    mp_from_zup = ZUP_FROM_MEDIAPIPE.T
    prior = joints_cam @ mp_from_zup.T + t_s[:, None, :]  # (G, J, 3) OpenCV camera frame
    seen = px_clean.known | px_clean.interpolated  # (G, 33)
    px = np.where(seen[..., None], px_clean.values, np.nan)
    px3 = np.concatenate([px, np.zeros(px.shape[:2] + (1,))], axis=-1)  # the joint map is linear
    joints_px = _narrow_hips(joints_from_landmarks(px3))[..., :2]  # (G, J, 2)
    weights = joint_visibility(visibility)  # (G, J)
    lengths = rest_bone_lengths(joints_cam)
    # The limbs and the head are fitted; the torso joints are built from them as from the landmarks (fitted
    # on their own, the clavicles' 6 cm baseline would turn the chest).
    prior[:, _DERIVED] = np.nan
    fitted, report = fit_to_image(prior, joints_px, weights, lengths, intrinsics.focal_px,
                                  (intrinsics.cx_px, intrinsics.cy_px), fps)  # fmt: skip
    return torso_from_limbs((fitted - t_s[:, None, :]) @ mp_from_zup), report


def pose_model_for(settings: JobSettings) -> PoseModel:
    """The landmark model a job's ``modelQuality`` runs: Full from the wheel, or an installed file.

    Admission refuses a job whose model is not installed where the API runs; a worker on a machine
    without it fails the attempt as a system fault (retried, perhaps by a worker that has it)."""
    from mocapd.model_files import is_installed, mediapipe_resource_root, model_for_quality

    model = model_for_quality(settings.model_quality)
    if model is None:
        return FULL
    models_dir = Path(settings.models_dir) if settings.models_dir else None
    if models_dir is None or not is_installed(models_dir, model):
        raise SystemFault("model_unavailable", f"the {model.name} model is not installed on this worker "
                          "(`mocapd models fetch`)")
    import mediapipe

    wheel_root = Path(mediapipe.__file__).resolve().parents[1]
    return PoseModel(name=model.name, complexity=2, label="BlazePose Heavy",
                     resource_root=mediapipe_resource_root(models_dir, wheel_root), sha256=model.sha256,
                     source=f"{model.package}@{model.version}")


def solve_placed(joints_m: FloatArray, fps: float, settings: JobSettings) -> tuple[Motion, Any]:
    """The skeleton solve of placed joints (G, J, 3) at ``fps``, feet cleaned for ``full_body``: the
    motion at the processing rate and the solve report (also what a re-export re-solves from)."""
    from mocapd.pipeline.contacts import detect_contacts, remove_foot_sliding
    from mocapd.pipeline.solve import solve_motion

    motion, solve_report = solve_motion(
        joints_m, fps, subject_height_m=settings.subject_height_m, mocap_type=settings.mocap_type
    )
    if settings.mocap_type == "full_body":
        # Monocular depth noise moves a planted foot at up to ~0.8 m/s in the solved motion (cam01): the
        # first pass accepts that speed near the ground, and the slide removal then pins those feet.
        motion = remove_foot_sliding(motion, detect_contacts(motion, speed_m_s=PLANTED_FOOT_NOISE_MPS))
    return motion, solve_report


def export_motion(motion: Motion, export_fps: float) -> tuple[Motion, Any]:
    """``motion`` resampled to the export rate, and its foot contacts."""
    from mocapd.pipeline.contacts import detect_contacts
    from mocapd.pipeline.resample import resample_motion

    export = resample_motion(motion, float(export_fps))
    return export, detect_contacts(export)


def analyse_video(
    source: Path, settings: JobSettings, on_progress: StageCallback, *, work_dir: Path | None = None
) -> Analysis:
    """Preflight and processing stages (see the module doc); ``on_progress`` is left at processing 0.9.

    With ``handTracking`` the hands pass (`mocapd.pipeline.hands.HandsPass`) runs beside the body's
    from the start, and is stopped if the job fails first.
    """
    hands_pass = _start_hands_pass(Path(source), settings) if settings.hand_tracking else None
    try:
        return _analyse_video(source, settings, on_progress, work_dir, hands_pass)
    finally:
        if hands_pass is not None:
            hands_pass.cancel()  # nothing to stop once the job has its hands


def _start_hands_pass(source: Path, settings: JobSettings) -> HandsPass | None:
    """The hands pass over the job's window, on the frames the body pass analyses (None for settings
    that `_analyse_video` refuses)."""
    from mocapd.pipeline.hands import HandsPass

    if not (settings.export_fps > 0 and settings.trim_end_s > settings.trim_start_s >= 0):
        return None
    info = read_video_info(source)
    step = analysis_step(info.fps, settings.export_fps)
    min_interval_s = (step - 0.5) / info.fps if step > 1 and info.fps > 0 else 0.0
    return HandsPass(source, settings.trim_start_s, settings.trim_end_s, min_interval_s=min_interval_s)


def _analyse_video(
    source: Path, settings: JobSettings, on_progress: StageCallback, work_dir: Path | None,
    hands_pass: HandsPass | None,
) -> Analysis:
    """`analyse_video`'s stages, with the hands pass already running (or None).

    Raises ``InputFault("no_person_detected")`` in preflight and ``InputFault("source_unreadable" |
    "source_unsupported")`` for a bad video; any other exception is a system fault.

    With ``work_dir``, the preview-size frames are kept there (``Analysis.source_copy``, temporary
    files written in the background while pose detection runs, see `mocapd.pipeline.source_copy`) for
    `preview_frames`.
    """
    if settings.mocap_type not in ("full_body", "upper_body"):
        raise InputFault("mocap_type_invalid", f"unknown mocap type {settings.mocap_type!r}")
    if not settings.export_fps > 0:
        raise InputFault("export_fps_invalid", f"export fps must be positive, not {settings.export_fps}")
    if not settings.trim_end_s > settings.trim_start_s >= 0:
        raise InputFault("api_trim_range_invalid", "the trim window is empty")
    progress = on_progress if isinstance(on_progress, Progress) else Progress(on_progress)
    started = time.monotonic()
    timings: dict[str, float] = {}

    # -- preflight + pose -------------------------------------------------------------------------
    info = read_video_info(Path(source))
    step = analysis_step(info.fps, settings.export_fps)
    pose_model = pose_model_for(settings)
    raw, copy = detect_window(
        Path(source),
        info,
        settings.trim_start_s,
        settings.trim_end_s,
        progress,
        copy_dir=work_dir,
        processing_share=_PROCESSING_SHARE_POSE,
        step=step,
        pose_model=pose_model,
    )
    timings["pose"] = time.monotonic() - started
    fps = _processing_fps(info, raw.time_s, step)
    grid_s = _grid(raw.time_s, fps)
    processed_s = _processed_s(grid_s, fps, settings.trim_end_s - settings.trim_start_s)
    track = _track_on_grid(raw, grid_s)
    if not track.valid.any():
        raise InputFault("no_person_detected", "no person could be followed in the trimmed window")
    progress("processing", _PROCESSING_SHARE_POSE, force=True)

    # -- clean, joints, world ---------------------------------------------------------------------
    # Front/back misreadings repaired first (`mocapd.pipeline.flips`); ``track`` stays as detected.
    read, misread = repair_flips(track)
    world_clean, px_clean, fit_mask = clean_landmarks(read, fps)
    intrinsics = camera_intrinsics(
        info.width_px,
        info.height_px,
        focal_length_px=settings.focal_length_px,
        camera_fov_deg=settings.camera_fov_deg,
    )
    fit_weights = np.where(
        fit_mask, np.maximum(read.visibility, 0.5), 0.0,
    )  # (G, 33)
    translation0 = fit_root_translation(
        px_clean.values, world_clean.values, fit_weights, intrinsics
    )  # (G, 3)
    if not np.isfinite(translation0).any():
        raise InputFault("no_person_detected", "the person is never visible enough to place in the scene")
    # BlazePose's world frame is only roughly camera-aligned: refine its rotation against the 2D landmarks.
    body_rot = smooth_rotations(
        fit_body_rotation(px_clean.values, world_clean.values, fit_weights, intrinsics, translation0), fps
    )  # (G, 3, 3)
    world_cam = np.einsum("fij,fkj->fki", body_rot, world_clean.values)  # (G, 33, 3) camera axes
    translation_cam = fit_root_translation(px_clean.values, world_cam, fit_weights, intrinsics)  # (G, 3)
    translation_cam = np.where(np.isfinite(translation_cam), translation_cam, translation0)
    joints_cam = _narrow_hips(joints_from_landmarks(zup_from_mediapipe(world_cam)))  # (G, J, 3)
    refined_cam, image_fit = None, None
    if IMAGE_FIT:
        refined_cam, image_fit = _fit_to_image(joints_cam, translation_cam, px_clean, read.visibility,
                                               intrinsics, fps)  # fmt: skip
        timings["imageFit"] = float(image_fit.seconds)
    # gravity and ground from the world landmarks' pose, as without the fit; the fitted joints placed
    placement = place_in_world(joints_cam, translation_cam, fps, refined_cam=refined_cam)
    raw_joints = joints_from_landmarks(zup_from_mediapipe(_used(track.world_m)))  # (G, J, 3)
    progress("processing", 0.85, force=True)

    # -- solve, contacts, resample ---------------------------------------------------------
    motion, solve_report = solve_placed(placement.joints_m, fps, settings)
    progress("processing", 0.9, force=True)
    export, export_contacts = export_motion(motion, settings.export_fps)
    hands = hands_px = angles = None
    scale = 1.0
    if hands_pass is not None:
        hands_started = time.monotonic()
        angles, scale, hands_px = _hand_angles(hands_pass, info, grid_s, fps, float(solve_report.stature_m))
        export, hands = add_fingers(export, angles, fps, scale)
        timings["hands"] = time.monotonic() - hands_started  # the wait for the hands pass beyond the body's
        timings["handsPass"] = hands_pass.duration_s
    timings["processing"] = time.monotonic() - started
    return Analysis(
        info, fps, grid_s, track, world_clean, intrinsics, translation_cam, body_rot, placement, raw_joints,
        motion, solve_report, export, export_contacts, timings, copy, step, processed_s, pose_model, hands,
        int(misread.sum()), hands_px, angles, scale,
    )  # fmt: skip


def _hand_angles(
    hands_pass: HandsPass, info: VideoInfo, grid_s: FloatArray, fps: float, stature_m: float,
) -> tuple[tuple[HandAngles, HandAngles], float, FloatArray]:
    """Both hands' finger angles on the processing clock (left, right), the hands' size, and their 2D
    landmarks on that clock in source pixels, (G, 2, 21, 2)."""
    from mocapd.pipeline.fingers import hand_angles_track
    from mocapd.pipeline.hands import on_grid

    grid = on_grid(hands_pass.result(), grid_s, tolerance_s=0.5 / fps)
    angles = (hand_angles_track(grid.left, grid.left_seen, fps), hand_angles_track(grid.right, grid.right_seen, fps))
    scale = stature_m / 1.75 if np.isfinite(stature_m) and stature_m > 0 else 1.0
    return angles, scale, grid.image_xy((info.width_px, info.height_px))


def add_fingers(
    export: Motion, angles: tuple[HandAngles, HandAngles], fps: float, scale: float,
) -> tuple[Motion, dict[str, Any]]:
    """The export motion with finger bones (see `mocapd.pipeline.fingers`) from both hands' angles on the
    processing clock at ``fps`` (what `analyse_video` finds, and what a re-export reads from the stored
    motion), and the hands' report."""
    from mocapd.pipeline.fingers import HandAngles, finger_limits_rad, with_fingers

    per_side = {"left": angles[0], "right": angles[1]}
    frames = int(angles[0].seen.shape[0])
    # onto the export clock (the export's frame k sits at k / export fps from the window's first frame)
    u = np.clip(np.arange(export.num_frames) * fps / export.fps, 0.0, max(frames - 1, 0))
    i0 = np.floor(u).astype(int)
    i1 = np.minimum(i0 + 1, max(frames - 1, 0))
    a = (u - i0)

    def on_export(h: HandAngles) -> HandAngles:
        flex = h.flexion_rad[i0] + a[:, None, None] * (h.flexion_rad[i1] - h.flexion_rad[i0])
        spread = h.spread_rad[i0] + a[:, None] * (h.spread_rad[i1] - h.spread_rad[i0])
        return HandAngles(flex, spread, h.seen[np.where(a < 0.5, i0, i1)])

    left, right = on_export(per_side["left"]), on_export(per_side["right"])
    lo, hi = finger_limits_rad()
    outside = sum(int(((h.flexion_rad < lo - 1e-9) | (h.flexion_rad > hi + 1e-9)).any(axis=(1, 2)).sum())
                  for h in (left, right))
    report = {
        "detector": "mediapipe-0.10.21 Holistic (hand landmarks on the body's hand crops)",
        "framesAnalysed": frames,
        "left": {"framesSeen": int(per_side["left"].seen.sum()),
                 "seenRatio": round(float(per_side["left"].seen.mean()), 4) if frames else 0.0},
        "right": {"framesSeen": int(per_side["right"].seen.sum()),
                  "seenRatio": round(float(per_side["right"].seen.mean()), 4) if frames else 0.0},
        "unseen": "relaxed pose, blended in and out over 0.25 s",
        "framesOutsideLimits": outside,
    }
    return with_fingers(export, left, right, scale=scale), report


@dataclass
class PreviewFrames:
    """The source frames a preview shows, at preview size, on every ``step``-th tick of the processing
    clock, with the 2D landmarks scaled to match. ``close()`` stops the reader (always call it)."""

    frames: Iterator[NDArray[np.uint8]]  # (h, w, 3) RGB, one per preview tick
    landmarks_px: FloatArray  # (P, 33, 2) in preview pixels
    fps: float
    count: int
    _decoded: Iterator[DecodedFrame] = field(repr=False)
    hands_px: FloatArray | None = None  # (P, 2, 21, 2) in preview pixels (handTracking)

    def close(self) -> None:
        self._decoded.close()  # type: ignore[attr-defined]


def preview_frames(a: Analysis, source: Path, end_s: float, step: int) -> PreviewFrames:
    """The frames kept while detecting (or, failing that, a second decode at preview size), picked onto
    the uniform clock, every ``step``-th tick; ``end_s`` is the window's end."""
    info, track, grid_s = a.info, a.track, a.grid_s
    scale = preview_scale(info)
    if a.source_copy is not None and a.source_copy.close():
        copied = (DecodedFrame(i, t, rgb) for i, (t, rgb) in enumerate(a.source_copy.frames()))
        decoded = prefetch(copied)
    else:
        decoded = prefetch(
            iter_frames(
                source,
                start_s=float(grid_s[0]),
                end_s=end_s,
                max_side_px=preview_side_px(info),
            )
        )
    preview_grid_s = grid_s[::step]
    landmarks_px = track.landmarks_px[::step] * scale  # frames are scaled by the same factor (up to rounding)
    frames = _frames_on_grid(decoded, preview_grid_s, a.fps)
    hands_px = a.hands_px[::step] * scale if a.hands_px is not None else None
    return PreviewFrames(frames, landmarks_px, a.fps / step, int(preview_grid_s.size), decoded, hands_px)
