"""The preview video: encode short synthetic clips, decode them back with PyAV and look at the pixels."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from mocapd.errors import SystemFault
from mocapd.formats.preview import encode_motion_preview, encode_preview, preview_layout
from mocapd.formats.render3d import (
    BACKGROUND_RGB,
    CENTRE_RGB,
    LEFT_RGB,
    RIGHT_RGB,
    OrthoCamera,
    draw_hands_2d,
    render_figure_panel,
    sample_at_time,
)
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion

SRC_W, SRC_H = 320, 240
N_FRAMES = 10
FPS = 30.0
GREY = 128


def _walking_motion(num_frames: int, fps: float, distance_m: float) -> Motion:
    """The rest pose sliding ``distance_m`` along +X over the clip (root and pelvis move together)."""
    j = DEFAULT_SKELETON.num_joints
    trans = np.tile(DEFAULT_SKELETON.rest_offsets_m, (num_frames, 1, 1))  # (F, J, 3)
    trans[:, 0, 0] = np.linspace(0.0, distance_m, num_frames)
    quat = np.zeros((num_frames, j, 4))
    quat[..., 0] = 1.0
    return Motion(DEFAULT_SKELETON, fps, trans, quat)


def _landmarks(num_frames: int) -> np.ndarray:
    """Left shoulder-elbow horizontal at y = 60 and right shoulder-elbow at y = 180; the left elbow vanishes in the second half."""
    lms = np.full((num_frames, 33, 2), np.nan)
    lms[:, 11] = (60.0, 60.0)  # left shoulder
    lms[:, 13] = (160.0, 60.0)  # left elbow
    lms[:, 12] = (60.0, 180.0)  # right shoulder
    lms[:, 14] = (160.0, 180.0)  # right elbow
    lms[num_frames // 2 :, 13] = np.nan
    return lms


def _frames(num_frames: int) -> Iterator[np.ndarray]:
    for _ in range(num_frames):
        yield np.full((SRC_H, SRC_W, 3), GREY, dtype=np.uint8)


@dataclass(frozen=True)
class _Robot:
    """Honours the drawing part of RobotMotion's interface: fps, body positions, parents, names."""

    fps: float
    body_positions_m: np.ndarray  # (F, B, 3)
    body_parents: tuple[int, ...]
    body_names: tuple[str, ...]


def _robot(num_frames: int, fps: float) -> _Robot:
    pelvis = np.array([0.0, 0.0, 0.79])
    bodies = np.array([
        pelvis,
        pelvis + (0.10, 0.0, 0.0), pelvis + (0.10, 0.0, -0.40), pelvis + (0.10, 0.0, -0.76),
        pelvis + (-0.10, 0.0, 0.0), pelvis + (-0.10, 0.0, -0.40), pelvis + (-0.10, 0.0, -0.76),
        pelvis + (0.0, 0.0, 0.40),
    ])  # fmt: skip
    names = (
        "pelvis",
        "left_hip",
        "left_knee",
        "left_ankle",
        "right_hip",
        "right_knee",
        "right_ankle",
        "torso",
    )
    return _Robot(fps, np.tile(bodies, (num_frames, 1, 1)), (-1, 0, 1, 2, 0, 4, 5, 0), names)


