"""Front/back misreadings: frames where the detector swaps left and right and mirrors depth between
two frames are found and repaired; a person who really turns round is left alone."""

from __future__ import annotations

import numpy as np

from mocapd.pipeline.flips import facing, misread_frames, repair_flips, swap_sides
from mocapd.pipeline.layout import BLAZEPOSE_33
from mocapd.pipeline.pose import PoseTrack

_SWAP = swap_sides()
LEFT_RIGHT = [(i, int(j)) for i, j in enumerate(_SWAP) if BLAZEPOSE_33.side(i) > 0]


def _body() -> np.ndarray:
    """A hip-centred body facing the camera (MediaPipe axes: x image right, y down, z away), (33, 3):
    its left side at image right, the nose in front of the shoulders."""
    rng = np.random.default_rng(5)
    b = rng.normal(0.0, 0.05, (33, 3))
    for left, right in LEFT_RIGHT:
        y = rng.uniform(-0.6, 0.8)
        b[left] = [0.15, y, 0.0]
        b[right] = [-0.15, y, 0.0]
    nose, left_sh, right_sh = BLAZEPOSE_33.indices("nose", "left_shoulder", "right_shoulder")
    b[left_sh] = [0.18, -0.5, 0.0]
    b[right_sh] = [-0.18, -0.5, 0.0]
    b[nose] = [0.0, -0.65, -0.12]
    return b


def _yaw(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])


def _track(world: np.ndarray) -> PoseTrack:
    f = world.shape[0]
    px = 500.0 + 800.0 * world[..., :2]
    vis = np.tile(np.linspace(0.6, 1.0, 33), (f, 1))
    valid = np.ones(f, dtype=bool)
    return PoseTrack(np.arange(f) / 30.0, (1000, 1000), px, world, vis, valid, valid)


def _misread(world: np.ndarray, px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w = world[_SWAP].copy()
    w[:, 2] *= -1
    return w, px[_SWAP]


def test_misread_frames_are_found_and_repaired() -> None:
    frames = 60
    sway = np.stack([_body() @ _yaw(20 * np.sin(t / 9)).T for t in range(frames)])  # (F, 33, 3)
    track = _track(sway)
    world, px, vis = track.world_m.copy(), track.landmarks_px.copy(), track.visibility.copy()
    bad = np.zeros(frames, dtype=bool)
    bad[[5]] = True
    bad[20:38] = True
    for t in np.flatnonzero(bad):
        world[t], px[t] = _misread(world[t], px[t])
        vis[t] = vis[t][_SWAP]
    seen = PoseTrack(track.time_s, track.image_size_px, px, world, vis, track.person, track.valid)
    assert (facing(world)[bad] > 0).all() and (facing(world)[~bad] < 0).all()

    repaired, found = repair_flips(seen)
    np.testing.assert_array_equal(found, bad)
    np.testing.assert_allclose(repaired.world_m, track.world_m, atol=1e-12)
    np.testing.assert_allclose(repaired.landmarks_px, track.landmarks_px, atol=1e-12)
    np.testing.assert_allclose(repaired.visibility, track.visibility, atol=1e-12)


def test_swap_pairs_every_side_by_name() -> None:
    assert len(LEFT_RIGHT) == 16 and (_SWAP[_SWAP] == np.arange(33)).all()
    assert _SWAP[BLAZEPOSE_33.index("mouth_left")] == BLAZEPOSE_33.index("mouth_right")
    assert _SWAP[BLAZEPOSE_33.index("left_foot_index")] == BLAZEPOSE_33.index("right_foot_index")
    assert _SWAP[BLAZEPOSE_33.index("nose")] == BLAZEPOSE_33.index("nose")


def test_a_real_turn_and_a_clean_track_are_left_alone() -> None:
    frames = 90
    turn = np.stack([_body() @ _yaw(180.0 * t / (frames - 1)).T for t in range(frames)])  # faces away at the end
    track = _track(turn)
    assert facing(turn)[0] < 0 < facing(turn)[-1]
    assert not misread_frames(turn, track.valid).any()
    repaired, found = repair_flips(track)
    assert not found.any() and repaired is track
