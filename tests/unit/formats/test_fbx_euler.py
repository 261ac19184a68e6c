"""Quaternion -> XYZ Euler conversion for FBX curves: scipy as the reference, continuity across frames."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from mocapd.formats.fbx.euler import (
    euler_xyz_from_matrix,
    matrix_from_euler_xyz,
    matrix_from_quat_wxyz,
    unwrapped_euler_xyz_rad,
)


def test_matrix_from_euler_matches_scipy_extrinsic_xyz() -> None:
    rng = np.random.default_rng(1)
    angles = rng.uniform(-np.pi, np.pi, (50, 3))  # (N, 3)
    expected = Rotation.from_euler("xyz", angles).as_matrix()  # extrinsic: Rz @ Ry @ Rx
    assert np.allclose(matrix_from_euler_xyz(angles), expected, atol=1e-12)


def test_matrix_from_quat_matches_scipy() -> None:
    rot = Rotation.random(40, random_state=2)
    xyzw = rot.as_quat()
    wxyz = xyzw[:, [3, 0, 1, 2]]
    assert np.allclose(matrix_from_quat_wxyz(wxyz), rot.as_matrix(), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_principal_angles_reproduce_the_matrix(seed: int) -> None:
    m = Rotation.random(8, random_state=seed).as_matrix()  # (8, 3, 3)
    angles = euler_xyz_from_matrix(m)
    assert np.all(np.abs(angles[:, 1]) <= np.pi / 2 + 1e-12)
    assert np.allclose(matrix_from_euler_xyz(angles), m, atol=1e-9)


def test_gimbal_lock_keeps_previous_x_angle() -> None:
    m = matrix_from_euler_xyz(np.array([0.7, np.pi / 2, -0.2]))
    angles = euler_xyz_from_matrix(m[None], prev_a_rad=np.array([0.7]))[0]
    assert np.allclose(matrix_from_euler_xyz(angles), m, atol=1e-9)
    assert np.isclose(angles[0], 0.7)


def test_unwrapping_follows_full_turns_without_jumps() -> None:
    # Three full turns about each axis in turn, plus a wobble that crosses b = +-90 deg branches.
    t = np.linspace(0.0, 1.0, 400)
    rotvec = np.stack([np.sin(3 * t) * 0.4, np.cos(2 * t) * 1.9, 6 * np.pi * t], axis=-1)
    m = Rotation.from_rotvec(rotvec).as_matrix()[:, None]  # (F, 1, 3, 3)
    angles = unwrapped_euler_xyz_rad(m)  # (F, 1, 3)
    assert np.allclose(matrix_from_euler_xyz(angles), m, atol=1e-9)
    step = np.abs(np.diff(angles, axis=0)).max()
    assert step < 0.35  # the principal angles alone jump by ~2 pi at every wrap
    assert np.ptp(angles[:, 0, 2]) > 4 * np.pi  # the yaw kept turning instead of wrapping


def test_unwrapping_picks_the_second_branch_when_nearer() -> None:
    # Pitch passes over +90 deg: the principal solution flips a and c by pi there; ours must not.
    b = np.linspace(1.2, 1.95, 50)
    angles_in = np.stack([np.full_like(b, 0.3), b, np.full_like(b, -0.4)], axis=-1)
    m = matrix_from_euler_xyz(angles_in)[:, None]  # (F, 1, 3, 3)
    out = unwrapped_euler_xyz_rad(m)[:, 0]
    assert np.allclose(matrix_from_euler_xyz(out), m[:, 0], atol=1e-9)
    assert np.abs(np.diff(out, axis=0)).max() < 0.1
