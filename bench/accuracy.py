"""Accuracy of the perception + solve pipeline on pose2sim_balancing/cam01.mp4 against the
4-view triangulated reference (BalancingTrial_0-100_triangulated.trc).

Both are compared in the cam01 camera frame (OpenCV axes): the reference by the calibration
(``X_cam = R (z_trc, x_trc, y_trc) + t``, R from the Rodrigues vector), ours by undoing the world
placement (``X_cam = world_from_camera^T (X_world - camera_position)``). Joints compared: the 12
limb joints shoulders, elbows, wrists, hips, knees, ankles (our upperarm, lowerarm, hand, thigh,
calf, foot).

* MPJPE: mean |p - g| after subtracting each frame's hip centre from both (root-aligned).
* PA-MPJPE: after a per-frame similarity Procrustes (rotation, scale, translation) of ours onto
  the reference.
Metrics are given against the raw triangulation and against its 6 Hz Butterworth-filtered copy
(the triangulation's own frame-to-frame noise dominates the acceleration error of the raw one).

* Acceleration error: mean |(p[t-1] - 2 p[t] + p[t+1]) - (g[t-1] - 2 g[t] + g[t+1])| on the
  root-aligned joints, mm/frame^2.
* Bone-length spread: max over bones of the std over frames of |p_child - p_parent| of the solved
  motion (must be ~0: one length per bone).
* Root depth: mean camera-frame depth of our hip centre vs the reference's, with the true focal
  length (f_x of the calibration) and with the default diagonal guess.

Also reported for context: the same MPJPE / PA-MPJPE / accel of the raw BlazePose world landmarks
(no cleaning, no solve).

With ``--views`` the solved-vs-filtered figures of cam02-04 (each in its own camera frame, with its
own true focal) are reported too, with the raw BlazePose world landmarks of the same view and the
mean of the four views (the goals of issue 14 are on that mean and on every view).

``--cache DIR`` keeps each view's detections (the slow part) in DIR and reuses them, so a change to
the solve is measured in seconds; ``--quality high`` runs BlazePose Heavy from ``--models-dir``.

Run:  .venv/bin/python bench/accuracy.py [--json] [--views] [--cache DIR] [--quality high --models-dir D]
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mocapd.pipeline.run import Analysis, JobSettings, analyse_video
from mocapd.pipeline.skeleton import DEFAULT_SKELETON

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pose2sim_balancing"
VIDEO = DATA / "cam01.mp4"
TRC = DATA / "BalancingTrial_0-100_triangulated.trc"
TRC_FILTERED = DATA / "BalancingTrial_0-100_filt_butterworth.trc"
CALIB = DATA / "Calib_qualisys.toml"

# TRC marker order (21 markers) and our joints for the 12 compared limb joints.
TRC_MARKERS = (
    "RHip RKnee RAnkle RBigToe RSmallToe RHeel LHip LKnee LAnkle LBigToe LSmallToe LHeel "
    "Neck Head Nose RShoulder RElbow RWrist LShoulder LElbow LWrist"
).split()
PAIRS = {
    "RShoulder": "upperarm_r", "RElbow": "lowerarm_r", "RWrist": "hand_r",
    "LShoulder": "upperarm_l", "LElbow": "lowerarm_l", "LWrist": "hand_l",
    "RHip": "thigh_r", "RKnee": "calf_r", "RAnkle": "foot_r",
    "LHip": "thigh_l", "LKnee": "calf_l", "LAnkle": "foot_l",
}  # fmt: skip
MP_INDEX = {"RShoulder": 12, "RElbow": 14, "RWrist": 16, "LShoulder": 11, "LElbow": 13, "LWrist": 15,
            "RHip": 24, "RKnee": 26, "RAnkle": 28, "LHip": 23, "LKnee": 25, "LAnkle": 27}  # fmt: skip
NAMES = list(PAIRS)
HIPS = [NAMES.index("RHip"), NAMES.index("LHip")]


def reference_camera_frame(trc: Path = TRC, camera: str = "cam_01") -> tuple[np.ndarray, float]:
    """Reference joints (F, 12, 3) in the ``camera`` (cam01) frame (metres) and its true f_x (px)."""
    cal = tomllib.loads(CALIB.read_text())[camera]
    rot = Rotation.from_rotvec(cal["rotation"]).as_matrix()
    t = np.asarray(cal["translation"])
    rows = [line.split("\t") for line in trc.read_text().splitlines()[5:] if line.strip()]
    xyz = np.array([[float(v) for v in r[2 : 2 + 3 * len(TRC_MARKERS)]] for r in rows]).reshape(
        -1, len(TRC_MARKERS), 3
    )
    world = xyz[..., [2, 0, 1]]  # OpenSim Y-up -> the calibration's Z-up world
    cam = world @ rot.T + t  # (F, 21, 3)
    return cam[:, [TRC_MARKERS.index(n) for n in NAMES]], float(cal["matrix"][0][0])


def ours_camera_frame(a: Analysis, positions_world: np.ndarray) -> np.ndarray:
    """World joints (F, K, 3) -> the camera frame (OpenCV axes)."""
    return (positions_world - a.placement.camera_position_m) @ a.placement.world_from_camera


def _procrustes(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Similarity-align p (K, 3) onto g (K, 3) (Umeyama)."""
    mp, mg = p.mean(0), g.mean(0)
    pc, gc = p - mp, g - mg
    u, s, vt = np.linalg.svd(pc.T @ gc)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rot = u @ fix @ vt
    scale = (s * np.diag(fix)).sum() / (pc**2).sum()
    return scale * pc @ rot + mg


def metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """MPJPE, PA-MPJPE (mm) and acceleration error (mm/frame^2) of pred vs gt, both (F, 12, 3)."""
    pr = pred - pred[:, HIPS].mean(1, keepdims=True)
    gr = gt - gt[:, HIPS].mean(1, keepdims=True)
    mpjpe = float(np.linalg.norm(pr - gr, axis=-1).mean() * 1000)
    pa = float(
        np.mean(
            [np.linalg.norm(_procrustes(p, g) - g, axis=-1).mean() for p, g in zip(pred, gt, strict=True)]
        )
        * 1000
    )
    acc_p = pr[:-2] - 2 * pr[1:-1] + pr[2:]
    acc_g = gr[:-2] - 2 * gr[1:-1] + gr[2:]
    accel = float(np.linalg.norm(acc_p - acc_g, axis=-1).mean() * 1000)
    return {
        "mpjpe_mm": round(mpjpe, 1),
        "pa_mpjpe_mm": round(pa, 1),
        "accel_err_mm_per_frame2": round(accel, 2),
    }


def per_joint_mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The root-aligned MPJPE of `metrics`, per joint (its mean over the joints is the MPJPE)."""
    pr = pred - pred[:, HIPS].mean(1, keepdims=True)
    gr = gt - gt[:, HIPS].mean(1, keepdims=True)
    err = np.linalg.norm(pr - gr, axis=-1).mean(0) * 1000
    return {name: round(float(e), 1) for name, e in zip(NAMES, err, strict=True)}


def bone_length_spread_mm(a: Analysis) -> float:
    pos = a.motion.world_positions_m()  # (F, J, 3)
    spreads = []
    for j, p in enumerate(DEFAULT_SKELETON.parents):
        if p > 0:
            spreads.append(np.std(np.linalg.norm(pos[:, j] - pos[:, p], axis=-1)))
    return float(max(spreads) * 1000)


QUALITY = {"model_quality": "standard", "models_dir": None}
CACHE: dict[str, Path | None] = {"dir": None}


def _cached_detect(real):  # type: ignore[no-untyped-def]
    """``detect_window`` that keeps its track in CACHE["dir"] per video and model (no preview copy)."""
    import dataclasses

    from mocapd.pipeline.pose import PoseTrack

    def detect(source, info, *args, **kwargs):  # type: ignore[no-untyped-def]
        model = kwargs.get("pose_model")
        path = CACHE["dir"] / f"{Path(source).stem}-{getattr(model, 'name', 'full')}.npz"  # type: ignore[operator]
        if path.exists():
            z = np.load(path)
            return PoseTrack(z["time_s"], tuple(int(v) for v in z["image_size_px"]), z["landmarks_px"],
                             z["world_m"], z["visibility"], z["person"], z["valid"]), None
        kwargs["copy_dir"] = None
        track, _ = real(source, info, *args, **kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f.name: np.asarray(getattr(track, f.name)) for f in dataclasses.fields(track)})
        return track, None

    return detect


def run(focal_px: float | None, video: Path = VIDEO) -> Analysis:
    settings = JobSettings(("default",), 60, "full_body", 0.0, 10.0, focal_length_px=focal_px,
                           model_quality=str(QUALITY["model_quality"]), models_dir=QUALITY["models_dir"])
    if CACHE["dir"] is not None:
        import mocapd.pipeline.run as run_module

        real = run_module.detect_window
        run_module.detect_window = _cached_detect(real)  # type: ignore[assignment]
        try:
            return analyse_video(video, settings, lambda stage, fraction: None)
        finally:
            run_module.detect_window = real  # type: ignore[assignment]
    return analyse_video(video, settings, lambda stage, fraction: None)


def other_views() -> dict[str, object]:
    """The same comparison (solved vs filtered triangulation, true focal) on cam02-04: a check that a
    change is not fitted to cam01's view (cam02 is VP9; BlazePose does badly on it)."""
    out: dict[str, object] = {}
    for cam in ("cam_02", "cam_03", "cam_04"):
        video = DATA / f"{cam.replace('_', '')}.mp4"
        if not video.exists():
            continue
        gt, f_true = reference_camera_frame(TRC_FILTERED, cam)
        a = run(f_true, video)
        n = min(gt.shape[0], a.motion.num_frames)
        ids = [DEFAULT_SKELETON.index(PAIRS[name]) for name in NAMES]
        solved = ours_camera_frame(a, a.motion.world_positions_m()[:n, ids])
        depth = float(solved[:, HIPS].mean(1)[:, 2].mean())
        gt_depth = float(gt[:n, HIPS].mean(1)[:, 2].mean())
        raw = a.track.world_m[:n, [MP_INDEX[name] for name in NAMES]]
        out[cam] = {
            **metrics(solved, gt[:n]),
            "root_depth_err_pct": round(100 * (depth - gt_depth) / gt_depth, 1),
            "bone_length_spread_mm": round(bone_length_spread_mm(a), 4),
            "raw_blazepose_world": metrics(raw, gt[:n]),
        }
    return out


