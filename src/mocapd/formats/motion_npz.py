"""A job's solved motion kept among its private files (``motion.npz``), so a re-export can make other
frame rates, targets or an upper-body take without decoding or detecting anything again.

One compressed NumPy archive (no pickled objects; loaded with ``allow_pickle=False``):

- ``names``, ``parents``, ``rest_offsets_m`` (J, 3): the skeleton;
- ``fps``, ``local_quat_wxyz`` (F, J, 4) and the root's ``root_translation_m`` (F, 3): the motion at the
  processing rate. Every other joint's local translation is its fixed bone (``bone_translation_m``,
  (J, 3)), as the solver makes it; a motion whose bones move is stored whole (``local_translation_m``);
- ``joints_m`` (F, J, 3, float32): the placed joints the solve started from, to solve again for
  another ``mocapType``; ``mocap_type`` and ``subject_height_m``: what the stored motion was solved with.

About 0.25 KB a frame for the default skeleton before compression.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.skeleton import Motion, Skeleton

__all__ = ["StoredMotion", "read_motion_npz", "write_motion_npz"]

FloatArray = NDArray[np.float64]
VERSION = 1


@dataclass(frozen=True)
class StoredMotion:
    motion: Motion  # at the processing rate
    joints_m: FloatArray  # (F, J, 3) placed joints
    mocap_type: str
    subject_height_m: float | None


def write_motion_npz(path: Path, motion: Motion, joints_m: FloatArray, mocap_type: str,
                     subject_height_m: float | None) -> None:
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
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    Path(path).write_bytes(buf.getvalue())


def read_motion_npz(path: Path) -> StoredMotion:
    with np.load(Path(path), allow_pickle=False) as z:
        if int(z["version"]) != VERSION:
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
        return StoredMotion(
            motion=Motion(skeleton, float(z["fps"]), trans, quat),
            joints_m=np.asarray(z["joints_m"], dtype=np.float64),
            mocap_type=str(z["mocap_type"]),
            subject_height_m=None if np.isnan(height) else height,
        )
