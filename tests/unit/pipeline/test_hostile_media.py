"""Hostile video files against the decoder and the probe: every frame held to the pixel limit, sizes
checked before any frame is decoded, and the analysis rate bounded for high-rate sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mocapd
from mocapd.errors import InputFault
from mocapd.media.probe import MAX_PIXELS, probe_video
from mocapd.pipeline.decode import iter_frames
from mocapd.pipeline.detect import analysis_step
from tests.support.hostile_media import gray_jpeg, h264_claiming, jpeg_of_size, mjpeg_file


@pytest.mark.parametrize("container", ["matroska", "avi"])
def test_a_frame_over_the_pixel_limit_mid_stream_fails_the_decode(tmp_path: Path, container: str) -> None:
    small = gray_jpeg((64, 48))
    big = jpeg_of_size(9000, 8000)  # 72 Mpx: over the limit, and decodable
    assert 9000 * 8000 > MAX_PIXELS
    path = mjpeg_file(tmp_path / f"switch.{container[:3]}", [small] * 5 + [big] + [small] * 4, container=container)
    facts = probe_video(path)  # admission sees the first frame only: 64x48
    assert (facts.width, facts.height) == (64, 48)
    seen: list[int] = []
    with pytest.raises(InputFault) as err:
        for frame in iter_frames(path, max_side_px=640):
            seen.append(frame.index)
    assert err.value.code == "source_unsupported" and "limit" in err.value.message
    assert seen == [0, 1, 2, 3, 4]  # the frames before it, then the fault (not a quietly shortened clip)


def test_frames_within_the_limit_may_change_size(tmp_path: Path) -> None:
    path = mjpeg_file(tmp_path / "sizes.mkv", [gray_jpeg((64, 48))] * 3 + [gray_jpeg((128, 96))] * 3)
    frames = list(iter_frames(path))
    assert [f.rgb.shape for f in frames] == [(48, 64, 3)] * 6  # scaled to the first frame's size


def _env() -> dict[str, str]:
    """The children import the mocapd under test."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(mocapd.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}


_PEAK = """
import json, sys
from pathlib import Path
from mocapd.errors import InputFault
from mocapd.{module} import {function} as probe
try:
    probe(Path(sys.argv[1]))
    code = None
except InputFault as exc:
    code = exc.code
# VmHWM: this process's peak (ru_maxrss would carry over the peak of the process that started it)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"code": code, "peak_mb": int(hwm.split()[1]) / 1024}}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from Linux's /proc")
@pytest.mark.parametrize(("module", "function"), [("media.probe", "probe_video"), ("pipeline.decode", "read_video_info")])
def test_a_huge_frame_size_is_refused_without_decoding_a_frame(tmp_path: Path, module: str, function: str) -> None:
    # A few hundred bytes of H.264 whose header says 16384x8192: FFmpeg decodes frames while opening it
    # (to learn the reorder delay), 201 MB each, unless the decoder is told the pixel limit first.
    path = h264_claiming(tmp_path / "huge.h264", 16384, 8192)
    assert path.stat().st_size < 2000
    code = _PEAK.format(module=module, function=function)
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True, env=_env(), cwd=tmp_path)
    result = json.loads(out.stdout)
    assert result["code"] == "source_unsupported"
    assert result["peak_mb"] < 300, result  # the interpreter and PyAV take about 80 MB; one such frame is 201 MB


def test_the_probe_child_reports_facts_and_faults_as_json(tmp_path: Path) -> None:
    ok = mjpeg_file(tmp_path / "ok.mkv", [gray_jpeg((64, 48))] * 3)
    bad = h264_claiming(tmp_path / "huge.h264", 16384, 8192)
    run = [sys.executable, "-m", "mocapd.media.probe", "--max-memory-mb", "2048"]
    facts = json.loads(subprocess.run([*run, str(ok)], capture_output=True, check=True, env=_env()).stdout)["facts"]
    assert (facts["width"], facts["height"], facts["codec"]) == (64, 48, "mjpeg")
    fault = json.loads(subprocess.run([*run, str(bad)], capture_output=True, check=True, env=_env()).stdout)["fault"]
    assert fault["code"] == "source_unsupported"


@pytest.mark.parametrize(
    ("source_fps", "export_fps", "step"),
    [(24, 30, 1), (30, 30, 1), (59.94, 30, 1), (60, 60, 1), (100, 30, 2), (240, 30, 4), (240, 120, 2), (1000, 30, 17),
     (1000, 120, 9), (0.0, 30, 1)],
)
def test_analysis_step(source_fps: float, export_fps: int, step: int) -> None:
    assert analysis_step(source_fps, export_fps) == step
    assert source_fps / step <= max(60, export_fps) or step == 1


def test_min_interval_keeps_every_nth_frame_of_a_high_rate_source(tmp_path: Path) -> None:
    path = mjpeg_file(tmp_path / "fast.mkv", [gray_jpeg((32, 32))] * 40, fps=240, size=(32, 32))
    every = list(iter_frames(path))
    kept = list(iter_frames(path, min_interval_s=3.5 / 240))
    assert len(every) == 40
    assert [round(f.time_s * 240) for f in kept] == list(range(0, 40, 4))
    assert [f.index for f in kept] == list(range(10))
