"""MediaPipe's 33 BlazePose landmarks -> positions of the `DEFAULT_SKELETON` joints.

Axes. MediaPipe world landmarks are camera-aligned: x to the image right, y down, z away from the
camera. Our frame is Z up, metres, and a person facing the camera faces -Y with their left side
at +X, so the camera looks along +Y:  (X, Y, Z) = (x, z, -y). The matrix
``ZUP_FROM_MEDIAPIPE`` has determinant +1 (a proper rotation, handedness kept).

Joints (H = mid-hip 23/24, S = mid-shoulder 11/12, E = mid-ear 7/8; odd = left):

* pelvis = H; spine_01/02/03 on the segment H -> S at the rest-pose fractions of the spine
  (0.10, 0.22, 0.36 of 0.48 m); neck_01 = S + 0.25 (E - S); head = E (the nose when the ears
  are unknown);
* clavicle_l = S + (0.03 / 0.18) (shoulder_l - S) (the rest clavicle / shoulder span ratio),
  upperarm = shoulder 11/12, lowerarm = elbow 13/14, hand = wrist 15/16;
* thigh = hip 23/24, calf = knee 25/26, foot = ankle 27/28, ball = foot index 31/32;
* root = NaN (the solver derives it: the ground projection of the pelvis).

`hand_points` gives the hand centre (mean of wrist, index 19/20 and pinky 17/18) for hand-twist
references and drawing.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.layout import BLAZEPOSE_33
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Skeleton

__all__ = [
    "LANDMARKS_USED",
    "ZUP_FROM_MEDIAPIPE",
    "hand_points",
    "joint_visibility",
    "joints_from_landmarks",
    "torso_from_limbs",
    "zup_from_mediapipe",
]

FloatArray = NDArray[np.float64]

ZUP_FROM_MEDIAPIPE: FloatArray = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (3, 3)

# Spine joints as fractions of the pelvis -> shoulder-centre segment (rest heights 0.10, 0.22, 0.36 of 0.48 m).
_SPINE_FRACTIONS = {"spine_01": 0.10 / 0.48, "spine_02": 0.22 / 0.48, "spine_03": 0.36 / 0.48}
_CLAVICLE_FRACTION = 0.03 / 0.18
_NECK_FRACTION = 0.25

_LAYOUT = BLAZEPOSE_33
_NOSE = _LAYOUT.index("nose")
(_L_EAR, _R_EAR), (_L_SHOULDER, _R_SHOULDER), (_L_HIP, _R_HIP) = _LAYOUT.pairs("ear", "shoulder", "hip")
(_L_WRIST, _R_WRIST), (_L_PINKY, _R_PINKY), (_L_INDEX, _R_INDEX) = _LAYOUT.pairs("wrist", "pinky", "index")

# Joints taken straight from one landmark.
_DIRECT = {
    joint: _LAYOUT.index(f"{side}_{landmark}")
    for part, landmark in (
        ("upperarm", "shoulder"), ("lowerarm", "elbow"), ("hand", "wrist"),
        ("thigh", "hip"), ("calf", "knee"), ("foot", "ankle"), ("ball", "foot_index"),
    )
    for joint, side in ((f"{part}_l", "left"), (f"{part}_r", "right"))
}  # fmt: skip

# Landmarks that feed a joint (also the ones worth cleaning): nose, ears, torso, limbs, hands, feet.
LANDMARKS_USED: tuple[int, ...] = tuple(
    sorted(
        {_NOSE}
        | {i for pair in _LAYOUT.pairs(
            "ear", "shoulder", "elbow", "wrist", "pinky", "index", "hip", "knee", "ankle", "heel", "foot_index"
        ) for i in pair}
    )
)  # fmt: skip


def zup_from_mediapipe(points: FloatArray) -> FloatArray:
    """(..., 3) MediaPipe camera-aligned (x right, y down, z away) -> our Z-up frame (x, z, -y)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def _mid(a: FloatArray, b: FloatArray) -> FloatArray:
    return 0.5 * (a + b)


