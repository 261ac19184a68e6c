"""handTracking end to end on a real clip (the balancing trial, whose hands are in view): the default
skeleton gains the 30 Unreal finger bones in BVH, FBX and GLB, they move, stay inside their limits, and
quality.json and the manifest say how often each hand was seen; the preview draws the hands where the
body's wrists are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pygltflib
import pytest

import mocapd.formats.preview as preview
from mocapd.formats.bvh import read_bvh
from mocapd.pipeline.fingers import FINGER_NAMES
from mocapd.pipeline.settings import JobSettings
from mocapd.worker.produce import produce
from tests.conftest import shared_file

pytestmark = pytest.mark.slow


def test_finger_bones_move_within_their_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = shared_file("pose2sim_balancing/cam01.mp4")
    drawn: list[tuple[str, np.ndarray]] = []  # what the preview's source panel drew, in drawing order
    for name in ("draw_landmarks_2d", "draw_hands_2d"):
        real = getattr(preview, name)
        monkeypatch.setattr(preview, name, lambda img, px, *, _n=name, _f=real, **kw: (
            drawn.append((_n, np.array(px))), _f(img, px, **kw))[-1])
    out = produce(source, JobSettings(("default",), 30, "full_body", 0.5, 1.0, focal_length_px=1681.0, hand_tracking=True),
                  tmp_path, lambda *_: None)
    hands = out.manifest["processing"]["hands"]
    assert hands["framesAnalysed"] == 30
    assert hands["left"]["framesSeen"] >= 15 and hands["right"]["framesSeen"] >= 15
    assert hands["framesOutsideLimits"] == 0
    quality = json.loads((tmp_path / "quality.json").read_text())
    assert quality["hands"] == hands

    motion = read_bvh(tmp_path / "motion.bvh")
    names = motion.skeleton.names
    assert set(FINGER_NAMES) <= set(names)
    fingers = [names.index(n) for n in FINGER_NAMES]
    q = motion.local_quat_wxyz[:, fingers]  # (F, 30, 4)
    angle = 2.0 * np.degrees(np.arccos(np.clip(np.abs(q[..., 0]), 0.0, 1.0)))  # (F, 30)
    assert angle.max() < 115.0  # no joint past the largest range (PIP, 110 degrees)
    assert (angle.max(axis=0) - angle.min(axis=0)).max() > 2.0, "the fingers never move"

    assert all(n.encode() in (tmp_path / "motion.fbx").read_bytes() for n in FINGER_NAMES)
    glb = pygltflib.GLTF2().load(str(tmp_path / "motion.glb"))
    joint_names = {glb.nodes[j].name for j in glb.skins[0].joints}
    assert set(FINGER_NAMES) <= joint_names

    # the preview (every 2nd frame of the 60 fps source) draws each frame's hands over its body landmarks,
    # the performer's left hand at BlazePose's left wrist and the right at the right wrist
    assert [n for n, _ in drawn] == ["draw_landmarks_2d", "draw_hands_2d"] * 15
    body, hands = np.stack([px for _, px in drawn[0::2]]), np.stack([px for _, px in drawn[1::2]])
    wrists = body[:, [15, 16]]  # (15, 2, 2) left, right
    seen = np.isfinite(hands).all(axis=(2, 3))  # (15, 2)
    assert seen[:, 0].sum() >= 10 and seen[:, 1].sum() >= 10
    gap = np.linalg.norm(hands[:, :, 0] - wrists, axis=-1)[seen]  # hand wrist to body wrist, panel px
    assert np.median(gap) < 4.0 and gap.max() < 12.0  # the hands are 140 px apart in this 540 px panel
