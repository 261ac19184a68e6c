"""Robot targets by target id: each robot's description (`RobotDescription`) and how its motion is
made from the human motion.

`robot_target(target_id)` is None for a target that is no robot. Adding a robot is its description
module, its retargeting and one entry in `ROBOTS` (plus its kind in `mocapd.domain.targets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mocapd.pipeline.contacts import FootContacts
    from mocapd.pipeline.skeleton import Motion
    from mocapd.robots.description import RobotDescription
    from mocapd.robots.motion import RobotMotion

__all__ = ["ROBOTS", "RobotTarget", "robot_description", "robot_target"]

Retarget = Callable[["Motion", "FootContacts", str], "RobotMotion"]  # (motion, contacts, mocap type)


@dataclass(frozen=True)
class RobotTarget:
    target_id: str
    default_variant: str
    describe: Callable[[str], RobotDescription]  # variant -> description
    retarget: Retarget  # the default variant's motion


def _g1_description(variant: str) -> RobotDescription:
    from mocapd.robots.g1 import g1_description

    return g1_description(variant)


def _retarget_g1(motion: Motion, contacts: FootContacts, mocap_type: str) -> RobotMotion:
    from mocapd.robots.retarget import retarget_to_g1  # MuJoCo and mink: only when a job asks for the robot

    return retarget_to_g1(motion, contacts, mocap_type=mocap_type)


ROBOTS: dict[str, RobotTarget] = {
    "unitree_g1": RobotTarget("unitree_g1", "g1_29dof_rev_1_0", _g1_description, _retarget_g1),
}


def robot_target(target_id: str) -> RobotTarget | None:
    return ROBOTS.get(target_id)


def robot_description(target_id: str, variant: str | None = None) -> RobotDescription:
    """The description of robot ``target_id`` (its default variant unless ``variant``)."""
    robot = ROBOTS.get(target_id)
    if robot is None:
        raise LookupError(f"no robot target {target_id!r}; registered: {sorted(ROBOTS)}")
    return robot.describe(variant or robot.default_variant)
