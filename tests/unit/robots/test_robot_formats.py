"""g1_motion.json and g1_motion.csv: fields, layout, round trip, byte stability."""

from __future__ import annotations

import io
import json
from functools import lru_cache

import numpy as np

from mocapd.formats.robot import write_g1_csv, write_g1_json
from mocapd.robots.g1 import G1_23DOF_INVALID_SDK_SLOTS, G1_29DOF_JOINT_NAMES, g1_description
from mocapd.robots.motion import RobotMotion
from mocapd.robots.retarget import retarget_to_g1
from tests.unit.robots.synthetic_walk import synthetic_walk


@lru_cache(maxsize=2)
def _motion(variant: str = "g1_29dof_rev_1_0") -> RobotMotion:
    motion, _ = synthetic_walk(duration_s=1.0)
    return retarget_to_g1(motion, None, variant=variant)


def test_json_has_the_aimocap_fields_and_self_description() -> None:
    rm = _motion()
    doc = json.loads(write_g1_json(rm))
    assert doc["version"] == 1
    assert doc["robotType"] == "unitree_g1"
    assert doc["fps"] == rm.fps
    assert doc["frameCount"] == rm.num_frames
    assert np.asarray(doc["root_pos"]).shape == (rm.num_frames, 3)
    assert np.asarray(doc["root_rot_xyzw"]).shape == (rm.num_frames, 4)
    assert np.asarray(doc["dof_pos"]).shape == (rm.num_frames, 29)
    assert doc["jointNames"] == list(G1_29DOF_JOINT_NAMES)
    assert doc["variant"] == "g1_29dof_rev_1_0"
    assert doc["units"]["length"] == "m" and doc["units"]["angle"] == "rad"
    assert doc["coordinateFrame"]["up"] == "+Z"
    assert len(doc["contacts"]["left_foot"]) == rm.num_frames
    assert doc["valid"] == [True] * rm.num_frames
    desc = g1_description()
    np.testing.assert_allclose(doc["limits"]["lower"], desc.lower_rad)
    np.testing.assert_allclose(doc["limits"]["velocity"], desc.velocity_rad_s)
    assert doc["quality"]["limit_violation_frames"] == 0
    np.testing.assert_allclose(doc["dof_pos"], rm.dof_pos_rad, atol=1e-6)
    np.testing.assert_allclose(doc["root_rot_xyzw"], rm.root_quat_xyzw, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(doc["root_rot_xyzw"], axis=1), 1.0, atol=1e-5)


def test_csv_is_the_unitree_dataset_layout() -> None:
    rm = _motion()
    raw = write_g1_csv(rm)
    first = raw.decode("ascii").splitlines()[0]
    assert not any(c.isalpha() for c in first)  # no header
    table = np.loadtxt(io.BytesIO(raw), delimiter=",")
    assert table.shape == (rm.num_frames, 36)
    np.testing.assert_allclose(table[:, :3], rm.root_pos_m, atol=1e-6)
    np.testing.assert_allclose(table[:, 3:7], rm.root_quat_xyzw, atol=1e-6)
    np.testing.assert_allclose(table[:, 7:], rm.dof_pos_rad, atol=1e-6)


def test_csv_of_the_23dof_robot_fills_the_29_slots() -> None:
    rm = _motion("g1_23dof_rev_1_0")
    table = np.loadtxt(io.BytesIO(write_g1_csv(rm)), delimiter=",")
    assert table.shape == (rm.num_frames, 36)
    np.testing.assert_array_equal(table[:, 7 + np.array(G1_23DOF_INVALID_SDK_SLOTS)], 0.0)
    doc = json.loads(write_g1_json(rm))
    assert len(doc["jointNames"]) == 23 and np.asarray(doc["dof_pos"]).shape[1] == 23


def test_writers_are_byte_stable() -> None:
    rm = _motion()
    assert write_g1_json(rm) == write_g1_json(rm)
    assert write_g1_csv(rm) == write_g1_csv(rm)
