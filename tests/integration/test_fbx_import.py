"""Our FBX imported by Blender (``bpy``, Blender as a module): the armature's bones, evaluated on
every frame, sit where the motion's forward kinematics puts the joints (within 1 mm), at the
motion's frame count and rate, upright, facing forward, at human height.

Blender's importer converts the file's declared axes (Y up, front +Z) and unit (cm) back to its own
Z-up metres, which are exactly our conventions, so no conversion appears in the comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from mocapd.formats.fbx import write_fbx
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from tests.conftest import shared_file
from tests.unit.formats.test_fbx_scene import smooth_random_motion

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a module) is in the dev extra")

FloatArray = NDArray[np.float64]


def _import_fbx(path: Path) -> tuple[object, FloatArray, dict[str, object]]:
    """Import into an empty scene; return the armature object, bone heads (F, J, 3) in world metres, facts."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.import_scene.fbx(filepath=str(path))
    assert result == {"FINISHED"}
    scene = bpy.context.scene
    armatures = [o for o in scene.objects if o.type == "ARMATURE"]
    assert len(armatures) == 1
    arm = armatures[0]
    action = arm.animation_data.action
    first, last = (int(round(v)) for v in action.frame_range)
    bones = list(arm.pose.bones)
    heads = np.empty((last - first + 1, len(bones), 3))
    for k, frame in enumerate(range(first, last + 1)):
        scene.frame_set(frame)
        world = np.array(arm.matrix_world)  # (4, 4)
        local = np.array([tuple(b.head) for b in bones])  # (J, 3) armature space
        heads[k] = local @ world[:3, :3].T + world[:3, 3]
    facts = {
        "names": [b.name for b in bones],
        "fps": scene.render.fps / scene.render.fps_base,
        "armature_name": arm.name,
    }
    return arm, heads, facts


def _check_positions(motion: Motion, heads: FloatArray, names: list[str]) -> None:
    expected = motion.world_positions_m()  # (F, J, 3)
    assert heads.shape[0] == motion.num_frames
    order = [names.index(n) for n in motion.skeleton.names]
    err_m = np.linalg.norm(heads[:, order] - expected, axis=-1)  # (F, J)
    worst = np.unravel_index(err_m.argmax(), err_m.shape)
    assert err_m.max() < 1e-3, (
        f"{err_m.max() * 1000:.3f} mm at frame {worst[0]}, {motion.skeleton.names[worst[1]]}"
    )


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Motion, FloatArray, dict[str, object]]:
    motion = smooth_random_motion(DEFAULT_SKELETON, num_frames=90, fps=30.0, seed=21)
    path = tmp_path_factory.mktemp("fbx") / "synthetic.fbx"
    path.write_bytes(write_fbx(motion))
    _arm, heads, facts = _import_fbx(path)
    return motion, heads, facts


def test_blender_bones_follow_the_motion_on_every_frame(synthetic) -> None:  # type: ignore[no-untyped-def]
    motion, heads, facts = synthetic
    assert set(facts["names"]) == set(DEFAULT_SKELETON.names)  # type: ignore[arg-type]
    assert facts["armature_name"] == "Armature"
    _check_positions(motion, heads, facts["names"])  # type: ignore[arg-type]


def test_blender_frame_count_and_rate(synthetic) -> None:  # type: ignore[no-untyped-def]
    motion, heads, facts = synthetic
    assert heads.shape[0] == motion.num_frames
    assert facts["fps"] == pytest.approx(motion.fps)


def test_blender_sees_an_upright_forward_facing_human(synthetic) -> None:  # type: ignore[no-untyped-def]
    _motion, heads, facts = synthetic
    names: list[str] = facts["names"]  # type: ignore[assignment]
    rest = heads[0]  # frame 0 of the synthetic motion is the rest pose
    idx = {n: names.index(n) for n in names}
    assert (
        rest[idx["head"], 2] > rest[idx["pelvis"], 2] > rest[idx["foot_l"], 2] > rest[idx["ball_l"], 2] - 0.2
    )
    height_m = rest[idx["head"], 2] - min(rest[idx["ball_l"], 2], rest[idx["foot_l"], 2])
    assert 1.4 < height_m < 2.0
    # Faces -Y (toes ahead of the ankles), left side at +X: the same conventions as ours.
    assert rest[idx["ball_l"], 1] < rest[idx["foot_l"], 1] - 0.05
    assert rest[idx["hand_l"], 0] > 0.5 > -0.5 > rest[idx["hand_r"], 0]


def test_blender_cmu_take_on_its_own_skeleton(tmp_path: Path) -> None:
    from mocapd.formats.bvh import read_bvh

    full = read_bvh(shared_file("bvh/cmu_131_01.bvh"))
    motion = Motion(full.skeleton, full.fps, full.local_translation_m[:150], full.local_quat_wxyz[:150])
    path = tmp_path / "cmu.fbx"
    path.write_bytes(write_fbx(motion))
    _arm, heads, facts = _import_fbx(path)
    assert facts["fps"] == pytest.approx(120.0)
    _check_positions(motion, heads, facts["names"])  # type: ignore[arg-type]


def test_blender_cmu_take_solved_onto_the_default_skeleton(tmp_path: Path) -> None:
    cmu = pytest.importorskip(
        "tests.support.cmu", reason="tests/support/cmu.py (Solver engineer) not there yet"
    )
    motion = cmu.cmu_motion(shared_file("bvh/cmu_131_03.bvh"))
    if motion.num_frames > 150:
        motion = Motion(
            motion.skeleton, motion.fps, motion.local_translation_m[:150], motion.local_quat_wxyz[:150]
        )
    path = tmp_path / "cmu_default.fbx"
    path.write_bytes(write_fbx(motion))
    _arm, heads, facts = _import_fbx(path)
    _check_positions(motion, heads, facts["names"])  # type: ignore[arg-type]
