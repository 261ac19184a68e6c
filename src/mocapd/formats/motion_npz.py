"""A job's solved motion kept among its private files (``motion.npz``), so a re-export can make other
frame rates, targets or an upper-body take without decoding or detecting anything again.

One compressed NumPy archive (no pickled objects; loaded with ``allow_pickle=False``):

- ``names``, ``parents``, ``rest_offsets_m`` (J, 3): the skeleton;
- ``fps``, ``local_quat_wxyz`` (F, J, 4) and the root's ``root_translation_m`` (F, 3): the motion at the
  processing rate. Every other joint's local translation is its fixed bone (``bone_translation_m``,
  (J, 3)), as the solver makes it; a motion whose bones move is stored whole (``local_translation_m``);
- ``joints_m`` (F, J, 3, float32): the placed joints the solve started from, to solve again for
  another ``mocapType``; ``mocap_type`` and ``subject_height_m``: what the stored motion was solved with.
- with ``handTracking`` (version 2), the hands on the same clock (`StoredHands`): per side
  ``hand_{l,r}_flexion_rad`` (F, 5, 3), ``hand_{l,r}_spread_rad`` (F, 5), ``hand_{l,r}_seen`` (F,), the
  hands' size ``finger_scale`` and their report (``hands_report``, JSON): the finger bones are made
  from them at any export rate, for any mocapType (`mocapd.pipeline.run.add_fingers`).
- (version 2) what the quality report reads of the detection (`StoredDetection`), so a re-export
  reports it like its parent: ``det_source_fps``, ``det_visibility`` (S, 33, float32), the masks
  ``det_person`` / ``det_interpolated`` / ``det_held`` / ``det_detected`` (S,), ``det_time_s`` (S,) and
  ``det_raw_joints_m`` (S, J, 3, float32).

About 0.25 KB a frame for the default skeleton before compression (0.6 KB with the detection).
Version 1 files (no hands, no detection) are still read.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.skeleton import Motion, Skeleton

__all__ = ["StoredDetection", "StoredHands", "StoredMotion", "read_motion_npz", "write_motion_npz"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
VERSION = 2
_READS = (1, 2)
_SIDES = ("l", "r")


@dataclass(frozen=True)
class StoredHands:
    """Finger angles of both hands on the motion's clock (`mocapd.pipeline.fingers.HandAngles` fields)."""

    flexion_rad: tuple[FloatArray, FloatArray]  # left, right: (F, 5, 3)
    spread_rad: tuple[FloatArray, FloatArray]  # (F, 5)
    seen: tuple[BoolArray, BoolArray]  # (F,)
    scale: float  # the hands' size (1.0 = the 1.75 m rest)
    report: dict[str, Any]  # the job's ``hands`` report (manifest and quality.json)


@dataclass(frozen=True)
class StoredDetection:
    """What ``quality.json`` reads of a job's detection, on its source clock (S frames)."""

    source_fps: float
    visibility: FloatArray  # (S, 33)
    person: BoolArray  # (S,)
    interpolated: BoolArray  # (S,)
    held: BoolArray  # (S,)
    detected: BoolArray  # (S,)
    time_s: FloatArray  # (S,)
    raw_joints_m: FloatArray  # (S, J, 3)


@dataclass(frozen=True)
class StoredMotion:
    motion: Motion  # at the processing rate
    joints_m: FloatArray  # (F, J, 3) placed joints
    mocap_type: str
    subject_height_m: float | None
    hands: StoredHands | None = None  # the job had handTracking
    detection: StoredDetection | None = None  # absent from version 1 files


