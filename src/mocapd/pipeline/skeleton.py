"""The named skeleton of the `default` target and the `Motion` container every stage passes on.

Conventions (all of the pipeline, the writers and the retargeter use them):

* World frame: right-handed, metres, **Z up**, the character faces **-Y** at rest, so its left
  side is **+X** (Blender's convention). Writers for Y-up formats (BVH, glTF, FBX) convert with
  ``yup_from_zup`` = (x, y, z) -> (x, z, -y), which makes the character face +Z there.
* Rest pose: a T-pose. Every joint's rest orientation is the identity (bone frames aligned with the
  world axes), so a joint's rest offset is expressed in world axes and a local rotation of identity
  on every joint reproduces the rest pose.
* Quaternions are scalar-first ``quat_wxyz`` unless a name says ``xyzw``.
* ``Motion.local_quat_wxyz[f, j]`` rotates joint ``j``'s frame relative to its parent's frame;
  ``Motion.local_translation_m[f, j]`` is joint ``j``'s origin in its parent's frame. For joints
  other than ``root`` and ``pelvis`` it always equals the rest offset (bone lengths are fixed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_SKELETON",
    "JOINT_NAMES",
    "PARENT_NAMES",
    "Motion",
    "Skeleton",
    "quat_mul",
    "quat_rotate",
    "yup_from_zup",
]

FloatArray = NDArray[np.float64]

# (joint, parent) in topological order; the root sits on the ground under the pelvis.
_TREE: tuple[tuple[str, str | None], ...] = (
    ("root", None),
    ("pelvis", "root"),
    ("spine_01", "pelvis"),
    ("spine_02", "spine_01"),
    ("spine_03", "spine_02"),
    ("neck_01", "spine_03"),
    ("head", "neck_01"),
    ("clavicle_l", "spine_03"),
    ("upperarm_l", "clavicle_l"),
    ("lowerarm_l", "upperarm_l"),
    ("hand_l", "lowerarm_l"),
    ("clavicle_r", "spine_03"),
    ("upperarm_r", "clavicle_r"),
    ("lowerarm_r", "upperarm_r"),
    ("hand_r", "lowerarm_r"),
    ("thigh_l", "pelvis"),
    ("calf_l", "thigh_l"),
    ("foot_l", "calf_l"),
    ("ball_l", "foot_l"),
    ("thigh_r", "pelvis"),
    ("calf_r", "thigh_r"),
    ("foot_r", "calf_r"),
    ("ball_r", "foot_r"),
)
JOINT_NAMES: tuple[str, ...] = tuple(n for n, _ in _TREE)
PARENT_NAMES: dict[str, str | None] = dict(_TREE)

# Stature over (head joint height - ball joint height) of the default 1.75 m skeleton.
STATURE_PER_HEAD_OVER_BALL = 1.75 / 1.56

# A 1.75 m T-pose, Z up, facing -Y, left = +X. Offsets from the parent joint, metres.
_REST_OFFSETS_M: dict[str, tuple[float, float, float]] = {
    "root": (0.0, 0.0, 0.0),
    "pelvis": (0.0, 0.0, 0.95),
    "spine_01": (0.0, 0.0, 0.10),
    "spine_02": (0.0, 0.0, 0.12),
    "spine_03": (0.0, 0.0, 0.14),
    "neck_01": (0.0, 0.0, 0.16),
    "head": (0.0, 0.0, 0.10),
    "clavicle_l": (0.03, 0.0, 0.12),
    "upperarm_l": (0.15, 0.0, 0.0),
    "lowerarm_l": (0.28, 0.0, 0.0),
    "hand_l": (0.25, 0.0, 0.0),
    "clavicle_r": (-0.03, 0.0, 0.12),
    "upperarm_r": (-0.15, 0.0, 0.0),
    "lowerarm_r": (-0.28, 0.0, 0.0),
    "hand_r": (-0.25, 0.0, 0.0),
    "thigh_l": (0.09, 0.0, -0.05),
    "calf_l": (0.0, 0.0, -0.42),
    "foot_l": (0.0, 0.0, -0.41),
    "ball_l": (0.0, -0.13, -0.06),
    "thigh_r": (-0.09, 0.0, -0.05),
    "calf_r": (0.0, 0.0, -0.42),
    "foot_r": (0.0, 0.0, -0.41),
    "ball_r": (0.0, -0.13, -0.06),
}


@dataclass(frozen=True)
class Skeleton:
    """Joint names, parent indices (-1 for the root) and rest offsets in parent (= world) axes."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_offsets_m: FloatArray = field(repr=False)  # (J, 3)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.parents) or self.rest_offsets_m.shape != (len(self.names), 3):
            raise ValueError("skeleton names, parents and offsets disagree in length")
        for j, p in enumerate(self.parents):
            if p >= j:
                raise ValueError("joints must be listed parents first")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def with_offsets(self, rest_offsets_m: FloatArray) -> Skeleton:
        return Skeleton(self.names, self.parents, np.asarray(rest_offsets_m, dtype=np.float64))

    def rest_positions_m(self) -> FloatArray:
        """World positions of every joint in the rest pose, (J, 3)."""
        pos = np.zeros((self.num_joints, 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.rest_offsets_m[j] + (pos[p] if p >= 0 else 0.0)
        return pos

    def stature_m(self) -> float:
        """Estimated standing height: the rest head joint over the balls of the feet, in the default
        1.75 m skeleton's proportion (its head joint 1.56 m above its balls)."""
        rest = self.rest_positions_m()
        ball_z = 0.5 * (rest[self.index("ball_l"), 2] + rest[self.index("ball_r"), 2])
        return float((rest[self.index("head"), 2] - ball_z) * STATURE_PER_HEAD_OVER_BALL)


DEFAULT_SKELETON = Skeleton(
    names=JOINT_NAMES,
    parents=tuple(-1 if PARENT_NAMES[n] is None else JOINT_NAMES.index(PARENT_NAMES[n]) for n in JOINT_NAMES),
    rest_offsets_m=np.array([_REST_OFFSETS_M[n] for n in JOINT_NAMES], dtype=np.float64),
)


def quat_mul(a: FloatArray, b: FloatArray) -> FloatArray:
    """Hamilton product of wxyz quaternions, broadcasting over leading axes."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_rotate(q: FloatArray, v: FloatArray) -> FloatArray:
    """Rotate vectors ``v`` (..., 3) by unit wxyz quaternions ``q`` (..., 4)."""
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def yup_from_zup(v: FloatArray) -> FloatArray:
    """(x, y, z) in our Z-up frame -> (x, z, -y) in a Y-up frame (the character then faces +Z)."""
    v = np.asarray(v, dtype=np.float64)
    return np.stack([v[..., 0], v[..., 2], -v[..., 1]], axis=-1)


@dataclass(frozen=True)
class Motion:
    """An animation of a skeleton sampled at a constant rate.

    ``local_translation_m`` (F, J, 3) and ``local_quat_wxyz`` (F, J, 4) fully define the pose;
    ``world_positions_m()`` runs forward kinematics. The world frame is Z up (see module doc).
    """

    skeleton: Skeleton
    fps: float
    local_translation_m: FloatArray = field(repr=False)  # (F, J, 3)
    local_quat_wxyz: FloatArray = field(repr=False)  # (F, J, 4)

    def __post_init__(self) -> None:
        f, j = self.local_quat_wxyz.shape[:2]
        if self.local_translation_m.shape != (f, j, 3) or self.local_quat_wxyz.shape != (f, j, 4):
            raise ValueError("motion arrays must be (F, J, 3) and (F, J, 4)")
        if j != self.skeleton.num_joints:
            raise ValueError("motion joint count differs from the skeleton")
        if not self.fps > 0:
            raise ValueError("fps must be positive")

    @property
    def num_frames(self) -> int:
        return int(self.local_quat_wxyz.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def world_transforms(self) -> tuple[FloatArray, FloatArray]:
        """World positions (F, J, 3) and world rotations (F, J, 4, wxyz) by forward kinematics."""
        f, j = self.local_quat_wxyz.shape[:2]
        pos = np.zeros((f, j, 3))
        rot = np.zeros((f, j, 4))
        for k, p in enumerate(self.skeleton.parents):
            if p < 0:
                pos[:, k] = self.local_translation_m[:, k]
                rot[:, k] = self.local_quat_wxyz[:, k]
            else:
                pos[:, k] = pos[:, p] + quat_rotate(rot[:, p], self.local_translation_m[:, k])
                rot[:, k] = quat_mul(rot[:, p], self.local_quat_wxyz[:, k])
        return pos, rot

    def world_positions_m(self) -> FloatArray:
        return self.world_transforms()[0]
