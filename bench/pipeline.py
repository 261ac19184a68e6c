"""Wall time and peak memory of a job's products (`produce`) against raw BlazePose detection on the same frames.

For each clip window, in a fresh process each (so peak RSS is per run):

* ``raw``: decode every frame at full size first (not timed), then time only
  ``mp.solutions.pose.Pose(...).process(rgb)`` over them (the detector's bare cost);
* ``pipeline``: the whole `produce` (decode, pose, clean, world, solve, contacts, resample,
  FBX/BVH/glTF, preview, quality; G1 retargeting and files for the ``+ G1`` row), 30 fps export.
  The heavy modules (mediapipe, mink, the writers) are imported before the clock starts, as in a
  long-lived worker process, which pays for them once.

Reported: wall seconds, ratio pipeline / raw, wall / clip duration, CPU seconds (all threads; on a
shared machine the CPU figures are steadier than wall times), peak RSS (MiB), and the 1-minute load
average when each measurement started (other processes on the machine inflate every wall time).
Clips: ``sports2d_demo.mp4`` (1768x994, 30 fps VP9) windows of 2 s and 7.6 s (memory must not grow
with length), and a 1920x1080 30 fps H.264 copy of it made in /tmp (never in the repository).

Run:  .venv/bin/python bench/pipeline.py [--repeat N]     (about 2-3 minutes per repeat on 2 cores)

``--only REGEX`` keeps the clips whose label matches (``re.search``; e.g. ``--only "VP9, 7.6 s$"``).

``--variants`` instead measures, on one clip (``--variant-clip``: sports2d 7.6 s or cam01), what each job
option costs per frame, in turns in fresh processes (a shared machine slows them alike): raw BlazePose
Full, the standard job, ``modelQuality: high`` (BlazePose Heavy, ``--models-dir``), ``handTracking``;
with ``--parallel 2``, also two identical standard jobs at once (two worker processes on the two
cores). Reported per run: wall and CPU seconds, and wall ms per frame beyond raw detection.

``--preview-presets`` instead compares libx264 settings for the preview of the sports2d job with the
G1 target (540 p, 2040x540, 230 frames; frames decoded up front): wall and CPU seconds of
`encode_preview` (composition included) and the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPORTS = DATA / "video" / "sports2d_demo.mp4"
CAM01 = DATA / "pose2sim_balancing" / "cam01.mp4"
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
        t0, c0 = time.perf_counter(), _cpu_s()
        for rgb in frames:
            det.detect(rgb)
        wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return {"frames": len(frames), "wall_s": wall, "cpu_s": cpu}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_pipeline(
    source: Path, start_s: float, end_s: float, targets: tuple[str, ...], options: dict[str, object] | None = None
) -> dict[str, float]:
    import mediapipe.python.solutions.pose  # noqa: F401 - warm imports, as a long-lived worker has them

    import mocapd.formats.bvh
    import mocapd.formats.fbx
    import mocapd.formats.gltf
    import mocapd.formats.preview
    import mocapd.robots.retarget  # noqa: F401
    from mocapd.pipeline.settings import JobSettings
    from mocapd.worker.produce import produce

    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), _cpu_s()
        settings = JobSettings(targets, 30, "full_body", start_s, end_s, **(options or {}))  # type: ignore[arg-type]
        result = produce(source, settings, Path(out), lambda s, f: None)
        wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
    return {"frames": result.manifest["processing"]["frames"], "wall_s": wall, "cpu_s": cpu, **{
        f"{k}_s": v for k, v in result.manifest["processing"]["timingsSec"].items()}}  # fmt: skip


def preview_presets() -> list[dict[str, object]]:
    from mocapd.formats import preview as pv
    from mocapd.pipeline.decode import iter_frames
    from mocapd.pipeline.detect import preview_scale, preview_side_px
    from mocapd.pipeline.run import JobSettings, analyse_video
    from mocapd.robots.retarget import retarget_to_g1

    a = analyse_video(
        SPORTS, JobSettings(("default", "unitree_g1"), 30, "full_body", 0.0, 7.7), lambda s, f: None
    )
    robot = retarget_to_g1(a.export, a.export_contacts, mocap_type="full_body")
    h = pv.PIPELINE_PREVIEW_HEIGHT_PX
    scale = preview_scale(a.info)
    frames = [f.rgb for f in iter_frames(SPORTS, max_side_px=preview_side_px(a.info))]
    landmarks = a.track.landmarks_px * scale
    # the exact pictures handed to the encoder, to measure what each setting loses (luma PSNR)
    layout = pv.preview_layout(frames[0].shape[1], frames[0].shape[0], with_robot=True, max_height_px=h)
    tracks = [pv._human_track(a.export), pv._robot_track(robot)]
    compose = pv._Composer(layout, landmarks, tracks, a.fps)
    luma = [compose(f, i)[: layout.height_px].astype(np.float64) for i, f in enumerate(frames)]
    chosen = dict(pv._X264_OPTIONS)
    rows = []
    tuned = "cabac=1:bframes=3:aq-mode=1:deblock=1"  # ultrafast with these four back
    settings = [
        {"preset": "veryfast", "crf": "23"}, {"preset": "superfast", "crf": "24"},
        {"preset": "ultrafast", "crf": "23"}, {"preset": "ultrafast", "crf": "24", "x264-params": tuned},
        {"preset": "ultrafast", "crf": "23", "x264-params": tuned},
        {"preset": "ultrafast", "crf": "22", "x264-params": tuned},
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        for options in settings:
            pv._X264_OPTIONS.clear()
            pv._X264_OPTIONS.update(options)
            path = Path(out) / "preview.mp4"
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), _cpu_s()
            pv.encode_preview(
                iter(frames), landmarks, a.export, path, fps=a.fps, robot=robot, max_height_px=h
            )
            rows.append({
                "x264": options, "chosen": options == chosen, "frames": len(frames),
                "wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(_cpu_s() - c0, 2),
                "mb": round(path.stat().st_size / 1e6, 2), "psnr_y_db": round(_psnr_y(path, luma), 2),
                "load_1min": round(load, 2),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    pv._X264_OPTIONS.clear()
    pv._X264_OPTIONS.update(chosen)
    return rows


def _psnr_y(path: Path, luma: list[np.ndarray]) -> float:
    """Luma PSNR of the video at ``path`` against the pictures (H, W) that were encoded."""
    import av

    errors = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            y = frame.to_ndarray()[: luma[i].shape[0]].astype(np.float64)  # yuv420p planes: Y first
            errors.append(float(np.mean((y - luma[i]) ** 2)))
    return float(10.0 * np.log10(255.0**2 / np.mean(errors)))


def run_child(
    kind: str, source: Path, start_s: float, end_s: float, options: dict[str, object] | None = None, copies: int = 1
) -> list[dict[str, float]]:
    """Run ``copies`` children at once (each a fresh process); their results in order."""
    cmd = [sys.executable, __file__, "--child", kind, str(source), str(start_s), str(end_s)]
    if options:
        cmd += ["--options", json.dumps(options)]
    load = os.getloadavg()[0]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(copies)]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{cmd} failed with {proc.returncode}: {err[-2000:]}")
        results.append({**json.loads(out.strip().splitlines()[-1]), "load_1min": load})
    return results


def variants(args: argparse.Namespace) -> None:
    """Per-frame cost of each job option against raw detection, in turns (see the module doc)."""
    source, start, end = (SPORTS, 0.0, 7.7) if args.variant_clip == "sports2d" else (CAM01, 0.0, 2.0)
    cases: list[tuple[str, str, dict[str, object], int]] = [
        ("raw BlazePose Full", "raw", {}, 1),
        ("standard job", "pipeline", {}, 1),
        ("modelQuality high", "pipeline", {"model_quality": "high", "models_dir": str(args.models_dir)}, 1),
        ("handTracking", "pipeline", {"hand_tracking": True}, 1),
    ]
    if args.parallel > 1:
        cases.append((f"{args.parallel} standard jobs at once", "pipeline", {}, args.parallel))
    for _ in range(args.repeat):
        base: dict[str, float] = {}
        for label, kind, options, copies in cases:
            runs = run_child(kind, source, start, end, options, copies)
            frames = runs[0]["frames"]
            wall = max(r["wall_s"] for r in runs)
            if kind == "raw":
                base["raw"] = wall
            elif not options and copies == 1:
                base["standard"] = wall
            row = {
                "case": label, "clip": source.name, "frames": frames, "load_1min": round(runs[0]["load_1min"], 2),
                "wall_s": [round(r["wall_s"], 2) for r in runs], "cpu_s": [round(r["cpu_s"], 2) for r in runs],
                "ratio_vs_raw": round(wall / base["raw"], 2),
                "ms_per_frame": round(1000 * wall / frames, 1),
                "ms_per_frame_beyond_standard": round(1000 * (wall - base.get("standard", wall)) / frames, 1),
                **{k: round(v, 2) for k, v in runs[0].items() if k in ("pose_s", "hands_s", "processing_s")},
            }  # fmt: skip
            print(json.dumps(row), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=4, metavar=("KIND", "SOURCE", "START", "END"))
    parser.add_argument("--repeat", type=int, default=1, help="measure each case this many times")
    parser.add_argument(
        "--preview-presets", action="store_true", help="compare x264 settings for the preview"
    )
    parser.add_argument("--options", help=argparse.SUPPRESS)  # a child's JobSettings fields, JSON
    parser.add_argument("--only", default="", help="measure only the clips whose label matches this regular expression")
    parser.add_argument("--variants", action="store_true", help="per-frame cost of high and handTracking")
    parser.add_argument("--variant-clip", choices=("sports2d", "cam01"), default="sports2d")
    parser.add_argument("--parallel", type=int, default=1, help="with --variants: also N standard jobs at once")
    parser.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".cache" / "models")
    args = parser.parse_args()
    if args.preview_presets:
        preview_presets()
        return 0
    if args.variants:
        variants(args)
        return 0
    if args.child:
        kind, source, start, end = args.child
        if kind == "raw":
            res = child_raw(Path(source), float(start), float(end))
        else:
            targets = ("default", "unitree_g1") if kind == "pipeline_g1" else ("default",)
            options = json.loads(args.options) if args.options else None
            res = child_pipeline(Path(source), float(start), float(end), targets, options)
        res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps(res))
        return 0
    if not SPORTS.exists():
        print(f"test data not found: {SPORTS}", file=sys.stderr)
        return 2
    cases = [
        ("sports2d 1768x994 VP9, 2 s", SPORTS, 0.0, 2.0, "pipeline"),
        ("sports2d 1768x994 VP9, 7.6 s", SPORTS, 0.0, 7.7, "pipeline"),
        ("sports2d 1768x994 VP9, 7.6 s, + G1", SPORTS, 0.0, 7.7, "pipeline_g1"),
        ("1920x1080 H.264 30 fps, 7.6 s", HD_COPY, 0.0, 7.7, "pipeline"),
    ]
    if any(re.search(args.only, c[0]) for c in cases if c[1] == HD_COPY):
        make_1080p_copy()
    cases = [c for c in cases if re.search(args.only, c[0])]
    rows = []
    for label, source, start, end, kind in [c for c in cases for _ in range(args.repeat)]:
        raw = run_child("raw", source, start, end)[0]
        pipe = run_child(kind, source, start, end)[0]
        duration = raw["frames"] / 30.0
        rows.append({
            "clip": label, "frames": raw["frames"], "load_1min": round(raw["load_1min"], 2),
            "raw_blazepose_s": round(raw["wall_s"], 2), "raw_ms_per_frame": round(1000 * raw["wall_s"] / raw["frames"], 1),
            "raw_cpu_s": round(raw["cpu_s"], 2), "pipeline_cpu_s": round(pipe["cpu_s"], 2),
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