def view_summary(cam01: dict[str, object], others: dict[str, object]) -> dict[str, object]:
    """PA-MPJPE (mm) of the solved skeleton and of the raw landmarks on each view (vs the filtered
    triangulation), their means over the views and the ratio solved / raw of the means."""
    views: dict[str, dict[str, object]] = {"cam_01": cam01, **others}  # type: ignore[dict-item]
    solved = {k: v["pa_mpjpe_mm"] for k, v in views.items()}
    raw = {k: v["raw_blazepose_world"]["pa_mpjpe_mm"] for k, v in views.items()}  # type: ignore[index]
    ms, mr = float(np.mean(list(solved.values()))), float(np.mean(list(raw.values())))
    return {"solved_pa_mpjpe_mm": solved, "raw_pa_mpjpe_mm": raw, "solved_mean": round(ms, 1),
            "raw_mean": round(mr, 1), "ratio": round(ms / mr, 3),
            "accel_err": {k: v["accel_err_mm_per_frame2"] for k, v in views.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--views", action="store_true", help="also report cam02-04 (each with its own calibration)"
    )
    parser.add_argument("--cache", type=Path, help="keep and reuse each view's detections here")
    parser.add_argument("--quality", choices=("standard", "high"), default="standard")
    parser.add_argument("--models-dir", help="where `mocapd models fetch` installed the Heavy model")
    args = parser.parse_args()
    CACHE["dir"] = args.cache
    QUALITY.update(model_quality=args.quality, models_dir=args.models_dir)
    if not VIDEO.exists():
        print(f"test data not found: {VIDEO}", file=sys.stderr)
        return 2
    gt, f_true = reference_camera_frame()
    gt_filtered, _ = reference_camera_frame(TRC_FILTERED)
    results: dict[str, object] = {"reference": TRC.name, "frames": int(gt.shape[0]), "true_focal_px": f_true}
    for label, focal in (("true_focal", f_true), ("diagonal_guess", None)):
        a = run(focal)
        n = min(gt.shape[0], a.motion.num_frames)
        ids = [DEFAULT_SKELETON.index(PAIRS[name]) for name in NAMES]
        solved = ours_camera_frame(a, a.motion.world_positions_m()[:n, ids])
        hip_depth = float(solved[:, [HIPS[0], HIPS[1]]].mean(1)[:, 2].mean())
        gt_depth = float(gt[:n, HIPS].mean(1)[:, 2].mean())
        entry: dict[str, object] = {
            "focal_px": round(a.intrinsics.focal_px, 1),
            "focal_source": a.intrinsics.source,
            "root_depth_m": round(hip_depth, 3),
            "true_root_depth_m": round(gt_depth, 3),
            "root_depth_err_pct": round(100 * (hip_depth - gt_depth) / gt_depth, 1),
        }
        if label == "true_focal":
            raw = a.track.world_m[:n, [MP_INDEX[name] for name in NAMES]]  # MediaPipe axes = camera axes
            for ref_name, ref in (("vs_triangulated", gt), ("vs_filtered_triangulated", gt_filtered)):
                entry[ref_name] = {
                    "solved": metrics(solved, ref[:n]),
                    "raw_blazepose_world": metrics(raw, ref[:n]),
                }
            entry["bone_length_spread_mm"] = round(bone_length_spread_mm(a), 4)
        results[label] = entry
        if label == "true_focal":
            entry["per_joint_mpjpe_mm"] = per_joint_mpjpe_mm(solved, gt_filtered[:n])
    if args.views:
        others = other_views()
        results["other_views_vs_filtered"] = others
        tf = results["true_focal"]["vs_filtered_triangulated"]  # type: ignore[index]
        cam01 = {**tf["solved"], "raw_blazepose_world": tf["raw_blazepose_world"]}
        results["views_summary"] = view_summary(cam01, others)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
