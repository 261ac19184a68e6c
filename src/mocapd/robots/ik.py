"""Per-frame differential IK of the G1 with mink on MuJoCo, warm-started from the previous frame.

Each frame runs ``iterations`` steps of the QP

    min_dq  sum_t w_t || J_t dq + e_t ||^2 + lambda ||dq||^2
    s.t.    q_min <= q + dq <= q_max            (mink.ConfigurationLimit, hard)
            |dq_i| <= v_max,i * dt               (mink.VelocityLimit, URDF velocities)

with dt = 1 / (fps * iterations), so the velocity bound over one whole frame is exactly the joint's
velocity limit. Tasks are mink FrameTasks (position and orientation costs per frame) plus a small
posture task towards the standing pose that resolves redundancy (wrists, arm twist).
"""

from __future__ import annotations

import mink
import mujoco
import numpy as np
from numpy.typing import NDArray

from mocapd.robots.g1 import G1Description, load_g1_model
from mocapd.robots.targets import FrameTargets

__all__ = ["solve_frames"]

FloatArray = NDArray[np.float64]

_FIRST_FRAME_ITERATIONS = 60


def solve_frames(
    desc: G1Description,
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
    model = load_g1_model(desc.variant)
    num_frames = targets[0].pos_m.shape[0]
    configuration = mink.Configuration(model)
    q = np.zeros(model.nq)
    q[:3] = targets[0].pos_m[0] if targets[0].frame == "pelvis" else [0.0, 0.0, desc.pelvis_height_m]
    q[3:7] = targets[0].quat_wxyz[0] if targets[0].frame == "pelvis" else [1.0, 0.0, 0.0, 0.0]
    configuration.update(q)

    tasks: list[mink.FrameTask] = []
    for t in targets:
        tasks.append(mink.FrameTask(t.frame, t.frame_type, position_cost=1.0, orientation_cost=1.0, lm_damping=1.0))
    posture_costs = np.full(model.nv, posture_cost)
    posture_costs[:6] = 0.0
    posture = mink.PostureTask(model, cost=posture_costs)
    posture.set_target(q)
    all_tasks: list[mink.Task] = [*tasks, posture]  # type: ignore[list-item]

    velocities = {j.name: j.velocity_rad_s for j in desc.joints}
    config_limit = mink.ConfigurationLimit(model)
    vel_limit = mink.VelocityLimit(model, velocities)
    constraints = []
    if freeze_legs:
        leg_dofs = list(range(6)) + [
            int(model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j.name)])
            for j in desc.joints
            if any(p in j.name for p in ("hip", "knee", "ankle"))
        ]
        constraints.append(mink.DofFreezingTask(model, dof_indices=leg_dofs))

    out = np.zeros((num_frames, model.nq))
    dt = 1.0 / (fps * iterations)
    for f in range(num_frames):
        for task, t in zip(tasks, targets, strict=True):
            task.set_position_cost(float(t.position_cost[f]))
            task.set_orientation_cost(float(t.orientation_cost[f]))
            task.set_target(mink.SE3.from_rotation_and_translation(mink.SO3(t.quat_wxyz[f]), t.pos_m[f]))
        if f == 0:  # no previous frame: converge without a velocity bound
            steps, limits, step_dt = _FIRST_FRAME_ITERATIONS, [config_limit], 0.02
        else:
            steps, limits, step_dt = iterations, [config_limit, vel_limit], dt
        for _ in range(steps):
            vel = mink.solve_ik(
                configuration, all_tasks, step_dt, "daqp", damping=damping, limits=limits, constraints=constraints or None
            )
            configuration.integrate_inplace(vel, step_dt)
        out[f] = configuration.q
    return out
