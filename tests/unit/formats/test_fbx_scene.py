"""The FBX document for a Motion: settings, armature layout, curves; decoded and evaluated by FK.

``smooth_random_motion`` is shared with the glTF and Blender-import tests.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from mocapd.formats.fbx import write_fbx
from mocapd.formats.fbx.decode import decode_fbx
from mocapd.formats.fbx.encode import FbxNode
from mocapd.formats.fbx.scene import KTIME_PER_S
from mocapd.pipeline.skeleton import DEFAULT_SKELETON, Motion, Skeleton
from tests.conftest import shared_file

FloatArray = NDArray[np.float64]


def smooth_random_motion(
    skeleton: Skeleton = DEFAULT_SKELETON, num_frames: int = 60, fps: float = 30.0, seed: int = 0
) -> Motion:
    """Frame 0 is the rest pose; then smooth sinusoidal joint rotations (up to ~70 deg), a root that
    walks 1.5 m and turns more than a full circle, and a bobbing pelvis."""
    rng = np.random.default_rng(seed)
    j = skeleton.num_joints
    t_s = (np.arange(num_frames) / fps)[:, None, None]  # (F, 1, 1)
    amp = rng.uniform(0.1, 1.2, (1, j, 3))
    omega = rng.uniform(1.0, 5.0, (1, j, 3))
    phase = rng.uniform(0.0, 2 * np.pi, (1, j, 3))
    rotvec = amp * (np.sin(omega * t_s + phase) - np.sin(phase))  # (F, J, 3), zero at frame 0
    rotvec[:, 0] = 0.0
    rotvec[:, 0, 2] = 2.5 * np.pi * t_s[:, 0, 0] / max(t_s[-1, 0, 0], 1e-9)  # root yaw: 1.25 turns
    xyzw = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_quat().reshape(num_frames, j, 4)
    quat_wxyz = xyzw[..., [3, 0, 1, 2]]
    translation_m = np.broadcast_to(skeleton.rest_offsets_m, (num_frames, j, 3)).copy()  # (F, J, 3)
    tt = t_s[:, 0, 0]
    translation_m[:, 0] += np.stack([1.5 * tt / max(tt[-1], 1e-9), 0.4 * np.sin(2 * tt), 0 * tt], axis=-1)
    if j > 1:
        translation_m[:, 1] += np.stack(
            [0.03 * np.sin(5 * tt), 0.02 * np.sin(3 * tt), 0.05 * np.sin(7 * tt)], axis=-1
        )
    return Motion(skeleton, fps, translation_m, quat_wxyz)


def zup_m_from_fbx_cm(p_cm: FloatArray) -> FloatArray:
    """Inverse of the writer's axis/unit change: Y-up cm (x, y, z) -> Z-up m (x, -z, y)."""
    return np.stack([p_cm[..., 0], -p_cm[..., 2], p_cm[..., 1]], axis=-1) / 100.0


def _by_name(nodes: list[FbxNode], name: str) -> FbxNode:
    found = next((n for n in nodes if n.name == name), None)
    assert found is not None, name
    return found


def _props70(node: FbxNode) -> dict[str, list[object]]:
    p70 = node.find("Properties70")
    return {} if p70 is None else {str(p.props[0]): p.props[4:] for p in p70.children}


