"""Our GLB imported by Blender's glTF importer (``bpy``): bone heads on every frame equal the
motion's joint positions within 1 mm, the skinned mesh comes along, the clip has one key per frame.

Blender converts glTF's Y up to its Z up (our convention). Its importer turns seconds into frames
at the scene's rate, so the scene is set to the motion's rate first (glTF itself carries no rate;
we also put it in ``animations[0].extras.fps``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mocapd.formats.gltf import write_glb
from tests.unit.formats.test_fbx_scene import smooth_random_motion

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a module) is in the dev extra")


def test_blender_imports_the_glb_and_matches_every_frame(tmp_path: Path) -> None:
    motion = smooth_random_motion(num_frames=60, fps=30.0, seed=8)
    path = tmp_path / "motion.glb"
    path.write_bytes(write_glb(motion))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}
    armatures = [o for o in scene.objects if o.type == "ARMATURE"]
    meshes = [o for o in scene.objects if o.type == "MESH" and o.name == "Body"]
    assert len(armatures) == 1 and len(meshes) == 1
    arm = armatures[0]
    assert meshes[0].find_armature() == arm
    first, last = (int(round(v)) for v in arm.animation_data.action.frame_range)
    assert last - first + 1 == motion.num_frames
    expected = motion.world_positions_m()  # (F, J, 3)
    bones = [arm.pose.bones[n] for n in motion.skeleton.names]
    err_m = np.zeros((motion.num_frames, len(bones)))
    for f in range(motion.num_frames):
        scene.frame_set(first + f)
        world = np.array(arm.matrix_world)  # (4, 4)
        heads = np.array([tuple(b.head) for b in bones]) @ world[:3, :3].T + world[:3, 3]  # (J, 3)
        err_m[f] = np.linalg.norm(heads - expected[f], axis=-1)
    assert err_m.max() < 1e-3, f"{err_m.max() * 1000:.3f} mm"
