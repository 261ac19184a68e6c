"""A job's products: the pipeline's `Analysis` turned into the files a job delivers.

`produce` runs the motion pipeline (`mocapd.pipeline.run.analyse_video`), then each target's step (a
robot target's retargeting, `mocapd.robots.registry`), then packages: every file the catalogue
(`mocapd.domain.targets`) lists for the job's targets, by the writer it names
(`mocapd.formats.writers`), the preview video (from the preview-size frames kept while detecting) and
the quality report. It returns each file with its target and content type, and the pipeline's part of
the manifest (source as decoded, camera, processing facts, targets); the runner adds the job,
settings, billing and file list and writes ``manifest.json``. The solved motion is also kept as a private
file (``motion.npz``, `mocapd.formats.motion_npz`: with the hands' finger angles and what the quality
report reads of the detection), from which `reexport` makes a later job's products (other frame rates,
targets, upper body) by the same target steps and writers, with no detection: the same files, the
fingers of a ``handTracking`` parent, ``quality.json`` (the parent's detection figures, this job's motion
figures) and a preview of the motion alone (there is no video to draw it over).

Progress: ``on_progress(stage, fraction)``, throttled; a callback that raises aborts the run.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mocapd.domain.targets import DEFAULT_TARGET, PREVIEW_FILE, QUALITY_FILE, Target, produced_targets
from mocapd.formats.writers import Take, writer_for
from mocapd.pipeline.fingers import HandAngles
from mocapd.pipeline.run import (
    Analysis,
    Progress,
    StageCallback,
    add_fingers,
    analyse_video,
    export_motion,
    preview_frames,
    solve_placed,
)
from mocapd.pipeline.settings import JobSettings
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from mocapd.robots.registry import robot_target
from mocapd.worker.processor import ArtifactFile, ProcessResult

if TYPE_CHECKING:  # pragma: no cover
    from mocapd.formats.motion_npz import StoredDetection, StoredHands

__all__ = ["MOTION_NAME", "produce", "reexport"]

MOTION_NAME = "motion.npz"

FloatArray = NDArray[np.float64]


def produce(
    source: Path, settings: JobSettings, out_dir: Path, on_progress: StageCallback, *, inputs_dir: Path | None = None
) -> ProcessResult:
    """Turn ``source`` into the job's artifacts in ``out_dir``.

    Raises ``InputFault("no_person_detected")`` in preflight and ``InputFault("source_unreadable" |
    "source_unsupported")`` for a bad video; any other exception is a system fault.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(on_progress)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mocapd-work-") as work_dir:
        a = analyse_video(Path(source), settings, progress, work_dir=Path(work_dir))
        takes = [(target, _take(target, a.export, a.export_contacts, settings, inputs_dir))
                 for target in produced_targets(settings.target_ids)]
        a.timings_s["processing"] = time.monotonic() - started
        progress("processing", 1.0, force=True)
        files = _package(Path(source), settings, out_dir, progress, a, takes)
    a.timings_s["total"] = time.monotonic() - started
    manifest = _manifest(a, takes)
    private = _keep_motion(out_dir, a.motion, a.placement.joints_m, settings.mocap_type, settings.subject_height_m,
                           hands=_stored_hands(a), detection=_detection(a))
    progress("packaging", 1.0, force=True)
    return ProcessResult(files=files, manifest=manifest, processed_s=a.processed_s, private=[private])


