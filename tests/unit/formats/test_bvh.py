"""BVH writer and reader: write-then-read round trips and the CMU originals against their metre copies."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mocapd.formats.bvh import CMU_UNIT_M, read_bvh, write_bvh
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from tests.conftest import shared_file
from tests.support.cmu import cmu_motion

SK = DEFAULT_SKELETON


def _random_motion(frames: int = 50, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    j = SK.num_joints
    quat_xyzw = Rotation.random(frames * j, random_state=seed).as_quat().reshape(frames, j, 4)
    trans = np.broadcast_to(SK.rest_offsets_m, (frames, j, 3)).copy()
    trans[:, 0] = rng.normal(0, 1.0, (frames, 3)) * [1, 1, 0]
    trans[:, 1] += rng.normal(0, 0.05, (frames, 3))
    return Motion(SK, 30.0, trans, quat_xyzw[..., [3, 0, 1, 2]])


def test_write_then_read_reproduces_world_positions() -> None:
    motion = _random_motion()
    data = write_bvh(motion)
    back = read_bvh(data)
    assert back.skeleton.names == SK.names
    assert back.skeleton.parents == SK.parents
    assert back.num_frames == motion.num_frames
    assert back.fps == 30.0
    np.testing.assert_allclose(back.skeleton.rest_offsets_m, SK.rest_offsets_m, atol=1e-7)
    err = np.linalg.norm(back.world_positions_m() - motion.world_positions_m(), axis=-1)
    assert err.max() < 1e-3
    # rotations survive too (up to sign), not only positions
    _, r0 = motion.world_transforms()
    _, r1 = back.world_transforms()
    assert np.abs(np.abs(np.sum(r0 * r1, axis=-1)) - 1.0).max() < 1e-6


def test_written_file_is_y_up_centimetres_with_six_root_and_pelvis_channels() -> None:
    motion = _random_motion(frames=3)
    text = write_bvh(motion).decode("ascii")
    lines = [ln.strip() for ln in text.splitlines()]
    assert lines[0] == "HIERARCHY" and lines[1] == "ROOT root"
    pelvis = lines.index("JOINT pelvis")
    assert lines[pelvis + 2] == "OFFSET 0.000000 95.000000 0.000000"  # 0.95 m up -> Y, in cm
    assert lines[pelvis + 3].startswith("CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
    assert lines[lines.index("JOINT spine_01") + 3] == "CHANNELS 3 Zrotation Xrotation Yrotation"
    ball = lines.index("JOINT ball_l")
    assert lines[ball + 2] == "OFFSET 0.000000 -6.000000 13.000000"  # forward (-Y) -> +Z
    assert text.count("End Site") == 5
    assert "Frames: 3" in text and "Frame Time: 0.0333333333" in text
    assert write_bvh(motion) == text.encode("ascii")  # byte-stable


def test_angles_are_unwrapped_over_time() -> None:
    frames = 90
    angle = np.linspace(0, 4 * np.pi, frames)  # two full turns of the pelvis about Z
    q = np.zeros((frames, SK.num_joints, 4))
    q[..., 0] = 1.0
    q[:, 1] = np.stack([np.cos(angle / 2), 0 * angle, 0 * angle, np.sin(angle / 2)], axis=1)
    trans = np.broadcast_to(SK.rest_offsets_m, (frames, SK.num_joints, 3)).copy()
    motion = Motion(SK, 30.0, trans, q)
    text = write_bvh(motion).decode("ascii")
    rows = np.array([[float(v) for v in ln.split()] for ln in text.split("Frame Time:")[1].splitlines()[1:]])
    pelvis_y_rot = rows[:, 6 + 3 + 2]  # root 6 channels, pelvis positions 3, then Z X Y
    assert np.abs(np.diff(pelvis_y_rot)).max() < 10.0
    back = read_bvh(text.encode())
    assert np.abs(back.world_positions_m() - motion.world_positions_m()).max() < 1e-6


def test_reader_handles_channel_orders_and_end_sites() -> None:
    text = (
        "HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation\n"
        " JOINT B\n {\n  OFFSET 0 100 0\n  CHANNELS 3 Yrotation Xrotation Zrotation\n"
        "  End Site\n  {\n   OFFSET 0 50 0\n  }\n }\n}\n"
        "MOTION\nFrames: 2\nFrame Time: 0.5\n0 0 0 0 0 0 0 0 0\n10 20 30 90 0 0 0 0 90\n"
    )
    m = read_bvh(text.encode(), scale_m=0.01, end_sites=True)
    assert m.skeleton.names == ("A", "B", "B_end")
    assert m.fps == 2.0
    pos = m.world_positions_m()
    np.testing.assert_allclose(pos[0, 1], [0, 0, 1.0], atol=1e-12)  # Y up -> Z up
    np.testing.assert_allclose(pos[1, 0], [0.1, -0.3, 0.2], atol=1e-12)
    # frame 1: A turns 90 deg about X (Y -> Z in Y-up), so B's +Y offset points along +Z (Y-up) = -Y (Z-up)
    np.testing.assert_allclose(pos[1, 1] - pos[1, 0], [0, -1.0, 0], atol=1e-9)
    # B turns 90 deg about its Z (Y-up): its +Y child offset turns to -X
    np.testing.assert_allclose(pos[1, 2] - pos[1, 1], [-0.5, 0, 0], atol=1e-9)
    with pytest.raises(ValueError):
        read_bvh(b"HIERARCHY\nROOT A\n{\n OFFSET 0 0 0\n}\n")
    with pytest.raises(ValueError):
        read_bvh(text.replace("Frames: 2", "Frames: 3").encode())


@pytest.mark.parametrize("take", ["cmu_131_01", "cmu_131_03"])
def test_cmu_original_agrees_with_metre_copy(take: str) -> None:
    original = read_bvh(shared_file(f"bvh/{take}.bvh"))  # unit guessed: CMU units
    metres = read_bvh(shared_file(f"bvh/{take}_scaled_m.bvh"))  # unit guessed: metres
    explicit = read_bvh(shared_file(f"bvh/{take}.bvh"), scale_m=CMU_UNIT_M)
    assert original.fps == metres.fps == 120.0
    assert metres.num_frames >= original.num_frames
    n = original.num_frames
    p0 = original.world_positions_m()
    p1 = metres.world_positions_m()[:n]
    assert np.abs(p0 - p1).max() < 1e-3
    assert np.abs(explicit.world_positions_m() - p0).max() < 1e-12
    assert 0.8 < p0[:, original.skeleton.index("Hips"), 2].mean() < 1.1  # Z up, metres


def test_cmu_solved_motion_round_trips_through_bvh() -> None:
    motion = cmu_motion(shared_file("bvh/cmu_131_02.bvh"))
    back = read_bvh(write_bvh(motion))
    assert back.num_frames == motion.num_frames and back.fps == motion.fps
    assert np.linalg.norm(back.world_positions_m() - motion.world_positions_m(), axis=-1).max() < 1e-3
