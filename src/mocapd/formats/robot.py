"""Writers for retargeted G1 motion: `g1_motion.json` and `g1_motion.csv`.

JSON: AIMoCap's documented fields (``version`` 1, ``robotType`` "unitree_g1", ``fps``,
``frameCount``, ``root_pos``, ``root_rot_xyzw``, ``dof_pos``) plus self-description (``jointNames``,
``variant``, ``units``, ``coordinateFrame``, ``contacts``, ``valid``, ``limits``, ``quality``).

CSV: Unitree's retargeting-dataset layout (the LAFAN1 G1 files): one row per frame, no header,
comma-separated ``x, y, z, qx, qy, qz, qw`` then the 29 joint angles in SDK order (36 columns). For the
23-DOF variant the six joints it lacks are written as 0 in their SDK slots, as the robot's 29-slot
command vector expects.

Both are byte-stable for a given input (fixed key order and number formatting).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mocapd.robots.g1 import g1_description
from mocapd.robots.motion import RobotMotion

__all__ = ["write_g1_csv", "write_g1_json"]

_DECIMALS = 6


def _rows(a: NDArray[np.float64]) -> list[list[float]]:
    return [[round(float(v), _DECIMALS) + 0.0 for v in row] for row in np.asarray(a, dtype=np.float64)]


def _clean(value: Any) -> Any:
    """JSON-ready copy of a quality dict (numpy scalars -> Python, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_g1_json(rm: RobotMotion) -> bytes:
    """The robot motion as UTF-8 JSON (see the module doc for the fields)."""
    desc = g1_description(rm.variant)
    doc: dict[str, Any] = {
        "version": 1,
        "robotType": "unitree_g1",
        "fps": float(rm.fps),
        "frameCount": rm.num_frames,
        "root_pos": _rows(rm.root_pos_m),
        "root_rot_xyzw": _rows(rm.root_quat_xyzw),
        "dof_pos": _rows(rm.dof_pos_rad),
        "jointNames": list(rm.joint_names),
        "variant": rm.variant,
        "units": {"length": "m", "angle": "rad", "time": "s", "angularVelocity": "rad/s", "torque": "N*m"},
        "coordinateFrame": {
            "handedness": "right",
            "up": "+Z",
            "ground": "z = 0",
            "rootBody": "pelvis",
            "rootPos": "pelvis origin in the world frame",
            "rootRot": "pelvis orientation, quaternion x y z w, robot frame (x forward, y left, z up) to world",
            "jointOrder": "unitree_sdk",
            "world": "the performer starts near the origin facing -Y (the robot's +X then points to world -Y)",
        },
        "contacts": {
            "left_foot": [bool(v) for v in rm.contacts[:, 0]],
            "right_foot": [bool(v) for v in rm.contacts[:, 1]],
        },
        "valid": [bool(v) for v in rm.valid],
        "limits": {
            "lower": [float(v) for v in desc.lower_rad],
            "upper": [float(v) for v in desc.upper_rad],
            "velocity": [float(v) for v in desc.velocity_rad_s],
            "effort": [float(v) for v in desc.effort_nm],
        },
        "quality": _clean(rm.quality),
    }
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


def write_g1_csv(rm: RobotMotion) -> bytes:
    """The robot motion in the Unitree retargeting-dataset CSV layout (36 columns, no header)."""
    table = np.round(
        np.concatenate([rm.root_pos_m, rm.root_quat_xyzw, rm.dof_pos_29_rad()], axis=1), _DECIMALS
    )  # (F, 36)
    fmt = f"{{:.{_DECIMALS}f}}"
    lines = [",".join(fmt.format(v + 0.0) for v in row) for row in table]
    return ("\n".join(lines) + "\n").encode("ascii")
