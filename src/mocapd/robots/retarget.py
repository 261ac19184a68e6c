"""Human `Motion` -> Unitree G1 `RobotMotion` (GMR-style: scaled targets, per-frame mink IK).

Steps:
1. foot contacts of the human (the pipeline's `FootContacts`, else detected from heights and speeds);
2. targets: the human scaled per body group onto the G1 (`mocapd.robots.targets`), feet held still
   on the ground during contacts: flat, or rolled on the toe (heel) where only the human's toe (heel)
   is in contact;
3. per-frame differential IK with mink (`mocapd.robots.ik`): warm-started, hard position limits,
   URDF velocity limits;
4. a light temporal filter on the root pose and joint angles (Gaussian, sigma = 0.75 frame), angles
   clamped to the limits;
5. ground: during contacts the root is shifted so the contact soles' lowest point is at z = 0 and their
   horizontal drift is removed; between contacts the shift is interpolated and never lets a sole
   point go below the ground;
6. each foot in contact held still at the point that carries it (sole centre, or toe / heel while
   rolling): the leg's joints correct what the root shift, shared by both feet, leaves (`_pin_feet`);
7. quality figures (`mocapd.robots.quality`).

``mocap_type="upper_body"`` keeps the root and the legs in the standing pose and retargets the
torso and arms only.
"""

from __future__ import annotations

import mujoco
import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from mocapd.errors import InputFault
from mocapd.pipeline.contacts import FootContacts, detect_contacts
from mocapd.pipeline.runs import true_runs
from mocapd.pipeline.skeleton import Motion
from mocapd.robots.description import RobotDescription
from mocapd.robots.g1 import g1_description
from mocapd.robots.human_contacts import contact_point_of_step, contacts_from_pipeline, pivots_from_pipeline
from mocapd.robots.ik import solve_frames
from mocapd.robots.kinematics import RobotKinematics, forward_kinematics
from mocapd.robots.motion import RobotMotion
from mocapd.robots.quality import robot_quality
from mocapd.robots.targets import FrameTargets, human_foot_clearance_m, scaled_targets

