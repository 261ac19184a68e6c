"""Fingers (`handTracking`): MediaPipe's 21 hand landmarks per hand -> the Unreal finger bones.

The default skeleton gains, under each ``hand_l`` / ``hand_r``, ``thumb_01..03``, ``index_01..03``,
``middle_01..03``, ``ring_01..03`` and ``pinky_01..03`` (SPEC section 16). Like every joint of the
default skeleton their rest orientation is the identity and their rest offsets are in world axes: in
the T-pose the palms face down (-Z), the fingers point along the arm (+X on the left, -X on the right)
and the thumbs point forward (-Y, the character faces -Y) and out.

Each finger joint turns about one hinge axis (flexion toward the palm) and the knuckles (``*_01``)
also spread; the angles come from the landmarks' segment angles, are clamped to anatomical limits
(no backward bending), smoothed, and blended into a relaxed pose wherever a hand is not seen, so a hand
that leaves the picture relaxes instead of freezing or snapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.layout import HAND_21
from mocapd.pipeline.skeleton import Motion, Skeleton, quat_mul

__all__ = [
    "FINGER_NAMES",
    "HandAngles",
    "LIMITS_DEG",
    "RELAXED_DEG",
    "finger_angles",
    "finger_limits_rad",
    "hand_angles_track",
    "with_fingers",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
FINGER_NAMES: tuple[str, ...] = tuple(f"{f}_0{k}_{s}" for s in ("l", "r") for f in FINGERS for k in (1, 2, 3))

# MediaPipe hand landmarks (`HAND_21`): the wrist; each finger's four points from its base (thumb: CMC,
# MCP, IP, tip; the others: MCP, PIP, DIP, tip).
_CHAIN = {
    finger: tuple(i for i, n in enumerate(HAND_21.names) if n.startswith(prefix))
    for finger, prefix in (
        ("thumb", "thumb_"), ("index", "index_finger_"), ("middle", "middle_finger_"), ("ring", "ring_finger_"),
        ("pinky", "pinky_"),
    )
}  # fmt: skip
_WRIST, _INDEX_MCP, _MIDDLE_MCP, _PINKY_MCP = HAND_21.indices(
    "wrist", "index_finger_mcp", "middle_finger_mcp", "pinky_mcp"
)

# Left-hand rest offsets (metres, world axes, T-pose with the palm down): the first bone of each finger
# from the hand joint (the wrist), the next two from the previous joint. The right hand mirrors X.
_REST_L: dict[str, tuple[tuple[float, float, float], ...]] = {
    "thumb": ((0.025, -0.025, -0.012), (0.028, -0.022, -0.004), (0.0252, -0.0198, -0.0036)),
    "index": ((0.092, -0.028, 0.0), (0.042, 0.0, 0.0), (0.025, 0.0, 0.0)),
    "middle": ((0.095, -0.008, 0.0), (0.046, 0.0, 0.0), (0.028, 0.0, 0.0)),
    "ring": ((0.090, 0.011, 0.0), (0.042, 0.0, 0.0), (0.026, 0.0, 0.0)),
    "pinky": ((0.082, 0.028, 0.0), (0.033, 0.0, 0.0), (0.020, 0.0, 0.0)),
}
# Anatomical flexion ranges (degrees) per joint 01/02/03, and the knuckles' spread.
LIMITS_DEG: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "thumb": ((0.0, 50.0), (0.0, 60.0), (0.0, 80.0)),
    "index": ((0.0, 90.0), (0.0, 110.0), (0.0, 80.0)),
    "middle": ((0.0, 90.0), (0.0, 110.0), (0.0, 80.0)),
    "ring": ((0.0, 90.0), (0.0, 110.0), (0.0, 80.0)),
    "pinky": ((0.0, 90.0), (0.0, 110.0), (0.0, 80.0)),
}
SPREAD_LIMIT_DEG = 20.0
# A relaxed hand: what unseen hands hold (degrees of flexion per joint).
RELAXED_DEG: dict[str, tuple[float, float, float]] = {
    "thumb": (10.0, 15.0, 10.0), "index": (15.0, 25.0, 12.0), "middle": (20.0, 30.0, 15.0),
    "ring": (25.0, 35.0, 15.0), "pinky": (30.0, 35.0, 15.0),
}
BLEND_S = 0.25  # a hand appearing or leaving blends over this long


@dataclass(frozen=True)
class HandAngles:
    """Per frame and finger joint: flexion (F, 5, 3) and knuckle spread (F, 5), radians; ``seen`` (F,)."""

    flexion_rad: FloatArray
    spread_rad: FloatArray
    seen: BoolArray


def _angle(a: FloatArray, b: FloatArray) -> FloatArray:
    """Angle between vectors (..., 3) and (..., 3), radians."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    cos = np.einsum("...i,...i->...", a, b) / np.maximum(na * nb, 1e-12)
    return cast("FloatArray", np.arccos(np.clip(cos, -1.0, 1.0)))


