"""Pose: BlazePose on real frames (person in every frame, px in the original frame), and the
identity-switch gate on synthetic tracks."""

from __future__ import annotations

import numpy as np
import pytest

from mocapd.pipeline.decode import iter_frames, read_video_info
from mocapd.pipeline.pose import PoseDetector, detect_poses, mark_identity_switches
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def cam01_track() -> tuple[object, object]:
    path = shared_file("pose2sim_balancing/cam01.mp4")
    info = read_video_info(path)
    frames = ((f.time_s, f.rgb) for f in iter_frames(path, start_s=0.5, end_s=0.75, max_side_px=640))
    track = detect_poses(frames, (info.width_px, info.height_px))
    full = next(iter(iter_frames(path, start_s=0.5, end_s=0.52)))
    return track, full


def test_person_in_every_frame_of_cam01(cam01_track: tuple) -> None:
    track, _ = cam01_track
    assert track.num_frames == 15
    assert track.person.all() and track.valid.all()
    np.testing.assert_allclose(np.diff(track.time_s), 1 / 60, atol=1e-6)
    assert np.isfinite(track.world_m).all() and np.isfinite(track.landmarks_px).all()
    # world landmarks: metric, hip-centred, a standing adult (head above hips: y is down)
    hip = 0.5 * (track.world_m[:, 23] + track.world_m[:, 24])
    assert np.abs(hip).max() < 0.05
    nose_to_ankle_m = np.linalg.norm(track.world_m[:, [27, 28]] - track.world_m[:, [0]], axis=2).max(axis=1)
    assert 1.1 < float(np.median(nose_to_ankle_m)) < 1.8
    assert (track.visibility[:, [11, 12, 23, 24]] > 0.5).all()


def test_pixels_refer_to_the_original_frame(cam01_track: tuple) -> None:
    track, full = cam01_track
    w, h = track.image_size_px
    assert (w, h) == (1080, 1920)
    px = track.landmarks_px[0]  # (33, 2)
    assert 0 < px[:, 0].min() and px[:, 0].max() < w and px[:, 1].max() < h
    # the same frame at full resolution lands on the same pixels (within a few px)
    with PoseDetector() as det:
        result = det.detect(full.rgb)
    assert result is not None
    full_px = result[0] * np.array([w, h])
    body = [11, 12, 23, 24, 25, 26, 27, 28]
    assert np.median(np.linalg.norm(full_px[body] - px[body], axis=1)) < 15.0


def test_no_person_in_a_blank_frame() -> None:
    with PoseDetector() as det:
        assert det.detect(np.full((240, 320, 3), 90, np.uint8)) is None


def _track(hips: list[tuple[float, float]], torso_px: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    f = len(hips)
    px = np.full((f, 33, 2), np.nan)
    person = np.zeros(f, dtype=bool)
    for i, hip in enumerate(hips):
        if np.isnan(hip[0]):
            continue
        person[i] = True
        px[i, [23, 24]] = hip
        px[i, [11, 12]] = (hip[0], hip[1] - torso_px)
    return px, person


def test_identity_switch_frames_are_marked_invalid() -> None:
    main = [(500.0 + 5 * i, 400.0) for i in range(40)]
    other = [(1200.0 - 5 * i, 600.0) for i in range(15)]
    px, person = _track(main + other)
    valid = mark_identity_switches(px, person)
    assert valid[:40].all() and not valid[40:].any()


def test_short_dropout_keeps_the_same_person_but_a_far_reentry_is_rejected() -> None:
    nan = (np.nan, np.nan)
    hips = (
        [(500.0 + 5 * i, 400.0) for i in range(30)] + [nan] * 3 + [(670.0 + 5 * i, 400.0) for i in range(10)]
    )
    hips += [nan] * 2 + [(100.0, 400.0)] * 5
    px, person = _track(hips)
    valid = mark_identity_switches(px, person)
    assert valid[:30].all() and valid[33:43].all()
    assert not valid[45:].any() and not valid[30:33].any()


def test_a_sudden_change_of_size_is_a_switch() -> None:
    px, person = _track([(500.0, 400.0)] * 30)
    px2, _ = _track([(500.0, 400.0)] * 5, torso_px=220.0)
    px = np.concatenate([px, px2])
    valid = mark_identity_switches(px, np.ones(35, dtype=bool))
    assert valid[:30].all() and not valid[30:].any()
