"""The per-job quality report (``quality.json``): figures computed from the pipeline's arrays.

``build_quality_report(QualityInputs) -> dict`` returns JSON-ready data with these stable keys
(camelCase like the rest of the API; ``null`` where a figure has no data):

``schemaVersion`` (1)
``frames``: ``total``, ``withPerson``, ``interpolated`` / ``held`` (frames where some joint was filled over a
    short gap / held at its last known position over a long one), ``personRatio`` (withPerson / total),
    ``durationS`` (total / sourceFps), ``longestGapS`` (longest run of frames without a person); given
    ``detected_mask``, also ``detected`` (frames where BlazePose returned any body), ``otherPerson``
    (detected but not the tracked person: another one, or the tracked one after a move the tracker lost)
    and ``otherPersonRangesS`` (``[start_s, end_s]`` of those runs, from the first frame).
``perJointConfidence``: BlazePose landmark name -> mean visibility over the frames with a person.
``jitter``: ``meanAccelerationMps2`` (mean over joints of each joint's mean ``|a|``), ``perJointMps2``
    (joint -> mean ``|a|``), ``meanJerkMps3`` (mean ``|j|`` over joints and frames), where, on the solved
    world positions ``p`` at ``motionFps``, ``a_t = (p_{t+1} - 2 p_t + p_{t-1}) fps^2`` and
    ``j_t = (p_{t+2} - 3 p_{t+1} + 3 p_t - p_{t-1}) fps^3``.
``boneLengthSpreadMm``: ``"parent-child"`` -> standard deviation over frames of the input bone length
    ``|x_child - x_parent|`` (before the solver fixes lengths), mm; ``boneLengthCvPercent``: the same
    divided by the mean length, %.
``footContacts`` (``null`` without contacts): ``left`` / ``right`` -> ``contactRatio`` (share of frames with
    any contact point of that foot down), ``skateSpeedCmS`` / ``maxSkateSpeedCmS`` (mean / max horizontal
    speed ``|xy_{t+1} - xy_t| fps`` of the contact points over consecutive frames both in contact, cm/s).
``robot`` (``null`` without a robot): ``frames``, ``validRatio``, ``limitViolations`` (count of frame x joint
    samples outside ``[lower, upper]``), ``maxLimitViolationRad``, ``jointsOutOfLimits``, ``speedViolations``
    (count of frame x joint steps with ``|dq| fps > velocity limit``), ``maxSpeedRatio``
    (max ``|dq| fps / limit``), ``solePenetrationMm`` (max depth of a sole point below z = 0), ``footSkate``
    (as ``footContacts``, on the soles), ``trackingErrorMm`` (body part -> mean IK position error).
``warnings``: human-readable sentences about whatever falls outside the thresholds below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.layout import BLAZEPOSE_33, name_side
from mocapd.pipeline.runs import true_runs
from mocapd.pipeline.skeleton import DEFAULT_SKELETON

if TYPE_CHECKING:  # pragma: no cover
    from mocapd.robots.motion import RobotMotion

__all__ = [
    "BONE_CV_WARN_PERCENT",
    "JITTER_WARN_MPS2",
    "LOW_CONFIDENCE",
    "PENETRATION_WARN_MM",
    "QUALITY_SCHEMA_VERSION",
    "SKATE_WARN_CMS",
    "QualityInputs",
    "RobotQualityInputs",
    "build_quality_report",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

QUALITY_SCHEMA_VERSION = 1
LOW_CONFIDENCE = 0.5  # mean visibility under which a landmark is reported as unreliable
JITTER_WARN_MPS2 = 30.0  # mean joint acceleration above which the motion is called jittery
BONE_CV_WARN_PERCENT = 10.0  # input bone length variation above which tracking is called unstable
SKATE_WARN_CMS = 10.0  # mean foot speed during contact above which the feet are said to slide
PENETRATION_WARN_MM = 5.0  # robot sole depth below the ground worth a warning
_LISTED = 4  # names listed in a warning before "and N more"
_LIMIT_TOL_RAD = 1e-6
_SPEED_TOL = 1e-9


@dataclass(frozen=True)
class RobotQualityInputs:
    """Arrays of a retargeted robot motion and the robot's limits (N joints, R frames at ``fps``)."""

    fps: float
    dof_pos_rad: FloatArray  # (R, N)
    joint_names: Sequence[str]  # (N,)
    lower_rad: FloatArray  # (N,)
    upper_rad: FloatArray  # (N,)
    velocity_limit_rad_s: FloatArray  # (N,)
    contacts: BoolArray | None = None  # (R, 2) left, right foot
    sole_positions_m: FloatArray | None = None  # (R, 2, 3) left, right sole centre in the world
    valid: BoolArray | None = None  # (R,)
    sole_points_m: FloatArray | None = None  # (R, 2, P, 3) sole contact points, for penetration
    tracking_error_m: Mapping[str, float] = field(default_factory=dict)  # body part -> mean IK error

    @classmethod
    def from_robot_motion(
        cls,
        rm: RobotMotion,
        *,
        sole_positions_m: FloatArray | None = None,
        tracking_error_m: Mapping[str, float] | None = None,
    ) -> RobotQualityInputs:
        """Angles, contacts and validity of a ``RobotMotion``, limits of its variant, soles by forward kinematics.

        Without ``sole_positions_m`` the sole sites and sole contact points come from
        ``mocapd.robots.kinematics.forward_kinematics`` on ``rm.qpos()``; without ``tracking_error_m`` the
        per-part errors are those the retargeter reported in ``rm.quality["tracking_error_m"]``.
        """
        from mocapd.robots.g1 import g1_description

        desc = g1_description(rm.variant)
        sole_points = None
        if sole_positions_m is None:
            from mocapd.robots.kinematics import forward_kinematics

            kin = forward_kinematics(desc, rm.qpos())
            sole_positions_m, sole_points = kin.sole_centre_m, kin.sole_points_m
        if tracking_error_m is None:
            tracking_error_m = dict(getattr(rm, "quality", {}).get("tracking_error_m") or {})
        return cls(
            fps=float(rm.fps),
            dof_pos_rad=np.asarray(rm.dof_pos_rad, dtype=np.float64),
            joint_names=tuple(rm.joint_names),
            lower_rad=desc.lower_rad,
            upper_rad=desc.upper_rad,
            velocity_limit_rad_s=desc.velocity_rad_s,
            contacts=np.asarray(rm.contacts, dtype=bool),
            sole_positions_m=sole_positions_m,
            valid=np.asarray(rm.valid, dtype=bool),
            tracking_error_m=dict(tracking_error_m),
            sole_points_m=sole_points,
        )


