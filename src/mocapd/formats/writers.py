"""The writers a target's files name in the catalogue (`mocapd.domain.targets.FileSpec.writer`).

A writer turns a target's `Take` (its motion, or its robot motion) into the file's bytes. Each one
imports its module when first called, so ``import mocapd.formats.writers`` stays light.

Adding a format: a `FileSpec` in the catalogue naming a writer id, and that writer here (or, for a
plug-in, `register_writer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mocapd.avatars.retarget import AvatarAnimation
    from mocapd.pipeline.skeleton import Motion
    from mocapd.robots.motion import RobotMotion

__all__ = ["WRITERS", "Take", "Writer", "register_writer", "writer_for"]


@dataclass(frozen=True)
class Take:
    """What a target's files are written from."""

    target_id: str
    motion: Motion  # the target's skeleton motion (for a robot: the human motion it follows)
    robot: RobotMotion | None = None  # a robot target's joint trajectory
    avatar: AvatarAnimation | None = None  # an avatar target's animated rig


Writer = Callable[[Take], bytes]


def _fbx(take: Take) -> bytes:
    from mocapd.formats.fbx import write_fbx

    return write_fbx(take.motion)


def _bvh(take: Take) -> bytes:
    from mocapd.formats.bvh import write_bvh

    return write_bvh(take.motion)


def _glb(take: Take) -> bytes:
    from mocapd.formats.gltf import write_glb

    return write_glb(take.motion)


def _robot(take: Take) -> RobotMotion:
    if take.robot is None:
        raise ValueError(f"target {take.target_id} has no robot motion to write")
    return take.robot


def _robot_json(take: Take) -> bytes:
    from mocapd.formats.robot import write_g1_json

    return write_g1_json(_robot(take))


def _robot_csv(take: Take) -> bytes:
    from mocapd.formats.robot import write_g1_csv

    return write_g1_csv(_robot(take))


def _avatar(take: Take) -> AvatarAnimation:
    if take.avatar is None:
        raise ValueError(f"target {take.target_id} has no avatar animation to write")
    return take.avatar


def _avatar_fbx(take: Take) -> bytes:
    from mocapd.formats.fbx.avatar import write_avatar_fbx

    return write_avatar_fbx(_avatar(take))


def _avatar_glb(take: Take) -> bytes:
    from mocapd.formats.avatar_gltf import write_avatar_glb

    return write_avatar_glb(_avatar(take))


WRITERS: dict[str, Writer] = {
    "fbx": _fbx,
    "bvh": _bvh,
    "glb": _glb,
    "robot_json": _robot_json,
    "robot_csv": _robot_csv,
    "avatar_fbx": _avatar_fbx,
    "avatar_glb": _avatar_glb,
}


def register_writer(writer_id: str, writer: Writer) -> None:
    """Add a writer (a plug-in's format); its id must be new."""
    if writer_id in WRITERS:
        raise ValueError(f"a writer {writer_id!r} is registered already")
    WRITERS[writer_id] = writer


def writer_for(writer_id: str) -> Writer:
    try:
        return WRITERS[writer_id]
    except KeyError:
        raise LookupError(f"the catalogue names writer {writer_id!r}, which no module registered") from None
