"""A 1000 fps source is analysed at a bounded rate: pose on every 17th frame (58.8 a second), the motion
interpolated onto the export rate, and the manifest says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from mocapd.pipeline.settings import JobSettings
from mocapd.worker.produce import produce
from tests.conftest import shared_file
from tests.support.hostile_media import person_clip

pytestmark = pytest.mark.slow


def test_a_1000_fps_clip_buys_at_most_60_detections_a_second(tmp_path: Path) -> None:
    clip = person_clip(tmp_path / "fast.mp4", shared_file("pose2sim_balancing/cam01.mp4"), seconds=0.5, fps=1000)
    out = produce(clip, JobSettings(("default",), 30, "full_body", 0.0, 0.5), tmp_path / "out", lambda s, f: None)
    proc = out.manifest["processing"]
    assert proc["sourceFps"] == 1000 and proc["analysisStep"] == 17
    assert proc["analysisFps"] == pytest.approx(1000 / 17, abs=0.01)
    assert proc["frames"] <= 30  # 0.5 s at 58.8 a second, not 500
    assert proc["framesWithPerson"] >= 25
    assert out.processed_s == pytest.approx(0.5, abs=0.02)
    assert out.manifest["targets"]["default"]["fps"] == 30 and out.manifest["targets"]["default"]["frameCount"] == 15
