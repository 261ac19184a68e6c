"""glTF 2.0 (``.glb``, ``.gltf`` with embedded buffers) and VRM 0.x / 1.0 characters, read with pygltflib.

pygltflib parses the JSON and the GLB container; accessor data is sliced out of the buffers here
with numpy (pygltflib has no typed accessor reader), every offset and count checked against the
buffer first, so a hostile file fails with `AvatarError` and never reads out of bounds.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any, cast

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

__all__ = ["read_gltf"]

FloatArray = NDArray[np.float64]

_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORMALISED_MAX: dict[Any, float] = {np.uint8: 255.0, np.uint16: 65535.0}
_MAX_NODES = 200_000


def _unreadable(msg: str) -> AvatarError:
    return AvatarError("avatar_unreadable", msg)


class _Buffers:
    def __init__(self, gltf: Any, blob: bytes | None) -> None:
        self.gltf = gltf
        self.data: list[bytes] = []
        for i, buf in enumerate(gltf.buffers or []):
            uri = buf.uri
            if uri is None:
                if i != 0 or blob is None:
                    raise _unreadable("a buffer has no data")
                self.data.append(blob)
            elif uri.startswith("data:"):
                try:
                    self.data.append(base64.b64decode(uri.split(",", 1)[1], validate=False))
                except (ValueError, IndexError) as exc:
                    raise _unreadable("a buffer's data URI is not valid base64") from exc
            else:
                raise AvatarError(
                    "avatar_format_unsupported",
                    "The .gltf file refers to external files; upload a .glb or a .gltf with embedded buffers.",
                )

    def view_bytes(self, index: int | None) -> bytes:
        """The bytes of bufferView ``index`` (bounds checked)."""
        views = self.gltf.bufferViews or []
        if index is None or not 0 <= index < len(views):
            raise _unreadable("a bufferView index is out of range")
        view = views[index]
        if view.buffer is None or not 0 <= view.buffer < len(self.data):
            raise _unreadable("a buffer index is out of range")
        start = view.byteOffset or 0
        end = start + (view.byteLength or 0)
        if start < 0 or end > len(self.data[view.buffer]):
            raise _unreadable("a bufferView reaches past the end of its buffer")
        return bytes(self.data[view.buffer][start:end])

    def accessor(self, index: int | None) -> NDArray[Any]:
        """Accessor ``index`` as an (count, width) array (normalised integers scaled to [0, 1])."""
        accessors = self.gltf.accessors or []
        if index is None or not 0 <= index < len(accessors):
            raise _unreadable("an accessor index is out of range")
        acc = accessors[index]
        dtype = _COMPONENTS.get(acc.componentType)
        width = _WIDTH.get(acc.type)
        if dtype is None or width is None or acc.count is None or acc.count < 0:
            raise _unreadable("an accessor has an unknown type")
        count = int(acc.count)
        if count > 4 * MAX_VERTICES:
            raise AvatarError("avatar_unreadable", "An accessor holds more elements than a character may have.")
        if acc.bufferView is None:
            return np.zeros((count, width), dtype=np.float64)
        views = self.gltf.bufferViews or []
        if not 0 <= acc.bufferView < len(views):
            raise _unreadable("a bufferView index is out of range")
        view = views[acc.bufferView]
        if view.buffer is None or not 0 <= view.buffer < len(self.data):
            raise _unreadable("a buffer index is out of range")
        data = self.data[view.buffer]
        item = np.dtype(dtype).itemsize
        stride = view.byteStride or item * width
        start = (view.byteOffset or 0) + (acc.byteOffset or 0)
        view_end = (view.byteOffset or 0) + (view.byteLength or 0)
        need = start + (stride * (count - 1) + item * width if count else 0)
        if start < 0 or stride < item * width or need > view_end or view_end > len(data):
            raise _unreadable("an accessor reaches past the end of its buffer")
        raw = np.frombuffer(data, dtype=np.uint8, count=max(need - start, 0), offset=start)
        if count == 0:
            return np.zeros((0, width))
        rows = np.lib.stride_tricks.as_strided(raw, shape=(count, item * width), strides=(stride, 1))
        out = np.ascontiguousarray(rows).view(dtype).reshape(count, width)
        if acc.normalized and dtype in _NORMALISED_MAX:
            return cast("NDArray[Any]", out.astype(np.float64) / _NORMALISED_MAX[dtype])
        return out


def _quat_matrix(q: FloatArray) -> FloatArray:
    x, y, z, w = q
    n = float(np.sqrt(x * x + y * y + z * z + w * w))
    if not np.isfinite(n) or n < 1e-9:
        raise _unreadable("a node has an invalid rotation")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _node_matrix(node: Any) -> FloatArray:
    if node.matrix is not None and len(node.matrix) == 16:
        m = np.array(node.matrix, dtype=np.float64).reshape(4, 4).T  # glTF stores column-major
    else:
        m = np.eye(4)
        t = np.array(node.translation if node.translation is not None else [0, 0, 0], dtype=np.float64)
        r = np.array(node.rotation if node.rotation is not None else [0, 0, 0, 1], dtype=np.float64)
        s = np.array(node.scale if node.scale is not None else [1, 1, 1], dtype=np.float64)
        if t.shape != (3,) or r.shape != (4,) or s.shape != (3,):
            raise _unreadable("a node's transform has the wrong size")
        m[:3, :3] = _quat_matrix(r) * s[None, :]
        m[:3, 3] = t
    if not np.isfinite(m).all():
        raise _unreadable("a node's transform is not a finite number")
    return m


def _vrm_humanoid(gltf: Any, node_names: list[str]) -> tuple[str, dict[str, str] | None]:
    ext = gltf.extensions or {}

    def name(i: Any) -> str | None:
        return node_names[i] if isinstance(i, int) and 0 <= i < len(node_names) else None

    if isinstance(ext.get("VRMC_vrm"), dict):
        bones = (ext["VRMC_vrm"].get("humanoid") or {}).get("humanBones") or {}
        table = {k: name(v.get("node")) for k, v in bones.items() if isinstance(v, dict)}
        return "vrm1", {k: v for k, v in table.items() if v}
    if isinstance(ext.get("VRM"), dict):
        bones = (ext["VRM"].get("humanoid") or {}).get("humanBones") or []
        table = {b.get("bone"): name(b.get("node")) for b in bones if isinstance(b, dict)}
        return "vrm0", {k: v for k, v in table.items() if k and v}
    return "gltf", None


def _parse_container(data: bytes, is_glb: bool) -> tuple[dict[str, Any], bytes | None]:
    """The glTF JSON (as a dict) and the GLB's binary chunk, refusing oversized scenes before pygltflib
    builds an object per element (which is slow). The GLB container is a 12-byte header then chunks
    (uint32 length, uint32 type, data: JSON first, then BIN), per the glTF 2.0 spec; only those header
    integers are read here, the document itself is pygltflib's."""
    blob = None
    try:
        if is_glb:
            if len(data) < 20:
                raise _unreadable("The GLB file is truncated.")
            length, kind = struct.unpack_from("<II", data, 12)
            if kind != 0x4E4F534A or 20 + length > len(data):
                raise _unreadable("The GLB file's JSON chunk is missing or truncated.")
            doc = json.loads(data[20 : 20 + length])
            at = 20 + length
            if at + 8 <= len(data):
                blen, bkind = struct.unpack_from("<II", data, at)
                if bkind == 0x004E4942:
                    if at + 8 + blen > len(data):
                        raise _unreadable("The GLB file's binary chunk is truncated.")
                    blob = data[at + 8 : at + 8 + blen]
        else:
            doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _unreadable("The file's JSON is not valid.") from exc
    if not isinstance(doc, dict):
        raise _unreadable("The file's JSON is not a glTF document.")
    nodes = doc.get("nodes") or []
    joints = sum(len(s.get("joints") or []) for s in doc.get("skins") or [] if isinstance(s, dict))
    if not isinstance(nodes, list) or len(nodes) > _MAX_NODES:
        raise _unreadable(f"The file has {len(nodes)} nodes; a character may have at most {_MAX_NODES}.")
    if joints > MAX_BONES:
        raise _unreadable(f"The skeleton has {joints} bones; at most {MAX_BONES} are supported.")
    doc.pop("animations", None)  # never read here: the character's own clips are not needed
    return doc, blob