@dataclass(frozen=True)
class QualityInputs:
    """Everything the report is computed from.

    Source-rate arrays (F frames at ``source_fps``): ``visibility`` (F, 33) BlazePose visibility (NaN or
    anything where ``person_mask`` is False), ``person_mask`` (F,) a person was detected,
    ``interpolated_mask`` / ``held_mask`` (F,) some joint of the frame was filled over a short gap / held
    over a long one, ``input_positions_m`` (F, J, 3) joint positions before bone lengths were fixed (NaN unknown).
    Motion-rate arrays (M frames at ``motion_fps``): ``solved_positions_m`` (M, J, 3) world joint positions
    of the solved motion (``Motion.world_positions_m()``), ``contacts`` joint name -> (M,) bool (e.g.
    ``foot_l``, ``ball_l``, ``foot_r``, ``ball_r``; the side comes from the name).
    ``joint_names`` / ``joint_parents`` describe the J joints (default: the named skeleton).
    With ``mocap_type="upper_body"`` the legs stay at rest, so the foot figures raise no warnings.
    """

    source_fps: float
    visibility: FloatArray  # (F, 33)
    person_mask: BoolArray  # (F,)
    interpolated_mask: BoolArray  # (F,)
    held_mask: BoolArray  # (F,)
    motion_fps: float
    solved_positions_m: FloatArray  # (M, J, 3)
    input_positions_m: FloatArray | None = None  # (F, J, 3)
    contacts: Mapping[str, BoolArray] | None = None  # name -> (M,)
    joint_names: Sequence[str] = DEFAULT_SKELETON.names
    joint_parents: Sequence[int] = DEFAULT_SKELETON.parents
    robot: RobotQualityInputs | None = None
    mocap_type: str = "full_body"  # "upper_body": legs held at rest, so no foot warnings
    detected_mask: BoolArray | None = None  # (F,) any body detected, tracked or not
    frame_times_s: FloatArray | None = None  # (F,) source frame times (default: index / source_fps)


