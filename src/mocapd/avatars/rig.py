"""A rigged character as read from a user's file: bones, rest pose, skinned meshes, units and axes.

Everything is kept in the file's own world frame ("file frame": its units, its up axis, its facing),
so that writers can give the user back their own bone names, hierarchy and local rest transforms.
``Rig.to_norm`` maps the file frame to mocapd's frame (Z up, metres, the character faces -Y, its
rest-pose ground at z = 0); it is a similarity (rotation, uniform scale, translation).

Matrices are 4x4, column vectors (``p_world = M @ [p, 1]``). A bone's ``rest_local`` is relative to
its parent bone (for a root bone: to ``root_parent``, the world transform of the node the skeleton
hangs from, when all roots share one; otherwise the file's world, ancestors folded in), and
``rest_world`` is the product down the chain. The meshes' vertices are in the file frame at bind
time, so a vertex deforms as ``sum_k w_k  W_k(t) inv(rest_world_k) v``.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_BONES",
    "MAX_VERTICES",
    "RigImage",
    "RigMaterial",
    "RigMesh",
    "RigTexture",
    "Rig",
    "compose_world",
    "load_rig",
    "save_rig",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Limits on what a character may hold: beyond them the file is refused, not read into memory.
MAX_BONES = 2048
MAX_VERTICES = 2_000_000
MAX_SKIN_INFLUENCES = 4


# The texture slots a material may carry, named as glTF names them.
TEXTURE_SLOTS = ("baseColor", "normal", "metallicRoughness", "emissive", "occlusion")


@dataclass
class RigImage:
    """An image a material uses, kept as the file's own encoded bytes (PNG or JPEG), stored once."""

    name: str
    mime_type: str  # "image/png" | "image/jpeg"
    data: bytes


@dataclass
class RigTexture:
    image: int  # index into ``Rig.images``
    # glTF sampler fields (magFilter, minFilter, wrapS, wrapT) when the file names them.
    sampler: dict[str, int] = field(default_factory=dict)


@dataclass
class RigMaterial:
    """A surface in glTF's metallic-roughness terms (an FBX Lambert/Phong maps onto it: diffuse colour
    -> base colour, metallic 0). Colours are linear RGB(A), as glTF and FBX store them."""

    name: str
    base_color: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])  # RGBA
    metallic: float = 1.0
    roughness: float = 1.0
    emissive: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    alpha_mode: str = "OPAQUE"  # "OPAQUE" | "MASK" | "BLEND"
    alpha_cutoff: float = 0.5
    double_sided: bool = False
    textures: dict[str, RigTexture] = field(default_factory=dict)  # slot (TEXTURE_SLOTS) -> texture
    # Shaded without lights (glTF's KHR_materials_unlit; a VRM's MToon or unlit shader, whose toon
    # look a PBR viewer would otherwise turn dark and metallic).
    unlit: bool = False


@dataclass
class RigMesh:
    """One skinned (or rigidly attached) mesh, vertices in the file frame at bind time."""

    name: str
    positions: FloatArray  # (V, 3)
    normals: FloatArray | None  # (V, 3) or None
    triangles: IntArray  # (T, 3)
    joints: IntArray  # (V, 4) bone indices
    weights: FloatArray  # (V, 4), rows sum to 1
    # Texture coordinates in glTF's convention (origin at the image's top left, v downwards).
    uvs: FloatArray | None = None  # (V, 2) or None
    # Each triangle's material, an index into ``Rig.materials`` (-1: none).
    triangle_materials: IntArray | None = None  # (T,) or None (no material at all)
    # Morph targets (glTF sources): names and vertex offsets in the file frame; written at weight 0.
    morph_names: list[str] = field(default_factory=list)
    morph_positions: FloatArray | None = None  # (M, V, 3) or None