def _triangles(buffers: _Buffers, indices: int | None, num_vertices: int) -> NDArray[np.int64]:
    """A triangle primitive's vertex triples (T, 3), every index checked against ``num_vertices``."""
    if indices is not None:
        idx = buffers.accessor(indices).astype(np.int64).reshape(-1)
    else:
        idx = np.arange(num_vertices, dtype=np.int64)
    idx = idx[: len(idx) - len(idx) % 3]
    if idx.size and (idx.min() < 0 or idx.max() >= num_vertices):
        raise _unreadable("a triangle index is out of range")
    return idx.reshape(-1, 3)


def _morph_targets(
    buffers: _Buffers, mesh: Any, prim: Any, num_vertices: int, linear: FloatArray
) -> tuple[list[str], FloatArray | None]:
    """A primitive's morph targets: names (the exporters' ``extras.targetNames``) and position offsets
    (M, V, 3) in the file frame; None when it has none or one cannot be read plainly (sparse)."""
    targets = prim.targets or []
    if not targets:
        return [], None
    accessors = buffers.gltf.accessors or []
    offsets = []
    for t in targets:
        a = t.get("POSITION") if isinstance(t, dict) else None
        if not isinstance(a, int) or not 0 <= a < len(accessors) or accessors[a].sparse is not None:
            return [], None
        d = buffers.accessor(a).astype(np.float64)
        if d.shape != (num_vertices, 3) or not np.isfinite(d).all():
            return [], None
        offsets.append(d @ linear.T)
    names = None
    for extras in (prim.extras, mesh.extras):
        if isinstance(extras, dict) and isinstance(extras.get("targetNames"), list):
            names = [str(n) for n in extras["targetNames"]]
    if names is None or len(names) != len(targets):
        names = [f"target_{k}" for k in range(len(targets))]
    return names, np.stack(offsets)


