"""Left/right foot contacts of the human, as the retargeter needs them, from the pipeline's
`FootContacts`: (F, 2) bool (a foot is in contact when its heel or its ball is), which point of
the foot carries it (`pivots_from_pipeline`), and which sole point stays down over a frame step
(`contact_point_of_step`; the retargeter holds that point, the quality figures measure it)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.contacts import FootContacts

__all__ = ["contact_point_of_step", "contacts_from_pipeline", "pivots_from_pipeline"]

BoolArray = NDArray[np.bool_]
Int8Array = NDArray[np.int8]


def contacts_from_pipeline(contacts: FootContacts, num_frames: int) -> BoolArray:
    """(F, 2) left/right foot contacts from the pipeline's `FootContacts`: heel (``foot_*``) or ball."""
    col = _columns(contacts, num_frames)
    return np.stack([col["foot_l"] | col["ball_l"], col["foot_r"] | col["ball_r"]], axis=1)


def pivots_from_pipeline(contacts: FootContacts, num_frames: int) -> Int8Array:
    """(F, 2) left/right: 1 where only the ball is in contact (heel raised), -1 where only the heel is
    (toes raised), 0 otherwise (both, or neither)."""
    col = _columns(contacts, num_frames)
    return np.stack(
        [col[f"ball_{h}"].astype(np.int8) - col[f"foot_{h}"].astype(np.int8) for h in ("l", "r")], axis=1
    )


def contact_point_of_step(before: NDArray[np.int8], after: NDArray[np.int8]) -> NDArray[np.int8]:
    """Which sole point stays on the ground over a frame step of a foot in contact, from its pivots
    (`pivots_from_pipeline`: 1 ball only, -1 heel only, 0 flat) at both
    ends: 1 the toe, -1 the heel, 0 the sole centre. The same pivot at both ends: its point; flat at one
    end and rolled at the other: the rolling point (a flat foot rolls onto its ball about its toe, and
    back down about it); ball at one end and heel at the other: the centre."""
    b, a = before.astype(np.int8), after.astype(np.int8)
    return np.where(b == a, a, np.where(b == 0, a, np.where(a == 0, b, 0))).astype(np.int8)


def _columns(contacts: FootContacts, num_frames: int) -> dict[str, BoolArray]:
    c = np.asarray(contacts.contact, dtype=bool)  # (F, 4)
    if c.shape[0] != num_frames:
        raise ValueError(f"foot contacts have {c.shape[0]} frames, the motion {num_frames}")
    names = tuple(contacts.joint_names)
    return {n: c[:, names.index(n)] for n in ("foot_l", "ball_l", "foot_r", "ball_r")}