def write_motion_npz(path: Path, motion: Motion, joints_m: FloatArray, mocap_type: str,
                     subject_height_m: float | None, *, hands: StoredHands | None = None,
                     detection: StoredDetection | None = None) -> None:
    trans = motion.local_translation_m  # (F, J, 3)
    arrays: dict[str, NDArray[np.generic]] = {
        "version": np.array(VERSION),
        "names": np.array(motion.skeleton.names),
        "parents": np.array(motion.skeleton.parents, dtype=np.int32),
        "rest_offsets_m": np.asarray(motion.skeleton.rest_offsets_m, dtype=np.float64),
        "fps": np.array(float(motion.fps)),
        "local_quat_wxyz": np.asarray(motion.local_quat_wxyz, dtype=np.float64),
        "joints_m": np.asarray(joints_m, dtype=np.float32),
        "mocap_type": np.array(mocap_type),
        "subject_height_m": np.array(np.nan if subject_height_m is None else float(subject_height_m)),
    }
    if trans.shape[0] > 0 and np.array_equal(trans[:, 1:], np.broadcast_to(trans[:1, 1:], trans[:, 1:].shape)):
        arrays["root_translation_m"] = trans[:, 0].astype(np.float64)
        arrays["bone_translation_m"] = trans[0].astype(np.float64)
    else:
        arrays["local_translation_m"] = trans.astype(np.float64)
    if hands is not None:
        for k, side in enumerate(_SIDES):
            arrays[f"hand_{side}_flexion_rad"] = np.asarray(hands.flexion_rad[k], dtype=np.float64)
            arrays[f"hand_{side}_spread_rad"] = np.asarray(hands.spread_rad[k], dtype=np.float64)
            arrays[f"hand_{side}_seen"] = np.asarray(hands.seen[k], dtype=bool)
        arrays["finger_scale"] = np.array(float(hands.scale))
        arrays["hands_report"] = np.array(json.dumps(hands.report, allow_nan=False))
    if detection is not None:
        d = detection
        arrays.update(
            det_source_fps=np.array(float(d.source_fps)),
            det_visibility=np.asarray(d.visibility, dtype=np.float32),
            det_person=np.asarray(d.person, dtype=bool),
            det_interpolated=np.asarray(d.interpolated, dtype=bool),
            det_held=np.asarray(d.held, dtype=bool),
            det_detected=np.asarray(d.detected, dtype=bool),
            det_time_s=np.asarray(d.time_s, dtype=np.float64),
            det_raw_joints_m=np.asarray(d.raw_joints_m, dtype=np.float32),
        )
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    Path(path).write_bytes(buf.getvalue())


def read_motion_npz(path: Path) -> StoredMotion:
    with np.load(Path(path), allow_pickle=False) as z:
        if int(z["version"]) not in _READS:
            raise ValueError(f"unknown stored-motion version {int(z['version'])}")
        skeleton = Skeleton(tuple(str(n) for n in z["names"]), tuple(int(p) for p in z["parents"]),
                            np.asarray(z["rest_offsets_m"], dtype=np.float64))
        quat = np.asarray(z["local_quat_wxyz"], dtype=np.float64)  # (F, J, 4)
        if "local_translation_m" in z.files:
            trans = np.asarray(z["local_translation_m"], dtype=np.float64)
        else:
            trans = np.repeat(np.asarray(z["bone_translation_m"], dtype=np.float64)[None], quat.shape[0], axis=0)
            trans[:, 0] = z["root_translation_m"]
        height = float(z["subject_height_m"])
        hands = None
        if "finger_scale" in z.files:
            hands = StoredHands(
                flexion_rad=_pair(z, "hand_{}_flexion_rad", np.float64),
                spread_rad=_pair(z, "hand_{}_spread_rad", np.float64),
                seen=_pair(z, "hand_{}_seen", np.bool_),
                scale=float(z["finger_scale"]),
                report=dict(json.loads(str(z["hands_report"]))),
            )
        detection = None
        if "det_source_fps" in z.files:
            detection = StoredDetection(
                source_fps=float(z["det_source_fps"]),
                visibility=np.asarray(z["det_visibility"], dtype=np.float64),
                person=np.asarray(z["det_person"], dtype=bool),
                interpolated=np.asarray(z["det_interpolated"], dtype=bool),
                held=np.asarray(z["det_held"], dtype=bool),
                detected=np.asarray(z["det_detected"], dtype=bool),
                time_s=np.asarray(z["det_time_s"], dtype=np.float64),
                raw_joints_m=np.asarray(z["det_raw_joints_m"], dtype=np.float64),
            )
        return StoredMotion(
            motion=Motion(skeleton, float(z["fps"]), trans, quat),
            joints_m=np.asarray(z["joints_m"], dtype=np.float64),
            mocap_type=str(z["mocap_type"]),
            subject_height_m=None if np.isnan(height) else height,
            hands=hands,
            detection=detection,
        )


def _pair(z: Any, pattern: str, dtype: Any) -> tuple[Any, Any]:
    left, right = (np.asarray(z[pattern.format(side)], dtype=dtype) for side in _SIDES)
    return left, right
