"""Preparing an uploaded character: format, reader, checks, frame, bone mapping, rest pose, height.

`prepare_file` is what the service calls: it runs `prepare_bytes` in a child process (``python -m
mocapd.avatars.prepare``) with a memory and time limit, so a hostile or enormous file (a million
bones, a decompression bomb, a crash inside the FBX library) fails that one upload with a clear code
and leaves the server untouched. The child writes the prepared rig (``.npz``, see `rig.save_rig`)
and a JSON summary; nothing is kept when it fails.

This package reads files and does geometry; it never imports the motion pipeline, so the API may
use it (pure I/O parsing plus numpy).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from mocapd.avatars.errors import AvatarError
from mocapd.avatars.mapping import MAPPABLE, auto_map, has_fingers, validate_mapping
from mocapd.avatars.rig import Rig, load_rig, save_rig
from mocapd.domain.codes import is_error_code

__all__ = ["PreparedAvatar", "describe", "detect_format", "prepare_bytes", "prepare_file", "rest_pose_kind"]

FloatArray = NDArray[np.float64]

CHILD_TIMEOUT_S = 120.0
CHILD_MEMORY_BYTES = 3 * 1024**3
_FBX_BINARY_MAGIC = b"Kaydara FBX Binary  \x00"
_EXTENSIONS = {".fbx": "fbx", ".glb": "gltf", ".gltf": "gltf", ".vrm": "gltf"}


@dataclass
class PreparedAvatar:
    rig: Rig
    facts: dict[str, Any]  # the avatar object's prepared fields (format, bones, heightM, restPose, mapping...)


def detect_format(data: bytes, filename: str) -> str:
    """"fbx" or "gltf" from the bytes (the extension only decides between "unsupported" and "unreadable")."""
    ext = Path(filename).suffix.lower()
    head = data[:4096]
    if head.startswith(_FBX_BINARY_MAGIC):
        return "fbx"
    if head.startswith(b"glTF"):
        return "gltf"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if ext in (".fbx", "") and (b"FBXHeaderExtension" in head or stripped.startswith(b"; FBX")):
        return "fbx"
    if ext in (".gltf", ".vrm", "") and stripped.startswith(b"{"):
        return "gltf"
    if ext not in _EXTENSIONS:
        raise AvatarError(
            "avatar_format_unsupported",
            f"'{ext or filename}' files are not supported; upload FBX, glTF (.glb, .gltf) or VRM.",
        )
    raise AvatarError("avatar_unreadable", f"The file is not a {ext.lstrip('.').upper()} model.")


def _up_rotation(up_axis: str) -> FloatArray:
    """A rotation taking the file's up axis to +Z (a Y-up file's +Z front becomes -Y)."""
    sign = -1.0 if up_axis.startswith("-") else 1.0
    axis = up_axis[-1]
    if axis == "y":
        r = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    elif axis == "x":
        r = np.array([[0, -1.0, 0], [0, 0, -1.0], [1.0, 0, 0]])  # x -> z
    else:
        r = np.eye(3)
    if sign < 0:
        r = np.diag([1.0, -1.0, -1.0]) @ r
    return r


def _front_vector(front_axis: str) -> FloatArray:
    v = np.zeros(3)
    v["xyz".index(front_axis[-1])] = -1.0 if front_axis.startswith("-") else 1.0
    return v


def rest_pose_kind(pos: FloatArray, names: list[str], mapping: dict[str, str]) -> tuple[str, float]:
    """("t_pose" | "a_pose" | "other", arm angle below horizontal in degrees) from the rest pose."""
    index = {n: b for b, n in enumerate(names)}
    angles = []
    for side in ("l", "r"):
        d = pos[index[mapping[f"hand_{side}"]]] - pos[index[mapping[f"upperarm_{side}"]]]
        angles.append(math.degrees(math.atan2(-d[2], float(np.linalg.norm(d[:2])))))
    angle = float(np.mean(angles))
    if abs(angle) <= 15.0:
        return "t_pose", angle
    if 15.0 < angle <= 65.0:
        return "a_pose", angle
    return "other", angle


def _deform_counts(rig: Rig) -> NDArray[np.int64]:
    counts = np.zeros(rig.num_bones, dtype=np.int64)
    for m in rig.meshes:
        used = m.weights > 1e-6
        np.add.at(counts, m.joints[used], 1)
    return counts


def describe(rig: Rig, mapping: dict[str, str], warnings: list[str]) -> dict[str, Any]:
    pos = rig.norm_positions()
    kind, angle = rest_pose_kind(pos, rig.names, mapping)
    height = rig.height_m()
    return {
        "format": rig.format,
        "bones": rig.num_bones,
        "heightM": round(height, 4),
        "restPose": kind,
        "armAngleDeg": round(angle, 1),
        "mapping": {k: mapping[k] for k in MAPPABLE if k in mapping},
        "unmapped": [k for k in MAPPABLE if k not in mapping],
        "fingers": has_fingers(rig.names),
        "meshes": len(rig.meshes),
        "vertices": int(sum(len(m.positions) for m in rig.meshes)),
        "unitM": rig.unit_m,
        "upAxis": rig.up_axis,
        "warnings": warnings,
    }


def _norm_points(rig: Rig, p: FloatArray) -> FloatArray:
    return cast("FloatArray", p @ rig.to_norm[:3, :3].T + rig.to_norm[:3, 3])


def prepare_bytes(data: bytes, filename: str) -> PreparedAvatar:
    """Read, check and map a character file (in this process; see `prepare_file`)."""
    if not data:
        raise AvatarError("avatar_unreadable", "The file is empty.")
    fmt = detect_format(data, filename)
    if fmt == "fbx":
        from mocapd.avatars.read_fbx import read_fbx

        rig = read_fbx(data, filename)
    else:
        from mocapd.avatars.read_gltf import read_gltf

        rig = read_gltf(data, filename)
    if not np.isfinite(rig.rest_local).all() or any(not np.isfinite(m.positions).all() for m in rig.meshes):
        raise AvatarError("avatar_unreadable", "The model's transforms hold NaN or infinite numbers.")
    if rig.num_bones < 2:
        raise AvatarError("avatar_not_humanoid", "The skeleton has a single bone; a humanoid needs a full body rig.")
    # Provisional frame: Z up, metres.
    p = np.eye(4)
    p[:3, :3] = _up_rotation(rig.up_axis) * rig.unit_m
    rig.to_norm = p
    pos = rig.norm_positions()
    fallback = _up_rotation(rig.up_axis) @ _front_vector(rig.front_axis)
    fallback[2] = 0.0
    fallback = fallback / (np.linalg.norm(fallback) or 1.0)
    result = auto_map(rig.names, rig.parents, pos, _deform_counts(rig), vrm_humanoid=rig.vrm_humanoid,
                      fallback_forward=fallback)
    # Turn about Z so that the character faces -Y, then put its rest-pose ground at z = 0.
    f = result.forward
    yaw = math.atan2(-f[0], -f[1])  # rotation by yaw about Z takes f to -Y
    c, s = math.cos(yaw), math.sin(yaw)
    rz = np.eye(4)
    rz[:2, :2] = [[c, -s], [s, c]]
    rig.to_norm = rz @ p
    if rig.meshes:
        ground = min(float(_norm_points(rig, m.positions)[:, 2].min()) for m in rig.meshes)
    else:
        ground = float(rig.norm_positions()[:, 2].min())
    rig.to_norm[2, 3] -= ground
    mapping = validate_mapping(result.mapping, rig.names, rig.parents)
    warnings = list(rig.warnings)
    if not rig.meshes:
        warnings.append("the file has no skinned mesh: the output carries the skeleton only")
    facts = describe(rig, mapping, warnings)
    facts["mappingMethod"] = result.method
    return PreparedAvatar(rig, facts)


# ------------------------------------------------------------------------------------ child process
def _limit_child() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))


def prepare_file(source: Path, filename: str, rig_out: Path, *, timeout_s: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Prepare ``source`` in a child process; writes the rig to ``rig_out`` and returns the facts.

    Raises `AvatarError` with the reader's code, or ``avatar_unreadable`` when the child dies
    (crash, memory limit, timeout)."""
    with tempfile.TemporaryDirectory(prefix="mocapd-avatar-") as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "mocapd.avatars.prepare", str(source), filename, str(rig_out), str(summary)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, preexec_fn=_limit_child,  # noqa: PLW1509
                                  env={**os.environ, "PYTHONFAULTHANDLER": "0"}, check=False)
        except subprocess.TimeoutExpired as exc:
            rig_out.unlink(missing_ok=True)
            raise AvatarError("avatar_unreadable", f"Reading the model took longer than {timeout_s:g} s.") from exc
        if proc.returncode != 0 or not summary.exists():
            rig_out.unlink(missing_ok=True)
            raise AvatarError("avatar_unreadable", "The model could not be read (the reader stopped on it).")
        out = json.loads(summary.read_text())
    if "error" in out:
        rig_out.unlink(missing_ok=True)
        err = out["error"]
        code = err["code"] if is_error_code(err["code"]) else "avatar_unreadable"
        raise AvatarError(code, err["message"], details=err.get("details") or {})
    return dict(out["facts"])


def remap(rig_bytes: bytes, mapping: dict[str, str]) -> dict[str, Any]:
    """Facts for a user-corrected mapping (validated against the prepared rig)."""
    rig = load_rig(rig_bytes)
    checked = validate_mapping(mapping, rig.names, rig.parents)
    return describe(rig, checked, list(rig.warnings))


def _child_main(argv: list[str]) -> int:  # pragma: no cover - exercised through prepare_file
    source, filename, rig_out, summary = argv
    try:
        prepared = prepare_bytes(Path(source).read_bytes(), filename)
        Path(rig_out).write_bytes(save_rig(prepared.rig))
        out: dict[str, Any] = {"facts": prepared.facts}
    except AvatarError as exc:
        out = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
    except MemoryError:
        out = {"error": {"code": "avatar_unreadable", "message": "The model needs more memory than a character may use."}}
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, RecursionError, np.linalg.LinAlgError) as exc:
        out = {"error": {"code": "avatar_unreadable", "message": f"The model could not be read ({type(exc).__name__})."}}
    Path(summary).write_text(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: the FBX binding must not release its objects (see read_fbx)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_child_main(sys.argv[1:]))