def _num(x: float | np.floating[Any] | None, digits: int = 4) -> float | None:
    """A JSON number: rounded, ``None`` for NaN/inf/missing."""
    if x is None:
        return None
    v = float(x)
    return round(v, digits) if math.isfinite(v) else None


def _longest_run(mask: BoolArray) -> int:
    """Length of the longest run of True values in a (F,) mask."""
    best = run = 0
    for v in mask:
        run = run + 1 if v else 0
        best = max(best, run)
    return best


def _frames(inp: QualityInputs) -> dict[str, Any]:
    person = np.asarray(inp.person_mask, dtype=bool)  # (F,)
    total = int(person.size)
    with_person = int(person.sum())
    out: dict[str, Any] = {
        "total": total,
        "withPerson": with_person,
        "interpolated": int(np.asarray(inp.interpolated_mask, dtype=bool).sum()),
        "held": int(np.asarray(inp.held_mask, dtype=bool).sum()),
        "personRatio": _num(with_person / total) if total else None,
        "durationS": _num(total / inp.source_fps, 3),
        "longestGapS": _num(_longest_run(~person) / inp.source_fps, 3),
    }
    if inp.detected_mask is not None:
        detected = np.asarray(inp.detected_mask, dtype=bool)  # (F,)
        other = detected & ~person  # (F,)
        times = np.arange(total) / inp.source_fps if inp.frame_times_s is None else np.asarray(inp.frame_times_s)
        out["detected"] = int(detected.sum())
        out["otherPerson"] = int(other.sum())
        out["otherPersonRangesS"] = _ranges_s(other, times, inp.source_fps)
    return out


def _ranges_s(mask: BoolArray, time_s: FloatArray, fps: float) -> list[list[float]]:
    """``[start_s, end_s]`` of each run of True in ``mask`` (F,), times relative to the first frame."""
    t0 = float(time_s[0]) if time_s.size else 0.0
    return [
        [round(float(time_s[a]) - t0, 3), round(float(time_s[b - 1]) - t0 + 1.0 / fps, 3)]
        for a, b in true_runs(mask)
    ]


def _per_joint_confidence(inp: QualityInputs) -> dict[str, float | None]:
    vis = np.asarray(inp.visibility, dtype=np.float64)  # (F, 33)
    person = np.asarray(inp.person_mask, dtype=bool)  # (F,)
    seen = vis[person]  # (P, 33)
    out: dict[str, float | None] = {}
    for k, name in enumerate(BLAZEPOSE_33.names):
        col = seen[:, k] if seen.size else np.empty(0)
        col = col[np.isfinite(col)]
        out[name] = _num(col.mean(), 3) if col.size else None
    return out


def _jitter(inp: QualityInputs) -> dict[str, Any]:
    p = np.asarray(inp.solved_positions_m, dtype=np.float64)  # (M, J, 3)
    fps = inp.motion_fps
    per_joint: dict[str, float | None] = {}
    means: list[float] = []
    jerk_mean: float | None = None
    if p.shape[0] >= 3:
        acc = np.linalg.norm(p[2:] - 2.0 * p[1:-1] + p[:-2], axis=-1) * fps**2  # (M-2, J)
        for j, name in enumerate(inp.joint_names):
            col = acc[:, j][np.isfinite(acc[:, j])]
            per_joint[name] = _num(col.mean(), 3) if col.size else None
            if col.size:
                means.append(float(col.mean()))
    else:
        per_joint = {name: None for name in inp.joint_names}
    if p.shape[0] >= 4:
        jerk = np.linalg.norm(p[3:] - 3.0 * p[2:-1] + 3.0 * p[1:-2] - p[:-3], axis=-1) * fps**3  # (M-3, J)
        jerk = jerk[np.isfinite(jerk)]
        jerk_mean = float(jerk.mean()) if jerk.size else None
    return {
        "meanAccelerationMps2": _num(np.mean(means), 3) if means else None,
        "perJointMps2": per_joint,
        "meanJerkMps3": _num(jerk_mean, 2),
    }


