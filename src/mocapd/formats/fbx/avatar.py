"""An animated avatar -> binary FBX 7.4: the user's own skeleton, mesh and skin, one take.

Built on the same encoder and document pieces as the default skeleton's FBX (``scene.py``); what
differs is that the rest pose is the user's:

* ``GlobalSettings``: Y up, front +Z, and ``UnitScaleFactor`` = the source file's unit in
  centimetres, so positions keep the file's units (a centimetre FBX stays in centimetres, a glTF
  character is written in metres).
* A ``Null`` model named after the node the skeleton hangs from (``Rig.root_parent``, e.g. the
  armature) carries that node's transform, turned Y up when the source was not; under it one
  ``LimbNode`` per bone with its own name and local rest transform (translation, rotation, scale).
* One ``Mesh`` model + ``Geometry`` per mesh at the scene root (control points in the output frame:
  vertices that share position, skin and morph offsets welded into one; triangles; per-corner
  normals and UVs),
  each with a ``Skin`` deformer and one ``Cluster`` per bone that
  deforms it (``Indexes``/``Weights``; ``TransformLink`` = the bone's rest global matrix,
  ``Transform`` = its inverse, the mesh sitting at the identity); a ``BindPose`` of the rest pose.
* Materials: one Phong ``Material`` per material of the character (diffuse colour = base colour,
  opacity), connected to the meshes that use it (layer 0 carries per-polygon material indices and the
  UVs); a base colour, normal or emissive image becomes a ``Texture`` on ``DiffuseColor``,
  ``NormalMap`` or ``EmissiveColor`` over a ``Video`` that embeds the image (``Content``), each image
  once, as Blender's FBX exporter writes them.
* Morph targets: a ``BlendShape`` deformer per mesh, a ``BlendShapeChannel`` at 0 % and a ``Shape``
  geometry (the moved control points' offsets) per target.
* One ``AnimationStack``/``AnimationLayer`` ``Take 001``: ``R`` curves (XYZ Euler degrees,
  unwrapped) on the bones whose rotation changes and ``T`` curves on those whose position changes,
  one linear key per frame.
"""

from __future__ import annotations

import re

import numpy as np
from numpy.typing import NDArray

from mocapd.avatars.retarget import AvatarAnimation
from mocapd.avatars.rig import Rig, RigImage, RigMaterial, compose_world, decompose, yup_rotation
from mocapd.formats.avatar_gltf import vertex_normals
from mocapd.formats.fbx.encode import FBX_VERSION, FbxNode, Int64, encode_fbx
from mocapd.formats.fbx.euler import matrix_from_quat_wxyz, unwrapped_euler_xyz_rad
from mocapd.formats.fbx.scene import (
    _SEP,
    _animate,
    _attribute,
    _bind_pose,
    _document,
    _global_settings,
    _Ids,
    _ktimes,
    _p,
    _props70,
    _take,
)

__all__ = ["write_avatar_fbx"]

FloatArray = NDArray[np.float64]

_CHANGING = 1e-6


def _flat(m: FloatArray) -> NDArray[np.float64]:
    """A 4x4 matrix as FBX stores it (column by column)."""
    return np.ascontiguousarray(m.T).reshape(16).astype(np.float64)


def _model(uid: Int64, name: str, kind: str, t: FloatArray, r_deg: FloatArray, s: FloatArray) -> FbxNode:
    node = FbxNode("Model", [uid, name + _SEP + "Model", kind])
    node.add("Version", 232)
    node.children.append(
        _props70(
            _p("RotationOrder", "enum", "", "", 0),
            _p("InheritType", "enum", "", "", 1),
            _p("DefaultAttributeIndex", "int", "Integer", "", 0),
            _p("Lcl Translation", "Lcl Translation", "", "A", *map(float, t)),
            _p("Lcl Rotation", "Lcl Rotation", "", "A", *map(float, r_deg)),
            _p("Lcl Scaling", "Lcl Scaling", "", "A", *map(float, s)),
        )
    )
    node.add("Shading", True)
    node.add("Culling", "CullingOff")
    return node


def _euler_deg(q_wxyz: FloatArray) -> FloatArray:
    """Unwrapped XYZ Euler degrees (F, B, 3) of wxyz quaternions (F, B, 4)."""
    return np.degrees(unwrapped_euler_xyz_rad(matrix_from_quat_wxyz(q_wxyz)))


