"""Foot contacts on the CMU walk and synthetic signals; foot-sliding removal."""

from __future__ import annotations

import numpy as np
import pytest

from mocapd.pipeline.contacts import (
    CONTACT_JOINTS,
    FootContacts,
    _pin_corrections,
    detect_contacts,
    foot_skate_m_s,
    remove_foot_sliding,
)
from mocapd.pipeline.runs import true_runs
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from tests.conftest import shared_file
from tests.support.cmu import cmu_motion

SK = DEFAULT_SKELETON


def _with_root_drift(motion: Motion, speed_m_s: float) -> Motion:
    """The same motion with an artificial slide of the whole body (steady plus a wobble)."""
    t = np.arange(motion.num_frames) / motion.fps
    trans = motion.local_translation_m.copy()
    trans[:, 0, 0] += speed_m_s * t + 0.05 * np.sin(np.pi * t)
    trans[:, 0, 1] += 0.03 * np.sin(2.0 * np.pi * 0.3 * t)
    return Motion(motion.skeleton, motion.fps, trans, motion.local_quat_wxyz)


def _standing(frames: int, fps: float = 30.0) -> Motion:
    q = np.zeros((frames, SK.num_joints, 4))
    q[..., 0] = 1.0
    trans = np.broadcast_to(SK.rest_offsets_m, (frames, SK.num_joints, 3)).copy()
    return Motion(SK, fps, trans, q)


def test_cmu_walk_has_alternating_foot_contacts() -> None:
    motion = cmu_motion(shared_file("bvh/cmu_131_01.bvh"))
    contacts = detect_contacts(motion)
    assert contacts.contact.shape == (motion.num_frames, 4)
    assert contacts.joint_names == CONTACT_JOINTS
    left, right = contacts.per_foot[:, 0], contacts.per_foot[:, 1]
    walking = slice(150, 800)  # start-walk-stop: the walk proper
    assert (left[walking] & ~right[walking]).sum() > 30  # single support on each side
    assert (right[walking] & ~left[walking]).sum() > 30
    assert not (~left[walking] & ~right[walking]).all()
    assert len(true_runs(left)) >= 4 and len(true_runs(right)) >= 4  # several steps each
    for k in range(4):
        for s, e in true_runs(contacts.contact[:, k]):
            assert e - s >= 3  # minimum duration
    in_contact = contacts.contact
    assert np.all(contacts.height_m[in_contact] < 1.2 * 0.04)
    assert np.all(contacts.speed_m_s[in_contact] < 1.2 * 0.3)


def test_cmu_walk_slide_is_removed() -> None:
    motion = cmu_motion(shared_file("bvh/cmu_131_01.bvh"))
    contacts = detect_contacts(motion)
    slid = _with_root_drift(motion, speed_m_s=0.1)
    assert foot_skate_m_s(slid, contacts) > 0.1
    fixed = remove_foot_sliding(slid, contacts)
    assert foot_skate_m_s(fixed, contacts) < 0.01  # under 1 cm/s
    # the pose is kept: bones are rigid, leg joints change only a little, the upper body not at all
    p_fixed, p_slid = fixed.world_positions_m(), slid.world_positions_m()
    pel = SK.index("pelvis")
    rel_fixed, rel_slid = p_fixed - p_fixed[:, pel : pel + 1], p_slid - p_slid[:, pel : pel + 1]
    upper = [SK.index(n) for n in ("head", "hand_l", "hand_r")]
    assert np.abs(rel_fixed[:, upper] - rel_slid[:, upper]).max() < 1e-9
    assert np.abs(rel_fixed - rel_slid).max() < 0.08
    # no new jumps in rotation (the blend in and out is smooth)
    q = fixed.local_quat_wxyz
    steps = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q[1:] * q[:-1], axis=-1)), 0, 1)))
    q0 = slid.local_quat_wxyz
    steps0 = np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q0[1:] * q0[:-1], axis=-1)), 0, 1)))
    assert steps.max() < steps0.max() + 5.0


def test_standing_still_is_all_contact_and_unchanged() -> None:
    motion = _standing(30)
    contacts = detect_contacts(motion)
    assert contacts.contact.all()
    fixed = remove_foot_sliding(motion, contacts)
    np.testing.assert_allclose(fixed.world_positions_m(), motion.world_positions_m(), atol=1e-12)


