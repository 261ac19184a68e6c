"""FBX characters (binary and ASCII, 6.x and 7.x) read with ufbx.

ufbx's Python binding (0.0.5) caches one wrapper per scene element but returns it again without
taking a reference, so a wrapper fetched twice is released once too often and the interpreter
crashes later. `own` takes the missing reference for every wrapper fetched here: wrappers then live
as long as the process (a few hundred small objects per file) and nothing is released early. The
service reads uploads in a short-lived child process (`mocapd.avatars.prepare`), so that also
bounds the memory, and a crash inside the C library on a hostile file fails that upload only.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mocapd.avatars.errors import AvatarError
from mocapd.avatars.rig import (
    MAX_BONES,
    MAX_VERTICES,
    Rig,
    RigImage,
    RigMaterial,
    RigMesh,
    RigTexture,
    image_mime,
    top_influences,
)

__all__ = ["read_fbx"]

FloatArray = NDArray[np.float64]

_AXES = {0: "+x", 1: "-x", 2: "+y", 3: "-y", 4: "+z", 5: "-z"}


def own(obj: Any) -> Any:
    """Take the reference the binding did not (see the module doc); primitives pass through."""
    if obj is not None and not isinstance(obj, int | float | str | bytes | tuple):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    return obj


def _kept(items: Any) -> list[Any]:
    """The elements of a binding list, each owned (indexing, never iteration)."""
    items = own(items)
    return [own(items[i]) for i in range(len(items))]


def _m(mat: Any) -> FloatArray:
    """A ufbx affine matrix (columns c0..c3) as a 4x4 array."""
    out = np.eye(4)
    for k, c in enumerate((mat.c0, mat.c1, mat.c2, mat.c3)):
        out[:3, k] = (c.x, c.y, c.z)
    return out


def _triangulate(faces: NDArray[Any]) -> NDArray[np.int64]:
    """Fan triangulation of polygon faces (index_begin, num_indices) into corner triples, (T, 3)."""
    faces = faces.astype(np.int64)
    faces = faces[faces[:, 1] >= 3]
    counts = faces[:, 1] - 2
    first = np.repeat(faces[:, 0], counts)
    step = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.stack([first, first + step + 1, first + step + 2], axis=1)


def _split_corners(corners: NDArray[np.int64], keys: NDArray[np.int64], num_vertices: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Give every control point one vertex per distinct corner attribute key (UV index, normal index).

    ``corners`` (C,) are the control points of the polygon corners and ``keys`` (C, K) their attribute
    indices. Returns each new vertex's control point (V',) and each corner's new vertex (C,). A control
    point keeps its own index for its first key (so an unsplit mesh keeps its vertices and their
    order, unused ones included); further keys are appended."""
    if not len(corners):
        return np.arange(num_vertices, dtype=np.int64), corners
    rows = np.concatenate([corners[:, None], keys], axis=1)
    unique, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # the first key (by corner order) of each control point keeps its index
    order = np.argsort(first, kind="stable")
    point = unique[:, 0]
    vertex_of = np.full(len(unique), -1, dtype=np.int64)
    claimed = np.zeros(num_vertices, dtype=bool)
    extra: list[int] = []
    for u in order:
        cp = int(point[u])
        if not claimed[cp]:
            claimed[cp] = True
            vertex_of[u] = cp
        else:
            vertex_of[u] = num_vertices + len(extra)
            extra.append(cp)
    source = np.concatenate([np.arange(num_vertices, dtype=np.int64), np.array(extra, dtype=np.int64)])
    return source, vertex_of[inverse]


