"""How closely an animated avatar's joints follow the source skeleton's, size removed (a test and
benchmark helper).

For every frame and every body joint of the default skeleton that the avatar maps, both skeletons'
world positions in mocapd's frame (Z up, metres, facing -Y) are taken relative to their own pelvis
("the root aligned") and divided by their own height: the avatar's ``heightM`` (its mesh, as
preparation reports it) and the source's stature (`Skeleton.stature_m`, the product's estimate of a
solved skeleton's standing height). The error of a joint on a frame is the distance between the two
height-normalised points, a fraction of height (0.05 = 5 %). ``rest`` is the same figure for the two
rest poses: what proportions alone put between them (a floor wherever the rest pose is the pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mocapd.avatars.retarget import AvatarAnimation
from mocapd.pipeline.skeleton import Motion

FloatArray = NDArray[np.float64]

BODY = ("pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head",
        "clavicle_l", "upperarm_l", "lowerarm_l", "hand_l", "clavicle_r", "upperarm_r", "lowerarm_r", "hand_r",
        "thigh_l", "calf_l", "foot_l", "ball_l", "thigh_r", "calf_r", "foot_r", "ball_r")  # fmt: skip
ENDS = ("hand_l", "hand_r", "foot_l", "foot_r")


@dataclass(frozen=True)
class PositionReport:
    joints: tuple[str, ...]
    error: FloatArray  # (F, K) fraction of height

    @property
    def max(self) -> float:
        return float(self.error.max())

    @property
    def p95(self) -> float:
        return float(np.percentile(self.error, 95))

    def of(self, names: tuple[str, ...]) -> PositionReport:
        keep = [i for i, n in enumerate(self.joints) if n in names]
        return PositionReport(tuple(self.joints[i] for i in keep), self.error[:, keep])

    def worst(self) -> tuple[str, float]:
        k = int(self.error.max(axis=0).argmax())
        return self.joints[k], float(self.error[:, k].max())


def normalised_errors(avatar_pos: FloatArray, avatar_height_m: float, source_pos: FloatArray,
                      source_height_m: float) -> FloatArray:
    """(F, K) distances between root-aligned, height-normalised points; column 0 must be the pelvis."""
    a = (avatar_pos - avatar_pos[:, :1]) / avatar_height_m  # (F, K, 3)
    s = (source_pos - source_pos[:, :1]) / source_height_m
    return np.asarray(np.linalg.norm(a - s, axis=-1), dtype=np.float64)


def joint_positions(anim: AvatarAnimation, mapping: dict[str, str], joints: tuple[str, ...]) -> FloatArray:
    """The mapped joints' world positions (F, K, 3) in mocapd's frame."""
    ix = {n: i for i, n in enumerate(anim.rig.names)}
    return anim.world_norm[:, [ix[mapping[k]] for k in joints]][:, :, :3, 3]


def measured_joints(mapping: dict[str, str]) -> tuple[str, ...]:
    return tuple(k for k in BODY if k in mapping)


def position_report(anim: AvatarAnimation, mapping: dict[str, str], height_m: float, motion: Motion,
                    avatar_pos: FloatArray | None = None) -> PositionReport:
    """Per frame and joint errors of ``anim`` against ``motion``; ``avatar_pos`` (F, K, 3, mocapd frame,
    ``measured_joints`` order) replaces the animation's own positions (e.g. read back from a file)."""
    joints = measured_joints(mapping)
    sk = motion.skeleton
    src = motion.world_positions_m()[:, [sk.index(k) for k in joints]]
    pos = joint_positions(anim, mapping, joints) if avatar_pos is None else avatar_pos
    return PositionReport(joints, normalised_errors(pos, height_m, src, sk.stature_m()))


def rest_report(anim: AvatarAnimation, mapping: dict[str, str], height_m: float, motion: Motion) -> PositionReport:
    """The same figure between the two rest poses (the avatar's own rest pose, the source's T-pose)."""
    joints = measured_joints(mapping)
    sk = motion.skeleton
    rig = anim.rig
    ix = {n: i for i, n in enumerate(rig.names)}
    rest = rig.norm_positions()[[ix[mapping[k]] for k in joints]][None]
    src = sk.rest_positions_m()[[sk.index(k) for k in joints]][None]
    return PositionReport(joints, normalised_errors(rest, height_m, src, sk.stature_m()))
