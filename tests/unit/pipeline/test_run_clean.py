"""The pipeline's landmark cleaning: world landmarks of a joint rated hidden follow the body's estimate
instead of being held; the 2D landmarks stay gated."""

from __future__ import annotations

import numpy as np

from mocapd.pipeline.pose import PoseTrack
from mocapd.pipeline.run import clean_landmarks


def _track(frames: int = 90, fps: float = 30.0) -> tuple[PoseTrack, np.ndarray]:
    t = np.arange(frames) / fps
    rng = np.random.default_rng(3)
    world = rng.normal(0.0, 0.2, (1, 33, 3)).repeat(frames, axis=0)
    # the right elbow (14) swings 0.3 m along x at 1 Hz
    world[:, 14, 0] += 0.3 * np.sin(2 * np.pi * t)
    px = 500.0 + 1000.0 * world[..., :2]
    vis = np.full((frames, 33), 0.95)
    vis[30:70, 14] = 0.3  # rated hidden for 40 frames (longer than a bridged gap)
    valid = np.ones(frames, dtype=bool)
    return PoseTrack(t, (1000, 1000), px, world, vis, valid, valid), world


def test_hidden_world_landmarks_follow_the_estimate_and_2d_stays_gated() -> None:
    track, world = _track()
    world_clean, px_clean, fit_mask = clean_landmarks(track, 30.0)
    err = np.abs(world_clean.values[30:70, 14, 0] - world[30:70, 14, 0])
    assert err.max() < 0.02  # followed (held would be up to 0.6 m off)
    assert world_clean.known[30:70, 14].all()
    assert not px_clean.known[30:70, 14].any()
    assert px_clean.held[30:70, 14].all()
    assert not fit_mask[30:70, 14].any() and fit_mask[:30, 14].all()  # the camera fit uses what is seen