def evaluate_fbx_world_positions_cm(data: bytes) -> tuple[dict[str, FloatArray], float, int]:
    """Our own reading of the file: per model name, world positions (F, 3) in the file's frame (cm),
    from the Lcl defaults, the curves (one key per frame) and XYZ Euler order; plus fps and frames."""
    _version, nodes = decode_fbx(data)
    objects = _by_name(nodes, "Objects").children
    settings = _props70(_by_name(nodes, "GlobalSettings"))
    fps = float(settings["CustomFrameRate"][0])  # type: ignore[arg-type]
    by_id = {int(n.props[0]): n for n in objects if n.props}  # type: ignore[arg-type]
    parent_of: dict[int, int] = {}
    prop_links: list[tuple[int, int, str]] = []
    for c in _by_name(nodes, "Connections").children:
        kind, child, parent = c.props[0], int(c.props[1]), int(c.props[2])  # type: ignore[arg-type]
        if kind == "OO" and by_id.get(child) is not None and by_id[child].name == "Model":
            parent_of[child] = parent
        elif kind == "OP":
            prop_links.append((child, parent, str(c.props[3])))
    models = {uid: n for uid, n in by_id.items() if n.name == "Model"}
    num_frames = max(len(n.find("KeyTime").props[0]) for n in objects if n.name == "AnimationCurve")  # type: ignore[union-attr, arg-type]
    channels: dict[tuple[int, str], FloatArray] = {}
    for uid, model in models.items():
        p = _props70(model)
        channels[(uid, "Lcl Translation")] = np.tile(np.array(p["Lcl Translation"], float), (num_frames, 1))
        channels[(uid, "Lcl Rotation")] = np.tile(np.array(p["Lcl Rotation"], float), (num_frames, 1))
    curve_axis = {child: (parent, prop) for child, parent, prop in prop_links if prop.startswith("d|")}
    node_target = {child: (parent, prop) for child, parent, prop in prop_links if prop.startswith("Lcl")}
    for curve_id, (node_id, axis) in curve_axis.items():
        curve = by_id[curve_id]
        times = curve.find("KeyTime").props[0]  # type: ignore[union-attr]
        assert np.array_equal(times, np.rint(np.arange(num_frames) * KTIME_PER_S / fps).astype(np.int64))
        values = curve.find("KeyValueFloat").props[0]  # type: ignore[union-attr]
        model_id, prop = node_target[node_id]
        channels[(model_id, prop)][:, "XYZ".index(axis[-1])] = values
    world: dict[int, tuple[FloatArray, FloatArray]] = {}

    def resolve(uid: int) -> tuple[FloatArray, FloatArray]:
        if uid in world:
            return world[uid]
        rot = Rotation.from_euler(
            "xyz", channels[(uid, "Lcl Rotation")], degrees=True
        ).as_matrix()  # (F, 3, 3)
        pos = channels[(uid, "Lcl Translation")]  # (F, 3)
        parent = parent_of.get(uid, 0)
        if parent in models:
            prot, ppos = resolve(parent)
            rot, pos = prot @ rot, ppos + np.einsum("fij,fj->fi", prot, pos)
        world[uid] = (rot, pos)
        return world[uid]

    names = {uid: str(m.props[1]).split("\x00\x01")[0] for uid, m in models.items()}
    return {names[uid]: resolve(uid)[1] for uid in models}, fps, num_frames


def test_global_settings_declare_y_up_centimetres_and_rate() -> None:
    motion = smooth_random_motion(num_frames=12, fps=24.0)
    _v, nodes = decode_fbx(write_fbx(motion))
    s = _props70(_by_name(nodes, "GlobalSettings"))
    assert (
        s["UpAxis"],
        s["UpAxisSign"],
        s["FrontAxis"],
        s["FrontAxisSign"],
        s["CoordAxis"],
        s["CoordAxisSign"],
    ) == ([1], [1], [2], [1], [0], [1])
    assert s["UnitScaleFactor"] == [1.0]
    assert s["TimeMode"] == [11] and s["CustomFrameRate"] == [24.0]
    assert s["TimeSpanStop"] == [round(11 * KTIME_PER_S / 24)]


def test_armature_layout_named_limb_nodes_under_a_null() -> None:
    motion = smooth_random_motion(num_frames=5)
    _v, nodes = decode_fbx(write_fbx(motion))
    models = [n for n in _by_name(nodes, "Objects").children if n.name == "Model"]
    kinds = {str(m.props[1]).split("\x00\x01")[0]: m.props[2] for m in models}
    assert kinds.pop("Armature") == "Null"
    assert set(kinds) == set(DEFAULT_SKELETON.names) and set(kinds.values()) == {"LimbNode"}
    for m in models:
        assert _props70(m)["RotationOrder"] == [0]
    pose = _by_name(_by_name(nodes, "Objects").children, "Pose")
    assert pose.props[2] == "BindPose" and len(pose.children) == 3 + len(DEFAULT_SKELETON.names) + 1


