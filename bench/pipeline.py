"""Wall time and peak memory of `run_pipeline` against raw BlazePose detection on the same frames.

For each clip window, in a fresh process each (so peak RSS is per run):

* ``raw``: decode every frame at full size first (not timed), then time only
  ``mp.solutions.pose.Pose(...).process(rgb)`` over them (the detector's bare cost);
* ``pipeline``: the whole `run_pipeline` (decode, pose, clean, world, solve, contacts, resample,
  FBX/BVH/glTF, preview, quality), default target, 30 fps export.

Reported: wall seconds, ratio pipeline / raw, wall / clip duration, peak RSS (MiB).
Clips: ``sports2d_demo.mp4`` (1768x994, 30 fps VP9) windows of 2 s and 7.6 s (memory must not grow
with length), and a 1920x1080 30 fps H.264 copy of it made in /tmp (never in the repository).

Run:  .venv/bin/python bench/pipeline.py            (about 2-3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPORTS = DATA / "video" / "sports2d_demo.mp4"
HD_COPY = Path(tempfile.gettempdir()) / "mocapd_bench_1080p30.mp4"


def make_1080p_copy() -> Path:
    """A 1920x1080 H.264 30 fps re-encode of sports2d_demo.mp4 (cached in the temp folder)."""
    import av

    if HD_COPY.exists():
        return HD_COPY
    with av.open(str(SPORTS)) as src, av.open(str(HD_COPY), mode="w") as dst:
        stream = dst.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}
        for k, frame in enumerate(src.decode(video=0)):
            out = frame.reformat(width=1920, height=1080, format="yuv420p")
            out.pts = k
            out.time_base = Fraction(1, 30)
            for packet in stream.encode(out):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return HD_COPY


def child_raw(source: Path, start_s: float, end_s: float) -> dict[str, float]:
    from mocapd.pipeline.decode import iter_frames
    from mocapd.pipeline.pose import PoseDetector

    frames = [f.rgb for f in iter_frames(source, start_s=start_s, end_s=end_s)]
    with PoseDetector() as det:
        t0 = time.perf_counter()
        for rgb in frames:
            det.detect(rgb)
        wall = time.perf_counter() - t0
    return {"frames": len(frames), "wall_s": wall}


def child_pipeline(source: Path, start_s: float, end_s: float) -> dict[str, float]:
    from mocapd.pipeline.run import JobSettings, run_pipeline

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = run_pipeline(
            source, JobSettings(("default",), 30, "full_body", start_s, end_s), Path(out), lambda s, f: None
        )
        wall = time.perf_counter() - t0
    return {"frames": result.manifest["processing"]["frames"], "wall_s": wall, **{
        f"{k}_s": v for k, v in result.manifest["processing"]["timingsSec"].items()}}  # fmt: skip


def run_child(kind: str, source: Path, start_s: float, end_s: float) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", kind, str(source), str(start_s), str(end_s)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=4, metavar=("KIND", "SOURCE", "START", "END"))
    args = parser.parse_args()
    if args.child:
        kind, source, start, end = args.child
        fn = child_raw if kind == "raw" else child_pipeline
        res = fn(Path(source), float(start), float(end))
        res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps(res))
        return 0
    if not SPORTS.exists():
        print(f"test data not found: {SPORTS}", file=sys.stderr)
        return 2
    cases = [
        ("sports2d 1768x994 VP9, 2 s", SPORTS, 0.0, 2.0),
        ("sports2d 1768x994 VP9, 7.6 s", SPORTS, 0.0, 7.7),
        ("1920x1080 H.264 30 fps, 7.6 s", make_1080p_copy(), 0.0, 7.7),
    ]
    rows = []
    for label, source, start, end in cases:
        raw = run_child("raw", source, start, end)
        pipe = run_child("pipeline", source, start, end)
        duration = raw["frames"] / 30.0
        rows.append({
            "clip": label, "frames": raw["frames"],
            "raw_blazepose_s": round(raw["wall_s"], 2), "raw_ms_per_frame": round(1000 * raw["wall_s"] / raw["frames"], 1),
            "pipeline_s": round(pipe["wall_s"], 2), "pose_stage_s": round(pipe.get("pose_s", float("nan")), 2),
            "until_packaging_s": round(pipe.get("processing_s", float("nan")), 2),
            "ratio_until_packaging_vs_raw": round(pipe.get("processing_s", float("nan")) / raw["wall_s"], 2),
            "ratio_vs_raw": round(pipe["wall_s"] / raw["wall_s"], 2),
            "wall_over_duration": round(pipe["wall_s"] / duration, 2),
            "peak_rss_mib_pipeline": round(pipe["peak_rss_mib"], 0),
            "peak_rss_mib_raw_all_frames_in_memory": round(raw["peak_rss_mib"], 0),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