def _decode(path: Path) -> tuple[str, str, list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream.codec_context.name, stream.codec_context.pix_fmt, frames, float(stream.average_rate)


@pytest.fixture(scope="module")
def human_preview(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, tuple[str, str, list[np.ndarray], float]]:
    out = tmp_path_factory.mktemp("preview") / "preview.mp4"
    encode_preview(_frames(N_FRAMES), _landmarks(N_FRAMES), _walking_motion(N_FRAMES, FPS, 5.0), out, fps=FPS)
    return out, _decode(out)


def _is_left(px: np.ndarray) -> bool:
    r, _, b = (int(v) for v in px)
    return b > r + 80


def _is_right(px: np.ndarray) -> bool:
    r, _, b = (int(v) for v in px)
    return r > b + 80


def test_preview_is_h264_yuv420p_with_every_frame_at_the_layout_size(human_preview) -> None:
    _, (codec, pix_fmt, frames, rate) = human_preview
    layout = preview_layout(SRC_W, SRC_H, with_robot=False)
    assert codec == "h264"
    assert pix_fmt == "yuv420p"
    assert len(frames) == N_FRAMES
    assert frames[0].shape == (layout.height_px, layout.width_px, 3) == (240, 320 + 240, 3)
    assert rate == pytest.approx(FPS)


def test_preview_is_faststart(human_preview) -> None:
    data = human_preview[0].read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_detected_skeleton_is_drawn_over_the_source_by_side_and_missing_landmarks_are_skipped(
    human_preview,
) -> None:
    _, (_, _, frames, _) = human_preview
    first, last = frames[0], frames[-1]
    assert _is_left(first[60, 110])  # middle of the left upper arm
    assert _is_right(first[180, 110])  # middle of the right upper arm
    assert np.abs(first[120, 250].astype(int) - GREY).max() < 12  # untouched source away from the lines
    # the left elbow is NaN in the second half: no left arm line there, the right one stays
    assert np.abs(last[60, 110].astype(int) - GREY).max() < 12
    assert _is_right(last[180, 110])


def test_3d_panel_shows_both_sides_of_the_body_and_follows_the_root(human_preview) -> None:
    _, (_, _, frames, _) = human_preview
    for frame in (frames[0], frames[-1]):
        panel = frame[:, SRC_W:].astype(int)  # (240, 240, 3)
        r, b = panel[..., 0], panel[..., 2]
        left = b > r + 80
        right = r > b + 80
        assert left.sum() > 30 and right.sum() > 30
        # the body moved 5 m along X, yet it stays in the middle of the panel
        cols = np.flatnonzero((left | right).any(axis=0))
        assert 0.3 * panel.shape[1] < cols.mean() < 0.7 * panel.shape[1]


def test_robot_panel_is_drawn_beside_when_given(tmp_path: Path) -> None:
    out = tmp_path / "robot.mp4"
    n = 4
    encode_preview(
        _frames(n), _landmarks(n), _walking_motion(n, FPS, 0.0), out, fps=FPS, robot=_robot(n, 50.0)
    )
    _, _, frames, _ = _decode(out)
    layout = preview_layout(SRC_W, SRC_H, with_robot=True)
    assert len(frames) == n
    assert frames[0].shape == (layout.height_px, layout.width_px, 3) == (240, 320 + 2 * 240, 3)
    robot_panel = frames[0][:, SRC_W + layout.panel_width_px :]
    assert any(_is_left(px) for px in robot_panel.reshape(-1, 3)[::7])
    assert any(_is_right(px) for px in robot_panel.reshape(-1, 3)[::7])


def test_no_frames_is_a_packaging_fault(tmp_path: Path) -> None:
    with pytest.raises(SystemFault) as info:
        encode_preview(
            iter(()), np.full((0, 33, 2), np.nan), _walking_motion(2, FPS, 0.0), tmp_path / "x.mp4", fps=FPS
        )
    assert info.value.code == "packaging_failed"


def test_bad_landmark_shape_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="landmarks_px"):
        encode_preview(
            _frames(1), np.zeros((1, 17, 2)), _walking_motion(2, FPS, 0.0), tmp_path / "x.mp4", fps=FPS
        )


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (720, 1280, 720)),  # scaled down to 720 tall; 3D panel square
        ((1080, 1920), (720, 404, 432)),  # portrait: 405 -> even 404; panel at least 0.6 h
        ((320, 240), (240, 320, 240)),  # never scaled up
        ((1768, 994), (720, 1280, 720)),
    ],
)
def test_layout_is_even_and_at_most_720_tall(size: tuple[int, int], expected: tuple[int, int, int]) -> None:
    layout = preview_layout(*size, with_robot=False)
    assert (layout.height_px, layout.source_width_px, layout.panel_width_px) == expected
    assert layout.width_px % 2 == 0 and layout.height_px % 2 == 0


