"""`RobotMotion`: a retargeted G1 motion, ready to write as JSON/CSV or to replay in MuJoCo.

World frame: the mocapd frame (right-handed, metres, Z up, ground at z = 0). The root is the G1
pelvis; its orientation ``root_quat_xyzw`` maps the robot's own frame (X forward, Y left, Z up)
into the world. ``dof_pos_rad[:, k]`` is the angle of ``joint_names[k]`` (Unitree SDK order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mocapd.robots.g1 import G1_23DOF_INVALID_SDK_SLOTS, G1_29DOF_JOINT_NAMES, g1_description

__all__ = ["RobotMotion"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class RobotMotion:
    """Root trajectory and joint angles of a G1 at a constant frame rate.

    ``contacts[f] = (left_foot, right_foot)``; ``valid[f]`` is False where the source had no usable
    pose (the robot holds its last good pose there). ``body_positions_m`` (F, B, 3) are the world
    positions of the links named ``body_names`` with parents ``body_parents`` (-1 for the pelvis),
    for drawing. ``quality`` holds the figures of `mocapd.robots.quality.robot_quality`.
    """

    fps: float
    root_pos_m: FloatArray = field(repr=False)  # (F, 3)
    root_quat_xyzw: FloatArray = field(repr=False)  # (F, 4)
    dof_pos_rad: FloatArray = field(repr=False)  # (F, N), N = len(joint_names)
    joint_names: tuple[str, ...]
    variant: str
    contacts: BoolArray = field(repr=False)  # (F, 2)
    valid: BoolArray = field(repr=False)  # (F,)
    quality: dict[str, Any] = field(repr=False)
    body_positions_m: FloatArray = field(repr=False)  # (F, B, 3)
    body_parents: tuple[int, ...] = field(repr=False)  # (B,)
    body_names: tuple[str, ...] = field(default=(), repr=False)  # (B,)

    def __post_init__(self) -> None:
        f = self.root_pos_m.shape[0]
        n = len(self.joint_names)
        shapes = {
            "root_pos_m": (self.root_pos_m.shape, (f, 3)),
            "root_quat_xyzw": (self.root_quat_xyzw.shape, (f, 4)),
            "dof_pos_rad": (self.dof_pos_rad.shape, (f, n)),
            "contacts": (self.contacts.shape, (f, 2)),
            "valid": (self.valid.shape, (f,)),
        }
        for name, (got, want) in shapes.items():
            if got != want:
                raise ValueError(f"RobotMotion.{name} has shape {got}, expected {want}")
        if self.body_positions_m.shape[:1] != (f,) or self.body_positions_m.shape[1] != len(
            self.body_parents
        ):
            raise ValueError("RobotMotion.body_positions_m must be (F, B, 3) with B = len(body_parents)")
        if tuple(self.joint_names) != g1_description(self.variant).joint_names:
            raise ValueError(f"joint_names do not match the {self.variant} joint order")
        if not self.fps > 0:
            raise ValueError("fps must be positive")

    @property
    def num_frames(self) -> int:
        return int(self.root_pos_m.shape[0])

    @property
    def root_quat_wxyz(self) -> FloatArray:
        return self.root_quat_xyzw[:, [3, 0, 1, 2]]  # (F, 4)

    def dof_pos_29_rad(self) -> FloatArray:
        """Joint angles in the 29 SDK motor slots (the 23-DOF robot's missing joints held at 0), (F, 29)."""
        if len(self.joint_names) == 29:
            return self.dof_pos_rad.copy()
        out = np.zeros((self.num_frames, 29))
        keep = [i for i in range(29) if i not in G1_23DOF_INVALID_SDK_SLOTS]
        assert tuple(G1_29DOF_JOINT_NAMES[i] for i in keep) == tuple(self.joint_names)
        out[:, keep] = self.dof_pos_rad
        return out

    def qpos(self) -> FloatArray:
        """MuJoCo generalized positions of the variant's model: [x y z, qw qx qy qz, joints], (F, 7 + N)."""
        return np.concatenate([self.root_pos_m, self.root_quat_wxyz, self.dof_pos_rad], axis=1)
