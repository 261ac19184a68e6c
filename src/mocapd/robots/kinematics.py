"""Forward kinematics of a G1 trajectory on the project's MJCF: links, sole points, sites, self-contacts."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import NDArray

from mocapd.robots.description import RobotDescription

__all__ = ["RobotKinematics", "forward_kinematics"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class RobotKinematics:
    link_pos_m: FloatArray  # (F, B, 3), links in RobotDescription.links order
    sole_points_m: FloatArray  # (F, 2, 4, 3): left/right, four sole contact points (sole plane)
    sole_centre_m: FloatArray  # (F, 2, 3): the left_sole / right_sole sites
    site_pos_m: dict[str, FloatArray]  # name -> (F, 3)
    leg_self_contacts: IntArray  # (F,) contacts between left-leg and right-leg geoms deeper than 1 mm


def forward_kinematics(
    desc: RobotDescription, qpos: FloatArray, *, self_contacts: bool = False
) -> RobotKinematics:
    """Run MuJoCo kinematics for every frame of ``qpos`` (F, 7 + N)."""
    model = desc.model()
    data = mujoco.MjData(model)
    f = qpos.shape[0]
    body_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in desc.links]
    site_names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in range(model.nsite)]
    ankle_ids = [
        mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{s}_ankle_roll_link") for s in ("left", "right")
    ]
    corners = desc.sole_corners_m  # (4, 3)
    side_of_geom = np.zeros(model.ngeom, dtype=np.int64)  # 1 left leg, 2 right leg, 0 other
    for g in range(model.ngeom):
        body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.geom_bodyid[g])) or ""
        if any(p in body for p in ("hip", "knee", "ankle")):
            side_of_geom[g] = 1 if body.startswith("left") else 2

    link_pos = np.zeros((f, len(body_ids), 3))
    sole_pts = np.zeros((f, 2, 4, 3))
    sites = np.zeros((f, model.nsite, 3))
    leg_contacts = np.zeros(f, dtype=np.int64)
    for k in range(f):
        data.qpos[:] = qpos[k]
        if self_contacts:
            mujoco.mj_fwdPosition(model, data)
            n = 0
            for c in data.contact[: data.ncon]:
                s1, s2 = side_of_geom[c.geom1], side_of_geom[c.geom2]
                if s1 and s2 and s1 != s2 and c.dist < -0.001:
                    n += 1
            leg_contacts[k] = n
        else:
            mujoco.mj_kinematics(model, data)
        link_pos[k] = data.xpos[body_ids]
        sites[k] = data.site_xpos
        for side, b in enumerate(ankle_ids):
            rot = data.xmat[b].reshape(3, 3)
            sole_pts[k, side] = data.xpos[b] + corners @ rot.T
    site_pos = {n: sites[:, i] for i, n in enumerate(site_names) if n}
    centre = np.stack([site_pos["left_sole"], site_pos["right_sole"]], axis=1)
    return RobotKinematics(link_pos, sole_pts, centre, site_pos, leg_contacts)
