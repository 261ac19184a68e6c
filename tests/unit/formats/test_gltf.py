"""The glTF writer: GLB container, validator rules checked in Python, and FK of the node TRS per
frame (read back with pygltflib) against the motion's world positions."""

from __future__ import annotations

import struct

import numpy as np
import pygltflib
import pytest
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from mocapd.formats.gltf import write_glb
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion
from tests.conftest import shared_file
from tests.unit.formats.test_fbx_scene import smooth_random_motion

FloatArray = NDArray[np.float64]

_COMPONENTS = {
    pygltflib.FLOAT: ("<f4", 4),
    pygltflib.UNSIGNED_SHORT: ("<u2", 2),
    pygltflib.UNSIGNED_INT: ("<u4", 4),
    pygltflib.UNSIGNED_BYTE: ("u1", 1),
}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _read(gltf: pygltflib.GLTF2, index: int) -> NDArray[np.generic]:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype, size = _COMPONENTS[acc.componentType]
    width = _WIDTH[acc.type]
    start = view.byteOffset + (acc.byteOffset or 0)
    assert view.byteStride is None
    assert (acc.byteOffset or 0) + acc.count * width * size <= view.byteLength
    data = gltf.binary_blob()[start : start + acc.count * width * size]
    return np.frombuffer(data, dtype=dtype).reshape(acc.count, width)


def _zup_from_yup(v: FloatArray) -> FloatArray:
    return np.stack([v[..., 0], -v[..., 2], v[..., 1]], axis=-1)


@pytest.fixture(scope="module")
def written() -> tuple[Motion, bytes, pygltflib.GLTF2]:
    motion = smooth_random_motion(num_frames=75, fps=30.0, seed=4)
    data = write_glb(motion)
    return motion, data, pygltflib.GLTF2.load_from_bytes(data)


def test_glb_container(written) -> None:  # type: ignore[no-untyped-def]
    _motion, data, _gltf = written
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\x00" and bin_len % 4 == 0 and 28 + json_len + bin_len == len(data)


def test_validator_rules(written) -> None:  # type: ignore[no-untyped-def]
    _motion, _data, gltf = written
    assert gltf.asset.version == "2.0"
    blob_len = len(gltf.binary_blob())
    assert gltf.buffers[0].byteLength <= blob_len
    for view in gltf.bufferViews:
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= gltf.buffers[0].byteLength
    for i, acc in enumerate(gltf.accessors):
        values = _read(gltf, i)
        assert values.shape[0] == acc.count > 0
        if acc.min:
            assert np.allclose(values.min(axis=0), acc.min, rtol=0, atol=0)
            assert np.allclose(values.max(axis=0), acc.max, rtol=0, atol=0)
    prim = gltf.meshes[0].primitives[0]
    pos = gltf.accessors[prim.attributes.POSITION]
    assert pos.min and pos.max  # required on POSITION
    num_vertices = pos.count
    assert (
        gltf.accessors[prim.attributes.JOINTS_0].count
        == gltf.accessors[prim.attributes.WEIGHTS_0].count
        == num_vertices
    )
    indices = _read(gltf, prim.indices)
    assert indices.max() < num_vertices and indices.size % 3 == 0
    weights = _read(gltf, prim.attributes.WEIGHTS_0).astype(np.float64)
    assert np.allclose(weights.sum(axis=1), 1.0)
    skin = gltf.skins[0]
    assert _read(gltf, prim.attributes.JOINTS_0).max() < len(skin.joints)
    body = next(n for n in gltf.nodes if n.skin is not None)
    assert gltf.nodes.index(body) in gltf.scenes[gltf.scene].nodes  # skinned mesh node at the root
    assert body.translation is None and body.rotation is None and body.matrix is None
    for sampler in gltf.animations[0].samplers:
        acc = gltf.accessors[sampler.input]
        times = _read(gltf, sampler.input)[:, 0]
        assert acc.min and acc.max and np.all(np.diff(times) > 0)
        assert gltf.accessors[sampler.output].count == acc.count and sampler.interpolation == "LINEAR"
    for channel in gltf.animations[0].channels:
        if channel.target.path == "rotation":
            q = _read(gltf, gltf.animations[0].samplers[channel.sampler].output).astype(np.float64)
            assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
            assert np.all(np.sum(q[1:] * q[:-1], axis=1) >= 0.0)  # one hemisphere: slerp goes the short way


def _rest_globals(gltf: pygltflib.GLTF2) -> dict[int, FloatArray]:
    out: dict[int, FloatArray] = {}

    def visit(index: int, parent: FloatArray) -> None:
        node = gltf.nodes[index]
        local = np.eye(4)
        if node.translation is not None:
            local[:3, 3] = node.translation
        if node.rotation is not None:
            local[:3, :3] = Rotation.from_quat(node.rotation).as_matrix()
        out[index] = parent @ local
        for c in node.children or []:
            visit(c, out[index])

    for root in gltf.scenes[gltf.scene].nodes:
        visit(root, np.eye(4))
    return out


