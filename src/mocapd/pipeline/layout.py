"""Landmark layouts: what a pose model's landmark indices mean.

A `LandmarkLayout` names a model's landmarks (in its output order), the pairs drawn as bones and each
landmark's side. Code outside this module never writes a landmark index: it asks the layout by name
(``BLAZEPOSE_33.index("left_hip")``, ``.indices(*names)``), so a model with another layout plugs in
through its own `LandmarkLayout`. A layout that keeps BlazePose's 33 body landmarks first and appends
others (a holistic model's hand landmarks, say) keeps every body index the pipeline uses.

`BLAZEPOSE_33` is MediaPipe's ``PoseLandmark`` order (odd indices the person's left side, even ones
from 12 on the right) with MediaPipe's ``POSE_CONNECTIONS``, written out here so drawing needs no
mediapipe import. BlazePose Lite, Full and Heavy all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BLAZEPOSE_33",
    "HAND_21",
    "LandmarkLayout",
    "name_side",
]


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


@dataclass(frozen=True)
class LandmarkLayout:
    name: str
    names: tuple[str, ...]  # landmark names in the model's output order
    connections: tuple[tuple[str, str], ...]  # pairs drawn as bones
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {n: i for i, n in enumerate(self.names)}
        if len(index) != len(self.names):
            raise ValueError(f"layout {self.name}: landmark names repeat")
        unknown = {n for pair in self.connections for n in pair} - set(index)
        if unknown:
            raise ValueError(f"layout {self.name}: connections name unknown landmarks {sorted(unknown)}")
        object.__setattr__(self, "_index", index)

    @property
    def num_landmarks(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"layout {self.name} has no landmark {name!r}") from None

    def indices(self, *names: str) -> tuple[int, ...]:
        return tuple(self.index(n) for n in names)

    def pairs(self, *names: str) -> tuple[tuple[int, int], ...]:
        """Index pairs ``(left, right)`` for the base names: ``pairs("hip")`` -> ((left_hip, right_hip),)."""
        return tuple((self.index(f"left_{n}"), self.index(f"right_{n}")) for n in names)

    @property
    def connection_indices(self) -> tuple[tuple[int, int], ...]:
        return tuple((self.index(a), self.index(b)) for a, b in self.connections)

    def side(self, index: int) -> int:
        """Side (+1 left, -1 right, 0 midline) of the landmark at ``index``."""
        return name_side(self.names[index])


_BLAZEPOSE_NAMES: tuple[str, ...] = (
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


def _blazepose_connections() -> tuple[tuple[str, str], ...]:
    # MediaPipe POSE_CONNECTIONS (as index pairs in its own listing), sorted.
    pairs = (
        (0, 1), (0, 4), (1, 2), (2, 3), (3, 7), (4, 5), (5, 6), (6, 8), (9, 10),
        (11, 12), (11, 13), (11, 23), (12, 14), (12, 24), (13, 15), (14, 16),
        (15, 17), (15, 19), (15, 21), (16, 18), (16, 20), (16, 22), (17, 19), (18, 20),
        (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (27, 31),
        (28, 30), (28, 32), (29, 31), (30, 32),
    )  # fmt: skip
    return tuple((_BLAZEPOSE_NAMES[a], _BLAZEPOSE_NAMES[b]) for a, b in pairs)


BLAZEPOSE_33 = LandmarkLayout("blazepose_33", _BLAZEPOSE_NAMES, _blazepose_connections())


def _hand_names() -> tuple[str, ...]:
    fingers = {
        "thumb": ("cmc", "mcp", "ip", "tip"),
        **{f: ("mcp", "pip", "dip", "tip") for f in ("index_finger", "middle_finger", "ring_finger", "pinky")},
    }
    return ("wrist",) + tuple(f"{finger}_{joint}" for finger, joints in fingers.items() for joint in joints)


def _hand_connections() -> tuple[tuple[str, str], ...]:
    # MediaPipe HAND_CONNECTIONS: each finger's chain from the wrist (the thumb) or its knuckle, and the palm.
    names = _hand_names()
    pairs = (
        (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
        (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
    )  # fmt: skip
    return tuple((names[a], names[b]) for a, b in pairs)


# MediaPipe's 21 hand landmarks (``HandLandmark`` order), one hand; the side is the hand's own.
HAND_21 = LandmarkLayout("mediapipe_hand_21", _hand_names(), _hand_connections())
