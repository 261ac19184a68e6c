"""Per-frame cost of the detectors a job may run: BlazePose Full (standard), BlazePose Heavy
(`modelQuality: "high"`) and MediaPipe Holistic (the `handTracking` pass), on the same decoded frames.

The three run in turns over the same frames (round-robin, each in its own graph), so a machine whose
speed drifts, or that is shared, slows all three alike and the ratios stay meaningful.

    .venv/bin/mocapd models fetch --models-dir .cache/models
    .venv/bin/python bench/detectors.py --frames 60 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MOCAPD_TEST_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    import mediapipe
    from mediapipe.python.solutions import holistic as mp_holistic

    from mocapd.model_files import MODELS, is_installed, mediapipe_resource_root
    from mocapd.pipeline.decode import iter_frames
    from mocapd.pipeline.detect import DETECT_MAX_SIDE_PX
    from mocapd.pipeline.hands import DETECT_MAX_SIDE_PX as HANDS_MAX_SIDE_PX
    from mocapd.pipeline.pose import FULL, PoseDetector, PoseModel

    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", default=str(DATA / "pose2sim_balancing" / "cam01.mp4"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models-dir", default=str(ROOT / ".cache" / "models"))
    args = ap.parse_args()

    models = Path(args.models_dir)
    heavy_file = MODELS["blazepose_heavy"]
    if not is_installed(models, heavy_file):
        sys.exit(f"BlazePose Heavy is not installed in {models}: run `mocapd models fetch --models-dir {models}`")
    root = mediapipe_resource_root(models, Path(mediapipe.__file__).resolve().parents[1])
    heavy = PoseModel(name="blazepose_heavy", complexity=2, label="BlazePose Heavy", resource_root=root)

    def first_frames(max_side_px: int) -> list[object]:
        frames = iter_frames(Path(args.clip), max_side_px=max_side_px)
        return [next(frames).rgb for _ in range(args.frames)]

    body = first_frames(DETECT_MAX_SIDE_PX)
    big = first_frames(HANDS_MAX_SIDE_PX)
    times: dict[str, list[float]] = {"full": [], "heavy": [], "holistic": []}
    for _ in range(args.rounds):
        for name in times:
            if name == "holistic":
                with mp_holistic.Holistic(static_image_mode=False, model_complexity=1, refine_face_landmarks=False) as h:
                    h.process(big[0])  # warm-up
                    t0 = time.perf_counter()
                    for rgb in big:
                        h.process(rgb)
            else:
                with PoseDetector(FULL if name == "full" else heavy) as det:
                    det.detect(body[0])
                    t0 = time.perf_counter()
                    for rgb in body:
                        det.detect(rgb)
            times[name].append((time.perf_counter() - t0) / len(body) * 1000.0)
    full = statistics.median(times["full"])
    load = os.getloadavg()[0]
    print(f"{Path(args.clip).name}, {args.frames} frames x {args.rounds} rounds, load average {load:.1f}")
    for name, vals in times.items():
        med = statistics.median(vals)
        print(f"  {name:9s} {med:7.1f} ms/frame (min {min(vals):.1f})  {med / full:4.2f}x Full")


if __name__ == "__main__":
    main()
