"""Motion -> FBX node tree: the document a DCC tool expects for an animated skeleton.

Layout (what Blender, Unreal, Unity and Maya import as an armature with one take):

* ``GlobalSettings``: Y up (``UpAxis 1``), front +Z (``FrontAxis 2``), right-handed X (``CoordAxis 0``),
  centimetres (``UnitScaleFactor 1``); our Z-up metres convert with ``skeleton.yup_from_zup`` and a
  factor of 100, so for a rotation ``R'`` = ``C R C^T`` with ``C`` the axis swap (a proper rotation, so
  a wxyz quaternion converts as ``(w, yup_from_zup(xyz))``).
* A ``Null`` model named ``Armature`` (Blender makes it the armature object; Unreal drops a top node of
  that name) parents one ``LimbNode`` model per joint, named after the joint, in the skeleton's tree.
  Every model's default ``Lcl`` values are the rest pose (identity rotation, rest offset), and a
  ``BindPose`` lists the rest global matrices.
* One ``AnimationStack`` / ``AnimationLayer``; ``AnimationCurveNode`` ``R`` on every joint and ``T`` on
  the root, its direct children and any joint whose offset leaves the rest offset; three
  ``AnimationCurve`` (X, Y, Z) per node, one linear key per frame at ``f / fps`` seconds in FBX ticks.
  Rotations are Euler XYZ in degrees (``RotationOrder`` 0 on every model), unwrapped for continuity.
* Rest orientations ``B_j`` are the identity except on a joint with a translated child (the root):
  Blender's importer points a bone's local Y axis at its children and *connects* a child sitting at
  the tail, which freezes that child's translation (the pelvis would stop moving). Such a joint gets
  the first of identity / Y->forward / Y->left that keeps its tail off every child. In the file,
  ``L'_j = B_p^-1 (C R_j C^T) B_j`` and ``t'_j = 100 B_p^-1 C t_j``, so world positions are unchanged:
  ``W'_j = C W_j C^T B_j`` and ``P'_j = 100 C P_j``.

Ids are fixed (a counter in a fixed order) and the creation time is the fixed value Autodesk's
importer accepts without a checksum, so the same motion always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import numpy as np
from numpy.typing import NDArray

from mocapd.formats.fbx.encode import FBX_VERSION, FbxNode, Int64, PropValue, encode_fbx
from mocapd.formats.fbx.euler import matrix_from_quat_wxyz, unwrapped_euler_xyz_rad
from mocapd.pipeline.skeleton import Motion, Skeleton, quat_mul, quat_rotate, yup_from_zup

__all__ = ["KTIME_PER_S", "build_fbx_document", "write_fbx"]

FloatArray = NDArray[np.float64]

KTIME_PER_S = 46_186_158_000  # FBX time unit: ticks per second
CM_PER_M = 100.0
ARMATURE_NAME = "Armature"
TAKE_NAME = "Take 001"
CREATOR = "mocapd"
# Fixed creation time and the file id that goes with it: the pair Autodesk's SDK accepts.
CREATION_TIME = "1970-01-01 10:00:00:000"
FILE_ID = b"\x28\xb3\x2a\xeb\xb6\x24\xcc\xc2\xbf\xc8\xb0\x2a\xa9\x2b\xfc\xf1"
# Key attributes: linear interpolation (eInterpolationLinear = 0x4) for every key.
KEY_FLAGS_LINEAR = 0x00000004
KEY_VERSION = 4008
# FbxTime::EMode for the rates that have one; anything else is eCustom (14) + CustomFrameRate.
_TIME_MODES = {120.0: 1, 100.0: 2, 60.0: 3, 50.0: 4, 48.0: 5, 30.0: 6, 25.0: 10, 24.0: 11, 96.0: 15, 72.0: 16}
_TIME_MODE_CUSTOM = 14
_SEP = "\x00\x01"
_MOVING_OFFSET_M = 1e-6


class _Ids:
    """Deterministic object ids: a counter walked in document order."""

    def __init__(self, start: int = 1_000_000_000) -> None:
        self._next = start

    def __call__(self) -> Int64:
        self._next += 1
        return Int64(self._next)


def _p(name: str, type_name: str, label: str, flags: str, *values: PropValue) -> FbxNode:
    return FbxNode("P", [name, type_name, label, flags, *values])


def _props70(*props: FbxNode) -> FbxNode:
    return FbxNode("Properties70", children=list(props))


def _vec(v: FloatArray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


def _ktimes(num_frames: int, fps: float) -> NDArray[np.int64]:
    return cast("NDArray[np.int64]", np.rint(np.arange(num_frames) * (KTIME_PER_S / fps)).astype(np.int64))  # (F,)


# Candidate rest orientations (wxyz, Y-up frame): identity, Rx(+90 deg) (Y -> +Z, forward),
# Rz(-90 deg) (Y -> +X, the character's left).
_H = float(np.sqrt(0.5))
_REST_CANDIDATES = np.array([[1.0, 0.0, 0.0, 0.0], [_H, _H, 0.0, 0.0], [_H, 0.0, 0.0, -_H]])
_TAIL_CLEARANCE_CM = 0.1


def _conj(q: FloatArray) -> FloatArray:
    return cast("FloatArray", q * np.array([1.0, -1.0, -1.0, -1.0]))


def _rest_orientations(skeleton: Skeleton, translated: set[int]) -> FloatArray:
    """``B_j`` (J, 4) wxyz in the Y-up file frame: identity unless a translated child needs clearance."""
    offsets_cm = yup_from_zup(skeleton.rest_offsets_m) * CM_PER_M  # (J, 3)
    rest = np.tile(_REST_CANDIDATES[0], (skeleton.num_joints, 1))  # (J, 4)
    for p in range(skeleton.num_joints):
        children = [j for j, q in enumerate(skeleton.parents) if q == p]
        if not any(j in translated for j in children):
            continue
        size_cm = float(np.mean([np.linalg.norm(offsets_cm[j]) for j in children]))
        for b in _REST_CANDIDATES:
            # Child offsets in the joint's own frame are B^-1 t; Blender's tail is size * Y.
            local = quat_rotate(np.broadcast_to(_conj(b), (len(children), 4)), offsets_cm[children])
            tail = np.array([0.0, size_cm, 0.0])
            if np.linalg.norm(local - tail, axis=1).min() > _TAIL_CLEARANCE_CM:
                rest[p] = b
                break
    return rest


def _fbx_local_motion(motion: Motion, rest_quat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Local translations in cm (F, J, 3) and XYZ Euler angles in degrees (F, J, 3), Y-up, in rest frames."""
    parents = np.array(motion.skeleton.parents)
    parent_rest = np.where(
        (parents >= 0)[:, None], rest_quat[np.maximum(parents, 0)], _REST_CANDIDATES[0]
    )  # (J, 4)
    parent_rest_inv = np.broadcast_to(_conj(parent_rest), motion.local_quat_wxyz.shape)  # (F, J, 4)
    translation_cm = quat_rotate(
        parent_rest_inv, yup_from_zup(motion.local_translation_m) * CM_PER_M
    )  # (F, J, 3)
    q = np.asarray(motion.local_quat_wxyz, dtype=np.float64)  # (F, J, 4)
    q_yup = np.concatenate([q[..., :1], yup_from_zup(q[..., 1:])], axis=-1)  # (F, J, 4)
    q_file = quat_mul(quat_mul(parent_rest_inv, q_yup), np.broadcast_to(rest_quat, q.shape))  # (F, J, 4)
    euler_deg = np.degrees(unwrapped_euler_xyz_rad(matrix_from_quat_wxyz(q_file)))  # (F, J, 3)
    return translation_cm, euler_deg