def finger_angles(points: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Flexion (..., 5, 3) and spread (..., 5) in radians from hand landmarks (..., 21, 3) in any
    consistent metric frame (pixels with z on the x scale will do). Unclamped."""
    p = np.asarray(points, dtype=np.float64)
    wrist = p[..., _WRIST, :]
    palm_axis = p[..., _MIDDLE_MCP, :] - wrist  # wrist -> middle knuckle
    across = p[..., _INDEX_MCP, :] - p[..., _PINKY_MCP, :]
    normal = np.cross(palm_axis, across)  # out of the palm (either hand: the sign only sets the spread's sign)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    flex = np.zeros(p.shape[:-2] + (5, 3))
    spread = np.zeros(p.shape[:-2] + (5,))
    for i, finger in enumerate(FINGERS):
        a, b, c, d = _CHAIN[finger]
        first = p[..., a, :] - wrist
        seg1, seg2, seg3 = p[..., b, :] - p[..., a, :], p[..., c, :] - p[..., b, :], p[..., d, :] - p[..., c, :]
        if finger == "thumb":  # the thumb's base sits about 35 degrees off the palm's axis when relaxed
            flex[..., i, 0] = np.maximum(_angle(palm_axis, seg1) - np.deg2rad(35.0), 0.0)
        else:
            flex[..., i, 0] = _angle(first, seg1)
        flex[..., i, 1] = _angle(seg1, seg2)
        flex[..., i, 2] = _angle(seg2, seg3)
        if finger != "thumb":
            # the finger's direction in the palm plane against the palm's axis, signed toward the index side
            in_plane = seg1 - np.einsum("...i,...i->...", seg1, normal)[..., None] * normal
            side = np.sign(np.einsum("...i,...i->...", np.cross(palm_axis, in_plane), normal))
            spread[..., i] = side * _angle(palm_axis, in_plane)
    # a flat hand's knuckles already bend a little in these angles (the palm is not a straight line)
    flex[..., 1:, 0] = np.maximum(flex[..., 1:, 0] - np.deg2rad(8.0), 0.0)
    return flex, spread


def finger_limits_rad() -> tuple[FloatArray, FloatArray]:
    """Lower and upper flexion limits (5, 3), radians (fingers in `FINGERS` order, joints 01..03)."""
    lo = np.deg2rad(np.array([[r[0] for r in LIMITS_DEG[f]] for f in FINGERS]))  # (5, 3)
    hi = np.deg2rad(np.array([[r[1] for r in LIMITS_DEG[f]] for f in FINGERS]))
    return lo, hi


def _relaxed() -> FloatArray:
    return cast("FloatArray", np.deg2rad(np.array([RELAXED_DEG[f] for f in FINGERS])))  # (5, 3)


def _smooth(x: FloatArray, seen: BoolArray, fps: float) -> FloatArray:
    """A centred moving average over about 0.1 s, over seen frames only (x: (F, ...))."""
    half = max(1, int(round(0.05 * fps)))
    f = x.shape[0]
    mask = seen.reshape((-1,) + (1,) * (x.ndim - 1))
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(np.where(mask, x, 0.0), axis=0)])
    wsum = np.concatenate([[0.0], np.cumsum(seen.astype(np.float64))])
    t = np.arange(f)
    lo, hi = np.maximum(t - half, 0), np.minimum(t + half + 1, f)
    n = (wsum[hi] - wsum[lo]).reshape(mask.shape)
    mean = (csum[hi] - csum[lo]) / np.maximum(n, 1e-12)
    return np.where(n > 0, mean, x)


def _seen_weight(seen: BoolArray, fps: float) -> FloatArray:
    """1 where the hand is seen, ramping linearly to 0 over `BLEND_S` on either side of a seen run."""
    f = seen.shape[0]
    ramp = max(1, int(round(BLEND_S * fps)))
    dist = np.full(f, np.inf)
    last = -np.inf
    for t in range(f):  # distance to the nearest seen frame, both ways
        if seen[t]:
            last = t
        dist[t] = t - last
    last = np.inf
    for t in range(f - 1, -1, -1):
        if seen[t]:
            last = t
        dist[t] = min(dist[t], last - t)
    return np.clip(1.0 - dist / ramp, 0.0, 1.0)


def hand_angles_track(points: FloatArray, seen: BoolArray, fps: float) -> HandAngles:
    """Clamped, smoothed joint angles of one hand over a clip, relaxed where the hand is not seen.

    ``points`` (F, 21, 3) (NaN where unseen), ``seen`` (F,)."""
    seen = np.asarray(seen, dtype=bool) & np.isfinite(points).all(axis=(1, 2))
    f = seen.shape[0]
    relaxed = _relaxed()
    flex = np.tile(relaxed, (f, 1, 1))
    spread = np.zeros((f, 5))
    if seen.any():
        raw_flex, raw_spread = finger_angles(np.where(seen[:, None, None], points, 0.0))
        lo, hi = finger_limits_rad()
        raw_flex = np.clip(raw_flex, lo, hi)
        lim = np.deg2rad(SPREAD_LIMIT_DEG)
        raw_spread = np.clip(raw_spread, -lim, lim)
        raw_flex, raw_spread = _smooth(raw_flex, seen, fps), _smooth(raw_spread, seen, fps)
        # hold the nearest seen value through gaps, then blend toward the relaxed pose by distance
        idx = np.where(seen, np.arange(f), -1)
        idx = np.maximum.accumulate(idx)
        first = int(np.argmax(seen))
        idx = np.where(idx < 0, first, idx)
        held_flex, held_spread = raw_flex[idx], raw_spread[idx]
        w = _seen_weight(seen, fps)[:, None]
        flex = w[..., None] * held_flex + (1.0 - w[..., None]) * relaxed
        spread = w * held_spread
        flex = np.clip(flex, *finger_limits_rad())
    return HandAngles(flex, spread, seen)


def _axis_angle_quat(axis: FloatArray, angle: FloatArray) -> FloatArray:
    """wxyz quaternions (F, 4) for rotations by ``angle`` (F,) about the unit ``axis`` (3,)."""
    half = 0.5 * angle
    return np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis[None, :]], axis=1)


def _finger_frame(finger: str, side: str) -> tuple[FloatArray, FloatArray]:
    """(hinge axis, spread axis) of a finger in the hand's rest frame (world axes at rest)."""
    mirror = np.array([1.0 if side == "l" else -1.0, 1.0, 1.0])
    direction = np.array(_REST_L[finger][1]) * mirror
    direction /= np.linalg.norm(direction)
    palm = np.array([0.0, 0.45, -1.0]) if finger == "thumb" else np.array([0.0, 0.0, -1.0])
    palm = palm / np.linalg.norm(palm)
    hinge = np.cross(direction, palm)  # a positive turn curls the finger toward the palm
    hinge /= np.linalg.norm(hinge)
    spread_axis = np.array([0.0, 0.0, -1.0 if side == "l" else 1.0])  # a positive spread turns toward the thumb
    return hinge, spread_axis


def with_fingers(motion: Motion, left: HandAngles | None, right: HandAngles | None, *, scale: float = 1.0) -> Motion:
    """``motion`` with the 30 finger joints appended under ``hand_l`` / ``hand_r`` (a hand without
    data holds the relaxed pose). ``scale`` sizes the hands with the performer (1.0 = the 1.75 m rest)."""
    sk = motion.skeleton
    if any(n in sk.names for n in FINGER_NAMES):
        raise ValueError("the skeleton already has finger joints")
    f = motion.num_frames
    names = list(sk.names)
    parents = list(sk.parents)
    offsets = [row for row in sk.rest_offsets_m]
    trans = [motion.local_translation_m]
    quats = [motion.local_quat_wxyz]
    for side, hand in (("l", left), ("r", right)):
        if hand is not None and hand.flexion_rad.shape[0] != f:
            raise ValueError("hand angles and motion differ in frame count")
        mirror = np.array([1.0 if side == "l" else -1.0, 1.0, 1.0])
        hand_index = names.index(f"hand_{side}")
        for i, finger in enumerate(FINGERS):
            hinge, spread_axis = _finger_frame(finger, side)
            flex = hand.flexion_rad[:, i] if hand is not None else np.tile(_relaxed()[i], (f, 1))  # (F, 3)
            spread = hand.spread_rad[:, i] if hand is not None else np.zeros(f)
            parent = hand_index
            for k in range(3):
                names.append(f"{finger}_0{k + 1}_{side}")
                parents.append(parent)
                offset = np.array(_REST_L[finger][k]) * mirror * scale
                offsets.append(offset)
                q = _axis_angle_quat(hinge, flex[:, k])
                if k == 0:
                    q = quat_mul(_axis_angle_quat(spread_axis, spread), q)
                trans.append(np.tile(offset, (f, 1))[:, None, :])
                quats.append(q[:, None, :])
                parent = len(names) - 1
    skeleton = Skeleton(tuple(names), tuple(parents), np.array(offsets, dtype=np.float64))
    return Motion(skeleton, motion.fps, np.concatenate(trans, axis=1), np.concatenate(quats, axis=1))
