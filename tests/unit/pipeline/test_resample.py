"""Resampling: frame counts, exactness at integer ratios, slerp against scipy's Slerp."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from mocapd.pipeline.resample import resample_motion
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion

SK = DEFAULT_SKELETON
J = SK.num_joints


def _motion(frames: int, fps: float, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    rotvec = np.cumsum(rng.normal(0, 0.05, (frames, J, 3)), axis=0)  # smooth-ish random walk
    q = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_quat().reshape(frames, J, 4)[..., [3, 0, 1, 2]]
    q[1::2] *= -1.0  # sign flips must not matter
    trans = np.broadcast_to(SK.rest_offsets_m, (frames, J, 3)).copy()
    trans[:, 0] = np.cumsum(rng.normal(0, 0.01, (frames, 3)), axis=0)
    return Motion(SK, fps, trans, q)


@pytest.mark.parametrize(("frames", "fps_in", "fps_out", "expected"), [
    (120, 120.0, 30.0, 30), (994, 120.0, 30.0, 248), (994, 120.0, 24.0, 199), (100, 30.0, 60.0, 200),
    (1, 30.0, 120.0, 4), (7, 30.0, 30.0, 7),
])
def test_frame_count_matches_duration(frames: int, fps_in: float, fps_out: float, expected: int) -> None:
    out = resample_motion(_motion(frames, fps_in), fps_out)
    assert out.num_frames == expected
    assert out.fps == fps_out
    assert out.duration_s == pytest.approx(frames / fps_in, abs=0.5 / fps_out)


def test_integer_downsampling_copies_frames_exactly() -> None:
    src = _motion(121, 120.0)
    out = resample_motion(src, 30.0)
    np.testing.assert_array_equal(out.local_quat_wxyz, src.local_quat_wxyz[::4][: out.num_frames])
    np.testing.assert_array_equal(out.local_translation_m, src.local_translation_m[::4][: out.num_frames])


def test_integer_upsampling_keeps_source_frames_and_slerps_between() -> None:
    src = _motion(20, 30.0, seed=1)
    out = resample_motion(src, 60.0)
    np.testing.assert_array_equal(out.local_quat_wxyz[::2], src.local_quat_wxyz)
    mid = out.local_quat_wxyz[1:-1:2]  # (19, J, 4), halfway between source frames
    for j in range(J):
        q = src.local_quat_wxyz[:, j][:, [1, 2, 3, 0]]
        ref = Slerp(np.arange(20.0), Rotation.from_quat(q))(np.arange(19) + 0.5).as_quat()
        ours = mid[:, j][:, [1, 2, 3, 0]]
        assert np.abs(np.abs(np.sum(ref * ours, axis=1)) - 1.0).max() < 1e-9
    np.testing.assert_allclose(
        out.local_translation_m[1:-1:2], 0.5 * (src.local_translation_m[:-1] + src.local_translation_m[1:])
    )
    np.testing.assert_array_equal(out.local_quat_wxyz[-1], src.local_quat_wxyz[-1])  # holds past the end


def test_non_integer_ratio_matches_scipy_slerp() -> None:
    src = _motion(50, 30.0, seed=2)
    out = resample_motion(src, 24.0)
    times = np.arange(out.num_frames) / 24.0 * 30.0
    q = src.local_quat_wxyz[:, 5][:, [1, 2, 3, 0]]
    ref = Slerp(np.arange(50.0), Rotation.from_quat(q))(np.clip(times, 0, 49)).as_quat()
    assert np.abs(np.abs(np.sum(ref * out.local_quat_wxyz[:, 5][:, [1, 2, 3, 0]], axis=1)) - 1.0).max() < 1e-9
    with pytest.raises(ValueError):
        resample_motion(src, 0.0)
