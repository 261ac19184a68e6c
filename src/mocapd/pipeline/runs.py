"""Runs of True in a boolean series: contact spans, visible stretches, ranges to report."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["true_runs"]


def true_runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True in ``mask`` (F,), in order."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask).astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
