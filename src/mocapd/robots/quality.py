"""Quality figures of a G1 trajectory: limits, joint speeds, ground contact, tracking.

* limit violations: frames with any joint outside [lower, upper] (tolerance 1e-6 rad), and the worst
  excess (rad);
* speed violations: joint-frame pairs with |q[f] - q[f-1]| * fps > v_max (URDF), their count and the
  worst ratio |q_dot| / v_max;
* sole penetration: max over frames of -min z of the eight sole contact points, in mm (0 if none);
* foot skate: mean horizontal speed (cm/s) of a sole centre over the frame steps where it stays
  within 1 cm of the ground at both ends;
* contact slip: mean horizontal speed (cm/s) of the point of a sole that carries its contact, over
  the frame steps where the human foot is in contact at both ends (`contact_slip_cm_s`);
* tracking: mean distance (m) between each robot frame and its target, per body part.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mocapd.robots.description import RobotDescription
from mocapd.robots.human_contacts import contact_point_of_step
from mocapd.robots.kinematics import RobotKinematics

__all__ = [
    "contact_slip_cm_s",
    "foot_skate_cm_s",
    "joint_limit_figures",
    "robot_quality",
    "sole_penetration_mm",
]

FloatArray = NDArray[np.float64]

SKATE_HEIGHT_M = 0.01


def joint_limit_figures(desc: RobotDescription, dof_pos_rad: FloatArray, fps: float) -> dict[str, Any]:
    """Position-limit and speed-limit violations of ``dof_pos_rad`` (F, N)."""
    lo, hi, vmax = desc.lower_rad, desc.upper_rad, desc.velocity_rad_s
    excess = np.maximum(lo - dof_pos_rad, dof_pos_rad - hi)  # (F, N)
    outside = excess > 1e-6
    speed = np.abs(np.diff(dof_pos_rad, axis=0)) * fps  # (F-1, N)
    ratio = speed / vmax if speed.size else np.zeros((0, desc.num_dof))
    over = ratio > 1.0 + 1e-6
    worst_joint = int(np.argmax(ratio.max(axis=0))) if ratio.size else 0
    return {
        "limit_violation_frames": int(outside.any(axis=1).sum()),
        "limit_violation_max_rad": float(max(excess.max(), 0.0)) if excess.size else 0.0,
        "speed_violations": int(over.sum()),
        "speed_violation_frames": int(over.any(axis=1).sum()),
        "max_speed_ratio": float(ratio.max()) if ratio.size else 0.0,
        "max_speed_joint": desc.joint_names[worst_joint],
    }


def sole_penetration_mm(kin: RobotKinematics) -> float:
    """Deepest sole point below z = 0 over the clip, millimetres."""
    return float(max(0.0, -kin.sole_points_m[..., 2].min()) * 1000.0)


def foot_skate_cm_s(sole_centre_m: FloatArray, fps: float) -> float:
    """Mean horizontal speed (cm/s) of the sole centres (F, 2, 3) while within 1 cm of the ground."""
    if sole_centre_m.shape[0] < 2:
        return 0.0
    low = sole_centre_m[..., 2] < SKATE_HEIGHT_M  # (F, 2)
    both = low[1:] & low[:-1]  # (F-1, 2)
    step = np.linalg.norm(np.diff(sole_centre_m[..., :2], axis=0), axis=-1) * fps  # (F-1, 2)
    if not both.any():
        return 0.0
    return float(step[both].mean() * 100.0)


def contact_slip_cm_s(
    site_pos_m: dict[str, FloatArray], contacts: NDArray[np.bool_], pivots: NDArray[np.int8], fps: float
) -> float:
    """Mean horizontal speed (cm/s) of the sole point that carries a foot's contact (the toe where only
    the human's ball is down, the heel where only the heel is, else the sole centre;
    `contact_point_of_step`), over the frame steps where the foot is in contact at both ends.

    ``site_pos_m`` holds the ``{left,right}_{sole,toe,heel}`` sites (F, 3); ``contacts`` and ``pivots``
    are (F, 2), left / right."""
    speeds = []
    for side, name in enumerate(("left", "right")):
        steady = contacts[1:, side] & contacts[:-1, side]  # (F-1,)
        if not steady.any():
            continue
        point = contact_point_of_step(pivots[:-1, side], pivots[1:, side])  # (F-1,)
        for code, site in ((0, "sole"), (1, "toe"), (-1, "heel")):
            sel = steady & (point == code)
            xy = site_pos_m[f"{name}_{site}"][:, :2]
            speeds.append(np.linalg.norm(xy[1:] - xy[:-1], axis=1)[sel] * fps)
    v = np.concatenate(speeds) if speeds else np.zeros(0)
    return float(v.mean() * 100.0) if v.size else 0.0


def robot_quality(
    desc: RobotDescription,
    dof_pos_rad: FloatArray,
    fps: float,
    kin: RobotKinematics,
    tracking_m: dict[str, float],
    contacts: NDArray[np.bool_] | None = None,
    pivots: NDArray[np.int8] | None = None,
) -> dict[str, Any]:
    """All figures of the module doc in one JSON-ready dict (``contact_slip_cm_s`` only when the human's
    ``contacts`` (F, 2) are given; ``pivots`` (F, 2) default to flat)."""
    q = joint_limit_figures(desc, dof_pos_rad, fps)
    q.update(
        {
            "sole_penetration_mm": round(sole_penetration_mm(kin), 3),
            "foot_skate_cm_s": round(foot_skate_cm_s(kin.sole_centre_m, fps), 3),
            "leg_self_collision_frames": int((kin.leg_self_contacts > 0).sum()),
            "tracking_error_m": {k: round(v, 4) for k, v in tracking_m.items()},
        }
    )
    if contacts is not None:
        pv = np.zeros(contacts.shape, dtype=np.int8) if pivots is None else pivots
        q["contact_slip_cm_s"] = round(contact_slip_cm_s(kin.site_pos_m, contacts, pv, fps), 3)
    return q
