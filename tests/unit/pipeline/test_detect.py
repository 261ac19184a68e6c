"""Detection in two segments: the seam rule on synthetic detections, the split point on real key
frames, and two segments against one pass on a real clip (same frames, same person, every preview
frame kept once)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mocapd.pipeline import detect
from mocapd.pipeline.decode import read_video_info
from mocapd.pipeline.detect import (
    SEAM_AGREE_FRAMES,
    _Seam,
    detect_window,
    same_person,
    split_point_s,
)
from mocapd.pipeline.pose import NUM_LANDMARKS, TrackBuilder
from tests.conftest import shared_file


def _person(x_px: float, size: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A detection (normalised 2D, world, visibility) of a stick figure centred at ``x_px`` of a 1000 px frame."""
    norm = np.zeros((NUM_LANDMARKS, 2))
    rng = np.random.default_rng(int(x_px))
    norm[:, 1] = 0.2 + 0.6 * np.linspace(0, 1, NUM_LANDMARKS) * size
    norm[:, 0] = x_px / 1000 + 0.01 * rng.standard_normal(NUM_LANDMARKS)
    norm[[11, 23], 0] -= 0.02  # left shoulder / hip
    norm[[11, 12], 1] = 0.35  # shoulders above the hips: a torso of 0.2 x 1000 px
    norm[[23, 24], 1] = 0.55
    return norm, np.zeros((NUM_LANDMARKS, 3)), np.ones(NUM_LANDMARKS)


def _segment(dets: list[tuple[float, object]]) -> TrackBuilder:
    seg = TrackBuilder((1000, 1000))
    for t, d in dets:
        seg.add(t, d)  # type: ignore[arg-type]
    return seg


def test_same_person_is_a_few_pixels_another_is_far_and_nan_is_never() -> None:
    a = _person(500)[0] * 1000
    assert same_person(a, a + 3.0)
    assert not same_person(a, _person(800)[0] * 1000)
    b = a.copy()
    b[15] = np.nan
    assert not same_person(a, b)


def test_the_seam_is_where_both_segments_follow_the_same_person_for_several_frames() -> None:
    times = [k / 30 for k in range(20)]
    first = _segment([(t, _person(500)) for t in times])
    # the second segment starts at frame 10 on a passer-by, then finds the same person at frame 14
    second = _segment([(t, _person(800 if k < 14 else 500)) for k, t in enumerate(times) if k >= 10])
    seam = _Seam(first, second, split_index=10)
    cut = seam.find()
    assert cut == (14 + SEAM_AGREE_FRAMES, 4 + SEAM_AGREE_FRAMES)
    spliced = first.spliced(cut[0], second, cut[1])
    assert spliced.times == times  # every frame once, in order


def test_the_seam_waits_for_the_second_segment_and_cuts_where_both_see_nobody() -> None:
    times = [k / 30 for k in range(12)]
    first = _segment([(t, None if k == 8 else _person(500)) for k, t in enumerate(times)])
    second = TrackBuilder((1000, 1000))
    seam = _Seam(first, second, split_index=6)
    assert seam.find() is None  # nothing to compare with yet
    for k in range(6, 8):
        second.add(times[k], _person(900))  # someone else
    assert seam.find() is None
    second.add(times[8], None)
    assert seam.find() == (8, 2)  # both see nobody at frame 8: both start afresh on frame 9


def test_a_frame_only_one_decoder_kept_breaks_the_streak() -> None:
    times = [k / 30 for k in range(10)]
    first = _segment([(t, _person(500)) for t in times])
    second = _segment([(t, _person(500)) for k, t in enumerate(times) if k >= 4 and k != 6])
    cut = _Seam(first, second, split_index=4).find()
    assert cut is not None
    assert first.times[cut[0] - 1] == second.times[cut[1] - 1]
    assert cut[0] == 7 + SEAM_AGREE_FRAMES  # the streak restarts after the missing frame


