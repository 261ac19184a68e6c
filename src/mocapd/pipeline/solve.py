"""Skeleton solve: 3D joint positions of the default skeleton -> a `Motion` with fixed bone lengths.

Steps (all per clip, arrays in, arrays out):

1. **Scale** (optional): when ``subject_height_m`` is given, every position is scaled about the clip's
   mean ground point ``c = (mean x_pelvis, mean y_pelvis, 0)``: ``p' = c + s (p - c)`` with
   ``s = subject_height_m / stature``, the stature being estimated from the solved rest skeleton.
2. **Bone lengths**: one length per bone for the clip, the median of ``|p_child - p_parent|`` over the
   frames where both are known. Joints with several children (``pelvis``, ``spine_03``) get one rest
   *offset vector* per child: the median of ``Wᵀ (p_child - p_joint)`` where ``W`` is the joint's frame
   built from the same points (below), so a rigid input is reproduced exactly. Left/right pairs are
   made symmetric (lengths averaged, offsets mirrored across the sagittal plane) when the difference
   is within the noise: ``|L - R| < 3 sqrt(σ_L² + σ_R²)`` with σ the robust (1.4826 MAD) spread
   over frames; a rigid, truly asymmetric skeleton is kept as it is (``symmetry="auto"``).
3. **Rotations**: every joint's world rotation is the frame ``W = [e1 e2 e3] [d0 r0 d0×r0]ᵀ`` that
   maps its rest bone direction ``d0`` to the observed one ``e1`` and a rest reference ``r0`` to an
   observed twist reference (orthogonalised against ``e1``):

   * pelvis: ``e1`` = thigh_r -> thigh_l (left, +X at rest), reference = pelvis -> spine_01 (up);
   * spine_03 (chest): clavicle_r -> clavicle_l, reference = spine_03 -> neck_01;
   * spine_01 / spine_02: the bone, reference = the lateral axis blended 2/3:1/3 and 1/3:2/3 between
     the pelvis and the chest frames (spreads the spine twist);
   * neck_01: the bone, reference = the chest's lateral axis; clavicles: the bone, reference = chest up;
   * upper/lower arm and thigh/calf: the bone, reference = the hinge normal
     ``n = (p_mid - p_root) × (p_end - p_mid)`` (elbow / knee axis), shared by both bones so the
     elbow and knee stay pure hinges. When the limb is nearly straight (``|n̂| < sin 20°``) the
     reference blends towards the previous frame's reference, fully at ``sin 5°``;
   * foot: foot -> ball, reference = the calf's lateral axis;
   * leaves (head, hands, balls) keep the identity local rotation (nothing observes their twist).

   Local rotation = ``W_parentᵀ W``. Frames or joints without data (NaN) keep the previous frame's
   local rotation (the first known one before the first). Quaternions are kept in one hemisphere
   over time (``q_t ← -q_t`` when ``q_t · q_{t-1} < 0``).
4. **Root**: the ground projection of the pelvis ``(x, y, 0)`` with the **identity rotation** (no yaw:
   the heading lives in the pelvis rotation, which keeps the root path smooth); the pelvis carries
   its height as translation ``(0, 0, z)`` relative to the root.

``mocap_type="upper_body"`` keeps the root at the origin, the pelvis at its rest height turned only
by its heading (yaw), and the legs at rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion

__all__ = ["SolveReport", "rest_bone_lengths", "solve_motion"]

FloatArray = NDArray[np.float64]
Symmetry = Literal["auto", "always", "never"]

_SK = DEFAULT_SKELETON
_IDX = {n: i for i, n in enumerate(_SK.names)}
_PAIRS = (
    ("clavicle_l", "clavicle_r"),
    ("upperarm_l", "upperarm_r"),
    ("lowerarm_l", "lowerarm_r"),
    ("hand_l", "hand_r"),
    ("thigh_l", "thigh_r"),
    ("calf_l", "calf_r"),
    ("foot_l", "foot_r"),
    ("ball_l", "ball_r"),
)
_LEG_JOINTS = ("thigh_l", "calf_l", "foot_l", "ball_l", "thigh_r", "calf_r", "foot_r", "ball_r")
_LEAVES = ("head", "hand_l", "hand_r", "ball_l", "ball_r")
_STRAIGHT_SIN_LO = np.sin(np.radians(5.0))
_STRAIGHT_SIN_HI = np.sin(np.radians(20.0))
_X = np.array([1.0, 0.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])


@dataclass(frozen=True)
class SolveReport:
    """What the solve did and how well the solved skeleton follows its input (metres)."""

    bone_length_m: dict[str, float]  # fixed length of the bone ending at each joint
    bone_length_spread_m: dict[str, float]  # robust std (1.4826 MAD) of that length in the input
    bone_length_cv: dict[str, float]  # spread / median length of the input (coefficient of variation)
    fk_error_mean_m: dict[str, float]  # |FK(solved) - input| per joint, mean over known frames
    fk_error_max_m: dict[str, float]
    scale: float  # applied to the input (1.0 unless subject_height_m was given)
    stature_m: float  # estimated standing height of the solved skeleton
    symmetric_pairs: tuple[str, ...]  # left joints whose bone was made symmetric with the right
    held_frames: dict[str, int] = field(default_factory=dict)  # frames that kept the previous rotation

    @property
    def fk_error_mean_all_m(self) -> float:
        vals = [v for v in self.fk_error_mean_m.values() if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    @property
    def fk_error_max_all_m(self) -> float:
        vals = [v for v in self.fk_error_max_m.values() if np.isfinite(v)]
        return float(np.max(vals)) if vals else float("nan")


def solve_motion(
    joint_positions_m: FloatArray,
    fps: float,
    *,
    subject_height_m: float | None = None,
    mocap_type: str = "full_body",
    symmetry: Symmetry = "auto",
) -> tuple[Motion, SolveReport]:
    """Fit the default skeleton to joint positions (F, J, 3), Z up, NaN where unknown.

    The root row of the input is ignored (the root is derived from the pelvis). Returns the solved
    `Motion` (its skeleton has this clip's rest offsets) and a `SolveReport`.
    """
    pos = np.array(joint_positions_m, dtype=np.float64)  # (F, J, 3)
    if pos.ndim != 3 or pos.shape[1:] != (_SK.num_joints, 3):
        raise ValueError(f"joint_positions_m must be (F, {_SK.num_joints}, 3)")
    if mocap_type not in ("full_body", "upper_body"):
        raise ValueError("mocap_type must be full_body or upper_body")
    if not fps > 0:
        raise ValueError("fps must be positive")
    nf = pos.shape[0]
    if nf == 0:
        raise ValueError("no frames to solve")
    pos[:, _IDX["root"]] = np.nan

    scale = 1.0
    if subject_height_m is not None:
        if not 0.5 < subject_height_m < 3.0:
            raise ValueError("subject_height_m must be between 0.5 and 3 m")
        _, _, _, _, stature0 = _rest_offsets(pos, symmetry)
        scale = float(subject_height_m / stature0)
        pelvis = pos[:, _IDX["pelvis"]]
        known = np.all(np.isfinite(pelvis), axis=1)
        centre = np.zeros(3)
        if known.any():
            centre[:2] = pelvis[known, :2].mean(axis=0)
        pos = centre + scale * (pos - centre)

    offsets, spread, cv, sym_pairs, stature = _rest_offsets(pos, symmetry)
    world_rot, held = _world_rotations(pos, offsets, mocap_type)  # (F, J, 3, 3)

    # Root and pelvis translation.
    pelvis_pos = _fill_rows(pos[:, _IDX["pelvis"]])  # (F, 3)
    if not np.all(np.isfinite(pelvis_pos)):
        pelvis_pos = np.broadcast_to(offsets[_IDX["pelvis"]], (nf, 3)).copy()
    trans = np.broadcast_to(offsets, (nf, _SK.num_joints, 3)).copy()  # (F, J, 3)
    if mocap_type == "full_body":
        trans[:, _IDX["root"]] = np.stack([pelvis_pos[:, 0], pelvis_pos[:, 1], np.zeros(nf)], axis=1)
        trans[:, _IDX["pelvis"]] = np.stack([np.zeros(nf), np.zeros(nf), pelvis_pos[:, 2]], axis=1)

    local_quat = _local_quats(world_rot)  # (F, J, 4)
    skeleton = _SK.with_offsets(offsets)
    motion = Motion(skeleton, float(fps), trans, local_quat)

    fk = motion.world_positions_m()  # (F, J, 3)
    err = np.linalg.norm(fk - pos, axis=-1)  # (F, J), NaN where unknown
    err_mean: dict[str, float] = {}
    err_max: dict[str, float] = {}
    for j, name in enumerate(_SK.names):
        e = err[:, j][np.isfinite(err[:, j])]
        if mocap_type == "upper_body" and (name in _LEG_JOINTS or name == "pelvis"):
            e = e[:0]
        err_mean[name] = float(e.mean()) if e.size else float("nan")
        err_max[name] = float(e.max()) if e.size else float("nan")
    lengths = {n: float(np.linalg.norm(offsets[j])) for j, n in enumerate(_SK.names) if _SK.parents[j] > 0}
    report = SolveReport(
        bone_length_m=lengths,
        bone_length_spread_m={n: spread[n] for n in lengths},
        bone_length_cv={n: cv[n] for n in lengths},
        fk_error_mean_m=err_mean,
        fk_error_max_m=err_max,
        scale=scale,
        stature_m=stature,
        symmetric_pairs=tuple(sym_pairs),
        held_frames=held,
    )
    return motion, report


# ------------------------------------------------------------------------------- rest skeleton


def rest_bone_lengths(joint_positions_m: FloatArray, symmetry: Symmetry = "auto") -> FloatArray:
    """The length (J,) of the bone ending at each joint that `solve_motion` would give the clip's
    rest skeleton from these joint positions (F, J, 3) (the root's and the pelvis's are 0)."""
    pos = np.array(joint_positions_m, dtype=np.float64)
    pos[:, _IDX["root"]] = np.nan
    offsets = _rest_offsets(pos, symmetry)[0]
    lengths = np.linalg.norm(offsets, axis=1)
    lengths[: _IDX["pelvis"] + 1] = 0.0
    return cast("FloatArray", lengths)


def _rest_offsets(
    pos: FloatArray, symmetry: Symmetry
) -> tuple[FloatArray, dict[str, float], dict[str, float], list[str], float]:
    """Rest offsets (J, 3) of the clip's skeleton, per-bone input spread (m) and CV, symmetric pairs, stature."""
    j_count = _SK.num_joints
    offsets = np.full((j_count, 3), np.nan)
    spread: dict[str, float] = {}
    cv: dict[str, float] = {}
    samples: dict[str, FloatArray] = {}  # per child: (N, 3) offset samples in the parent's frame or lengths (N, 1)

    frames = {  # world rotations (F, 3, 3) of the two joints with several children
        "pelvis": _lateral_up_to_world(_pelvis_frame(pos)),
        "spine_03": _lateral_up_to_world(_chest_frame(pos)),
    }
    for j in range(2, j_count):
        p = _SK.parents[j]
        name, pname = _SK.names[j], _SK.names[p]
        vec = pos[:, j] - pos[:, p]  # (F, 3)
        length = np.linalg.norm(vec, axis=1)  # (F,)
        ok = np.isfinite(length)
        med = float(np.median(length[ok])) if ok.any() else float("nan")
        sd = _robust_std(length[ok])
        spread[name] = sd
        cv[name] = sd / med if med > 0 else float("nan")
        if pname in frames:
            w = frames[pname]
            local = np.einsum("fji,fj->fi", w, vec)  # (F, 3) = Wᵀ vec
            good = np.all(np.isfinite(local), axis=1)
            samples[name] = local[good]
            offsets[j] = np.median(local[good], axis=0) if good.any() else np.nan
        else:
            samples[name] = length[ok][:, None]
            d0 = _SK.rest_offsets_m[j] / np.linalg.norm(_SK.rest_offsets_m[j])
            offsets[j] = d0 * med

    sym_pairs: list[str] = []
    mirror = np.array([-1.0, 1.0, 1.0])
    for left, right in _PAIRS:
        jl, jr = _IDX[left], _IDX[right]
        ol, orr = offsets[jl], offsets[jr]
        if not (np.all(np.isfinite(ol)) and np.all(np.isfinite(orr))):
            continue
        if _SK.names[_SK.parents[jl]] in frames:
            diff = float(np.linalg.norm(ol - orr * mirror))
            sl = _robust_std_vec(samples[left])
            sr = _robust_std_vec(samples[right])
        else:
            diff = abs(float(np.linalg.norm(ol) - np.linalg.norm(orr)))
            sl, sr = spread[left], spread[right]
        if symmetry == "never":
            continue
        if symmetry == "always" or diff < 3.0 * np.hypot(sl, sr):
            if _SK.names[_SK.parents[jl]] in frames:
                mean = 0.5 * (ol + orr * mirror)
                offsets[jl], offsets[jr] = mean, mean * mirror
            else:
                length = 0.5 * (np.linalg.norm(ol) + np.linalg.norm(orr))
                offsets[jl] = ol / np.linalg.norm(ol) * length
                offsets[jr] = orr / np.linalg.norm(orr) * length
            sym_pairs.append(left)

    # Unknown bones: the default offset scaled like the known ones.
    known = [j for j in range(2, j_count) if np.all(np.isfinite(offsets[j]))]
    ratio = (
        float(np.median([np.linalg.norm(offsets[j]) / np.linalg.norm(_SK.rest_offsets_m[j]) for j in known]))
        if known
        else 1.0
    )
    for j in range(2, j_count):
        if not np.all(np.isfinite(offsets[j])):
            offsets[j] = _SK.rest_offsets_m[j] * ratio

    # Root at the origin; pelvis high enough that the lowest rest foot point sits where the default's does.
    offsets[0] = 0.0
    offsets[1] = 0.0
    rest = _SK.with_offsets(offsets).rest_positions_m()  # (J, 3), pelvis at 0
    feet_z = min(rest[_IDX[n], 2] for n in ("foot_l", "ball_l", "foot_r", "ball_r"))
    ball_clear = _SK.rest_positions_m()[_IDX["ball_l"], 2] * ratio
    offsets[1] = np.array([0.0, 0.0, -feet_z + ball_clear])
    stature = _SK.with_offsets(offsets).stature_m()
    return offsets, spread, cv, sym_pairs, stature


def _robust_std(x: FloatArray) -> float:
    if x.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _robust_std_vec(x: FloatArray) -> float:
    """Robust spread of vector samples (N, 3): the norm of the per-axis robust stds."""
    if x.size == 0:
        return float("nan")
    return float(np.linalg.norm([_robust_std(x[:, k]) for k in range(x.shape[1])]))


# ------------------------------------------------------------------------------------- rotations


def _unit(v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Unit vectors (..., 3) and norms (...); zero or NaN vectors give NaN."""
    n = np.linalg.norm(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = v / n[..., None]
    u[~(n > 1e-12)] = np.nan
    return u, n


def _frame_from(primary: FloatArray, reference: FloatArray) -> FloatArray:
    """Right-handed frames (F, 3, 3) with columns [e1, e2, e1×e2]: e1 ∥ primary, e2 = reference ⊥ e1."""
    e1, _ = _unit(primary)
    r = reference - np.sum(reference * e1, axis=-1, keepdims=True) * e1
    e2, _ = _unit(r)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _rest_basis(d0: FloatArray, r0: FloatArray) -> FloatArray:
    return cast("FloatArray", _frame_from(d0[None], r0[None])[0])  # (3, 3)


def _pelvis_frame(pos: FloatArray) -> FloatArray:
    lat = pos[:, _IDX["thigh_l"]] - pos[:, _IDX["thigh_r"]]
    up = pos[:, _IDX["spine_01"]] - pos[:, _IDX["pelvis"]]
    return _frame_from(lat, up)  # (F, 3, 3) columns: lateral, up, lateral × up


def _chest_frame(pos: FloatArray) -> FloatArray:
    lat = pos[:, _IDX["clavicle_l"]] - pos[:, _IDX["clavicle_r"]]
    _, n = _unit(lat)
    alt = pos[:, _IDX["upperarm_l"]] - pos[:, _IDX["upperarm_r"]]
    lat = np.where((n > 1e-4)[:, None], lat, alt)
    up = pos[:, _IDX["neck_01"]] - pos[:, _IDX["spine_03"]]
    return _frame_from(lat, up)


def _lateral_up_to_world(frame: FloatArray) -> FloatArray:
    """[x, u, x×u] frames (lateral, up) -> world rotations whose columns are (x, y, z) = (x, -(x×u), u)."""
    x, u, xu = frame[..., 0], frame[..., 1], frame[..., 2]
    return np.stack([x, -xu, u], axis=-1)


def _world_rotations(pos: FloatArray, offsets: FloatArray, mocap_type: str) -> tuple[FloatArray, dict[str, int]]:
    """World rotation matrices (F, J, 3, 3) for every joint, NaN-free, plus held-frame counts."""
    nf, nj = pos.shape[:2]
    world = np.zeros((nf, nj, 3, 3))
    world[:, 0] = np.eye(3)
    held: dict[str, int] = {}
    cand: dict[int, FloatArray] = {}

    pelvis_w = _lateral_up_to_world(_pelvis_frame(pos))  # (F, 3, 3)
    chest_w = _lateral_up_to_world(_chest_frame(pos))
    if mocap_type == "upper_body":
        pelvis_w = _yaw_only(pelvis_w, chest_w)
    cand[_IDX["pelvis"]] = pelvis_w
    cand[_IDX["spine_03"]] = chest_w
    lat_p, lat_c = pelvis_w[..., 0], chest_w[..., 0]
    lat_p_f, lat_c_f = _fill_rows(lat_p), _fill_rows(lat_c)

    def bone(j: int) -> FloatArray:
        (child,) = [c for c, p in enumerate(_SK.parents) if p == j]
        return pos[:, child] - pos[:, j]

    def rest_dir(j: int) -> FloatArray:
        (child,) = [c for c, p in enumerate(_SK.parents) if p == j]
        return cast("FloatArray", offsets[child] / np.linalg.norm(offsets[child]))

    # Hinge references of the four limbs, shared by both bones of the limb.
    hinge: dict[str, FloatArray] = {}
    for side in ("l", "r"):
        for a, b, c in ((f"upperarm_{side}", f"lowerarm_{side}", f"hand_{side}"), (f"thigh_{side}", f"calf_{side}", f"foot_{side}")):
            upper = pos[:, _IDX[b]] - pos[:, _IDX[a]]
            lower = pos[:, _IDX[c]] - pos[:, _IDX[b]]
            hinge[a] = np.cross(upper, lower) / np.maximum(
                np.linalg.norm(upper, axis=1) * np.linalg.norm(lower, axis=1), 1e-12
            )[:, None]
            hinge[b] = hinge[a]

    stabilised: dict[str, FloatArray] = {}
    arm_h0 = {"l": -_Z, "r": _Z}  # (elbow bent forward in the T-pose) = d0 × (-Y)
    for j in range(1, nj):
        name = _SK.names[j]
        parent_w = world[:, _SK.parents[j]]  # (F, 3, 3), final
        if mocap_type == "upper_body" and name in _LEG_JOINTS:
            world[:, j] = parent_w
            continue
        if name in _LEAVES:
            world[:, j] = parent_w
            continue
        if j in cand:
            w_cand = cand[j]
        else:
            d0 = rest_dir(j)
            if name in ("spine_01", "spine_02"):
                k = 1.0 / 3.0 if name == "spine_01" else 2.0 / 3.0
                ref, r0, straight_ok = (1 - k) * lat_p_f + k * lat_c_f, _X, False
            elif name == "neck_01":
                ref, r0, straight_ok = parent_w[..., 0], _X, False
            elif name.startswith("clavicle"):
                ref, r0, straight_ok = parent_w[..., 2], _Z, False
            elif name.startswith(("upperarm", "lowerarm")):
                ref, r0, straight_ok = hinge[name], arm_h0[name[-1]], True
            elif name.startswith(("thigh", "calf")):
                ref, r0, straight_ok = hinge[name], _X, True
            elif name.startswith("foot"):
                ref, r0, straight_ok = parent_w[..., 0], _X, False
            else:  # pragma: no cover - every joint of the default skeleton is handled above
                raise AssertionError(name)
            primary = bone(j)
            if name.startswith(("lowerarm", "calf")):
                # the same hinge axis as the upper bone, so the elbow / knee is a pure hinge
                ref = stabilised[_SK.names[_SK.parents[j]]]
            else:
                ref = _stabilise_reference(primary, ref, parent_w, r0, hinge=straight_ok)
                stabilised[name] = ref
            w_cand = _frame_from(primary, ref) @ _rest_basis(d0, r0).T
        # Local rotation, holding the previous one where unknown.
        local = np.einsum("fji,fjk->fik", parent_w, w_cand)  # (F, 3, 3) = W_pᵀ W
        bad = ~np.all(np.isfinite(local), axis=(1, 2))
        held[name] = int(bad.sum())
        local = _fill_rows(local.reshape(nf, 9)).reshape(nf, 3, 3)
        local[~np.all(np.isfinite(local), axis=(1, 2))] = np.eye(3)
        world[:, j] = parent_w @ local
    return world, held


def _stabilise_reference(
    primary: FloatArray, ref: FloatArray, parent_w: FloatArray, r0: FloatArray, *, hinge: bool
) -> FloatArray:
    """Twist references (F, 3) that stay defined when they become parallel to the bone.

    ``s = |ref ⊥ bone| / |ref|`` (for a hinge normal also its own length, sin of the bend angle);
    for ``s ≥ sin 20°`` the reference is used as it is. On the other frames it is blended, with
    weight ``(s - sin 5°) / (sin 20° - sin 5°)``, with a reference interpolated in time between the
    nearest usable frames before and after, expressed in the parent's frame (an offline clip knows
    both ends of a straight-limb phase, so the twist moves smoothly through it instead of jumping
    when the limb bends again). With no usable frame at all the parent-carried rest reference is
    used. Inside the blend zone a hinge normal whose sign disagrees with the interpolated one (a
    slightly over-straightened limb) is flipped first.
    """
    nf = len(primary)
    e1, _ = _unit(primary)
    ref_u, ref_n = _unit(ref)
    perp = ref_u - np.sum(ref_u * e1, axis=1, keepdims=True) * e1
    s = np.linalg.norm(perp, axis=1)
    if hinge:
        s = np.where(np.isfinite(ref_n), np.minimum(ref_n, s), np.nan)
    weight = np.clip((s - _STRAIGHT_SIN_LO) / (_STRAIGHT_SIN_HI - _STRAIGHT_SIN_LO), 0.0, 1.0)  # (F,)
    weight = np.where(np.isfinite(weight), weight, 0.0)
    need = (weight < 1.0) & np.all(np.isfinite(e1), axis=1)
    if not need.any():
        return ref_u
    usable = (weight >= 1.0) & np.all(np.isfinite(ref_u), axis=1) & np.all(np.isfinite(parent_w), axis=(1, 2))
    local = np.einsum("fji,fj->fi", parent_w, ref_u)  # (F, 3) reference in the parent's frame
    t = np.arange(nf)
    prev_i = np.maximum.accumulate(np.where(usable, t, -1))
    next_i = np.minimum.accumulate(np.where(usable, t, nf)[::-1])[::-1]
    has_prev, has_next = prev_i >= 0, next_i < nf
    pi, ni = np.clip(prev_i, 0, nf - 1), np.clip(next_i, 0, nf - 1)
    span = np.maximum(next_i - prev_i, 1)
    alpha = np.where(has_prev & has_next, (t - prev_i) / span, np.where(has_next, 1.0, 0.0))[:, None]
    interp_local = (1.0 - alpha) * local[pi] + alpha * local[ni]  # (F, 3)
    interp_local = np.where((has_prev | has_next)[:, None], interp_local, r0)
    interp = np.einsum("fij,fj->fi", parent_w, interp_local)  # back to world
    interp_u, interp_n = _unit(interp)
    bad_interp = ~(interp_n > 1e-6)
    interp_u[bad_interp] = np.einsum("fij,j->fi", parent_w[bad_interp], r0)
    r = np.where(np.all(np.isfinite(ref_u), axis=1, keepdims=True), ref_u, interp_u)
    if hinge:
        r = np.where((np.sum(r * interp_u, axis=1) < 0.0)[:, None], -r, r)
    w = weight[:, None]
    blended = w * r + (1.0 - w) * interp_u
    out = np.array(ref_u)
    out[need] = blended[need]
    return out


def _yaw_only(pelvis_w: FloatArray, chest_w: FloatArray) -> FloatArray:
    """Rotations about Z (F, 3, 3) following the heading of the pelvis (else the chest, else none)."""
    lat = _fill_rows(pelvis_w[..., 0])
    lat_c = _fill_rows(chest_w[..., 0])
    lat = np.where(np.all(np.isfinite(lat), axis=1, keepdims=True), lat, lat_c)
    yaw = np.arctan2(lat[:, 1], lat[:, 0])
    yaw = np.where(np.isfinite(yaw), yaw, 0.0)
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.zeros((len(yaw), 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1], out[:, 2, 2] = c, -s, s, c, 1.0
    return out


def _fill_rows(a: FloatArray) -> FloatArray:
    """Rows (F, k) with any NaN take the previous complete row (the first complete one before it)."""
    a = np.array(a, dtype=np.float64)
    good = np.all(np.isfinite(a), axis=1)
    if not good.any() or good.all():
        return a
    idx = np.where(good, np.arange(len(a)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.flatnonzero(good)[0])
    return cast("FloatArray", a[idx])


def _local_quats(world: FloatArray) -> FloatArray:
    """Local wxyz quaternions (F, J, 4) from world rotations, hemisphere-continuous over time."""
    nf, nj = world.shape[:2]
    local = np.empty_like(world)
    local[:, 0] = world[:, 0]
    for j in range(1, nj):
        local[:, j] = np.einsum("fji,fjk->fik", world[:, _SK.parents[j]], world[:, j])
    q_xyzw = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_quat().reshape(nf, nj, 4)
    q = q_xyzw[..., [3, 0, 1, 2]]  # (F, J, 4)
    q = np.where(q[:1, :, :1] < 0, -q, q) if nf else q
    if nf > 1:
        dots = np.sum(q[1:] * q[:-1], axis=-1)  # (F-1, J)
        flips = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
        q[1:] *= flips[..., None]
    return q
