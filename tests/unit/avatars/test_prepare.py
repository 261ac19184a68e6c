"""Preparing characters: every shared rig maps as listed here, with its rest pose, height and facing;
the naming conventions map by name, a rig with meaningless names by topology; bad files get their code."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pygltflib
import pytest

from mocapd.avatars.errors import AvatarError
from mocapd.avatars.mapping import auto_map, validate_mapping
from mocapd.avatars.prepare import prepare_bytes, prepare_file
from mocapd.avatars.rig import load_rig, save_rig
from tests.conftest import shared_file
from tests.support.rigs import RIGS, humanoid, quadruped, rig_bytes, skinned_glb

_LIMBS = ("clavicle", "upperarm", "lowerarm", "hand", "thigh", "calf", "foot", "ball")


def _sided(table: dict[str, str]) -> dict[str, str]:
    """Expand ``{"upperarm": "UpperArm.{S}"}`` into both sides (``{S}``/``{s}``/``{Side}`` = L/l/Left)."""
    out = {}
    for k, v in table.items():
        if k in _LIMBS:
            for side, up, low, word in (("l", "L", "l", "Left"), ("r", "R", "r", "Right")):
                out[f"{k}_{side}"] = v.format(S=up, s=low, Side=word)
        else:
            out[k] = v
    return out


EXPECTED = {
    "quaternius_human.fbx": _sided({
        "pelvis": "Hips", "spine_01": "Spine", "spine_02": "Spine1", "spine_03": "Spine2", "neck_01": "Neck",
        "head": "Head", "clavicle": "{Side}Shoulder", "upperarm": "{Side}Arm", "lowerarm": "{Side}ForeArm",
        "hand": "{Side}Hand", "thigh": "{Side}UpLeg", "calf": "{Side}Leg", "foot": "{Side}Foot", "ball": "{Side}ToeBase",
    }),
    "quaternius_female.fbx": {k: v for k, v in _sided({
        "pelvis": "Hips", "spine_01": "Abdomen", "spine_03": "Torso", "neck_01": "Neck", "head": "Head",
        "clavicle": "Shoulder.{S}", "upperarm": "UpperArm.{S}", "lowerarm": "LowerArm.{S}", "hand": "Palm.{S}",
        "thigh": "UpperLeg.{S}", "calf": "LowerLeg.{S}", "foot": "Foot.{S}", "ball": "",
    }).items() if v},
    "godette.vrm": _sided({
        "pelvis": "pelvis_Armature", "spine_01": "tummy_Armature", "spine_03": "chest_Armature",
        "neck_01": "neck_Armature", "head": "head_Armature", "clavicle": "shoulder.{s}_Armature",
        "upperarm": "upper_arm.{s}_Armature", "lowerarm": "lowerarm.{s}_Armature", "hand": "hand.{s}_Armature",
        "thigh": "thigh.{s}_Armature", "calf": "shin.{s}_Armature", "foot": "foot.{s}_Armature",
        "ball": "toes.{s}_Armature",
    }),
    "rigged_figure.glb": {k: v for k, v in _sided({
        "pelvis": "torso_joint_1", "spine_01": "torso_joint_2", "spine_03": "torso_joint_3",
        "neck_01": "neck_joint_1", "head": "neck_joint_2", "clavicle": "", "upperarm": "arm_joint_{S}_1",
        "lowerarm": "arm_joint_{S}_2", "hand": "arm_joint_{S}_3", "thigh": "leg_joint_{S}_1",
        "calf": "leg_joint_{S}_2", "foot": "leg_joint_{S}_3", "ball": "leg_joint_{S}_5",
    }).items() if v},
    "mannequiny.glb": _sided({
        "pelvis": "pelvis", "spine_01": "spine_01", "spine_03": "spine_02", "neck_01": "neck_01", "head": "head",
        "clavicle": "clavicle.{s}", "upperarm": "upperarm.{s}", "lowerarm": "lowerarm.{s}", "hand": "hand.{s}",
        "thigh": "thigh.{s}", "calf": "calf.{s}", "foot": "foot.{s}", "ball": "ball.{s}",
    }),
    "m2m_male.glb": _sided({
        "pelvis": "pelvis", "spine_01": "spine_01", "spine_02": "spine_02", "spine_03": "spine_03",
        "neck_01": "neck_01", "head": "head", "clavicle": "clavicle_{s}", "upperarm": "upperarm_{s}",
        "lowerarm": "lowerarm_{s}", "hand": "hand_{s}", "thigh": "thigh_{s}", "calf": "calf_{s}",
        "foot": "foot_{s}", "ball": "ball_{s}",
    }),
}  # fmt: skip
# rest pose, height in metres (as authored), mapping method
FACTS = {
    "quaternius_human.fbx": ("t_pose", (5.2, 5.7), "names"),
    "quaternius_female.fbx": ("t_pose", (4.4, 4.8), "names"),
    "godette.vrm": ("t_pose", (1.45, 1.55), "vrm"),
    "rigged_figure.glb": ("a_pose", (1.4, 1.5), "topology"),
    "mannequiny.glb": ("t_pose", (1.75, 1.85), "names"),
    "m2m_male.glb": ("t_pose", (1.78, 1.88), "names"),
}


@pytest.fixture(scope="module")
def prepared() -> dict[str, object]:
    return {name: prepare_bytes(rig_bytes(name), name) for name in RIGS}


@pytest.mark.parametrize("name", RIGS)
def test_shared_rig_prepares_with_the_expected_mapping(name: str, prepared: dict[str, object]) -> None:
    p = prepared[name]
    facts = p.facts  # type: ignore[attr-defined]
    assert facts["mapping"] == EXPECTED[name]
    pose, (lo, hi), method = FACTS[name]
    assert facts["restPose"] == pose and lo < facts["heightM"] < hi and facts["mappingMethod"] == method
    assert facts["bones"] == len(json.loads(shared_file("avatars/inventory.json").read_text())[name]["bones"])
    # mocapd's frame: the character faces -Y (toes ahead of the ankles), left hand at +X, feet on z = 0
    rig = p.rig  # type: ignore[attr-defined]
    pos = rig.norm_positions()
    ix = {n: i for i, n in enumerate(rig.names)}
    m = facts["mapping"]
    assert pos[ix[m["hand_l"]], 0] > 0.2 * facts["heightM"] > 0 > pos[ix[m["hand_r"]], 0]
    if "ball_l" in m:
        assert pos[ix[m["ball_l"]], 1] < pos[ix[m["foot_l"]], 1]
    verts = np.concatenate([m_.positions @ rig.to_norm[:3, :3].T + rig.to_norm[:3, 3] for m_ in rig.meshes])
    assert abs(verts[:, 2].min()) < 1e-6
    assert load_rig(save_rig(rig)).names == rig.names


def test_vrm_table_is_the_truth() -> None:
    inv = json.loads(shared_file("avatars/inventory.json").read_text())["godette.vrm"]["vrm_humanoid"]
    facts = prepare_bytes(rig_bytes("godette.vrm"), "godette.vrm").facts
    assert facts["mapping"]["upperarm_l"] == inv["leftUpperArm"] and facts["mapping"]["calf_r"] == inv["rightLowerLeg"]


CONVENTIONS = {
    "mixamo": {n: f"mixamorig:{n}" for n in ("Hips", "Spine", "Neck", "Head")} | {"Chest": "mixamorig:Spine2"}
    | {f"{s}{a}": f"mixamorig:{s}{b}" for s in ("Left", "Right") for a, b in (
        ("Shoulder", "Shoulder"), ("UpperArm", "Arm"), ("LowerArm", "ForeArm"), ("Hand", "Hand"),
        ("UpperLeg", "UpLeg"), ("LowerLeg", "Leg"), ("Foot", "Foot"), ("Toes", "ToeBase"))},
    "unreal": {"Hips": "pelvis", "Spine": "spine_01", "Chest": "spine_03", "Neck": "neck_01", "Head": "head"}
    | {f"{s}{a}": f"{b}_{s[0].lower()}" for s in ("Left", "Right") for a, b in (
        ("Shoulder", "clavicle"), ("UpperArm", "upperarm"), ("LowerArm", "lowerarm"), ("Hand", "hand"),
        ("UpperLeg", "thigh"), ("LowerLeg", "calf"), ("Foot", "foot"), ("Toes", "ball"))},
    "unity": {},
    "rokoko": {"Spine": "Spine1", "Chest": "Spine4"} | {f"{s}{a}": f"{s}{b}" for s in ("Left", "Right") for a, b in (
        ("UpperArm", "Arm"), ("LowerArm", "ForeArm"), ("UpperLeg", "Thigh"), ("LowerLeg", "Shin"), ("Toes", "Toe"))},
    "character_creator": {"Hips": "CC_Base_Hip", "Spine": "CC_Base_Waist", "Chest": "CC_Base_Spine02",
                          "Neck": "CC_Base_NeckTwist01", "Head": "CC_Base_Head"}
    | {f"{s}{a}": f"CC_Base_{s[0]}_{b}" for s in ("Left", "Right") for a, b in (
        ("Shoulder", "Clavicle"), ("UpperArm", "Upperarm"), ("LowerArm", "Forearm"), ("Hand", "Hand"),
        ("UpperLeg", "Thigh"), ("LowerLeg", "Calf"), ("Foot", "Foot"), ("Toes", "ToeBase"))},
    "rigify": {"Hips": "DEF-spine", "Spine": "DEF-spine.001", "Chest": "DEF-spine.003", "Neck": "DEF-spine.004",
               "Head": "DEF-spine.006"}
    | {f"{s}{a}": f"DEF-{b}.{s[0]}" for s in ("Left", "Right") for a, b in (
        ("Shoulder", "shoulder"), ("UpperArm", "upper_arm"), ("LowerArm", "forearm"), ("Hand", "hand"),
        ("UpperLeg", "thigh"), ("LowerLeg", "shin"), ("Foot", "foot"), ("Toes", "toe"))},
    "vroid": {n: f"J_Bip_C_{n}" for n in ("Hips", "Spine", "Chest", "Neck", "Head")}
    | {f"{s}{a}": f"J_Bip_{s[0]}_{a if a != 'Toes' else 'ToeBase'}" for s in ("Left", "Right")
       for a in ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot", "Toes")},
    "generic": {n: f"bone_{i:02d}" for i, (n, _, _) in enumerate(humanoid())},
}
_ROLE = {"Hips": "pelvis", "Spine": "spine_01", "Chest": "spine_03", "Neck": "neck_01", "Head": "head"} | {
    f"{s}{a}": f"{b}_{s[0].lower()}" for s in ("Left", "Right") for a, b in (
        ("Shoulder", "clavicle"), ("UpperArm", "upperarm"), ("LowerArm", "lowerarm"), ("Hand", "hand"),
        ("UpperLeg", "thigh"), ("LowerLeg", "calf"), ("Foot", "foot"), ("Toes", "ball"))}


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_naming_conventions_map(convention: str) -> None:
    names = CONVENTIONS[convention]
    facts = prepare_bytes(skinned_glb(humanoid(names)), "c.glb").facts
    expected = {_ROLE[n]: names.get(n, n) for n in _ROLE}
    if convention == "generic":  # topology finds the same joints; the neck/head pair is the chain above the chest
        assert facts["mappingMethod"] == "topology"
    assert facts["mapping"] == expected


def test_mixamo_prefix_on_a_real_rig() -> None:
    rig = prepare_bytes(rig_bytes("quaternius_human.fbx"), "h.fbx").rig
    names = [f"mixamorig:{n}" for n in rig.names]
    result = auto_map(names, rig.parents, rig.norm_positions(), np.ones(rig.num_bones, dtype=np.int64),
                      vrm_humanoid=None, fallback_forward=np.array([0.0, -1.0, 0.0]))
    assert result.mapping["upperarm_l"] == "mixamorig:LeftArm" and result.mapping["calf_r"] == "mixamorig:RightLeg"


def test_user_mapping_is_validated() -> None:
    rig = prepare_bytes(rig_bytes("m2m_male.glb"), "m.glb").rig
    good = dict(EXPECTED["m2m_male.glb"])
    assert validate_mapping(good, rig.names, rig.parents) == good
    cases = [
        ({**good, "hand_r": "hand_l"}, "hand_l"),  # a bone mapped twice
        ({**good, "calf_l": "pelvis"}, "pelvis"),  # a child mapped above its parent
        ({k: v for k, v in good.items() if k != "foot_r"}, "foot_r"),  # a required bone missing
        ({**good, "tail": "pelvis"}, "tail"),  # not a default bone
        ({**good, "head": "no_such_bone"}, "no_such_bone"),
    ]
    for mapping, named in cases:
        with pytest.raises(AvatarError) as err:
            validate_mapping(mapping, rig.names, rig.parents)
        assert err.value.code == "avatar_mapping_invalid" and named in err.value.message


def _glb_without_skin() -> bytes:
    g = pygltflib.GLTF2.load_from_bytes(skinned_glb(humanoid()))
    g.skins = []
    g.nodes[-1].skin = None
    return b"".join(g.save_to_bytes())


def _million_bones() -> bytes:
    doc = {"asset": {"version": "2.0"}, "nodes": [{} for _ in range(1_000_000)],
           "skins": [{"joints": list(range(1_000_000))}]}
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    return b"glTF" + struct.pack("<II", 2, 20 + len(text)) + struct.pack("<II", len(text), 0x4E4F534A) + text


BAD = {
    "not_a_model.fbx": (lambda: os.urandom(4096), "avatar_unreadable"),
    "video.glb": (lambda: shared_file("video/sports2d_demo.mp4").read_bytes()[:65536], "avatar_unreadable"),
    "model.obj": (lambda: b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "avatar_format_unsupported"),
    "truncated.fbx": (lambda: rig_bytes("quaternius_human.fbx")[:1_000_000], "avatar_unreadable"),
    "no_skin.glb": (_glb_without_skin, "avatar_no_skeleton"),
    "quadruped.glb": (lambda: skinned_glb(quadruped()), "avatar_not_humanoid"),
    "single_bone.glb": (lambda: skinned_glb([("Hips", -1, (0.0, 1.0, 0.0))]), "avatar_not_humanoid"),
    "nan.glb": (lambda: skinned_glb(humanoid(), nan_in=3), "avatar_unreadable"),
    "million_bones.glb": (_million_bones, "avatar_unreadable"),
    "empty.vrm": (lambda: b"", "avatar_unreadable"),
}


@pytest.mark.parametrize("filename", sorted(BAD))
def test_bad_files_get_a_specific_code(filename: str) -> None:
    make, code = BAD[filename]
    with pytest.raises(AvatarError) as err:
        prepare_bytes(make(), filename)
    assert err.value.code == code, err.value.message


def test_child_process_prepares_and_refuses(tmp_path: Path) -> None:
    src = shared_file("avatars/quaternius_female.fbx")
    out = tmp_path / "rig.npz"
    facts = prepare_file(src, src.name, out)
    assert facts["mapping"] == EXPECTED["quaternius_female.fbx"] and load_rig(out.read_bytes()).num_bones == 42
    bad = tmp_path / "cut.fbx"
    bad.write_bytes(src.read_bytes()[:500_000])
    out.unlink()
    with pytest.raises(AvatarError) as err:
        prepare_file(bad, bad.name, out)
    assert err.value.code == "avatar_unreadable" and not out.exists()
