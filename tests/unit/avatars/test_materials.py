"""The avatar's look survives preparation and the writers: texture coordinates, materials and their
images, for every shared rig. The source is read independently (pygltflib and the GLB's own bytes for
glTF/VRM, ufbx for FBX) and compared with the written GLB (pygltflib) after a trip through the
prepared rig's stored form."""

from __future__ import annotations

import ctypes
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
import pygltflib
import pytest

from mocapd.avatars.prepare import prepare_bytes
from mocapd.avatars.read_fbx import read_fbx
from mocapd.avatars.retarget import AvatarAnimation, retarget_to_avatar
from mocapd.avatars.rig import Rig, load_rig, save_rig
from mocapd.formats.avatar_gltf import write_avatar_glb
from mocapd.formats.fbx.avatar import write_avatar_fbx
from mocapd.pipeline.contacts import detect_contacts
from mocapd.pipeline.resample import resample_motion
from mocapd.pipeline.skeleton import Motion
from tests.conftest import shared_file
from tests.support.rigs import RIGS, rig_bytes

_FRAMES = 8


@lru_cache(maxsize=1)
def _motion() -> Motion:
    from tests.support.cmu import cmu_motion

    m = resample_motion(cmu_motion(shared_file("bvh/cmu_131_01.bvh")), 30.0)
    return Motion(m.skeleton, m.fps, m.local_translation_m[60 : 60 + _FRAMES], m.local_quat_wxyz[60 : 60 + _FRAMES])


@lru_cache(maxsize=8)
def _stored_rig(name: str) -> Rig:
    return load_rig(save_rig(prepare_bytes(rig_bytes(name), name).rig))


@lru_cache(maxsize=8)
def _animation(name: str) -> AvatarAnimation:
    motion = _motion()
    mapping = prepare_bytes(rig_bytes(name), name).facts["mapping"]
    return retarget_to_avatar(motion, _stored_rig(name), mapping, detect_contacts(motion))


@lru_cache(maxsize=8)
def _written(name: str) -> pygltflib.GLTF2:
    return pygltflib.GLTF2.load_from_bytes(write_avatar_glb(_animation(name)))


def _view(gltf: pygltflib.GLTF2, view: int) -> bytes:
    bv = gltf.bufferViews[view]
    start = bv.byteOffset or 0
    return bytes(gltf.binary_blob()[start : start + bv.byteLength])


def _floats(gltf: pygltflib.GLTF2, accessor: int) -> np.ndarray:
    acc = gltf.accessors[accessor]
    assert acc.componentType == pygltflib.FLOAT and acc.byteOffset in (None, 0)
    width = {"VEC2": 2, "VEC3": 3, "VEC4": 4}[acc.type]
    bv = gltf.bufferViews[acc.bufferView]
    stride = bv.byteStride or 4 * width
    raw = np.frombuffer(_view(gltf, acc.bufferView), dtype=np.uint8)
    rows = [raw[i * stride : i * stride + 4 * width] for i in range(acc.count)]
    return np.frombuffer(b"".join(r.tobytes() for r in rows), dtype="<f4").reshape(acc.count, width)


def _uv_set(uvs: np.ndarray) -> set[tuple[float, float]]:
    return {(round(float(u), 4), round(float(v), 4)) for u, v in uvs}


def _source_gltf(name: str) -> dict[str, Any]:
    """What the source holds, read with pygltflib: UV counts per (mesh node, UV accessor), the UVs,
    and per used material its base colour, alpha mode, sidedness and base colour image bytes."""
    src = pygltflib.GLTF2.load_from_bytes(rig_bytes(name))
    uv_counts, uvs, mats = [], [], {}
    for node in src.nodes:
        if node.mesh is None:
            continue
        seen = set()
        for prim in src.meshes[node.mesh].primitives:
            a = prim.attributes.TEXCOORD_0
            if a is not None and a not in seen:
                seen.add(a)
                uv_counts.append(src.accessors[a].count)
                uvs.append(_floats(src, a))
            if prim.material is not None:
                m = src.materials[prim.material]
                pbr = m.pbrMetallicRoughness
                image = None
                if pbr and pbr.baseColorTexture is not None:
                    image = _view(src, src.images[src.textures[pbr.baseColorTexture.index].source].bufferView)
                mats[m.name] = (pbr.baseColorFactor if pbr else [1.0] * 4, m.alphaMode, bool(m.doubleSided), image)
    return {"uv_counts": uv_counts, "uvs": _uv_set(np.concatenate(uvs)) if uvs else set(), "materials": mats}


