"""An animated avatar -> glTF 2.0 binary (``.glb``): the user's own skeleton, mesh and skin, one animation.

* Frame: glTF's (Y up, metres). The node the skeleton hangs from (``Rig.root_parent``, e.g. the
  armature) becomes the top node, with the file-to-glTF conversion (up axis, unit scale) folded into
  its matrix; every bone keeps its own name and local rest transform (TRS).
* Meshes sit at the scene root untransformed (as glTF wants for skinned meshes), vertices converted
  to glTF's frame; one skin over every bone, inverse bind matrices from the rest pose; normals are
  the file's or computed (area-weighted) from the triangles; the file's texture coordinates
  (``TEXCOORD_0``); one primitive per material the mesh's triangles use.
* Materials: the character's own, in glTF's metallic-roughness model (base colour, metallic,
  roughness, emissive, alpha mode, double-sided) with their textures; each image is embedded once
  (a bufferView with its MIME type) and each texture keeps the file's sampler settings.
* Morph targets (from glTF and VRM characters): position offsets, named, at weight 0.
* Animation ``Take 001``: one time accessor (``f / fps`` s, with min/max); LINEAR rotation samplers
  on the bones whose rotation leaves the rest pose on some frame (quaternions kept in one hemisphere
  frame to frame) and translation samplers on the bones whose position does.
"""

from __future__ import annotations

import numpy as np
import pygltflib
from numpy.typing import NDArray

from mocapd.avatars.retarget import AvatarAnimation
from mocapd.avatars.rig import Rig, RigMaterial, RigMesh, RigTexture, compose_world, decompose, yup_rotation
from mocapd.formats.gltf import _Blob

__all__ = ["write_avatar_glb"]

FloatArray = NDArray[np.float64]

TAKE_NAME = "Take 001"
_CHANGING = 1e-6


def gltf_from_file(rig: Rig) -> FloatArray:
    """The 4x4 taking the rig's file frame to glTF's (Y up, metres)."""
    c = np.eye(4)
    c[:3, :3] = yup_rotation(rig.up_axis) * rig.unit_m
    return c


def vertex_normals(positions: FloatArray, triangles: NDArray[np.int64]) -> FloatArray:
    n = np.zeros_like(positions)
    if len(triangles):
        a, b, c = (positions[triangles[:, k]] for k in range(3))
        face = np.cross(b - a, c - a)
        for k in range(3):
            np.add.at(n, triangles[:, k], face)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 1e-12, n / np.maximum(length, 1e-12), np.array([0.0, 1.0, 0.0]))


def _continuous(q_wxyz: FloatArray) -> FloatArray:
    """xyzw quaternions (F, 4), each in the hemisphere of the frame before."""
    q = q_wxyz.copy()
    for f in range(1, len(q)):
        if np.dot(q[f], q[f - 1]) < 0:
            q[f] = -q[f]
    return np.concatenate([q[:, 1:], q[:, :1]], axis=1)


def write_avatar_glb(anim: AvatarAnimation) -> bytes:
    rig = anim.rig
    conv = gltf_from_file(rig)
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(generator="mocapd", version="2.0"))
    gltf.scenes = [pygltflib.Scene(nodes=[])]
    gltf.scene = 0
    blob = _Blob(gltf)
    nb = rig.num_bones
    bone_nodes = list(range(1, nb + 1))
    top = conv @ rig.root_parent
    gltf.nodes.append(
        pygltflib.Node(
            name=rig.root_parent_name,
            matrix=[float(v) for v in top.T.reshape(16)],
            children=[bone_nodes[b] for b in range(nb) if rig.parents[b] < 0],
        )
    )
    gltf.scenes[0].nodes.append(0)
    t, q, s = decompose(rig.rest_local)
    for b, name in enumerate(rig.names):
        gltf.nodes.append(
            pygltflib.Node(
                name=name,
                translation=[float(v) for v in t[b]],
                rotation=[float(q[b, 1]), float(q[b, 2]), float(q[b, 3]), float(q[b, 0])],
                scale=[float(v) for v in s[b]],
                children=[bone_nodes[c] for c in rig.children(b)] or None,
            )
        )
    rest_world = top[None] @ compose_world(rig.parents, rig.rest_local)  # (B, 4, 4) glTF frame
    ibm = np.linalg.inv(rest_world).transpose(0, 2, 1).astype(np.float32)  # column-major storage
    skin_ibm = blob.accessor(ibm.reshape(nb, 16), "MAT4")
    gltf.skins.append(pygltflib.Skin(name="Armature", joints=bone_nodes, inverseBindMatrices=skin_ibm, skeleton=0))
    _add_materials(gltf, blob, rig)
    for mesh in rig.meshes:
        _add_mesh(gltf, blob, mesh, conv)
    _add_animation(gltf, blob, anim, bone_nodes)
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    return b"".join(gltf.save_to_bytes())