def test_raised_or_fast_feet_are_not_in_contact() -> None:
    frames = 40
    motion = _standing(frames)
    trans = motion.local_translation_m.copy()
    trans[10:20, 1, 2] += 0.2  # hop: both feet 20 cm up
    trans[30:40, 0, 0] += np.arange(10) * 0.05  # sliding at 1.5 m/s
    contacts = detect_contacts(Motion(SK, 30.0, trans, motion.local_quat_wxyz))
    c = contacts.per_foot[:, 0]
    assert not c[10:20].any()
    assert c[2:9].all()
    assert not c[31:39].any()
    with pytest.raises(ValueError):
        remove_foot_sliding(motion, FootContacts(30.0, np.zeros((3, 4), bool), np.zeros((3, 4)), np.zeros((3, 4))))


def test_pinned_foot_is_held_at_the_mean_of_its_contact() -> None:
    """Both feet planted while the legs drift apart (depth noise the root cannot absorb): each foot is
    held at the mean of its positions over the contact, so each leg takes half the drift, not all of it."""
    frames = 30
    motion = _standing(frames)
    trans = motion.local_translation_m.copy()
    slide = np.linspace(-0.03, 0.03, frames)
    trans[:, SK.index("thigh_l"), 0] += slide  # left leg slides +x, right leg -x: no mean drift
    trans[:, SK.index("thigh_r"), 0] -= slide
    quat = motion.local_quat_wxyz.copy()  # knees bent 40 degrees, so the feet can be reached exactly
    half = np.radians(20.0) / 2
    for side in "lr":
        quat[:, SK.index(f"thigh_{side}")] = [np.cos(half), -np.sin(half), 0.0, 0.0]
        quat[:, SK.index(f"calf_{side}")] = [np.cos(2 * half), np.sin(2 * half), 0.0, 0.0]
    slid = Motion(SK, 30.0, trans, quat)
    contacts = FootContacts(30.0, np.ones((frames, 4), bool), np.zeros((frames, 4)), np.zeros((frames, 4)))
    fixed = remove_foot_sliding(slid, contacts)
    before, after = slid.world_positions_m(), fixed.world_positions_m()
    for name in ("foot_l", "ball_l", "foot_r", "ball_r"):
        j = SK.index(name)
        mean = np.broadcast_to(before[:, j, :2].mean(axis=0), (frames, 2))
        np.testing.assert_allclose(after[:, j, :2], mean, atol=1e-9)
    assert foot_skate_m_s(fixed, contacts) < 1e-6
    # the leg changes by at most half the slide (anchored at touch-down it would be the whole 6 cm)
    assert np.abs(after[:, SK.index("foot_l"), 0] - before[:, SK.index("foot_l"), 0]).max() < 0.031


def test_pin_corrections_ramp_in_before_touch_down() -> None:
    """A heel drifting 1 cm/frame through a contact on frames 10-19: held at its mean over them; the
    step to that correction is spread over the 4 free frames before touch-down, the release over 4 after."""
    nf = 30
    xy = np.stack([0.01 * np.arange(nf), np.zeros(nf)], axis=1)
    contact = np.zeros(nf, bool)
    contact[10:20] = True
    c_heel, c_toe = _pin_corrections(xy, xy.copy(), contact, contact.copy(), 4)
    np.testing.assert_allclose(c_heel, c_toe)
    held = xy[10:20] + c_heel[10:20]
    np.testing.assert_allclose(held, np.broadcast_to(xy[10:20].mean(axis=0), held.shape), atol=1e-12)
    np.testing.assert_allclose(c_heel[10, 0], 0.045)  # mean 0.145 - touch-down 0.10
    np.testing.assert_allclose(c_heel[5:10, 0], 0.045 * np.array([0.0, 0.2, 0.4, 0.6, 0.8]), atol=1e-12)
    release = -0.045 * np.array([1.0, 0.75, 0.5, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(c_heel[19:25, 0], release, atol=1e-12)
    assert not c_heel[:6].any() and not c_heel[23:].any()
    assert np.abs(np.diff(c_heel[:, 0])).max() <= 0.045 / 4 + 1e-12  # no jump in the correction


def test_true_runs_are_the_start_stop_pairs_of_each_run_of_true() -> None:
    mask = np.array([True, True, False, True, False, False, True])
    assert true_runs(mask) == [(0, 2), (3, 4), (6, 7)]
    assert true_runs(np.zeros(3, dtype=bool)) == [] and true_runs(np.ones(2, dtype=bool)) == [(0, 2)]