def test_curves_T_on_root_and_pelvis_R_everywhere_one_key_per_frame() -> None:
    motion = smooth_random_motion(num_frames=17)
    _v, nodes = decode_fbx(write_fbx(motion))
    objects = _by_name(nodes, "Objects").children
    curve_nodes = [n for n in objects if n.name == "AnimationCurveNode"]
    kinds = [str(n.props[1]).split("\x00\x01")[0] for n in curve_nodes]
    assert kinds.count("R") == DEFAULT_SKELETON.num_joints and kinds.count("T") == 2
    curves = [n for n in objects if n.name == "AnimationCurve"]
    assert len(curves) == 3 * len(curve_nodes)
    assert all(len(c.find("KeyValueFloat").props[0]) == 17 for c in curves)  # type: ignore[union-attr, arg-type]
    definitions = {
        str(o.props[0]): o.find("Count").props[0]
        for o in _by_name(nodes, "Definitions").children  # type: ignore[union-attr]
        if o.name == "ObjectType"
    }
    assert (
        definitions["AnimationCurve"] == len(curves)
        and definitions["Model"] == DEFAULT_SKELETON.num_joints + 1
    )


@pytest.mark.parametrize("fps", [24.0, 30.0, 60.0, 29.97])
def test_fk_of_the_written_curves_matches_the_motion(fps: float) -> None:
    motion = smooth_random_motion(num_frames=45, fps=fps, seed=3)
    positions_cm, file_fps, num_frames = evaluate_fbx_world_positions_cm(write_fbx(motion))
    assert file_fps == fps and num_frames == motion.num_frames
    expected = motion.world_positions_m()  # (F, J, 3)
    for j, name in enumerate(DEFAULT_SKELETON.names):
        err_m = np.linalg.norm(zup_m_from_fbx_cm(positions_cm[name]) - expected[:, j], axis=-1)
        assert err_m.max() < 1e-3, (name, err_m.max())
    assert np.allclose(positions_cm["Armature"], 0.0)


def test_rotation_curves_are_continuous() -> None:
    motion = smooth_random_motion(num_frames=120, seed=5)
    _v, nodes = decode_fbx(write_fbx(motion))
    curves = [n for n in _by_name(nodes, "Objects").children if n.name == "AnimationCurve"]
    # No wrap (~360 deg) or branch flip (~180 deg) between frames. Near gimbal lock (pitch ~ +-90 deg,
    # which this motion reaches on foot_r) X and Z legitimately swing fast, so the bound is loose.
    steps = [
        np.abs(np.diff(np.asarray(c.find("KeyValueFloat").props[0], dtype=np.float64))).max()  # type: ignore[union-attr]
        for c in curves
    ]
    assert max(steps) < 90.0
    assert np.median(steps) < 10.0


def test_output_is_byte_stable() -> None:
    motion = smooth_random_motion(num_frames=30, seed=9)
    assert write_fbx(motion) == write_fbx(motion)
    other = smooth_random_motion(num_frames=30, seed=10)
    assert write_fbx(other) != write_fbx(motion)


def test_rejects_empty_or_non_finite_motion() -> None:
    motion = smooth_random_motion(num_frames=3)
    with pytest.raises(ValueError):
        write_fbx(Motion(motion.skeleton, 30.0, motion.local_translation_m[:0], motion.local_quat_wxyz[:0]))
    bad = motion.local_translation_m.copy()
    bad[1, 1, 2] = np.nan
    with pytest.raises(ValueError):
        write_fbx(Motion(motion.skeleton, 30.0, bad, motion.local_quat_wxyz))


def test_any_skeleton_cmu_take_round_trips() -> None:
    from mocapd.formats.bvh import read_bvh

    full = read_bvh(shared_file("bvh/cmu_131_03.bvh"))
    motion = Motion(full.skeleton, full.fps, full.local_translation_m[:240], full.local_quat_wxyz[:240])
    positions_cm, fps, num_frames = evaluate_fbx_world_positions_cm(write_fbx(motion))
    assert fps == 120.0 and num_frames == 240
    expected = motion.world_positions_m()
    for j, name in enumerate(motion.skeleton.names):
        err_m = np.linalg.norm(zup_m_from_fbx_cm(positions_cm[name]) - expected[:, j], axis=-1)
        assert err_m.max() < 1e-3, (name, err_m.max())


def test_single_frame_motion() -> None:
    motion = smooth_random_motion(num_frames=1, seed=6)
    positions_cm, _fps, num_frames = evaluate_fbx_world_positions_cm(write_fbx(motion))
    assert num_frames == 1
    expected = motion.world_positions_m()[0]
    for j, name in enumerate(DEFAULT_SKELETON.names):
        assert np.allclose(zup_m_from_fbx_cm(positions_cm[name][0]), expected[j], atol=1e-5)