def _global_settings_units(fps: float, stop: int, unit_cm: float) -> FbxNode:
    node = _global_settings(fps, stop)
    for child in node.children:
        if child.name == "Properties70":
            for p in child.children:
                if p.props and p.props[0] in ("UnitScaleFactor", "OriginalUnitScaleFactor"):
                    p.props[4] = float(unit_cm)
    return node


def _layer_element(geo: FbxNode, kind: str, name: str, mapping: str, reference: str) -> FbxNode:
    element = geo.add(kind, 0)
    element.add("Version", 101)
    element.add("Name", name)
    element.add("MappingInformationType", mapping)
    element.add("ReferenceInformationType", reference)
    return element


def _weld(
    positions: FloatArray, joints: NDArray[np.int64], weights: FloatArray, morphs: FloatArray | None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """FBX control points: the mesh's vertices that share position, skin and morph offsets
    (``morphs``: (M, V, 3) or None) are one point (vertices that differ only in UV or normal are one
    point with per-corner UVs and normals, so the character imports as the connected mesh it was).
    Returns each point's first vertex (P,), in vertex order, and each vertex's point (V,)."""
    parts = [positions, joints.astype(np.float64), weights]
    if morphs is not None:
        parts.append(morphs.transpose(1, 0, 2).reshape(len(positions), -1))
    rows = np.concatenate(parts, axis=1)  # (V, 11 + 3 M)
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order].astype(np.int64), rank[inverse.reshape(-1)].astype(np.int64)


def _geometry(
    uid: Int64,
    name: str,
    points: FloatArray,
    point_of: NDArray[np.int64],
    normals: FloatArray,
    triangles: NDArray[np.int64],
    uvs: FloatArray | None,
    materials: NDArray[np.int64] | None,
) -> FbxNode:
    """A triangle mesh's Geometry: control points ``points`` (P, 3) (vertex ``v`` is point
    ``point_of[v]``), polygons, and layer 0 with per-corner normals and UVs (indexed by vertex, v
    upwards as FBX has it) and per-polygon material indices, as Blender's exporter writes them."""
    geo = FbxNode("Geometry", [uid, name + _SEP + "Geometry", "Mesh"])
    geo.children.append(_props70())
    geo.add("GeometryVersion", 124)
    geo.add("Vertices", points.reshape(-1).astype(np.float64))
    index = point_of[triangles].astype(np.int32)
    index[:, 2] = -index[:, 2] - 1  # the last corner of each polygon is stored as -(i + 1)
    geo.add("PolygonVertexIndex", index.reshape(-1))
    corners = triangles.reshape(-1).astype(np.int32)  # each corner's vertex: the attributes' index
    kinds = ["LayerElementNormal"]
    normal = _layer_element(geo, "LayerElementNormal", "", "ByPolygonVertex", "IndexToDirect")
    normal.add("Normals", normals.reshape(-1).astype(np.float64))
    normal.add("NormalsIndex", corners)
    if uvs is not None:
        uv = _layer_element(geo, "LayerElementUV", "UVMap", "ByPolygonVertex", "IndexToDirect")
        uv.add("UV", (uvs * np.array([1.0, -1.0]) + np.array([0.0, 1.0])).reshape(-1).astype(np.float64))
        uv.add("UVIndex", corners)
        kinds.append("LayerElementUV")
    if materials is not None:
        mat = _layer_element(geo, "LayerElementMaterial", "", "ByPolygon", "IndexToDirect")
        mat.add("Materials", materials.astype(np.int32))
        kinds.append("LayerElementMaterial")
    layer = geo.add("Layer", 0)
    layer.add("Version", 100)
    for kind in kinds:
        element = layer.add("LayerElement")
        element.add("Type", kind)
        element.add("TypedIndex", 0)
    return geo


