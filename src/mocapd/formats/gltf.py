"""Motion -> glTF 2.0 binary (``.glb``): a skinned stick figure and one node-TRS animation.

* Frame: glTF is Y up, metres, front +Z; our Z-up positions convert with ``yup_from_zup`` and a
  rotation ``R`` as ``C R C^T`` (``C`` the axis swap, a proper rotation, so a wxyz quaternion becomes
  ``(w, yup_from_zup(xyz))``, stored xyzw as glTF wants).
* Nodes: ``Armature`` (identity) parents one node per joint, named after it, with the rest offset as
  its translation and identity rotation (our rest orientations are the identity); a ``Body`` node at
  the scene root carries the mesh and the skin (skinned-mesh nodes must not be transformed).
* Skin: every joint; ``inverseBindMatrices`` = inverse of each joint's rest global matrix
  ``[I p_rest; 0 1]``, i.e. ``[I -p_rest; 0 1]`` (column-major floats).
* Mesh: one small octahedral bone per parent->child segment (as Blender draws bones), each vertex
  weighted 1.0 to the parent joint, so any viewer shows the skeleton moving.
* Animation ``Take 001``: one time accessor (``f / fps`` s, with min/max) shared by every sampler;
  LINEAR rotation samplers on every joint (quaternions kept in one hemisphere frame to frame, so slerp
  takes the short way) and translation samplers on the root, its children and any joint whose offset
  leaves the rest offset.

Every bufferView starts on a 4-byte boundary; POSITION and the time input carry exact min/max.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pygltflib
from numpy.typing import NDArray

from mocapd.pipeline.skeleton import Motion, Skeleton, yup_from_zup

__all__ = ["write_glb"]

FloatArray = NDArray[np.float64]

ARMATURE_NAME = "Armature"
BODY_NAME = "Body"
TAKE_NAME = "Take 001"
_MOVING_OFFSET_M = 1e-6
_MIN_SEGMENT_M = 1e-4


class _Blob:
    """Binary buffer under construction: 4-byte-aligned bufferViews and their accessors."""

    def __init__(self, gltf: pygltflib.GLTF2) -> None:
        self.gltf = gltf
        self.data = bytearray()

    def accessor(
        self,
        array: NDArray[np.generic],
        type_name: str,
        *,
        target: int | None = None,
        with_bounds: bool = False,
    ) -> int:
        component = {
            np.dtype(np.float32): pygltflib.FLOAT,
            np.dtype(np.uint16): pygltflib.UNSIGNED_SHORT,
            np.dtype(np.uint32): pygltflib.UNSIGNED_INT,
        }[array.dtype]
        array = np.ascontiguousarray(array)
        self.data.extend(b"\0" * (-len(self.data) % 4))
        offset = len(self.data)
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        self.data.extend(raw)
        self.gltf.bufferViews.append(
            pygltflib.BufferView(buffer=0, byteOffset=offset, byteLength=len(raw), target=target)
        )
        flat = array.reshape(array.shape[0], -1)
        bounds: dict[str, list[float]] = {}
        if with_bounds:
            bounds = {
                "min": [float(v) for v in flat.min(axis=0)],
                "max": [float(v) for v in flat.max(axis=0)],
            }
        self.gltf.accessors.append(
            pygltflib.Accessor(
                bufferView=len(self.gltf.bufferViews) - 1,
                componentType=component,
                count=int(array.shape[0]),
                type=type_name,
                **bounds,
            )
        )
        return len(self.gltf.accessors) - 1


def _translated_joints(motion: Motion) -> list[int]:
    """The root, its children, and any joint whose local offset ever leaves its rest offset."""
    sk = motion.skeleton
    roots = {j for j, p in enumerate(sk.parents) if p < 0}
    moving = np.abs(motion.local_translation_m - sk.rest_offsets_m[None]).max(axis=(0, 2)) > _MOVING_OFFSET_M
    return [j for j, p in enumerate(sk.parents) if j in roots or p in roots or bool(moving[j])]


def _continuous_xyzw(quat_wxyz: FloatArray) -> FloatArray:
    """Y-up xyzw quaternions (F, J, 4), unit length, each in the hemisphere of the frame before."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    xyzw = np.concatenate([yup_from_zup(q[..., 1:]), q[..., :1]], axis=-1)  # (F, J, 4)
    dots = np.sum(xyzw[1:] * xyzw[:-1], axis=-1)  # (F-1, J)
    flips = np.concatenate([np.zeros((1, xyzw.shape[1])), np.cumsum(dots < 0, axis=0)], axis=0) % 2  # (F, J)
    return cast("FloatArray", xyzw * np.where(flips[..., None] == 1, -1.0, 1.0))


