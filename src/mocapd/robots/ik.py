"""Per-frame differential IK of the G1 with mink on MuJoCo, warm-started from the previous frame.

Each frame runs ``iterations`` steps of the QP

    min_dq  sum_t w_t || J_t dq + e_t ||^2 + lambda ||dq||^2
    s.t.    q_min <= q + dq <= q_max            (mink.ConfigurationLimit, hard)
            |dq_i| <= v_max,i * dt               (mink.VelocityLimit, URDF velocities)
            d(geom_a, geom_b) >= 1 cm for leg/leg and arm/body pairs (mink.CollisionAvoidanceLimit)

with dt = 1 / (fps * iterations), so the velocity bound over one whole frame is exactly the joint's
velocity limit. Tasks are mink FrameTasks (position and orientation costs per frame) plus a small
posture task towards the standing pose that resolves redundancy (wrists, arm twist). Every target,
elbows and hands included, is tracked in the world frame, so the arms make up for a torso that stops
short of its own target.
"""

from __future__ import annotations

import mink
import mujoco
import numpy as np
from numpy.typing import NDArray

from mocapd.robots.description import RobotDescription
from mocapd.robots.targets import FrameTargets

__all__ = ["solve_frames"]

FloatArray = NDArray[np.float64]

_FIRST_FRAME_ITERATIONS = 60
LM_DAMPING = 0.05  # Levenberg-Marquardt damping of the frame tasks (scaled by the squared error)


def solve_frames(
    desc: RobotDescription,
    targets: list[FrameTargets],
    fps: float,
    *,
    iterations: int = 3,
    damping: float = 1e-3,
    posture_cost: float = 0.02,
    freeze_legs: bool = False,
) -> FloatArray:
    """Joint-space trajectory (F, 7 + N) = [root xyz, root quat wxyz, joint angles] tracking ``targets``.

    ``freeze_legs`` keeps the free joint and all leg joints at their initial (standing) values.
    """
    model = desc.model()
    num_frames = targets[0].pos_m.shape[0]
    configuration = mink.Configuration(model)
    q = np.zeros(model.nq)
    q[:3] = targets[0].pos_m[0] if targets[0].frame == "pelvis" else [0.0, 0.0, desc.pelvis_height_m]
    q[3:7] = targets[0].quat_wxyz[0] if targets[0].frame == "pelvis" else [1.0, 0.0, 0.0, 0.0]
    configuration.update(q)

    tasks = [
        mink.FrameTask(t.frame, t.frame_type, position_cost=1.0, orientation_cost=1.0, lm_damping=LM_DAMPING)
        for t in targets
    ]
    target_poses = [_poses(t.pos_m, t.quat_wxyz) for t in targets]
    posture_costs = np.full(model.nv, posture_cost)
    posture_costs[:6] = 0.0
    posture = mink.PostureTask(model, cost=posture_costs)
    posture.set_target(q)
    all_tasks: list[mink.Task] = [*tasks, posture]

    velocities = {name: float(v) for name, v in zip(desc.joint_names, desc.velocity_rad_s, strict=True)}
    config_limit = mink.ConfigurationLimit(model)
    vel_limit = mink.VelocityLimit(model, velocities)
    limits_all: list[mink.Limit] = [config_limit, vel_limit]
    if not freeze_legs:
        limits_all.append(_self_collision_limit(model))
    constraints = []
    if freeze_legs:
        leg_dofs = list(range(6)) + [
            int(model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)])
            for name in desc.joint_names
            if any(p in name for p in ("hip", "knee", "ankle"))
        ]
        constraints.append(mink.DofFreezingTask(model, dof_indices=leg_dofs))

    out = np.zeros((num_frames, model.nq))
    dt = 1.0 / (fps * iterations)
    for f in range(num_frames):
        for task, t, poses in zip(tasks, targets, target_poses, strict=True):
            task.set_position_cost(float(t.position_cost[f]))
            task.set_orientation_cost(float(t.orientation_cost[f]))
            task.set_target(poses[f])
        if f == 0:  # no previous frame: converge without a velocity bound
            steps, limits, step_dt = (
                _FIRST_FRAME_ITERATIONS,
                [lim for lim in limits_all if lim is not vel_limit],
                0.02,
            )
        else:
            steps, limits, step_dt = iterations, limits_all, dt
        for _ in range(steps):
            vel = mink.solve_ik(
                configuration,
                all_tasks,
                step_dt,
                "daqp",
                damping=damping,
                limits=limits,
                constraints=constraints or None,
            )
            configuration.integrate_inplace(vel, step_dt)
        out[f] = configuration.q
    return out


def _self_collision_limit(model: mujoco.MjModel) -> mink.Limit:
    """Keep the legs 1 cm apart, and the forearms and hands 1 cm from the pelvis, torso and thighs."""
    groups: dict[str, list[str]] = {
        "left_leg": [],
        "right_leg": [],
        "left_arm": [],
        "right_arm": [],
        "core": [],
    }
    for g in range(model.ngeom):
        body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.geom_bodyid[g])) or ""
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
        side = "left" if body.startswith("left") else "right"
        if any(p in body for p in ("hip", "knee", "ankle")):
            groups[f"{side}_leg"].append(name)
        elif any(p in body for p in ("elbow", "wrist")) and "_geom" in name:
            groups[f"{side}_arm"].append(name)
        elif body in ("pelvis", "torso_link") and "_geom" in name:
            groups["core"].append(name)
    upper_legs = [n for n in groups["left_leg"] + groups["right_leg"] if "hip" in n and "_geom" in n]
    pairs = [(groups["left_leg"], groups["right_leg"])]
    pairs += [(groups[f"{side}_arm"], groups["core"] + upper_legs) for side in ("left", "right")]
    return _DisplacementCollisionLimit(
        mink.CollisionAvoidanceLimit(
            model, pairs, minimum_distance_from_collisions=0.01, collision_detection_distance=0.15
        )
    )


class _DisplacementCollisionLimit(mink.Limit):
    """mink's collision rows bound the QP's displacement by ``gain (d - d_min) / dt``; this scales the
    bound back to a displacement, ``gain (d - d_min)``, so a step never closes more than ``gain`` of a gap."""

    def __init__(self, inner: mink.CollisionAvoidanceLimit) -> None:
        self.inner = inner

    def compute_qp_inequalities(self, configuration: mink.Configuration, dt: float) -> mink.Constraint:
        c = self.inner.compute_qp_inequalities(configuration, dt)
        return mink.Constraint(G=c.G, h=None if c.h is None else c.h * dt)


def _poses(pos_m: FloatArray, quat_wxyz: FloatArray) -> list[mink.SE3]:
    """One SE3 per frame from positions (F, 3) and wxyz quaternions (F, 4)."""
    return [
        mink.SE3.from_rotation_and_translation(mink.SO3(q), p) for p, q in zip(pos_m, quat_wxyz, strict=True)
    ]