def _blend_shapes(mesh: Any, num_points: int, linear: FloatArray) -> tuple[list[str], FloatArray | None]:
    """The mesh's blend shape channels as morph targets: names and per-control-point offsets
    (M, P, 3) in the file frame (each channel's target shape; in-between shapes are not kept).
    None when there are none or one does not fit the mesh."""
    names: list[str] = []
    offsets: list[FloatArray] = []
    for deformer in _kept(mesh.blend_deformers):
        for channel in _kept(deformer.channels):
            shape = own(channel.target_shape)
            if shape is None:
                continue
            at = np.asarray(own(shape.offset_vertices), dtype=np.int64).reshape(-1)
            d = np.asarray(own(shape.position_offsets), dtype=np.float64).reshape(-1, 3)
            if len(at) != len(d) or (len(at) and (at.min() < 0 or at.max() >= num_points)) or not np.isfinite(d).all():
                return [], None
            full = np.zeros((num_points, 3))
            full[at] = d
            names.append(str(channel.name))
            offsets.append(full @ linear.T)
    return (names, np.stack(offsets)) if offsets else ([], None)


class _Materials:
    """ufbx materials (Lambert/Phong/PBR) as ``RigMaterial``s, each kept once; embedded textures as images."""

    def __init__(self) -> None:
        self.materials: list[RigMaterial] = []
        self.images: list[RigImage] = []
        self.warnings: list[str] = []
        self._by_id: dict[int, int] = {}
        self._image_by_id: dict[int, int | None] = {}

    def material(self, mat: Any) -> int:
        if mat is None:
            return -1
        key = int(mat.typed_id)
        if key not in self._by_id:
            self._by_id[key] = len(self.materials)
            self.materials.append(self._convert(mat))
        return self._by_id[key]

    def _convert(self, mat: Any) -> RigMaterial:
        fbx = own(mat.fbx)
        diffuse = own(fbx.diffuse_color)
        c = own(diffuse.value_vec4)
        factor = 1.0  # DiffuseFactor is left out, as Blender's and Unreal's importers leave it out
        opacity = 1.0
        transparency = own(fbx.transparency_factor)
        if transparency.has_value:
            opacity = 1.0 - float(own(transparency.value_vec4).x)
        rgb = [float(c.x) * factor, float(c.y) * factor, float(c.z) * factor]
        if not all(np.isfinite(rgb)) or not np.isfinite(opacity):
            rgb, opacity = [0.8, 0.8, 0.8], 1.0
        out = RigMaterial(
            name=str(mat.name) or "material",
            base_color=[*(min(max(v, 0.0), 1.0) for v in rgb), min(max(opacity, 0.0), 1.0)],
            metallic=0.0,
            roughness=0.8,
        )
        if out.base_color[3] < 1.0:
            out.alpha_mode = "BLEND"
        for slot, prop in (("baseColor", diffuse), ("normal", own(fbx.normal_map)), ("emissive", own(fbx.emission_color))):
            tex = own(prop.texture)
            if tex is not None:
                image = self._image(tex, out.name)
                if image is not None:
                    out.textures[slot] = RigTexture(image=image)
        if "emissive" in out.textures:
            out.emissive = [1.0, 1.0, 1.0]
        return out

    def _image(self, tex: Any, material: str) -> int | None:
        key = int(tex.typed_id)
        if key not in self._image_by_id:
            content = bytes(own(tex.content) or b"")
            mime = image_mime(content)
            if mime is None:
                where = str(tex.relative_filename or tex.filename or tex.name)
                self.warnings.append(f"material {material}: texture {where} is not embedded in the file; left out")
                self._image_by_id[key] = None
            else:
                name = str(tex.name) or str(tex.relative_filename) or f"image_{len(self.images)}"
                self._image_by_id[key] = len(self.images)
                self.images.append(RigImage(name, mime, content))
        return self._image_by_id[key]


def read_fbx(data: bytes, filename: str) -> Rig:
    import ufbx

    try:
        scene = ufbx.load_memory(data)
    except ufbx.UnrecognizedFileFormatError as exc:
        raise AvatarError("avatar_unreadable", "The file is not an FBX file.") from exc
    except Exception as exc:  # truncated or corrupt: ufbx names the problem
        raise AvatarError("avatar_unreadable", f"The FBX file could not be read ({exc}).") from exc
    return _read_scene(scene)