def _bone_mesh(skeleton: Skeleton) -> tuple[FloatArray, NDArray[np.uint16], NDArray[np.uint32]]:
    """Octahedral bones in the Y-up rest pose: positions (V, 3), joint index per vertex (V,), triangles (T*3,).

    A bone from head ``h`` to tail ``t`` (length ``L``, direction ``d``) has vertices ``h``, ``t`` and
    four around ``h + 0.15 L d`` at radius ``min(0.1 L, 0.02 m)`` on perpendicular axes ``u``, ``v``.
    """
    rest = yup_from_zup(skeleton.rest_positions_m())  # (J, 3)
    positions: list[FloatArray] = []
    joints: list[int] = []
    triangles: list[tuple[int, int, int]] = []
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            continue
        head, tail = rest[p], rest[j]
        length = float(np.linalg.norm(tail - head))
        if length < _MIN_SEGMENT_M:
            continue
        d = (tail - head) / length
        helper = np.eye(3)[int(np.argmin(np.abs(d)))]
        u = np.cross(d, helper)
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        ring_centre = head + 0.15 * length * d
        radius = min(0.1 * length, 0.02)
        base = len(joints)
        positions.extend([head, tail] + [ring_centre + radius * w for w in (u, v, -u, -v)])
        joints.extend([p] * 6)
        for k in range(4):
            a, b = base + 2 + k, base + 2 + (k + 1) % 4
            triangles.append((base, b, a))  # head cap, outward winding
            triangles.append((base + 1, a, b))  # tail cap
    if not positions:  # a single-joint skeleton: a tiny marker so the mesh is never empty
        c = rest[0]
        positions = [c + o for o in 0.02 * np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]])]
        joints = [0, 0, 0]
        triangles = [(0, 1, 2)]
    return (
        np.array(positions, dtype=np.float64),
        np.array(joints, dtype=np.uint16),
        np.array(triangles, dtype=np.uint32).reshape(-1),
    )


