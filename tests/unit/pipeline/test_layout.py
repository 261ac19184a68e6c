"""Landmark layouts and the detector interface: the pipeline reads landmarks by name, and a second
pose model plugs in as a registered `Detector` with its own layout."""

from __future__ import annotations

from types import TracebackType

import numpy as np
import pytest
from numpy.typing import NDArray

from mocapd.pipeline import pose
from mocapd.pipeline.layout import BLAZEPOSE_33, HAND_21, LandmarkLayout
from mocapd.pipeline.pose import Detection, PoseModel, detect_poses, open_detector


def test_blazepose_layout_is_mediapipes() -> None:
    assert BLAZEPOSE_33.num_landmarks == 33 and len(BLAZEPOSE_33.connections) == 35
    assert BLAZEPOSE_33.indices("nose", "left_shoulder", "right_hip", "right_foot_index") == (0, 11, 24, 32)
    assert BLAZEPOSE_33.pairs("hip", "ankle") == ((23, 24), (27, 28))
    assert [BLAZEPOSE_33.side(i) for i in (0, 11, 12, 9, 10)] == [0, 1, -1, 1, -1]
    assert (11, 13) in BLAZEPOSE_33.connection_indices


def test_a_holistic_layout_keeps_the_body_indices() -> None:
    hands = tuple(f"{side}_hand_{k}" for side in ("left", "right") for k in range(21))
    holistic = LandmarkLayout(
        "holistic_75", BLAZEPOSE_33.names + hands, BLAZEPOSE_33.connections + (("left_wrist", "left_hand_0"),)
    )
    assert holistic.num_landmarks == 75
    assert all(holistic.index(n) == BLAZEPOSE_33.index(n) for n in BLAZEPOSE_33.names)
    assert holistic.index("right_hand_20") == 74


def test_a_layout_refuses_repeated_or_unknown_names() -> None:
    with pytest.raises(ValueError, match="repeat"):
        LandmarkLayout("bad", ("a", "a"), ())
    with pytest.raises(ValueError, match="unknown"):
        LandmarkLayout("bad", ("a", "b"), (("a", "c"),))
    with pytest.raises(KeyError, match="no landmark"):
        BLAZEPOSE_33.index("left_tail")


class ScriptedDetector:
    """A second model: the same 33-landmark layout, a person standing still in the middle of the frame."""

    layout = BLAZEPOSE_33

    def __init__(self, model: PoseModel) -> None:
        self.model = model
        self.closed = False
        rng = np.random.default_rng(0)
        self.norm = 0.4 + 0.2 * rng.random((33, 2))
        self.world = rng.normal(0.0, 0.3, (33, 3))

    def detect(self, rgb: NDArray[np.uint8]) -> Detection | None:
        if rgb.mean() < 10:  # a black frame: nobody
            return None
        return self.norm, self.world, np.full(33, 0.9)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> ScriptedDetector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def test_a_registered_detector_runs_the_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(pose.DETECTORS, "scripted", ScriptedDetector)
    detector = open_detector(PoseModel(name="scripted_v1", family="scripted", label="Scripted"))
    frames = [(k / 30, np.full((48, 64, 3), 0 if k == 2 else 128, np.uint8)) for k in range(5)]
    track = detect_poses(frames, (640, 480), detector=detector)
    assert track.person.tolist() == [True, True, False, True, True]
    assert isinstance(detector, ScriptedDetector)
    np.testing.assert_allclose(track.landmarks_px[0], detector.norm * [640, 480])
    assert track.valid.tolist() == track.person.tolist()


def test_an_unknown_detector_is_named() -> None:
    with pytest.raises(LookupError, match="no pose detector for 'openpose'"):
        open_detector(PoseModel(name="openpose_25", family="openpose"))


def test_the_hand_layout_is_mediapipes() -> None:
    assert HAND_21.num_landmarks == 21 and len(HAND_21.connections) == 21
    assert HAND_21.indices("wrist", "thumb_tip", "index_finger_mcp", "middle_finger_mcp", "pinky_tip") == (0, 4, 5, 9, 20)
