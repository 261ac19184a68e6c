"""Finger angles from hand landmarks: recovered from a hand posed with known angles (both hands), held
within anatomical limits (no backward bending), relaxed where the hand is not seen with a smooth blend,
and written as 15 Unreal finger bones per hand that curl toward the palm."""

from __future__ import annotations

import numpy as np
import pytest

from mocapd.pipeline.fingers import (
    FINGER_NAMES,
    FINGERS,
    LIMITS_DEG,
    RELAXED_DEG,
    HandAngles,
    finger_angles,
    hand_angles_track,
    with_fingers,
)
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion, quat_rotate

_TIP_M = 0.02


def _t_pose(frames: int = 1) -> Motion:
    j = DEFAULT_SKELETON.num_joints
    return Motion(DEFAULT_SKELETON, 30.0, np.tile(DEFAULT_SKELETON.rest_offsets_m, (frames, 1, 1)),
                  np.tile([1.0, 0.0, 0.0, 0.0], (frames, j, 1)))


def _landmarks(motion: Motion, side: str) -> np.ndarray:
    """MediaPipe's 21 hand points of ``side`` from the posed skeleton (F, 21, 3)."""
    pos, rot = motion.world_transforms()
    names = motion.skeleton.names
    out = np.zeros((motion.num_frames, 21, 3))
    out[:, 0] = pos[:, names.index(f"hand_{side}")]
    for i, finger in enumerate(FINGERS):
        base = 1 + 4 * i
        for k in range(3):
            out[:, base + k] = pos[:, names.index(f"{finger}_0{k + 1}_{side}")]
        last = names.index(f"{finger}_03_{side}")
        direction = motion.skeleton.rest_offsets_m[last] / np.linalg.norm(motion.skeleton.rest_offsets_m[last])
        out[:, base + 3] = pos[:, last] + quat_rotate(rot[:, last], np.tile(direction * _TIP_M, (motion.num_frames, 1)))
    return out


def _posed(flex_deg: np.ndarray, spread_deg: np.ndarray | None = None) -> Motion:
    f = flex_deg.shape[0]
    spread = np.deg2rad(spread_deg) if spread_deg is not None else np.zeros((f, 5))
    hand = HandAngles(np.deg2rad(flex_deg), spread, np.ones(f, dtype=bool))
    return with_fingers(_t_pose(f), hand, hand)


def test_the_skeleton_gains_fifteen_finger_bones_per_hand() -> None:
    m = with_fingers(_t_pose(), None, None)
    assert m.skeleton.num_joints == DEFAULT_SKELETON.num_joints + 30
    assert set(FINGER_NAMES) <= set(m.skeleton.names)
    names = m.skeleton.names
    for side in "lr":
        for finger in FINGERS:
            assert names[m.skeleton.parents[names.index(f"{finger}_01_{side}")]] == f"hand_{side}"
            assert names[m.skeleton.parents[names.index(f"{finger}_03_{side}")]] == f"{finger}_02_{side}"
    # the original joints are untouched
    np.testing.assert_array_equal(m.world_positions_m()[:, : DEFAULT_SKELETON.num_joints], _t_pose().world_positions_m())


@pytest.mark.parametrize("side", ["l", "r"])
def test_angles_are_recovered_from_a_posed_hand(side: str) -> None:
    rng = np.random.default_rng(3)
    flex = np.stack([rng.uniform([5, 5, 5], [lim[0][1] * 0.8, lim[1][1] * 0.8, lim[2][1] * 0.8]) for lim in
                     (LIMITS_DEG[f] for f in FINGERS)])[None]  # (1, 5, 3)
    points = _landmarks(_posed(flex), side)
    got = np.rad2deg(finger_angles(points)[0])[0]
    np.testing.assert_allclose(got[1:, 1:], flex[0, 1:, 1:], atol=1.5)  # the two outer joints of each finger
    np.testing.assert_allclose(got[1:, 0], flex[0, 1:, 0], atol=12.0)  # the knuckle, against the palm's line
    np.testing.assert_allclose(got[0, 1:], flex[0, 0, 1:], atol=1.5)  # the thumb's two outer joints


def test_spread_toward_the_thumb_is_positive_on_both_hands() -> None:
    flex = np.zeros((1, 5, 3))
    spread = np.zeros((1, 5))
    spread[0, 1] = 15.0  # index toward the thumb
    spread[0, 4] = -15.0  # pinky away from it
    m = _posed(flex, spread)
    for side in "lr":
        got = np.rad2deg(finger_angles(_landmarks(m, side))[1])[0]
        assert got[1] > 8.0 and got[4] < -8.0, (side, got)


def test_limits_hold_and_nothing_bends_backwards() -> None:
    f = 10
    flex = np.zeros((f, 5, 3))
    flex[:5] = -40.0  # bent backwards
    flex[5:] = 170.0  # beyond any joint's range
    points = _landmarks(_posed(np.clip(flex, -60, 175)), "l")
    track = hand_angles_track(points, np.ones(f, dtype=bool), 30.0)
    deg = np.rad2deg(track.flexion_rad)
    assert (deg >= -1e-9).all()
    hi = np.array([[r[1] for r in LIMITS_DEG[x]] for x in FINGERS])
    assert (deg <= hi + 1e-9).all()


def test_an_unseen_hand_relaxes_smoothly() -> None:
    f = 90
    flex = np.full((f, 5, 3), 70.0)
    flex[..., 0, :] = 40.0
    points = _landmarks(_posed(np.clip(flex, 0, [[r[1] for r in LIMITS_DEG[x]] for x in FINGERS])), "l")
    seen = np.ones(f, dtype=bool)
    seen[30:60] = False
    points[30:60] = np.nan
    track = hand_angles_track(points, seen, 30.0)
    deg = np.rad2deg(track.flexion_rad)
    relaxed = np.array([RELAXED_DEG[x] for x in FINGERS])
    np.testing.assert_allclose(deg[45], relaxed, atol=1e-6)  # the middle of the gap holds the relaxed pose
    assert np.abs(deg[40] - relaxed).max() < 1e-6 and np.abs(deg[10, 1:] - 70.0).max() < 12.0
    step = np.abs(np.diff(deg, axis=0)).max()
    assert step < 10.0, f"a jump of {step:.1f} degrees in one frame"
    assert not track.seen[30:60].any() and track.seen[:30].all()
    # no data at all: the relaxed pose throughout
    none = hand_angles_track(np.full((5, 21, 3), np.nan), np.zeros(5, dtype=bool), 30.0)
    np.testing.assert_allclose(np.rad2deg(none.flexion_rad), np.tile(relaxed, (5, 1, 1)))


def test_flexion_curls_the_fingers_toward_the_palm() -> None:
    flat = _posed(np.zeros((1, 5, 3)))
    fist = _posed(np.tile([[45.0, 50.0, 60.0]], (1, 5, 1)))
    for side in "lr":
        tip = fist.skeleton.index(f"index_03_{side}")
        hand = fist.skeleton.index(f"hand_{side}")
        z_flat = flat.world_positions_m()[0, tip, 2] - flat.world_positions_m()[0, hand, 2]
        z_fist = fist.world_positions_m()[0, tip, 2] - fist.world_positions_m()[0, hand, 2]
        assert z_fist < z_flat - 0.03, side  # the palm faces down in the T-pose
