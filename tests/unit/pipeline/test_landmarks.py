"""Landmarks -> DEFAULT_SKELETON joints: axes, joint definitions, NaN handling (synthetic)."""

from __future__ import annotations

import numpy as np

from mocapd.pipeline.landmarks import (
    ZUP_FROM_MEDIAPIPE,
    hand_points,
    joint_visibility,
    joints_from_landmarks,
    torso_from_limbs,
    zup_from_mediapipe,
)
from mocapd.pipeline.skeleton import DEFAULT_SKELETON

J = DEFAULT_SKELETON.index


def _t_pose_mediapipe() -> np.ndarray:
    """A person facing the camera in MediaPipe axes (x image right, y down, z away), hip-centred.

    Their left side (odd landmarks) is on the image right (+x)."""
    lm = np.zeros((33, 3))
    lm[0] = (0.0, -0.62, -0.08)  # nose, towards the camera
    lm[7], lm[8] = (0.07, -0.60, 0.0), (-0.07, -0.60, 0.0)  # ears
    lm[11], lm[12] = (0.18, -0.48, 0.0), (-0.18, -0.48, 0.0)  # shoulders
    lm[13], lm[14] = (0.46, -0.48, 0.0), (-0.46, -0.48, 0.0)  # elbows
    lm[15], lm[16] = (0.71, -0.48, 0.0), (-0.71, -0.48, 0.0)  # wrists
    lm[17], lm[18] = (0.78, -0.48, 0.02), (-0.78, -0.48, 0.02)  # pinky
    lm[19], lm[20] = (0.80, -0.48, -0.02), (-0.80, -0.48, -0.02)  # index
    lm[23], lm[24] = (0.09, 0.0, 0.0), (-0.09, 0.0, 0.0)  # hips
    lm[25], lm[26] = (0.09, 0.42, 0.0), (-0.09, 0.42, 0.0)  # knees
    lm[27], lm[28] = (0.09, 0.83, 0.0), (-0.09, 0.83, 0.0)  # ankles
    lm[29], lm[30] = (0.09, 0.88, 0.05), (-0.09, 0.88, 0.05)  # heels
    lm[31], lm[32] = (0.09, 0.89, -0.13), (-0.09, 0.89, -0.13)  # foot index, towards the camera
    return lm


def test_axes_map_is_a_proper_rotation() -> None:
    assert np.isclose(np.linalg.det(ZUP_FROM_MEDIAPIPE), 1.0)
    p = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(zup_from_mediapipe(p), p @ ZUP_FROM_MEDIAPIPE.T)


def test_person_facing_the_camera_faces_minus_y_with_left_at_plus_x() -> None:
    joints = joints_from_landmarks(zup_from_mediapipe(_t_pose_mediapipe())[None])[0]  # (J, 3)
    assert np.isnan(joints[J("root")]).all()
    np.testing.assert_allclose(joints[J("pelvis")], 0.0, atol=1e-12)
    assert (
        joints[J("head")][2]
        > joints[J("neck_01")][2]
        > joints[J("spine_03")][2]
        > joints[J("spine_01")][2]
        > 0
    )
    assert joints[J("hand_l")][0] > 0.6 and joints[J("hand_r")][0] < -0.6
    assert joints[J("foot_l")][2] < -0.8 and joints[J("ball_l")][1] < joints[J("foot_l")][1]  # toes face -Y
    # spine joints lie on the pelvis -> shoulder-centre line at the rest fractions
    np.testing.assert_allclose(joints[J("spine_02")], [0.0, 0.0, 0.48 * 0.22 / 0.48], atol=1e-12)
    np.testing.assert_allclose(joints[J("clavicle_l")], [0.03, 0.0, 0.48], atol=1e-12)
    np.testing.assert_allclose(joints[J("upperarm_r")], [-0.18, 0.0, 0.48], atol=1e-12)


def test_direction_of_every_bone_matches_the_rest_skeleton_in_a_t_pose() -> None:
    joints = joints_from_landmarks(zup_from_mediapipe(_t_pose_mediapipe())[None])[0]
    rest = DEFAULT_SKELETON.rest_positions_m()
    for j, p in enumerate(DEFAULT_SKELETON.parents):
        if p <= 0:  # the root and its child
            continue
        name = DEFAULT_SKELETON.names[j]
        got = joints[j] - joints[p]
        want = rest[j] - rest[p]
        cos = got @ want / np.linalg.norm(got) / np.linalg.norm(want)
        loose = (
            "ball_l",
            "ball_r",
            "clavicle_l",
            "clavicle_r",
            "thigh_l",
            "thigh_r",
        )  # hips sit level with the pelvis
        assert cos > (0.75 if name in loose else 0.97), name


def test_missing_ears_fall_back_to_the_nose_and_nan_propagates() -> None:
    lm = _t_pose_mediapipe()
    lm[7] = np.nan
    lm[27] = np.nan
    joints = joints_from_landmarks(zup_from_mediapipe(lm)[None])[0]
    np.testing.assert_allclose(joints[J("head")], zup_from_mediapipe(lm[0]))
    assert np.isnan(joints[J("foot_l")]).all() and np.isfinite(joints[J("foot_r")]).all()


def test_joint_visibility_takes_the_weakest_source() -> None:
    vis = np.full((1, 33), 0.9)
    vis[0, 24] = 0.3
    vis[0, 15] = 0.1
    conf = joint_visibility(vis)[0]
    assert conf[J("pelvis")] == 0.3 and conf[J("spine_02")] == 0.3
    assert conf[J("hand_l")] == 0.1 and conf[J("hand_r")] == 0.9


def test_hand_points_are_the_mean_of_wrist_index_and_pinky() -> None:
    lm = _t_pose_mediapipe()[None]
    left, right = hand_points(lm)
    np.testing.assert_allclose(left[0], (lm[0, 15] + lm[0, 17] + lm[0, 19]) / 3)
    assert right[0, 0] < -0.7


def test_torso_from_limbs_rebuilds_the_torso_by_the_landmark_rules() -> None:
    rng = np.random.default_rng(0)
    lm = zup_from_mediapipe(_t_pose_mediapipe()[None] + rng.normal(0.0, 0.03, (4, 33, 3)))
    joints = joints_from_landmarks(lm)
    scrambled = joints.copy()
    torso = [J(n) for n in ("pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "clavicle_l", "clavicle_r")]
    scrambled[:, torso] += rng.normal(0.0, 0.1, (4, len(torso), 3))
    rebuilt = torso_from_limbs(scrambled)
    np.testing.assert_allclose(rebuilt[:, 1:], joints[:, 1:], atol=1e-12)
    # narrowing the thighs about the pelvis keeps the pelvis
    narrowed = joints.copy()
    for side in ("thigh_l", "thigh_r"):
        narrowed[:, J(side)] = joints[:, J("pelvis")] + 0.85 * (joints[:, J(side)] - joints[:, J("pelvis")])
    np.testing.assert_allclose(torso_from_limbs(narrowed)[:, J("pelvis")], joints[:, J("pelvis")], atol=1e-12)