def _clip_with_key_frames(path: Path, seconds: float, gop: int) -> None:
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        for k in range(int(seconds * 30)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 64, 3), k % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, 30)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_the_split_is_the_key_frame_nearest_the_middle_or_else_the_middle(tmp_path: Path) -> None:
    keyed = tmp_path / "keyed.mp4"
    _clip_with_key_frames(keyed, 8.0, gop=45)  # key frames every 1.5 s
    assert split_point_s(keyed, 0.0, 8.0) == pytest.approx(4.5)
    assert split_point_s(keyed, 1.0, 7.0) == pytest.approx(4.5)  # middle 4.0: 4.5 is nearer than 3.0
    sparse = tmp_path / "sparse.mp4"
    _clip_with_key_frames(sparse, 8.0, gop=300)  # only the first frame is a key frame
    assert split_point_s(sparse, 0.0, 8.0) == pytest.approx(4.0)


@pytest.fixture(scope="module")
def sports2d_one_and_two(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple]:
    path = shared_file("video/sports2d_demo.mp4")
    info = read_video_info(path)
    out = {}
    for segments in (1, 2):
        work = tmp_path_factory.mktemp(f"seg{segments}")
        track, copies = detect_window(
            path, info, 2.0, 6.5, lambda *a, **k: None, copy_dir=work, segments=segments
        )
        assert copies is not None and copies.close()
        assert all(part.raw for part in copies.parts)  # 4.5 s of 960x540 frames: within the raw budget
        out[segments] = (track, list(copies.frames()), len(copies.parts))
    return out


def test_two_segments_give_the_frames_and_the_person_of_one_pass(sports2d_one_and_two: dict) -> None:
    (one, one_frames, one_parts), (two, two_frames, two_parts) = (
        sports2d_one_and_two[1],
        sports2d_one_and_two[2],
    )
    assert (one_parts, two_parts) == (1, 2)
    np.testing.assert_allclose(two.time_s, one.time_s)
    assert int(np.sum(two.valid != one.valid)) <= 2
    both = one.valid & two.valid
    diff = np.linalg.norm(two.landmarks_px[both] - one.landmarks_px[both], axis=2)  # (F, 33) px
    torso = np.linalg.norm(one.landmarks_px[both][:, 11] - one.landmarks_px[both][:, 23], axis=1)
    assert np.median(diff) < 3.0
    assert np.all(np.median(diff, axis=1) < 0.2 * torso)  # never another person
    # the preview copy holds every frame exactly once, with its time, at preview size
    assert [t for t, _ in two_frames] == pytest.approx(list(one.time_s))
    assert two_frames[0][1].shape == one_frames[0][1].shape


def test_a_failed_second_segment_falls_back_to_one_pass(
    sports2d_one_and_two: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(self: detect._SecondSegment) -> None:
        self.error = RuntimeError("decoder lost")

    monkeypatch.setattr(detect._SecondSegment, "run", broken)
    path = shared_file("video/sports2d_demo.mp4")
    track, copies = detect_window(
        path, read_video_info(path), 2.0, 6.5, lambda *a, **k: None, copy_dir=tmp_path, segments=2
    )
    one = sports2d_one_and_two[1][0]
    np.testing.assert_allclose(track.time_s, one.time_s)
    np.testing.assert_allclose(track.landmarks_px, one.landmarks_px)  # exactly the one-pass result
    assert copies is None  # the preview copy lacks the second half: packaging decodes the source again


def test_the_preview_copy_is_raw_within_its_budget_and_h264_beyond(
    sports2d_one_and_two: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from mocapd.pipeline import source_copy

    raw_frames = sports2d_one_and_two[1][1]  # one pass over 2.0-6.5 s: 4.5 s of 960x540 fits 512 MiB
    monkeypatch.setattr(source_copy, "RAW_COPY_BUDGET_BYTES", 0)
    path = shared_file("video/sports2d_demo.mp4")
    _, copies = detect_window(
        path, read_video_info(path), 2.0, 3.0, lambda *a, **k: None, copy_dir=tmp_path, segments=1
    )
    assert copies is not None and [part.raw for part in copies.parts] == [False]
    assert (tmp_path / "preview-source-0").read_bytes()[4:8] == b"ftyp"  # an MP4 file
    h264_frames = list(copies.frames())
    assert len(h264_frames) == 30
    for (t_raw, raw), (t_h264, h264) in zip(raw_frames, h264_frames, strict=False):
        assert t_h264 == pytest.approx(t_raw)
        assert np.mean(np.abs(raw.astype(np.int16) - h264.astype(np.int16))) < 3.0  # near-transparent
