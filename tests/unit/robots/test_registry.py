"""Robots by target id: the G1 implements the robot description interface, and every robot target
in the catalogue has a registered robot."""

from __future__ import annotations

import pytest

from mocapd.domain.targets import TARGET_KINDS
from mocapd.robots.description import RobotDescription
from mocapd.robots.g1 import g1_description
from mocapd.robots.registry import ROBOTS, robot_description, robot_target


def _members(protocol: type) -> set[str]:
    return {n for n in vars(protocol) if not n.startswith("_")}


def test_the_g1_is_found_by_target_id_and_implements_the_description() -> None:
    desc = robot_description("unitree_g1")
    assert desc is g1_description("g1_29dof_rev_1_0") and desc.robot_type == "unitree_g1"
    assert robot_description("unitree_g1", "g1_23dof_rev_1_0").num_dof == 23
    assert all(hasattr(desc, name) for name in _members(RobotDescription)), _members(RobotDescription)
    assert desc.model().nq == 7 + desc.num_dof  # free joint + the joints, in the description's order
    assert len(desc.links) == len(desc.link_parents) == desc.num_dof + 1


def test_robots_and_catalogue_agree() -> None:
    robot_kinds = {k.id for k in TARGET_KINDS.values() if k.result_type == "robot_motion_json"}
    assert robot_kinds == set(ROBOTS)
    assert robot_target("default") is None
    with pytest.raises(LookupError, match="no robot target 'default'"):
        robot_description("default")