@dataclass
class Rig:
    format: str  # "fbx" | "gltf" | "vrm"
    names: list[str]
    parents: IntArray  # (B,), -1 for a root bone; parents come first
    rest_local: FloatArray  # (B, 4, 4)
    unit_m: float  # metres per file unit
    up_axis: str  # "y" | "z" in the file frame
    front_axis: str  # the file convention's facing: "+z", "-z", "+x", ...
    meshes: list[RigMesh] = field(default_factory=list)
    vrm_humanoid: dict[str, str] | None = None
    to_norm: FloatArray = field(default_factory=lambda: np.eye(4))  # (4, 4) file -> mocapd frame
    # The world transform of the (non-bone) node the root bones hang from, e.g. an "Armature" null;
    # root bones' ``rest_local`` is relative to it. Writers keep it as a node of its own.
    root_parent: FloatArray = field(default_factory=lambda: np.eye(4))  # (4, 4)
    root_parent_name: str = "Armature"
    warnings: list[str] = field(default_factory=list)
    materials: list[RigMaterial] = field(default_factory=list)
    images: list[RigImage] = field(default_factory=list)

    @property
    def num_bones(self) -> int:
        return len(self.names)

    def rest_world(self) -> FloatArray:
        """Rest world matrices of the bones in the file frame, (B, 4, 4)."""
        return self.root_parent @ compose_world(self.parents, self.rest_local)

    def children(self, b: int) -> list[int]:
        return [int(c) for c in np.flatnonzero(self.parents == b)]

    def is_ancestor(self, a: int, b: int) -> bool:
        """True when bone ``a`` is ``b`` or one of its ancestors."""
        while b >= 0:
            if b == a:
                return True
            b = int(self.parents[b])
        return False

    def height_m(self) -> float:
        """The character's height in metres: its meshes' vertical extent in mocapd's frame (its bones'
        when it has no mesh)."""
        if self.meshes:
            z = np.concatenate([m.positions @ self.to_norm[2, :3] + self.to_norm[2, 3] for m in self.meshes])
        else:
            z = self.norm_positions()[:, 2]
        return float(max(z.max() - z.min(), 1e-9))

    def norm_positions(self) -> FloatArray:
        """Rest joint positions in mocapd's frame (Z up, metres, facing -Y), (B, 3)."""
        w = self.rest_world()
        p = np.einsum("ij,bj->bi", self.to_norm, w[:, :, 3])
        return cast("FloatArray", p[:, :3])


def compose_world(parents: IntArray, local: FloatArray) -> FloatArray:
    """World matrices from local ones; ``local`` may carry leading frame axes: (..., B, 4, 4)."""
    world = np.empty_like(local)
    for b, p in enumerate(parents):
        world[..., b, :, :] = local[..., b, :, :] if p < 0 else world[..., p, :, :] @ local[..., b, :, :]
    return world


def save_rig(rig: Rig) -> bytes:
    """The prepared rig as one ``.npz`` (arrays plus a JSON header); no pickles, so loading is safe."""
    header: dict[str, Any] = {
        "format": rig.format,
        "names": rig.names,
        "unit_m": rig.unit_m,
        "up_axis": rig.up_axis,
        "front_axis": rig.front_axis,
        "vrm_humanoid": rig.vrm_humanoid,
        "warnings": rig.warnings,
        "root_parent_name": rig.root_parent_name,
        "meshes": [
            {"name": m.name, "normals": m.normals is not None, "uvs": m.uvs is not None,
             "materials": m.triangle_materials is not None, "morphs": m.morph_names}
            for m in rig.meshes
        ],
        "materials": [asdict(m) for m in rig.materials],
        "images": [{"name": im.name, "mime_type": im.mime_type} for im in rig.images],
    }
    arrays: dict[str, NDArray[Any]] = {
        "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        "parents": rig.parents.astype(np.int64),
        "rest_local": rig.rest_local,
        "to_norm": rig.to_norm,
        "root_parent": rig.root_parent,
    }
    for i, m in enumerate(rig.meshes):
        arrays[f"m{i}_positions"] = m.positions.astype(np.float32)
        arrays[f"m{i}_triangles"] = m.triangles.astype(np.int32)
        arrays[f"m{i}_joints"] = m.joints.astype(np.int32)
        arrays[f"m{i}_weights"] = m.weights.astype(np.float32)
        if m.normals is not None:
            arrays[f"m{i}_normals"] = m.normals.astype(np.float32)
        if m.uvs is not None:
            arrays[f"m{i}_uvs"] = m.uvs.astype(np.float32)
        if m.triangle_materials is not None:
            arrays[f"m{i}_materials"] = m.triangle_materials.astype(np.int32)
        if m.morph_positions is not None:
            arrays[f"m{i}_morphs"] = m.morph_positions.astype(np.float32)
    for i, im in enumerate(rig.images):
        arrays[f"img{i}"] = np.frombuffer(im.data, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def load_rig(data: bytes) -> Rig:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode())
        meshes = []
        for i, mh in enumerate(header["meshes"]):
            meshes.append(
                RigMesh(
                    name=mh["name"],
                    positions=z[f"m{i}_positions"].astype(np.float64),
                    normals=z[f"m{i}_normals"].astype(np.float64) if mh["normals"] else None,
                    triangles=z[f"m{i}_triangles"].astype(np.int64),
                    joints=z[f"m{i}_joints"].astype(np.int64),
                    weights=z[f"m{i}_weights"].astype(np.float64),
                    uvs=z[f"m{i}_uvs"].astype(np.float64) if mh.get("uvs") else None,
                    triangle_materials=z[f"m{i}_materials"].astype(np.int64) if mh.get("materials") else None,
                    morph_names=list(mh.get("morphs") or []),
                    morph_positions=z[f"m{i}_morphs"].astype(np.float64) if mh.get("morphs") else None,
                )
            )
        materials = [
            RigMaterial(**{**m, "textures": {k: RigTexture(**t) for k, t in m["textures"].items()}})
            for m in header.get("materials", [])
        ]
        images = [
            RigImage(im["name"], im["mime_type"], bytes(z[f"img{i}"])) for i, im in enumerate(header.get("images", []))
        ]
        return Rig(
            format=header["format"],
            names=list(header["names"]),
            parents=z["parents"].astype(np.int64),
            rest_local=z["rest_local"].astype(np.float64),
            unit_m=float(header["unit_m"]),
            up_axis=header["up_axis"],
            front_axis=header["front_axis"],
            meshes=meshes,
            vrm_humanoid=header["vrm_humanoid"],
            to_norm=z["to_norm"].astype(np.float64),
            root_parent=z["root_parent"].astype(np.float64),
            root_parent_name=str(header["root_parent_name"]),
            warnings=list(header["warnings"]),
            materials=materials,
            images=images,
        )