def write_glb(motion: Motion) -> bytes:
    """glTF 2.0 binary of ``motion``: its skeleton as a skinned stick figure, animated at ``motion.fps``."""
    sk = motion.skeleton
    if motion.num_frames < 1:
        raise ValueError("cannot write a glTF of a motion with no frames")
    if not (np.isfinite(motion.local_translation_m).all() and np.isfinite(motion.local_quat_wxyz).all()):
        raise ValueError("motion has non-finite values")

    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator="mocapd"))
    blob = _Blob(gltf)

    rest_local = yup_from_zup(sk.rest_offsets_m)  # (J, 3)
    rest_global = yup_from_zup(sk.rest_positions_m())  # (J, 3)
    joint_node = [j + 1 for j in range(sk.num_joints)]  # node 0 is the Armature
    gltf.nodes.append(
        pygltflib.Node(
            name=ARMATURE_NAME, children=[joint_node[j] for j, p in enumerate(sk.parents) if p < 0]
        )
    )
    for j, name in enumerate(sk.names):
        gltf.nodes.append(
            pygltflib.Node(
                name=name,
                translation=[float(x) for x in rest_local[j]],
                children=[joint_node[c] for c, p in enumerate(sk.parents) if p == j],
            )
        )

    # Skin: inverse bind matrices [I -p; 0 1], stored column-major (translation in the last column).
    ibm = np.tile(np.eye(4), (sk.num_joints, 1, 1))  # (J, 4, 4)
    ibm[:, :3, 3] = -rest_global
    ibm_accessor = blob.accessor(
        np.transpose(ibm, (0, 2, 1)).reshape(-1, 16).astype(np.float32), pygltflib.MAT4
    )
    gltf.skins.append(
        pygltflib.Skin(
            name=ARMATURE_NAME,
            inverseBindMatrices=ibm_accessor,
            joints=joint_node,
            skeleton=joint_node[int(np.argmin(sk.parents))],
        )
    )

    positions, vertex_joint, indices = _bone_mesh(sk)
    joints4 = np.zeros((len(vertex_joint), 4), dtype=np.uint16)  # (V, 4)
    joints4[:, 0] = vertex_joint
    weights4 = np.zeros((len(vertex_joint), 4), dtype=np.float32)  # (V, 4)
    weights4[:, 0] = 1.0
    primitive = pygltflib.Primitive(
        attributes=pygltflib.Attributes(
            POSITION=blob.accessor(
                positions.astype(np.float32), pygltflib.VEC3, target=pygltflib.ARRAY_BUFFER, with_bounds=True
            ),
            JOINTS_0=blob.accessor(joints4, pygltflib.VEC4, target=pygltflib.ARRAY_BUFFER),
            WEIGHTS_0=blob.accessor(weights4, pygltflib.VEC4, target=pygltflib.ARRAY_BUFFER),
        ),
        indices=blob.accessor(indices, pygltflib.SCALAR, target=pygltflib.ELEMENT_ARRAY_BUFFER),
        material=0,
    )
    gltf.materials.append(
        pygltflib.Material(
            name="bone",
            doubleSided=True,
            pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                baseColorFactor=[0.85, 0.55, 0.2, 1.0], metallicFactor=0.0, roughnessFactor=0.7
            ),
        )
    )
    gltf.meshes.append(pygltflib.Mesh(name=BODY_NAME, primitives=[primitive]))
    gltf.nodes.append(pygltflib.Node(name=BODY_NAME, mesh=0, skin=0))
    gltf.scenes.append(pygltflib.Scene(name="Scene", nodes=[0, len(gltf.nodes) - 1]))
    gltf.scene = 0

    times_s = (np.arange(motion.num_frames) / motion.fps).astype(np.float32)  # (F,)
    time_accessor = blob.accessor(times_s, pygltflib.SCALAR, with_bounds=True)
    rotations = _continuous_xyzw(motion.local_quat_wxyz).astype(np.float32)  # (F, J, 4)
    translations = yup_from_zup(motion.local_translation_m).astype(np.float32)  # (F, J, 3)
    animation = pygltflib.Animation(name=TAKE_NAME, extras={"fps": float(motion.fps)})
    channels: list[tuple[int, str, NDArray[np.float32], str]] = [
        (j, "translation", translations[:, j], pygltflib.VEC3) for j in _translated_joints(motion)
    ]
    channels += [(j, "rotation", rotations[:, j], pygltflib.VEC4) for j in range(sk.num_joints)]
    for j, path, values, type_name in sorted(channels, key=lambda c: (c[0], c[1] != "translation")):
        animation.samplers.append(
            pygltflib.AnimationSampler(
                input=time_accessor,
                output=blob.accessor(values, type_name),
                interpolation=pygltflib.ANIM_LINEAR,
            )
        )
        animation.channels.append(
            pygltflib.AnimationChannel(
                sampler=len(animation.samplers) - 1,
                target=pygltflib.AnimationChannelTarget(node=joint_node[j], path=path),
            )
        )
    gltf.animations.append(animation)

    blob.data.extend(b"\0" * (-len(blob.data) % 4))
    gltf.buffers.append(pygltflib.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    return b"".join(gltf.save_to_bytes())
