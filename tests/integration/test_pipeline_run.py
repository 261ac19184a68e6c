"""A job's products (`produce`: the pipeline, then the writers) end to end on short windows of real clips:
files, manifest, quality counts, progress reporting, and the preflight fault for a clip without a person."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import mocapd.formats.preview as preview
from mocapd.errors import InputFault
from mocapd.pipeline.settings import JobSettings
from mocapd.worker.processor import ProcessResult
from mocapd.worker.produce import produce
from tests.conftest import shared_file

pytestmark = pytest.mark.slow


def _run(source: Path, settings: JobSettings, out_dir: Path) -> tuple[ProcessResult, list[tuple[str, float]]]:
    calls: list[tuple[str, float]] = []
    out = produce(source, settings, out_dir, lambda stage, fraction: calls.append((stage, fraction)))
    return out, calls


def test_full_body_with_both_targets_on_cam01(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = shared_file("pose2sim_balancing/cam01.mp4")
    settings = JobSettings(("default", "unitree_g1"), 30, "full_body", 0.5, 1.5, focal_length_px=1681.0)
    hands_drawn: list[object] = []
    monkeypatch.setattr(preview, "draw_hands_2d", lambda *args, **kw: hands_drawn.append(args))
    out, calls = _run(source, settings, tmp_path)
    assert hands_drawn == []  # no handTracking: the preview draws no hands (and its figure has no fingers)
    assert "hands" not in out.manifest["processing"]
    described = [(f.path.name, f.target_id, f.content_type) for f in out.files]
    assert described == [
        ("motion.fbx", "default", "application/octet-stream"),
        ("motion.bvh", "default", "text/plain; charset=utf-8"),
        ("motion.glb", "default", "model/gltf-binary"),
        ("g1_motion.json", "unitree_g1", "application/json"),
        ("g1_motion.csv", "unitree_g1", "text/csv; charset=utf-8"),
        ("preview.mp4", None, "video/mp4"),
        ("quality.json", None, "application/json"),
    ]
    assert all(f.path.parent == tmp_path and f.path.stat().st_size > 0 for f in out.files)
    quality = json.loads((tmp_path / "quality.json").read_text())
    assert quality["frames"]["total"] == 60  # 1 s at the source's 60 fps
    assert quality["frames"]["withPerson"] == 60
    assert quality["frames"]["held"] == out.manifest["processing"]["heldFrames"] <= 6
    assert quality["frames"]["interpolated"] == out.manifest["processing"]["interpolatedFrames"] < 30
    m = out.manifest
    assert m["camera"]["focalSource"] == "focal_length_px" and m["camera"]["focalLengthPx"] == 1681.0
    assert m["processing"]["frames"] == 60 and m["processing"]["framesKept"] == 60
    assert m["processing"]["misreadFramesRepaired"] == 0  # cam01 is read the right way round throughout
    assert m["targets"]["default"]["frameCount"] == 30 and m["targets"]["default"]["fps"] == 30
    assert m["targets"]["unitree_g1"]["frameCount"] == 30
    assert json.loads((tmp_path / "g1_motion.json").read_text())["frameCount"] == 30
    # the subject stands about 3.2 m from the camera, which looks down about 22 deg: ~3 m horizontally
    assert 2.6 < -m["camera"]["cameraPositionM"][1] < 3.8
    with av.open(str(tmp_path / "preview.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == 30  # a 60 fps source is previewed at every 2nd frame
        assert sum(1 for _ in container.decode(video=0)) == 30
    stages = [s for s, _ in calls]
    assert stages[0] == "preflight" and "processing" in stages and stages[-1] == "packaging"
    assert stages.index("processing") < stages.index("packaging")
    assert calls[-1] == ("packaging", 1.0)
    assert all(0.0 <= f <= 1.0 for _, f in calls)


def test_upper_body_with_the_robot_target(tmp_path: Path) -> None:
    source = shared_file("pose2sim_balancing/cam02.mp4")  # the VP9 view
    settings = JobSettings(("default", "unitree_g1"), 24, "upper_body", 0.0, 0.5)
    out, _ = _run(source, settings, tmp_path)
    names = {f.path.name for f in out.files}
    assert {"g1_motion.json", "g1_motion.csv", "motion.fbx", "preview.mp4", "quality.json"} <= names
    assert out.manifest["camera"]["focalSource"] == "default_diagonal"
    assert out.manifest["targets"]["unitree_g1"]["frameCount"] == 12
    csv_rows = (tmp_path / "g1_motion.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 12 and len(csv_rows[0].split(",")) == 36
    quality = json.loads((tmp_path / "quality.json").read_text())
    assert not [w for w in quality["warnings"] if "foot" in w]  # the legs stay at rest: no foot warnings


def test_a_clip_without_a_person_fails_in_preflight(tmp_path: Path) -> None:
    source = tmp_path / "empty.mp4"
    container = av.open(str(source), mode="w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
    for k in range(45):
        img = np.full((120, 160, 3), 40 + k, np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = k
        frame.time_base = Fraction(1, 30)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    stages: list[str] = []
    with pytest.raises(InputFault) as err:
        produce(
            source,
            JobSettings(("default",), 30, "full_body", 0.0, 1.5),
            tmp_path / "out",
            lambda s, f: stages.append(s),
        )
    assert err.value.code == "no_person_detected"
    assert set(stages) == {"preflight"}
