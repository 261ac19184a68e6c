"""Our FBX read by an independent loader (ufbx): axes, units, rate, take length, the armature tree,
one key per frame on every curve, and the rest pose at human scale.

Per-frame positions are checked through Blender (tests/integration/test_fbx_import.py) and our own FK
of the decoded curves (test_fbx_scene.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mocapd.avatars.read_fbx import own
from mocapd.formats.fbx import write_fbx
from mocapd.pipeline.skeleton import DEFAULT_SKELETON
from tests.unit.formats.test_fbx_scene import smooth_random_motion, zup_m_from_fbx_cm

ufbx = pytest.importorskip("ufbx", reason="ufbx is a dependency")


@pytest.fixture(scope="module")
def scene_and_motion(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    motion = smooth_random_motion(num_frames=48, fps=24.0, seed=11)
    path: Path = tmp_path_factory.mktemp("fbx") / "motion.fbx"
    path.write_bytes(write_fbx(motion))
    return own(ufbx.load_file(str(path))), motion


def test_axes_units_and_rate(scene_and_motion) -> None:  # type: ignore[no-untyped-def]
    scene, motion = scene_and_motion
    axes = own(own(scene.settings).axes)
    assert axes.right == ufbx.CoordinateAxis.POSITIVE_X
    assert axes.up == ufbx.CoordinateAxis.POSITIVE_Y
    assert axes.front == ufbx.CoordinateAxis.POSITIVE_Z
    assert own(scene.settings).unit_meters == pytest.approx(0.01)
    assert own(scene.settings).frames_per_second == pytest.approx(motion.fps)
    metadata = own(scene.metadata)
    assert metadata.version == 7400 and not metadata.ascii


def test_one_take_spanning_the_clip(scene_and_motion) -> None:  # type: ignore[no-untyped-def]
    scene, motion = scene_and_motion
    stacks = own(scene.anim_stacks)
    assert len(stacks) == 1
    stack = own(stacks[0])
    assert stack.time_begin == pytest.approx(0.0)
    assert stack.time_end == pytest.approx((motion.num_frames - 1) / motion.fps)
    curves = own(scene.anim_curves)
    assert len(curves) == 3 * (DEFAULT_SKELETON.num_joints + 2)
    for i in range(len(curves)):
        curve = own(curves[i])
        assert len(own(curve.keyframes)) == motion.num_frames
        assert curve.min_time == pytest.approx(0.0) and curve.max_time == pytest.approx(stack.time_end)


def test_armature_tree_and_rest_pose(scene_and_motion) -> None:  # type: ignore[no-untyped-def]
    scene, _motion = scene_and_motion
    armature = own(scene.find_node("Armature"))
    assert armature is not None and own(armature.parent).is_root
    rest_m = DEFAULT_SKELETON.rest_positions_m()  # (J, 3)
    for j, name in enumerate(DEFAULT_SKELETON.names):
        node = own(scene.find_node(name))
        assert node is not None and own(node.bone) is not None, name
        parent = DEFAULT_SKELETON.parents[j]
        assert own(node.parent).name == ("Armature" if parent < 0 else DEFAULT_SKELETON.names[parent])
        world = np.asarray(node.node_to_world)  # (4, 3): the columns c0..c3, translation last
        assert np.allclose(zup_m_from_fbx_cm(world[3, :3]), rest_m[j], atol=1e-6), name
    head = zup_m_from_fbx_cm(np.asarray(own(scene.find_node("head")).node_to_world)[3, :3])
    assert 1.4 < head[2] < 2.0  # human height, Z up after undoing the file's Y-up cm
