"""Placing the hip-centred BlazePose body in the world: camera intrinsics, root translation from a
least-squares camera fit, gravity and ground from the feet.

**Intrinsics.** Pinhole, principal point at the image centre, no distortion. The focal length
comes from, in order: the ``focal_length_px`` hint; ``camera_fov_deg`` read as the *horizontal*
field of view, f = (w / 2) / tan(fov / 2); the default guess f = sqrt(w^2 + h^2) (about 53 deg
diagonal, the CLIFF/WHAM/GVHMR convention). `CameraIntrinsics.source` records which.

**Root translation.** World landmarks X_i are hip-centred with camera-aligned axes, so the camera
sees X_i + t. With pixels (u_i, v_i) and principal point (c_x, c_y), u_i = f (X_i + t_x) /
(Z_i + t_z) + c_x gives two linear equations in t per landmark:

    f t_x - (u_i - c_x) t_z = (u_i - c_x) Z_i - f X_i
    f t_y - (v_i - c_y) t_z = (v_i - c_y) Z_i - f Y_i

solved per frame by weighted least squares (weights = visibility; torso and leg landmarks).

**World frame.** Camera axes map to ours by (x, y, z) -> (x, z, -y) (camera upright: image down
is gravity). If foot-contact points spread enough over the floor, a plane fitted to them (SVD)
corrects the camera pitch and roll (points along one line only: the tilt along that line);
otherwise gravity comes from balance (`balance_up`: on average over a clip the centre of mass stays
above the supporting foot), within ``max_tilt_deg`` of the upright-camera guess, which stays when
neither cue is usable. The ground is a low
(3rd) percentile of the lowest stance-foot point, minus that point's rest height above the sole,
and becomes z = 0. The horizontal origin is under the pelvis at the first frame, so the camera
sits at -Y looking along +Y: the world's -Y faces the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.clean import butterworth_zero_phase, fill_gaps
from mocapd.pipeline.landmarks import zup_from_mediapipe
from mocapd.pipeline.layout import BLAZEPOSE_33
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Skeleton

__all__ = [
    "FIT_LANDMARKS",
    "balance_up",
    "centre_of_mass",
    "support_drift_m",
    "CameraIntrinsics",
    "WorldPlacement",
    "camera_intrinsics",
    "fit_body_rotation",
    "fit_root_translation",
    "place_in_world",
    "smooth_rotations",
    "smooth_translation",
]

FloatArray = NDArray[np.float64]

# Shoulders, hips, knees, ankles, heels, foot indices: stable, well-scaled landmarks for the fit.
FIT_LANDMARKS: tuple[int, ...] = tuple(
    i for pair in BLAZEPOSE_33.pairs("shoulder", "hip", "knee", "ankle", "heel", "foot_index") for i in pair
)
# The rotation refinement also uses the arms (they give the shape its width and depth).
_ROTATION_LANDMARKS: tuple[int, ...] = tuple(
    i
    for pair in BLAZEPOSE_33.pairs("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "heel", "foot_index")
    for i in pair
)
# Cauchy scale of the rotation refinement in multiples of each frame's median reprojection error: the
# usual 2.385 sigma (95 % efficiency under Gaussian noise), with sigma = median / 1.177 for the norms of
# 2D Gaussian errors. cam01 MPJPE is flat over 0.5-2 (109.0-109.3 mm; 110.0 at 5, 110.3 without).
ROTATION_ROBUST_SCALE: float | None = 2.0
# Landmarks a rotation fit needs (visible ones; for the robust fit also inliers).
_MIN_FIT_LANDMARKS = 6


@dataclass(frozen=True)
class CameraIntrinsics:
    focal_px: float
    cx_px: float
    cy_px: float
    width_px: int
    height_px: int
    source: str  # "focal_length_px" | "camera_fov_deg" | "default_diagonal"

    def as_dict(self) -> dict[str, object]:
        return {
            "focalLengthPx": round(self.focal_px, 3),
            "focalSource": self.source,
            "principalPointPx": [round(self.cx_px, 3), round(self.cy_px, 3)],
            "imageSizePx": [self.width_px, self.height_px],
            "horizontalFovDeg": round(math.degrees(2.0 * math.atan(0.5 * self.width_px / self.focal_px)), 3),
        }


def camera_intrinsics(
    width_px: int,
    height_px: int,
    *,
    focal_length_px: float | None = None,
    camera_fov_deg: float | None = None,
) -> CameraIntrinsics:
    """Pinhole intrinsics for a display frame of ``width_px`` x ``height_px`` (see module doc)."""
    if focal_length_px is not None and focal_length_px > 0:
        f, source = float(focal_length_px), "focal_length_px"
    elif camera_fov_deg is not None and 0.0 < camera_fov_deg < 180.0:
        f, source = 0.5 * width_px / math.tan(math.radians(camera_fov_deg) / 2.0), "camera_fov_deg"
    else:
        f, source = math.hypot(width_px, height_px), "default_diagonal"
    return CameraIntrinsics(f, 0.5 * width_px, 0.5 * height_px, int(width_px), int(height_px), source)


def fit_root_translation(
    landmarks_px: FloatArray,
    world_m: FloatArray,
    weights: FloatArray,
    intrinsics: CameraIntrinsics,
    *,
    landmark_ids: tuple[int, ...] = FIT_LANDMARKS,
    min_points: int = 4,
) -> FloatArray:
    """Per-frame camera-frame translation t (F, 3) of the world-landmark origin (OpenCV axes).

    ``landmarks_px`` (F, 33, 2), ``world_m`` (F, 33, 3) in MediaPipe axes, ``weights`` (F, 33).
    Frames with fewer than ``min_points`` usable landmarks, or a fit behind the camera, are NaN.
    """
    ids = np.asarray(landmark_ids)
    uv = landmarks_px[:, ids] - np.array([intrinsics.cx_px, intrinsics.cy_px])  # (F, N, 2)
    xyz = world_m[:, ids]  # (F, N, 3)
    w = np.where(np.isfinite(uv).all(-1) & np.isfinite(xyz).all(-1), weights[:, ids], 0.0)  # (F, N)
    w = np.clip(np.nan_to_num(w), 0.0, None)
    uv = np.nan_to_num(uv)
    xyz = np.nan_to_num(xyz)
    f = intrinsics.focal_px
    fr, n = w.shape
    a = np.zeros((fr, n, 2, 3))  # rows: u-equation, v-equation
    a[:, :, 0, 0] = f
    a[:, :, 0, 2] = -uv[..., 0]
    a[:, :, 1, 1] = f
    a[:, :, 1, 2] = -uv[..., 1]
    b = np.stack(
        [uv[..., 0] * xyz[..., 2] - f * xyz[..., 0], uv[..., 1] * xyz[..., 2] - f * xyz[..., 1]], axis=-1
    )  # (F, N, 2)
    a = a.reshape(fr, 2 * n, 3) / f  # scale rows to order 1
    b = b.reshape(fr, 2 * n) / f
    ww = np.repeat(w, 2, axis=1)  # (F, 2N)
    ata = np.einsum("fi,fij,fik->fjk", ww, a, a)  # (F, 3, 3)
    atb = np.einsum("fi,fij,fi->fj", ww, a, b)  # (F, 3)
    out = np.full((fr, 3), np.nan)
    usable = np.sum(w > 0, axis=1) >= min_points
    usable &= np.abs(np.linalg.det(ata)) > 1e-12
    if usable.any():
        out[usable] = np.linalg.solve(ata[usable], atb[usable][..., None])[..., 0]
    out[out[:, 2] <= 0] = np.nan
    return out


def _rotvec_to_matrix(rv: FloatArray) -> FloatArray:
    """Rodrigues: rotation vectors (..., 3) -> matrices (..., 3, 3)."""
    theta = np.linalg.norm(rv, axis=-1)[..., None, None]  # (..., 1, 1)
    k = np.where(theta > 1e-12, rv[..., None, :] / np.maximum(theta, 1e-12), 0.0)[..., 0, :]  # (..., 3)
    kx = np.zeros(rv.shape + (3,))
    kx[..., 0, 1], kx[..., 0, 2] = -k[..., 2], k[..., 1]
    kx[..., 1, 0], kx[..., 1, 2] = k[..., 2], -k[..., 0]
    kx[..., 2, 0], kx[..., 2, 1] = -k[..., 1], k[..., 0]
    eye = np.broadcast_to(np.eye(3), kx.shape)
    return cast("FloatArray", eye + np.sin(theta) * kx + (1.0 - np.cos(theta)) * (kx @ kx))


def _matrix_to_rotvec(m: FloatArray) -> FloatArray:
    """Inverse Rodrigues for rotations below 180 deg, (..., 3, 3) -> (..., 3)."""
    cos = np.clip((np.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)  # (...,)
    v = np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    sin = np.sin(theta)[..., None]
    return np.where(sin > 1e-9, v * (theta[..., None] / np.maximum(2.0 * sin, 1e-12)), 0.5 * v)


def fit_body_rotation(
    landmarks_px: FloatArray,
    world_m: FloatArray,
    weights: FloatArray,
    intrinsics: CameraIntrinsics,
    translation_cam: FloatArray,
    *,
    landmark_ids: tuple[int, ...] = _ROTATION_LANDMARKS,
    iterations: int = 8,
    max_angle_deg: float = 25.0,
    robust_scale: float | None = ROTATION_ROBUST_SCALE,
) -> FloatArray:
    """Per-frame rotation (F, 3, 3) of the world landmarks into the camera frame (PnP refinement).

    BlazePose's world landmarks are only roughly camera-aligned. Starting from R = I and the
    translation-only fit, Gauss-Newton (Levenberg-damped, all frames at once, numeric Jacobian)
    minimises sum_i w_i rho(|pi(R X_i + t) - (u_i, v_i)|) over a rotation update exp([d]x) R and t.

    ``rho`` is the Cauchy loss ``s^2 log(1 + (r / s)^2)`` with ``s = robust_scale`` times the frame's
    median reprojection error (iteratively reweighted: every step re-weights each landmark by
    ``1 / (1 + (r / s)^2)`` from the current residuals); ``robust_scale=None`` gives plain least
    squares. Out-of-plane rotation shows in the 2D landmarks only through the relative depths of the
    3D ones, so a limb whose 3D depth is off (BlazePose's outstretched arm: 12-20 cm) turns a plain
    fit towards it; the robust loss lets the landmarks that agree with each other set the rotation.
    Frames where fewer than 6 landmarks stay inliers of the robust fit (residual within the scale)
    have no consistent majority to follow and take the plain least-squares solution instead.
    Frames whose solution turns by more than ``max_angle_deg`` or does not lower the (final,
    re-weighted) reprojection error keep R = I. Frames without a translation get NaN.
    """
    ids = np.asarray(landmark_ids)
    uv = landmarks_px[:, ids]  # (F, N, 2)
    xyz = world_m[:, ids]  # (F, N, 3)
    w = np.where(np.isfinite(uv).all(-1) & np.isfinite(xyz).all(-1), weights[:, ids], 0.0)  # (F, N)
    w = np.clip(np.nan_to_num(w), 0.0, None)
    uv = np.nan_to_num(uv)
    xyz = np.nan_to_num(xyz)
    f, c = intrinsics.focal_px, np.array([intrinsics.cx_px, intrinsics.cy_px])
    ok = np.isfinite(translation_cam).all(axis=1) & (np.sum(w > 0, axis=1) >= _MIN_FIT_LANDMARKS)
    frames = xyz.shape[0]
    rot = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
    t = np.where(ok[:, None], np.nan_to_num(translation_cam), 0.0)
    t[~ok, 2] = 1.0
    rot0, t0 = rot.copy(), t.copy()

    def errors(r: FloatArray, tt: FloatArray) -> FloatArray:
        p = np.einsum("fij,fnj->fni", r, xyz) + tt[:, None, :]  # (F, N, 3)
        z = np.where(np.abs(p[..., 2:]) > 1e-6, p[..., 2:], 1e-6)
        return cast("FloatArray", f * p[..., :2] / z + c - uv)  # (F, N, 2) pixels

    def robust_weights(r: FloatArray, tt: FloatArray) -> FloatArray:
        if robust_scale is None:
            return w
        e = np.linalg.norm(errors(r, tt), axis=-1)  # (F, N)
        used = np.where(w > 0, e, np.nan)
        med = np.ones(frames)
        some = np.isfinite(used).any(axis=1)
        med[some] = np.nanmedian(used[some], axis=1)
        scale = robust_scale * np.maximum(med, 1e-3)[:, None]
        return cast("FloatArray", w / (1.0 + (e / scale) ** 2))

    def residual(r: FloatArray, tt: FloatArray, sw: FloatArray) -> FloatArray:
        return (errors(r, tt) * sw).reshape(frames, -1)  # (F, 2N)

    rot, t = rot0.copy(), t0.copy()  # Gauss-Newton, re-weighting at every step when robust
    eps = 1e-6
    lam = 1e-3
    for _ in range(iterations):
        sw = np.sqrt(robust_weights(rot, t))[..., None]  # (F, N, 1)
        base = residual(rot, t, sw)
        jac = np.empty(base.shape + (6,))
        for k in range(3):
            d = np.zeros(3)
            d[k] = eps
            jac[..., k] = (residual(_rotvec_to_matrix(d) @ rot, t, sw) - base) / eps
            dt = np.zeros(3)
            dt[k] = eps
            jac[..., 3 + k] = (residual(rot, t + dt, sw) - base) / eps
        jtj = np.einsum("fik,fil->fkl", jac, jac)  # (F, 6, 6)
        jtr = np.einsum("fik,fi->fk", jac, base)  # (F, 6)
        damp = lam * (np.trace(jtj, axis1=1, axis2=2)[:, None, None] / 6.0 + 1e-9) * np.eye(6)
        step = -np.linalg.solve(jtj + damp, jtr[..., None])[..., 0]  # (F, 6)
        rot = _rotvec_to_matrix(step[:, :3]) @ rot
        t = t + step[:, 3:]

    final_w = robust_weights(rot, t)  # (F, N)
    sw = np.sqrt(final_w)[..., None]
    cost0 = np.sum(residual(rot0, t0, sw) ** 2, axis=1)
    cost = np.sum(residual(rot, t, sw) ** 2, axis=1)
    angle_deg = np.degrees(np.linalg.norm(_matrix_to_rotvec(rot), axis=1))
    keep = ok & (cost < cost0) & (angle_deg <= max_angle_deg) & np.isfinite(rot).all(axis=(1, 2))
    rot[~keep] = np.eye(3)
    rot[~ok] = np.nan
    if robust_scale is not None:
        # Inliers: landmarks the Cauchy loss keeps at least half their weight (residual <= scale). Where
        # fewer than the fit's minimum remain, the reweighting has collapsed onto a near-minimal subset
        # (few or low-visibility landmarks: the person entering the picture or occluded) and its rotation
        # is as arbitrary as a fit to that many points: those frames take the least-squares fit instead
        # (every frame is fitted on its own, so fitting only these frames gives their plain fit).
        inliers = np.sum((w > 0) & (final_w >= 0.5 * w), axis=1)
        collapsed = ok & (inliers < _MIN_FIT_LANDMARKS)
        if collapsed.any():
            rot[collapsed] = fit_body_rotation(
                landmarks_px[collapsed], world_m[collapsed], weights[collapsed], intrinsics,
                translation_cam[collapsed], landmark_ids=landmark_ids, iterations=iterations,
                max_angle_deg=max_angle_deg, robust_scale=None,
            )  # fmt: skip
    return rot


def smooth_rotations(rot: FloatArray, fps: float, cutoff_hz: float = 2.0) -> FloatArray:
    """Zero-phase low-pass of small rotations (F, 3, 3) through their rotation vectors; NaN frames
    are filled (held / bridged) first."""
    rv = _matrix_to_rotvec(np.where(np.isfinite(rot), rot, 0.0) + np.where(np.isfinite(rot), 0.0, np.eye(3)))
    rv[~np.isfinite(rot).all(axis=(1, 2))] = np.nan
    if not np.isfinite(rv).any():
        return np.broadcast_to(np.eye(3), rot.shape).copy()
    return _rotvec_to_matrix(_smooth_columns(rv, fps, cutoff_hz))


def smooth_translation(
    translation_cam: FloatArray, fps: float, *, lateral_cutoff_hz: float = 4.0, depth_cutoff_hz: float = 1.5
) -> FloatArray:
    """The camera translation (F, 3, OpenCV axes) `place_in_world` places the body with: gaps held or
    bridged, depth (the noisiest axis) low-passed at ``depth_cutoff_hz``, the image-plane axes at
    ``lateral_cutoff_hz``."""
    t = np.asarray(translation_cam, dtype=np.float64)
    if not np.isfinite(t).any():
        raise ValueError("no frame has a camera fit")
    t_s = np.empty_like(t)
    t_s[:, [0, 1]] = _smooth_columns(t[:, [0, 1]], fps, lateral_cutoff_hz)
    t_s[:, [2]] = _smooth_columns(t[:, [2]], fps, depth_cutoff_hz)
    return t_s


@dataclass(frozen=True)
class WorldPlacement:
    joints_m: FloatArray  # (F, J, 3) world positions, Z up, ground at z = 0
    pelvis_m: FloatArray  # (F, 3)
    camera_position_m: FloatArray  # (3,) camera centre in the world frame
    world_from_camera: FloatArray  # (3, 3) rotation: camera (OpenCV axes) -> world
    ground_method: str  # "plane_fit" | "balance" | "upright_lowest_foot"
    camera_pitch_deg: float  # tilt of the optical axis below the horizon (positive = looking down)
    camera_roll_deg: float

    def as_dict(self) -> dict[str, object]:
        return {
            "groundMethod": self.ground_method,
            "cameraPositionM": [round(float(v), 4) for v in self.camera_position_m],
            "cameraPitchDeg": round(self.camera_pitch_deg, 3),
            "cameraRollDeg": round(self.camera_roll_deg, 3),
        }


def _smooth_columns(x: FloatArray, fps: float, cutoff_hz: float) -> FloatArray:
    """Fill gaps (hold at the ends, linear inside) then zero-phase low-pass, column by column."""
    filled, _, _ = fill_gaps(x, max_gap_frames=x.shape[0])
    return butterworth_zero_phase(filled, fps, cutoff_hz)


def _rotation_between(a: FloatArray, b: FloatArray) -> FloatArray:
    """The smallest rotation matrix taking unit vector a to unit vector b (Rodrigues)."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        return np.eye(3)
    k = v / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return cast("FloatArray", np.eye(3) + s * kx + (1 - c) * (kx @ kx))


def _floor_normal(points: FloatArray, min_spread_m: float) -> FloatArray | None:
    """Upward unit normal of the floor through contact points (N, 3), or None if they do not spread.

    Principal axes by SVD. Points spread in two directions (both std >= ``min_spread_m`` / 2):
    the plane normal. Spread along one line only (a straight walk): the line must be horizontal,
    which fixes the tilt along it; the normal is the vector perpendicular to the line closest to
    the current up (+Z), so the roll about the line is left as the camera-upright guess.
    """
    centred = points - points.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    spread = sv / math.sqrt(points.shape[0])  # (3,) std along the principal axes
    up = np.array([0.0, 0.0, 1.0])
    if spread[1] >= min_spread_m / 2:
        normal = vt[2]
    elif spread[0] >= min_spread_m:
        line = vt[0]
        normal = up - (up @ line) * line
    else:
        return None
    norm = float(np.linalg.norm(normal))
    if norm < 1e-9:
        return None
    normal = normal / norm
    return cast("FloatArray | None", normal if normal[2] >= 0 else -normal)


# Segment mass fractions (Dempster, as tabulated by Winter) and the joints whose mean stands for each
# segment's centre of mass.
_SEGMENTS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (0.081, ("neck_01", "head")),
    (0.497, ("pelvis", "spine_01", "spine_02", "spine_03")),
    (0.028, ("upperarm_l", "lowerarm_l")),
    (0.028, ("upperarm_r", "lowerarm_r")),
    (0.022, ("lowerarm_l", "hand_l")),
    (0.022, ("lowerarm_r", "hand_r")),
    (0.100, ("thigh_l", "calf_l")),
    (0.100, ("thigh_r", "calf_r")),
    (0.061, ("calf_l", "foot_l", "ball_l")),
    (0.061, ("calf_r", "foot_r", "ball_r")),
)