def _source_fbx(name: str) -> dict[str, Any]:
    """The same facts read with ufbx (its objects kept alive: see mocapd.avatars.read_fbx)."""
    import ufbx

    from mocapd.avatars.read_fbx import own

    scene = own(ufbx.load_memory(rig_bytes(name)))
    meshes = own(scene.meshes)
    uvs, mats = [], {}
    for i in range(len(meshes)):
        mesh = own(meshes[i])
        uv = own(mesh.vertex_uv)
        if uv.exists:
            values = np.asarray(own(uv.values)).reshape(-1, 2)
            uvs.append(values[np.asarray(own(uv.indices))] * [1.0, -1.0] + [0.0, 1.0])  # glTF's v runs down
        materials = own(mesh.materials)
        for k in range(len(materials)):
            m = own(materials[k])
            c = own(own(own(m.fbx).diffuse_color).value_vec4)
            mats[str(m.name)] = ([c.x, c.y, c.z, 1.0], "OPAQUE", None, None)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(scene))
    return {"uv_counts": None, "uvs": _uv_set(np.concatenate(uvs)) if uvs else set(), "materials": mats}


@pytest.mark.parametrize("name", RIGS)
def test_the_glb_carries_the_sources_uvs_and_materials(name: str) -> None:
    source = _source_fbx(name) if name.endswith(".fbx") else _source_gltf(name)
    out = _written(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the validator announces itself as provisional
        from pygltflib.validator import validate

        validate(out)
    out_uv = [p.attributes.TEXCOORD_0 for m in out.meshes for p in m.primitives[:1]]
    if source["uv_counts"] is not None:
        assert [out.accessors[a].count for a in out_uv if a is not None] == source["uv_counts"]
    if source["uvs"]:
        assert _uv_set(np.concatenate([_floats(out, a) for a in out_uv if a is not None])) == source["uvs"]
    else:
        assert all(a is None for a in out_uv)

    by_name = {m.name: m for m in out.materials}
    assert set(by_name) == set(source["materials"])
    for mat_name, (color, alpha_mode, double_sided, image) in source["materials"].items():
        m = by_name[mat_name]
        assert np.allclose(m.pbrMetallicRoughness.baseColorFactor, color, atol=1e-6), mat_name
        assert m.alphaMode == alpha_mode
        if double_sided is not None:
            assert m.doubleSided == double_sided
        tex = m.pbrMetallicRoughness.baseColorTexture
        if image is None:
            assert tex is None
        else:  # the very image the source uses, embedded
            out_image = out.images[out.textures[tex.index].source]
            assert _view(out, out_image.bufferView) == image
            assert out_image.mimeType in ("image/png", "image/jpeg")
    # every primitive names one of the materials when the source's meshes had materials
    if source["materials"]:
        assert all(p.material is not None for m in out.meshes for p in m.primitives)


@pytest.mark.parametrize("name", RIGS)
def test_the_stored_rig_keeps_each_image_once(name: str) -> None:
    rig = _stored_rig(name)
    prepared = prepare_bytes(rig_bytes(name), name).rig
    assert [im.data for im in rig.images] == [im.data for im in prepared.images]
    assert len({im.data for im in rig.images}) == len(rig.images)
    assert rig.materials == prepared.materials
    for a, b in zip(rig.meshes, prepared.meshes, strict=True):
        assert (a.uvs is None) == (b.uvs is None)
        if a.uvs is not None and b.uvs is not None:
            assert np.allclose(a.uvs, b.uvs, atol=1e-6)
        if b.triangle_materials is not None:
            assert a.triangle_materials is not None and np.array_equal(a.triangle_materials, b.triangle_materials)
    # the written GLB carries each image once too
    out = _written(name)
    assert len(out.images) == len(rig.images)
    assert "materials are not carried over" not in " ".join(rig.warnings)


@pytest.mark.parametrize("name", RIGS)
def test_the_fbx_carries_the_uvs_materials_and_base_colour_images(name: str) -> None:
    rig = _stored_rig(name)
    back = read_fbx(write_avatar_fbx(_animation(name)), "out.fbx")  # ufbx reads what we wrote
    assert sorted(m.name for m in back.materials) == sorted(m.name for m in rig.materials)
    by_name = {m.name: m for m in back.materials}
    for m in rig.materials:
        got = by_name[m.name]
        assert np.allclose(got.base_color, m.base_color, atol=1e-6)
        if "baseColor" in m.textures:  # embedded: the same bytes come back
            assert back.images[got.textures["baseColor"].image].data == rig.images[m.textures["baseColor"].image].data
        else:
            assert "baseColor" not in got.textures
    assert not [w for w in back.warnings if "not embedded" in w or "not carried over" in w]
    for m0, m1 in zip(rig.meshes, back.meshes, strict=True):
        assert (m1.uvs is None) == (m0.uvs is None)
        if m0.uvs is not None and m1.uvs is not None:
            # each triangle corner keeps its UV (the reader may split vertices, never move a UV)
            assert np.allclose(m1.uvs[m1.triangles], m0.uvs[m0.triangles], atol=1e-5)
        assert m1.morph_names == m0.morph_names  # morph targets: the same offsets at every corner
        if m0.morph_positions is not None and m1.morph_positions is not None:
            assert np.allclose(m1.morph_positions[:, m1.triangles], m0.morph_positions[:, m0.triangles], atol=1e-6)
        if m0.triangle_materials is not None:
            assert m1.triangle_materials is not None
            names0 = [rig.materials[k].name for k in m0.triangle_materials]
            assert [back.materials[k].name for k in m1.triangle_materials] == names0


def test_the_glb_keeps_the_vrms_morph_targets_at_rest_and_says_nothing_is_lost() -> None:
    src = pygltflib.GLTF2.load_from_bytes(rig_bytes("godette.vrm"))
    (face_src,) = [m for m in src.meshes if m.name == "FaceMesh"]
    out = _written("godette.vrm")
    (face,) = [m for m in out.meshes if m.name == "FaceMesh"]
    names = face_src.primitives[0].extras["targetNames"]
    assert face.extras["targetNames"] == names and len(names) == 15
    assert face.weights == [0.0] * len(names)
    for t_src, t_out in zip(face_src.primitives[0].targets, face.primitives[0].targets, strict=True):
        assert np.allclose(_floats(out, t_out["POSITION"]), _floats(src, t_src["POSITION"]), atol=1e-6)
    assert "morph targets" not in " ".join(_stored_rig("godette.vrm").warnings)


@pytest.mark.parametrize("transform", [{"offset": [0.5, 0.0]}, {"scale": "big"}])
def test_a_texture_transform_that_moves_the_uvs_is_named_in_the_warnings(transform: dict[str, Any]) -> None:
    gltf = pygltflib.GLTF2.load_from_bytes(rig_bytes("godette.vrm"))
    gltf.materials[0].pbrMetallicRoughness.baseColorTexture.extensions = {"KHR_texture_transform": transform}
    rig = prepare_bytes(b"".join(gltf.save_to_bytes()), "moved.vrm").rig
    assert any("offset, scale or rotation is not carried over" in w for w in rig.warnings)
    assert not any("offset, scale" in w for w in _stored_rig("godette.vrm").warnings)  # identity transforms


def _source_unlit(gltf: pygltflib.GLTF2) -> dict[str, bool]:
    """Per material of a glTF/VRM source: shaded without lights? Read from the file itself: the core
    extension, VRM 1.0's MToon, or VRM 0.x's shader name (its materialProperties, same order)."""
    props = ((gltf.extensions or {}).get("VRM") or {}).get("materialProperties") or []
    out = {}
    for i, m in enumerate(gltf.materials or []):
        ext = m.extensions or {}
        shader = props[i].get("shader", "") if i < len(props) else ""
        out[m.name] = ("KHR_materials_unlit" in ext or "VRMC_materials_mtoon" in ext
                       or shader.startswith(("VRM/MToon", "VRM/Unlit")))
    return out


@pytest.mark.parametrize("name", [r for r in RIGS if not r.endswith(".fbx")])
def test_toon_and_unlit_materials_stay_unlit_in_the_glb(name: str) -> None:
    source = _source_unlit(pygltflib.GLTF2.load_from_bytes(rig_bytes(name)))
    out = _written(name)
    written = {m.name: "KHR_materials_unlit" in (m.extensions or {}) for m in out.materials}
    assert written == {k: v for k, v in source.items() if k in written}
    assert ("KHR_materials_unlit" in (out.extensionsUsed or [])) == any(written.values())


def test_a_vrm_with_toon_materials_has_unlit_ones_and_lit_ones() -> None:
    written = {m.name: "KHR_materials_unlit" in (m.extensions or {}) for m in _written("godette.vrm").materials}
    assert True in written.values() and False in written.values()  # MToon face and body; a PBR backpack
