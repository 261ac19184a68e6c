"""modelQuality "high" runs BlazePose Heavy from the models directory (not the wheel, nothing downloaded
at job time): its landmarks differ from Full's on the same frames but describe the same pose, and the
manifest records the model and its SHA-256. A worker without the model fails the attempt clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mocapd.errors import SystemFault
from mocapd.model_files import MODELS
from mocapd.pipeline.settings import JobSettings
from mocapd.worker.produce import produce
from tests.conftest import shared_file
from tests.support.models import heavy_models_dir

pytestmark = pytest.mark.slow


def test_high_quality_runs_heavy_and_says_so(tmp_path: Path) -> None:
    source = shared_file("pose2sim_balancing/cam01.mp4")
    models = heavy_models_dir()
    window = (0.5, 1.0)
    std = produce(source, JobSettings(("default",), 30, "full_body", *window, focal_length_px=1681.0),
                  tmp_path / "std", lambda *_: None)
    high = produce(source, JobSettings(("default",), 30, "full_body", *window, focal_length_px=1681.0,
                                       model_quality="high", models_dir=str(models)),
                   tmp_path / "high", lambda *_: None)
    assert std.manifest["processing"]["detector"].endswith("BlazePose Full")
    assert high.manifest["processing"]["detector"].endswith("BlazePose Heavy")
    assert high.manifest["processing"]["models"] == [
        {"name": "blazepose_heavy", "sha256": MODELS["blazepose_heavy"].sha256, "source": "@mediapipe/pose@0.5.1675469404"}]
    assert high.manifest["processing"]["framesKept"] == std.manifest["processing"]["framesKept"] == 30
    # another model: different numbers for the same pose (stature within a few centimetres)
    s_std = std.manifest["targets"]["default"]["statureM"]
    s_high = high.manifest["targets"]["default"]["statureM"]
    assert s_std != s_high and abs(s_std - s_high) < 0.1
    assert (tmp_path / "std" / "motion.bvh").read_bytes() != (tmp_path / "high" / "motion.bvh").read_bytes()
    assert np.isfinite(high.manifest["targets"]["default"]["scale"])


def test_a_worker_without_the_model_fails_the_attempt(tmp_path: Path) -> None:
    source = shared_file("pose2sim_balancing/cam01.mp4")
    settings = JobSettings(("default",), 30, "full_body", 0.5, 1.0, model_quality="high", models_dir=str(tmp_path))
    with pytest.raises(SystemFault) as err:
        produce(source, settings, tmp_path / "out", lambda *_: None)
    assert err.value.code == "model_unavailable"
