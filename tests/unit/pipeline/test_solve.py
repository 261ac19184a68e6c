"""Skeleton solve: exact on rigid input (synthetic and CMU), robust to NaN, noise and straight limbs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from mocapd.pipeline.solve import solve_motion
from tests.conftest import shared_file
from tests.support.cmu import cmu_named_positions

SK = DEFAULT_SKELETON
J = SK.num_joints
LEGS = ("thigh_l", "calf_l", "foot_l", "ball_l", "thigh_r", "calf_r", "foot_r", "ball_r")


def _random_motion(frames: int, seed: int, max_angle_rad: float = 0.6) -> Motion:
    """A smooth random animation of the default skeleton (seeded)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, frames)[:, None]  # (F, 1)
    rotvec = np.zeros((frames, J, 3))
    for j in range(1, J):
        a, b, ph = rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), rng.uniform(0, 2 * np.pi, 3)
        rotvec[:, j] = max_angle_rad * (a * np.sin(2 * np.pi * t + ph) + 0.5 * b)
    quat_xyzw = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_quat().reshape(frames, J, 4)
    trans = np.broadcast_to(SK.rest_offsets_m, (frames, J, 3)).copy()
    trans[:, 0] = np.concatenate([np.cumsum(np.full((frames, 2), 0.01), axis=0), np.zeros((frames, 1))], axis=1)
    trans[:, 1, 2] = 0.95 + 0.05 * np.sin(4 * np.pi * t[:, 0])
    return Motion(SK, 30.0, trans, quat_xyzw[..., [3, 0, 1, 2]])


def test_rigid_synthetic_input_is_reproduced_exactly() -> None:
    src = _random_motion(120, seed=1)
    pos = src.world_positions_m()  # (F, J, 3)
    motion, report = solve_motion(pos, 30.0)
    fk = motion.world_positions_m()
    assert np.abs(fk[:, 1:] - pos[:, 1:]).max() < 1e-6
    for j in range(2, J):
        assert np.linalg.norm(motion.skeleton.rest_offsets_m[j]) == pytest.approx(
            np.linalg.norm(SK.rest_offsets_m[j]), abs=1e-9
        )
    assert report.fk_error_max_all_m < 1e-6
    assert max(report.bone_length_spread_m.values()) < 1e-9
    # root: the ground projection of the pelvis, no rotation
    np.testing.assert_allclose(fk[:, 0, :2], pos[:, SK.index("pelvis"), :2], atol=1e-9)
    np.testing.assert_allclose(fk[:, 0, 2], 0.0, atol=1e-12)
    np.testing.assert_allclose(motion.local_quat_wxyz[:, 0], [[1, 0, 0, 0]] * 120, atol=1e-12)
    np.testing.assert_allclose(motion.local_translation_m[:, 1, :2], 0.0, atol=1e-12)


def test_quaternions_are_hemisphere_continuous_and_unit() -> None:
    pos = _random_motion(200, seed=2, max_angle_rad=1.5).world_positions_m()
    motion, _ = solve_motion(pos, 30.0)
    q = motion.local_quat_wxyz
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-9)
    assert np.all(np.sum(q[1:] * q[:-1], axis=-1) >= 0.0)


def test_elbow_and_knee_are_pure_hinges_when_bent() -> None:
    """Bent more than 20 degrees, the elbow and knee rotate only about their rest hinge axis."""
    pos = _random_motion(90, seed=3).world_positions_m()
    motion, _ = solve_motion(pos, 30.0)
    limbs = (("upperarm_l", "lowerarm_l", "hand_l", 2), ("upperarm_r", "lowerarm_r", "hand_r", 2),
             ("thigh_l", "calf_l", "foot_l", 0), ("thigh_r", "calf_r", "foot_r", 0))
    checked = 0
    for a, b, c, axis in limbs:
        upper = pos[:, SK.index(b)] - pos[:, SK.index(a)]
        lower = pos[:, SK.index(c)] - pos[:, SK.index(b)]
        cos = np.sum(upper * lower, axis=1) / np.linalg.norm(upper, axis=1) / np.linalg.norm(lower, axis=1)
        bent = np.degrees(np.arccos(np.clip(cos, -1, 1))) > 20.0
        rotvec = Rotation.from_quat(motion.local_quat_wxyz[:, SK.index(b)][:, [1, 2, 3, 0]]).as_rotvec()
        others = np.delete(rotvec, axis, axis=1)[bent]
        checked += int(bent.sum())
        assert others.size == 0 or np.abs(others).max() < 1e-6, b
    assert checked > 50


