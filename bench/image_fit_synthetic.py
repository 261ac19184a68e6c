"""The image fit (`mocapd.pipeline.image_fit`) against exact ground truth: CMU takes seen by a virtual camera.

Each CMU subject-131 take (tests/support/cmu.py: the default skeleton's joints, exact and rigid) is seen
by a pinhole camera (1280 x 720, f = 1,000 px) standing ``--distance`` m in front of the take's mean
position at 1.2 m height, from each of ``--views`` directions around the subject. What a detector would
give is simulated from the truth:

* 2D joints: the exact projection + Gaussian noise (``--px`` px) + a constant bias per joint (1 cm at
  the joint: detectors' joint definitions differ from the mocap's), visibility 0.9; dropouts: runs of
  0.2-0.7 s where a limb joint is hidden (visibility 0.1, no 2D landmark), and outliers: 5 % of the
  wrist / ankle samples land 60-150 px away (the other limb);
* the prior ("world landmarks"): the truth + a slow random error per joint and axis (1 Hz low-passed,
  3 cm across the line of sight, 8 cm along it) + 1 cm of white noise low-passed at 6 Hz (the
  pipeline's cleaning), so its bones stretch as BlazePose's do.

Reported per take and view, in mm over the 12 limb joints (shoulders, elbows, wrists, hips, knees,
ankles): PA-MPJPE and root-aligned MPJPE of the prior and of the fitted joints (the torso rebuilt from
the fitted limbs as `pipeline/run.py` does), and the acceleration error (mm/frame^2). The noise is
drawn with a fixed seed per take and view, so runs are repeatable; nothing here is tuned to a video.

Run:  PYTHONPATH=src .venv/bin/python bench/image_fit_synthetic.py [--json] [--views 4] [--distance 4]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.signal import butter, filtfilt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support; mocapd itself from PYTHONPATH or the installed package

from tests.support.cmu import cmu_named_positions  # noqa: E402

from mocapd.pipeline.image_fit import fit_to_image  # noqa: E402
from mocapd.pipeline.landmarks import DERIVED_JOINTS, torso_from_limbs  # noqa: E402
from mocapd.pipeline.skeleton import DEFAULT_SKELETON as SK  # noqa: E402
from mocapd.pipeline.solve import rest_bone_lengths  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "bvh"
TAKES = ("cmu_131_01", "cmu_131_02", "cmu_131_03")
LIMBS = [SK.index(n) for n in ("upperarm_l", "lowerarm_l", "hand_l", "upperarm_r", "lowerarm_r", "hand_r",
                               "thigh_l", "calf_l", "foot_l", "thigh_r", "calf_r", "foot_r")]  # fmt: skip
HIPS = [LIMBS.index(SK.index("thigh_l")), LIMBS.index(SK.index("thigh_r"))]
FOCAL, SIZE = 1000.0, (1280, 720)
CENTRE = (SIZE[0] / 2, SIZE[1] / 2)


def camera_frame(world: np.ndarray, azimuth_rad: float, distance_m: float) -> np.ndarray:
    """World joints (F, J, 3), Z up -> a camera (OpenCV axes) on a circle around the take's mean position,
    looking at it horizontally from 1.2 m height."""
    centre = np.nanmean(world[:, SK.index("pelvis")], axis=0)
    c, s = np.cos(azimuth_rad), np.sin(azimuth_rad)
    fwd = np.array([s, c, 0.0])  # the camera looks along fwd; azimuth 0: from -Y towards +Y
    right = np.array([c, -s, 0.0])
    eye = np.array([centre[0], centre[1], 1.2]) - distance_m * fwd
    rel = world - eye
    return np.stack([rel @ right, -rel[..., 2], rel @ fwd], axis=-1)


def project(p: np.ndarray) -> np.ndarray:
    return FOCAL * p[..., :2] / p[..., 2:] + np.asarray(CENTRE)


def lowpass(x: np.ndarray, fps: float, cutoff_hz: float) -> np.ndarray:
    b, a = butter(2, cutoff_hz / (0.5 * fps))
    return filtfilt(b, a, x, axis=0)


def simulate(truth: np.ndarray, fps: float, px_sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detector-like 2D joints (F, J, 2), visibilities (F, J) and prior (F, J, 3) from camera-frame truth."""
    rng = np.random.default_rng(seed)
    f, j, _ = truth.shape
    depth = truth[..., 2:]  # (F, J, 1)
    px = project(truth) + rng.normal(0.0, px_sigma, (f, j, 2))
    px += rng.normal(0.0, 0.01, (1, j, 2)) * FOCAL / depth  # per-joint definition bias, 1 cm
    vis = np.full((f, j), 0.9)
    for k in LIMBS:  # dropouts: hidden runs of 0.2-0.7 s, about one every 4 s per joint
        for _ in range(rng.poisson(f / fps / 4.0)):
            start, length = rng.integers(0, f), int(rng.uniform(0.2, 0.7) * fps)
            vis[start : start + length, k] = 0.1
    px[vis < 0.5] = np.nan
    ends = [SK.index(n) for n in ("hand_l", "hand_r", "foot_l", "foot_r")]
    wrong = rng.random((f, len(ends))) < 0.05
    jump = rng.uniform(60.0, 150.0, (f, len(ends), 1)) * rng.choice([-1.0, 1.0], (f, len(ends), 2))
    px[:, ends] = np.where(wrong[..., None], px[:, ends] + jump, px[:, ends])
    slow = lowpass(rng.normal(0.0, 1.0, (f, j, 3)), fps, 1.0)
    slow /= np.maximum(slow.std(axis=0, keepdims=True), 1e-9)
    white = lowpass(rng.normal(0.0, 0.01, (f, j, 3)), fps, 6.0)  # cleaned as the pipeline does (6 Hz)
    prior = truth + slow * np.array([0.03, 0.03, 0.08]) + white
    return px, vis, prior


