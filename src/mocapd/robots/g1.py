"""mocapd's own description of the Unitree G1 humanoid (rev 1.0), 29-DOF and 23-DOF.

Written as Python data from Unitree's published figures (joint names in SDK order, parents, axes,
joint origins, position / velocity / effort limits, sole contact points). Nothing is read from the
vendor files at run time; the tests compare this description with them.

Conventions of the robot's own frame: X forward, Y left, Z up, metres, radians. A joint origin is
``origin_xyz_m`` plus ``origin_rpy_rad`` (URDF fixed-axis roll-pitch-yaw: R = Rz(yaw) Ry(pitch) Rx(roll))
in the parent link's frame; the joint turns its child link about ``axis`` (a unit vector of the child frame).

``build_mjcf(variant)`` turns the description into a mesh-free MJCF (capsule and box collision geoms
for self-collision checks, sole/toe/heel/hand sites) that MuJoCo and mink load directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # pragma: no cover
    import mujoco

__all__ = [
    "G1_23DOF_INVALID_SDK_SLOTS",
    "G1_29DOF_JOINT_NAMES",
    "PELVIS_HEIGHT_M",
    "VARIANTS",
    "G1Description",
    "G1Joint",
    "build_mjcf",
    "g1_description",
    "load_g1_model",
    "quat_wxyz_from_rpy",
]

FloatArray = NDArray[np.float64]

VARIANTS: tuple[str, ...] = ("g1_29dof_rev_1_0", "g1_23dof_rev_1_0")

#: Pelvis origin height above the ground with every joint at zero (the soles then touch z ~ 0.001).
PELVIS_HEIGHT_M = 0.793

#: Motor slots of the 29-slot SDK vector that do not exist on the 23-DOF robot
#: (waist roll/pitch, wrist pitch/yaw on both sides).
G1_23DOF_INVALID_SDK_SLOTS: tuple[int, ...] = (13, 14, 20, 21, 27, 28)


@dataclass(frozen=True)
class G1Joint:
    """One revolute joint: its SDK index is its position in ``G1Description.joints``."""

    name: str
    parent: str  # parent link
    child: str  # child link
    axis: tuple[float, float, float]  # unit vector in the child frame
    lower_rad: float
    upper_rad: float
    velocity_rad_s: float
    effort_nm: float
    origin_xyz_m: tuple[float, float, float]  # child frame origin in the parent frame
    origin_rpy_rad: tuple[float, float, float]  # child frame orientation, URDF roll-pitch-yaw


_X = (1.0, 0.0, 0.0)
_Y = (0.0, 1.0, 0.0)
_Z = (0.0, 0.0, 1.0)
_NO_RPY = (0.0, 0.0, 0.0)

# Unitree G1 29-DOF rev 1.0, in Unitree SDK (G1JointIndex) order = URDF order = MuJoCo qpos[7:] order.
_G1_29DOF: tuple[G1Joint, ...] = (
    # left leg
    G1Joint("left_hip_pitch_joint", "pelvis", "left_hip_pitch_link", _Y, -2.5307, 2.8798, 32, 88, (0.0, 0.064452, -0.1027), _NO_RPY),
    G1Joint("left_hip_roll_joint", "left_hip_pitch_link", "left_hip_roll_link", _X, -0.5236, 2.9671, 20, 139, (0.0, 0.052, -0.030465), (0.0, -0.1749, 0.0)),
    G1Joint("left_hip_yaw_joint", "left_hip_roll_link", "left_hip_yaw_link", _Z, -2.7576, 2.7576, 32, 88, (0.025001, 0.0, -0.12412), _NO_RPY),
    G1Joint("left_knee_joint", "left_hip_yaw_link", "left_knee_link", _Y, -0.087267, 2.8798, 20, 139, (-0.078273, 0.0021489, -0.17734), (0.0, 0.1749, 0.0)),
    G1Joint("left_ankle_pitch_joint", "left_knee_link", "left_ankle_pitch_link", _Y, -0.87267, 0.5236, 37, 50, (0.0, -9.4445e-05, -0.30001), _NO_RPY),
    G1Joint("left_ankle_roll_joint", "left_ankle_pitch_link", "left_ankle_roll_link", _X, -0.2618, 0.2618, 37, 50, (0.0, 0.0, -0.017558), _NO_RPY),
    # right leg
    G1Joint("right_hip_pitch_joint", "pelvis", "right_hip_pitch_link", _Y, -2.5307, 2.8798, 32, 88, (0.0, -0.064452, -0.1027), _NO_RPY),
    G1Joint("right_hip_roll_joint", "right_hip_pitch_link", "right_hip_roll_link", _X, -2.9671, 0.5236, 20, 139, (0.0, -0.052, -0.030465), (0.0, -0.1749, 0.0)),
    G1Joint("right_hip_yaw_joint", "right_hip_roll_link", "right_hip_yaw_link", _Z, -2.7576, 2.7576, 32, 88, (0.025001, 0.0, -0.12412), _NO_RPY),
    G1Joint("right_knee_joint", "right_hip_yaw_link", "right_knee_link", _Y, -0.087267, 2.8798, 20, 139, (-0.078273, -0.0021489, -0.17734), (0.0, 0.1749, 0.0)),
    G1Joint("right_ankle_pitch_joint", "right_knee_link", "right_ankle_pitch_link", _Y, -0.87267, 0.5236, 37, 50, (0.0, 9.4445e-05, -0.30001), _NO_RPY),
    G1Joint("right_ankle_roll_joint", "right_ankle_pitch_link", "right_ankle_roll_link", _X, -0.2618, 0.2618, 37, 50, (0.0, 0.0, -0.017558), _NO_RPY),
    # waist
    G1Joint("waist_yaw_joint", "pelvis", "waist_yaw_link", _Z, -2.618, 2.618, 32, 88, (0.0, 0.0, 0.0), _NO_RPY),
    G1Joint("waist_roll_joint", "waist_yaw_link", "waist_roll_link", _X, -0.52, 0.52, 37, 50, (-0.0039635, 0.0, 0.044), _NO_RPY),
    G1Joint("waist_pitch_joint", "waist_roll_link", "torso_link", _Y, -0.52, 0.52, 37, 50, (0.0, 0.0, 0.0), _NO_RPY),
    # left arm
    G1Joint("left_shoulder_pitch_joint", "torso_link", "left_shoulder_pitch_link", _Y, -3.0892, 2.6704, 37, 25, (0.0039563, 0.10022, 0.24778), (0.27931, 5.4949e-05, -0.00019159)),
    G1Joint("left_shoulder_roll_joint", "left_shoulder_pitch_link", "left_shoulder_roll_link", _X, -1.5882, 2.2515, 37, 25, (0.0, 0.038, -0.013831), (-0.27925, 0.0, 0.0)),
    G1Joint("left_shoulder_yaw_joint", "left_shoulder_roll_link", "left_shoulder_yaw_link", _Z, -2.618, 2.618, 37, 25, (0.0, 0.00624, -0.1032), _NO_RPY),
    G1Joint("left_elbow_joint", "left_shoulder_yaw_link", "left_elbow_link", _Y, -1.0472, 2.0944, 37, 25, (0.015783, 0.0, -0.080518), _NO_RPY),
    G1Joint("left_wrist_roll_joint", "left_elbow_link", "left_wrist_roll_link", _X, -1.972222054, 1.972222054, 37, 25, (0.1, 0.00188791, -0.01), _NO_RPY),
    G1Joint("left_wrist_pitch_joint", "left_wrist_roll_link", "left_wrist_pitch_link", _Y, -1.614429558, 1.614429558, 22, 5, (0.038, 0.0, 0.0), _NO_RPY),
    G1Joint("left_wrist_yaw_joint", "left_wrist_pitch_link", "left_wrist_yaw_link", _Z, -1.614429558, 1.614429558, 22, 5, (0.046, 0.0, 0.0), _NO_RPY),
    # right arm
    G1Joint("right_shoulder_pitch_joint", "torso_link", "right_shoulder_pitch_link", _Y, -3.0892, 2.6704, 37, 25, (0.0039563, -0.10021, 0.24778), (-0.27931, 5.4949e-05, 0.00019159)),
    G1Joint("right_shoulder_roll_joint", "right_shoulder_pitch_link", "right_shoulder_roll_link", _X, -2.2515, 1.5882, 37, 25, (0.0, -0.038, -0.013831), (0.27925, 0.0, 0.0)),
    G1Joint("right_shoulder_yaw_joint", "right_shoulder_roll_link", "right_shoulder_yaw_link", _Z, -2.618, 2.618, 37, 25, (0.0, -0.00624, -0.1032), _NO_RPY),
    G1Joint("right_elbow_joint", "right_shoulder_yaw_link", "right_elbow_link", _Y, -1.0472, 2.0944, 37, 25, (0.015783, 0.0, -0.080518), _NO_RPY),
    G1Joint("right_wrist_roll_joint", "right_elbow_link", "right_wrist_roll_link", _X, -1.972222054, 1.972222054, 37, 25, (0.1, -0.00188791, -0.01), _NO_RPY),
    G1Joint("right_wrist_pitch_joint", "right_wrist_roll_link", "right_wrist_pitch_link", _Y, -1.614429558, 1.614429558, 22, 5, (0.038, 0.0, 0.0), _NO_RPY),
    G1Joint("right_wrist_yaw_joint", "right_wrist_pitch_link", "right_wrist_yaw_link", _Z, -1.614429558, 1.614429558, 22, 5, (0.046, 0.0, 0.0), _NO_RPY),
)  # fmt: skip

G1_29DOF_JOINT_NAMES: tuple[str, ...] = tuple(j.name for j in _G1_29DOF)


def _g1_23dof() -> tuple[G1Joint, ...]:
    """The 23-DOF rev 1.0 robot: no waist roll/pitch (the torso hangs on the waist yaw joint at the
    waist roll joint's origin) and no wrist pitch/yaw (the wrist roll link is the rubber hand)."""
    dropped = {G1_29DOF_JOINT_NAMES[i] for i in G1_23DOF_INVALID_SDK_SLOTS}
    waist_roll = next(j for j in _G1_29DOF if j.name == "waist_roll_joint")
    joints: list[G1Joint] = []
    for j in _G1_29DOF:
        if j.name in dropped:
            continue
        if j.name == "waist_yaw_joint":
            j = G1Joint(j.name, "pelvis", "torso_link", j.axis, j.lower_rad, j.upper_rad, j.velocity_rad_s,
                        j.effort_nm, waist_roll.origin_xyz_m, _NO_RPY)  # fmt: skip
        elif j.name.endswith("wrist_roll_joint"):
            side = j.name.split("_")[0]
            j = G1Joint(j.name, j.parent, f"{side}_wrist_roll_rubber_hand", j.axis, j.lower_rad, j.upper_rad,
                        j.velocity_rad_s, j.effort_nm, j.origin_xyz_m, j.origin_rpy_rad)  # fmt: skip
        joints.append(j)
    return tuple(joints)


@dataclass(frozen=True)
class Capsule:
    """A collision capsule (or a box when ``box_half_m`` is set) attached to a link, link frame."""

    link: str
    from_m: tuple[float, float, float]
    to_m: tuple[float, float, float]
    radius_m: float
    box_half_m: tuple[float, float, float] | None = None


def _side_geoms(side: str, sign: float, variant_29: bool) -> list[Capsule]:
    s = sign
    hand_link = f"{side}_wrist_yaw_link" if variant_29 else f"{side}_wrist_roll_rubber_hand"
    hand_from = (0.0, 0.0, 0.0)
    hand_to = (0.07, s * 0.003, 0.0) if variant_29 else (0.15, s * 0.003, 0.0)
    return [
        Capsule(f"{side}_hip_roll_link", (0.01, 0.0, -0.02), (0.025, 0.0, -0.11), 0.045),
        Capsule(f"{side}_hip_yaw_link", (0.0, 0.0, -0.02), (-0.07, s * 0.002, -0.16), 0.05),
        Capsule(f"{side}_knee_link", (0.0, 0.0, -0.05), (0.0, 0.0, -0.25), 0.04),
        Capsule(
            f"{side}_ankle_roll_link", (0.035, 0.0, -0.02), (0.035, 0.0, -0.02), 0.0, (0.08, 0.03, 0.012)
        ),
        Capsule(f"{side}_shoulder_yaw_link", (0.0, 0.0, 0.0), (0.012, 0.0, -0.07), 0.035),
        Capsule(f"{side}_elbow_link", (0.02, 0.0, 0.0), (0.09, s * 0.002, -0.008), 0.03),
        Capsule(hand_link, hand_from, hand_to, 0.03),
    ]


@dataclass(frozen=True)
class G1Description:
    """The joints (SDK order), collision geometry and contact points of one G1 variant."""

    variant: str
    joints: tuple[G1Joint, ...]
    pelvis_height_m: float = PELVIS_HEIGHT_M
    robot_type: str = "unitree_g1"

    def model(self) -> mujoco.MjModel:
        """The compiled MuJoCo model of this variant (`load_g1_model`, cached)."""
        return load_g1_model(self.variant)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def num_dof(self) -> int:
        return len(self.joints)

    @property
    def lower_rad(self) -> FloatArray:
        return np.array([j.lower_rad for j in self.joints])  # (N,)

    @property
    def upper_rad(self) -> FloatArray:
        return np.array([j.upper_rad for j in self.joints])  # (N,)

    @property
    def velocity_rad_s(self) -> FloatArray:
        return np.array([j.velocity_rad_s for j in self.joints])  # (N,)

    @property
    def effort_nm(self) -> FloatArray:
        return np.array([j.effort_nm for j in self.joints])  # (N,)

    @property
    def links(self) -> tuple[str, ...]:
        """Every link, parents first: the pelvis, then each joint's child."""
        return ("pelvis",) + tuple(j.child for j in self.joints)

    @property
    def link_parents(self) -> tuple[int, ...]:
        links = self.links
        return (-1,) + tuple(links.index(j.parent) for j in self.joints)

    @property
    def hand_links(self) -> tuple[str, str]:
        if self.variant == "g1_29dof_rev_1_0":
            return ("left_wrist_yaw_link", "right_wrist_yaw_link")
        return ("left_wrist_roll_rubber_hand", "right_wrist_roll_rubber_hand")

    def hand_site_m(self, side: str) -> tuple[float, float, float]:
        """Hand centre in the hand link frame (the rubber hand's palm point)."""
        s = 1.0 if side == "left" else -1.0
        if self.variant == "g1_29dof_rev_1_0":
            return (0.0415, s * 0.003, 0.0)
        return (0.1255, s * 0.003, 0.0)  # = wrist roll -> pitch -> yaw -> palm of the 29-DOF arm

    @property
    def sole_sites_m(self) -> dict[str, tuple[float, float, float]]:
        """Sole contact sites in the ankle-roll link frame: centre, toe and heel at the sole plane."""
        return {"sole": (0.035, 0.0, -0.035), "toe": (0.12, 0.0, -0.035), "heel": (-0.05, 0.0, -0.035)}

    @property
    def sole_corners_m(self) -> FloatArray:
        """The four sole contact points (bottom of the 5 mm contact spheres), ankle-roll link frame, (4, 3)."""
        return np.array(
            [[-0.05, 0.025, -0.035], [-0.05, -0.025, -0.035], [0.12, 0.03, -0.035], [0.12, -0.03, -0.035]]
        )

    def collision_geoms(self) -> list[Capsule]:
        is29 = self.variant == "g1_29dof_rev_1_0"
        torso = "torso_link"
        geoms = [
            Capsule("pelvis", (0.0, 0.06, -0.05), (0.0, -0.06, -0.05), 0.06),
            Capsule(torso, (0.0, 0.0, 0.08), (0.0, 0.0, 0.30), 0.085),
        ]
        geoms += _side_geoms("left", 1.0, is29) + _side_geoms("right", -1.0, is29)
        return geoms


@cache
def g1_description(variant: str = "g1_29dof_rev_1_0") -> G1Description:
    """The description of a G1 variant (``g1_29dof_rev_1_0`` or ``g1_23dof_rev_1_0``)."""
    if variant == "g1_29dof_rev_1_0":
        return G1Description(variant, _G1_29DOF)
    if variant == "g1_23dof_rev_1_0":
        return G1Description(variant, _g1_23dof())
    raise ValueError(f"unknown G1 variant {variant!r}; known: {', '.join(VARIANTS)}")


def quat_wxyz_from_rpy(
    roll_rad: float, pitch_rad: float, yaw_rad: float
) -> tuple[float, float, float, float]:
    """URDF rpy -> wxyz quaternion of R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr = math.cos(roll_rad / 2), math.sin(roll_rad / 2)
    cp, sp = math.cos(pitch_rad / 2), math.sin(pitch_rad / 2)
    cy, sy = math.cos(yaw_rad / 2), math.sin(yaw_rad / 2)
    return (
        cr * cp * cy + sr * sp * sy,
        sr * cp * cy - cr * sp * sy,
        cr * sp * cy + sr * cp * sy,
        cr * cp * sy - sr * sp * cy,
    )


def _fmt(values: tuple[float, ...] | list[float]) -> str:
    return " ".join(f"{v:.9g}" for v in values)


def _geom_xml(g: Capsule, name: str, group: str) -> str:
    if g.box_half_m is not None:
        return f'<geom name="{name}" class="{group}" type="box" pos="{_fmt(g.from_m)}" size="{_fmt(g.box_half_m)}"/>'
    return f'<geom name="{name}" class="{group}" type="capsule" fromto="{_fmt(g.from_m + g.to_m)}" size="{g.radius_m:.9g}"/>'


def build_mjcf(variant: str = "g1_29dof_rev_1_0") -> str:
    """A mesh-free MJCF of the variant, with a free-floating pelvis at ``PELVIS_HEIGHT_M``.

    Collision geoms are capsules (one box per foot) in two classes, ``leg`` and ``upper``; sites
    ``{side}_sole``, ``{side}_toe``, ``{side}_heel`` (ankle-roll link, sole plane) and ``{side}_hand``
    (palm centre) are the IK and contact points. Masses are nominal (the model is for kinematics and
    collision checks, not dynamics).
    """
    desc = g1_description(variant)
    children: dict[str, list[G1Joint]] = {}
    for j in desc.joints:
        children.setdefault(j.parent, []).append(j)
    geoms_by_link: dict[str, list[Capsule]] = {}
    for g in desc.collision_geoms():
        geoms_by_link.setdefault(g.link, []).append(g)

    def link_extras(link: str, indent: str) -> list[str]:
        out = []
        for k, g in enumerate(geoms_by_link.get(link, [])):
            group = "leg" if any(p in link for p in ("hip", "knee", "ankle")) else "upper"
            out.append(indent + _geom_xml(g, f"{link}_geom{k}", group))
        for side in ("left", "right"):
            if link == f"{side}_ankle_roll_link":
                for k, c in enumerate(desc.sole_corners_m):
                    out.append(
                        indent
                        + f'<geom name="{side}_sole_point{k}" class="sole" pos="{_fmt(list(c + [0, 0, 0.005]))}"/>'
                    )
                for site, pos in desc.sole_sites_m.items():
                    out.append(indent + f'<site name="{side}_{site}" pos="{_fmt(pos)}" size="0.01"/>')
            if link == desc.hand_links[0 if side == "left" else 1]:
                out.append(
                    indent + f'<site name="{side}_hand" pos="{_fmt(desc.hand_site_m(side))}" size="0.01"/>'
                )
        return out

    def body_xml(j: G1Joint, depth: int) -> list[str]:
        ind = "  " * depth
        quat = quat_wxyz_from_rpy(*j.origin_rpy_rad)
        lo, hi = j.lower_rad, j.upper_rad
        lines = [
            f'{ind}<body name="{j.child}" pos="{_fmt(j.origin_xyz_m)}" quat="{_fmt(quat)}">',
            f'{ind}  <joint name="{j.name}" axis="{_fmt(j.axis)}" range="{lo:.9g} {hi:.9g}" '
            f'actuatorfrcrange="{-j.effort_nm:.9g} {j.effort_nm:.9g}"/>',
        ]
        lines += link_extras(j.child, ind + "  ")
        for c in children.get(j.child, []):
            lines += body_xml(c, depth + 1)
        lines.append(f"{ind}</body>")
        return lines

    body = [f'    <body name="pelvis" pos="0 0 {desc.pelvis_height_m:.9g}">',
            '      <freejoint name="floating_base_joint"/>']  # fmt: skip
    body += link_extras("pelvis", "      ")
    for c in children.get("pelvis", []):
        body += body_xml(c, 3)
    body.append("    </body>")
    actuators = [f'    <motor name="{j.name}" joint="{j.name}"/>' for j in desc.joints]
    # links that touch by construction (the hip motors sit in the pelvis, the torso on the waist)
    adjacent = [
        ("pelvis", f"{side}_hip_{part}_link") for side in ("left", "right") for part in ("roll", "yaw")
    ]
    adjacent += [("pelvis", "torso_link")]
    excludes = [f'    <exclude body1="{a}" body2="{b}"/>' for a, b in adjacent]
    return "\n".join(
        [
            f'<mujoco model="mocapd_{variant}">',
            '  <compiler angle="radian" boundmass="0.01" boundinertia="1e-5"/>',
            "  <default>",
            '    <joint limited="true"/>',
            '    <default class="leg"><geom contype="1" conaffinity="1" group="3" density="1000"/></default>',
            '    <default class="upper"><geom contype="1" conaffinity="1" group="3" density="1000"/></default>',
            '    <default class="sole"><geom type="sphere" size="0.005" contype="2" conaffinity="2" group="3"/></default>',
            "  </default>",
            "  <worldbody>",
            *body,
            "  </worldbody>",
            "  <contact>",
            *excludes,
            "  </contact>",
            "  <actuator>",
            *actuators,
            "  </actuator>",
            "</mujoco>",
            "",
        ]
    )


@lru_cache(maxsize=4)
def load_g1_model(variant: str = "g1_29dof_rev_1_0") -> mujoco.MjModel:
    """Compile ``build_mjcf(variant)`` with MuJoCo (cached per variant; treat the model as read-only)."""
    import mujoco

    return mujoco.MjModel.from_xml_string(build_mjcf(variant))
