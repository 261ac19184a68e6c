"""Resampling a `Motion` to another constant frame rate.

Output frame ``k`` sits at ``t_k = k / fps_out``; there are ``K = max(1, round(F · fps_out / fps_in))``
of them, so the duration ``K / fps_out`` matches ``F / fps_in``. The source position of ``t_k`` is
``u = t_k · fps_in``, between frames ``i = floor(u)`` and ``i + 1`` with weight ``a = u - i`` (times past
the last source frame hold it). Rotations use spherical linear interpolation
``slerp(q_i, q_{i+1}; a) = q_i (q_i⁻¹ q_{i+1})^a`` on the shorter arc; translations are linear.
At integer ratios every output frame falls on a source frame and is copied exactly.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.skeleton import Motion

__all__ = ["resample_motion"]

FloatArray = NDArray[np.float64]


def resample_motion(motion: Motion, fps: float) -> Motion:
    """``motion`` sampled at ``fps`` frames per second (slerp for rotations, linear translation)."""
    if not fps > 0:
        raise ValueError("fps must be positive")
    f_in = motion.num_frames
    if f_in == 0:
        return Motion(motion.skeleton, float(fps), motion.local_translation_m.copy(), motion.local_quat_wxyz.copy())
    k_out = max(1, int(round(f_in * fps / motion.fps)))
    # u = k * fps_in / fps_out, computed as an exact fraction where possible
    u = np.arange(k_out, dtype=np.float64) * motion.fps / fps  # (K,)
    u_round = np.round(u)
    u = np.where(np.abs(u - u_round) < 1e-9, u_round, u)
    u = np.clip(u, 0.0, f_in - 1)
    i0 = np.floor(u).astype(int)
    i1 = np.minimum(i0 + 1, f_in - 1)
    a = (u - i0)[:, None]  # (K, 1)

    t0, t1 = motion.local_translation_m[i0], motion.local_translation_m[i1]  # (K, J, 3)
    trans = t0 + a[..., None] * (t1 - t0)
    quat = _slerp(motion.local_quat_wxyz[i0], motion.local_quat_wxyz[i1], a)  # (K, J, 4)
    exact = (a[:, 0] == 0.0)
    trans[exact] = t0[exact]
    quat[exact] = motion.local_quat_wxyz[i0[exact]]
    return Motion(motion.skeleton, float(fps), trans, quat)


def _slerp(q0: FloatArray, q1: FloatArray, a: FloatArray) -> FloatArray:
    """Slerp between unit quaternions (K, J, 4) with weights (K, 1), on the shorter arc."""
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)  # (K, J, 1)
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.abs(dot).clip(0.0, 1.0)
    theta = np.arccos(dot)  # (K, J, 1)
    sin_t = np.sin(theta)
    w = a[..., None]  # (K, 1, 1)
    small = sin_t < 1e-6
    safe = np.where(small, 1.0, sin_t)
    c0 = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    c1 = np.where(small, w, np.sin(w * theta) / safe)
    q = c0 * q0 + c1 * q1
    return cast("FloatArray", q / np.linalg.norm(q, axis=-1, keepdims=True))
