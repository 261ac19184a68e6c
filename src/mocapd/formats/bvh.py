"""BVH (Biovision Hierarchy) reading and writing.

Writing: the motion's own skeleton, **Y up** (``yup_from_zup``: the character faces +Z), lengths in
**centimetres** (the default unit of Blender, Maya and MotionBuilder imports), ``root`` and ``pelvis``
(or any joint whose local translation varies) with 6 channels ``Xposition Yposition Zposition
Zrotation Xrotation Yrotation``, every other joint with 3 rotation channels in the same ZXY order,
leaf joints closed by an ``End Site``.

Reading: any BVH, any channel order, on its own skeleton, converted to our convention (Z up, metres).
BVH semantics: a joint's local rotation is the intrinsic product of its rotation channels in file
order, ``R = R_c1 · R_c2 · R_c3``; its local translation is its position channels when it has them,
else its ``OFFSET``. Rest orientations are the identity in BVH as in `mocapd.pipeline.skeleton`, so a
change of axes ``C`` (Y up -> Z up) maps offsets ``o -> C o`` and rotations ``R -> C R Cᵀ``.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from mocapd.pipeline.skeleton import Motion, Skeleton

__all__ = ["CMU_UNIT_M", "read_bvh", "write_bvh"]

FloatArray = NDArray[np.float64]

CMU_UNIT_M = 0.056444
"""Length of one CMU motion-capture unit in metres ((1.0 / 0.45) * 2.54 / 100)."""

# C: Y-up vector -> Z-up vector, (x, y, z) -> (x, -z, y); the inverse of `yup_from_zup`.
_ZUP_FROM_YUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
_ROT_ZUP_FROM_YUP = Rotation.from_matrix(_ZUP_FROM_YUP)

_WRITE_ROT_ORDER = "ZXY"
_CM_PER_M = 100.0

# Cosmetic End Site offsets (metres, Z-up) for the leaves of the default skeleton.
_END_SITE_M: dict[str, tuple[float, float, float]] = {
    "head": (0.0, 0.0, 0.18),
    "hand_l": (0.08, 0.0, 0.0),
    "hand_r": (-0.08, 0.0, 0.0),
    "ball_l": (0.0, -0.05, 0.0),
    "ball_r": (0.0, -0.05, 0.0),
}


# ----------------------------------------------------------------------------------------- writing


def write_bvh(motion: Motion, *, decimals: int = 6) -> bytes:
    """Serialise ``motion`` as BVH text (Y up, centimetres, ZXY Euler angles in degrees).

    Each local rotation ``q`` (Z-up frame) becomes ``Cᵀ R(q) C`` in the Y-up frame and is decomposed
    into intrinsic Z, X, Y angles; every angle channel is unwrapped over time so no frame jumps by
    360 degrees. The bytes are deterministic for a given motion.
    """
    sk = motion.skeleton
    f, j = motion.num_frames, sk.num_joints
    trans_m = motion.local_translation_m  # (F, J, 3)
    moving = np.ptp(trans_m, axis=0).max(axis=1) > 1e-9 if f > 0 else np.zeros(j, bool)  # (J,)
    six = [p < 0 or bool(moving[k]) or sk.names[k] == "pelvis" for k, p in enumerate(sk.parents)]
    children: list[list[int]] = [[] for _ in range(j)]
    for k, p in enumerate(sk.parents):
        if p >= 0:
            children[p].append(k)

    fmt = f"{{:.{decimals}f}}"
    out = io.StringIO()
    out.write("HIERARCHY\n")

    def emit(k: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if sk.parents[k] < 0 else "JOINT"
        off = _tidy(_yup_cm(sk.rest_offsets_m[k]), decimals)
        out.write(f"{pad}{kind} {sk.names[k]}\n{pad}{{\n")
        out.write(f"{pad}\tOFFSET {' '.join(fmt.format(v) for v in off)}\n")
        rot = " ".join(f"{a}rotation" for a in _WRITE_ROT_ORDER)
        if six[k]:
            out.write(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot}\n")
        else:
            out.write(f"{pad}\tCHANNELS 3 {rot}\n")
        for c in children[k]:
            emit(c, depth + 1)
        if not children[k]:
            end = _tidy(_yup_cm(np.array(_END_SITE_M.get(sk.names[k], _default_end_site_m(sk, k)))), decimals)
            out.write(f"{pad}\tEnd Site\n{pad}\t{{\n{pad}\t\tOFFSET {' '.join(fmt.format(v) for v in end)}\n{pad}\t}}\n")
        out.write(f"{pad}}}\n")

    order: list[int] = []

    def visit(k: int) -> None:
        order.append(k)
        for c in children[k]:
            visit(c)

    for k, p in enumerate(sk.parents):
        if p < 0:
            emit(k, 0)
            visit(k)

    out.write("MOTION\n")
    out.write(f"Frames: {f}\n")
    out.write(f"Frame Time: {1.0 / motion.fps:.10f}\n")
    if f == 0:
        return out.getvalue().encode("ascii")

    quat_xyzw = motion.local_quat_wxyz[..., [1, 2, 3, 0]].reshape(-1, 4)  # (F*J, 4)
    rot_y = _ROT_ZUP_FROM_YUP.inv() * Rotation.from_quat(quat_xyzw) * _ROT_ZUP_FROM_YUP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock is harmless: the angles stay exact
        eul_rad = rot_y.as_euler(_WRITE_ROT_ORDER, degrees=False).reshape(f, j, 3)  # (F, J, 3)
    eul_deg = np.degrees(np.unwrap(eul_rad, axis=0))  # (F, J, 3)
    pos_cm = _yup_cm(trans_m)  # (F, J, 3)

    cols: list[FloatArray] = []
    for k in order:
        if six[k]:
            cols.append(pos_cm[:, k])
        cols.append(eul_deg[:, k])
    table = np.concatenate(cols, axis=1)  # (F, channels)
    table = _tidy(table, decimals)
    buf = io.StringIO()
    np.savetxt(buf, table, fmt=f"%.{decimals}f", delimiter=" ")
    out.write(buf.getvalue())
    return out.getvalue().encode("ascii")


def _tidy(values: FloatArray, decimals: int) -> FloatArray:
    """Values that would print as ``-0.000...`` become 0 so the text stays clean and byte-stable."""
    out = np.array(values, dtype=np.float64)
    out[np.abs(out) < 0.5 * 10.0**-decimals] = 0.0
    return out


def _yup_cm(v_m: FloatArray) -> FloatArray:
    v = np.asarray(v_m, dtype=np.float64)
    return cast("FloatArray", np.stack([v[..., 0], v[..., 2], -v[..., 1]], axis=-1) * _CM_PER_M)


def _default_end_site_m(sk: Skeleton, k: int) -> tuple[float, float, float]:
    off = sk.rest_offsets_m[k]
    n = float(np.linalg.norm(off))
    if n < 1e-9:
        return (0.0, 0.0, 0.05)
    v = off / n * max(0.05, 0.5 * n)
    return (float(v[0]), float(v[1]), float(v[2]))


# ----------------------------------------------------------------------------------------- reading


@dataclass
class _Joint:
    name: str
    parent: int
    offset: FloatArray
    channels: list[str] = field(default_factory=list)
    end_site: bool = False


def read_bvh(
    source: str | Path | bytes,
    *,
    scale_m: float | None = None,
    end_sites: bool = False,
) -> Motion:
    """Parse a BVH file (path or bytes) into a `Motion` on the file's own skeleton, Z up, metres.

    ``scale_m`` is the length of one file unit in metres. When not given it is inferred from the
    rest-pose height ``h`` of the skeleton (in file units): ``0.5 < h < 3`` metres, ``15 < h < 45``
    CMU units (`CMU_UNIT_M`), ``45 <= h < 90`` inches, ``90 <= h < 300`` centimetres,
    ``900 <= h < 3000`` millimetres. ``end_sites=True`` keeps every End Site as an extra leaf joint
    named ``<parent>_end`` (identity rotation), which gives e.g. the top of the head.
    The frame rate is ``1 / Frame Time``, rounded to an integer when within 0.1 % of one.
    """
    text = source.decode("utf-8", "replace") if isinstance(source, bytes) else Path(source).read_text("utf-8", "replace")
    head, sep, tail = text.partition("MOTION")
    if not sep:
        raise ValueError("not a BVH file: no MOTION section")
    joints = _parse_hierarchy(head)
    if not end_sites:
        joints = _without_end_sites(joints)
    frames, frame_time_s = _parse_motion(tail, sum(len(jt.channels) for jt in joints))

    offsets = np.array([jt.offset for jt in joints])  # (J, 3) file units, Y up
    if scale_m is None:
        scale_m = _guess_unit_m(joints, offsets)
    if not scale_m > 0:
        raise ValueError("scale_m must be positive")

    nf, nj = frames.shape[0], len(joints)
    trans = np.broadcast_to(offsets, (nf, nj, 3)).copy()  # (F, J, 3) file units, Y up
    rots = np.zeros((nf, nj, 4))  # (F, J, 4) xyzw, Y up
    rots[..., 3] = 1.0
    col = 0
    for k, jt in enumerate(joints):
        block = frames[:, col : col + len(jt.channels)]  # (F, n)
        col += len(jt.channels)
        pos_axes = [c[0].upper() for c in jt.channels if c.lower().endswith("position")]
        if pos_axes:
            for i, c in enumerate(jt.channels):
                if c.lower().endswith("position"):
                    trans[:, k, "XYZ".index(c[0].upper())] = block[:, i]
        rot_idx = [i for i, c in enumerate(jt.channels) if c.lower().endswith("rotation")]
        if rot_idx and nf:
            seq = "".join(jt.channels[i][0].upper() for i in rot_idx)
            rots[:, k] = Rotation.from_euler(seq, block[:, rot_idx], degrees=True).as_quat()

    to_zup = _ROT_ZUP_FROM_YUP
    rot_z = to_zup * Rotation.from_quat(rots.reshape(-1, 4)) * to_zup.inv()
    quat_xyzw = rot_z.as_quat().reshape(nf, nj, 4)  # (F, J, 4)
    quat_wxyz = quat_xyzw[..., [3, 0, 1, 2]]
    trans_m = (trans @ _ZUP_FROM_YUP.T) * scale_m  # (F, J, 3)
    skeleton = Skeleton(
        names=tuple(jt.name for jt in joints),
        parents=tuple(jt.parent for jt in joints),
        rest_offsets_m=(offsets @ _ZUP_FROM_YUP.T) * scale_m,
    )
    fps = 1.0 / frame_time_s
    if abs(fps - round(fps)) < 1e-3 * fps:
        fps = float(round(fps))
    return Motion(skeleton, fps, trans_m, quat_wxyz)


_TOKEN = re.compile(r"[{}]|[^\s{}]+")


def _parse_hierarchy(text: str) -> list[_Joint]:
    tokens = _TOKEN.findall(text)
    joints: list[_Joint] = []
    stack: list[int] = []
    pending: _Joint | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        up = tok.upper()
        if up in ("ROOT", "JOINT"):
            parent = stack[-1] if stack else -1
            pending = _Joint(tokens[i + 1], parent, np.zeros(3))
            i += 2
        elif up == "END":  # "End Site"
            parent = stack[-1]
            pending = _Joint(f"{joints[parent].name}_end", parent, np.zeros(3), end_site=True)
            i += 2
        elif tok == "{":
            if pending is None:
                raise ValueError("BVH hierarchy: unexpected '{'")
            joints.append(pending)
            stack.append(len(joints) - 1)
            pending = None
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif up == "OFFSET":
            joints[stack[-1]].offset = np.array([float(v) for v in tokens[i + 1 : i + 4]])
            i += 4
        elif up == "CHANNELS":
            n = int(tokens[i + 1])
            joints[stack[-1]].channels = tokens[i + 2 : i + 2 + n]
            i += 2 + n
        else:
            i += 1  # "HIERARCHY" and anything unknown
    if not joints or stack:
        raise ValueError("BVH hierarchy is empty or unbalanced")
    return joints


def _without_end_sites(joints: list[_Joint]) -> list[_Joint]:
    keep = [k for k, jt in enumerate(joints) if not jt.end_site]
    new_index = {old: new for new, old in enumerate(keep)}
    return [
        _Joint(joints[k].name, new_index.get(joints[k].parent, -1), joints[k].offset, joints[k].channels)
        for k in keep
    ]


def _parse_motion(text: str, num_channels: int) -> tuple[FloatArray, float]:
    m_frames = re.search(r"Frames:\s*(\d+)", text)
    m_time = re.search(r"Frame\s+Time:\s*([-+0-9.eE]+)", text)
    if m_frames is None or m_time is None:
        raise ValueError("BVH MOTION section lacks Frames or Frame Time")
    n = int(m_frames.group(1))
    frame_time_s = float(m_time.group(1))
    if not frame_time_s > 0:
        raise ValueError("BVH Frame Time must be positive")
    body = text[m_time.end() :]
    values = np.array(body.split(), dtype=np.float64) if num_channels else np.zeros(0)
    if num_channels == 0:
        return np.zeros((n, 0)), frame_time_s
    rows = values.size // num_channels
    if rows < n:
        raise ValueError(f"BVH declares {n} frames but holds {rows}")
    return values[: n * num_channels].reshape(n, num_channels), frame_time_s


def _guess_unit_m(joints: list[_Joint], offsets: FloatArray) -> float:
    pos = np.zeros_like(offsets)
    for k, jt in enumerate(joints):
        pos[k] = offsets[k] + (pos[jt.parent] if jt.parent >= 0 else 0.0)
    h = float(np.ptp(pos[:, 1])) if len(joints) > 1 else 0.0
    for lo, hi, unit in ((0.5, 3.0, 1.0), (15.0, 45.0, CMU_UNIT_M), (45.0, 90.0, 0.0254), (90.0, 300.0, 0.01), (900.0, 3000.0, 0.001)):
        if lo < h < hi:
            return unit
    return 1.0  # unknown: assume metres
