"""Quaternions -> FBX Euler angles (rotation order XYZ) with continuity across frames.

FBX rotation order ``eEulerXYZ`` (RotationOrder 0) means: rotate about X by ``a``, then about Y by
``b``, then about Z by ``c``, all about the parent's fixed axes, so
``R = Rz(c) @ Ry(b) @ Rx(a)``. From a rotation matrix: ``b = asin(-R[2,0])``,
``a = atan2(R[2,1], R[2,2])``, ``c = atan2(R[1,0], R[0,0])``; the same rotation is also
``(a + pi, pi - b, c + pi)`` and any of these plus multiples of ``2 pi``. Animation curves are
interpolated per component, so for every frame we pick, among those equivalents, the one nearest to
the previous frame's angles (continuity unwrapping); at gimbal lock (``|cos b| ~ 0``) only ``a + c``
or ``a - c`` is defined, and we keep ``a`` from the previous frame.
"""

from __future__ import annotations

from typing import cast

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "euler_xyz_from_matrix",
    "matrix_from_euler_xyz",
    "matrix_from_quat_wxyz",
    "unwrapped_euler_xyz_rad",
]

FloatArray = NDArray[np.float64]

_GIMBAL_COS = 1e-6
_TWO_PI = 2.0 * np.pi


def matrix_from_quat_wxyz(q: FloatArray) -> FloatArray:
    """Rotation matrices (..., 3, 3) of unit wxyz quaternions (..., 4) (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def matrix_from_euler_xyz(angles_rad: FloatArray) -> FloatArray:
    """``Rz(c) @ Ry(b) @ Rx(a)`` for angles (..., 3) = (a, b, c); returns (..., 3, 3)."""
    angles_rad = np.asarray(angles_rad, dtype=np.float64)
    ca, cb, cc = np.moveaxis(np.cos(angles_rad), -1, 0)
    sa, sb, sc = np.moveaxis(np.sin(angles_rad), -1, 0)
    return np.stack(
        [
            np.stack([cb * cc, sa * sb * cc - ca * sc, ca * sb * cc + sa * sc], axis=-1),
            np.stack([cb * sc, sa * sb * sc + ca * cc, ca * sb * sc - sa * cc], axis=-1),
            np.stack([-sb, sa * cb, ca * cb], axis=-1),
        ],
        axis=-2,
    )


def euler_xyz_from_matrix(m: FloatArray, prev_a_rad: FloatArray | None = None) -> FloatArray:
    """Principal XYZ angles (..., 3) of rotation matrices (..., 3, 3), ``b`` in [-pi/2, pi/2].

    At gimbal lock ``a`` is taken from ``prev_a_rad`` (or 0) and ``c`` solved from the rest.
    """
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 2:
        prev = None if prev_a_rad is None else np.reshape(prev_a_rad, (1,))
        return cast("FloatArray", euler_xyz_from_matrix(m[None], prev)[0])
    b = np.arcsin(np.clip(-m[..., 2, 0], -1.0, 1.0))
    a = np.arctan2(m[..., 2, 1], m[..., 2, 2])
    c = np.arctan2(m[..., 1, 0], m[..., 0, 0])
    locked = np.abs(np.cos(b)) < _GIMBAL_COS
    if np.any(locked):
        a_fix = np.zeros_like(a) if prev_a_rad is None else np.broadcast_to(prev_a_rad, a.shape)
        a = np.where(locked, a_fix, a)
        c = np.array(c, copy=True)
        # R = Rz(c) Ry(b) Rx(a), so Rz(c) = R (Ry(b) Rx(a))^T: read c off it, on the locked entries only.
        rest = np.stack([a[locked], b[locked], np.zeros(int(locked.sum()))], axis=-1)  # (L, 3)
        rz = m[locked] @ np.swapaxes(matrix_from_euler_xyz(rest), -1, -2)  # (L, 3, 3)
        c[locked] = np.arctan2(rz[:, 1, 0], rz[:, 0, 0])
    return np.stack([a, b, c], axis=-1)


def _wrapped(d: FloatArray) -> FloatArray:
    """Angle differences mapped to [-pi, pi)."""
    return (d + np.pi) % _TWO_PI - np.pi


def _other_branch(angles: FloatArray) -> FloatArray:
    """The second XYZ solution of the same rotation: ``(a + pi, pi - b, c + pi)``."""
    return np.stack([angles[..., 0] + np.pi, np.pi - angles[..., 1], angles[..., 2] + np.pi], axis=-1)


def unwrapped_euler_xyz_rad(m: FloatArray) -> FloatArray:
    """XYZ Euler angles (F, J, 3) for rotation matrices (F, J, 3, 3), continuous along the F axis.

    Frame 0 takes the principal solution; every later frame takes whichever of the two solution
    branches, shifted by whole turns per component, lies nearest (sum of absolute differences) to the
    frame before. Because the branch map is an isometry of the wrapped angles, "switch branch between
    frames k and k+1" depends only on the two principal solutions, so the branch of frame k is the
    parity of the switches before it (a cumulative sum), and the whole-turn shifts are ``np.unwrap``.
    """
    m = np.asarray(m, dtype=np.float64)
    principal = euler_xyz_from_matrix(m)  # (F, J, 3)
    locked = np.abs(np.cos(principal[..., 1])) < _GIMBAL_COS  # (F, J)
    if locked[1:].any():
        # At gimbal lock only a +- c is defined: keep the previous frame's a and solve c.
        prev_a = np.concatenate(
            [np.zeros_like(principal[:1, ..., 0]), principal[:-1, ..., 0]], axis=0
        )  # (F, J)
        principal = np.where(locked[..., None], euler_xyz_from_matrix(m, prev_a), principal)
    same = np.abs(_wrapped(np.diff(principal, axis=0))).sum(axis=-1)  # (F-1, J)
    switch = np.abs(_wrapped(_other_branch(principal[1:]) - principal[:-1])).sum(axis=-1)  # (F-1, J)
    parity = (
        np.concatenate([np.zeros((1, *same.shape[1:])), np.cumsum(switch < same, axis=0)], axis=0) % 2
    )  # (F, J)
    chosen = np.where(parity[..., None] == 1, _other_branch(principal), principal)  # (F, J, 3)
    return np.unwrap(chosen, axis=0)