def test_straight_limb_keeps_a_smooth_twist() -> None:
    """A leg that straightens and bends again must not flip its twist (no large rotation steps)."""
    frames = 60
    pos = np.tile(SK.rest_positions_m(), (frames, 1, 1))  # (F, J, 3)
    hip, knee, ankle, ball = (SK.index(n) for n in ("thigh_l", "calf_l", "foot_l", "ball_l"))
    bend = np.radians(np.concatenate([np.linspace(40, 0, 20), np.zeros(20), np.linspace(0, 40, 20)]))
    for f, b in enumerate(bend):
        shin = 0.41 * np.array([0.0, np.sin(b), -np.cos(b)])  # knee bends backwards about +X
        pos[f, ankle] = pos[f, knee] + shin
        pos[f, ball] = pos[f, ankle] + np.array([0.0, -0.13, -0.06])
    motion, report = solve_motion(pos, 30.0)
    q = motion.local_quat_wxyz
    steps = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], axis=-1)), 0, 1)))  # (F-1, J)
    assert steps[:, [hip, knee]].max() < 3.0
    assert report.fk_error_max_all_m < 1e-6


def test_nan_frames_and_joints_keep_the_previous_rotation() -> None:
    src = _random_motion(60, seed=4)
    pos = src.world_positions_m()
    pos[20:25] = np.nan  # whole frames missing
    pos[40:45, SK.index("hand_l")] = np.nan  # one joint missing
    motion, report = solve_motion(pos, 30.0)
    assert np.all(np.isfinite(motion.local_quat_wxyz)) and np.all(np.isfinite(motion.local_translation_m))
    q = motion.local_quat_wxyz
    np.testing.assert_allclose(q[20:25], np.broadcast_to(q[19], (5, J, 4)), atol=1e-12)
    lower = SK.index("lowerarm_l")
    np.testing.assert_allclose(q[40:45, lower], np.broadcast_to(q[39, lower], (5, 4)), atol=1e-12)
    assert report.held_frames["lowerarm_l"] == 10
    fk = motion.world_positions_m()
    known = np.isfinite(pos[..., 0])
    known[:, 0] = False
    assert np.abs(fk[known] - pos[known]).max() < 1e-6


def test_noisy_input_gets_symmetric_median_lengths() -> None:
    rng = np.random.default_rng(5)
    pos = _random_motion(300, seed=5).world_positions_m()
    noisy = pos + rng.normal(0.0, 0.01, pos.shape)
    motion, report = solve_motion(noisy, 30.0)
    off = motion.skeleton.rest_offsets_m
    for left in ("upperarm_l", "lowerarm_l", "hand_l", "calf_l", "foot_l", "ball_l"):
        right = left[:-1] + "r"
        assert np.linalg.norm(off[SK.index(left)]) == pytest.approx(np.linalg.norm(off[SK.index(right)]), abs=1e-12)
        assert np.linalg.norm(off[SK.index(left)]) == pytest.approx(
            np.linalg.norm(SK.rest_offsets_m[SK.index(left)]), abs=0.01
        )
        assert left in report.symmetric_pairs
    np.testing.assert_allclose(off[SK.index("thigh_l")] * [-1, 1, 1], off[SK.index("thigh_r")], atol=1e-12)
    assert 0.005 < report.bone_length_spread_m["lowerarm_l"] < 0.03
    assert report.fk_error_mean_all_m < 0.03


