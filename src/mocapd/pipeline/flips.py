"""Front/back flips of the detected body: detect them over the clip and repair them.

A single camera cannot tell a person facing it from the same silhouette facing away, and BlazePose
sometimes switches between the two readings from one frame to the next: the left and right landmarks
trade places (in the image and in the world landmarks) and the body's depth is mirrored. On the
balancing clip's cam02 39 of 100 frames are read that way (the raw landmarks' PA-MPJPE is 135 mm over
the clip, 84 mm with those frames relabelled).

Detection: the facing of each frame is the depth of the nose behind (+) or in front of (-) the
shoulder centre, in shoulder widths. A person cannot turn round between two frames, so a change of
facing from clearly one side to clearly the other between consecutive frames (each beyond
``FACING_MARGIN``) is a flip of the reading. The flips cut the clip into runs of alternate parity;
the parity covering fewer frames is taken as the misread one (the detector reads most frames right).
A person who really turns round passes through side-on frames and makes no flip.

Repair of a misread frame: the left and right landmarks swap back (image, world, visibility) and the
world landmarks' depth is mirrored about the hip centre, which keeps their projection.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mocapd.pipeline.layout import BLAZEPOSE_33, LandmarkLayout
from mocapd.pipeline.pose import PoseTrack

__all__ = ["FACING_MARGIN", "facing", "misread_frames", "repair_flips", "swap_sides"]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.intp]

FACING_MARGIN = 0.25  # shoulder widths of nose depth either side of the shoulders


def swap_sides(layout: LandmarkLayout = BLAZEPOSE_33) -> IntArray:
    """The index permutation (K,) that exchanges every left landmark with its right partner (by name:
    ``left_x`` <-> ``right_x``, ``x_left`` <-> ``x_right``); midline landmarks stay."""
    out = np.arange(layout.num_landmarks)
    for i, name in enumerate(layout.names):
        if "left" in name:
            out[i] = layout.index(name.replace("left", "right"))
        elif "right" in name:
            out[i] = layout.index(name.replace("right", "left"))
    return out


def facing(world_m: FloatArray, layout: LandmarkLayout = BLAZEPOSE_33) -> FloatArray:
    """Per frame (F,): nose depth minus the shoulder centre's, in shoulder widths (MediaPipe axes, z away
    from the camera: negative = facing the camera). NaN where unknown."""
    nose, left, right = layout.indices("nose", "left_shoulder", "right_shoulder")
    sh = 0.5 * (world_m[:, left] + world_m[:, right])  # (F, 3)
    width = np.linalg.norm(world_m[:, left] - world_m[:, right], axis=-1)  # (F,)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = (world_m[:, nose, 2] - sh[:, 2]) / np.where(width > 1e-6, width, np.nan)
    return out


def misread_frames(
    world_m: FloatArray, valid: BoolArray, *, margin: float = FACING_MARGIN, layout: LandmarkLayout = BLAZEPOSE_33
) -> BoolArray:
    """Frames (F,) whose front/back reading is the minority one between abrupt flips (module doc)."""
    s = facing(world_m, layout)
    f = s.shape[0]
    side = np.where(valid & (s > margin), 1, np.where(valid & (s < -margin), -1, 0))  # (F,)
    parity = np.zeros(f, dtype=np.int64)
    p, last = 0, 0  # last: the side of the previous frame (0 = side-on / unknown: breaks a flip)
    for t in range(f):
        if side[t] != 0 and last != 0 and side[t] == -last:
            p ^= 1
        last = side[t]
        parity[t] = p
    if not parity.any():
        return np.zeros(f, dtype=bool)
    ones = int(np.sum(parity[valid] == 1))
    zeros = int(np.sum(parity[valid] == 0))
    bad: BoolArray = valid & (parity == (1 if ones < zeros else 0))
    return bad


def repair_flips(track: PoseTrack, layout: LandmarkLayout = BLAZEPOSE_33) -> tuple[PoseTrack, BoolArray]:
    """The track with its misread frames relabelled and depth-mirrored, and those frames (F,)."""
    bad = misread_frames(track.world_m, track.valid, layout=layout)
    swap = swap_sides(layout)
    if not bad.any():
        return track, bad
    px = track.landmarks_px.copy()
    world = track.world_m.copy()
    vis = track.visibility.copy()
    px[bad] = px[bad][:, swap]
    vis[bad] = vis[bad][:, swap]
    w = world[bad][:, swap]
    w[..., 2] *= -1.0
    world[bad] = w
    return PoseTrack(track.time_s, track.image_size_px, px, world, vis, track.person, track.valid), bad