def _bones(inp: QualityInputs) -> list[tuple[str, int, int]]:
    """(``"parent-child"``, parent, child) for every bone not hanging from the tree's root."""
    parents = list(inp.joint_parents)
    return [
        (f"{inp.joint_names[p]}-{inp.joint_names[j]}", p, j)
        for j, p in enumerate(parents)
        if p >= 0 and parents[p] >= 0
    ]


def _bone_spread(inp: QualityInputs) -> tuple[dict[str, float | None], dict[str, float | None]]:
    spread: dict[str, float | None] = {}
    cv: dict[str, float | None] = {}
    if inp.input_positions_m is None:
        return spread, cv
    x = np.asarray(inp.input_positions_m, dtype=np.float64)  # (F, J, 3)
    for name, p, j in _bones(inp):
        length = np.linalg.norm(x[:, j] - x[:, p], axis=-1)  # (F,)
        length = length[np.isfinite(length)]
        if length.size < 2:
            spread[name] = cv[name] = None
            continue
        sd = float(length.std())
        mean = float(length.mean())
        spread[name] = _num(sd * 1000.0, 2)
        cv[name] = _num(100.0 * sd / mean, 2) if mean > 0 else None
    return spread, cv


def _skate(points_m: FloatArray, contact: BoolArray, fps: float) -> tuple[float | None, float | None]:
    """Mean and max horizontal speed (cm/s) of points (T, K, 3) over steps where ``contact`` (T, K) holds at both ends."""
    step = np.linalg.norm(points_m[1:, :, :2] - points_m[:-1, :, :2], axis=-1) * fps * 100.0  # (T-1, K)
    both = contact[1:] & contact[:-1] & np.isfinite(step)  # (T-1, K)
    if not both.any():
        return None, None
    s = step[both]
    return float(s.mean()), float(s.max())


def _foot_summary(points_m: FloatArray, contact: BoolArray, fps: float) -> dict[str, float | None]:
    mean, peak = _skate(points_m, contact, fps)
    ratio = float(contact.any(axis=1).mean()) if contact.shape[0] else None
    return {"contactRatio": _num(ratio), "skateSpeedCmS": _num(mean, 2), "maxSkateSpeedCmS": _num(peak, 2)}


def _foot_contacts(inp: QualityInputs) -> dict[str, Any] | None:
    if inp.contacts is None:
        return None
    p = np.asarray(inp.solved_positions_m, dtype=np.float64)  # (M, J, 3)
    names = list(inp.joint_names)
    out: dict[str, Any] = {}
    for side, label in ((1, "left"), (-1, "right")):
        cols = [n for n in inp.contacts if name_side(n) == side and n in names]
        if not cols:
            out[label] = {"contactRatio": None, "skateSpeedCmS": None, "maxSkateSpeedCmS": None}
            continue
        contact = np.stack([np.asarray(inp.contacts[n], dtype=bool) for n in cols], axis=1)  # (M, K)
        if contact.shape[0] != p.shape[0]:
            raise ValueError(f"contacts have {contact.shape[0]} frames, the solved motion {p.shape[0]}")
        pts = p[:, [names.index(n) for n in cols]]  # (M, K, 3)
        out[label] = _foot_summary(pts, contact, inp.motion_fps)
    return out


