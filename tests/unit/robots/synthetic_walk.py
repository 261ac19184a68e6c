"""A synthetic straight walk on the mocapd named skeleton, with known foot contacts.

The pelvis moves at constant speed along -Y (the character's forward); each foot stays planted
for ``stance`` of the gait cycle and swings forward (sinusoidal lift) for the rest; the legs follow by
analytic two-bone IK in the sagittal (Y-Z) plane; feet stay flat; the arms hang and swing opposite.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion


def _wxyz(r: Rotation) -> np.ndarray:
    return r.as_quat()[..., [3, 0, 1, 2]]


def synthetic_walk(
    *,
    fps: float = 30.0,
    duration_s: float = 4.0,
    stride_m: float = 1.0,
    period_s: float = 1.2,
    stance: float = 0.62,
    hip_height_m: float = 0.83,
) -> tuple[Motion, np.ndarray]:
    """(motion, contacts (F, 2) left/right) of a walk along -Y starting at the origin."""
    sk = DEFAULT_SKELETON
    idx = {n: i for i, n in enumerate(sk.names)}
    off = sk.rest_offsets_m
    f = int(round(duration_s * fps))
    t = np.arange(f) / fps
    v = stride_m / period_s
    thigh_len = float(np.linalg.norm(off[idx["calf_l"]]))
    shin_len = float(np.linalg.norm(off[idx["foot_l"]]))
    ankle_h = float(sk.rest_positions_m()[idx["foot_l"], 2])

    pelvis_y = -v * t  # (F,)
    hip_z = hip_height_m + 0.015 * np.cos(4 * np.pi * t / period_s)  # (F,)
    pelvis_z = hip_z - off[idx["thigh_l"], 2]

    lt = np.zeros((f, sk.num_joints, 3)) + off  # (F, J, 3)
    lq = np.zeros((f, sk.num_joints, 4))
    lq[..., 0] = 1.0
    lt[:, idx["root"]] = np.stack([np.zeros(f), pelvis_y, np.zeros(f)], axis=1)
    lt[:, idx["pelvis"]] = np.stack([np.zeros(f), np.zeros(f), pelvis_z], axis=1)
    contacts = np.zeros((f, 2), dtype=bool)

    for col, (side, phase0) in enumerate((("l", 0.0), ("r", 0.5))):
        phase = (t / period_s + phase0) % 1.0  # (F,)
        cycle = np.floor(t / period_s + phase0)  # (F,)
        # foot forward position (along -Y): planted at the cycle's landing point during stance
        landing = -(cycle - phase0) * stride_m - stride_m * stance / 2  # y where the foot lands
        in_stance = phase < stance
        swing_s = np.clip((phase - stance) / (1 - stance), 0, 1)
        s_smooth = 0.5 - 0.5 * np.cos(np.pi * swing_s)
        foot_y = np.where(in_stance, landing, landing - stride_m * s_smooth)
        lift = np.where(in_stance, 0.0, 0.09 * np.sin(np.pi * swing_s))
        foot_z = ankle_h + lift
        contacts[:, col] = in_stance
        # two-bone IK in the Y-Z plane
        hip_y = pelvis_y
        dy = foot_y - hip_y
        dz = foot_z - hip_z
        d = np.minimum(np.hypot(dy, dz), thigh_len + shin_len - 1e-6)
        cos_a = (thigh_len**2 + d**2 - shin_len**2) / (2 * thigh_len * d)
        a = np.arccos(np.clip(cos_a, -1, 1))  # hip angle between leg line and thigh
        leg_angle = np.arctan2(dy, -dz)  # rotation about X taking -Z to the leg line
        # Rx(theta) maps (0,0,-1) to (0, sin theta, -cos theta); the knee must point forward (-Y)
        thigh_angle = leg_angle - a
        knee_y = hip_y + thigh_len * np.sin(thigh_angle)
        knee_z = hip_z - thigh_len * np.cos(thigh_angle)
        calf_angle = np.arctan2(foot_y - knee_y, -(foot_z - knee_z))
        r_thigh = Rotation.from_euler("x", thigh_angle[:, None])
        r_calf_local = Rotation.from_euler("x", (calf_angle - thigh_angle)[:, None])
        r_foot_local = Rotation.from_euler("x", -calf_angle[:, None])
        lq[:, idx[f"thigh_{side}"]] = _wxyz(r_thigh)
        lq[:, idx[f"calf_{side}"]] = _wxyz(r_calf_local)
        lq[:, idx[f"foot_{side}"]] = _wxyz(r_foot_local)
        # arms: hang down, swing opposite to the leg on the same side
        sign = 1.0 if side == "l" else -1.0
        swing = 0.3 * np.sin(2 * np.pi * (t / period_s + phase0))
        r_arm = Rotation.from_euler("x", -swing[:, None]) * Rotation.from_euler("y", sign * np.pi / 2 * 0.9)
        lq[:, idx[f"upperarm_{side}"]] = _wxyz(r_arm)
        lq[:, idx[f"lowerarm_{side}"]] = _wxyz(Rotation.from_euler("z", -sign * 0.3 * np.ones((f, 1))))
    return Motion(sk, fps, lt, lq), contacts
