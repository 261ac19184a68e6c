"""Human motion -> G1 IK targets: per-body-group scaling onto the robot's proportions.

Lower body (affine about the ankle plane): a human point p maps to
    x' = s_leg x,  y' = s_leg y,  z' = z_ankle_robot + s_leg (z - z_ankle_human),
with s_leg = (robot hip height - robot ankle height) / (human hip height - human ankle height) at rest,
so a standing human lands on a standing robot and stride length scales with leg length.
Limbs are then chained segment by segment from the robot's own anchor points, each human segment
vector scaled by (robot segment length / human segment length):
    knee' = hip'_side + s_thigh (knee - hip),  ankle' = knee' + s_shin (ankle - knee),
    elbow' = shoulder'_side + s_upper (elbow - shoulder),  hand' = elbow' + s_fore (wrist - elbow),
where hip'_side and shoulder'_side are the robot's hip / shoulder points carried by the target
pelvis / torso frames. Orientation targets are R_target(b) = R_human(j) C_b, with C_b the world
orientation of robot link b in the pose matching the human rest (T-)pose, the robot facing -Y.

All targets are world targets and the IK tracks them in the world: an arm reaches for its elbow / hand
target from wherever the robot's torso actually is. The pelvis and torso often stop a few cm and
degrees short of their own targets (human leg proportions the G1 cannot copy, the waist's tight
roll/pitch limits); tracking the arms relative to the robot's torso would carry that error 1:1 into
the hands.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from mocapd.pipeline.skeleton import Motion
from mocapd.robots.description import RobotDescription

__all__ = [
    "FACING_QUAT_WXYZ",
    "FrameTargets",
    "ScaleFactors",
    "human_foot_clearance_m",
    "human_ground_m",
    "robot_rest_frames",
    "scaled_targets",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Robot root orientation that makes the G1 (X forward) face the mocapd world's -Y: Rz(-90 deg).
FACING_QUAT_WXYZ = np.array([np.cos(-np.pi / 4), 0.0, 0.0, np.sin(-np.pi / 4)])

_SIDES = (("left", "l"), ("right", "r"))
MAX_ROLL_RAD = 0.7  # a contact foot's target rolls on its toe or heel by at most this


def _rot(q_wxyz: FloatArray) -> Rotation:
    q = np.asarray(q_wxyz, dtype=np.float64)
    return Rotation.from_quat(q[..., [1, 2, 3, 0]])


def _wxyz(r: Rotation) -> FloatArray:
    q = r.as_quat()
    return np.asarray(q[..., [3, 0, 1, 2]])


@dataclass(frozen=True)
class ScaleFactors:
    """Human -> robot scale per body group (robot length / human length)."""

    leg: float
    thigh: float
    shin: float
    upper_arm: float
    forearm: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class FrameTargets:
    """World targets for one robot frame over the clip, with per-frame task costs."""

    frame: str
    frame_type: str  # "body" | "site"
    pos_m: FloatArray  # (F, 3)
    quat_wxyz: FloatArray  # (F, 4)
    position_cost: FloatArray  # (F,)
    orientation_cost: FloatArray  # (F,)
    human_joint: str  # the human joint this frame follows (for tracking figures)
    part: str  # "pelvis" | "torso" | "hips" | "knees" | "feet" | "shoulders" | "elbows" | "hands"


@dataclass(frozen=True)
class RobotRest:
    """Robot link frames in the pelvis frame: zero pose and the T-pose (arms out, elbows straight)."""

    pos_m: dict[str, FloatArray]  # name -> (3,), zero pose
    quat_wxyz: dict[str, FloatArray]  # name -> (4,), zero pose
    tpose_quat_wxyz: dict[str, FloatArray]  # name -> (4,), T-pose


def robot_rest_frames(desc: RobotDescription) -> RobotRest:
    """Link and site frames of the G1 relative to its pelvis, at zero and in a T-pose."""
    model = desc.model()
    data = mujoco.MjData(model)
    names = list(desc.links)

    def snapshot(q: FloatArray) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
        data.qpos[:] = 0.0
        data.qpos[3] = 1.0
        data.qpos[7:] = q
        mujoco.mj_kinematics(model, data)
        pos, quat = {}, {}
        for n in names:
            i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
            pos[n] = data.xpos[i].copy()
            quat[n] = data.xquat[i].copy()
        for s in range(model.nsite):
            n = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, s)
            pos[n] = data.site_xpos[s].copy()
        return pos, quat

    pos, quat = snapshot(np.zeros(desc.num_dof))
    q_t = np.zeros(desc.num_dof)
    jn = desc.joint_names
    q_t[jn.index("left_shoulder_roll_joint")] = np.pi / 2
    q_t[jn.index("right_shoulder_roll_joint")] = -np.pi / 2
    q_t[jn.index("left_elbow_joint")] = np.pi / 2
    q_t[jn.index("right_elbow_joint")] = np.pi / 2
    _, tquat = snapshot(q_t)
    return RobotRest(pos, quat, tquat)


def _seg_len(rest_offsets_m: FloatArray, names: tuple[str, ...], child: str) -> float:
    return float(np.linalg.norm(rest_offsets_m[names.index(child)]))


def scale_factors(motion: Motion, desc: RobotDescription) -> ScaleFactors:
    """Per-group factors from the human skeleton's rest lengths and the robot's zero pose."""
    rest = robot_rest_frames(desc)
    sk = motion.skeleton
    names = sk.names
    hp = sk.rest_positions_m()  # (J, 3)
    h_hip = 0.5 * (hp[names.index("thigh_l"), 2] + hp[names.index("thigh_r"), 2])
    h_ankle = 0.5 * (hp[names.index("foot_l"), 2] + hp[names.index("foot_r"), 2])
    r_hip = rest.pos_m["left_hip_pitch_link"][2]
    r_knee = rest.pos_m["left_knee_link"][2]
    r_ankle = rest.pos_m["left_ankle_roll_link"][2]
    off = sk.rest_offsets_m
    r_upper = np.linalg.norm(rest.pos_m["left_elbow_link"] - rest.pos_m["left_shoulder_roll_link"])
    r_fore = np.linalg.norm(rest.pos_m["left_hand"] - rest.pos_m["left_elbow_link"])
    return ScaleFactors(
        leg=float((r_hip - r_ankle) / (h_hip - h_ankle)),
        thigh=float((r_hip - r_knee) / _seg_len(off, names, "calf_l")),
        shin=float((r_knee - r_ankle) / _seg_len(off, names, "foot_l")),
        upper_arm=float(r_upper / _seg_len(off, names, "lowerarm_l")),
        forearm=float(r_fore / _seg_len(off, names, "hand_l")),
    )


def human_foot_clearance_m(motion: Motion) -> FloatArray:
    """Per frame (F,), the height of the human's lowest foot point above its rest height and the ground:
    min_k (z_k(f) - z_k,rest) - g, k in {foot_l, foot_r, ball_l, ball_r}, g = `human_ground_m`."""
    names = motion.skeleton.names
    pos_h = motion.world_positions_m()  # (F, J, 3)
    rest = motion.skeleton.rest_positions_m()  # (J, 3)
    k = [names.index(n) for n in ("foot_l", "foot_r", "ball_l", "ball_r")]
    return np.asarray(np.nanmin(pos_h[:, k, 2] - rest[k, 2], axis=1) - human_ground_m(motion, pos_h))


def human_ground_m(motion: Motion, pos_h: FloatArray | None = None) -> float:
    """Height of the ground under the human: the 5th percentile over frames of the lowest foot point's
    height above its rest height, g = P5_f min_k (z_k(f) - z_k,rest), k in {foot_l, foot_r, ball_l, ball_r}
    (0 for a motion already standing on z = 0)."""
    names = motion.skeleton.names
    if pos_h is None:
        pos_h = motion.world_positions_m()  # (F, J, 3)
    rest = motion.skeleton.rest_positions_m()  # (J, 3)
    k = [names.index(n) for n in ("foot_l", "foot_r", "ball_l", "ball_r")]
    above = pos_h[:, k, 2] - rest[k, 2]  # (F, 4)
    lowest = np.nanmin(above, axis=1)  # (F,)
    lowest = lowest[np.isfinite(lowest)]
    return float(np.percentile(lowest, 5)) if lowest.size else 0.0


def _roll_on_toe_or_heel(
    desc: RobotDescription,
    ankle: FloatArray,
    foot_q: FloatArray,
    frames: range,
    yaw_rad: float,
    pivot: NDArray[np.int8],
    pitch_rad: FloatArray,
) -> None:
    """In ``frames`` of one contact span where ``pivot`` is 1 (-1) and the human's heel (toes) is
    raised, turn the flat foot target (``ankle`` (F, 3), ``foot_q`` (F, 4), in place) by ``pitch_rad``
    about its toe (heel) site: R = Rz(yaw) Ry(pitch), ankle = s_flat - R s, s the site in the foot frame
    and s_flat its world position on the flat foot."""
    flat = Rotation.from_euler("Z", yaw_rad)
    for g in frames:
        mode = int(pivot[g])
        if mode == 0 or not mode * pitch_rad[g] > 0:  # flat, the other way, or unknown: stays flat
            continue
        site = np.array(desc.sole_sites_m["toe" if mode > 0 else "heel"])
        r = Rotation.from_euler("ZY", [yaw_rad, pitch_rad[g]])
        ankle[g] = ankle[g] + flat.apply(site) - r.apply(site)
        foot_q[g] = _wxyz(r)


def scaled_targets(
    motion: Motion,
    desc: RobotDescription,
    contacts: BoolArray,
    *,
    upper_body: bool = False,
    pivots: NDArray[np.int8] | None = None,
) -> tuple[list[FrameTargets], ScaleFactors]:
    """IK targets for every tracked robot frame, and the scale factors used.

    ``contacts`` (F, 2) are the human's left/right foot contacts: during contact the robot foot's
    target is held on the ground at the span's mean position (no sliding), flat, except in the frames
    where ``pivots`` (F, 2; `mocapd.robots.human_contacts.pivots_from_pipeline`) says only the human's
    ball (1) or heel (-1) is down: there the foot rolls on its toe (heel) site, which stays where the
    flat foot has it, by the human foot's pitch
        theta = arcsin((dz_heel - dz_ball) / d),  |theta| <= ``MAX_ROLL_RAD``,
    dz the heel's and ball's heights above their rest heights, d their horizontal rest distance (only a
    raised heel rolls on the toe, only raised toes on the heel). Keeping the foot flat there would ask
    the robot's leg to reach a heel the human has lifted: a straightened knee.
    """
    for j in ("pelvis", "spine_03", "thigh_l", "calf_l", "foot_l", "upperarm_l", "lowerarm_l", "hand_l"):
        if j not in motion.skeleton.names:
            raise ValueError(f"retargeting needs the mocapd named skeleton; joint {j!r} is missing")
    names = motion.skeleton.names
    idx = {n: names.index(n) for n in names}
    f = motion.num_frames
    pos_h, quat_h = motion.world_transforms()  # (F, J, 3), (F, J, 4)
    rest = robot_rest_frames(desc)
    s = scale_factors(motion, desc)
    hp = motion.skeleton.rest_positions_m()  # (J, 3)
    z_ankle_h = 0.5 * (hp[idx["foot_l"], 2] + hp[idx["foot_r"], 2]) + human_ground_m(motion, pos_h)
    z_ankle_r = rest.pos_m["left_ankle_roll_link"][2] + desc.pelvis_height_m  # above the ground
    face = _rot(FACING_QUAT_WXYZ)

    def lower(p: FloatArray) -> FloatArray:
        out = s.leg * p
        out[..., 2] = z_ankle_r + s.leg * (p[..., 2] - z_ankle_h)
        return out

    def world_rot(joint: str) -> Rotation:
        return _rot(quat_h[:, idx[joint]])

    ones = np.ones(f)
    r_pelvis = world_rot("pelvis") * face  # robot pelvis world orientation target
    r_torso = world_rot("spine_03") * face * _rot(rest.quat_wxyz["torso_link"])
    hip_c_h = 0.5 * (pos_h[:, idx["thigh_l"]] + pos_h[:, idx["thigh_r"]])  # (F, 3)
    # the robot's hip points: above the knees, at the hip pitch joints' height (pelvis frame)
    hip_local = {
        side: np.array([*rest.pos_m[f"{side}_knee_link"][:2], rest.pos_m[f"{side}_hip_pitch_link"][2]])
        for side, _ in _SIDES
    }
    hip_mid_local = 0.5 * (hip_local["left"] + hip_local["right"])
    hip_c_r = lower(hip_c_h)  # (F, 3)
    pelvis_r = hip_c_r + r_pelvis.apply(-hip_mid_local)  # robot pelvis origin = world target

    if upper_body:
        pelvis_r = np.tile([0.0, 0.0, desc.pelvis_height_m], (f, 1))
        r_pelvis = Rotation.from_quat(np.tile(FACING_QUAT_WXYZ[[1, 2, 3, 0]], (f, 1)))

    out: list[FrameTargets] = [
        FrameTargets("pelvis", "body", pelvis_r, _wxyz(r_pelvis), 100.0 * ones, 10.0 * ones, "pelvis", "pelvis"),
    ]  # fmt: skip

    # torso anchor for the arms: robot torso origin carried by the torso target
    torso_origin = pelvis_r + r_pelvis.apply(rest.pos_m["torso_link"])  # (F, 3)
    out.append(
        FrameTargets(
            "torso_link", "body", torso_origin, _wxyz(r_torso), 0.0 * ones, 10.0 * ones, "spine_03", "torso"
        )
    )
    r_torso_link = r_torso  # world orientation of torso_link
    torso_rest_inv = _rot(rest.quat_wxyz["torso_link"]).inv()
    for side, h in _SIDES:
        # arms
        sh_local = torso_rest_inv.apply(rest.pos_m[f"{side}_shoulder_roll_link"] - rest.pos_m["torso_link"])
        shoulder = torso_origin + r_torso_link.apply(sh_local)  # (F, 3)
        elbow = shoulder + s.upper_arm * (pos_h[:, idx[f"lowerarm_{h}"]] - pos_h[:, idx[f"upperarm_{h}"]])
        hand = elbow + s.forearm * (pos_h[:, idx[f"hand_{h}"]] - pos_h[:, idx[f"lowerarm_{h}"]])
        r_upper = world_rot(f"upperarm_{h}") * face * _rot(rest.tpose_quat_wxyz[f"{side}_shoulder_yaw_link"])
        r_fore = world_rot(f"lowerarm_{h}") * face * _rot(rest.tpose_quat_wxyz[f"{side}_elbow_link"])
        out += [
            FrameTargets(f"{side}_shoulder_roll_link", "body", shoulder, _wxyz(r_upper), 2.0 * ones, 0.0 * ones, f"upperarm_{h}", "shoulders"),
            FrameTargets(f"{side}_elbow_link", "body", elbow, _wxyz(r_fore), 10.0 * ones, 0.0 * ones, f"lowerarm_{h}", "elbows"),
            FrameTargets(f"{side}_hand", "site", hand, _wxyz(r_fore), 30.0 * ones, 0.0 * ones, f"hand_{h}", "hands"),
        ]  # fmt: skip
        if upper_body:
            continue
        # legs
        hip_r = hip_c_r + r_pelvis.apply(hip_local[side] - hip_mid_local)  # (F, 3)
        knee = hip_r + s.thigh * (pos_h[:, idx[f"calf_{h}"]] - pos_h[:, idx[f"thigh_{h}"]])
        ankle = knee + s.shin * (pos_h[:, idx[f"foot_{h}"]] - pos_h[:, idx[f"calf_{h}"]])
        r_thigh = world_rot(f"thigh_{h}") * face * _rot(rest.quat_wxyz[f"{side}_hip_roll_link"])
        r_calf = world_rot(f"calf_{h}") * face * _rot(rest.quat_wxyz[f"{side}_knee_link"])
        r_foot = world_rot(f"foot_{h}") * face * _rot(rest.quat_wxyz[f"{side}_ankle_roll_link"])
        foot_q = _wxyz(r_foot)
        foot_pos_cost = 50.0 * ones
        foot_rot_cost = 10.0 * ones
        c_col = 0 if side == "left" else 1
        c = contacts[:, c_col]
        dz = {j: pos_h[:, idx[f"{j}_{h}"], 2] - hp[idx[f"{j}_{h}"], 2] for j in ("foot", "ball")}  # (F,)
        heel_to_ball_m = float(np.linalg.norm((hp[idx[f"ball_{h}"]] - hp[idx[f"foot_{h}"]])[:2]))
        rise = (dz["foot"] - dz["ball"]) / max(heel_to_ball_m, 1e-6)  # (F,) heel up > 0
        pitch = np.clip(np.arcsin(np.clip(np.nan_to_num(rise), -1.0, 1.0)), -MAX_ROLL_RAD, MAX_ROLL_RAD)
        k = 0
        while k < f:  # hold the foot flat and still over each contact span
            if not c[k]:
                k += 1
                continue
            end = k
            while end < f and c[end]:
                end += 1
            span = slice(k, end)
            anchor = ankle[k:end].mean(axis=0)
            ankle[span, :2] = anchor[:2]
            ankle[span, 2] = z_ankle_r
            yaw = r_foot[k:end].as_euler("ZYX")[:, 0]
            mean_yaw = np.arctan2(np.sin(yaw).mean(), np.cos(yaw).mean())
            foot_q[span] = _wxyz(Rotation.from_euler("Z", np.full((end - k, 1), mean_yaw)))
            if pivots is not None:
                _roll_on_toe_or_heel(desc, ankle, foot_q, range(k, end), mean_yaw, pivots[:, c_col], pitch)
            foot_pos_cost[span] = 200.0
            foot_rot_cost[span] = 50.0
            k = end
        out += [
            FrameTargets(f"{side}_hip_roll_link", "body", hip_r, _wxyz(r_thigh), 0.0 * ones, 5.0 * ones, f"thigh_{h}", "hips"),
            FrameTargets(f"{side}_knee_link", "body", knee, _wxyz(r_calf), 10.0 * ones, 5.0 * ones, f"calf_{h}", "knees"),
            FrameTargets(f"{side}_ankle_roll_link", "body", ankle, foot_q, foot_pos_cost, foot_rot_cost, f"foot_{h}", "feet"),
        ]  # fmt: skip
    return out, s