def test_inverse_bind_matrices_undo_the_rest_pose(written) -> None:  # type: ignore[no-untyped-def]
    _motion, _data, gltf = written
    skin = gltf.skins[0]
    ibm = _read(gltf, skin.inverseBindMatrices).astype(np.float64).reshape(-1, 4, 4).transpose(0, 2, 1)
    globals_ = _rest_globals(gltf)
    for k, node in enumerate(skin.joints):
        assert np.allclose(globals_[node] @ ibm[k], np.eye(4), atol=1e-6)
        assert np.allclose(ibm[k][3], [0, 0, 0, 1])


def _fk_positions(gltf: pygltflib.GLTF2, num_frames: int) -> dict[str, FloatArray]:
    """World positions (F, 3) per joint name from the node TRS with the animation applied at its keys."""
    trs: dict[tuple[int, str], FloatArray] = {}
    anim = gltf.animations[0]
    for ch in anim.channels:
        trs[(ch.target.node, ch.target.path)] = _read(gltf, anim.samplers[ch.sampler].output).astype(
            np.float64
        )
    world: dict[int, tuple[FloatArray, FloatArray]] = {}

    def visit(index: int, prot: FloatArray, ppos: FloatArray) -> None:
        node = gltf.nodes[index]
        t = trs.get((index, "translation"), np.tile(node.translation or [0.0, 0.0, 0.0], (num_frames, 1)))
        q = trs.get((index, "rotation"), np.tile(node.rotation or [0.0, 0.0, 0.0, 1.0], (num_frames, 1)))
        rot = prot @ Rotation.from_quat(q).as_matrix()
        pos = ppos + np.einsum("fij,fj->fi", prot, t)
        world[index] = (rot, pos)
        for c in node.children or []:
            visit(c, rot, pos)

    for root in gltf.scenes[gltf.scene].nodes:
        visit(root, np.tile(np.eye(3), (num_frames, 1, 1)), np.zeros((num_frames, 3)))
    return {gltf.nodes[i].name: p for i, (_r, p) in world.items()}


def _check_fk(motion: Motion, gltf: pygltflib.GLTF2) -> None:
    times = _read(gltf, gltf.animations[0].samplers[0].input)[:, 0]
    assert len(times) == motion.num_frames
    assert np.allclose(times, np.arange(motion.num_frames) / motion.fps, atol=1e-6)
    positions = _fk_positions(gltf, motion.num_frames)
    expected = motion.world_positions_m()  # (F, J, 3)
    for j, name in enumerate(motion.skeleton.names):
        err_m = np.linalg.norm(_zup_from_yup(positions[name]) - expected[:, j], axis=-1)
        assert err_m.max() < 1e-3, (name, err_m.max())


def test_fk_of_node_trs_matches_the_motion(written) -> None:  # type: ignore[no-untyped-def]
    motion, _data, gltf = written
    _check_fk(motion, gltf)
    assert gltf.animations[0].extras == {"fps": 30.0}
    # Rest pose upright (Y up), facing +Z (our -Y), left hand at +X.
    rest = {gltf.nodes[i].name: m[:3, 3] for i, m in _rest_globals(gltf).items()}
    assert rest["head"][1] > rest["pelvis"][1] > rest["foot_l"][1] and 1.4 < rest["head"][1] < 2.0
    assert rest["ball_l"][2] > rest["foot_l"][2] and rest["hand_l"][0] > 0.5


def test_any_skeleton_cmu_take(written) -> None:  # type: ignore[no-untyped-def]
    from mocapd.formats.bvh import read_bvh

    full = read_bvh(shared_file("bvh/cmu_131_02.bvh"))
    motion = Motion(full.skeleton, full.fps, full.local_translation_m[:200], full.local_quat_wxyz[:200])
    _check_fk(motion, pygltflib.GLTF2.load_from_bytes(write_glb(motion)))


def test_byte_stable_and_rejects_bad_motion() -> None:
    motion = smooth_random_motion(num_frames=10, seed=2)
    assert write_glb(motion) == write_glb(motion)
    with pytest.raises(ValueError):
        write_glb(Motion(DEFAULT_SKELETON, 30.0, motion.local_translation_m[:0], motion.local_quat_wxyz[:0]))
    bad = motion.local_quat_wxyz.copy()
    bad[2, 3, 0] = np.inf
    with pytest.raises(ValueError):
        write_glb(Motion(DEFAULT_SKELETON, 30.0, motion.local_translation_m, bad))
