"""Left/right foot contacts of the human, as the retargeter needs them: (F, 2) bool.

Either taken from the pipeline's `FootContacts` (foot = heel or ball in contact), or detected here
from heights and speeds when none are given: a foot point (ankle ``foot_*`` or ``ball_*``) is in
contact when its height above its clip minimum is under ``height_m`` and its horizontal speed is
under ``speed_m_s``; spans shorter than ``min_frames`` are dropped and holes of up to
``max_hole_frames`` closed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.contacts import FootContacts
from mocapd.pipeline.skeleton import Motion

__all__ = ["contacts_from_pipeline", "detect_foot_contacts"]

BoolArray = NDArray[np.bool_]


def _clean_spans(c: BoolArray, min_frames: int, max_hole_frames: int) -> BoolArray:
    c = c.copy()
    f = c.shape[0]
    # close short holes between contacts
    k = 0
    while k < f:
        if c[k]:
            k += 1
            continue
        end = k
        while end < f and not c[end]:
            end += 1
        if k > 0 and end < f and end - k <= max_hole_frames:
            c[k:end] = True
        k = end
    # drop short contacts
    k = 0
    while k < f:
        if not c[k]:
            k += 1
            continue
        end = k
        while end < f and c[end]:
            end += 1
        if end - k < min_frames:
            c[k:end] = False
        k = end
    return c


def detect_foot_contacts(
    motion: Motion,
    *,
    height_m: float = 0.04,
    speed_m_s: float = 0.35,
    min_frames: int = 3,
    max_hole_frames: int = 2,
) -> BoolArray:
    """(F, 2) left/right contacts from the heights and horizontal speeds of ankle and ball joints."""
    names = motion.skeleton.names
    pos = motion.world_positions_m()  # (F, J, 3)
    out = np.zeros((motion.num_frames, 2), dtype=bool)
    for col, side in enumerate(("l", "r")):
        side_c = np.zeros(motion.num_frames, dtype=bool)
        for joint in (f"foot_{side}", f"ball_{side}"):
            p = pos[:, names.index(joint)]  # (F, 3)
            height = p[:, 2] - np.nanmin(p[:, 2])  # (F,)
            vel = np.gradient(p[:, :2], axis=0) * motion.fps if motion.num_frames > 1 else np.zeros((1, 2))
            speed = np.linalg.norm(vel, axis=1)  # (F,)
            side_c |= (height < height_m) & (speed < speed_m_s)
        out[:, col] = _clean_spans(side_c, min_frames, max_hole_frames)
    return out


def contacts_from_pipeline(contacts: FootContacts, num_frames: int) -> BoolArray:
    """(F, 2) left/right foot contacts from the pipeline's `FootContacts`: heel (``foot_*``) or ball."""
    c = np.asarray(contacts.contact, dtype=bool)  # (F, 4)
    if c.shape[0] != num_frames:
        raise ValueError(f"foot contacts have {c.shape[0]} frames, the motion {num_frames}")
    names = tuple(contacts.joint_names)
    col = {n: c[:, names.index(n)] for n in ("foot_l", "ball_l", "foot_r", "ball_r")}
    return np.stack([col["foot_l"] | col["ball_l"], col["foot_r"] | col["ball_r"]], axis=1)
