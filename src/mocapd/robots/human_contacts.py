"""Left/right foot contacts of the human, as the retargeter needs them: (F, 2) bool, from the
pipeline's `FootContacts` (a foot is in contact when its heel or its ball is)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.contacts import FootContacts

__all__ = ["contacts_from_pipeline"]

BoolArray = NDArray[np.bool_]


def contacts_from_pipeline(contacts: FootContacts, num_frames: int) -> BoolArray:
    """(F, 2) left/right foot contacts from the pipeline's `FootContacts`: heel (``foot_*``) or ball."""
    c = np.asarray(contacts.contact, dtype=bool)  # (F, 4)
    if c.shape[0] != num_frames:
        raise ValueError(f"foot contacts have {c.shape[0]} frames, the motion {num_frames}")
    names = tuple(contacts.joint_names)
    col = {n: c[:, names.index(n)] for n in ("foot_l", "ball_l", "foot_r", "ball_r")}
    return np.stack([col["foot_l"] | col["ball_l"], col["foot_r"] | col["ball_r"]], axis=1)