def test_motion_is_sampled_at_frame_time_by_linear_interpolation() -> None:
    fps = 60.0
    t = np.arange(7) / fps
    positions = np.stack([t, 2 * t, np.zeros_like(t)], axis=-1)[:, None, :]  # (7, 1, 3): x = t, y = 2 t
    np.testing.assert_allclose(sample_at_time(positions, fps, 1 / 30), [[1 / 30, 2 / 30, 0.0]])  # frame 2
    np.testing.assert_allclose(sample_at_time(positions, fps, 0.025), [[0.025, 0.05, 0.0]])  # between frames
    np.testing.assert_allclose(sample_at_time(positions, fps, 5.0), positions[-1])  # past the end: last frame
    np.testing.assert_allclose(sample_at_time(positions, fps, -1.0), positions[0])


def test_orthographic_camera_puts_the_centre_mid_panel_and_the_characters_left_on_the_image_right() -> None:
    cam = OrthoCamera(azimuth_rad=0.0, elevation_rad=0.0, view_height_m=2.0)
    centre = np.array([1.0, 2.0, 0.9])
    px = cam.project(
        np.array([centre, centre + (0.5, 0.0, 0.0), centre + (0.0, 0.0, 0.5)]), centre, (200, 300)
    )
    np.testing.assert_allclose(px[0, :2], [150.0, 100.0])
    np.testing.assert_allclose(px[1, :2], [150.0 + 50.0, 100.0])  # +X (the character's left) -> image right
    np.testing.assert_allclose(px[2, :2], [150.0, 100.0 - 50.0])  # up -> image up


@pytest.mark.parametrize("elevation_deg", [12.0, 0.0, 35.0])
def test_a_snapped_centre_moves_the_ground_by_whole_pixels_and_less_than_half_a_pixel(elevation_deg: float) -> None:
    """The follow camera's centre is snapped so the ground grid shifts by whole pixels between frames
    (the encoder then predicts it exactly) and nothing moves by more than half a pixel."""
    cam = OrthoCamera(azimuth_rad=np.radians(-30.0), elevation_rad=np.radians(elevation_deg), view_height_m=2.6)
    size = (540, 540)
    rng = np.random.default_rng(7)
    ground = np.array([[0.0, 0.0, 0.0], [1.3, -0.7, 0.0], [-2.0, 2.5, 0.0]])  # (3, 3) points on z = 0
    fractions = []
    for _ in range(50):
        centre = np.array([*rng.uniform(-3.0, 3.0, 2), 0.9])
        snapped = cam.snap_centre(centre, size[0])
        assert snapped[2] == centre[2]
        before, after = cam.project(ground, centre, size), cam.project(ground, snapped, size)
        assert np.all(np.abs(after[:, :2] - before[:, :2]) <= 0.5 + 1e-9)
        fractions.append(after[:, :2] - np.floor(after[:, :2]))
    spread = np.ptp(np.array(fractions), axis=0)  # (3, 2): every frame has the same sub-pixel phase
    assert np.all(np.minimum(spread, 1.0 - spread) < 1e-6)
    assert np.array_equal(cam.snap_centre(np.array([np.nan, 0.0, 0.9]), 540), np.array([np.nan, 0.0, 0.9]), equal_nan=True)


def test_figure_panel_draws_bones_where_they_project_coloured_by_side() -> None:
    cam = OrthoCamera(azimuth_rad=0.0, elevation_rad=0.0, view_height_m=2.0)
    points = np.array([[0.0, 0.0, 1.0], [0.2, 0.0, 1.0], [0.6, 0.0, 1.0], [-0.2, 0.0, 1.0], [-0.6, 0.0, 1.0]])
    img = render_figure_panel(
        points,
        [-1, 0, 1, 0, 3],
        ["spine", "upperarm_l", "hand_l", "upperarm_r", "hand_r"],
        size_px=(200, 200),
        centre_m=np.array([0.0, 0.0, 1.0]),
        camera=cam,
    )
    assert tuple(img[100, 140]) == LEFT_RGB  # 0.4 m to the character's left: 40 px right of the centre
    assert tuple(img[100, 60]) == RIGHT_RGB
    assert tuple(img[100, 110]) == tuple(img[100, 90]) == CENTRE_RGB  # spine to shoulder: a midline bone
    assert tuple(img[60, 100]) == BACKGROUND_RGB