def reexport(
    stored: Path, settings: JobSettings, out_dir: Path, on_progress: StageCallback, *, inputs_dir: Path | None = None
) -> ProcessResult:
    """A re-export's products from its parent's stored motion (``motion.npz``): the motion at
    ``settings.export_fps`` for ``settings.target_ids``, solved again from the stored joints only for
    another ``mocap_type``. Nothing is decoded or detected; the target steps and writers are `produce`'s."""
    from mocapd.formats.motion_npz import read_motion_npz

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(on_progress)
    started = time.monotonic()
    progress("preflight", 0.0, force=True)
    kept = read_motion_npz(Path(stored))
    progress("processing", 0.0, force=True)
    motion, solve_report = kept.motion, None
    if settings.mocap_type != kept.mocap_type:
        motion, solve_report = solve_placed(kept.joints_m, kept.motion.fps,
                                            replace(settings, subject_height_m=kept.subject_height_m))
    export, contacts = export_motion(motion, settings.export_fps)
    hands_report = None
    if kept.hands is not None:  # the parent's fingers, on this export's clock (any rate, any mocapType)
        h = kept.hands
        angles = tuple(HandAngles(h.flexion_rad[k], h.spread_rad[k], h.seen[k]) for k in (0, 1))
        export, hands_report = add_fingers(export, (angles[0], angles[1]), motion.fps, h.scale)
    takes = [(target, _take(target, export, contacts, settings, inputs_dir))
             for target in produced_targets(settings.target_ids)]
    progress("processing", 1.0, force=True)
    progress("packaging", 0.0, force=True)
    files: list[ArtifactFile] = []
    for target, take in takes:
        for spec in target.files():
            path = out_dir / spec.name
            path.write_bytes(writer_for(spec.writer)(take))
            files.append(ArtifactFile(path, target.id, spec.content_type))
    progress("packaging", 0.1, force=True)
    robot = next((take.robot for _, take in takes if take.robot is not None), None)
    files.append(_motion_preview(out_dir, export, robot))
    progress("packaging", 0.9, force=True)
    quality = _quality(kept.detection, export, contacts, robot, settings.mocap_type, hands_report)
    quality["reexport"] = {
        "detection": "the parent job's: a re-export decodes and detects nothing" if kept.detection is not None
        else "not stored with the parent job's motion: the figures about frames, landmark confidence and bone "
             "lengths are not available",
        "motion": "this job's: jitter, foot contacts and the robot are measured on its own motion",
    }
    files.append(_put_json(out_dir, QUALITY_FILE.name, quality, QUALITY_FILE.content_type))
    private = _keep_motion(out_dir, motion, kept.joints_m, settings.mocap_type, kept.subject_height_m,
                           hands=kept.hands, detection=kept.detection)
    manifest = {
        "targets": {
            target.id: {"resultType": target.kind.result_type, "files": [spec.name for spec in target.files()],
                        **_target_facts(take, solve_report)}
            for target, take in takes
        },
        "processing": {
            "fps": round(motion.fps, 4),
            "frames": motion.num_frames,
            "reexport": True,
            "solvedAgain": solve_report is not None,  # for another mocapType, from the stored joints
            **({"hands": hands_report} if hands_report is not None else {}),
            "preview": "the motion alone (and the robot's): a re-export has no video to draw it over",
            "timingsSec": {"total": round(time.monotonic() - started, 3)},
        },
    }
    progress("packaging", 1.0, force=True)
    return ProcessResult(files=files, manifest=manifest, private=[private])


def _take(target: Target, export: Motion, contacts: Any, settings: JobSettings, inputs_dir: Path | None = None) -> Take:
    """What the target's files are written from: the solved motion, and for a robot or an avatar its
    retargeting."""
    if target.kind.id == "avatar":
        return Take(target.id, export, avatar=_avatar_animation(target, export, contacts, inputs_dir))
    robot = robot_target(target.id)
    if robot is not None:
        return Take(target.id, export, robot.retarget(export, contacts, settings.mocap_type))
    if target.id == DEFAULT_TARGET:
        return Take(target.id, export)
    raise ValueError(f"nothing produces target {target.id!r}")


def _keep_motion(out_dir: Path, motion: Motion, joints_m: FloatArray, mocap_type: str,
                 subject_height_m: float | None, *, hands: StoredHands | None,
                 detection: StoredDetection | None) -> Path:
    """The solved motion as a private file, for later re-exports."""
    from mocapd.formats.motion_npz import write_motion_npz

    path = out_dir / ".private" / MOTION_NAME
    path.parent.mkdir(exist_ok=True)
    write_motion_npz(path, motion, joints_m, mocap_type, subject_height_m, hands=hands, detection=detection)
    return path


def _stored_hands(a: Analysis) -> StoredHands | None:
    from mocapd.formats.motion_npz import StoredHands

    if a.hand_angles is None or a.hands is None:
        return None
    left, right = a.hand_angles
    return StoredHands((left.flexion_rad, right.flexion_rad), (left.spread_rad, right.spread_rad),
                       (left.seen, right.seen), a.finger_scale, a.hands)


def _detection(a: Analysis) -> StoredDetection:
    """What the quality report reads of the detection (kept for re-exports too)."""
    from mocapd.formats.motion_npz import StoredDetection

    track = a.track
    frame_held = a.world_clean.held.any(axis=1)
    return StoredDetection(
        source_fps=a.fps,
        visibility=np.where(track.valid[:, None], track.visibility, np.nan),
        person=track.valid,  # the tracked person: a detection of someone else does not count
        interpolated=a.world_clean.interpolated.any(axis=1) & ~frame_held,
        held=frame_held,
        detected=track.person,  # a detection of someone else is reported, not used
        time_s=track.time_s,
        raw_joints_m=a.raw_joints,
    )