def _translated_joints(motion: Motion) -> list[int]:
    """The root, its children, and any joint whose local offset ever leaves its rest offset."""
    sk = motion.skeleton
    roots = {j for j, p in enumerate(sk.parents) if p < 0}
    moving = np.abs(motion.local_translation_m - sk.rest_offsets_m[None]).max(axis=(0, 2)) > _MOVING_OFFSET_M
    return [j for j, p in enumerate(sk.parents) if j in roots or p in roots or bool(moving[j])]


def _header_nodes() -> list[FbxNode]:
    stamp = FbxNode("CreationTimeStamp")
    for name, value in (
        ("Version", 1000),
        ("Year", 1970),
        ("Month", 1),
        ("Day", 1),
        ("Hour", 10),
        ("Minute", 0),
        ("Second", 0),
        ("Millisecond", 0),
    ):
        stamp.add(name, value)
    ext = FbxNode("FBXHeaderExtension")
    ext.add("FBXHeaderVersion", 1003)
    ext.add("FBXVersion", FBX_VERSION)
    ext.add("EncryptionType", 0)
    ext.children.append(stamp)
    ext.add("Creator", CREATOR)
    return [
        ext,
        FbxNode("FileId", [FILE_ID]),
        FbxNode("CreationTime", [CREATION_TIME]),
        FbxNode("Creator", [CREATOR]),
    ]


