"""Robot targets by target id: how a target's robot motion is made from the human motion.

`robot_target(target_id)` is None for a target that is no robot. Adding a robot is its description
module, its retargeting and one entry here (plus its kind in `mocapd.domain.targets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mocapd.pipeline.contacts import FootContacts
    from mocapd.pipeline.skeleton import Motion
    from mocapd.robots.motion import RobotMotion

__all__ = ["ROBOTS", "RobotTarget", "robot_target"]

Retarget = Callable[["Motion", "FootContacts", str], "RobotMotion"]  # (motion, contacts, mocap type)


@dataclass(frozen=True)
class RobotTarget:
    target_id: str
    retarget: Retarget


def _retarget_g1(motion: Motion, contacts: FootContacts, mocap_type: str) -> RobotMotion:
    from mocapd.robots.retarget import retarget_to_g1  # MuJoCo and mink: only when a job asks for the robot

    return retarget_to_g1(motion, contacts, mocap_type=mocap_type)


ROBOTS: dict[str, RobotTarget] = {"unitree_g1": RobotTarget("unitree_g1", _retarget_g1)}


def robot_target(target_id: str) -> RobotTarget | None:
    return ROBOTS.get(target_id)
