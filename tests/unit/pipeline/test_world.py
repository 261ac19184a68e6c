"""World placement: intrinsics choice, translation fit on a synthetic projection with known depth,
ground and facing of the world frame."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocapd.pipeline.landmarks import joints_from_landmarks, zup_from_mediapipe
from mocapd.pipeline.skeleton import DEFAULT_SKELETON
from mocapd.pipeline.world import (
    camera_intrinsics,
    fit_body_rotation,
    fit_root_translation,
    place_in_world,
    smooth_rotations,
)
from tests.unit.pipeline.test_landmarks import _t_pose_mediapipe


def _project(points_cam: np.ndarray, f: float, cx: float, cy: float) -> np.ndarray:
    return np.stack(
        [f * points_cam[..., 0] / points_cam[..., 2] + cx, f * points_cam[..., 1] / points_cam[..., 2] + cy],
        -1,
    )


def test_intrinsics_sources() -> None:
    assert camera_intrinsics(1920, 1080, focal_length_px=1500.0).source == "focal_length_px"
    fov = camera_intrinsics(1920, 1080, camera_fov_deg=90.0)
    assert fov.source == "camera_fov_deg" and fov.focal_px == pytest.approx(960.0)
    diag = camera_intrinsics(1920, 1080)
    assert diag.source == "default_diagonal" and diag.focal_px == pytest.approx(math.hypot(1920, 1080))
    assert diag.as_dict()["focalSource"] == "default_diagonal"


def _synthetic_walk(
    frames: int = 60, f_px: float = 1400.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A T-pose body whose hip centre moves from 4 m to 3 m depth and 0.5 m sideways, camera 1 m up."""
    body = _t_pose_mediapipe()  # (33, 3) MediaPipe axes, hip-centred
    s = np.linspace(0.0, 1.0, frames)
    t_true = np.stack(
        [-0.25 + 0.5 * s, np.full(frames, 1.0 - 0.05), 4.0 - s], axis=1
    )  # (F, 3) camera frame, y down
    world = np.broadcast_to(body, (frames, 33, 3)).copy()
    px = _project(world + t_true[:, None], f_px, 960.0, 540.0)  # (F, 33, 2)
    vis = np.ones((frames, 33))
    return world, px, vis, t_true


def test_translation_fit_recovers_known_depth() -> None:
    world, px, vis, t_true = _synthetic_walk()
    rng = np.random.default_rng(5)
    px_noisy = px + rng.normal(0, 1.0, px.shape)
    k = camera_intrinsics(1920, 1080, focal_length_px=1400.0)
    t = fit_root_translation(px_noisy, world, vis, k)
    np.testing.assert_allclose(t[:, 2], t_true[:, 2], rtol=0.02)
    np.testing.assert_allclose(t[:, :2], t_true[:, :2], atol=0.02)
    # the wrong focal scales depth by the focal ratio and barely moves the image-plane position
    k_guess = camera_intrinsics(1920, 1080)
    t_guess = fit_root_translation(px, world, vis, k_guess)
    np.testing.assert_allclose(t_guess[:, 2] / t_true[:, 2], k_guess.focal_px / 1400.0, rtol=0.03)


def test_translation_fit_needs_enough_points() -> None:
    world, px, vis, _ = _synthetic_walk(frames=3)
    vis[1] = 0.0
    vis[1, [11, 12, 23]] = 1.0
    t = fit_root_translation(px, world, vis, camera_intrinsics(1920, 1080, focal_length_px=1400.0))
    assert np.isnan(t[1]).all() and np.isfinite(t[[0, 2]]).all()


