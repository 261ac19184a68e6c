"""Retargeting a synthetic walk with known contacts onto the G1 (no shared data needed)."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from mocapd.errors import InputFault
from mocapd.pipeline.contacts import FootContacts, detect_contacts
from mocapd.pipeline.skeleton import Motion
from mocapd.robots.g1 import G1_23DOF_INVALID_SDK_SLOTS, g1_description
from mocapd.robots.human_contacts import contacts_from_pipeline
from mocapd.robots.motion import RobotMotion
from mocapd.robots.quality import foot_skate_cm_s, joint_limit_figures
from mocapd.robots.retarget import retarget_to_g1
from tests.unit.robots.synthetic_walk import synthetic_walk


@lru_cache(maxsize=1)
def _walk() -> tuple[Motion, np.ndarray, RobotMotion]:
    motion, contacts = synthetic_walk(duration_s=3.0)
    return motion, contacts, retarget_to_g1(motion, None)


def test_detected_contacts_match_the_synthetic_ground_truth() -> None:
    motion, truth, _ = _walk()
    assert (contacts_from_pipeline(detect_contacts(motion), motion.num_frames) == truth).mean() > 0.97


def test_walk_respects_limits_and_keeps_feet_planted() -> None:
    _, _, rm = _walk()
    q = rm.quality
    assert q["limit_violation_frames"] == 0
    assert q["speed_violations"] == 0 and q["max_speed_ratio"] <= 1.0
    assert q["sole_penetration_mm"] < 5.0
    assert q["foot_skate_cm_s"] < 5.0
    assert q["leg_self_collision_frames"] == 0
    assert q["tracking_error_m"]["feet"] < 0.02
    assert q["tracking_error_m"]["hands"] < 0.05
    desc = g1_description(rm.variant)
    assert np.all(rm.dof_pos_rad >= desc.lower_rad - 1e-9) and np.all(rm.dof_pos_rad <= desc.upper_rad + 1e-9)


def test_walk_moves_forward_like_the_scaled_human() -> None:
    motion, _, rm = _walk()
    pelvis = motion.world_positions_m()[:, motion.skeleton.index("pelvis")]  # (F, 3)
    human_m = pelvis[-1, :2] - pelvis[0, :2]
    robot_m = rm.root_pos_m[-1, :2] - rm.root_pos_m[0, :2]
    expected_m = rm.quality["scale"]["leg"] * human_m
    assert np.linalg.norm(robot_m - expected_m) < 0.05 * np.linalg.norm(expected_m)
    # the robot faces where it walks: its +X axis points along the travel direction (-Y)
    from scipy.spatial.transform import Rotation

    forward = Rotation.from_quat(rm.root_quat_xyzw).apply([1.0, 0.0, 0.0])  # (F, 3)
    assert np.all(forward[:, 1] < -0.95)


def test_stance_leg_knee_and_standing_height_are_plausible() -> None:
    _, contacts, rm = _walk()
    names = rm.joint_names
    knee_l = rm.dof_pos_rad[:, names.index("left_knee_joint")]
    # the swing knee bends more than the stance knee
    assert knee_l[~contacts[:, 0]].mean() > knee_l[contacts[:, 0]].mean() + 0.1
    assert 0.65 < rm.root_pos_m[:, 2].mean() < 0.80


def test_velocity_limit_holds_when_the_human_moves_impossibly_fast() -> None:
    motion, _ = synthetic_walk(duration_s=1.0)
    q = motion.local_quat_wxyz.copy()
    k = motion.skeleton.index("upperarm_l")
    q[15:, k] = [np.cos(0.9), 0.0, np.sin(0.9), 0.0]  # teleport the left arm up in one frame
    fast = Motion(motion.skeleton, motion.fps, motion.local_translation_m, q)
    rm = retarget_to_g1(fast, None)
    assert rm.quality["speed_violations"] == 0
    assert rm.quality["max_speed_ratio"] <= 1.0 + 1e-6


def test_upper_body_keeps_the_legs_standing() -> None:
    motion, _ = synthetic_walk(duration_s=1.0)
    rm = retarget_to_g1(motion, None, mocap_type="upper_body")
    legs = [i for i, n in enumerate(rm.joint_names) if any(p in n for p in ("hip", "knee", "ankle"))]
    np.testing.assert_allclose(rm.dof_pos_rad[:, legs], 0.0, atol=1e-9)
    np.testing.assert_allclose(rm.root_pos_m - rm.root_pos_m[0], 0.0, atol=1e-9)
    assert rm.contacts.all()
    shoulder = rm.dof_pos_rad[:, rm.joint_names.index("left_shoulder_pitch_joint")]
    assert np.ptp(shoulder) > 0.2  # the arms still swing


def test_23dof_variant() -> None:
    motion, _ = synthetic_walk(duration_s=1.0)
    rm = retarget_to_g1(motion, None, variant="g1_23dof_rev_1_0")
    assert rm.dof_pos_rad.shape == (motion.num_frames, 23)
    assert rm.quality["limit_violation_frames"] == 0
    full = rm.dof_pos_29_rad()
    assert full.shape == (motion.num_frames, 29)
    np.testing.assert_array_equal(full[:, list(G1_23DOF_INVALID_SDK_SLOTS)], 0.0)


def test_invalid_mocap_type_is_an_input_fault() -> None:
    motion, _ = synthetic_walk(duration_s=0.2)
    with pytest.raises(InputFault) as err:
        retarget_to_g1(motion, None, mocap_type="hands_only")
    assert err.value.code == "mocap_type_invalid"


def test_frames_without_data_are_held_and_marked_invalid() -> None:
    motion, _ = synthetic_walk(duration_s=1.0)
    t = motion.local_translation_m.copy()
    t[10:13] = np.nan
    rm = retarget_to_g1(Motion(motion.skeleton, motion.fps, t, motion.local_quat_wxyz), None)
    assert list(np.flatnonzero(~rm.valid)) == [10, 11, 12]
    assert np.isfinite(rm.dof_pos_rad).all() and np.isfinite(rm.root_pos_m).all()


def test_pipeline_contacts_are_used_when_given() -> None:
    f = 6
    flags = np.zeros((f, 4), dtype=bool)  # foot_l, ball_l, foot_r, ball_r
    flags[[0, 1], 0] = True
    flags[[1, 2], 1] = True
    flags[[4, 5], 3] = True
    fc = FootContacts(fps=30.0, contact=flags, height_m=np.zeros((f, 4)), speed_m_s=np.zeros((f, 4)))
    c = contacts_from_pipeline(fc, f)
    np.testing.assert_array_equal(c[:, 0], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(c[:, 1], [0, 0, 0, 0, 1, 1])
    with pytest.raises(ValueError):
        contacts_from_pipeline(fc, f + 1)


def test_pipeline_contacts_drive_the_foot_locking() -> None:
    motion, _ = synthetic_walk(duration_s=1.0)
    rm = retarget_to_g1(motion, detect_contacts(motion))
    np.testing.assert_array_equal(rm.contacts, detect_contacts(motion).per_foot)
    assert rm.quality["foot_skate_cm_s"] < 5.0


def test_quality_figures_on_known_trajectories() -> None:
    desc = g1_description()
    q = np.zeros((4, 29))
    q[2, 3] = desc.upper_rad[3] + 0.1  # knee past its limit in one frame
    fig = joint_limit_figures(desc, q, fps=30.0)
    assert fig["limit_violation_frames"] == 1
    assert fig["limit_violation_max_rad"] == pytest.approx(0.1)
    # knee moves 2.9798 rad in 1/30 s: 89.4 rad/s against 20 rad/s, twice (there and back)
    assert fig["speed_violations"] == 2
    assert fig["max_speed_ratio"] == pytest.approx((desc.upper_rad[3] + 0.1) * 30 / 20)
    # a sole sliding at 0.3 m/s on the ground, the other lifted
    f = 10
    soles = np.zeros((f, 2, 3))
    soles[:, 0, 0] = 0.01 * np.arange(f)  # 1 cm per frame at 30 fps
    soles[:, 1, 2] = 0.2
    assert foot_skate_cm_s(soles, 30.0) == pytest.approx(30.0)


def test_hands_reach_their_world_targets_when_the_torso_cannot_reach_its_own() -> None:
    """The arms are tracked in the world, not relative to the robot's torso: with the torso target
    tilted 0.9 rad (beyond the waist's +-0.52 rad pitch), the robot's torso stops short of it, and the
    hands still reach their unchanged targets instead of carrying the torso's error (4 cm when the
    arms were tracked relative to the torso)."""
    import mujoco
    from scipy.spatial.transform import Rotation

    from mocapd.robots.g1 import load_g1_model
    from mocapd.robots.ik import solve_frames
    from mocapd.robots.kinematics import forward_kinematics
    from mocapd.robots.targets import scaled_targets

    def rot(q_wxyz: np.ndarray) -> Rotation:
        return Rotation.from_quat(q_wxyz[:, [1, 2, 3, 0]])

    motion, contacts = synthetic_walk(duration_s=1.0)
    desc = g1_description()
    targets, _ = scaled_targets(motion, desc, contacts)
    tilt = Rotation.from_rotvec([0.9, 0.0, 0.0])
    targets = [
        dataclasses.replace(t, quat_wxyz=(tilt * rot(t.quat_wxyz)).as_quat()[:, [3, 0, 1, 2]])
        if t.part == "torso"
        else t
        for t in targets
    ]
    qpos = solve_frames(desc, targets, motion.fps)

    model = load_g1_model(desc.variant)
    data = mujoco.MjData(model)
    torso_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso_link")
    torso_quat = np.zeros((qpos.shape[0], 4))
    for k, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        torso_quat[k] = data.xquat[torso_id]
    torso_target = next(t for t in targets if t.part == "torso").quat_wxyz
    assert (rot(torso_quat).inv() * rot(torso_target)).magnitude().mean() > 0.1  # out of the torso's reach

    kin = forward_kinematics(desc, qpos)
    for t in (t for t in targets if t.part == "hands"):
        assert np.linalg.norm(kin.site_pos_m[t.frame] - t.pos_m, axis=1).mean() < 0.015


def test_each_foot_in_contact_stays_put_when_both_are_down() -> None:
    """A walk flagged as double support for 8 frames while the human takes a step: the IK cannot hold
    both pinned feet, and the ground settling's root shift removes only the feet's mean drift, so each
    foot kept its share (3.2 cm of sliding, skate 4.5 cm/s, before the per-foot correction); each leg is
    now corrected on its own and each sole stays at its span position."""
    from mocapd.robots.kinematics import forward_kinematics

    motion, truth = synthetic_walk(duration_s=2.0)
    flags = np.repeat(truth, 2, axis=1)  # heel and toe of each foot, (F, 4)
    flags[20:28] = True  # both feet "down" for 8 frames while the human takes a step
    contacts = FootContacts(motion.fps, flags, np.zeros(flags.shape), np.zeros(flags.shape))
    rm = retarget_to_g1(motion, contacts)
    soles = forward_kinematics(g1_description(rm.variant), rm.qpos()).sole_centre_m  # (F, 2, 3)
    for side in range(2):
        c = rm.contacts[:, side]
        starts = np.flatnonzero(c & ~np.concatenate([[False], c[:-1]]))
        for a in starts:
            b = a + int(np.argmin(c[a:])) if not c[a:].all() else len(c)
            xy = soles[a:b, side, :2]  # (S, 2)
            assert np.linalg.norm(xy - xy.mean(axis=0), axis=1).max() < 0.002, (side, a, b)
    assert rm.quality["foot_skate_cm_s"] < 1.0
    assert rm.quality["speed_violations"] == 0 and rm.quality["sole_penetration_mm"] == 0.0


def test_a_contact_on_the_ball_alone_rolls_the_foot_target_on_its_toe() -> None:
    """Where only the human's ball is down and its heel is raised, the robot's foot target rolls on its
    toe (the toe stays where the flat foot has it, the heel rises) instead of being pressed flat, which
    asked the leg to reach a heel the human had lifted."""
    from scipy.spatial.transform import Rotation

    from mocapd.robots.human_contacts import pivots_from_pipeline
    from mocapd.robots.targets import scaled_targets

    flags = np.zeros((3, 4), dtype=bool)  # foot_l, ball_l, foot_r, ball_r
    flags[0, [0, 1]] = True
    flags[1, 1] = True
    flags[2, 2] = True
    fc = FootContacts(fps=30.0, contact=flags, height_m=np.zeros((3, 4)), speed_m_s=np.zeros((3, 4)))
    np.testing.assert_array_equal(pivots_from_pipeline(fc, 3), [[0, 0], [1, 0], [0, -1]])

    motion, _ = synthetic_walk(duration_s=1.0)
    f = motion.num_frames
    t = motion.local_translation_m.copy()
    q = motion.local_quat_wxyz.copy()
    k = motion.skeleton.index("foot_l")
    q[:, k] = (Rotation.from_quat(q[:, k][:, [1, 2, 3, 0]]) * Rotation.from_euler("x", 0.3)).as_quat()[
        :, [3, 0, 1, 2]
    ]  # the left foot pitched: heel up, ball down (whichever way, the test reads the heights)
    tilted = Motion(motion.skeleton, motion.fps, t, q)
    pos = tilted.world_positions_m()
    rest = tilted.skeleton.rest_positions_m()
    names = tilted.skeleton.names
    heel_up = (pos[:, names.index("foot_l"), 2] - rest[names.index("foot_l"), 2]) - (
        pos[:, names.index("ball_l"), 2] - rest[names.index("ball_l"), 2]
    )
    contacts = np.zeros((f, 2), dtype=bool)
    contacts[:, 0] = True
    desc = g1_description()
    pivots = np.zeros((f, 2), dtype=np.int8)
    pivots[:, 0] = 1 if heel_up.mean() > 0 else -1
    flat, _ = scaled_targets(tilted, desc, contacts)
    rolled, _ = scaled_targets(tilted, desc, contacts, pivots=pivots)
    foot = {t.frame: t for t in flat}["left_ankle_roll_link"]
    roll = {t.frame: t for t in rolled}["left_ankle_roll_link"]
    site = np.array(desc.sole_sites_m["toe" if pivots[0, 0] > 0 else "heel"])

    def site_world(t: object) -> np.ndarray:
        r = Rotation.from_quat(t.quat_wxyz[:, [1, 2, 3, 0]])  # type: ignore[attr-defined]
        return t.pos_m + r.apply(site)  # type: ignore[attr-defined,no-any-return]

    np.testing.assert_allclose(site_world(roll), site_world(foot), atol=1e-9)  # the pivot stays put
    tilt = Rotation.from_quat(roll.quat_wxyz[:, [1, 2, 3, 0]]).apply([1.0, 0.0, 0.0])[:, 2]  # (F,)
    assert np.all(np.abs(tilt) > 0.1)  # the foot is rolled, not flat
    assert np.all(roll.pos_m[:, 2] > foot.pos_m[:, 2] + 0.005)  # the ankle rises with the heel (toes)


def test_a_foot_rolling_onto_its_ball_keeps_its_toe_still() -> None:
    """The last 6 frames of each left stance: the human's heel rises (the foot pitches up to 0.4 rad) and
    only the ball is flagged down. The robot foot rolls on its toe, so the toe -- not the sole centre --
    is what must not slide, also across the step where the heel leaves the ground (with the sole centre
    held, the toe slid by up to 3.5 cm/s per step, 2.3 cm/s on average); its heading stays fixed."""
    from scipy.spatial.transform import Rotation

    from mocapd.robots.kinematics import forward_kinematics
    from mocapd.robots.quality import contact_slip_cm_s

    motion, truth = synthetic_walk(duration_s=2.0)
    f, k = motion.num_frames, motion.skeleton.index("foot_l")
    names, rest = motion.skeleton.names, motion.skeleton.rest_positions_m()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], truth[:, 0].astype(np.int8), [0]])))
    ramp = np.zeros(f)
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= 12 and b < f:
            ramp[b - 6 : b] = np.linspace(0.4 / 6, 0.4, 6)
    rolled = ramp > 0

    def tilted(sign: float) -> Motion:
        q = motion.local_quat_wxyz.copy()
        r = Rotation.from_quat(q[:, k][:, [1, 2, 3, 0]]) * Rotation.from_rotvec(
            np.outer(sign * ramp, [1, 0, 0])
        )
        q[:, k] = r.as_quat()[:, [3, 0, 1, 2]]
        return Motion(motion.skeleton, motion.fps, motion.local_translation_m, q)

    def heel_up(m: Motion) -> float:
        pos = m.world_positions_m()
        dz = {j: pos[:, names.index(j), 2] - rest[names.index(j), 2] for j in ("foot_l", "ball_l")}
        return float((dz["foot_l"] - dz["ball_l"])[rolled].mean())

    m = tilted(1.0) if heel_up(tilted(1.0)) > 0 else tilted(-1.0)
    assert heel_up(m) > 0.02
    flags = np.repeat(truth, 2, axis=1)  # foot_l, ball_l, foot_r, ball_r
    flags[rolled, 0] = False  # the left heel is up, its ball down
    rm = retarget_to_g1(m, FootContacts(m.fps, flags, np.zeros(flags.shape), np.zeros(flags.shape)))
    kin = forward_kinematics(g1_description(rm.variant), rm.qpos())
    toe, heel = kin.site_pos_m["left_toe"], kin.site_pos_m["left_heel"]  # (F, 3)
    steps = rolled[1:] & rm.contacts[:-1, 0]  # ball-only frames and the step onto the ball
    assert steps.sum() >= 6
    pitch = np.arcsin((heel[:, 2] - toe[:, 2]) / np.linalg.norm(heel - toe, axis=1))
    assert pitch[rolled].max() > 0.2  # the robot foot does roll
    speed = np.linalg.norm(np.diff(toe[:, :2], axis=0), axis=1) * m.fps * 100.0  # (F-1,) cm/s
    assert speed[steps].max() < 0.2, speed[steps]
    yaw = np.arctan2(*(toe - heel)[:, 1::-1].T)
    assert np.ptp(yaw[rolled]) < 1e-3
    pivots = np.zeros((f, 2), dtype=np.int8)
    pivots[rolled, 0] = 1
    assert contact_slip_cm_s(kin.site_pos_m, rm.contacts, pivots, m.fps) < 0.1
    assert rm.quality["contact_slip_cm_s"] < 0.1
    assert rm.quality["speed_violations"] == 0 and rm.quality["sole_penetration_mm"] == 0.0


def test_contact_slip_follows_the_point_that_carries_the_contact() -> None:
    """The toe counts while only the ball is down (and over the step onto it), the centre while flat."""
    from mocapd.robots.human_contacts import contact_point_of_step
    from mocapd.robots.quality import contact_slip_cm_s

    np.testing.assert_array_equal(
        contact_point_of_step(
            np.array([0, 0, 1, 1, -1, 1], np.int8), np.array([0, 1, 1, 0, -1, -1], np.int8)
        ),
        [0, 1, 1, 1, -1, 0],
    )
    f = 5
    sites = {f"{s}_{p}": np.zeros((f, 3)) for s in ("left", "right") for p in ("sole", "toe", "heel")}
    sites["left_sole"][:, 0] = np.arange(f) * 0.01  # the centre moves 1 cm a frame, the toe stays
    contacts = np.zeros((f, 2), dtype=bool)
    contacts[:, 0] = True
    pivots = np.zeros((f, 2), dtype=np.int8)
    assert contact_slip_cm_s(sites, contacts, pivots, 10.0) == pytest.approx(10.0)
    pivots[2:, 0] = 1  # rolls onto the ball at frame 2: steps 1-2, 2-3, 3-4 follow the toe
    assert contact_slip_cm_s(sites, contacts, pivots, 10.0) == pytest.approx(2.5)


def test_the_pin_correction_is_clamped_to_the_joint_speed_limits() -> None:
    """`_pin_feet` moves leg joints after the IK's velocity limits; `_clamp_speeds` keeps them within."""
    from mocapd.robots.retarget import _clamp_speeds

    desc = g1_description()
    cols = np.array([i for i, n in enumerate(desc.joint_names) if "knee" in n or "hip_pitch" in n])
    q = np.zeros((6, 7 + desc.num_dof))
    q[3:, 7 + cols] = 1.0  # a 1 rad jump in one frame: 30 rad/s at 30 fps, over the knees' 20
    assert joint_limit_figures(desc, q[:, 7:], 30.0)["speed_violations"] > 0
    out = _clamp_speeds(q, cols, desc.velocity_rad_s[cols], 30.0)
    speed = np.abs(np.diff(out[:, 7:], axis=0)) * 30.0
    assert np.all(speed <= desc.velocity_rad_s * (1 + 1e-9))
    assert joint_limit_figures(desc, out[:, 7:], 30.0)["speed_violations"] == 0
    np.testing.assert_allclose(out[-1, 7 + cols], 1.0)  # it catches up within the limits
    np.testing.assert_array_equal(_clamp_speeds(out, cols, desc.velocity_rad_s[cols], 30.0), out)