def _add_mesh(gltf: pygltflib.GLTF2, blob: _Blob, mesh: RigMesh, conv: FloatArray) -> None:
    pos = mesh.positions @ conv[:3, :3].T + conv[:3, 3]
    nrm = vertex_normals(pos, mesh.triangles) if mesh.normals is None else mesh.normals @ np.linalg.inv(conv[:3, :3])
    nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    nrm = np.where(np.linalg.norm(nrm, axis=1, keepdims=True) > 0.5, nrm, np.array([0.0, 1.0, 0.0]))
    weights = np.where(mesh.weights > 0, mesh.weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, weights / np.maximum(total, 1e-12), np.array([1.0, 0.0, 0.0, 0.0]))
    joints = np.where(weights > 0, mesh.joints, 0)
    attrs = pygltflib.Attributes(
        POSITION=blob.accessor(pos.astype(np.float32), "VEC3", target=pygltflib.ARRAY_BUFFER, with_bounds=True),
        NORMAL=blob.accessor(nrm.astype(np.float32), "VEC3", target=pygltflib.ARRAY_BUFFER),
        JOINTS_0=blob.accessor(joints.astype(np.uint16), "VEC4", target=pygltflib.ARRAY_BUFFER),
        WEIGHTS_0=blob.accessor(weights.astype(np.float32), "VEC4", target=pygltflib.ARRAY_BUFFER),
    )
    if mesh.uvs is not None:
        attrs.TEXCOORD_0 = blob.accessor(mesh.uvs.astype(np.float32), "VEC2", target=pygltflib.ARRAY_BUFFER)
    tri_mats = mesh.triangle_materials if mesh.triangle_materials is not None else np.full(len(mesh.triangles), -1)
    primitives = []
    for material in dict.fromkeys(int(m) for m in tri_mats):  # in order of first use
        tris = mesh.triangles[tri_mats == material]
        indices = blob.accessor(tris.reshape(-1).astype(np.uint32), "SCALAR", target=pygltflib.ELEMENT_ARRAY_BUFFER)
        primitives.append(pygltflib.Primitive(attributes=attrs, indices=indices,
                                              material=material if 0 <= material < len(gltf.materials) else None))
    extras = {}
    if mesh.morph_positions is not None and mesh.morph_names:
        # morph targets at weight 0 (the rest shape), named as exporters name them (extras.targetNames)
        targets = [{"POSITION": blob.accessor((d @ conv[:3, :3].T).astype(np.float32), "VEC3",
                                              target=pygltflib.ARRAY_BUFFER, with_bounds=True)}
                   for d in mesh.morph_positions]
        for prim in primitives:
            prim.targets = targets
        extras = {"targetNames": list(mesh.morph_names)}
    gltf.meshes.append(pygltflib.Mesh(name=mesh.name, primitives=primitives, extras=extras,
                                      weights=[0.0] * len(mesh.morph_names) if extras else None))
    gltf.nodes.append(pygltflib.Node(name=mesh.name, mesh=len(gltf.meshes) - 1, skin=0))
    gltf.scenes[0].nodes.append(len(gltf.nodes) - 1)