def centre_of_mass(joints: FloatArray, skeleton: Skeleton = DEFAULT_SKELETON) -> FloatArray:
    """Whole-body centre of mass (F, 3) from joint positions (F, J, 3) with a segment-mass model."""
    total = np.zeros(joints.shape[:1] + (3,))
    weight = 0.0
    for mass, names in _SEGMENTS:
        ids = [skeleton.index(n) for n in names]
        total = total + mass * joints[:, ids].mean(axis=1)
        weight += mass
    return total / weight


def balance_up(joints: FloatArray, skeleton: Skeleton = DEFAULT_SKELETON, *, both_feet_m: float = 0.05) -> FloatArray | None:
    """Gravity's up direction from balance: a person who stays on their feet keeps the centre of mass
    above the support (the lower foot, or both feet when level) on average over a clip, so the mean
    unit vector support -> centre of mass points up. Found by fixed-point iteration from +Z (the lower
    foot depends on which way is up). None when too few frames are usable."""
    com = centre_of_mass(joints, skeleton)  # (F, 3)
    feet = np.stack(
        [joints[:, [skeleton.index("foot_l"), skeleton.index("ball_l")]].mean(axis=1),
         joints[:, [skeleton.index("foot_r"), skeleton.index("ball_r")]].mean(axis=1)],
        axis=1,
    )  # (F, 2, 3) foot centres
    up = np.array([0.0, 0.0, 1.0])
    for _ in range(4):
        h = feet @ up  # (F, 2)
        lower = np.where(np.nan_to_num(h[:, 0], nan=np.inf) <= np.nan_to_num(h[:, 1], nan=np.inf), 0, 1)
        support = feet[np.arange(len(feet)), lower]  # (F, 3)
        level = np.abs(h[:, 0] - h[:, 1]) < both_feet_m
        support = np.where(level[:, None], feet.mean(axis=1), support)
        v = com - support  # (F, 3)
        n = np.linalg.norm(v, axis=1)
        ok = np.isfinite(n) & (n > 0.2)
        if ok.sum() < 10:
            return None
        mean = (v[ok] / n[ok, None]).mean(axis=0)
        up = mean / np.linalg.norm(mean)
    return up