def _quality(detection: StoredDetection | None, export: Motion, export_contacts: Any, robot: Any | None,
             mocap_type: str, hands: dict[str, Any] | None) -> dict[str, Any]:
    """``quality.json``: the detection's figures (None: not known) and those of the exported motion."""
    from mocapd.formats.quality import QualityInputs, RobotQualityInputs, build_quality_report

    fc = export_contacts
    contacts = {name: np.asarray(fc.contact[:, i], dtype=bool) for i, name in enumerate(fc.joint_names)}
    robot_inputs = None
    if robot is not None:
        robot_inputs = RobotQualityInputs.from_robot_motion(robot, tracking_error_m=robot.quality.get("tracking_error_m"))
    d = detection
    none = np.zeros(0, dtype=bool)
    quality = build_quality_report(
        QualityInputs(
            source_fps=d.source_fps if d is not None else export.fps,
            visibility=d.visibility if d is not None else np.zeros((0, 33)),
            person_mask=d.person if d is not None else none,
            interpolated_mask=d.interpolated if d is not None else none,
            held_mask=d.held if d is not None else none,
            motion_fps=export.fps,
            solved_positions_m=export.world_positions_m()[:, : len(DEFAULT_SKELETON.names)],  # fingers aside
            input_positions_m=d.raw_joints_m if d is not None else None,
            contacts=contacts,
            robot=robot_inputs,
            mocap_type=mocap_type,
            detected_mask=d.detected if d is not None else None,
            frame_times_s=d.time_s if d is not None else None,
        )
    )
    if d is None:
        for key in ("frames", "perJointConfidence", "boneLengthSpreadMm", "boneLengthCvPercent"):
            quality[key] = None
    if hands is not None:
        quality["hands"] = hands
    return quality


def _put_json(out_dir: Path, name: str, data: dict[str, Any], content_type: str) -> ArtifactFile:
    path = out_dir / name
    path.write_bytes(json.dumps(data, indent=2, sort_keys=False, allow_nan=False).encode())
    return ArtifactFile(path, None, content_type)


def _motion_preview(out_dir: Path, export: Motion, robot: Any | None) -> ArtifactFile:
    from mocapd.formats.preview import PIPELINE_PREVIEW_HEIGHT_PX, encode_motion_preview

    path = out_dir / PREVIEW_FILE.name
    encode_motion_preview(export, path, robot=robot, max_height_px=PIPELINE_PREVIEW_HEIGHT_PX)
    return ArtifactFile(path, None, PREVIEW_FILE.content_type)


def _avatar_animation(target: Target, export: Motion, contacts: Any, inputs_dir: Path | None) -> Any:
    """The job's copy of the avatar (made at job creation, `mocapd.api.avatars.snapshot_avatars`)
    animated with the export motion and its foot contacts."""
    from mocapd.avatars.retarget import retarget_to_avatar
    from mocapd.avatars.rig import load_rig

    rig_path = inputs_dir / f"avatar_{target.ref}.npz" if inputs_dir is not None else None
    if rig_path is None or not rig_path.exists():
        raise ValueError(f"the job has no copy of avatar {target.ref}")
    meta = json.loads(rig_path.with_suffix(".json").read_text())
    return retarget_to_avatar(export, load_rig(rig_path.read_bytes()), dict(meta["mapping"]), contacts)


def _package(
    source: Path,
    settings: JobSettings,
    out_dir: Path,
    progress: Progress,
    a: Analysis,
    takes: list[tuple[Target, Take]],
) -> list[ArtifactFile]:
    export = a.export
    robot = next((take.robot for _, take in takes if take.robot is not None), None)

    def put(name: str, data: bytes, target_id: str | None, content_type: str) -> ArtifactFile:
        path = out_dir / name
        path.write_bytes(data)
        return ArtifactFile(path, target_id, content_type)

    def write_targets() -> list[ArtifactFile]:
        return [put(spec.name, writer_for(spec.writer)(take), target.id, spec.content_type)
                for target, take in takes for spec in target.files()]  # fmt: skip

    progress("packaging", 0.0, force=True)
    # The motion files are written beside the preview (a helper thread): the preview is libx264 and
    # OpenCV work that releases the GIL, and it waits for nothing but the motion.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mocapd-writers") as pool:
        written = pool.submit(write_targets)
        preview = _write_preview(source, settings, out_dir, progress, a, robot)
    files = [*written.result(), preview]  # a writer's failure is the job's
    progress("packaging", 0.9, force=True)

    quality = _quality(_detection(a), export, a.export_contacts, robot, settings.mocap_type, a.hands)
    data = json.dumps(quality, indent=2, sort_keys=False, allow_nan=False).encode()
    files.append(put(QUALITY_FILE.name, data, None, QUALITY_FILE.content_type))
    return files


