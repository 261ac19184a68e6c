"""Worker time per second of video for 30, 60, 240 and 1000 fps sources.

Each source is the same motion (pose2sim cam01, a man balancing, downscaled to 540x960) written with
PyAV at the given rate into /tmp (a 1000 fps clip repeats source frames; the detector sees the same
content at every rate). For each, `mocapd.worker.produce.produce` runs the whole job (default target,
30 fps export) after the heavy modules are imported; reported: wall and CPU seconds (all threads) per
second of video, the frames pose was detected on, the analysis rate and the credits the job costs.

Run:  PYTHONPATH=src .venv/bin/python bench/analysis_rate.py [--seconds 2] [--fps 30 60 240 1000]
      (needs ../shared/data/pose2sim_balancing/cam01.mp4; about 2 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support; mocapd itself from PYTHONPATH or the installed package


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--fps", type=int, nargs="+", default=[30, 60, 240, 1000])
    parser.add_argument("--size", type=int, nargs=2, default=[540, 960])
    args = parser.parse_args()

    from tests.conftest import shared_file
    from tests.support.hostile_media import person_clip

    import mocapd.pipeline.pose  # noqa: F401 - heavy imports before the clock, as in a long-lived worker
    from mocapd.pipeline.settings import JobSettings
    from mocapd.worker.produce import produce

    cam01 = shared_file("pose2sim_balancing/cam01.mp4")
    with tempfile.TemporaryDirectory(prefix="mocapd-bench-rate-") as tmp:
        for fps in args.fps:
            clip = person_clip(Path(tmp) / f"clip{fps}.mp4", cam01, seconds=args.seconds, fps=fps, size=tuple(args.size))
            settings = JobSettings(("default",), 30, "full_body", 0.0, args.seconds)
            load = os.getloadavg()[0]
            wall0, cpu0 = time.monotonic(), _cpu_s()
            out = produce(clip, settings, Path(tmp) / f"out{fps}", lambda stage, fraction: None)
            wall, cpu = time.monotonic() - wall0, _cpu_s() - cpu0
            proc = out.manifest["processing"]
            processed = getattr(out, "processed_s", None)
            print(json.dumps({
                "source_fps": fps, "seconds": args.seconds,
                "wall_s_per_video_s": round(wall / args.seconds, 2), "cpu_s_per_video_s": round(cpu / args.seconds, 2),
                "frames_detected": proc["frames"], "analysis_fps": proc.get("analysisFps", proc["fps"]),
                "credits": math.ceil(processed - 1e-6) if processed else math.ceil(args.seconds - 1e-6),
                "load1": round(load, 1),
            }), flush=True)


if __name__ == "__main__":
    main()