# The ground is a low percentile of the stance soles: low enough that a short stance on the real floor
# (landing after jumping off a box) wins over a long one on something raised; not the minimum, which
# one outlier frame would set.
GROUND_PERCENTILE = 3.0


def support_drift_m(
    world: FloatArray,
    fps: float,
    skeleton: Skeleton = DEFAULT_SKELETON,
    *,
    flight_speed_mps: float = 0.6,
    max_correction_m: float = 0.10,
    cutoff_hz: float = 1.0,
) -> FloatArray:
    """Per-frame height (F,) of the supporting sole above the ground plane, to subtract from the body.

    Monocular depth noise makes a planted foot bob up and down once the camera is tilted. The lowest
    sole point is the support unless it rises or falls fast (a jump, a fall): there it should sit on
    the ground, and its height is the drift. Frames whose lowest sole is more than ``max_correction_m``
    off the ground plane (a jump's apex, standing on a box) are not supports of that plane: there the
    drift is interpolated. The result is low-passed and clamped to +-``max_correction_m``. (Horizontal
    speed cannot tell stance here: the same noise moves a planted foot sideways.)
    """
    names = ("foot_l", "ball_l", "foot_r", "ball_r")
    ids = [skeleton.index(n) for n in names]
    rest_z = skeleton.rest_positions_m()[ids, 2]  # (4,) joint heights above the sole at rest
    pts = world[:, ids]  # (F, 4, 3)
    sole = pts[..., 2] - rest_z  # (F, 4)
    f = world.shape[0]
    if f < 3:
        return np.zeros(f)
    lowest = np.argmin(np.where(np.isfinite(sole), sole, np.inf), axis=1)  # (F,)
    rows = np.arange(f)
    low_pts = pts[rows, lowest]  # (F, 3)
    low_z = butterworth_zero_phase(fill_gaps(low_pts[:, 2:], max_gap_frames=f)[0], fps, 4.0)[:, 0]  # (F,)
    vz = np.abs(np.gradient(low_z)) * fps  # (F,) vertical speed of the lowest point
    low_sole = sole[rows, lowest]  # (F,)
    # A support near the ground plane, not rising or falling fast: a jump's apex or a box top is not one.
    stance = (vz < flight_speed_mps) & (np.abs(low_sole) < max_correction_m)
    if stance.mean() < 0.2:
        return np.zeros(f)
    drift = np.where(stance, low_sole, np.nan)[:, None]  # (F, 1)
    filled, _, _ = fill_gaps(drift, max_gap_frames=f)
    drift = np.clip(butterworth_zero_phase(filled, fps, cutoff_hz)[:, 0], -max_correction_m, max_correction_m)
    return np.nan_to_num(drift)