def top_influences(joints: IntArray, weights: FloatArray) -> tuple[IntArray, FloatArray]:
    """Keep the ``MAX_SKIN_INFLUENCES`` largest weights per vertex and renormalise, (V, 4) each."""
    order = np.argsort(-weights, axis=1)[:, :MAX_SKIN_INFLUENCES]
    j = np.take_along_axis(joints, order, axis=1)
    w = np.take_along_axis(weights, order, axis=1)
    if w.shape[1] < MAX_SKIN_INFLUENCES:
        pad = MAX_SKIN_INFLUENCES - w.shape[1]
        j = np.pad(j, ((0, 0), (0, pad)))
        w = np.pad(w, ((0, 0), (0, pad)))
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 0.0)
    return j.astype(np.int64), w


def yup_rotation(up_axis: str) -> FloatArray:
    """The rotation (3, 3) taking a file whose up axis is ``up_axis`` ("+y", "-z", ...) to Y up."""
    axis, sign = up_axis[-1], (-1.0 if up_axis.startswith("-") else 1.0)
    if axis == "y":
        r = np.eye(3)
    elif axis == "z":
        r = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # (x, y, z) -> (x, z, -y)
    else:
        r = np.array([[0, 1.0, 0], [-1.0, 0, 0], [0, 0, 1.0]])  # x up -> y up
    if sign < 0:
        r = np.diag([1.0, -1.0, -1.0]) @ r
    return r


def decompose(m: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Translation (..., 3), rotation as wxyz quaternion (..., 4) and scale (..., 3) of affine matrices
    (..., 4, 4) without shear; a mirroring scale is put on X."""
    t = m[..., :3, 3]
    basis = m[..., :3, :3]
    s = np.linalg.norm(basis, axis=-2)  # column norms (..., 3)
    r = basis / np.maximum(s, 1e-300)[..., None, :]
    neg = np.linalg.det(r) < 0
    s = np.where(neg[..., None], s * np.array([-1.0, 1.0, 1.0]), s)
    r = np.where(neg[..., None, None], r * np.array([-1.0, 1.0, 1.0])[None, :], r)
    return t, quat_from_matrix(r), s  # the quaternion is normalised: rounding in r does not matter



def quat_from_matrix(r: FloatArray) -> FloatArray:
    """wxyz unit quaternions (..., 4) of rotation matrices (..., 3, 3) (Shepperd's method)."""
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    tr = m00 + m11 + m22
    cands = np.stack(
        [
            np.stack([1 + tr, r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1),
            np.stack([r[..., 2, 1] - r[..., 1, 2], 1 + m00 - m11 - m22, r[..., 0, 1] + r[..., 1, 0], r[..., 0, 2] + r[..., 2, 0]], -1),
            np.stack([r[..., 0, 2] - r[..., 2, 0], r[..., 0, 1] + r[..., 1, 0], 1 - m00 + m11 - m22, r[..., 1, 2] + r[..., 2, 1]], -1),
            np.stack([r[..., 1, 0] - r[..., 0, 1], r[..., 0, 2] + r[..., 2, 0], r[..., 1, 2] + r[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )  # (..., 4, 4)
    pick = np.argmax(np.stack([tr, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(cands, pick[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def image_mime(data: bytes) -> str | None:
    """The MIME type of an encoded image by its signature (the two kinds glTF allows), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None