def _global_settings(fps: float, stop_ktime: int) -> FbxNode:
    mode = _TIME_MODES.get(float(fps), _TIME_MODE_CUSTOM)
    node = FbxNode("GlobalSettings")
    node.add("Version", 1000)
    node.children.append(
        _props70(
            _p("UpAxis", "int", "Integer", "", 1),
            _p("UpAxisSign", "int", "Integer", "", 1),
            _p("FrontAxis", "int", "Integer", "", 2),
            _p("FrontAxisSign", "int", "Integer", "", 1),
            _p("CoordAxis", "int", "Integer", "", 0),
            _p("CoordAxisSign", "int", "Integer", "", 1),
            _p("OriginalUpAxis", "int", "Integer", "", 1),
            _p("OriginalUpAxisSign", "int", "Integer", "", 1),
            _p("UnitScaleFactor", "double", "Number", "", 1.0),
            _p("OriginalUnitScaleFactor", "double", "Number", "", 1.0),
            _p("AmbientColor", "ColorRGB", "Color", "", 0.0, 0.0, 0.0),
            _p("DefaultCamera", "KString", "", "", "Producer Perspective"),
            _p("TimeMode", "enum", "", "", mode),
            _p("TimeProtocol", "enum", "", "", 2),
            _p("SnapOnFrameMode", "enum", "", "", 0),
            _p("TimeSpanStart", "KTime", "Time", "", Int64(0)),
            _p("TimeSpanStop", "KTime", "Time", "", Int64(stop_ktime)),
            _p("CustomFrameRate", "double", "Number", "", float(fps)),
        )
    )
    return node