def _material(uid: Int64, m: RigMaterial) -> FbxNode:
    """A Phong material with the base colour as its diffuse colour (glTF's base colour is linear RGB,
    as FBX's colours are); opacity from the base colour's alpha."""
    node = FbxNode("Material", [uid, m.name + _SEP + "Material", ""])
    node.add("Version", 102)
    node.add("ShadingModel", "Phong")
    node.add("MultiLayer", 0)
    r, g, b, a = (float(v) for v in m.base_color)
    node.children.append(
        _props70(
            _p("EmissiveColor", "Color", "", "A", *map(float, m.emissive)),
            _p("EmissiveFactor", "Number", "", "A", 1.0),
            _p("AmbientColor", "Color", "", "A", 0.0, 0.0, 0.0),
            _p("DiffuseColor", "Color", "", "A", r, g, b),
            _p("DiffuseFactor", "Number", "", "A", 1.0),
            _p("TransparentColor", "Color", "", "A", 1.0, 1.0, 1.0),
            _p("TransparencyFactor", "Number", "", "A", 1.0 - a),
            _p("Opacity", "Number", "", "A", a),
            _p("SpecularColor", "Color", "", "A", 1.0, 1.0, 1.0),
            _p("SpecularFactor", "Number", "", "A", 0.5 * (1.0 - float(m.roughness))),
            _p("Shininess", "Number", "", "A", 20.0),
            _p("ShininessExponent", "Number", "", "A", 20.0),
            _p("ReflectionColor", "Color", "", "A", 1.0, 1.0, 1.0),
            _p("ReflectionFactor", "Number", "", "A", float(m.metallic)),
        )
    )
    return node


def _image_file(index: int, image: RigImage) -> str:
    """The embedded image's file name (the Texture and the Video must agree on it: importers match
    them by it)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", image.name).strip("._") or "image"
    return f"{index}_{stem}" + (".png" if image.mime_type == "image/png" else ".jpg")


def _texture(uid: Int64, name: str, filename: str) -> FbxNode:
    node = FbxNode("Texture", [uid, name + _SEP + "Texture", ""])
    node.add("Type", "TextureVideoClip")
    node.add("Version", 202)
    node.add("TextureName", name + _SEP + "Texture")
    node.children.append(_props70(_p("UseMaterial", "bool", "", "", 1), _p("UseMipMap", "bool", "", "", 0)))
    node.add("Media", name + _SEP + "Video")
    node.add("FileName", filename)
    node.add("RelativeFilename", filename)
    node.add("ModelUVTranslation", 0.0, 0.0)
    node.add("ModelUVScaling", 1.0, 1.0)
    node.add("Texture_Alpha_Source", "None")
    node.add("Cropping", 0, 0, 0, 0)
    return node


def _video(uid: Int64, name: str, filename: str, data: bytes) -> FbxNode:
    """The image itself, embedded (``Content``), as Blender's exporter embeds media."""
    node = FbxNode("Video", [uid, name + _SEP + "Video", "Clip"])
    node.add("Type", "Clip")
    node.children.append(_props70(_p("Path", "KString", "XRefUrl", "", filename)))
    node.add("UseMipMap", 0)
    node.add("Filename", filename)
    node.add("RelativeFilename", filename)
    node.add("Content", data)
    return node


def _add_blend_shapes(
    objects: FbxNode,
    links: list[tuple[Int64, Int64, str | None]],
    ids: _Ids,
    mesh_name: str,
    geo_id: Int64,
    names: list[str],
    offsets: FloatArray,
) -> None:
    """Morph targets as Blender's exporter writes shape keys: one ``BlendShape`` deformer on the
    geometry, and per target a ``BlendShapeChannel`` (at 0 %) over a ``Shape`` geometry holding the
    moved control points' offsets (``offsets``: (M, P, 3), output frame)."""
    blend_id = ids()
    blend = FbxNode("Deformer", [blend_id, mesh_name + _SEP + "Deformer", "BlendShape"])
    blend.add("Version", 100)
    objects.children.append(blend)
    links.append((blend_id, geo_id, None))
    for name, d in zip(names, offsets, strict=True):
        moved = np.flatnonzero(np.abs(d).max(axis=1) > 0)
        if not len(moved):
            moved = np.array([0])
        channel_id, shape_id = ids(), ids()
        channel = FbxNode("Deformer", [channel_id, name + _SEP + "SubDeformer", "BlendShapeChannel"])
        channel.add("Version", 100)
        channel.add("DeformPercent", 0.0)
        channel.add("FullWeights", np.array([100.0], dtype=np.float64))
        shape = FbxNode("Geometry", [shape_id, name + _SEP + "Geometry", "Shape"])
        shape.add("Version", 100)
        shape.add("Indexes", moved.astype(np.int32))
        shape.add("Vertices", d[moved].reshape(-1).astype(np.float64))
        shape.add("Normals", np.zeros(3 * len(moved), dtype=np.float64))
        objects.children += [channel, shape]
        links += [(channel_id, blend_id, None), (shape_id, channel_id, None)]