def _top_of_figure_row(frame: np.ndarray) -> int:
    """The highest image row of the 3D panel holding a side-coloured (left or right) pixel."""
    panel = frame[:, SRC_W:].astype(int)
    coloured = np.abs(panel[..., 0] - panel[..., 2]) > 80  # (h, w)
    return int(np.flatnonzero(coloured.any(axis=1))[0])


def test_motion_at_another_rate_is_shown_at_the_frame_time(tmp_path: Path) -> None:
    """Motion at 120 fps, video at 30 fps: the body is lifted 0.5 m from 1/3 s to 2/3 s of the clip."""
    n_video, motion_fps = 30, 120.0
    motion = _walking_motion(120, motion_fps, 0.0)
    lifted = motion.local_translation_m.copy()
    lifted[40:80, 0, 2] += 0.5  # (F, J, 3): the root carries everything up
    motion = Motion(motion.skeleton, motion_fps, lifted, motion.local_quat_wxyz)
    out = tmp_path / "rates.mp4"
    encode_preview(_frames(n_video), _landmarks(n_video), motion, out, fps=30.0)
    _, _, frames, _ = _decode(out)
    px_per_m = SRC_H / 2.6  # the human camera shows 2.6 m over the panel height
    down_before, up, down_after = (_top_of_figure_row(frames[k]) for k in (5, 15, 25))  # t = 1/6, 1/2, 5/6 s
    assert abs(down_before - down_after) <= 2
    assert down_before - up == pytest.approx(0.5 * px_per_m * np.cos(np.radians(12.0)), abs=4)


def test_frames_are_streamed_not_collected(tmp_path: Path) -> None:
    """While frame k is produced, frames older than k - 2 must already have been released (refcounting frees them)."""
    refs: list[weakref.ref[np.ndarray]] = []
    leaked: list[int] = []

    def frames() -> Iterator[np.ndarray]:
        for k in range(24):
            leaked.extend(i for i, r in enumerate(refs[: max(0, k - 2)]) if r() is not None)
            frame = np.full((SRC_H, SRC_W, 3), GREY, dtype=np.uint8)
            refs.append(weakref.ref(frame))
            yield frame

    encode_preview(frames(), _landmarks(24), _walking_motion(24, FPS, 0.0), tmp_path / "s.mp4", fps=FPS)
    assert len(refs) == 24
    assert leaked == []


# -- hands (handTracking) ------------------------------------------------------------------------------


def _hands(num_frames: int) -> np.ndarray:
    """The left hand laid out flat to the right of x = 200 around y = 60 (each finger a horizontal row
    4 px below the last, 10 px between joints); the right hand the same around y = 180."""
    hand = np.full((21, 2), np.nan)
    hand[0] = (200.0, 70.0)  # wrist
    for f in range(5):  # thumb, index, middle, ring, pinky: points 1 + 4 f .. 4 + 4 f
        for k in range(4):
            hand[1 + 4 * f + k] = (210.0 + 10.0 * k, 52.0 + 4.0 * f)
    both = np.stack([hand, hand + (0.0, 120.0)])  # (2, 21, 2)
    return np.tile(both, (num_frames, 1, 1, 1))  # (F, 2, 21, 2)


def test_hand_landmarks_are_drawn_thin_in_their_sides_colour() -> None:
    img = np.full((SRC_H, SRC_W, 3), GREY, dtype=np.uint8)
    hands = _hands(1)[0]
    hands[1, 7] = np.nan  # the right hand is not fully seen: it is not drawn at all
    draw_hands_2d(img, hands, thickness_px=1)
    assert np.abs(img[60, 235].astype(int) - LEFT_RGB).max() < 40  # the middle finger, between two joints
    # 4 px outside the outer fingers (thumb at y = 52, pinky at 68): untouched, the lines are thin
    assert np.abs(img[[48, 72], 235].astype(int) - GREY).max() < 12
    assert not np.any(img[110:240] != GREY)  # nothing of the right hand
    assert np.any(img[40:80, 195:245] != GREY)


