"""Small synthetic rigged characters for avatar tests, built with pygltflib (a skinned GLB in memory)."""

from __future__ import annotations

import numpy as np
import pygltflib

from tests.conftest import shared_file

RIGS = ("quaternius_human.fbx", "quaternius_female.fbx", "godette.vrm", "rigged_figure.glb", "mannequiny.glb",
        "m2m_male.glb")


def rig_bytes(name: str) -> bytes:
    return shared_file(f"avatars/{name}").read_bytes()


def skinned_glb(bones: list[tuple[str, int, tuple[float, float, float]]], *, nan_in: int | None = None) -> bytes:
    """A GLB with one skin over ``bones`` (name, parent index or -1, world position, Y up, metres) and one
    triangle per bone weighted to it. ``nan_in`` puts NaN into that bone's bind matrix."""
    world = np.array([p for _, _, p in bones], dtype=np.float32)
    nodes = []
    for i, (name, parent, _pos) in enumerate(bones):
        local = world[i] - (world[parent] if parent >= 0 else 0.0)
        t = [float(x) for x in local]
        nodes.append(pygltflib.Node(name=name, translation=t,
                                    children=[j for j, (_, p, _) in enumerate(bones) if p == i]))
    verts = np.concatenate([w + np.array([[0, 0, 0], [0.02, 0, 0], [0, 0.02, 0]], np.float32) for w in world])
    joints = np.repeat(np.arange(len(bones), dtype=np.uint16), 3)[:, None] * np.array([[1, 0, 0, 0]], np.uint16)
    weights = np.tile(np.array([[1, 0, 0, 0]], np.float32), (len(verts), 1))
    ibm = np.stack([np.eye(4, dtype=np.float32) for _ in bones])
    ibm[:, 3, :3] = -world  # column-major: translation in the last row of the stored array
    if nan_in is not None:
        ibm[nan_in, 3, 1] = np.nan
    blobs = [verts.tobytes(), joints.tobytes(), weights.tobytes(), ibm.tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    mesh_node = len(nodes)
    nodes.append(pygltflib.Node(name="body", mesh=0, skin=0))
    gltf = pygltflib.GLTF2(
        scene=0,
        scenes=[pygltflib.Scene(nodes=[0, mesh_node])],
        nodes=nodes,
        meshes=[pygltflib.Mesh(primitives=[pygltflib.Primitive(
            attributes=pygltflib.Attributes(POSITION=0, JOINTS_0=1, WEIGHTS_0=2))])],
        skins=[pygltflib.Skin(joints=list(range(len(bones))), inverseBindMatrices=3)],
        accessors=[
            pygltflib.Accessor(bufferView=0, componentType=5126, count=len(verts), type="VEC3",
                               min=verts.min(0).tolist(), max=verts.max(0).tolist()),
            pygltflib.Accessor(bufferView=1, componentType=5123, count=len(verts), type="VEC4"),
            pygltflib.Accessor(bufferView=2, componentType=5126, count=len(verts), type="VEC4"),
            pygltflib.Accessor(bufferView=3, componentType=5126, count=len(bones), type="MAT4"),
        ],
        bufferViews=[pygltflib.BufferView(buffer=0, byteOffset=int(offsets[i]), byteLength=len(b))
                     for i, b in enumerate(blobs)],
        buffers=[pygltflib.Buffer(byteLength=int(offsets[-1]))],
    )
    gltf.set_binary_blob(b"".join(blobs))
    return b"".join(gltf.save_to_bytes())


def quadruped() -> list[tuple[str, int, tuple[float, float, float]]]:
    """A dog-like skeleton: a horizontal spine, four legs down, a head in front."""
    b: list[tuple[str, int, tuple[float, float, float]]] = [("Hips", -1, (0.0, 0.6, -0.3))]
    b += [("Spine", 0, (0.0, 0.62, 0.0)), ("Chest", 1, (0.0, 0.62, 0.3)), ("Neck", 2, (0.0, 0.75, 0.45)),
          ("Head", 3, (0.0, 0.85, 0.55))]
    for side, x in (("Left", 0.12), ("Right", -0.12)):
        for root, z, tag in ((0, -0.3, "Hind"), (2, 0.3, "Fore")):
            k = len(b)
            b += [(f"{side}{tag}Leg", root, (x, 0.55, z)), (f"{side}{tag}Knee", k, (x, 0.3, z)),
                  (f"{side}{tag}Paw", k + 1, (x, 0.02, z + 0.03))]
    return b


def humanoid(names: dict[str, str] | None = None) -> list[tuple[str, int, tuple[float, float, float]]]:
    """A 1.7 m T-pose humanoid (Y up, facing +Z) with plain names, optionally renamed."""
    spec = [
        ("Hips", None, (0.0, 0.95, 0.0)), ("Spine", "Hips", (0.0, 1.05, 0.0)), ("Chest", "Spine", (0.0, 1.25, 0.0)),
        ("Neck", "Chest", (0.0, 1.45, 0.0)), ("Head", "Neck", (0.0, 1.55, 0.0)),
    ]
    for side, x in (("Left", 1.0), ("Right", -1.0)):
        spec += [
            (f"{side}Shoulder", "Chest", (0.05 * x, 1.4, 0.0)), (f"{side}UpperArm", f"{side}Shoulder", (0.18 * x, 1.4, 0.0)),
            (f"{side}LowerArm", f"{side}UpperArm", (0.45 * x, 1.4, 0.0)), (f"{side}Hand", f"{side}LowerArm", (0.7 * x, 1.4, 0.0)),
            (f"{side}UpperLeg", "Hips", (0.1 * x, 0.9, 0.0)), (f"{side}LowerLeg", f"{side}UpperLeg", (0.1 * x, 0.5, 0.0)),
            (f"{side}Foot", f"{side}LowerLeg", (0.1 * x, 0.08, 0.0)), (f"{side}Toes", f"{side}Foot", (0.1 * x, 0.01, 0.13)),
        ]
    names = names or {}
    order = [n for n, _, _ in spec]
    return [(names.get(n, n), order.index(p) if p else -1, pos) for n, p, pos in spec]