def _robot(r: RobotQualityInputs) -> dict[str, Any]:
    q = np.asarray(r.dof_pos_rad, dtype=np.float64)  # (R, N)
    lower = np.asarray(r.lower_rad, dtype=np.float64)  # (N,)
    upper = np.asarray(r.upper_rad, dtype=np.float64)  # (N,)
    vmax = np.asarray(r.velocity_limit_rad_s, dtype=np.float64)  # (N,)
    over = np.maximum(lower - q, q - upper)  # (R, N) > 0 outside the range
    outside = over > _LIMIT_TOL_RAD
    joints_out = [r.joint_names[k] for k in np.flatnonzero(outside.any(axis=0))]
    if q.shape[0] >= 2:
        ratio = np.abs(np.diff(q, axis=0)) * r.fps / vmax  # (R-1, N)
        speed_violations = int((ratio > 1.0 + _SPEED_TOL).sum())
        max_ratio: float | None = float(ratio.max())
    else:
        speed_violations, max_ratio = 0, None
    penetration = None
    skate: dict[str, Any] | None = None
    if r.sole_positions_m is not None:
        soles = np.asarray(r.sole_positions_m, dtype=np.float64)  # (R, 2, 3)
        z = (soles if r.sole_points_m is None else np.asarray(r.sole_points_m, dtype=np.float64))[..., 2]
        penetration = float(max(0.0, -np.nanmin(z))) * 1000.0 if np.isfinite(z).any() else None
        if r.contacts is not None:
            c = np.asarray(r.contacts, dtype=bool)  # (R, 2)
            skate = {
                "left": _foot_summary(soles[:, :1], c[:, :1], r.fps),
                "right": _foot_summary(soles[:, 1:], c[:, 1:], r.fps),
            }
    valid = np.asarray(r.valid, dtype=bool) if r.valid is not None else np.ones(q.shape[0], dtype=bool)
    return {
        "frames": int(q.shape[0]),
        "validRatio": _num(valid.mean()) if valid.size else None,
        "limitViolations": int(outside.sum()),
        "maxLimitViolationRad": _num(max(0.0, float(over.max())) if over.size else 0.0, 5),
        "jointsOutOfLimits": joints_out,
        "speedViolations": speed_violations,
        "maxSpeedRatio": _num(max_ratio, 3),
        "solePenetrationMm": _num(penetration, 2),
        "footSkate": skate,
        "trackingErrorMm": {k: _num(v * 1000.0, 2) for k, v in r.tracking_error_m.items()},
    }


