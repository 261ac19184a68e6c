"""The quality report: every figure from synthetic inputs whose answer is known."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from mocapd.formats.quality import QualityInputs, RobotQualityInputs, build_quality_report
from mocapd.pipeline.layout import BLAZEPOSE_33
from mocapd.pipeline.skeleton import DEFAULT_SKELETON
from mocapd.robots.g1 import g1_description
from mocapd.robots.motion import RobotMotion

FPS = 30.0
J = DEFAULT_SKELETON.num_joints
NAMES = DEFAULT_SKELETON.names


def _rest_positions(num_frames: int) -> np.ndarray:
    return np.tile(DEFAULT_SKELETON.rest_positions_m(), (num_frames, 1, 1))  # (F, J, 3)


def _inputs(num_frames: int = 30, **overrides: Any) -> QualityInputs:
    """A clean clip: person always visible (visibility 0.9), the rest pose standing still."""
    fields: dict[str, Any] = {
        "source_fps": FPS,
        "visibility": np.full((num_frames, 33), 0.9),
        "person_mask": np.ones(num_frames, dtype=bool),
        "interpolated_mask": np.zeros(num_frames, dtype=bool),
        "held_mask": np.zeros(num_frames, dtype=bool),
        "motion_fps": FPS,
        "solved_positions_m": _rest_positions(num_frames),
        "input_positions_m": _rest_positions(num_frames),
    }
    fields.update(overrides)
    return QualityInputs(**fields)


def test_clean_clip_has_no_warnings_and_is_strict_json() -> None:
    report = build_quality_report(_inputs())
    assert report["warnings"] == []
    assert report["schemaVersion"] == 1
    assert set(report) == {"schemaVersion", "frames", "perJointConfidence", "jitter", "boneLengthSpreadMm",
                           "boneLengthCvPercent", "footContacts", "robot", "warnings"}  # fmt: skip
    assert report["footContacts"] is None and report["robot"] is None
    json.dumps(report, allow_nan=False)


def test_frame_counts_ratio_and_gap_warning() -> None:
    n = 230
    person = np.ones(n, dtype=bool)
    person[[10, 11, 12, 13, 14, 100, 101, 200]] = False  # gaps of 5, 2 and 1 frames
    interpolated = ~person & (np.arange(n) > 50)
    held = ~person & (np.arange(n) < 50)
    report = build_quality_report(
        _inputs(n, person_mask=person, interpolated_mask=interpolated, held_mask=held)
    )
    frames = report["frames"]
    assert frames["total"] == 230
    assert frames["withPerson"] == 222
    assert frames["interpolated"] == 3
    assert frames["held"] == 5
    assert frames["personRatio"] == pytest.approx(222 / 230, abs=1e-4)
    assert frames["durationS"] == pytest.approx(230 / 30, abs=1e-3)
    assert frames["longestGapS"] == pytest.approx(5 / 30, abs=1e-3)
    assert any(w.startswith("person not visible in 8 of 230 frames") for w in report["warnings"])
    assert any(w.startswith("5 of 230 frames hold some joints") for w in report["warnings"])


def test_per_joint_confidence_is_the_mean_visibility_over_frames_with_a_person() -> None:
    n = 20
    vis = np.full((n, 33), 0.9)
    vis[:, BLAZEPOSE_33.index("left_ankle")] = np.linspace(0.2, 0.4, n)  # mean 0.3
    person = np.ones(n, dtype=bool)
    person[:5] = False
    vis[:5] = np.nan  # no detection: no visibility
    vis[5:, BLAZEPOSE_33.index("nose")] = [0.5, 0.7] * 7 + [0.6]  # mean over person frames 0.6
    report = build_quality_report(_inputs(n, visibility=vis, person_mask=person))
    conf = report["perJointConfidence"]
    assert list(conf) == list(BLAZEPOSE_33.names)
    assert conf["nose"] == pytest.approx(0.6, abs=1e-3)
    assert conf["left_ankle"] == pytest.approx(np.linspace(0.2, 0.4, n)[5:].mean(), abs=1e-3)
    assert conf["right_ankle"] == pytest.approx(0.9)
    assert any(
        "low detection confidence" in w and "left_ankle" in w and "nose" not in w for w in report["warnings"]
    )


def test_jitter_is_the_mean_acceleration_per_joint_and_overall() -> None:
    n = 40
    t = np.arange(n) / FPS
    solved = _rest_positions(n)
    hand = NAMES.index("hand_l")
    head = NAMES.index("head")
    solved[:, hand, 0] += 0.5 * 3.0 * t**2  # constant 3 m/s^2 along X
    solved[:, head, 2] += 0.5 * 4.0 * t**3  # a = 12 t along Z; jerk 12 m/s^3
    report = build_quality_report(_inputs(n, solved_positions_m=solved))
    jitter = report["jitter"]
    assert jitter["perJointMps2"]["hand_l"] == pytest.approx(3.0, abs=1e-3)
    assert jitter["perJointMps2"]["pelvis"] == pytest.approx(0.0, abs=1e-6)
    head_expected = np.mean(12.0 * t[1:-1])  # central difference of a cubic is exact: a(t_k) = 12 t_k
    assert jitter["perJointMps2"]["head"] == pytest.approx(head_expected, abs=1e-2)
    assert jitter["meanAccelerationMps2"] == pytest.approx((3.0 + head_expected) / J, abs=1e-3)
    assert jitter["meanJerkMps3"] == pytest.approx(12.0 / J, abs=0.05)
    assert not any("jittery" in w for w in report["warnings"])


def test_noisy_motion_is_called_jittery() -> None:
    rng = np.random.default_rng(0)
    solved = _rest_positions(60) + rng.normal(0.0, 0.02, size=(60, J, 3))  # 2 cm noise at 30 fps
    report = build_quality_report(_inputs(60, solved_positions_m=solved))
    assert report["jitter"]["meanAccelerationMps2"] > 30.0
    assert any("jittery" in w for w in report["warnings"])


def test_bone_length_spread_is_the_std_of_input_lengths_in_mm() -> None:
    n = 10
    x = _rest_positions(n)
    calf, thigh = NAMES.index("calf_l"), NAMES.index("thigh_l")
    lengths = np.where(np.arange(n) % 2 == 0, 0.40, 0.44)  # std 20 mm about a mean of 0.42 m
    x[:, calf] = x[:, thigh] - lengths[:, None] * np.array([0.0, 0.0, 1.0])
    x[3, NAMES.index("hand_r")] = np.nan  # a missing joint drops that frame for its bones only
    report = build_quality_report(_inputs(n, input_positions_m=x))
    spread, cv = report["boneLengthSpreadMm"], report["boneLengthCvPercent"]
    assert spread["thigh_l-calf_l"] == pytest.approx(20.0, abs=1e-2)
    assert cv["thigh_l-calf_l"] == pytest.approx(100 * 0.02 / 0.42, abs=1e-2)
    assert spread["lowerarm_r-hand_r"] == pytest.approx(0.0, abs=1e-6)
    assert "root-pelvis" not in spread  # the root is derived, not tracked
    assert len(spread) == J - 2
    assert not any("unstable tracking" in w for w in report["warnings"])


def test_large_bone_length_variation_is_warned() -> None:
    n = 10
    x = _rest_positions(n)
    x[::2, NAMES.index("hand_l"), 0] += 0.1  # forearm 0.25 <-> 0.35 m: CV about 17 %
    report = build_quality_report(_inputs(n, input_positions_m=x))
    assert report["boneLengthCvPercent"]["lowerarm_l-hand_l"] == pytest.approx(100 * 0.05 / 0.30, abs=0.05)
    assert any("unstable tracking" in w and "lowerarm_l-hand_l" in w for w in report["warnings"])


def test_unstable_bone_warning_lists_the_worst_four() -> None:
    """Five leaf bones whose length alternates between L and L + d: CV = d / (2 L + d), chosen 12..20 %."""
    n = 10
    x = _rest_positions(n)
    rest = DEFAULT_SKELETON.rest_offsets_m
    for name, cv in (("hand_l", 0.12), ("hand_r", 0.14), ("head", 0.16), ("ball_l", 0.18), ("ball_r", 0.20)):
        j = NAMES.index(name)
        length = np.linalg.norm(rest[j])
        d = 2 * length * cv / (1 - cv)
        x[::2, j] += d * rest[j] / length  # lengthen along the bone every other frame
    report = build_quality_report(_inputs(n, input_positions_m=x))
    assert report["boneLengthCvPercent"]["foot_r-ball_r"] == pytest.approx(20.0, abs=0.01)
    warning = next(w for w in report["warnings"] if "unstable" in w)
    assert warning.split(" for ")[1] == (
        "foot_r-ball_r 20 %, foot_l-ball_l 18 %, neck_01-head 16 %, lowerarm_r-hand_r 14 % and 1 more"
    )


def test_foot_contact_ratio_and_skate_speed() -> None:
    n = 30
    solved = _rest_positions(n)
    foot_l, ball_l = NAMES.index("foot_l"), NAMES.index("ball_l")
    solved[:, foot_l, 0] += 0.05 * np.arange(n)  # the left foot drifts 5 cm per frame = 150 cm/s
    solved[:, ball_l, 0] += 0.05 * np.arange(n)
    left_down = np.arange(n) < 10
    contacts = {
        "foot_l": left_down,
        "ball_l": np.zeros(n, dtype=bool),
        "foot_r": np.ones(n, dtype=bool),
        "ball_r": np.arange(n) % 2 == 0,  # never down two frames running: no step counted
    }
    report = build_quality_report(_inputs(n, solved_positions_m=solved, contacts=contacts))
    left, right = report["footContacts"]["left"], report["footContacts"]["right"]
    assert left["contactRatio"] == pytest.approx(10 / 30, abs=1e-4)
    assert left["skateSpeedCmS"] == pytest.approx(150.0, abs=1e-2)
    assert left["maxSkateSpeedCmS"] == pytest.approx(150.0, abs=1e-2)
    assert right["contactRatio"] == pytest.approx(1.0)
    assert right["skateSpeedCmS"] == pytest.approx(0.0, abs=1e-6)
    assert any(w.startswith("left foot slides") for w in report["warnings"])
    assert not any(w.startswith("right foot slides") for w in report["warnings"])


def test_no_contact_at_all_is_warned() -> None:
    n = 10
    contacts = {name: np.zeros(n, dtype=bool) for name in ("foot_l", "ball_l", "foot_r", "ball_r")}
    report = build_quality_report(_inputs(n, contacts=contacts))
    assert report["footContacts"]["left"] == {
        "contactRatio": 0.0,
        "skateSpeedCmS": None,
        "maxSkateSpeedCmS": None,
    }
    assert any("no foot contact" in w for w in report["warnings"])
    upper = build_quality_report(_inputs(n, contacts=contacts, mocap_type="upper_body"))
    assert upper["footContacts"] == report["footContacts"]
    assert upper["warnings"] == []  # the legs are not animated in an upper-body job


def _robot_inputs(**overrides: Any) -> RobotQualityInputs:
    n, dof = 10, 3
    fields: dict[str, Any] = {
        "fps": 30.0,
        "dof_pos_rad": np.zeros((n, dof)),
        "joint_names": ("a_joint", "b_joint", "c_joint"),
        "lower_rad": np.full(dof, -1.0),
        "upper_rad": np.full(dof, 1.0),
        "velocity_limit_rad_s": np.full(dof, 10.0),
        "contacts": np.ones((n, 2), dtype=bool),
        "sole_positions_m": np.tile(np.array([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]]), (n, 1, 1)),
        "valid": np.ones(n, dtype=bool),
        "tracking_error_m": {"hands": 0.021, "feet": 0.004},
    }
    fields.update(overrides)
    return RobotQualityInputs(**fields)


def test_robot_figures_from_angles_limits_and_soles() -> None:
    q = np.zeros((10, 3))
    q[4, 1] = 1.2  # 0.2 rad past the upper limit; steps of 1.2 rad at 30 fps = 36 rad/s (3.6 x the limit)
    q[:, 2] = 0.2 * np.arange(10) - 0.9  # 6 rad/s: within the limits
    soles = np.tile(np.array([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]]), (10, 1, 1))
    soles[6, 0, 2] = -0.008  # the left sole 8 mm under the ground
    soles[:, 1, 1] = 0.01 * np.arange(10)  # the right sole slides 1 cm per frame = 30 cm/s
    valid = np.ones(10, dtype=bool)
    valid[9] = False
    report = build_quality_report(
        _inputs(robot=_robot_inputs(dof_pos_rad=q, sole_positions_m=soles, valid=valid))
    )
    robot = report["robot"]
    assert robot["frames"] == 10
    assert robot["validRatio"] == pytest.approx(0.9)
    assert robot["limitViolations"] == 1
    assert robot["maxLimitViolationRad"] == pytest.approx(0.2, abs=1e-5)
    assert robot["jointsOutOfLimits"] == ["b_joint"]
    assert robot["speedViolations"] == 2
    assert robot["maxSpeedRatio"] == pytest.approx(3.6, abs=1e-3)
    assert robot["solePenetrationMm"] == pytest.approx(8.0, abs=1e-2)
    assert robot["footSkate"]["left"]["skateSpeedCmS"] == pytest.approx(0.0, abs=1e-6)
    assert robot["footSkate"]["right"]["skateSpeedCmS"] == pytest.approx(30.0, abs=1e-3)
    assert robot["trackingErrorMm"] == {"hands": pytest.approx(21.0), "feet": pytest.approx(4.0)}
    text = " | ".join(report["warnings"])
    for fragment in ("outside their limits in 1 samples: b_joint", "faster than their velocity limit in 2 steps",
                     "8.0 mm below the ground", "last good pose in 1 frames", "robot right foot slides"):  # fmt: skip
        assert fragment in text
    json.dumps(report, allow_nan=False)


def test_robot_within_limits_has_no_robot_warning() -> None:
    report = build_quality_report(_inputs(robot=_robot_inputs()))
    assert report["robot"]["limitViolations"] == 0 and report["robot"]["speedViolations"] == 0
    assert report["robot"]["solePenetrationMm"] == 0.0
    assert report["warnings"] == []


def _standing_robot_motion(n: int, pelvis_z_m: float) -> RobotMotion:
    desc = g1_description("g1_29dof_rev_1_0")
    root = np.tile([0.0, 0.0, pelvis_z_m], (n, 1))  # (n, 3)
    return RobotMotion(
        fps=30.0, root_pos_m=root, root_quat_xyzw=np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)),
        dof_pos_rad=np.zeros((n, desc.num_dof)), joint_names=desc.joint_names, variant=desc.variant,
        contacts=np.ones((n, 2), dtype=bool), valid=np.ones(n, dtype=bool),
        quality={"tracking_error_m": {"hands": 0.012}}, body_positions_m=np.zeros((n, 1, 3)), body_parents=(-1,),
    )  # fmt: skip


def test_robot_inputs_from_a_robot_motion_take_limits_soles_and_tracking_from_the_robot() -> None:
    desc = g1_description("g1_29dof_rev_1_0")
    # zero pose with the pelvis 2 cm lower than standing height: the soles sink about 2 cm into the ground
    rm = _standing_robot_motion(3, desc.pelvis_height_m - 0.02)
    inputs = RobotQualityInputs.from_robot_motion(rm)
    np.testing.assert_array_equal(inputs.lower_rad, desc.lower_rad)
    np.testing.assert_array_equal(inputs.velocity_limit_rad_s, desc.velocity_rad_s)
    report = build_quality_report(_inputs(robot=inputs))
    robot = report["robot"]
    assert robot["limitViolations"] == 0  # the zero pose is inside every G1 limit
    assert robot["solePenetrationMm"] == pytest.approx(20.0, abs=2.0)
    assert robot["footSkate"]["left"]["skateSpeedCmS"] == pytest.approx(0.0, abs=1e-6)
    assert robot["trackingErrorMm"] == {"hands": pytest.approx(12.0)}
    assert any("below the ground" in w for w in report["warnings"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"visibility": np.zeros((30, 17))}, "visibility"),
        ({"held_mask": np.zeros(29, dtype=bool)}, "held_mask"),
        ({"solved_positions_m": np.zeros((30, 5, 3))}, "solved_positions_m"),
        ({"motion_fps": 0.0}, "frame rates"),
    ],
)
def test_inconsistent_inputs_are_rejected(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_quality_report(_inputs(**override))


def test_frames_of_another_body_are_counted_timed_and_warned_about_first() -> None:
    n = 60
    person = np.ones(n, dtype=bool)
    person[40:50] = False  # the tracked person is rejected here while a body is still detected
    detected = np.ones(n, dtype=bool)
    times = 2.0 + np.arange(n) / FPS  # a trimmed window starting at 2 s
    report = build_quality_report(_inputs(n, person_mask=person, detected_mask=detected, frame_times_s=times))
    frames = report["frames"]
    assert (frames["detected"], frames["otherPerson"]) == (60, 10)
    assert frames["otherPersonRangesS"] == [[round(40 / FPS, 3), round(50 / FPS, 3)]]
    assert report["warnings"][0].startswith("the detector followed a different body in 10 of 60 frames")
    assert "detected" not in build_quality_report(_inputs(n))["frames"]  # only when detections are given