def _foot_points(joints: FloatArray, skeleton: Skeleton) -> tuple[FloatArray, FloatArray]:
    """Ball joints (F, 2, 3) and their rest heights above the sole (2,)."""
    ids = [skeleton.index("ball_l"), skeleton.index("ball_r")]
    rest_z = skeleton.rest_positions_m()[ids, 2]  # (2,)
    return joints[:, ids], rest_z


def place_in_world(
    joints_cam: FloatArray,
    translation_cam: FloatArray,
    fps: float,
    *,
    skeleton: Skeleton = DEFAULT_SKELETON,
    lateral_cutoff_hz: float = 4.0,
    depth_cutoff_hz: float = 1.5,
    stance_speed_mps: float = 0.4,
    min_plane_spread_m: float = 0.5,
    max_tilt_deg: float = 40.0,
    min_balance_tilt_deg: float = 10.0,
    refined_cam: FloatArray | None = None,
) -> WorldPlacement:
    """Body-centred joints (F, J, 3, our axes, camera-aligned) + camera translation (F, 3, OpenCV
    axes) -> world joints with gravity along -Z and the ground at z = 0 (see module doc).

    With ``refined_cam`` (F, J, 3, like ``joints_cam``: the same joints refined against the image),
    gravity and the stance frames are found from ``joints_cam`` as without it, and the refined joints
    are the ones placed: the ground, the origin and the support drift are theirs.

    The translation is smoothed first (gaps held or bridged; depth, the noisiest axis, at
    ``depth_cutoff_hz``, the image-plane axes at ``lateral_cutoff_hz``).
    """
    f = joints_cam.shape[0]
    t_s = smooth_translation(translation_cam, fps, lateral_cutoff_hz=lateral_cutoff_hz,
                             depth_cutoff_hz=depth_cutoff_hz)  # fmt: skip
    cam = joints_cam + zup_from_mediapipe(t_s)[:, None, :]  # (F, J, 3) upright-camera frame, camera at 0

    # Gravity: plane through stance foot points if they spread enough, else the camera is upright.
    balls, rest_z = _foot_points(cam, skeleton)  # (F, 2, 3), (2,)
    speed = np.linalg.norm(np.gradient(balls, axis=0), axis=-1) * fps if f > 1 else np.zeros((f, 2))  # (F, 2)
    lowest = np.nanargmin(np.where(np.isfinite(balls[..., 2]), balls[..., 2], np.inf), axis=1)  # (F,)
    rows = np.arange(f)
    stance_pts = balls[rows, lowest]  # (F, 3)
    stance = (speed[rows, lowest] < stance_speed_mps) & np.isfinite(stance_pts).all(axis=1)
    rot = np.eye(3)
    method = "upright_lowest_foot"
    pts = stance_pts[stance]
    if pts.shape[0] >= 10:
        normal = _floor_normal(pts, min_plane_spread_m)
        if normal is not None and math.degrees(math.acos(min(1.0, float(normal[2])))) <= max_tilt_deg:
            rot = _rotation_between(normal, np.array([0.0, 0.0, 1.0]))
            method = "plane_fit"
    if method == "upright_lowest_foot":
        up = balance_up(cam, skeleton)
        tilt = math.degrees(math.acos(min(1.0, float(up[2])))) if up is not None else 0.0
        # Balance is a coarse cue (a few degrees of bias on a walk seen by a level camera): it corrects a
        # clearly tilted camera, and leaves the upright guess alone below ``min_balance_tilt_deg``.
        if up is not None and min_balance_tilt_deg <= tilt <= max_tilt_deg:
            rot = _rotation_between(up, np.array([0.0, 0.0, 1.0]))
            method = "balance"
    world = cam @ rot.T  # (F, J, 3)
    if refined_cam is not None:
        world = (refined_cam + zup_from_mediapipe(t_s)[:, None, :]) @ rot.T
    balls_w = world[:, [skeleton.index("ball_l"), skeleton.index("ball_r")]]  # (F, 2, 3)
    sole_z = balls_w[..., 2] - rest_z  # (F, 2) sole height implied by each ball joint
    lowest_sole = np.nanmin(np.where(np.isfinite(sole_z), sole_z, np.inf), axis=1)  # (F,)
    pool = lowest_sole[stance & np.isfinite(lowest_sole)]
    if pool.size == 0:
        pool = lowest_sole[np.isfinite(lowest_sole)]
    ground_z = float(np.percentile(pool, GROUND_PERCENTILE)) if pool.size else float(np.nanmin(world[..., 2]))
    pelvis = world[:, skeleton.index("pelvis")]  # (F, 3)
    first = int(np.flatnonzero(np.isfinite(pelvis).all(axis=1))[0])
    offset = np.array([pelvis[first, 0], pelvis[first, 1], ground_z])
    world = world - offset
    world[..., 2] -= support_drift_m(world, fps, skeleton)[:, None]
    camera_position = -offset  # the camera was at the origin of the upright camera frame
    # world_from_camera = rot @ (zup axes map)
    zup = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    world_from_camera = rot @ zup
    optical_axis = world_from_camera @ np.array([0.0, 0.0, 1.0])
    image_right = world_from_camera @ np.array([1.0, 0.0, 0.0])
    pitch = math.degrees(math.asin(float(np.clip(-optical_axis[2], -1.0, 1.0))))
    roll = math.degrees(math.asin(float(np.clip(image_right[2], -1.0, 1.0))))
    return WorldPlacement(
        joints_m=world,
        pelvis_m=world[:, skeleton.index("pelvis")],
        camera_position_m=camera_position,
        world_from_camera=world_from_camera,
        ground_method=method,
        camera_pitch_deg=pitch,
        camera_roll_deg=roll,
    )