def test_place_in_world_puts_feet_on_the_ground_facing_the_camera() -> None:
    world, _, _, t_true = _synthetic_walk()
    joints = joints_from_landmarks(zup_from_mediapipe(world))  # (F, J, 3)
    placed = place_in_world(joints, t_true, fps=30.0)
    pelvis = placed.pelvis_m
    np.testing.assert_allclose(pelvis[0, :2], 0.0, atol=1e-9)
    # walking towards the camera = towards -Y; sideways to the image right = +X
    assert pelvis[-1, 1] - pelvis[0, 1] == pytest.approx(-1.0, abs=0.02)
    assert pelvis[-1, 0] - pelvis[0, 0] == pytest.approx(0.5, abs=0.02)
    ball = placed.joints_m[:, DEFAULT_SKELETON.index("ball_l"), 2]
    ball_rest_z = DEFAULT_SKELETON.rest_positions_m()[DEFAULT_SKELETON.index("ball_l"), 2]
    np.testing.assert_allclose(ball, ball_rest_z, atol=0.01)
    assert placed.camera_position_m[1] < -3.5  # the camera is on the -Y side
    assert placed.camera_position_m[2] == pytest.approx(pelvis[0, 2] + 0.95, abs=0.02)
    assert placed.ground_method == "plane_fit" or abs(placed.camera_pitch_deg) < 1e-6


def test_refined_joints_are_placed_with_the_ground_and_gravity_of_the_prior() -> None:
    world, _, _, t_true = _synthetic_walk()
    joints = joints_from_landmarks(zup_from_mediapipe(world))  # (F, J, 3)
    plain = place_in_world(joints, t_true, fps=30.0)
    same = place_in_world(joints, t_true, fps=30.0, refined_cam=joints)
    np.testing.assert_allclose(same.joints_m, plain.joints_m, atol=1e-12)
    # a refined pose with the arms raised 10 cm: same camera and ground, the arms placed where refined
    refined = joints.copy()
    arms = [DEFAULT_SKELETON.index(n) for n in ("lowerarm_l", "hand_l", "lowerarm_r", "hand_r")]
    refined[:, arms, 2] += 0.1
    moved = place_in_world(joints, t_true, fps=30.0, refined_cam=refined)
    np.testing.assert_allclose(moved.camera_position_m, plain.camera_position_m, atol=1e-12)
    assert moved.ground_method == plain.ground_method
    lift = moved.joints_m[:, arms, 2] - plain.joints_m[:, arms, 2]
    np.testing.assert_allclose(lift, 0.1, atol=0.01)


@pytest.mark.parametrize("path", ["zigzag", "straight"])
def test_place_in_world_corrects_a_pitched_camera_from_the_floor(path: str) -> None:
    world, _, _, t_true = _synthetic_walk(frames=240)
    pitch = math.radians(12.0)  # camera looking down: the scene turns about the camera x axis
    rot = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    s = np.linspace(0.0, 1.0, t_true.shape[0])
    t_true = t_true.copy()
    t_true[:, 0] = 0.8 * np.sin(2 * np.pi * s) if path == "zigzag" else 0.0
    t_true[:, 2] = 5.0 - 2.0 * s
    body_cam = world @ rot.T  # (F, 33, 3) body orientation as the tilted camera sees it
    trans_cam = t_true @ rot.T
    joints = joints_from_landmarks(zup_from_mediapipe(body_cam))
    placed = place_in_world(joints, trans_cam, fps=60.0, stance_speed_mps=2.0)
    assert placed.ground_method == "plane_fit"
    assert placed.camera_pitch_deg == pytest.approx(12.0, abs=0.5)
    assert abs(placed.camera_roll_deg) < 0.5
    ball = placed.joints_m[:, DEFAULT_SKELETON.index("ball_r"), 2]
    assert np.ptp(ball) < 0.01


def test_upright_fallback_when_the_feet_do_not_move() -> None:
    world, _, _, t_true = _synthetic_walk(frames=30)
    t_true = np.broadcast_to(t_true[0], t_true.shape).copy()
    placed = place_in_world(joints_from_landmarks(zup_from_mediapipe(world)), t_true, fps=30.0)
    assert placed.ground_method == "upright_lowest_foot"
    assert placed.camera_pitch_deg == pytest.approx(0.0, abs=1e-9)


def test_body_rotation_fit_recovers_a_tilted_world_frame() -> None:
    world, _, vis, t_true = _synthetic_walk(frames=20)
    world = world.copy()
    world[:, [15, 16], 2] += np.array([0.25, -0.2])  # give the shape some depth
    world[:, [27, 28], 2] += np.array([-0.15, 0.1])
    tilt = Rotation.from_rotvec([0.10, -0.06, 0.04]).as_matrix()  # ~7 deg: the camera sees tilt @ X
    px = _project(world @ tilt.T + t_true[:, None], 1400.0, 960.0, 540.0)
    k = camera_intrinsics(1920, 1080, focal_length_px=1400.0)
    t0 = fit_root_translation(px, world, vis, k)
    rot = fit_body_rotation(px, world, vis, k, t0)
    np.testing.assert_allclose(rot, np.broadcast_to(tilt, rot.shape), atol=2e-3)
    smooth = smooth_rotations(rot, fps=30.0)
    np.testing.assert_allclose(smooth, rot, atol=2e-3)
    t = fit_root_translation(px, np.einsum("fij,fkj->fki", rot, world), vis, k)
    np.testing.assert_allclose(t, t_true, atol=2e-3)