# Material texture slots -> the FBX material property the texture connects to.
_TEXTURE_PROPERTY = {"baseColor": "DiffuseColor", "normal": "NormalMap", "emissive": "EmissiveColor"}


def write_avatar_fbx(anim: AvatarAnimation) -> bytes:
    """Binary FBX 7.4 of ``anim`` (see the module doc)."""
    return encode_fbx(build_avatar_document(anim), FBX_VERSION)


def build_avatar_document(anim: AvatarAnimation) -> list[FbxNode]:
    rig: Rig = anim.rig
    nb = rig.num_bones
    nf = anim.num_frames
    if nf < 1:
        raise ValueError("cannot write an FBX of an animation with no frames")
    if not np.isfinite(anim.local).all():
        raise ValueError("animation has non-finite values")
    up = np.eye(4)
    up[:3, :3] = yup_rotation(rig.up_axis)
    top = up @ rig.root_parent  # (4, 4) the armature node in the output frame
    rest_global = top[None] @ compose_world(rig.parents, rig.rest_local)  # (B, 4, 4)
    t_rest, q_rest, s_rest = decompose(rig.rest_local)
    r_rest = _euler_deg(q_rest[None])[0]  # (B, 3)
    t_anim, q_anim, _ = decompose(anim.local)  # (F, B, 3), (F, B, 4)
    r_anim = _euler_deg(np.concatenate([q_rest[None], q_anim], axis=0))[1:]  # unwrapped from the rest angles
    times = _ktimes(nf, anim.fps)
    stop = int(times[-1])
    scale = max(float(np.abs(rig.rest_local[:, :3, 3]).max()), 1e-9)

    ids = _Ids()
    doc_id, arm_id, arm_attr = ids(), ids(), ids()
    bone_ids = [ids() for _ in range(nb)]
    attr_ids = [ids() for _ in range(nb)]
    links: list[tuple[Int64, Int64, str | None]] = [(arm_id, Int64(0), None), (arm_attr, arm_id, None)]
    objects = FbxNode("Objects")
    at, aq, a_s = decompose(top)
    objects.children.append(_attribute(arm_attr, rig.root_parent_name, "Null", 0.0))
    objects.children.append(_model(arm_id, rig.root_parent_name, "Null", at, _euler_deg(aq[None, None])[0, 0], a_s))
    size = float(max(np.linalg.norm(t_rest, axis=1).max(), 1e-6))
    for b, name in enumerate(rig.names):
        objects.children.append(_attribute(attr_ids[b], name, "LimbNode", size))
        objects.children.append(_model(bone_ids[b], name, "LimbNode", t_rest[b], r_rest[b], s_rest[b]))
        p = int(rig.parents[b])
        links.append((bone_ids[b], arm_id if p < 0 else bone_ids[p], None))
        links.append((attr_ids[b], bone_ids[b], None))

    # Materials, with their textures and the images those embed (each image once).
    embedded = sorted({t.image for m in rig.materials for slot, t in m.textures.items()
                       if slot in _TEXTURE_PROPERTY and 0 <= t.image < len(rig.images)})
    image_ids = {i: ids() for i in embedded}
    image_files = {i: _image_file(i, rig.images[i]) for i in embedded}
    for i in embedded:
        objects.children.append(_video(image_ids[i], rig.images[i].name, image_files[i], rig.images[i].data))
    material_ids = [ids() for _ in rig.materials]
    num_textures = 0
    for k, m in enumerate(rig.materials):
        objects.children.append(_material(material_ids[k], m))
        for slot, prop in _TEXTURE_PROPERTY.items():
            tex = m.textures.get(slot)
            if tex is None or tex.image not in image_ids:
                continue
            tex_id = ids()
            objects.children.append(_texture(tex_id, rig.images[tex.image].name, image_files[tex.image]))
            links += [(image_ids[tex.image], tex_id, None), (tex_id, material_ids[k], prop)]
            num_textures += 1

    mesh_ids: list[Int64] = []
    num_clusters = 0
    num_shapes = num_blend_deformers = 0  # Shape geometries; BlendShape deformers and their channels
    for mesh in rig.meshes:
        model_id, geo_id, skin_id = ids(), ids(), ids()
        mesh_ids.append(model_id)
        positions = mesh.positions @ up[:3, :3].T
        normals = (vertex_normals(positions, mesh.triangles) if mesh.normals is None
                   else mesh.normals @ up[:3, :3].T)
        local_materials = None
        used: list[int] = []
        if mesh.triangle_materials is not None:
            used = sorted({int(v) for v in mesh.triangle_materials if 0 <= v < len(rig.materials)})
            lookup = {g: i for i, g in enumerate(used)}
            local_materials = np.array([lookup.get(int(v), 0) for v in mesh.triangle_materials], dtype=np.int64)
        objects.children.append(_model(model_id, mesh.name, "Mesh", np.zeros(3), np.zeros(3), np.ones(3)))
        point, point_of = _weld(positions, mesh.joints, mesh.weights, mesh.morph_positions)
        objects.children.append(
            _geometry(geo_id, mesh.name, positions[point], point_of, normals, mesh.triangles, mesh.uvs,
                      local_materials if used else None)
        )
        links += [(material_ids[g], model_id, None) for g in used]  # the model's material order = the indices
        skin = FbxNode("Deformer", [skin_id, mesh.name + _SEP + "Deformer", "Skin"])
        skin.add("Version", 101)
        skin.add("Link_DeformAcuracy", 50.0)
        objects.children.append(skin)
        links += [(model_id, Int64(0), None), (geo_id, model_id, None), (skin_id, geo_id, None)]
        if mesh.morph_positions is not None and mesh.morph_names:
            _add_blend_shapes(objects, links, ids, mesh.name, geo_id, mesh.morph_names,
                              mesh.morph_positions[:, point] @ up[:3, :3].T)
            num_shapes += len(mesh.morph_names)
            num_blend_deformers += 1 + len(mesh.morph_names)
        point_joints, point_weights = mesh.joints[point], mesh.weights[point]  # (P, 4) per control point
        for b in np.unique(point_joints[point_weights > 0]):
            rows, cols = np.nonzero((point_joints == b) & (point_weights > 0))
            cluster_id = ids()
            cluster = FbxNode("Deformer", [cluster_id, rig.names[b] + _SEP + "SubDeformer", "Cluster"])
            cluster.add("Version", 100)
            cluster.add("UserData", "", "")
            cluster.add("Indexes", rows.astype(np.int32))
            cluster.add("Weights", point_weights[rows, cols].astype(np.float64))
            cluster.add("Transform", _flat(np.linalg.inv(rest_global[b])))
            cluster.add("TransformLink", _flat(rest_global[b]))
            objects.children.append(cluster)
            num_clusters += 1
            links += [(cluster_id, skin_id, None), (bone_ids[int(b)], cluster_id, None)]

    pose_id, stack_id, layer_id = ids(), ids(), ids()
    entries = [(arm_id, top), *zip(bone_ids, rest_global, strict=True), *((m, np.eye(4)) for m in mesh_ids)]
    objects.children.append(_bind_pose(pose_id, [(uid, _flat(matrix)) for uid, matrix in entries]))
    objects.children.extend(_take(stack_id, layer_id, stop))
    links.append((layer_id, stack_id, None))
    num_curve_nodes = 0
    for b in range(nb):
        channels = []
        if np.abs(t_anim[:, b] - t_rest[b]).max() > _CHANGING * scale:
            channels.append((("T", "Lcl Translation"), t_anim[:, b]))
        if np.abs(np.abs(np.sum(q_anim[:, b] * q_rest[b], axis=1)) - 1.0).max() > _CHANGING:
            channels.append((("R", "Lcl Rotation"), r_anim[:, b]))
        for channel, values in channels:
            _animate(objects, links, ids, layer_id, bone_ids[b], channel, times, values)
            num_curve_nodes += 1

    counts = {
        "GlobalSettings": 1,
        "NodeAttribute": nb + 1,
        "Model": nb + 1 + len(rig.meshes),
        "Geometry": len(rig.meshes) + num_shapes,
        "Deformer": len(rig.meshes) + num_clusters + num_blend_deformers,
        "Pose": 1,
        "Material": len(rig.materials),
        "Texture": num_textures,
        "Video": len(embedded),
        "AnimationStack": 1,
        "AnimationLayer": 1,
        "AnimationCurveNode": num_curve_nodes,
        "AnimationCurve": 3 * num_curve_nodes,
    }
    return _document(doc_id, _global_settings_units(anim.fps, stop, rig.unit_m * 100.0), counts, objects, links, stop)