def _definitions(counts: dict[str, int]) -> FbxNode:
    templates = {
        "Model": (
            "FbxNode",
            _props70(
                _p("RotationOrder", "enum", "", "", 0),
                _p("InheritType", "enum", "", "", 0),
                _p("DefaultAttributeIndex", "int", "Integer", "", -1),
                _p("Lcl Translation", "Lcl Translation", "", "A", 0.0, 0.0, 0.0),
                _p("Lcl Rotation", "Lcl Rotation", "", "A", 0.0, 0.0, 0.0),
                _p("Lcl Scaling", "Lcl Scaling", "", "A", 1.0, 1.0, 1.0),
                _p("Visibility", "Visibility", "", "A", 1.0),
            ),
        ),
        "NodeAttribute": (
            "FbxSkeleton",
            _props70(
                _p("Color", "ColorRGB", "Color", "", 0.8, 0.8, 0.8),
                _p("Size", "double", "Number", "", 100.0),
                _p("LimbLength", "double", "Number", "H", 1.0),
            ),
        ),
        "AnimationStack": (
            "FbxAnimStack",
            _props70(
                _p("Description", "KString", "", "", ""),
                _p("LocalStart", "KTime", "Time", "", Int64(0)),
                _p("LocalStop", "KTime", "Time", "", Int64(0)),
                _p("ReferenceStart", "KTime", "Time", "", Int64(0)),
                _p("ReferenceStop", "KTime", "Time", "", Int64(0)),
            ),
        ),
        "AnimationLayer": (
            "FbxAnimLayer",
            _props70(
                _p("Weight", "Number", "", "A", 100.0),
                _p("Mute", "bool", "", "", 0),
                _p("Solo", "bool", "", "", 0),
                _p("Lock", "bool", "", "", 0),
                _p("BlendMode", "enum", "", "", 0),
            ),
        ),
        "AnimationCurveNode": ("FbxAnimCurveNode", _props70(_p("d", "Compound", "", ""))),
    }
    node = FbxNode("Definitions")
    node.add("Version", 100)
    node.add("Count", sum(counts.values()))
    for type_name, count in counts.items():
        obj = node.add("ObjectType", type_name)
        obj.add("Count", count)
        if type_name in templates:
            template_name, props = templates[type_name]
            obj.add("PropertyTemplate", template_name).children.append(props)
    return node


def _model(uid: Int64, name: str, kind: str, translation: FloatArray, rotation_deg: FloatArray) -> FbxNode:
    node = FbxNode("Model", [uid, name + _SEP + "Model", kind])
    node.add("Version", 232)
    node.children.append(
        _props70(
            _p("RotationOrder", "enum", "", "", 0),
            _p("InheritType", "enum", "", "", 1),
            _p("DefaultAttributeIndex", "int", "Integer", "", 0),
            _p("Lcl Translation", "Lcl Translation", "", "A", *_vec(translation)),
            _p("Lcl Rotation", "Lcl Rotation", "", "A", *_vec(rotation_deg)),
            _p("Lcl Scaling", "Lcl Scaling", "", "A", 1.0, 1.0, 1.0),
        )
    )
    node.add("Shading", True)
    node.add("Culling", "CullingOff")
    return node


def _attribute(uid: Int64, name: str, kind: str, size: float) -> FbxNode:
    node = FbxNode("NodeAttribute", [uid, name + _SEP + "NodeAttribute", kind])
    if kind == "LimbNode":
        node.children.append(_props70(_p("Size", "double", "Number", "", size)))
        node.add("TypeFlags", "Skeleton")
    else:
        node.add("TypeFlags", "Null")
    return node


def _column_major(rotation: FloatArray, translation: FloatArray) -> NDArray[np.float64]:
    """The 4x4 matrix [R t; 0 1] flattened column by column, as FBX stores matrices."""
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = translation
    return np.ascontiguousarray(m.T).reshape(16)  # (16,)


def _curve(uid: Int64, times: NDArray[np.int64], values: FloatArray) -> FbxNode:
    node = FbxNode("AnimationCurve", [uid, _SEP + "AnimCurve", ""])
    node.add("Default", float(values[0]))
    node.add("KeyVer", KEY_VERSION)
    node.add("KeyTime", times)
    node.add("KeyValueFloat", values.astype(np.float32))
    node.add("KeyAttrFlags", np.array([KEY_FLAGS_LINEAR], dtype=np.int32))
    node.add("KeyAttrDataFloat", np.zeros(4, dtype=np.float32))
    node.add("KeyAttrRefCount", np.array([len(times)], dtype=np.int32))
    return node


def _connections(pairs: Iterator[tuple[Int64, Int64, str | None]]) -> FbxNode:
    node = FbxNode("Connections")
    for child, parent, prop in pairs:
        if prop is None:
            node.add("C", "OO", child, parent)
        else:
            node.add("C", "OP", child, parent, prop)
    return node