def _moves_uvs(transform: dict[str, Any]) -> bool:
    """Whether a KHR_texture_transform is other than the identity (a malformed one counts as moving)."""
    try:
        return (
            any(float(v) != 0.0 for v in transform.get("offset") or [])
            or any(float(v) != 1.0 for v in transform.get("scale") or [])
            or float(transform.get("rotation") or 0.0) != 0.0
        )
    except (TypeError, ValueError):
        return True


class _Materials:
    """The file's materials as ``RigMaterial``s, with the images their textures use (each kept once).

    A VRM's MToon or unlit material keeps what glTF's core material of the same entry holds (VRM
    exporters fill its base colour factor and texture) and is marked ``unlit``: the closest core
    glTF has to a toon shader (``KHR_materials_unlit``, which VRM exporters add as the fallback)."""

    _UNLIT_EXTENSIONS = ("KHR_materials_unlit", "VRMC_materials_mtoon")  # the latter: VRM 1.0's MToon

    _SAMPLER_FIELDS = ("magFilter", "minFilter", "wrapS", "wrapT")

    def __init__(self, gltf: Any, buffers: _Buffers) -> None:
        self.gltf = gltf
        self.buffers = buffers
        self.materials: list[RigMaterial] = []
        self.images: list[RigImage] = []
        self.warnings: list[str] = []
        self._material: dict[int, int] = {}
        self._image: dict[int, int | None] = {}

    def material(self, index: Any) -> int:
        """The rig material of glTF material ``index`` (-1 when there is none)."""
        mats = self.gltf.materials or []
        if not isinstance(index, int) or not 0 <= index < len(mats):
            return -1
        if index not in self._material:
            self._material[index] = len(self.materials)
            self.materials.append(self._convert(mats[index], index))
        return self._material[index]

    def _convert(self, m: Any, index: int) -> RigMaterial:
        pbr = m.pbrMetallicRoughness
        out = RigMaterial(name=m.name or f"material_{index}")
        if pbr is not None:
            if pbr.baseColorFactor is not None and len(pbr.baseColorFactor) == 4:
                out.base_color = [float(v) for v in pbr.baseColorFactor]
            out.metallic = float(pbr.metallicFactor if pbr.metallicFactor is not None else 1.0)
            out.roughness = float(pbr.roughnessFactor if pbr.roughnessFactor is not None else 1.0)
        if m.emissiveFactor is not None and len(m.emissiveFactor) == 3:
            out.emissive = [float(v) for v in m.emissiveFactor]
        out.alpha_mode = m.alphaMode if m.alphaMode in ("OPAQUE", "MASK", "BLEND") else "OPAQUE"
        out.alpha_cutoff = float(m.alphaCutoff if m.alphaCutoff is not None else 0.5)
        out.double_sided = bool(m.doubleSided)
        out.unlit = any(k in (m.extensions or {}) for k in self._UNLIT_EXTENSIONS) or self._vrm0_toon(index)
        slots = {
            "baseColor": pbr.baseColorTexture if pbr is not None else None,
            "metallicRoughness": pbr.metallicRoughnessTexture if pbr is not None else None,
            "normal": m.normalTexture,
            "emissive": m.emissiveTexture,
            "occlusion": m.occlusionTexture,
        }
        for slot, info in slots.items():
            tex = self._texture(info, out.name)
            if tex is not None:
                out.textures[slot] = tex
        return out

    def _vrm0_toon(self, index: int) -> bool:
        """VRM 0.x names each material's shader in ``extensions.VRM.materialProperties`` (same order)."""
        vrm = (self.gltf.extensions or {}).get("VRM")
        props = vrm.get("materialProperties") if isinstance(vrm, dict) else None
        if not isinstance(props, list) or not 0 <= index < len(props) or not isinstance(props[index], dict):
            return False
        shader = props[index].get("shader")
        return isinstance(shader, str) and shader.startswith(("VRM/MToon", "VRM/Unlit"))

    def _texture(self, info: Any, material: str) -> RigTexture | None:
        if info is None or not isinstance(info.index, int):
            return None
        textures = self.gltf.textures or []
        if not 0 <= info.index < len(textures):
            raise _unreadable("a material names a texture that does not exist")
        if (info.texCoord or 0) != 0:
            self.warnings.append(f"material {material}: a texture on a second UV set was left out")
            return None
        transform = (info.extensions or {}).get("KHR_texture_transform")
        if isinstance(transform, dict) and _moves_uvs(transform):
            self.warnings.append(f"material {material}: a texture's offset, scale or rotation is not carried over")
        tex = textures[info.index]
        image = self._image_of(tex.source, material)
        if image is None:
            return None
        sampler: dict[str, int] = {}
        samplers = self.gltf.samplers or []
        if isinstance(tex.sampler, int) and 0 <= tex.sampler < len(samplers):
            s = samplers[tex.sampler]
            sampler = {k: int(getattr(s, k)) for k in self._SAMPLER_FIELDS if isinstance(getattr(s, k), int)}
        return RigTexture(image=image, sampler=sampler)

    def _image_of(self, index: Any, material: str) -> int | None:
        images = self.gltf.images or []
        if not isinstance(index, int) or not 0 <= index < len(images):
            return None
        if index not in self._image:
            img = images[index]
            data: bytes | None = None
            if img.bufferView is not None:
                data = self.buffers.view_bytes(img.bufferView)
            elif isinstance(img.uri, str) and img.uri.startswith("data:"):
                try:
                    data = base64.b64decode(img.uri.split(",", 1)[1], validate=False)
                except (ValueError, IndexError) as exc:
                    raise _unreadable("an image's data URI is not valid base64") from exc
            mime = image_mime(data) if data else None
            if data is None or mime is None:
                self.warnings.append(f"material {material}: an image that is not an embedded PNG or JPEG was left out")
                self._image[index] = None
            else:
                self._image[index] = len(self.images)
                self.images.append(RigImage(img.name or f"image_{index}", mime, data))
        return self._image[index]