def _procrustes(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    mp, mg = p.mean(0), g.mean(0)
    pc, gc = p - mp, g - mg
    u, s, vt = np.linalg.svd(pc.T @ gc)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    return float((s * np.diag(fix)).sum() / (pc**2).sum()) * pc @ (u @ fix @ vt) + mg


def metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    p, g = pred[:, LIMBS], gt[:, LIMBS]
    pr = p - p[:, HIPS].mean(1, keepdims=True)
    gr = g - g[:, HIPS].mean(1, keepdims=True)
    pa = np.mean([np.linalg.norm(_procrustes(a, b) - b, axis=-1).mean() for a, b in zip(p, g, strict=True)])
    acc = np.linalg.norm((pr[2:] - 2 * pr[1:-1] + pr[:-2]) - (gr[2:] - 2 * gr[1:-1] + gr[:-2]), axis=-1).mean()
    return {"pa_mpjpe_mm": round(float(pa) * 1000, 1), "mpjpe_mm": round(float(np.linalg.norm(pr - gr, axis=-1).mean()) * 1000, 1),
            "accel_mm_per_frame2": round(float(acc) * 1000, 2)}  # fmt: skip


def run_view(world: np.ndarray, fps: float, azimuth_rad: float, distance_m: float, px_sigma: float,
             seed: int) -> dict[str, object]:  # fmt: skip
    truth = camera_frame(world, azimuth_rad, distance_m)
    truth[:, 0] = np.nan  # the root is not a body point
    px, vis, prior = simulate(truth, fps, px_sigma, seed)
    derived = [SK.index(n) for n in DERIVED_JOINTS]
    zup = np.stack([prior[..., 0], prior[..., 2], -prior[..., 1]], axis=-1)  # any upright frame: lengths only
    prior_fit = prior.copy()
    prior_fit[:, derived] = np.nan
    fitted, report = fit_to_image(prior_fit, px, vis, rest_bone_lengths(zup), FOCAL, CENTRE, fps)
    fitted = torso_from_limbs(fitted)
    return {"prior": metrics(prior, truth), "fitted": metrics(fitted, truth),
            "image_error_px": [round(report.image_error_before_px, 1), round(report.image_error_after_px, 1)],
            "fit_ms_per_frame": round(1000 * report.seconds / len(truth), 3)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--views", type=int, default=4, help="camera directions around the subject")
    parser.add_argument("--distance", type=float, default=4.0, help="camera distance, m")
    parser.add_argument("--px", type=float, default=3.0, help="2D noise, px (sigma)")
    args = parser.parse_args()
    results: dict[str, object] = {}
    rows = []
    for t, take in enumerate(TAKES):
        path = DATA / f"{take}.bvh"
        if not path.exists():
            print(f"test data not found: {path}", file=sys.stderr)
            return 2
        world, fps = cmu_named_positions(path)
        for v in range(args.views):
            az = 2 * np.pi * v / args.views + 0.3  # never exactly frontal
            r = run_view(world, fps, az, args.distance, args.px, seed=100 * t + v)
            results[f"{take} view{v}"] = r
            rows.append((r["prior"]["pa_mpjpe_mm"], r["fitted"]["pa_mpjpe_mm"]))  # type: ignore[index]
            if not args.json:
                print(f"{take} view{v} ({np.degrees(az):.0f} deg): prior {r['prior']}  fitted {r['fitted']}  "
                      f"2D px {r['image_error_px']}  {r['fit_ms_per_frame']} ms/frame", flush=True)  # fmt: skip
    prior_mean, fitted_mean = (float(np.mean([r[k] for r in rows])) for k in (0, 1))
    results["mean_pa_mpjpe_mm"] = {"prior": round(prior_mean, 1), "fitted": round(fitted_mean, 1),
                                   "views_worse": int(sum(b > a for a, b in rows))}  # fmt: skip
    print(json.dumps(results, indent=2) if args.json else f"mean PA-MPJPE: {results['mean_pa_mpjpe_mm']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
