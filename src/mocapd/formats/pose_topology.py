"""The BlazePose 33-landmark topology (names, drawing connections) and left/right sides of names.

Index order is MediaPipe's ``PoseLandmark`` enum; odd indices are the person's left side, even
indices (from 12 on, and the right eye/ear/mouth corner) the right side. The connection list is
MediaPipe's ``POSE_CONNECTIONS``, written out here so drawing needs no mediapipe import.
"""

from __future__ import annotations

__all__ = [
    "LANDMARK_NAMES",
    "POSE_CONNECTIONS",
    "landmark_side",
    "name_side",
]

LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)

# MediaPipe POSE_CONNECTIONS, sorted.
POSE_CONNECTIONS: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 4), (1, 2), (2, 3), (3, 7), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (11, 23), (12, 14), (12, 24), (13, 15), (14, 16),
    (15, 17), (15, 19), (15, 21), (16, 18), (16, 20), (16, 22), (17, 19), (18, 20),
    (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (27, 31),
    (28, 30), (28, 32), (29, 31), (30, 32),
)  # fmt: skip


def name_side(name: str) -> int:
    """+1 for a left-side name, -1 for a right-side one, 0 for the midline.

    Understands our skeleton's ``_l``/``_r`` suffixes, MediaPipe's ``left_``/``right_`` prefixes and
    ``_left``/``_right`` suffixes (``mouth_left``), and the robot's ``left_``/``right_`` body names.
    """
    n = name.lower()
    if n.endswith("_l") or n.startswith("left") or n.endswith("_left"):
        return 1
    if n.endswith("_r") or n.startswith("right") or n.endswith("_right"):
        return -1
    return 0


def landmark_side(index: int) -> int:
    """Side (+1 left, -1 right, 0 midline) of a BlazePose landmark index."""
    return name_side(LANDMARK_NAMES[index])