def joints_from_landmarks(landmarks: FloatArray, skeleton: Skeleton = DEFAULT_SKELETON) -> FloatArray:
    """Joint positions (F, J, 3) in ``skeleton`` order from landmarks (F, 33, 3) already in our axes.

    NaN landmarks give NaN joints (the head falls back to the nose when both ears are unknown).
    The root row is NaN.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    f = lm.shape[0]
    out = np.full((f, skeleton.num_joints, 3), np.nan)
    hip = _mid(lm[:, _L_HIP], lm[:, _R_HIP])  # (F, 3)
    sho = _mid(lm[:, _L_SHOULDER], lm[:, _R_SHOULDER])  # (F, 3)
    ear = _mid(lm[:, _L_EAR], lm[:, _R_EAR])  # (F, 3)
    head = np.where(np.isfinite(ear), ear, lm[:, _NOSE])  # (F, 3)
    joints: dict[str, FloatArray] = {
        "pelvis": hip,
        "head": head,
        "neck_01": sho + _NECK_FRACTION * (head - sho),
    }
    for name, frac in _SPINE_FRACTIONS.items():
        joints[name] = hip + frac * (sho - hip)
    joints["clavicle_l"] = sho + _CLAVICLE_FRACTION * (lm[:, _L_SHOULDER] - sho)
    joints["clavicle_r"] = sho + _CLAVICLE_FRACTION * (lm[:, _R_SHOULDER] - sho)
    for name, idx in _DIRECT.items():
        joints[name] = lm[:, idx]
    for name, pos in joints.items():
        if name in skeleton.names:
            out[:, skeleton.index(name)] = pos
    return out


# Joints `joints_from_landmarks` builds from others (the torso), and the ones they are built from.
DERIVED_JOINTS: tuple[str, ...] = ("pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "clavicle_l", "clavicle_r")


def torso_from_limbs(joints: FloatArray, skeleton: Skeleton = DEFAULT_SKELETON) -> FloatArray:
    """``joints`` (F, J, 3) with the torso joints (`DERIVED_JOINTS`) rebuilt from the thighs, shoulders
    (upperarm) and head by the rules of `joints_from_landmarks` (the pelvis midway between the thighs
    stays the hips' midpoint when the thighs are narrowed symmetrically about it)."""
    out = np.array(joints, dtype=np.float64)
    j = skeleton.index
    hip = _mid(out[:, j("thigh_l")], out[:, j("thigh_r")])
    sho = _mid(out[:, j("upperarm_l")], out[:, j("upperarm_r")])
    out[:, j("pelvis")] = hip
    for name, frac in _SPINE_FRACTIONS.items():
        out[:, j(name)] = hip + frac * (sho - hip)
    out[:, j("neck_01")] = sho + _NECK_FRACTION * (out[:, j("head")] - sho)
    out[:, j("clavicle_l")] = sho + _CLAVICLE_FRACTION * (out[:, j("upperarm_l")] - sho)
    out[:, j("clavicle_r")] = sho + _CLAVICLE_FRACTION * (out[:, j("upperarm_r")] - sho)
    return out


def joint_visibility(visibility: FloatArray, skeleton: Skeleton = DEFAULT_SKELETON) -> FloatArray:
    """Per-joint confidence (F, J) from landmark visibility (F, 33): the minimum over the landmarks
    a joint is built from (root: the hips)."""
    v = np.asarray(visibility, dtype=np.float64)
    hips = np.minimum(v[:, _L_HIP], v[:, _R_HIP])
    sho = np.minimum(v[:, _L_SHOULDER], v[:, _R_SHOULDER])
    ear = np.maximum(np.minimum(v[:, _L_EAR], v[:, _R_EAR]), v[:, _NOSE])
    per: dict[str, FloatArray] = {
        "root": hips,
        "pelvis": hips,
        "head": np.minimum(ear, sho),
        "neck_01": np.minimum(ear, sho),
    }
    for name in _SPINE_FRACTIONS:
        per[name] = np.minimum(hips, sho)
    per["clavicle_l"] = np.minimum(sho, v[:, _L_SHOULDER])
    per["clavicle_r"] = np.minimum(sho, v[:, _R_SHOULDER])
    for name, idx in _DIRECT.items():
        per[name] = v[:, idx]
    out = np.zeros((v.shape[0], skeleton.num_joints))
    for name, conf in per.items():
        if name in skeleton.names:
            out[:, skeleton.index(name)] = conf
    return out


def hand_points(landmarks: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Left and right hand centres (F, 3): mean of wrist, index and pinky (15/19/17, 16/20/18)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    left = (lm[:, _L_WRIST] + lm[:, _L_PINKY] + lm[:, _L_INDEX]) / 3.0
    right = (lm[:, _R_WRIST] + lm[:, _R_PINKY] + lm[:, _R_INDEX]) / 3.0
    return left, right
