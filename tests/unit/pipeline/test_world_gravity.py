"""Gravity from balance and the support drift of a planted foot (world placement without a floor fit)."""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from mocapd.pipeline.skeleton import DEFAULT_SKELETON
from mocapd.pipeline.world import balance_up, centre_of_mass, support_drift_m

REST = DEFAULT_SKELETON.rest_positions_m()  # (J, 3) a T-pose standing on z = 0


def _standing(frames: int, sway_m: float = 0.03, seed: int = 0) -> np.ndarray:
    """A T-pose swaying gently over its feet, (F, J, 3)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 30.0
    joints = np.repeat(REST[None], frames, axis=0).copy()
    upper = [DEFAULT_SKELETON.index(n) for n in DEFAULT_SKELETON.names if not n.startswith(("thigh", "calf", "foot", "ball", "root"))]
    joints[:, upper, 0] += sway_m * np.sin(2 * np.pi * 0.7 * t)[:, None]  # side to side, symmetric on average
    return joints + rng.normal(0, 0.003, joints.shape)


def test_centre_of_mass_of_a_t_pose_is_over_the_feet_at_hip_height() -> None:
    com = centre_of_mass(REST[None])[0]
    assert abs(com[0]) < 1e-9 and abs(com[1]) < 0.02
    assert 0.8 < com[2] < 1.1


def test_balance_recovers_a_tilted_camera() -> None:
    tilt = Rotation.from_euler("xy", [22.0, -10.0], degrees=True)
    seen = _standing(90) @ tilt.as_matrix().T  # what an upright-camera assumption would give
    up = balance_up(seen)
    assert up is not None
    true_up = tilt.apply([0.0, 0.0, 1.0])
    # within the cue's own bias (the model's centre of mass sits over the ankles, the foot centre is
    # half a foot ahead: about 3.6 deg), well inside the 10 deg below which placement ignores the cue
    assert math.degrees(math.acos(float(np.clip(up @ true_up, -1, 1)))) < 5.0


def test_balance_on_one_foot_uses_the_supporting_foot() -> None:
    joints = _standing(60)
    lift = [DEFAULT_SKELETON.index(n) for n in ("calf_r", "foot_r", "ball_r")]
    joints[:, lift, 2] += 0.25  # right foot raised: the left one carries the body
    # shift the upper body over the left foot, as balance requires
    upper = [DEFAULT_SKELETON.index(n) for n in ("pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head")]
    joints[:, upper, 0] += REST[DEFAULT_SKELETON.index("foot_l"), 0]
    up = balance_up(joints)
    assert up is not None and math.degrees(math.acos(up[2])) < 8.0


def test_support_drift_removes_a_bobbing_planted_foot_but_not_a_raised_support() -> None:
    f = 120
    t = np.arange(f) / 30.0
    bob = 0.04 * np.sin(2 * np.pi * 0.5 * t)  # slow depth-noise bob
    joints = np.repeat(REST[None], f, axis=0).copy()
    joints[..., 2] += bob[:, None]
    drift = support_drift_m(joints, 30.0)
    assert np.max(np.abs(drift - bob)) < 0.01
    box = np.repeat(REST[None], f, axis=0).copy()
    box[..., 2] += 0.40  # standing on a 40 cm box the whole clip
    assert np.max(np.abs(support_drift_m(box, 30.0))) < 1e-9  # not a support of the ground plane: kept


def test_support_drift_leaves_a_jump_alone() -> None:
    f = 90
    joints = np.repeat(REST[None], f, axis=0).copy()
    t = np.arange(f) / 30.0
    flight = (t > 1.0) & (t < 1.6)
    height = np.where(flight, 0.5 * 9.81 * (t - 1.0) * (1.6 - t), 0.0)  # a 0.44 m jump
    joints[..., 2] += height[:, None]
    drift = support_drift_m(joints, 30.0)
    assert np.max(np.abs(drift)) < 0.05  # the flight is not pulled down to the floor
