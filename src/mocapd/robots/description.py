"""The robot description interface: what retargeting, kinematics, quality figures and the robot writers
need to know of a robot. `mocapd.robots.g1.G1Description` implements it; a second robot is a module
with its own description plus an entry in `mocapd.robots.registry`.

Conventions: joints in the robot's SDK order; links parents first, the floating base (``pelvis``)
first; the MuJoCo model's free joint first, then the joints in that order (``qpos`` = root xyz, root
quaternion wxyz, joint angles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # pragma: no cover
    import mujoco

__all__ = ["RobotDescription"]

FloatArray = NDArray[np.float64]


class RobotDescription(Protocol):
    @property
    def robot_type(self) -> str: ...  # the target id, e.g. "unitree_g1"

    @property
    def variant(self) -> str: ...

    @property
    def pelvis_height_m(self) -> float: ...  # standing height of the base link

    @property
    def joint_names(self) -> tuple[str, ...]: ...

    @property
    def num_dof(self) -> int: ...

    @property
    def lower_rad(self) -> FloatArray: ...  # (N,)

    @property
    def upper_rad(self) -> FloatArray: ...  # (N,)

    @property
    def velocity_rad_s(self) -> FloatArray: ...  # (N,)

    @property
    def effort_nm(self) -> FloatArray: ...  # (N,)

    @property
    def links(self) -> tuple[str, ...]: ...

    @property
    def link_parents(self) -> tuple[int, ...]: ...

    @property
    def hand_links(self) -> tuple[str, str]: ...  # (left, right)

    def hand_site_m(self, side: str) -> tuple[float, float, float]: ...

    @property
    def sole_sites_m(self) -> dict[str, tuple[float, float, float]]: ...

    @property
    def sole_corners_m(self) -> FloatArray: ...  # (4, 3)

    def collision_geoms(self) -> list[Any]: ...

    def model(self) -> mujoco.MjModel: ...  # compiled, cached; read-only
