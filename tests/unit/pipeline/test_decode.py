"""Decode: real timestamps (VFR included), trim window, rotation metadata, error conversion."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mocapd.errors import InputFault
from mocapd.pipeline.decode import iter_frames, read_video_info
from tests.conftest import shared_file


def _write_clip(path: Path, times_s: list[float], *, rotation_deg: int = 0, codec: str = "libx264") -> None:
    """A 64x32 clip whose top-left quadrant is red; frame k carries 2k in the green channel."""
    container = av.open(str(path), mode="w")
    stream = container.add_stream(codec, rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    stream.time_base = Fraction(1, 1000)
    stream.codec_context.time_base = Fraction(1, 1000)
    if rotation_deg:
        stream.set_display_rotation(rotation_deg)
    for k, t in enumerate(times_s):
        img = np.zeros((32, 64, 3), np.uint8)
        img[:16, :32, 0] = 255
        img[:, :, 1] = 2 * k
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = int(round(t * 1000))
        frame.time_base = Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def test_variable_frame_rate_times_come_from_pts(tmp_path: Path) -> None:
    times = [0.0, 0.033, 0.050, 0.120, 0.200, 0.210, 0.300]
    path = tmp_path / "vfr.mp4"
    _write_clip(path, times)
    got = [f.time_s for f in iter_frames(path)]
    np.testing.assert_allclose(got, times, atol=1e-3)


def test_trim_window_is_half_open_and_seeks(tmp_path: Path) -> None:
    times = [k / 30 for k in range(90)]
    path = tmp_path / "cfr.mp4"
    _write_clip(path, times)
    frames = list(iter_frames(path, start_s=1.0, end_s=2.0))
    assert len(frames) == 30
    assert frames[0].time_s == pytest.approx(1.0, abs=1e-3)
    assert frames[-1].time_s < 2.0
    assert [f.index for f in frames] == list(range(30))
    # the green channel encodes the source index: the first frame is source frame 30
    assert frames[0].rgb[20, 50, 1] == pytest.approx(2 * 30, abs=6)


@pytest.mark.parametrize(
    ("rotation_deg", "red_corner"), [(90, "bottom_left"), (-90, "top_right"), (180, "bottom_right")]
)
def test_rotation_metadata_is_applied(tmp_path: Path, rotation_deg: int, red_corner: str) -> None:
    path = tmp_path / "rot.mp4"
    _write_clip(path, [k / 30 for k in range(3)], rotation_deg=rotation_deg)
    info = read_video_info(path)
    rgb = next(iter(iter_frames(path))).rgb
    if rotation_deg % 180:
        assert (info.width_px, info.height_px) == (32, 64)
        assert rgb.shape == (64, 32, 3)
    else:
        assert rgb.shape == (32, 64, 3)
    h, w = rgb.shape[:2]
    corners = {
        "top_left": rgb[: h // 4, : w // 4, 0],
        "top_right": rgb[: h // 4, -w // 4 :, 0],
        "bottom_left": rgb[-h // 4 :, : w // 4, 0],
        "bottom_right": rgb[-h // 4 :, -w // 4 :, 0],
    }
    for name, patch in corners.items():
        assert (patch.mean() > 200) == (name == red_corner), name


def test_downscale_keeps_aspect(tmp_path: Path) -> None:
    path = tmp_path / "big.mp4"
    _write_clip(path, [0.0, 0.1])
    rgb = next(iter(iter_frames(path, max_side_px=32))).rgb
    assert rgb.shape == (16, 32, 3)


def test_not_a_video_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"this is not a video" * 100)
    with pytest.raises(InputFault) as err:
        list(iter_frames(path))
    assert err.value.code == "source_unreadable"


def test_audio_only_file_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "audio.m4a"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("aac", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 8000
    for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    with pytest.raises(InputFault) as err:
        read_video_info(path)
    assert err.value.code == "source_unsupported"


@pytest.mark.parametrize("name", ["pose2sim_balancing/cam01.mp4", "pose2sim_balancing/cam02.mp4"])
def test_real_clips_h264_and_vp9(name: str) -> None:
    path = shared_file(name)
    info = read_video_info(path)
    assert (info.width_px, info.height_px) == (1080, 1920)
    assert info.fps == pytest.approx(60.0)
    frames = list(iter_frames(path, start_s=0.5, end_s=0.6))
    assert [round(f.time_s * 60) for f in frames] == [30, 31, 32, 33, 34, 35]
    assert frames[0].rgb.shape == (1920, 1080, 3)


def test_a_second_size_is_scaled_from_the_same_decode_and_turned_like_the_first(tmp_path: Path) -> None:
    import cv2

    path = tmp_path / "rot2.mp4"
    _write_clip(path, [k / 30 for k in range(3)], rotation_deg=90)
    frames = list(iter_frames(path, second_max_side_px=32))
    assert [f.rgb.shape for f in frames] == [(64, 32, 3)] * 3  # display orientation, full size
    for f in frames:
        assert f.second_yuv420 is not None and f.second_yuv420.shape == (48, 16)  # I420 of 32 x 16
        second = cv2.cvtColor(f.second_yuv420, cv2.COLOR_YUV2RGB_I420)  # (32, 16, 3): long side 32
        assert second.shape == (32, 16, 3)
        assert second[-8:, :4, 0].mean() > 200 and second[:8, -4:, 0].mean() < 50  # red corner bottom-left
        assert abs(int(second[..., 1].mean()) - int(f.rgb[..., 1].mean())) <= 3  # the same frame
    assert next(iter(iter_frames(path))).second_yuv420 is None


def test_a_second_size_larger_than_the_source_keeps_the_source_size(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 66, 34, "yuv420p"
    frame = av.VideoFrame.from_ndarray(np.zeros((34, 66, 3), np.uint8), format="rgb24")
    for packet in [*stream.encode(frame), *stream.encode()]:
        container.mux(packet)
    container.close()
    first = next(iter(iter_frames(path, second_max_side_px=33)))
    assert first.second_yuv420 is not None and first.second_yuv420.shape == (
        24,
        32,
    )  # 32 x 16, halved to even