def _read_scene(scene: Any) -> Rig:
    settings = own(scene.settings)
    unit_m = float(settings.unit_meters) or 0.01
    axes = own(settings.axes)
    up_axis = _AXES.get(int(axes.up), "+y")
    front_axis = _AXES.get(int(axes.front), "+z")
    if not np.isfinite(unit_m) or unit_m <= 0:
        raise AvatarError("avatar_unreadable", "The FBX file's unit scale is not a positive number.")

    nodes = _kept(scene.nodes)
    node_ids = [int(n.typed_id) for n in nodes]
    by_id = dict(zip(node_ids, range(len(nodes)), strict=True))
    parent_of = np.full(len(nodes), -1, dtype=np.int64)
    for i, n in enumerate(nodes):
        p = own(n.parent)
        if p is not None and not p.is_root:
            parent_of[i] = by_id.get(int(p.typed_id), -1)
    is_bone = np.array([own(n.bone) is not None for n in nodes], dtype=bool)
    to_parent = [_m(n.node_to_parent) for n in nodes]
    to_world = [_m(n.node_to_world) for n in nodes]

    # Skin clusters: which nodes deform vertices, and their world transform at bind time.
    bind_world: dict[int, FloatArray] = {}
    skins: list[tuple[Any, Any, int]] = []  # (mesh, skin deformer, mesh node index)
    for i, n in enumerate(nodes):
        mesh = own(n.mesh)
        if mesh is None:
            continue
        for skin in _kept(mesh.skin_deformers):
            skins.append((mesh, skin, i))
            for cl in _kept(skin.clusters):
                bone = own(cl.bone_node)
                if bone is None:
                    continue
                b = by_id.get(int(bone.typed_id))
                if b is not None:
                    is_bone[b] = True
                    bind_world.setdefault(b, _m(cl.bind_to_world))
    bones = [i for i in range(len(nodes)) if is_bone[i]]
    if not bones:
        raise AvatarError("avatar_no_skeleton", "The FBX file has no bones: there is no skeleton to animate.")
    if len(bones) > MAX_BONES:
        raise AvatarError("avatar_unreadable", f"The skeleton has {len(bones)} bones; at most {MAX_BONES} are supported.")

    def depth(i: int) -> int:
        d = 0
        while parent_of[i] >= 0 and d <= len(nodes):
            i = int(parent_of[i])
            d += 1
        return d

    bones.sort(key=lambda i: (depth(i), i))
    index = {n: b for b, n in enumerate(bones)}
    parents = np.full(len(bones), -1, dtype=np.int64)
    world = np.zeros((len(bones), 4, 4))
    for b, n in enumerate(bones):
        p = int(parent_of[n])
        while p >= 0 and not is_bone[p]:
            p = int(parent_of[p])
        parents[b] = index[p] if p >= 0 else -1
        if n in bind_world:
            world[b] = bind_world[n]
        elif p >= 0 and int(parent_of[n]) == p:
            world[b] = world[index[p]] @ to_parent[n]
        else:
            world[b] = to_world[n]
    if not np.isfinite(world).all():
        raise AvatarError("avatar_unreadable", "The skeleton's transforms are not finite numbers.")
    # The node the root bones hang from (an armature null), kept as a node of its own when shared.
    holders = {int(parent_of[n]) for b, n in enumerate(bones) if parents[b] < 0}
    root_parent, root_parent_name = np.eye(4), "Armature"
    if len(holders) == 1 and (h := holders.pop()) >= 0:
        root_parent, root_parent_name = to_world[h], str(nodes[h].name) or "Armature"
    rest_local = np.empty_like(world)
    for b, p in enumerate(parents):
        try:
            rest_local[b] = np.linalg.solve(root_parent, world[b]) if p < 0 else np.linalg.solve(world[p], world[b])
        except np.linalg.LinAlgError as exc:
            raise AvatarError("avatar_unreadable", "A bone's transform is singular.") from exc

    warnings: list[str] = []
    meshes: list[RigMesh] = []
    materials = _Materials()
    total = 0
    skinned_nodes = {i for _, _, i in skins}
    for i, n in enumerate(nodes):
        mesh = own(n.mesh)
        if mesh is None:
            continue
        verts = np.asarray(own(mesh.vertices), dtype=np.float64).reshape(-1, 3)  # (V, 3) control points
        total += len(verts)
        if total > MAX_VERTICES:
            raise AvatarError("avatar_unreadable", f"The model has more than {MAX_VERTICES} vertices.")
        if not np.isfinite(verts).all():
            raise AvatarError("avatar_unreadable", "Vertex positions are not finite numbers.")
        corners = np.asarray(own(mesh.vertex_indices), dtype=np.int64).reshape(-1)
        faces = np.asarray(own(mesh.faces), dtype=np.int64).reshape(-1, 2)
        tri_corners = _triangulate(faces) if len(faces) else np.zeros((0, 3), dtype=np.int64)
        if tri_corners.size and tri_corners.max() >= len(corners):
            raise AvatarError("avatar_unreadable", "A face refers to a vertex that does not exist.")
        valid_faces = faces[faces[:, 1] >= 3] if len(faces) else faces
        # Polygon-corner attributes: texture coordinates (the first UV set) and normals, as indices
        # per corner; a control point whose corners differ in them is split into several vertices.
        keys: list[NDArray[np.int64]] = []
        uv_values = normal_values = None
        uv = own(mesh.vertex_uv)
        if uv.exists:
            uv_values = np.asarray(own(uv.values), dtype=np.float64).reshape(-1, 2)
            keys.append(np.asarray(own(uv.indices), dtype=np.int64).reshape(-1))
        vn = own(mesh.vertex_normal)
        if vn.exists:
            normal_values = np.asarray(own(vn.values), dtype=np.float64).reshape(-1, 3)
            keys.append(np.asarray(own(vn.indices), dtype=np.int64).reshape(-1))
        if any(len(k) != len(corners) or (len(k) and (k.min() < 0 or k.max() >= len(v)))
               for k, v in zip(keys, [x for x in (uv_values, normal_values) if x is not None], strict=True)):
            raise AvatarError("avatar_unreadable", "A mesh's texture coordinates or normals do not fit its polygons.")
        if corners.size and (corners.min() < 0 or corners.max() >= len(verts)):
            raise AvatarError("avatar_unreadable", "A face refers to a vertex that does not exist.")
        source, corner_vertex = _split_corners(
            corners, np.stack(keys, axis=1) if keys else np.zeros((len(corners), 0), dtype=np.int64), len(verts)
        )
        first_corner = np.zeros(len(source), dtype=np.int64)  # a corner of each vertex (unused: 0)
        first_corner[corner_vertex[::-1]] = np.arange(len(corners))[::-1]
        triangles = corner_vertex[tri_corners] if tri_corners.size else tri_corners
        face_material = np.asarray(own(mesh.face_material), dtype=np.int64).reshape(-1)
        mesh_materials = _kept(mesh.materials)
        triangle_materials = None
        if mesh_materials and len(face_material) == len(faces):
            local = np.array([materials.material(m) for m in mesh_materials], dtype=np.int64)
            fm = face_material[faces[:, 1] >= 3] if len(faces) else face_material
            fm = np.where((fm >= 0) & (fm < len(local)), fm, 0)
            triangle_materials = np.repeat(local[fm], valid_faces[:, 1] - 2)
        if i in skinned_nodes:
            skin = next(sk for m_, sk, j in skins if j == i)
            clusters = _kept(skin.clusters)
            bone_nodes = [own(c.bone_node) for c in clusters]
            cluster_bone = np.array(
                [index.get(by_id.get(int(b.typed_id), -1), 0) if b is not None else 0 for b in bone_nodes],
                dtype=np.int64,
            )
            geo_to_world = _m(clusters[0].bind_to_world) @ _m(clusters[0].geometry_to_bone) if clusters else to_world[i]
            sv = np.asarray(own(skin.vertices), dtype=np.float64).reshape(-1, 3)  # (V, 3): begin, count, dq
            sw = np.asarray(own(skin.weights), dtype=np.float64).reshape(-1, 2)  # (N, 2): cluster, weight
            if len(sv) != len(verts):
                raise AvatarError("avatar_unreadable", "The skin does not cover the mesh's vertices.")
            kmax = int(sv[:, 1].max()) if len(sv) else 0
            joints = np.zeros((len(verts), max(kmax, 1)), dtype=np.int64)
            weights = np.zeros((len(verts), max(kmax, 1)))
            begin = sv[:, 0].astype(np.int64)
            count = sv[:, 1].astype(np.int64)
            for k in range(kmax):
                ok = count > k
                at = np.where(ok, begin + k, 0)
                if ok.any() and at[ok].max() >= len(sw):
                    raise AvatarError("avatar_unreadable", "A skin weight refers past the weight list.")
                cl = sw[at, 0].astype(np.int64)
                if ok.any() and (cl[ok].min() < 0 or cl[ok].max() >= len(clusters)):
                    raise AvatarError("avatar_unreadable", "A skin weight names a cluster that does not exist.")
                joints[:, k] = np.where(ok, cluster_bone[np.clip(cl, 0, max(len(clusters) - 1, 0))], 0)
                weights[:, k] = np.where(ok, sw[at, 1], 0.0)
            joints, weights = top_influences(joints, np.where(np.isfinite(weights), weights, 0.0))
            pos = verts @ geo_to_world[:3, :3].T + geo_to_world[:3, 3]
            g_lin = geo_to_world[:3, :3]
        else:
            a = i
            while a >= 0 and not is_bone[a]:
                a = int(parent_of[a])
            if a < 0:
                warnings.append(f"mesh {n.name} is not skinned or attached to a bone; left out")
                continue
            joints = np.zeros((len(verts), 4), dtype=np.int64)
            joints[:, 0] = index[a]
            weights = np.zeros((len(verts), 4))
            weights[:, 0] = 1.0
            g = _m(n.geometry_to_world)
            pos = verts @ g[:3, :3].T + g[:3, 3]
            g_lin = g[:3, :3]
        morph_names, offsets = _blend_shapes(mesh, len(verts), g_lin)
        if offsets is None and len(_kept(mesh.blend_deformers)):
            warnings.append(f"mesh {n.name}: blend shapes are not carried over")
        uvs = normals = None
        if uv_values is not None:
            uvs = uv_values[keys[0][first_corner]] * np.array([1.0, -1.0]) + np.array([0.0, 1.0])  # v up -> down
            unused = np.ones(len(source), dtype=bool)
            unused[corner_vertex] = False
            uvs[unused] = 0.0
        if normal_values is not None:
            normals = normal_values[keys[-1][first_corner]] @ np.linalg.inv(g_lin)
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        meshes.append(
            RigMesh(str(n.name), pos[source], normals, triangles, joints[source], weights[source], uvs, triangle_materials,
                    morph_names, None if offsets is None else offsets[:, source])
        )
    names = [str(nodes[n].name) for n in bones]
    return Rig(
        format="fbx",
        names=names,
        parents=parents,
        rest_local=rest_local,
        unit_m=unit_m,
        up_axis=up_axis,
        front_axis=front_axis,
        meshes=meshes,
        warnings=warnings + materials.warnings,
        root_parent=root_parent,
        root_parent_name=root_parent_name,
        materials=materials.materials,
        images=materials.images,
    )