def test_body_rotation_fit_is_robust_to_one_limb_with_a_wrong_depth() -> None:
    """The 3D left arm points 30 cm too far towards the camera (the 2D sees it where it is): a plain
    least-squares fit turns the whole body towards it, the robust (Cauchy) fit keeps the body's rotation."""
    world, _, vis, t_true = _synthetic_walk(frames=20)
    world = world.copy()
    world[:, [15, 16], 2] += np.array([0.25, -0.2])  # give the shape some depth
    world[:, [27, 28], 2] += np.array([-0.15, 0.1])
    tilt = Rotation.from_rotvec([0.10, -0.06, 0.04]).as_matrix()
    px = _project(world @ tilt.T + t_true[:, None], 1400.0, 960.0, 540.0)
    seen = world.copy()
    seen[:, 13, 2] -= 0.15  # left elbow and wrist: depth wrong in the 3D landmarks only
    seen[:, 15, 2] -= 0.30
    k = camera_intrinsics(1920, 1080, focal_length_px=1400.0)
    t0 = fit_root_translation(px, seen, vis, k)

    def error_deg(rot: np.ndarray) -> float:
        return float(np.degrees(np.linalg.norm(Rotation.from_matrix(rot @ tilt.T).as_rotvec(), axis=1)).max())

    plain = error_deg(fit_body_rotation(px, seen, vis, k, t0, robust_scale=None))
    robust = error_deg(fit_body_rotation(px, seen, vis, k, t0))
    assert plain > 2.0
    assert robust < 0.5 * plain


def test_body_rotation_fit_falls_back_to_least_squares_when_the_inliers_collapse() -> None:
    """8 landmarks seen (trunk, elbows, ankles) with 3 px noise: where the Cauchy weights keep fewer
    than 6 inliers (the fit's minimum) the rotation they pick rests on a near-minimal subset, so those
    frames take the plain least-squares fit (identical to it); the others keep the robust fit."""
    world, _, vis, t_true = _synthetic_walk(frames=20)
    world = world.copy()
    world[:, [15, 16], 2] += np.array([0.25, -0.2])
    world[:, [27, 28], 2] += np.array([-0.15, 0.1])
    tilt = Rotation.from_rotvec([0.10, -0.06, 0.04]).as_matrix()
    px = _project(world @ tilt.T + t_true[:, None], 1400.0, 960.0, 540.0)
    px = px + np.random.default_rng(3).normal(0.0, 3.0, px.shape)
    few = np.zeros_like(vis)
    few[:, [11, 12, 13, 14, 23, 24, 27, 28]] = 1.0
    k = camera_intrinsics(1920, 1080, focal_length_px=1400.0)
    t0 = fit_root_translation(px, world, few, k)
    plain = fit_body_rotation(px, world, few, k, t0, robust_scale=None)
    robust = fit_body_rotation(px, world, few, k, t0)
    fallback = np.all(robust == plain, axis=(1, 2))
    assert 0 < fallback.sum() < len(fallback)
    err = np.degrees(np.linalg.norm(Rotation.from_matrix(robust @ tilt.T).as_rotvec(), axis=1))
    assert err.max() < 5.0


def test_body_rotation_fit_leaves_unknown_frames_nan_and_bad_fits_identity() -> None:
    world, px, vis, t_true = _synthetic_walk(frames=3)
    k = camera_intrinsics(1920, 1080, focal_length_px=1400.0)
    t0 = t_true.copy()
    t0[1] = np.nan
    rot = fit_body_rotation(px, world, vis, k, t0)
    assert np.isnan(rot[1]).all()
    np.testing.assert_allclose(rot[[0, 2]], np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-6)
