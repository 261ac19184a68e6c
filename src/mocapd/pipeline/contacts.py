"""Foot contacts and foot locking.

**Detection** (`detect_contacts`): the heel (``foot_*``, the ankle joint) and the toe (``ball_*``) of
each foot are in contact when their height ``h`` is under ``height_m`` and their speed ``v`` under
``speed_m_s``, with hysteresis (a contact starts when ``h < 0.8 h_c`` and ``v < 0.8 v_c`` and ends when
``h > 1.2 h_c`` or ``v > 1.2 v_c``); gaps of up to ``max_gap_frames`` are closed and contacts shorter
than ``min_frames`` dropped. Heights are measured from each joint's own floor level: the lower of the
two sides' 5th percentiles of the joint's z over the clip (an ankle or ball joint sits above the sole,
and the world stage may leave the ground a little off z = 0). Speeds are 3D central differences.

**Locking** (`remove_foot_sliding`), as GVHMR's post-processing does:

1. the horizontal drift of the joints in contact is removed from the root: per frame,
   ``Δroot -= mean over joints in contact at t-1 and t of (p_t - p_{t-1})_xy``, accumulated;
2. each foot is then pinned horizontally: a heel or toe in contact is held at the **mean** of its
   (drift-corrected) positions over that contact, the least-squares stationary point, so the leg
   changes as little as a pinned foot allows (holding it where it touched down instead puts the
   whole drift of the contact into the leg: cam01 MPJPE 110.7 against 110.3 mm unpinned); heel alone
   or toe alone: the whole foot is translated with it. The correction ramps in linearly over up to
   ``blend_frames`` free frames before touch-down and out over ``blend_frames`` after lift-off;
3. an analytic two-bone IK (thigh, calf; knee kept in its bending plane) moves the ankle to its
   corrected point, and the foot turns by the shortest arc so the ball reaches its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.runs import true_runs
from mocapd.pipeline.skeleton import Motion, quat_mul, quat_rotate

__all__ = ["CONTACT_JOINTS", "FootContacts", "detect_contacts", "foot_skate_m_s", "remove_foot_sliding"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

CONTACT_JOINTS: tuple[str, ...] = ("foot_l", "ball_l", "foot_r", "ball_r")
_FLOOR_PERCENTILE = 5.0


@dataclass(frozen=True)
class FootContacts:
    """Per-frame contact of heel (foot) and toe (ball) of each foot, with the signals behind it."""

    fps: float
    contact: BoolArray  # (F, 4) in CONTACT_JOINTS order
    height_m: FloatArray  # (F, 4) above each joint's floor level
    speed_m_s: FloatArray  # (F, 4)
    joint_names: tuple[str, ...] = CONTACT_JOINTS

    @property
    def num_frames(self) -> int:
        return int(self.contact.shape[0])

    @property
    def per_foot(self) -> BoolArray:
        """(F, 2) bool: [left, right] foot in contact (heel or toe)."""
        return np.stack([self.contact[:, 0] | self.contact[:, 1], self.contact[:, 2] | self.contact[:, 3]], axis=1)


def detect_contacts(
    motion: Motion,
    *,
    height_m: float = 0.04,
    speed_m_s: float = 0.3,
    min_frames: int = 3,
    max_gap_frames: int = 2,
) -> FootContacts:
    """Heel and toe contacts of ``motion`` (see the module docstring for the rule)."""
    idx = [motion.skeleton.index(n) for n in CONTACT_JOINTS]
    pos = motion.world_positions_m()[:, idx]  # (F, 4, 3)
    nf = pos.shape[0]
    z = pos[..., 2]  # (F, 4)
    floor = np.zeros(4)
    if nf:
        pct = np.percentile(z, _FLOOR_PERCENTILE, axis=0)  # (4,)
        for heel, toe in ((0, 2), (1, 3)):  # foot_l/foot_r, ball_l/ball_r
            floor[heel] = floor[toe] = min(pct[heel], pct[toe])
    height = z - floor
    speed = np.linalg.norm(np.gradient(pos, axis=0), axis=-1) * motion.fps if nf > 1 else np.zeros((nf, 4))
    contact = np.zeros((nf, 4), dtype=bool)
    for k in range(4):
        c = _hysteresis(height[:, k], speed[:, k], height_m, speed_m_s)
        c = _close_gaps(c, max_gap_frames)
        contact[:, k] = _drop_short(c, min_frames)
    return FootContacts(motion.fps, contact, height, speed)


def _hysteresis(h: FloatArray, v: FloatArray, h_c: float, v_c: float) -> BoolArray:
    out = np.zeros(len(h), dtype=bool)
    on = False
    enter = (h < 0.8 * h_c) & (v < 0.8 * v_c)
    leave = (h > 1.2 * h_c) | (v > 1.2 * v_c) | ~np.isfinite(h) | ~np.isfinite(v)
    for t in range(len(h)):
        on = (not leave[t]) if on else bool(enter[t])
        out[t] = on
    return out


def _close_gaps(mask: BoolArray, max_gap: int) -> BoolArray:
    out = mask.copy()
    runs = true_runs(mask)
    for (_, e0), (s1, _) in zip(runs[:-1], runs[1:], strict=True):
        if s1 - e0 <= max_gap:
            out[e0:s1] = True
    return out


def _drop_short(mask: BoolArray, min_len: int) -> BoolArray:
    out = mask.copy()
    for s, e in true_runs(mask):
        if e - s < min_len:
            out[s:e] = False
    return out


def foot_skate_m_s(motion: Motion, contacts: FootContacts) -> float:
    """Mean horizontal speed (m/s) of the heel and toe joints over frames in contact at t-1 and t."""
    idx = [motion.skeleton.index(n) for n in contacts.joint_names]
    pos = motion.world_positions_m()[:, idx, :2]  # (F, 4, 2)
    if pos.shape[0] < 2:
        return 0.0
    step = np.linalg.norm(np.diff(pos, axis=0), axis=-1) * motion.fps  # (F-1, 4)
    both = contacts.contact[1:] & contacts.contact[:-1]
    return float(step[both].mean()) if both.any() else 0.0


def remove_foot_sliding(motion: Motion, contacts: FootContacts, *, blend_frames: int = 4) -> Motion:
    """``motion`` with its feet pinned to the ground horizontally while in contact (module docstring)."""
    sk = motion.skeleton
    nf = motion.num_frames
    if contacts.num_frames != nf:
        raise ValueError("contacts and motion differ in frame count")
    if nf < 2:
        return motion
    ci = [sk.index(n) for n in contacts.joint_names]
    pos, _ = motion.world_transforms()  # (F, J, 3)

    # 1. root drift: the mean horizontal step of the joints in contact on both frames
    steps = np.diff(pos[:, ci, :2], axis=0)  # (F-1, 4, 2)
    both = contacts.contact[1:] & contacts.contact[:-1]  # (F-1, 4)
    n_in = both.sum(axis=1, keepdims=True)  # (F-1, 1)
    drift = np.where(n_in > 0, (steps * both[..., None]).sum(axis=1) / np.maximum(n_in, 1), 0.0)  # (F-1, 2)
    shift_xy = np.concatenate([np.zeros((1, 2)), -np.cumsum(drift, axis=0)])  # (F, 2)
    trans = motion.local_translation_m.copy()
    root = sk.parents.index(-1)
    trans[:, root, :2] += shift_xy
    shifted = Motion(sk, motion.fps, trans, motion.local_quat_wxyz.copy())
    pos, rot = shifted.world_transforms()  # (F, J, 3), (F, J, 4)

    # 2. + 3. pin each foot and solve the leg
    quat = shifted.local_quat_wxyz.copy()
    for side, (heel_k, toe_k) in (("l", (0, 1)), ("r", (2, 3))):
        names = (f"thigh_{side}", f"calf_{side}", f"foot_{side}")
        if not all(n in sk.names for n in names):
            continue
        hip_j, knee_j, ankle_j = (sk.index(n) for n in names)
        heel_xy, toe_xy = pos[:, ci[heel_k], :2], pos[:, ci[toe_k], :2]
        c_heel, c_toe = _pin_corrections(
            heel_xy, toe_xy, contacts.contact[:, heel_k], contacts.contact[:, toe_k], blend_frames
        )  # (F, 2) each
        active = (np.linalg.norm(c_heel, axis=1) > 1e-9) | (np.linalg.norm(c_toe, axis=1) > 1e-9)
        if not active.any():
            continue
        target = pos[active, ankle_j].copy()
        target[:, :2] += c_heel[active]
        new_thigh_w, new_calf_w = _two_bone_ik(
            pos[active, hip_j], pos[active, knee_j], pos[active, ankle_j], target,
            rot[active, hip_j], rot[active, knee_j],
        )
        # foot: turned so that the toe reaches its own pinned point when it differs from the heel's
        d_old = pos[active, ci[toe_k]] - pos[active, ankle_j]
        d_new = d_old.copy()
        d_new[:, :2] += c_toe[active] - c_heel[active]
        foot_w = quat_mul(_arc(d_old, d_new), rot[active, ankle_j])
        pelvis_w = rot[active, sk.parents[hip_j]]
        quat[active, hip_j] = quat_mul(_conj(pelvis_w), new_thigh_w)
        quat[active, knee_j] = quat_mul(_conj(new_thigh_w), new_calf_w)
        quat[active, ankle_j] = quat_mul(_conj(new_calf_w), foot_w)
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    dots = np.sum(quat[1:] * quat[:-1], axis=-1)  # (F-1, J)
    quat[1:] *= np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)[..., None]
    return Motion(sk, motion.fps, trans, quat)


def _pin_corrections(
    heel_xy: FloatArray, toe_xy: FloatArray, heel: BoolArray, toe: BoolArray, blend_frames: int
) -> tuple[FloatArray, FloatArray]:
    """Horizontal corrections (F, 2) of the heel (ankle) and the toe (ball) of one foot.

    A joint in contact is held at the mean of its positions over that contact (``_span_means``); a
    joint not in contact moves with the other one when that one is held (the foot is translated as a
    whole; a difference left from a lift-off fades over ``blend_frames``); with neither in contact
    the corrections ramp linearly to zero over ``blend_frames`` from their values at lift-off. At a
    touch-down the step from the correction carried so far to the one the anchor asks for is spread
    linearly over the free frames before it (at most ``blend_frames``; none at the first frame), so
    the correction stays continuous.
    """
    nf = len(heel)
    c_heel, c_toe = np.zeros((nf, 2)), np.zeros((nf, 2))
    anchor_h, anchor_t = _span_means(heel_xy, heel), _span_means(toe_xy, toe)
    lock_h, lock_t = np.zeros(2), np.zeros(2)
    prev_h, prev_t = np.zeros(2), np.zeros(2)
    rel_h, rel_t = np.zeros(2), np.zeros(2)
    since_release = blend_frames
    was_h = was_t = False
    gap = np.zeros(2)  # toe correction minus heel correction when one of them lifted off
    since_gap = blend_frames
    steps: list[tuple[int, int, FloatArray]] = []  # (touch-down frame, 0 heel / 1 toe, step)
    for t in range(nf):
        h, k = bool(heel[t]), bool(toe[t])
        if h and not was_h:
            lock_h = anchor_h[t]
            steps.append((t, 0, lock_h - heel_xy[t] - prev_h))
        if k and not was_t:
            lock_t = anchor_t[t]
            steps.append((t, 1, lock_t - toe_xy[t] - prev_t))
        if (was_h and was_t) and (h != k):
            gap, since_gap = prev_t - prev_h, 0
        if h or k:
            since_gap += 1
            fade = gap * max(0.0, 1.0 - since_gap / max(blend_frames, 1))
            ch = lock_h - heel_xy[t] if h else None
            ct = lock_t - toe_xy[t] if k else None
            ch = ch if ch is not None else ct - fade  # type: ignore[operator]
            ct = ct if ct is not None else ch + fade
            since_release = 0
        else:
            if was_h or was_t:
                rel_h, rel_t, since_release = prev_h, prev_t, 0
            since_release += 1
            ramp = max(0.0, 1.0 - since_release / max(blend_frames, 1))
            ch, ct = rel_h * ramp, rel_t * ramp
        assert ch is not None and ct is not None
        c_heel[t], c_toe[t] = ch, ct
        prev_h, prev_t = ch, ct
        was_h, was_t = h, k
    # ramp in: each touch-down's step spread over the free frames before it
    for t0, which, step in steps:
        corr, mask = (c_heel, heel) if which == 0 else (c_toe, toe)
        n = 0
        while n < blend_frames and t0 - n - 1 >= 0 and not mask[t0 - n - 1]:
            n += 1
        for i in range(1, n + 1):
            corr[t0 - i] += step * (1.0 - i / (n + 1))
    return c_heel, c_toe


def _span_means(xy: FloatArray, mask: BoolArray) -> FloatArray:
    """(F, 2): on every run of ``mask``, the mean of ``xy`` over that run (zero elsewhere)."""
    out = np.zeros_like(xy)
    for s, e in true_runs(mask):
        out[s:e] = xy[s:e].mean(axis=0)
    return out


def _two_bone_ik(
    hip: FloatArray, knee: FloatArray, ankle: FloatArray, target: FloatArray, thigh_w: FloatArray, calf_w: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """New world rotations (N, 4) of thigh and calf that put the ankle on ``target`` (N, 3).

    With thigh length ``a``, calf length ``b`` and ``L = |target - hip|`` (clamped to ``[|a-b|, a+b]``),
    the knee goes to ``hip + a (cos α û + sin α p̂)`` with ``cos α = (a² + L² - b²) / (2 a L)``, ``û`` the
    hip -> target direction and ``p̂`` the current knee's offset from that line (the bending plane is
    kept). Each bone turns by the shortest arc onto its new direction.
    """
    a = np.linalg.norm(knee - hip, axis=1)  # (N,)
    b = np.linalg.norm(ankle - knee, axis=1)
    v = target - hip
    dist = np.linalg.norm(v, axis=1)
    u = v / np.maximum(dist, 1e-12)[:, None]
    L = np.clip(dist, np.abs(a - b) + 1e-6, a + b - 1e-6)
    k_rel = knee - hip
    p = k_rel - np.sum(k_rel * u, axis=1, keepdims=True) * u
    pn = np.linalg.norm(p, axis=1)
    forward = quat_rotate(thigh_w, np.broadcast_to([0.0, -1.0, 0.0], hip.shape))  # knee bends forward
    p = np.where((pn > 1e-6)[:, None], p / np.maximum(pn, 1e-12)[:, None], forward)
    p = p - np.sum(p * u, axis=1, keepdims=True) * u
    p /= np.maximum(np.linalg.norm(p, axis=1), 1e-12)[:, None]
    cos_a = np.clip((a**2 + L**2 - b**2) / (2 * a * L), -1.0, 1.0)
    sin_a = np.sqrt(1.0 - cos_a**2)
    knee_new = hip + a[:, None] * (cos_a[:, None] * u + sin_a[:, None] * p)
    ankle_new = hip + L[:, None] * u
    s1 = _arc(knee - hip, knee_new - hip)
    thigh_new = quat_mul(s1, thigh_w)
    calf_dir = quat_rotate(s1, ankle - knee)
    s2 = _arc(calf_dir, ankle_new - knee_new)
    calf_new = quat_mul(s2, quat_mul(s1, calf_w))
    return thigh_new, calf_new


def _arc(v0: FloatArray, v1: FloatArray) -> FloatArray:
    """Shortest-arc wxyz quaternions (N, 4) turning directions v0 onto v1 (not antiparallel)."""
    a = v0 / np.linalg.norm(v0, axis=1, keepdims=True)
    b = v1 / np.linalg.norm(v1, axis=1, keepdims=True)
    q = np.concatenate([1.0 + np.sum(a * b, axis=1, keepdims=True), np.cross(a, b)], axis=1)
    return cast("FloatArray", q / np.linalg.norm(q, axis=1, keepdims=True))


def _conj(q: FloatArray) -> FloatArray:
    return cast("FloatArray", q * np.array([1.0, -1.0, -1.0, -1.0]))