def read_gltf(data: bytes, filename: str) -> Rig:
    import pygltflib

    is_glb = data[:4] == b"glTF"
    doc, blob = _parse_container(data, is_glb)
    try:
        gltf = pygltflib.GLTF2.from_json(json.dumps(doc))
    except AvatarError:
        raise
    except Exception as exc:  # pygltflib raises a zoo of errors on malformed input
        raise _unreadable(f"The file could not be read as glTF: {type(exc).__name__}.") from exc
    version = str(getattr(gltf.asset, "version", "") or "")
    if not version.startswith("2."):
        raise AvatarError("avatar_format_unsupported", f"glTF version {version or '?'} is not supported; use glTF 2.0.")
    nodes = gltf.nodes or []
    if len(nodes) > _MAX_NODES:
        raise AvatarError("avatar_unreadable", f"The file has {len(nodes)} nodes; a character may have at most {_MAX_NODES}.")
    node_names = [n.name or f"node_{i}" for i, n in enumerate(nodes)]
    kind, humanoid = _vrm_humanoid(gltf, node_names)
    buffers = _Buffers(gltf, blob)

    parent = np.full(len(nodes), -1, dtype=np.int64)
    for i, n in enumerate(nodes):
        for c in n.children or []:
            if not isinstance(c, int) or not 0 <= c < len(nodes) or parent[c] >= 0 or c == i:
                raise _unreadable("the node tree is not a tree")
            parent[c] = i
    local = np.stack([_node_matrix(n) for n in nodes]) if nodes else np.zeros((0, 4, 4))
    world = np.empty_like(local)
    done = np.zeros(len(nodes), dtype=bool)

    def world_of(i: int) -> FloatArray:
        chain = []
        j = i
        while j >= 0 and not done[j]:
            chain.append(j)
            if len(chain) > len(nodes):
                raise _unreadable("the node tree has a cycle")
            j = int(parent[j])
        for k in reversed(chain):
            p = int(parent[k])
            world[k] = local[k] if p < 0 else world[p] @ local[k]
            done[k] = True
        return cast("FloatArray", world[i])

    for i in range(len(nodes)):
        world_of(i)

    skins = gltf.skins or []
    joint_nodes: list[int] = []
    bind_world: dict[int, FloatArray] = {}
    for skin in skins:
        joints = list(skin.joints or [])
        if any(not isinstance(j, int) or not 0 <= j < len(nodes) for j in joints):
            raise _unreadable("a skin names a node that does not exist")
        ibm = None
        if skin.inverseBindMatrices is not None:
            ibm = buffers.accessor(skin.inverseBindMatrices).astype(np.float64)
            if ibm.shape != (len(joints), 16):
                raise _unreadable("a skin's inverse bind matrices do not match its joints")
            if not np.isfinite(ibm).all():
                raise _unreadable("a skin's inverse bind matrices are not finite numbers")
        for k, j in enumerate(joints):
            if j not in bind_world:
                joint_nodes.append(j)
                if ibm is not None:
                    m = ibm[k].reshape(4, 4).T
                    try:
                        bind_world[j] = np.linalg.inv(m)
                    except np.linalg.LinAlgError as exc:
                        raise _unreadable("a skin's inverse bind matrix is singular") from exc
                else:
                    bind_world[j] = world[j]
    if not joint_nodes:
        raise AvatarError("avatar_no_skeleton", "The model has no skin: there is no skeleton to animate.")
    if len(joint_nodes) > MAX_BONES:
        raise AvatarError("avatar_unreadable", f"The skeleton has {len(joint_nodes)} bones; at most {MAX_BONES} are supported.")

    # Bones: the skin joints, parents first (depth order), each parented to its nearest joint ancestor.
    joint_set = set(joint_nodes)

    def depth(i: int) -> int:
        d = 0
        while parent[i] >= 0:
            i = int(parent[i])
            d += 1
        return d

    order = sorted(joint_nodes, key=lambda i: (depth(i), joint_nodes.index(i)))
    index = {n: b for b, n in enumerate(order)}
    parents = np.full(len(order), -1, dtype=np.int64)
    for b, n in enumerate(order):
        p = int(parent[n])
        while p >= 0 and p not in joint_set:
            p = int(parent[p])
        parents[b] = index[p] if p >= 0 else -1
    bone_world = np.stack([bind_world[n] for n in order])  # (B, 4, 4)
    # Inverse bind matrices may be relative to a space other than the scene (a skeleton authored Z-up
    # under a rotating node): the root joint's scene transform times its inverse bind matrix maps
    # that space into the scene, for the bones and the vertices alike.
    bind_to_scene = world[order[0]] @ np.linalg.inv(bone_world[0])
    if not np.allclose(bind_to_scene, np.eye(4), atol=1e-6) and np.isfinite(bind_to_scene).all():
        bone_world = bind_to_scene[None] @ bone_world
    else:
        bind_to_scene = np.eye(4)
    holders = {int(parent[n]) for b, n in enumerate(order) if parents[b] < 0}
    root_parent, root_parent_name = np.eye(4), "Armature"
    if len(holders) == 1 and (h := holders.pop()) >= 0 and abs(np.linalg.det(world[h][:3, :3])) > 1e-12:
        root_parent, root_parent_name = world[h], node_names[h]
    rest_local = np.empty_like(bone_world)
    for b, p in enumerate(parents):
        rest_local[b] = (np.linalg.solve(root_parent, bone_world[b]) if p < 0
                         else np.linalg.solve(bone_world[p], bone_world[b]))
    if not np.isfinite(rest_local).all():
        raise _unreadable("the skeleton's transforms are not finite numbers")

    warnings: list[str] = []
    meshes: list[RigMesh] = []
    materials = _Materials(gltf, buffers)
    merged: dict[tuple[Any, ...], RigMesh] = {}
    total_vertices = 0
    for ni, node in enumerate(nodes):
        if node.mesh is None:
            continue
        if not 0 <= node.mesh < len(gltf.meshes or []):
            raise _unreadable("a node names a mesh that does not exist")
        mesh = gltf.meshes[node.mesh]
        skin = skins[node.skin] if node.skin is not None and 0 <= node.skin < len(skins) else None
        rigid_bone = None
        if skin is None:
            a = ni
            while a >= 0 and a not in joint_set:
                a = int(parent[a])
            if a < 0:
                warnings.append(f"mesh {mesh.name or ni!s} is not skinned or attached to a bone; left out")
                continue
            rigid_bone = index[a]
        for prim in mesh.primitives or []:
            if prim.mode not in (None, 4):
                warnings.append(f"mesh {mesh.name or ni!s}: a primitive that is not triangles was left out")
                continue
            attrs = prim.attributes
            if attrs.POSITION is None:
                continue
            # Primitives of one mesh that share their vertices (one per material, as exporters write
            # them) become one mesh whose triangles carry their materials.
            shared = (ni, attrs.POSITION, attrs.NORMAL, attrs.TEXCOORD_0, attrs.JOINTS_0, attrs.WEIGHTS_0)
            if shared in merged and not prim.targets:
                into = merged[shared]
                more = _triangles(buffers, prim.indices, len(into.positions))
                mat = materials.material(prim.material)
                before = (into.triangle_materials if into.triangle_materials is not None
                          else np.full(len(into.triangles), -1, dtype=np.int64))
                into.triangles = np.concatenate([into.triangles, more])
                into.triangle_materials = np.concatenate([before, np.full(len(more), mat, dtype=np.int64)])
                continue
            pos = buffers.accessor(attrs.POSITION).astype(np.float64)
            if pos.shape[1] != 3 or not np.isfinite(pos).all():
                raise _unreadable("vertex positions are not finite 3D points")
            total_vertices += len(pos)
            if total_vertices > MAX_VERTICES:
                raise _unreadable(f"The model has more than {MAX_VERTICES} vertices.")
            nrm = None
            if attrs.NORMAL is not None:
                nrm = buffers.accessor(attrs.NORMAL).astype(np.float64)
                if nrm.shape != pos.shape or not np.isfinite(nrm).all():
                    nrm = None
            idx = _triangles(buffers, prim.indices, len(pos)).reshape(-1)
            if skin is not None and attrs.JOINTS_0 is not None and attrs.WEIGHTS_0 is not None:
                linear = bind_to_scene[:3, :3]
                pos = pos @ bind_to_scene[:3, :3].T + bind_to_scene[:3, 3]
                if nrm is not None:
                    nrm = nrm @ np.linalg.inv(bind_to_scene[:3, :3])
                sj = buffers.accessor(attrs.JOINTS_0).astype(np.int64)
                sw = buffers.accessor(attrs.WEIGHTS_0).astype(np.float64)
                skin_joints = list(skin.joints or [])
                if sj.shape != (len(pos), 4) or sw.shape != (len(pos), 4):
                    raise _unreadable("skin joints or weights do not match the vertices")
                if sj.size and (sj.min() < 0 or sj.max() >= len(skin_joints)):
                    raise _unreadable("a vertex names a skin joint that does not exist")
                lookup = np.array([index[j] for j in skin_joints], dtype=np.int64)
                vertex_joints, weights = top_influences(lookup[sj], np.where(np.isfinite(sw), sw, 0.0))
            else:
                b = rigid_bone if rigid_bone is not None else 0
                vertex_joints = np.zeros((len(pos), 4), dtype=np.int64)
                vertex_joints[:, 0] = b
                weights = np.zeros((len(pos), 4))
                weights[:, 0] = 1.0
                # A rigid mesh is placed by its node; bring its vertices into the file frame.
                m = world[ni]
                linear = m[:3, :3]
                pos = pos @ m[:3, :3].T + m[:3, 3]
                if nrm is not None:
                    nrm = nrm @ np.linalg.inv(m[:3, :3])
            uvs = None
            if attrs.TEXCOORD_0 is not None:
                uvs = buffers.accessor(attrs.TEXCOORD_0).astype(np.float64)
                if uvs.shape != (len(pos), 2) or not np.isfinite(uvs).all():
                    warnings.append(f"mesh {mesh.name or ni!s}: texture coordinates that do not fit the vertices were left out")
                    uvs = None
            morph_names, morph_positions = _morph_targets(buffers, mesh, prim, len(pos), linear)
            if prim.targets and morph_positions is None:
                warnings.append(f"mesh {mesh.name or ni!s}: morph targets are not carried over")
            triangles = idx.reshape(-1, 3)
            material = materials.material(prim.material)
            meshes.append(
                RigMesh(
                    mesh.name or f"mesh_{ni}", pos, nrm, triangles, vertex_joints, weights, uvs,
                    None if material < 0 else np.full(len(triangles), material, dtype=np.int64),
                    morph_names, morph_positions,
                )
            )
            if not prim.targets:  # a primitive with morph targets keeps its own mesh
                merged[shared] = meshes[-1]
    front = {"vrm0": "-z"}.get(kind, "+z")
    return Rig(
        format="vrm" if kind.startswith("vrm") else "gltf",
        names=[node_names[n] for n in order],
        parents=parents,
        rest_local=rest_local,
        unit_m=1.0,
        up_axis="y",
        front_axis=front,
        meshes=meshes,
        vrm_humanoid=humanoid,
        warnings=warnings + materials.warnings,
        root_parent=root_parent,
        root_parent_name=root_parent_name,
        materials=materials.materials,
        images=materials.images,
    )