def _warnings(report: dict[str, Any], *, feet_tracked: bool) -> list[str]:
    w: list[str] = []
    fr = report["frames"]
    if fr.get("otherPerson"):
        ranges = fr["otherPersonRangesS"]
        spans = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in ranges[:4])
        more = f" and {len(ranges) - 4} more" if len(ranges) > 4 else ""
        w.append(
            f"the detector followed a different body in {fr['otherPerson']} of {fr['total']} frames "
            f"({spans}{more}): another person, or the tracked one after a move too fast to follow; those "
            "frames were not used (the motion is filled or held there)"
        )
    missing = fr["total"] - fr["withPerson"]
    if missing > 0:
        w.append(
            f"person not visible in {missing} of {fr['total']} frames (longest gap {fr['longestGapS']:.2f} s)"
        )
    if fr["held"] > 0:
        w.append(
            f"{fr['held']} of {fr['total']} frames hold some joints at their last known position (gap too long to fill)"
        )
    low = [n for n, v in report["perJointConfidence"].items() if v is not None and v < LOW_CONFIDENCE]
    if low:
        w.append(f"low detection confidence (mean visibility < {LOW_CONFIDENCE}) for: {', '.join(low)}")
    acc = report["jitter"]["meanAccelerationMps2"]
    if acc is not None and acc > JITTER_WARN_MPS2:
        w.append(f"the motion is jittery: mean joint acceleration {acc:.1f} m/s^2")
    cvs = report["boneLengthCvPercent"]
    unstable = sorted((v, n) for n, v in cvs.items() if v is not None and v > BONE_CV_WARN_PERCENT)[::-1]
    if unstable:
        worst = ", ".join(f"{n} {v:.0f} %" for v, n in unstable[:_LISTED])
        more = f" and {len(unstable) - _LISTED} more" if len(unstable) > _LISTED else ""
        w.append(
            f"unstable tracking: input bone lengths vary by more than {BONE_CV_WARN_PERCENT:.0f} % for {worst}{more}"
        )
    feet = report["footContacts"]
    if feet is not None and feet_tracked:
        ratios = [feet[s]["contactRatio"] for s in ("left", "right")]
        if all(r is not None and r == 0 for r in ratios):
            w.append("no foot contact with the ground was detected; the ground height may be wrong")
        for side in ("left", "right"):
            s = feet[side]["skateSpeedCmS"]
            if s is not None and s > SKATE_WARN_CMS:
                w.append(f"{side} foot slides while planted: {s:.1f} cm/s on average")
    robot = report["robot"]
    if robot is not None:
        if robot["limitViolations"] > 0:
            w.append(f"robot joints outside their limits in {robot['limitViolations']} samples: "
                     f"{', '.join(robot['jointsOutOfLimits'])}")  # fmt: skip
        if robot["speedViolations"] > 0:
            w.append(f"robot joints faster than their velocity limit in {robot['speedViolations']} steps "
                     f"(up to {robot['maxSpeedRatio']:.2f} x the limit)")  # fmt: skip
        pen = robot["solePenetrationMm"]
        if pen is not None and pen > PENETRATION_WARN_MM:
            w.append(f"robot sole goes {pen:.1f} mm below the ground")
        if robot["validRatio"] is not None and robot["validRatio"] < 1.0:
            w.append(
                f"robot holds its last good pose in {round((1 - robot['validRatio']) * robot['frames'])} frames"
            )
        for side, s in (robot["footSkate"] or {}).items():
            if s["skateSpeedCmS"] is not None and s["skateSpeedCmS"] > SKATE_WARN_CMS:
                w.append(f"robot {side} foot slides while planted: {s['skateSpeedCmS']:.1f} cm/s on average")
    return w


def _check(inp: QualityInputs) -> None:
    f = np.asarray(inp.person_mask).shape[0]
    if np.asarray(inp.visibility).shape != (f, BLAZEPOSE_33.num_landmarks):
        raise ValueError(f"visibility must be ({f}, 33), got {np.asarray(inp.visibility).shape}")
    for name in ("interpolated_mask", "held_mask"):
        if np.asarray(getattr(inp, name)).shape != (f,):
            raise ValueError(f"{name} must be ({f},)")
    j = len(inp.joint_names)
    p = np.asarray(inp.solved_positions_m)
    if p.ndim != 3 or p.shape[1:] != (j, 3) or len(inp.joint_parents) != j:
        raise ValueError(f"solved_positions_m must be (M, {j}, 3) with {j} parents")
    if inp.input_positions_m is not None and np.asarray(inp.input_positions_m).shape[1:] != (j, 3):
        raise ValueError(f"input_positions_m must be (F, {j}, 3)")
    if not (inp.source_fps > 0 and inp.motion_fps > 0):
        raise ValueError("frame rates must be positive")


def build_quality_report(inputs: QualityInputs) -> dict[str, Any]:
    """The quality report of one job as JSON-ready data (keys in the module docstring)."""
    _check(inputs)
    spread, cv = _bone_spread(inputs)
    report: dict[str, Any] = {
        "schemaVersion": QUALITY_SCHEMA_VERSION,
        "frames": _frames(inputs),
        "perJointConfidence": _per_joint_confidence(inputs),
        "jitter": _jitter(inputs),
        "boneLengthSpreadMm": spread,
        "boneLengthCvPercent": cv,
        "footContacts": _foot_contacts(inputs),
        "robot": _robot(inputs.robot) if inputs.robot is not None else None,
    }
    report["warnings"] = _warnings(report, feet_tracked=inputs.mocap_type != "upper_body")
    return report