def _write_preview(
    source: Path,
    settings: JobSettings,
    out_dir: Path,
    progress: Progress,
    a: Analysis,
    robot: Any | None,
) -> ArtifactFile:
    """``preview.mp4`` from the preview-size frames kept while detecting, with the motion (and robot)."""
    from mocapd.formats.preview import PIPELINE_PREVIEW_HEIGHT_PX, encode_preview, preview_frame_step

    shown = preview_frames(a, source, settings.trim_end_s, preview_frame_step(a.fps))

    def frames() -> Iterator[NDArray[np.uint8]]:
        for i, rgb in enumerate(shown.frames):
            progress("packaging", 0.8 * i / shown.count)
            yield rgb

    preview_path = out_dir / PREVIEW_FILE.name
    try:
        encode_preview(
            frames(),
            shown.landmarks_px,
            a.export,
            preview_path,
            fps=shown.fps,
            robot=robot,
            max_height_px=PIPELINE_PREVIEW_HEIGHT_PX,
            hands_px=shown.hands_px,
        )
    finally:
        shown.close()
    return ArtifactFile(preview_path, None, PREVIEW_FILE.content_type)


def _mean_angle_deg(rot: FloatArray) -> float:
    """Mean rotation angle of (F, 3, 3) matrices, degrees: acos((trace - 1) / 2)."""
    cos = np.clip((np.trace(rot, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return round(float(np.degrees(np.nanmean(np.arccos(cos)))), 3)


def _target_facts(take: Take, solve_report: Any | None) -> dict[str, Any]:
    if take.avatar is not None:
        rig = take.avatar.rig
        return {"bones": rig.num_bones, "fps": take.avatar.fps, "frameCount": take.avatar.num_frames,
                "unitM": rig.unit_m, "upAxis": rig.up_axis}
    if take.robot is not None:
        return {"variant": take.robot.variant, "fps": take.robot.fps, "frameCount": take.robot.num_frames}
    motion = take.motion
    facts: dict[str, Any] = {"skeleton": list(motion.skeleton.names), "fps": motion.fps,
                             "frameCount": motion.num_frames}
    if solve_report is not None:  # a re-export of the stored motion has no solve of its own
        facts["boneLengthM"] = {k: round(float(v), 4) for k, v in solve_report.bone_length_m.items()}
        facts["scale"] = round(float(solve_report.scale), 4)
        facts["statureM"] = round(float(solve_report.stature_m), 4)
    return facts


def _manifest(a: Analysis, takes: list[tuple[Target, Take]]) -> dict[str, Any]:
    """The pipeline's part of ``manifest.json`` (the runner adds job, settings, billing and files)."""
    info, fps, track = a.info, a.fps, a.track
    report = a.world_clean.report
    targets: dict[str, Any] = {
        target.id: {
            "resultType": target.kind.result_type,
            "files": [spec.name for spec in target.files()],
            **_target_facts(take, a.solve_report),
        }
        for target, take in takes
    }
    return {
        "source": {
            "width": info.width_px,
            "height": info.height_px,
            "rotationCcwDeg": info.rotation_deg,
            "fps": round(info.fps, 4),
            "durationSec": round(info.duration_s, 4),
            "codec": info.codec,
            "frameCount": info.frame_count,
        },
        "camera": {
            **a.intrinsics.as_dict(),
            **a.placement.as_dict(),
            "bodyRotationCorrectionDeg": _mean_angle_deg(a.body_rotation),
            "assumption": "static camera",
        },
        "processing": {
            "fps": round(fps, 4),
            "sourceFps": round(a.info.fps, 4),
            "analysisFps": round(fps, 4),  # pose detected on every analysisStep-th frame
            "analysisStep": a.step,
            "processedSec": round(a.processed_s, 3),
            "frames": int(track.num_frames),
            "framesWithPerson": int(track.person.sum()),
            "framesKept": int(track.valid.sum()),
            "interpolatedFrames": report.interpolated_frames,
            "heldFrames": report.held_frames,
            "outlierSamples": report.outlier_points,
            "misreadFramesRepaired": a.misread_frames,  # read front-to-back by the detector
            "detector": f"mediapipe-0.10.21 {a.pose_model.label}",
            **({"hands": a.hands} if a.hands is not None else {}),
            "models": [{"name": a.pose_model.name, "sha256": a.pose_model.sha256, "source": a.pose_model.source}],
            "timingsSec": {k: round(v, 3) for k, v in a.timings_s.items()},
        },
        "targets": targets,
    }
