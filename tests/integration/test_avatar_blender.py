"""Every shared rig, animated by a CMU take and written as FBX, imported by Blender (``bpy``): one
armature with the avatar's own bone names, its meshes bound to it by an Armature modifier and vertex
groups named after the bones, the take at its length and rate, and on every frame the bones where
our forward kinematics puts them (so the feet stand where the retargeting put them: on the ground),
the mapped joints following the source's, root-aligned and size-normalised, as read back from the
imported FBX and GLB;
and the character's look, in the FBX and in the GLB: UVs, its materials, and its base colour images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mocapd.avatars.prepare import prepare_bytes
from mocapd.avatars.retarget import retarget_to_avatar
from mocapd.avatars.rig import Rig, load_rig, save_rig, yup_rotation
from mocapd.formats.avatar_gltf import write_avatar_glb
from mocapd.formats.fbx.avatar import write_avatar_fbx
from mocapd.pipeline.contacts import detect_contacts
from mocapd.pipeline.resample import resample_motion
from mocapd.pipeline.skeleton import Motion
from tests.conftest import shared_file
from tests.support.avatar_positions import measured_joints, position_report, rest_report
from tests.support.cmu import cmu_motion
from tests.support.rigs import RIGS, rig_bytes

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a module) is in the dev extra")

_FRAMES = 45
_TEXTURED = {"godette.vrm", "m2m_male.glb"}  # the shared rigs whose materials use an image
_ZUP_FROM_YUP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # Blender's import of a Y-up file


def _imported_joints(arm: object, rig: Rig, mapping: dict[str, str], frames: range) -> np.ndarray:
    """The mapped body joints' heads (F, K, 3) on ``frames`` of the imported armature, taken back to
    mocapd's frame (Blender's Z-up metres -> the file's Y-up -> the file frame -> mocapd's)."""
    scene = bpy.context.scene
    to_blender = rig.unit_m * _ZUP_FROM_YUP @ yup_rotation(rig.up_axis)
    bones = {b.name: b for b in arm.pose.bones}  # type: ignore[attr-defined]
    joints = [bones[mapping[k]] for k in measured_joints(mapping)]
    out = []
    for frame in frames:
        scene.frame_set(frame)
        world = np.array(arm.matrix_world)  # type: ignore[attr-defined]
        heads = np.array([tuple(b.head) for b in joints]) @ world[:3, :3].T + world[:3, 3]
        file_pos = np.linalg.solve(to_blender, heads.T).T
        out.append(file_pos @ rig.to_norm[:3, :3].T + rig.to_norm[:3, 3])
    return np.array(out)


def _check_positions(anim: object, rig: Rig, prepared: object, motion: Motion, imported: np.ndarray) -> None:
    """The imported joints follow the source, root-aligned and size-normalised, as the animation does
    (tests/unit/avatars/test_retarget.py: within the rest-pose proportion floor plus 4.5 % of height)."""
    facts = prepared.facts  # type: ignore[attr-defined]
    mapping, height = facts["mapping"], facts["heightM"]
    ours = position_report(anim, mapping, height, motion)  # type: ignore[arg-type]
    back = position_report(anim, mapping, height, motion, avatar_pos=imported)  # type: ignore[arg-type]
    assert np.abs(back.error - ours.error).max() < 1e-3, float(np.abs(back.error - ours.error).max())
    floor = rest_report(anim, mapping, height, motion).max  # type: ignore[arg-type]
    assert back.max <= max(floor, 0.05) + 0.045, (back.worst(), floor)


def _short_take() -> Motion:
    m = resample_motion(cmu_motion(shared_file("bvh/cmu_131_01.bvh")), 30.0)
    return Motion(m.skeleton, m.fps, m.local_translation_m[60 : 60 + _FRAMES], m.local_quat_wxyz[60 : 60 + _FRAMES])


@pytest.mark.parametrize("name", RIGS)
def test_blender_imports_the_avatar_fbx(name: str, tmp_path: Path) -> None:
    prepared = prepare_bytes(rig_bytes(name), name)
    rig, mapping = load_rig(save_rig(prepared.rig)), prepared.facts["mapping"]  # the stored rig, as a job reads it
    motion = _short_take()
    anim = retarget_to_avatar(motion, rig, mapping, detect_contacts(motion))
    path = tmp_path / f"avatar_{Path(name).stem}.fbx"
    path.write_bytes(write_avatar_fbx(anim))

    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.fbx(filepath=str(path)) == {"FINISHED"}
    scene = bpy.context.scene
    (arm,) = [o for o in scene.objects if o.type == "ARMATURE"]
    meshes = [o for o in scene.objects if o.type == "MESH"]
    assert {b.name for b in arm.pose.bones} == set(rig.names)
    assert len(meshes) == len(rig.meshes)
    for obj in meshes:
        mods = [m for m in obj.modifiers if m.type == "ARMATURE"]
        assert mods and mods[0].object == arm
        groups = {g.name for g in obj.vertex_groups}
        assert groups and groups <= set(rig.names)
    first, last = (int(round(v)) for v in arm.animation_data.action.frame_range)
    assert last - first + 1 == _FRAMES and scene.render.fps == 30

    # expected bone heads in Blender's frame: mocapd frame -> file frame -> the FBX's Y-up -> Z-up metres
    to_file = np.linalg.inv(rig.to_norm)
    file_pos = np.einsum("ij,fbj->fbi", to_file, anim.world_norm[:, :, :, 3])[..., :3]  # (F, B, 3)
    expected = np.einsum("ij,fbj->fbi", rig.unit_m * _ZUP_FROM_YUP @ yup_rotation(rig.up_axis), file_pos)
    order = [rig.names.index(b.name) for b in arm.pose.bones]
    tol = 1e-3 * max(prepared.facts["heightM"], 1.0)
    for k, frame in enumerate(range(first, last + 1, 4)):
        scene.frame_set(frame)
        world = np.array(arm.matrix_world)
        heads = np.array([tuple(b.head) for b in arm.pose.bones]) @ world[:3, :3].T + world[:3, 3]
        err = np.linalg.norm(heads - expected[4 * k, order], axis=1)
        assert err.max() < tol, (frame, arm.pose.bones[int(err.argmax())].name, float(err.max()))
    _check_positions(anim, rig, prepared, motion, _imported_joints(arm, rig, mapping, range(first, last + 1)))
    # the skin follows the bones: the evaluated mesh moves with the animation
    scene.frame_set(first)
    dg = bpy.context.evaluated_depsgraph_get()
    v0 = np.array([tuple(v.co) for v in meshes[0].evaluated_get(dg).to_mesh().vertices])
    scene.frame_set(last)
    dg = bpy.context.evaluated_depsgraph_get()
    v1 = np.array([tuple(v.co) for v in meshes[0].evaluated_get(dg).to_mesh().vertices])
    assert np.abs(v1 - v0).max() > 0.01 * prepared.facts["heightM"]
    # the character's look: UVs, materials, and base colour images (embedded in the file)
    assert _imported_look() == _look(rig)
    assert all(im.packed_file is not None for im in bpy.data.images if im.source == "FILE")
    for mesh in rig.meshes:  # morph targets come in as shape keys at 0, moving the vertices as in the rig
        if mesh.morph_names and mesh.morph_positions is not None:
            (obj,) = [o for o in scene.objects if o.type == "MESH" and o.name == mesh.name]
            keys = obj.data.shape_keys.key_blocks
            assert [k.name for k in keys][1:] == mesh.morph_names and all(k.value == 0.0 for k in keys)
            basis = np.array([tuple(v.co) for v in keys[0].data])
            for k, offsets in zip(keys[1:], mesh.morph_positions, strict=True):
                moved = np.linalg.norm(np.array([tuple(v.co) for v in k.data]) - basis, axis=1).max()
                assert moved == pytest.approx(rig.unit_m * np.linalg.norm(offsets, axis=1).max(), abs=1e-4), k.name


Look = list[tuple[bool, list[str], list[str]]]


def _look(rig: Rig) -> Look:
    """Per mesh (sorted): whether it has UVs, its materials' names, and those with a base colour texture."""
    out = []
    for mesh in rig.meshes:
        used = sorted({int(m) for m in mesh.triangle_materials if m >= 0}) if mesh.triangle_materials is not None else []
        mats = [rig.materials[m] for m in used]
        out.append((mesh.uvs is not None, sorted(m.name for m in mats),
                    sorted(m.name for m in mats if "baseColor" in m.textures)))
    return sorted(out)