def _bind_pose(uid: Int64, entries: list[tuple[Int64, NDArray[np.float64]]]) -> FbxNode:
    """The ``BindPose``: each node's rest global matrix (16 floats, column-major)."""
    pose = FbxNode("Pose", [uid, "BindPose" + _SEP + "Pose", "BindPose"])
    pose.add("Type", "BindPose")
    pose.add("Version", 100)
    pose.add("NbPoseNodes", len(entries))
    for node, matrix in entries:
        pose_node = pose.add("PoseNode")
        pose_node.add("Node", node)
        pose_node.add("Matrix", matrix)
    return pose


def _take(stack_id: Int64, layer_id: Int64, stop: int) -> list[FbxNode]:
    """The one take's ``AnimationStack`` and its ``AnimationLayer`` (link the layer to the stack)."""
    stack = FbxNode("AnimationStack", [stack_id, TAKE_NAME + _SEP + "AnimStack", ""])
    stack.children.append(
        _props70(
            _p("LocalStart", "KTime", "Time", "", Int64(0)),
            _p("LocalStop", "KTime", "Time", "", Int64(stop)),
            _p("ReferenceStart", "KTime", "Time", "", Int64(0)),
            _p("ReferenceStop", "KTime", "Time", "", Int64(stop)),
        )
    )
    return [stack, FbxNode("AnimationLayer", [layer_id, "BaseLayer" + _SEP + "AnimLayer", ""])]


_Link = tuple[Int64, Int64, "str | None"]


def _animate(
    objects: FbxNode,
    links: list[_Link],
    ids: _Ids,
    layer_id: Int64,
    target: Int64,
    channel: tuple[str, str],
    times: NDArray[np.int64],
    values: FloatArray,
) -> None:
    """One ``AnimationCurveNode`` (``channel`` = ("T", "Lcl Translation") or ("R", "Lcl Rotation")) on
    ``target`` with its X, Y and Z curves; ``values`` (F, 3)."""
    short, prop = channel
    node_id = ids()
    curve_node = FbxNode("AnimationCurveNode", [node_id, short + _SEP + "AnimCurveNode", ""])
    curve_node.children.append(
        _props70(*(_p(f"d|{axis}", "Number", "", "A", float(values[0, k])) for k, axis in enumerate("XYZ")))
    )
    objects.children.append(curve_node)
    links.append((node_id, layer_id, None))
    links.append((node_id, target, prop))
    for k, axis in enumerate("XYZ"):
        curve_id = ids()
        objects.children.append(_curve(curve_id, times, values[:, k]))
        links.append((curve_id, node_id, f"d|{axis}"))


def _document(
    doc_id: Int64, global_settings: FbxNode, counts: dict[str, int], objects: FbxNode, links: list[_Link], stop: int
) -> list[FbxNode]:
    """The top-level nodes around ``objects``: header, settings, the scene document, definitions
    (``counts``), connections and the take."""
    document = FbxNode("Document", [doc_id, "", "Scene"])
    document.children.append(
        _props70(
            _p("SourceObject", "object", "", ""),
            _p("ActiveAnimStackName", "KString", "", "", TAKE_NAME),
        )
    )
    document.add("RootNode", Int64(0))
    documents = FbxNode("Documents")
    documents.add("Count", 1)
    documents.children.append(document)
    takes = FbxNode("Takes")
    takes.add("Current", TAKE_NAME)
    take = takes.add("Take", TAKE_NAME)
    take.add("FileName", TAKE_NAME.replace(" ", "_") + ".tak")
    take.add("LocalTime", Int64(0), Int64(stop))
    take.add("ReferenceTime", Int64(0), Int64(stop))
    return [
        *_header_nodes(),
        global_settings,
        documents,
        FbxNode("References"),
        _definitions(counts),
        objects,
        _connections(iter(links)),
        takes,
    ]


