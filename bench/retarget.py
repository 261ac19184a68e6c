"""G1 retargeting speed and quality on the CMU subject-131 takes (and a synthetic reference walk).

For each take: the CMU BVH is solved onto the mocapd skeleton (tests/support/cmu.py), resampled to
30 fps, foot contacts detected (mocapd.pipeline.contacts), then retargeted with
`mocapd.robots.retarget.retarget_to_g1`. Reported:

Speeds are frames per CPU second of this process (`time.process_time`), best of ``--repeat``.

* IK frames/s: the per-frame mink IK alone (`mocapd.robots.ik.solve_frames`, 3 QP steps per frame,
  with position, velocity and self-collision limits), best of ``--repeat`` runs;
* end-to-end frames/s: the whole `retarget_to_g1` (targets, IK, filter, ground, FK, quality);
* the quality figures of RobotMotion.quality: position-limit violations, joint-speed violations
  (count, worst |q_dot| / v_max), sole penetration (mm), foot skate (cm/s: mean horizontal speed of a
  sole while within 1 cm of the ground), contact slip (cm/s: mean horizontal speed of the sole point
  that carries a contact -- the toe where only the human's ball is down, the heel where only its
  heel is, else the sole centre; `mocapd.robots.quality.contact_slip_cm_s`), leg self-collision
  frames, mean tracking distance per body part (m) to the scaled human targets.

The synthetic walk (tests/unit/robots/synthetic_walk.py: exact planted feet, two-bone-IK legs) is
the reference: what the retargeter reaches on a clean, perfectly consistent input.

``--video PATH`` adds a real video run through the perception + solve pipeline first (MediaPipe).

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/retarget.py [--repeat 3] [--json] [--video PATH ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.cmu import cmu_motion  # noqa: E402
from tests.unit.robots.synthetic_walk import synthetic_walk  # noqa: E402

from mocapd.pipeline.contacts import detect_contacts  # noqa: E402
from mocapd.pipeline.resample import resample_motion  # noqa: E402
from mocapd.pipeline.skeleton import Motion  # noqa: E402
from mocapd.robots.g1 import g1_description  # noqa: E402
from mocapd.robots.human_contacts import contacts_from_pipeline  # noqa: E402
from mocapd.robots.ik import solve_frames  # noqa: E402
from mocapd.robots.retarget import retarget_to_g1  # noqa: E402
from mocapd.robots.targets import scaled_targets  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "bvh"
TAKES = ("cmu_131_01", "cmu_131_02", "cmu_131_03")
FPS = 30.0


def _measure(name: str, motion: Motion, repeat: int) -> dict[str, Any]:
    desc = g1_description()
    contacts = detect_contacts(motion)
    targets, _ = scaled_targets(motion, desc, contacts_from_pipeline(contacts, motion.num_frames))
    ik_s = min(_timed(lambda: solve_frames(desc, targets, motion.fps)) for _ in range(repeat))
    total_s = min(_timed(lambda: retarget_to_g1(motion, contacts)) for _ in range(repeat))
    rm = retarget_to_g1(motion, contacts)
    return {
        "take": name,
        "frames": motion.num_frames,
        "ik_frames_per_s": round(motion.num_frames / ik_s, 1),
        "end_to_end_frames_per_s": round(motion.num_frames / total_s, 1),
        **{k: rm.quality[k] for k in (
            "limit_violation_frames", "speed_violations", "max_speed_ratio", "max_speed_joint",
            "sole_penetration_mm", "foot_skate_cm_s", "contact_slip_cm_s", "leg_self_collision_frames",
            "tracking_error_m",
        )},
    }  # fmt: skip


def _video_motion(path: Path) -> Motion:
    """The exported (30 fps) motion of the perception + solve pipeline on a whole video."""
    from mocapd.media.probe import probe_video
    from mocapd.pipeline.run import JobSettings, analyse_video

    duration_s = float(probe_video(path).duration_s)
    settings = JobSettings(("default",), int(FPS), "full_body", 0.0, duration_s)
    return analyse_video(path, settings, lambda stage, progress: None).export


def _timed(fn: Any) -> float:
    """CPU seconds of this process (the machine is shared, so wall time mostly measures the neighbours)."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--video", type=Path, action="append", default=[], help="also a video through the pipeline"
    )
    args = parser.parse_args()
    rows = []
    for video in args.video:
        rows.append(_measure(f"video {video.name}", _video_motion(video), args.repeat))
    for take in TAKES:
        path = DATA / f"{take}.bvh"
        if not path.exists():
            print(f"skipping {take}: {path} not found", file=sys.stderr)
            continue
        rows.append(_measure(take, resample_motion(cmu_motion(path), FPS), args.repeat))
    walk, _ = synthetic_walk(fps=FPS, duration_s=8.0)
    rows.append(_measure("synthetic_walk (reference)", walk, args.repeat))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    head = ("take", "frames", "IK f/s", "e2e f/s", "limit viol.", "speed viol.", "max |q'|/vmax",
            "penetr. mm", "skate cm/s", "contact slip cm/s", "leg coll.", "track hands/feet/elbows/knees m")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        t = r["tracking_error_m"]
        track = "/".join(f"{t.get(p, float('nan')):.3f}" for p in ("hands", "feet", "elbows", "knees"))
        cells = (r["take"], r["frames"], r["ik_frames_per_s"], r["end_to_end_frames_per_s"],
                 r["limit_violation_frames"], r["speed_violations"], f"{r['max_speed_ratio']:.2f} ({r['max_speed_joint']})",
                 r["sole_penetration_mm"], r["foot_skate_cm_s"], r["contact_slip_cm_s"], r["leg_self_collision_frames"],
                 track)  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