def _imported_look() -> Look:
    out = []
    for obj in bpy.context.scene.objects:
        if obj.type != "MESH" or not obj.vertex_groups:  # (the glTF importer adds a bone-shape sphere)
            continue
        mats = [m for m in obj.data.materials if m is not None]
        textured = {  # an image (with pixels) feeding the material's base colour (an unlit one's: its emission colour)
            m.name for m in mats
            if m.use_nodes and any(n.type == "TEX_IMAGE" and n.image is not None and n.image.size[0] > 0
                                   and any(link.to_socket.name == "Base Color"
                                           or (link.to_node.type == "EMISSION" and link.to_socket.name == "Color")
                                           for out in n.outputs for link in out.links)
                                   for n in m.node_tree.nodes)
        }
        out.append((len(obj.data.uv_layers) > 0, sorted(m.name for m in mats), sorted(textured)))
    return sorted(out)


@pytest.mark.parametrize("name", RIGS)
def test_blender_imports_the_avatar_glb_with_its_uvs_materials_textures_and_morph_targets(name: str, tmp_path: Path) -> None:
    prepared = prepare_bytes(rig_bytes(name), name)
    rig = load_rig(save_rig(prepared.rig))  # what a job reads
    motion = _short_take()
    anim = retarget_to_avatar(motion, rig, prepared.facts["mapping"], detect_contacts(motion))
    path = tmp_path / f"avatar_{Path(name).stem}.glb"
    path.write_bytes(write_avatar_glb(anim))

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30  # the importer places the keys at the scene's rate
    assert bpy.ops.import_scene.gltf(filepath=str(path)) == {"FINISHED"}
    (arm,) = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    first, last = (int(round(v)) for v in arm.animation_data.action.frame_range)
    assert last - first + 1 == _FRAMES
    _check_positions(anim, rig, prepared, motion, _imported_joints(arm, rig, prepared.facts["mapping"], range(first, last + 1)))
    expected = _look(rig)
    assert _imported_look() == expected
    if name in _TEXTURED:
        assert any(textured for _, _, textured in expected)
    for mesh in rig.meshes:  # morph targets come in as shape keys, at rest
        if mesh.morph_names:
            (obj,) = [o for o in bpy.context.scene.objects if o.type == "MESH" and o.name == mesh.name]
            keys = obj.data.shape_keys.key_blocks
            assert [k.name for k in keys][1:] == mesh.morph_names and all(k.value == 0.0 for k in keys)