def _add_materials(gltf: pygltflib.GLTF2, blob: _Blob, rig: Rig) -> None:
    """``rig.materials`` become ``gltf.materials`` (same indices), with their images and textures."""
    for im in rig.images:
        blob.data.extend(b"\0" * (-len(blob.data) % 4))
        gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(blob.data), byteLength=len(im.data)))
        blob.data.extend(im.data)
        gltf.images.append(pygltflib.Image(name=im.name, mimeType=im.mime_type, bufferView=len(gltf.bufferViews) - 1))
    samplers: dict[tuple[tuple[str, int], ...], int] = {}
    textures: dict[tuple[int, int], int] = {}

    def texture(t: RigTexture) -> int:
        skey = tuple(sorted(t.sampler.items()))
        if skey not in samplers:
            samplers[skey] = len(gltf.samplers)
            gltf.samplers.append(pygltflib.Sampler(**dict(skey)))
        key = (t.image, samplers[skey])
        if key not in textures:
            textures[key] = len(gltf.textures)
            gltf.textures.append(pygltflib.Texture(source=t.image, sampler=samplers[skey]))
        return textures[key]

    def info(m: RigMaterial, slot: str) -> pygltflib.TextureInfo | None:
        t = m.textures.get(slot)
        return pygltflib.TextureInfo(index=texture(t)) if t is not None and 0 <= t.image < len(rig.images) else None

    for m in rig.materials:
        normal, occlusion = info(m, "normal"), info(m, "occlusion")
        gltf.materials.append(
            pygltflib.Material(
                name=m.name,
                pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                    baseColorFactor=[float(v) for v in m.base_color],
                    baseColorTexture=info(m, "baseColor"),
                    metallicFactor=float(m.metallic),
                    roughnessFactor=float(m.roughness),
                    metallicRoughnessTexture=info(m, "metallicRoughness"),
                ),
                normalTexture=pygltflib.NormalMaterialTexture(index=normal.index) if normal else None,
                occlusionTexture=pygltflib.OcclusionTextureInfo(index=occlusion.index) if occlusion else None,
                emissiveTexture=info(m, "emissive"),
                emissiveFactor=[float(v) for v in m.emissive],
                alphaMode=m.alpha_mode,
                alphaCutoff=float(m.alpha_cutoff) if m.alpha_mode == "MASK" else None,
                doubleSided=bool(m.double_sided),
                extensions={"KHR_materials_unlit": {}} if m.unlit else {},
            )
        )
    if any(m.unlit for m in rig.materials):
        gltf.extensionsUsed = sorted({*(gltf.extensionsUsed or []), "KHR_materials_unlit"})


def _add_animation(gltf: pygltflib.GLTF2, blob: _Blob, anim: AvatarAnimation, bone_nodes: list[int]) -> None:
    nf = anim.num_frames
    times = (np.arange(nf) / anim.fps).astype(np.float32)
    time_acc = blob.accessor(times, "SCALAR", with_bounds=True)
    t, q, _ = decompose(anim.local)  # (F, B, 3), (F, B, 4)
    t_rest, q_rest, _ = decompose(anim.rig.rest_local)  # what the nodes hold without a channel
    scale = max(float(np.abs(anim.rig.rest_local[:, :3, 3]).max()), 1e-9)
    samplers: list[pygltflib.AnimationSampler] = []
    channels: list[pygltflib.AnimationChannel] = []
    for b in range(anim.rig.num_bones):
        if np.abs(t[:, b] - t_rest[b]).max() > _CHANGING * scale:
            out = blob.accessor(t[:, b].astype(np.float32), "VEC3")
            samplers.append(pygltflib.AnimationSampler(input=time_acc, output=out, interpolation="LINEAR"))
            channels.append(pygltflib.AnimationChannel(
                sampler=len(samplers) - 1, target=pygltflib.AnimationChannelTarget(node=bone_nodes[b], path="translation")))
        if np.abs(np.abs(np.sum(q[:, b] * q_rest[b], axis=1)) - 1.0).max() > _CHANGING:
            out = blob.accessor(_continuous(q[:, b]).astype(np.float32), "VEC4")
            samplers.append(pygltflib.AnimationSampler(input=time_acc, output=out, interpolation="LINEAR"))
            channels.append(pygltflib.AnimationChannel(
                sampler=len(samplers) - 1, target=pygltflib.AnimationChannelTarget(node=bone_nodes[b], path="rotation")))
    gltf.animations.append(pygltflib.Animation(name=TAKE_NAME, samplers=samplers, channels=channels))
