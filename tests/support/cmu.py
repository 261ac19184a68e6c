"""CMU motion-capture takes as ground truth on the default skeleton (a test helper).

`cmu_named_positions` maps the 31-joint CMU skeleton of ``../shared/data/bvh/cmu_*.bvh`` (3ds Max
naming: Hips, LHipJoint, LeftHip, LeftKnee, LeftAnkle, LeftToe, lowerback, Chest, Chest2, lowerneck,
Neck, Head, LeftCollar, LeftShoulder, LeftElbow, LeftWrist, ...; the classic names of the same joints
are LowerBack, Spine, Spine1, Neck, Neck1, Head, LeftShoulder, LeftArm, LeftForeArm, LeftHand,
LeftUpLeg, LeftLeg, LeftFoot, LeftToeBase) onto the joints of `DEFAULT_SKELETON`.

The mapped points form a **rigid** skeleton, so a correct solve reproduces them exactly: every default
joint ``k`` with parent ``j`` is placed at ``p_k = p_j + R_F(j) (a_k - a_j)``, where ``R_F(j)`` is the
world rotation of the one CMU joint that carries ``j``'s children and ``a`` are rest-pose anchor
points. Where CMU has a pivot at the same place as its parent (lowerback at Hips, lowerneck and the
collars at Chest2) the anchor is moved along the bone so no default bone has zero length:

* pelvis = Hips; thigh/calf/foot/ball = LeftHip/LeftKnee/LeftAnkle/LeftToe (exact CMU points, the
  CMU hip joints LHipJoint/RHipJoint never rotate);
* spine_01 = half-way from Hips to Chest, carried by Hips (lowerback turns above it);
  spine_02 = Chest, carried by lowerback; spine_03 = Chest2, carried by Chest;
* neck_01 = Neck carried by Chest2, head = Head carried by Neck (lowerneck's own turn is folded in);
* clavicle_l = 20 % of the way from Chest2 to LeftShoulder sideways, at shoulder height, carried by
  Chest2; upperarm/lowerarm/hand = LeftShoulder/LeftElbow/LeftWrist (exact CMU points).

Everything is converted to Z up, metres (CMU units × 0.056444); the CMU floor is kept as z = 0.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mocapd.formats.bvh import CMU_UNIT_M, read_bvh
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from mocapd.pipeline.solve import solve_motion

__all__ = ["CMU_CARRIER", "cmu_motion", "cmu_named_positions"]

FloatArray = NDArray[np.float64]

# default joint -> (anchor: CMU joint or (from, to, fraction per axis), CMU joint carrying its children)
_Anchor = str | tuple[str, str, tuple[float, float, float]]
_MAP: dict[str, tuple[_Anchor, str | None]] = {
    "pelvis": ("Hips", "Hips"),
    "spine_01": (("Hips", "Chest", (0.5, 0.5, 0.5)), "lowerback"),
    "spine_02": ("Chest", "Chest"),
    "spine_03": ("Chest2", "Chest2"),
    "neck_01": ("Neck", "Neck"),
    "head": ("Head", None),
    "clavicle_l": (("Chest2", "LeftShoulder", (0.2, 1.0, 1.0)), "LeftCollar"),
    "upperarm_l": ("LeftShoulder", "LeftShoulder"),
    "lowerarm_l": ("LeftElbow", "LeftElbow"),
    "hand_l": ("LeftWrist", None),
    "clavicle_r": (("Chest2", "RightShoulder", (0.2, 1.0, 1.0)), "RightCollar"),
    "upperarm_r": ("RightShoulder", "RightShoulder"),
    "lowerarm_r": ("RightElbow", "RightElbow"),
    "hand_r": ("RightWrist", None),
    "thigh_l": ("LeftHip", "LeftHip"),
    "calf_l": ("LeftKnee", "LeftKnee"),
    "foot_l": ("LeftAnkle", "LeftAnkle"),
    "ball_l": ("LeftToe", None),
    "thigh_r": ("RightHip", "RightHip"),
    "calf_r": ("RightKnee", "RightKnee"),
    "foot_r": ("RightAnkle", "RightAnkle"),
    "ball_r": ("RightToe", None),
}
CMU_CARRIER: dict[str, str | None] = {k: v[1] for k, v in _MAP.items()}


def cmu_named_positions(path: Path) -> tuple[FloatArray, float]:
    """World positions (F, J, 3) of the default skeleton's joints on a CMU take, and its fps.

    The root row is the ground projection of the pelvis ``(x, y, 0)``.
    """
    pos, fps = _cached_positions(str(path))
    return pos.copy(), fps


def cmu_motion(path: Path) -> Motion:
    """The CMU take solved onto the default skeleton (its own bone lengths, kept asymmetric)."""
    return _cached_motion(str(path))


@lru_cache(maxsize=8)
def _cached_positions(path: str) -> tuple[FloatArray, float]:
    src = read_bvh(path, scale_m=CMU_UNIT_M)
    cmu_pos, cmu_rot = src.world_transforms()  # (F, C, 3), (F, C, 4)
    rest = src.skeleton.rest_positions_m()  # (C, 3)
    ci = {n: i for i, n in enumerate(src.skeleton.names)}

    def anchor(a: _Anchor) -> FloatArray:
        if isinstance(a, str):
            return rest[ci[a]]
        start, end, frac = a
        return rest[ci[start]] + np.array(frac) * (rest[ci[end]] - rest[ci[start]])

    sk = DEFAULT_SKELETON
    nf = src.num_frames
    out = np.zeros((nf, sk.num_joints, 3))  # (F, J, 3)
    out[:, sk.index("pelvis")] = cmu_pos[:, ci["Hips"]]
    for k in range(2, sk.num_joints):
        name = sk.names[k]
        parent = sk.names[sk.parents[k]]
        carrier = _MAP[parent][1]
        assert carrier is not None
        delta = anchor(_MAP[name][0]) - anchor(_MAP[parent][0])  # (3,)
        out[:, k] = out[:, sk.parents[k]] + _rotate(cmu_rot[:, ci[carrier]], delta)
    out[:, 0, :2] = out[:, sk.index("pelvis"), :2]
    return out, src.fps


@lru_cache(maxsize=8)
def _cached_motion(path: str) -> Motion:
    pos, fps = _cached_positions(path)
    motion, _ = solve_motion(pos, fps, symmetry="never")
    return motion


def _rotate(q_wxyz: FloatArray, v: FloatArray) -> FloatArray:
    from mocapd.pipeline.skeleton import quat_rotate

    return quat_rotate(q_wxyz, np.broadcast_to(v, q_wxyz.shape[:-1] + (3,)))