def build_fbx_document(motion: Motion) -> list[FbxNode]:
    """The top-level FBX nodes for ``motion`` (see the module doc for the layout)."""
    sk: Skeleton = motion.skeleton
    num_frames = motion.num_frames
    if num_frames < 1:
        raise ValueError("cannot write an FBX of a motion with no frames")
    if not (np.isfinite(motion.local_translation_m).all() and np.isfinite(motion.local_quat_wxyz).all()):
        raise ValueError("motion has non-finite values")
    translated = set(_translated_joints(motion))
    rest_quat = _rest_orientations(sk, translated)  # (J, 4)
    translation_cm, euler_deg = _fbx_local_motion(motion, rest_quat)  # (F, J, 3) each
    rest_motion = Motion(
        sk, motion.fps, sk.rest_offsets_m[None], np.tile([1.0, 0.0, 0.0, 0.0], (1, sk.num_joints, 1))
    )
    rest_cm, rest_euler_deg = (a[0] for a in _fbx_local_motion(rest_motion, rest_quat))  # (J, 3) each
    rest_global_cm = yup_from_zup(sk.rest_positions_m()) * CM_PER_M  # (J, 3)
    rest_global_rot = matrix_from_quat_wxyz(rest_quat)  # (J, 3, 3): C W C^T = I at rest, so W' = B
    times = _ktimes(num_frames, motion.fps)  # (F,)
    stop = int(times[-1])

    ids = _Ids()
    doc_id, armature_id, armature_attr_id = ids(), ids(), ids()
    joint_ids = [ids() for _ in sk.names]
    attr_ids = [ids() for _ in sk.names]
    pose_id, stack_id, layer_id = ids(), ids(), ids()
    links: list[tuple[Int64, Int64, str | None]] = [
        (armature_id, Int64(0), None),
        (armature_attr_id, armature_id, None),
    ]

    objects = FbxNode("Objects")
    objects.children.append(_attribute(armature_attr_id, ARMATURE_NAME, "Null", 0.0))
    objects.children.append(_model(armature_id, ARMATURE_NAME, "Null", np.zeros(3), np.zeros(3)))
    bone_size = float(max(np.linalg.norm(rest_cm, axis=1).max(), 1.0))
    for j, name in enumerate(sk.names):
        objects.children.append(_attribute(attr_ids[j], name, "LimbNode", bone_size))
        objects.children.append(_model(joint_ids[j], name, "LimbNode", rest_cm[j], rest_euler_deg[j]))
        parent = sk.parents[j]
        links.append((joint_ids[j], armature_id if parent < 0 else joint_ids[parent], None))
        links.append((attr_ids[j], joint_ids[j], None))

    objects.children.append(
        _bind_pose(
            pose_id,
            [
                (armature_id, _column_major(np.eye(3), np.zeros(3))),
                *((uid, _column_major(r, t)) for uid, r, t in zip(joint_ids, rest_global_rot, rest_global_cm, strict=True)),
            ],
        )
    )
    objects.children.extend(_take(stack_id, layer_id, stop))
    links.append((layer_id, stack_id, None))

    num_curve_nodes = 0
    for j in range(sk.num_joints):
        channels = [(("T", "Lcl Translation"), translation_cm)] if j in translated else []
        channels.append((("R", "Lcl Rotation"), euler_deg))
        for channel, values in channels:
            _animate(objects, links, ids, layer_id, joint_ids[j], channel, times, values[:, j])
            num_curve_nodes += 1

    counts = {
        "GlobalSettings": 1,
        "NodeAttribute": sk.num_joints + 1,
        "Model": sk.num_joints + 1,
        "Pose": 1,
        "AnimationStack": 1,
        "AnimationLayer": 1,
        "AnimationCurveNode": num_curve_nodes,
        "AnimationCurve": 3 * num_curve_nodes,
    }
    return _document(doc_id, _global_settings(motion.fps, stop), counts, objects, links, stop)


def write_fbx(motion: Motion) -> bytes:
    """Binary FBX 7.4 (version 7400) of ``motion``: its skeleton as an armature, one take at ``motion.fps``."""
    return encode_fbx(build_fbx_document(motion), FBX_VERSION)