def test_subject_height_scales_the_skeleton() -> None:
    pos = _random_motion(30, seed=6).world_positions_m()
    _, plain = solve_motion(pos, 30.0)
    assert plain.stature_m == pytest.approx(1.75, rel=0.02)
    motion, report = solve_motion(pos, 30.0, subject_height_m=1.60)
    assert report.stature_m == pytest.approx(1.60, abs=1e-6)
    assert report.scale == pytest.approx(1.60 / plain.stature_m)
    assert np.linalg.norm(motion.skeleton.rest_offsets_m[SK.index("calf_l")]) == pytest.approx(0.42 * report.scale)


def test_upper_body_keeps_legs_and_root_at_rest() -> None:
    pos = _random_motion(40, seed=7).world_positions_m()
    for name in LEGS:
        pos[:, SK.index(name)] = np.nan
    motion, report = solve_motion(pos, 30.0, mocap_type="upper_body")
    q = motion.local_quat_wxyz
    for name in LEGS:
        np.testing.assert_allclose(q[:, SK.index(name)], [[1, 0, 0, 0]] * 40, atol=1e-12)
    np.testing.assert_allclose(motion.local_translation_m[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(motion.local_translation_m[:, 1], motion.skeleton.rest_offsets_m[[1] * 40])
    pelvis_axes = Rotation.from_quat(q[:, 1][:, [1, 2, 3, 0]]).as_rotvec()
    np.testing.assert_allclose(pelvis_axes[:, :2], 0.0, atol=1e-9)  # heading only
    assert np.isfinite(report.fk_error_max_m["hand_l"])


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        solve_motion(np.zeros((5, 3, 3)), 30.0)
    with pytest.raises(ValueError):
        solve_motion(np.zeros((5, J, 3)), 30.0, mocap_type="legs")


@pytest.mark.parametrize("take", ["cmu_131_01", "cmu_131_02", "cmu_131_03"])
def test_cmu_takes_round_trip_within_1mm(take: str) -> None:
    path = shared_file(f"bvh/{take}.bvh")
    pos, fps = cmu_named_positions(path)
    assert fps == 120.0
    motion, report = solve_motion(pos, fps, symmetry="never")
    fk = motion.world_positions_m()  # (F, J, 3)
    err = np.linalg.norm(fk[:, 1:] - pos[:, 1:], axis=-1)
    assert err.max() < 1e-3
    head_z = fk[:, SK.index("head"), 2]
    feet_z = fk[:, [SK.index(n) for n in ("foot_l", "foot_r", "ball_l", "ball_r")], 2].max(axis=1)
    assert np.all(head_z > feet_z + 0.5)
    assert 1.3 < report.stature_m < 2.1
    assert np.all(np.sum(motion.local_quat_wxyz[1:] * motion.local_quat_wxyz[:-1], axis=-1) >= 0.0)


@pytest.mark.parametrize("case", ["scattered", "no_legs_or_pelvis", "nothing"])
def test_sparse_input_still_gives_a_finite_motion(case: str) -> None:
    rng = np.random.default_rng(8)
    pos = _random_motion(60, seed=8).world_positions_m() + rng.normal(0.0, 0.01, (60, J, 3))
    if case == "scattered":
        pos[rng.random((60, J)) < 0.2] = np.nan
    elif case == "no_legs_or_pelvis":
        pos[:, [SK.index(n) for n in (*LEGS, "pelvis")]] = np.nan
    else:
        pos[:] = np.nan
    for mocap_type in ("full_body", "upper_body"):
        motion, report = solve_motion(pos, 30.0, subject_height_m=1.8, mocap_type=mocap_type)
        assert np.all(np.isfinite(motion.local_quat_wxyz))
        assert np.all(np.isfinite(motion.local_translation_m))
        assert np.all(np.isfinite(motion.skeleton.rest_offsets_m))
        assert report.stature_m == pytest.approx(1.8, rel=1e-6) or case == "nothing"
