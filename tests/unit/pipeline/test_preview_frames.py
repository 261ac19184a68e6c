"""Which source frames a job's preview shows: every n-th tick of the processing clock, never a neighbour."""

from __future__ import annotations

import numpy as np
import pytest

from mocapd.formats.preview import preview_frame_step
from mocapd.pipeline.decode import DecodedFrame
from mocapd.pipeline.run import _frames_on_grid


@pytest.mark.parametrize(
    ("fps", "step"), [(60.0, 2), (59.94, 2), (50.0, 2), (120.0, 4), (30.0, 1), (29.97, 1), (25.0, 1), (24.0, 1), (0.0, 1)]
)
def test_faster_sources_are_previewed_at_about_30_fps(fps: float, step: int) -> None:
    assert preview_frame_step(fps) == step


def _frames(times_s: np.ndarray) -> list[DecodedFrame]:
    return [DecodedFrame(k, float(t), np.full((2, 2, 3), k, dtype=np.uint8)) for k, t in enumerate(times_s)]


@pytest.mark.parametrize("step", [1, 2, 4])
def test_the_preview_takes_the_frame_on_each_of_its_ticks(step: int) -> None:
    fps = 60.0
    times = 0.25 + np.arange(40) / fps
    picked = [int(rgb[0, 0, 0]) for rgb in _frames_on_grid(iter(_frames(times)), times[::step], fps)]
    assert picked == list(range(0, 40, step))


def test_a_jittered_clock_still_gives_the_nearest_earlier_frame() -> None:
    fps = 60.0
    grid = np.arange(20) / fps
    times = grid + np.where(np.arange(20) % 2, 0.004, -0.004)  # +-4 ms of timestamp jitter
    picked = [int(rgb[0, 0, 0]) for rgb in _frames_on_grid(iter(_frames(times)), grid[::2], fps)]
    assert picked == list(range(0, 20, 2))
