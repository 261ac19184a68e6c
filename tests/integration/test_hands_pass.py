"""The hands pass of a `handTracking` job runs beside the body's (`HandsPass`): the same detections as
`detect_hands` in the caller's thread, stopped when the job fails before it needs them."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mocapd.errors import InputFault
from mocapd.pipeline.hands import HandsPass, detect_hands
from mocapd.pipeline.run import analyse_video
from mocapd.pipeline.settings import JobSettings
from tests.conftest import shared_file

pytestmark = pytest.mark.slow


def _hands_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mocapd-hands"]


def test_background_pass_detects_what_the_direct_pass_does() -> None:
    source = shared_file("pose2sim_balancing/cam01.mp4")
    direct = detect_hands(source, 0.5, 0.9)
    background = HandsPass(source, 0.5, 0.9).result()
    assert direct.time_s.size == 24 and np.array_equal(direct.time_s, background.time_s)
    assert np.isfinite(direct.right).all(axis=(1, 2)).sum() >= 12  # the right hand is in view
    assert np.array_equal(direct.left, background.left, equal_nan=True)
    assert np.array_equal(direct.right, background.right, equal_nan=True)
    assert direct.image_size_px == background.image_size_px == (720, 1280)


def test_cancel_stops_the_pass_and_result_then_refuses() -> None:
    source = shared_file("video/sports2d_demo.mp4")
    started = time.monotonic()
    hands = HandsPass(source, 0.0, 100.0)
    hands.cancel()
    assert time.monotonic() - started < 4.0  # Holistic on its 230 frames takes over 7 s
    assert not _hands_threads()
    with pytest.raises(RuntimeError, match="cancelled"):
        hands.result()


def test_an_unreadable_source_fails_the_pass(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputFault):
        HandsPass(bad, 0.0, 1.0).result()


def test_a_job_failing_in_preflight_stops_its_hands_pass(tmp_path: Path) -> None:
    source = tmp_path / "empty.mp4"
    with av.open(str(source), mode="w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for k in range(150):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 40, np.uint8), format="rgb24")
            frame.pts, frame.time_base = k, Fraction(1, 30)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    settings = JobSettings(("default",), 30, "full_body", 0.0, 5.0, hand_tracking=True)
    with pytest.raises(InputFault) as err:
        analyse_video(source, settings, lambda *_: None)
    assert err.value.code == "no_person_detected"
    assert not _hands_threads()