__all__ = ["retarget_to_g1"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

MOCAP_TYPES = ("full_body", "upper_body")
FILTER_SIGMA_FRAMES = 0.75
GROUNDED_M = 0.03  # a human foot point this close to the ground puts the robot's lowest sole on it
TRACKED_PARTS = ("hands", "feet", "elbows", "knees", "pelvis")
PIN_BLEND_FRAMES = 3  # a foot's pin correction eases in / out over this many frames around its contact
PIN_ITERATIONS = 3
PIN_DAMPING = 1e-6


def retarget_to_g1(
    motion: Motion,
    contacts: FootContacts | None = None,
    *,
    mocap_type: str = "full_body",
    variant: str = "g1_29dof_rev_1_0",
) -> RobotMotion:
    """Retarget ``motion`` (mocapd named skeleton, Z up) onto the G1 ``variant``.

    ``contacts`` is a `mocapd.pipeline.contacts.FootContacts` for the same frames, or None.
    """
    if mocap_type not in MOCAP_TYPES:
        raise InputFault("mocap_type_invalid", f"mocap_type must be one of {MOCAP_TYPES}, not {mocap_type!r}")
    desc = g1_description(variant)
    if motion.num_frames == 0:
        raise ValueError("cannot retarget an empty motion")
    motion, valid = _hold_invalid_frames(motion)
    upper_body = mocap_type == "upper_body"
    pivots = None
    if upper_body:
        foot_contacts = np.ones((motion.num_frames, 2), dtype=bool)
    else:  # the pipeline's contacts, or the same detector run here when none are given
        if contacts is None:
            contacts = detect_contacts(motion)
        foot_contacts = contacts_from_pipeline(contacts, motion.num_frames)
        pivots = pivots_from_pipeline(contacts, motion.num_frames)

    targets, scale = scaled_targets(motion, desc, foot_contacts, upper_body=upper_body, pivots=pivots)
    qpos = solve_frames(desc, targets, motion.fps, freeze_legs=upper_body)
    qpos = _filter_joints(desc, qpos, forward_kinematics(desc, qpos, self_contacts=True).leg_self_contacts)
    if not upper_body:
        qpos = _settle_on_ground(desc, qpos, foot_contacts, human_foot_clearance_m(motion) < GROUNDED_M)
        qpos = _pin_feet(desc, qpos, foot_contacts, pivots, motion.fps)
    kin = forward_kinematics(desc, qpos, self_contacts=True)
    tracking = _tracking_errors(desc, kin, targets)
    quality = robot_quality(
        desc, qpos[:, 7:], motion.fps, kin, tracking, None if upper_body else foot_contacts, pivots
    )
    quality["scale"] = scale.as_dict()
    quality["contact_frames"] = {
        "left": int(foot_contacts[:, 0].sum()),
        "right": int(foot_contacts[:, 1].sum()),
    }
    quality["invalid_frames"] = int((~valid).sum())
    return RobotMotion(
        fps=float(motion.fps),
        root_pos_m=qpos[:, :3].copy(),
        root_quat_xyzw=qpos[:, [4, 5, 6, 3]].copy(),
        dof_pos_rad=qpos[:, 7:].copy(),
        joint_names=desc.joint_names,
        variant=desc.variant,
        contacts=foot_contacts,
        valid=valid,
        quality=quality,
        body_positions_m=kin.link_pos_m,
        body_parents=desc.link_parents,
        body_names=desc.links,
    )


def _hold_invalid_frames(motion: Motion) -> tuple[Motion, BoolArray]:
    """Frames with non-finite values take the previous valid frame (the first valid one at the start)."""
    t, q = motion.local_translation_m, motion.local_quat_wxyz
    valid = np.isfinite(t).all(axis=(1, 2)) & np.isfinite(q).all(axis=(1, 2))  # (F,)
    if valid.all():
        return motion, valid
    if not valid.any():
        raise ValueError("the motion has no valid frame")
    src = np.where(valid, np.arange(motion.num_frames), -1)
    src = np.maximum.accumulate(src)
    src[src < 0] = int(np.argmax(valid))
    return Motion(motion.skeleton, motion.fps, t[src], q[src]), valid


def _filter_joints(
    desc: RobotDescription, qpos: FloatArray, raw_leg_contacts: NDArray[np.int64]
) -> FloatArray:
    """Gaussian filter (sigma 0.75 frame) on the root pose and the joint angles, angles clamped to the limits.

    A frame where the filtered legs would touch each other and the IK solution's did not keeps the IK
    solution (the IK keeps the legs apart; the filter must not undo that).
    """
    out = qpos.copy()
    if qpos.shape[0] > 2:
        out[:, :3] = gaussian_filter1d(qpos[:, :3], FILTER_SIGMA_FRAMES, axis=0, mode="nearest")
        quat = _continuous_quats(qpos[:, 3:7])  # (F, 4)
        quat = gaussian_filter1d(quat, FILTER_SIGMA_FRAMES, axis=0, mode="nearest")
        out[:, 3:7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
        out[:, 7:] = gaussian_filter1d(qpos[:, 7:], FILTER_SIGMA_FRAMES, axis=0, mode="nearest")
    out[:, 7:] = np.clip(out[:, 7:], desc.lower_rad, desc.upper_rad)
    touching = (forward_kinematics(desc, out, self_contacts=True).leg_self_contacts > 0) & (
        raw_leg_contacts == 0
    )
    out[touching] = qpos[touching]
    return out


def _continuous_quats(quat: FloatArray) -> FloatArray:
    """Flip signs so consecutive quaternions (F, 4) lie in one hemisphere (q_t . q_{t-1} >= 0)."""
    out = quat.copy()
    for k in range(1, out.shape[0]):
        if np.dot(out[k], out[k - 1]) < 0:
            out[k] = -out[k]
    return out


def _interpolate_gaps(values: FloatArray, known: BoolArray) -> FloatArray:
    """Linear interpolation of ``values`` (F, D) over frames where ``known`` is False."""
    if not known.any():
        return np.zeros_like(values)
    frames = np.arange(values.shape[0])
    return np.stack(
        [np.interp(frames, frames[known], values[known, d]) for d in range(values.shape[1])], axis=1
    )


def _settle_on_ground(
    desc: RobotDescription, qpos: FloatArray, contacts: BoolArray, grounded: BoolArray
) -> FloatArray:
    """Shift the root so the robot stands on z = 0 without sliding or sinking.

    * horizontal: during a contact span the sole centre's drift from its span mean is removed
      (averaged over the feet in contact); interpolated between contacts;
    * vertical: in contact frames the lowest sole point of the feet in contact goes to z = 0; in frames
      where the human has a foot on the ground (``grounded``) but no contact was detected, the lowest
      sole point of either foot; interpolated in between (flight), and never below the ground.
    """
    kin = forward_kinematics(desc, qpos)
    f = qpos.shape[0]
    drift = np.zeros((f, 2))
    count = np.zeros(f)
    for side in range(2):
        c = contacts[:, side]
        k = 0
        while k < f:
            if not c[k]:
                k += 1
                continue
            end = k
            while end < f and c[end]:
                end += 1
            centre = kin.sole_centre_m[k:end, side, :2]  # (S, 2)
            drift[k:end] += centre - centre.mean(axis=0)
            count[k:end] += 1
            k = end
    lowest_each = kin.sole_points_m[..., 2].min(axis=2)  # (F, 2)
    lowest = lowest_each.min(axis=1)  # (F,)
    lowest_contact = np.where(contacts, lowest_each, np.inf).min(axis=1)  # (F,)
    on_ground = contacts.any(axis=1) | grounded
    lift = np.where(contacts.any(axis=1), -lowest_contact, -lowest)  # (F,)
    shift = np.zeros((f, 3))
    known = count > 0
    if known.any():
        shift[:, :2] = _interpolate_gaps(-drift / np.maximum(count, 1)[:, None], known)
    if on_ground.any():
        shift[:, 2:] = _interpolate_gaps(lift[:, None], on_ground)
    shift[:, 2] = np.maximum(shift[:, 2], -lowest)
    out = qpos.copy()
    out[:, :3] += shift
    return out


def _pin_offsets(points_m: dict[int, FloatArray], contact: BoolArray, pivot: NDArray[np.int8]) -> FloatArray:
    """Move (F, 3) of one foot -- horizontal shift dx, dy and turn d_yaw about the sole centre -- that
    keeps the sole point carrying its contact still over each contact span.

    ``points_m`` maps 0 / 1 / -1 to the sole centre / toe / heel positions (F, 2) of the foot;
    ``pivot`` (F,) is 1 where only the human's ball is down, -1 where only its heel is, else 0.
    Over each frame step of the span the point `contact_point_of_step` names (the toe while rolling on
    the ball, also across the steps where a flat foot lifts its heel or sets it back down; the heel
    likewise; the centre of a flat foot) must not move. Over the toe / heel steps the heading (toe -
    heel direction) is held too: a foot that turns while it stands on its toe swings its sole about it
    (the IK's heading changes there are undone, those of the flat steps kept, and the span's mean turn
    is zero). The shifts then chain:
        T[g] = T[g-1] + x_s[g-1] - x_s[g],  s the step's point, x its position after the turn;
    the span's free constant makes the mean shift zero (least-squares closest to where the IK put the
    foot; for a flat foot this is the sole centre held at its span mean). Each span's first / last move
    fades linearly to 0 over ``PIN_BLEND_FRAMES`` frames before / after it (a nearer span's weight wins).
    """
    f = contact.shape[0]
    offset = np.zeros((f, 3))
    weight = np.zeros(f)
    centre = points_m[0]
    axis = points_m[1] - points_m[-1]  # (F, 2) toe - heel
    yaw = np.arctan2(axis[:, 1], axis[:, 0])  # (F,)
    for a, b in true_runs(contact):
        point = contact_point_of_step(pivot[a : b - 1], pivot[a + 1 : b])  # (S-1,)
        dyaw = np.angle(np.exp(1j * np.diff(yaw[a:b])))  # (S-1,) the IK's heading steps, wrapped
        held = np.concatenate([[0.0], np.cumsum(np.where(point == 0, dyaw, 0.0))])  # (S,)
        turn = held - np.concatenate([[0.0], np.cumsum(dyaw)])  # (S,) the toe / heel steps undone
        turn -= turn.mean()
        cos, sin = np.cos(turn)[:, None], np.sin(turn)[:, None]
        turned = {}
        for code, x in points_m.items():
            d = x[a:b] - centre[a:b]  # (S, 2) about the sole centre
            turned[code] = centre[a:b] + np.concatenate(
                [cos * d[:, :1] - sin * d[:, 1:], sin * d[:, :1] + cos * d[:, 1:]], axis=1
            )
        moves = np.zeros((b - a, 2))
        for k, s in enumerate(point, start=1):
            moves[k] = moves[k - 1] + turned[int(s)][k - 1] - turned[int(s)][k]
        offset[a:b, :2] = moves - moves.mean(axis=0)
        offset[a:b, 2] = turn
        weight[a:b] = 1.0
        for k in range(1, PIN_BLEND_FRAMES + 1):
            w = 1.0 - k / (PIN_BLEND_FRAMES + 1)
            for g, src in ((a - k, a), (b - 1 + k, b - 1)):
                if 0 <= g < f and w > weight[g]:
                    offset[g], weight[g] = w * offset[src], w
    return offset


def _clamp_speeds(
    qpos: FloatArray, cols: NDArray[np.int64], vmax_rad_s: FloatArray, fps: float
) -> FloatArray:
    """``qpos`` (F, 7 + N) with the joints ``cols`` (indices into the N angles) kept within their speed
    limits ``vmax_rad_s``: each frame's angle is clamped to the band the previous (clamped) frame allows.
    An angle lies between its previous value and its own, so position limits hold if they held."""
    out = qpos.copy()
    idx = 7 + cols
    step = vmax_rad_s * (1.0 - 1e-9) / fps
    for g in range(1, out.shape[0]):
        out[g, idx] = np.clip(out[g, idx], out[g - 1, idx] - step, out[g - 1, idx] + step)
    return out


def _pin_feet(
    desc: RobotDescription,
    qpos: FloatArray,
    contacts: BoolArray,
    pivots: NDArray[np.int8] | None,
    fps: float,
) -> FloatArray:
    """Hold each foot in contact still: per foot, the leg's six joints move the foot so that the sole
    point carrying the contact stays put (`_pin_offsets`: the sole centre of a flat foot, the toe while
    it rolls on its ball, the heel while it rolls on its heel, chained so the point does not jump where
    the roll begins or ends; the heading held while rolling), the sole's height and tilt kept, root and
    other joints fixed. ``pivots`` (F, 2) None: flat feet.

    The root shift of `_settle_on_ground` can hold one foot only; with both feet down it removes their
    mean drift and each foot keeps its share (and the IK leaves some when a leg cannot reach its pinned
    target). Each leg is corrected on its own by damped Gauss-Newton steps on the 6x6 Jacobian J of
    the sole site (position and orientation rows, the leg's joints as columns),
        dq = (J^T J + mu I)^-1 J^T e,  e = [p* - p, log(R* R^T)],
    keeping the best iterate (a leg at full stretch keeps its closest pose), angles clamped to the
    limits; the span's end moves are eased out over ``PIN_BLEND_FRAMES`` frames on either side so the
    joints do not jump, and the leg angles are then clamped to their speed limits at ``fps``
    (`_clamp_speeds`). A sole point left below z = 0 by an inexact goal lifts the root.
    """
    model = desc.model()
    data = mujoco.MjData(model)
    kin = forward_kinematics(desc, qpos)
    pv = np.zeros(contacts.shape, dtype=np.int8) if pivots is None else pivots
    out = qpos.copy()
    jn = desc.joint_names
    for side, name in enumerate(("left", "right")):
        points = {c: kin.site_pos_m[f"{name}_{n}"][:, :2] for c, n in ((0, "sole"), (1, "toe"), (-1, "heel"))}
        offset = _pin_offsets(points, contacts[:, side], pv[:, side])  # (F, 3)
        cols = [
            i
            for i, n in enumerate(jn)
            if n.startswith(name) and any(p in n for p in ("hip", "knee", "ankle"))
        ]
        dofs = [
            int(model.jnt_dofadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, jn[i])]) for i in cols
        ]
        idx = 7 + np.array(cols)  # their qpos addresses (after the free joint)
        site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"{name}_sole")
        lo, hi = desc.lower_rad[cols], desc.upper_rad[cols]
        jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        for g in np.flatnonzero(np.abs(offset).max(axis=1) > 1e-5):
            data.qpos[:] = out[g]
            mujoco.mj_kinematics(model, data)
            goal_p = data.site_xpos[site].copy()
            goal_p[:2] += offset[g, :2]
            goal_r = Rotation.from_euler("z", offset[g, 2]).as_matrix() @ data.site_xmat[site].reshape(3, 3)
            best_q, best_err = data.qpos[idx].copy(), np.inf
            for it in range(PIN_ITERATIONS + 1):
                mujoco.mj_comPos(model, data)
                mujoco.mj_jacSite(model, data, jacp, jacr, site)
                rot = goal_r @ data.site_xmat[site].reshape(3, 3).T
                err = np.concatenate([goal_p - data.site_xpos[site], Rotation.from_matrix(rot).as_rotvec()])
                if not np.linalg.norm(err) < best_err:
                    break
                best_q, best_err = data.qpos[idx].copy(), float(np.linalg.norm(err))
                if it == PIN_ITERATIONS:
                    break
                jac = np.concatenate([jacp[:, dofs], jacr[:, dofs]])  # (6, 6)
                dq = np.linalg.solve(jac.T @ jac + PIN_DAMPING * np.eye(len(dofs)), jac.T @ err)
                data.qpos[idx] = np.clip(data.qpos[idx] + dq, lo, hi)
                mujoco.mj_kinematics(model, data)
            out[g, idx] = best_q
        # the correction must not break the joints' speed limits
        out = _clamp_speeds(out, np.array(cols), desc.velocity_rad_s[cols], fps)
    # a leg that could not reach its goal exactly may have lowered a sole point: lift the root back
    lowest = forward_kinematics(desc, out).sole_points_m[..., 2].min(axis=(1, 2))  # (F,)
    out[:, 2] += np.maximum(-lowest, 0.0)
    return out


def _frame_positions(desc: RobotDescription, kin: RobotKinematics, t: FrameTargets) -> FloatArray:
    if t.frame_type == "site":
        return kin.site_pos_m[t.frame]
    return kin.link_pos_m[:, desc.links.index(t.frame)]


def _tracking_errors(
    desc: RobotDescription, kin: RobotKinematics, targets: list[FrameTargets]
) -> dict[str, float]:
    """Mean distance (m) between robot frames and their position targets, per body part."""
    errors: dict[str, list[FloatArray]] = {}
    for t in targets:
        if t.part not in TRACKED_PARTS or not (t.position_cost > 0).any():
            continue
        d = np.linalg.norm(_frame_positions(desc, kin, t) - t.pos_m, axis=1)  # (F,)
        errors.setdefault(t.part, []).append(d)
    return {part: float(np.mean(np.concatenate(ds))) for part, ds in errors.items()}