def test_preview_draws_the_hands_only_where_given(tmp_path: Path) -> None:
    """Hands in the first half of the clip, none (NaN) in the second: the second half looks like a
    preview made without hands, the first half shows them in the side colours."""
    hands = _hands(N_FRAMES)
    hands[N_FRAMES // 2 :] = np.nan
    with_hands, without = tmp_path / "hands.mp4", tmp_path / "plain.mp4"
    motion = _walking_motion(N_FRAMES, FPS, 0.0)
    encode_preview(_frames(N_FRAMES), _landmarks(N_FRAMES), motion, with_hands, fps=FPS, hands_px=hands)
    encode_preview(_frames(N_FRAMES), _landmarks(N_FRAMES), motion, without, fps=FPS)
    a, b = _decode(with_hands)[2], _decode(without)[2]
    assert _is_left(a[1][56, 235]) and _is_right(a[1][176, 235])  # the index fingers
    assert np.abs(b[1][56, 235].astype(int) - GREY).max() < 12
    for k in range(N_FRAMES // 2 + 1, N_FRAMES):
        assert np.abs(a[k].astype(int) - b[k].astype(int)).max() < 12
    with pytest.raises(ValueError, match="hands_px"):
        encode_preview(_frames(2), _landmarks(2), motion, tmp_path / "x.mp4", fps=FPS, hands_px=hands[:, 0])


def test_finger_bones_are_drawn_thin_in_the_3d_panel_and_a_skeleton_without_them_is_unchanged() -> None:
    cam = OrthoCamera(azimuth_rad=0.0, elevation_rad=0.0, view_height_m=2.0)
    points = np.array([[0.0, 0.0, 1.0], [0.6, 0.0, 1.0], [0.6, 0.0, 0.4]])  # a hand joint, a finger below it
    names = ["spine", "hand_l", "index_01_l"]
    kwargs = {"size_px": (200, 200), "centre_m": np.array([0.0, 0.0, 1.0]), "camera": cam}
    body = render_figure_panel(points, [-1, 0, 1], names, **kwargs)
    fine = render_figure_panel(points, [-1, 0, 1], names, small=[False, False, True], **kwargs)
    # the finger bone runs down the column x = 160 from y = 100 to 160
    assert np.abs(fine[130, 160].astype(int) - LEFT_RGB).max() < 30
    assert tuple(fine[130, 162]) == BACKGROUND_RGB != tuple(body[130, 162])  # thin where a body bone is wide
    assert np.array_equal(fine[:, :150], body[:, :150])  # the rest of the figure as before
    assert np.array_equal(render_figure_panel(points, [-1, 0, 1], names, small=[False] * 3, **kwargs), body)


def test_the_3d_figure_flags_exactly_the_finger_joints() -> None:
    from mocapd.formats.preview import _human_track
    from mocapd.pipeline.fingers import FINGER_NAMES, with_fingers

    plain = _walking_motion(4, FPS, 0.0)
    assert _human_track(plain).small is None
    track = _human_track(with_fingers(plain, None, None))
    assert track.small is not None
    assert [n for n, s in zip(track.names, track.small, strict=True) if s] == list(FINGER_NAMES)


def test_a_motion_alone_is_previewed_without_a_source_panel(tmp_path: Path) -> None:
    """A re-export has no video: square 3D panels only, every 2nd frame of a 60 fps motion, the figure
    following the motion (its pelvis rises 0.5 m in the second half)."""
    motion = _walking_motion(40, 60.0, 0.0)
    lifted = motion.local_translation_m.copy()
    lifted[20:, 0, 2] += 0.5  # (F, J, 3)
    motion = Motion(motion.skeleton, 60.0, lifted, motion.local_quat_wxyz)
    out = tmp_path / "motion_only.mp4"
    encode_motion_preview(motion, out, max_height_px=240)
    codec, pix_fmt, frames, rate = _decode(out)
    assert (codec, pix_fmt, rate) == ("h264", "yuv420p", 30.0)
    assert len(frames) == 20 and frames[0].shape == (240, 240, 3)

    def top(frame: np.ndarray) -> int:
        coloured = np.abs(frame[..., 0].astype(int) - frame[..., 2].astype(int)) > 80
        return int(np.flatnonzero(coloured.any(axis=1))[0])

    assert top(frames[2]) - top(frames[15]) == pytest.approx(0.5 * 240 / 2.6 * np.cos(np.radians(12.0)), abs=4)
