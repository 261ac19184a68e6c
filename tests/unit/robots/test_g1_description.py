"""The project's G1 description against Unitree's official URDF and MJCF files (read here only)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from mocapd.robots.g1 import (
    G1_23DOF_INVALID_SDK_SLOTS,
    G1_29DOF_JOINT_NAMES,
    VARIANTS,
    build_mjcf,
    g1_description,
    load_g1_model,
    quat_wxyz_from_rpy,
)
from tests.conftest import shared_file


def _urdf_joints(variant: str) -> list[dict[str, object]]:
    root = ET.parse(shared_file(f"g1/{variant}.urdf")).getroot()
    out = []
    for j in root.findall("joint"):
        if j.get("type") != "revolute":
            continue
        origin = j.find("origin")
        limit = j.find("limit")
        assert origin is not None and limit is not None
        out.append(
            {
                "name": j.get("name"),
                "parent": j.find("parent").get("link"),  # type: ignore[union-attr]
                "child": j.find("child").get("link"),  # type: ignore[union-attr]
                "xyz": [float(v) for v in origin.get("xyz", "0 0 0").split()],
                "rpy": [float(v) for v in origin.get("rpy", "0 0 0").split()],
                "axis": [float(v) for v in j.find("axis").get("xyz").split()],  # type: ignore[union-attr]
                "lower": float(limit.get("lower")),  # type: ignore[arg-type]
                "upper": float(limit.get("upper")),  # type: ignore[arg-type]
                "velocity": float(limit.get("velocity")),  # type: ignore[arg-type]
                "effort": float(limit.get("effort")),  # type: ignore[arg-type]
            }
        )
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_joints_agree_with_the_official_urdf(variant: str) -> None:
    desc = g1_description(variant)
    official = _urdf_joints(variant)
    assert [j["name"] for j in official] == list(desc.joint_names)
    for ours, theirs in zip(desc.joints, official, strict=True):
        assert (ours.parent, ours.child) == (theirs["parent"], theirs["child"]), ours.name
        np.testing.assert_allclose(ours.axis, theirs["axis"], atol=1e-9, err_msg=ours.name)
        np.testing.assert_allclose(ours.origin_xyz_m, theirs["xyz"], atol=1e-9, err_msg=ours.name)
        np.testing.assert_allclose(ours.origin_rpy_rad, theirs["rpy"], atol=1e-9, err_msg=ours.name)
        assert ours.lower_rad == pytest.approx(theirs["lower"], abs=1e-9)
        assert ours.upper_rad == pytest.approx(theirs["upper"], abs=1e-9)
        assert ours.velocity_rad_s == pytest.approx(theirs["velocity"])
        assert ours.effort_nm == pytest.approx(theirs["effort"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_joint_order_and_ranges_agree_with_the_official_mjcf(variant: str) -> None:
    official = mujoco.MjModel.from_xml_path(str(shared_file(f"g1/{variant}_nomesh.xml")))
    ours = load_g1_model(variant)
    names = [mujoco.mj_id2name(official, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(1, official.njnt)]
    assert names == list(g1_description(variant).joint_names)
    assert ours.nq == official.nq and ours.nv == official.nv
    np.testing.assert_allclose(
        ours.jnt_range[1:], official.jnt_range[1:], atol=1e-5
    )  # the MJCF rounds to 5 decimals
    np.testing.assert_allclose(ours.jnt_axis[1:], official.jnt_axis[1:], atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_kinematics_matches_the_official_mjcf_within_1_mm(variant: str) -> None:
    official = mujoco.MjModel.from_xml_path(str(shared_file(f"g1/{variant}_nomesh.xml")))
    ours = load_g1_model(variant)
    desc = g1_description(variant)
    d_off, d_ours = mujoco.MjData(official), mujoco.MjData(ours)
    rng = np.random.default_rng(7)
    bodies = list(desc.links)
    sites = [f"{s}_{p}" for s in ("left", "right") for p in ("sole", "toe", "heel")]
    worst_m = 0.0
    for _ in range(40):
        q = np.concatenate(
            [rng.uniform(-1, 1, 3), rng.normal(size=4), rng.uniform(desc.lower_rad, desc.upper_rad)]
        )
        q[3:7] /= np.linalg.norm(q[3:7])
        for m, d in ((official, d_off), (ours, d_ours)):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
        for b in bodies:
            i_off = mujoco.mj_name2id(official, mujoco.mjtObj.mjOBJ_BODY, b)
            i_ours = mujoco.mj_name2id(ours, mujoco.mjtObj.mjOBJ_BODY, b)
            worst_m = max(worst_m, float(np.linalg.norm(d_off.xpos[i_off] - d_ours.xpos[i_ours])))
        for s in sites:
            i_off = mujoco.mj_name2id(official, mujoco.mjtObj.mjOBJ_SITE, s)
            i_ours = mujoco.mj_name2id(ours, mujoco.mjtObj.mjOBJ_SITE, s)
            worst_m = max(worst_m, float(np.linalg.norm(d_off.site_xpos[i_off] - d_ours.site_xpos[i_ours])))
    assert worst_m < 1e-3


def test_zero_pose_stands_on_the_ground() -> None:
    model = load_g1_model()
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)  # qpos0: pelvis at the body's default height
    for side in ("left", "right"):
        z = data.site_xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, f"{side}_sole")][2]
        assert 0.0 <= z < 0.003


def test_23dof_is_the_29dof_without_the_six_invalid_slots() -> None:
    d23 = g1_description("g1_23dof_rev_1_0")
    expected = [n for i, n in enumerate(G1_29DOF_JOINT_NAMES) if i not in G1_23DOF_INVALID_SDK_SLOTS]
    assert list(d23.joint_names) == expected
    assert {G1_29DOF_JOINT_NAMES[i] for i in G1_23DOF_INVALID_SDK_SLOTS} == {
        "waist_roll_joint", "waist_pitch_joint", "left_wrist_pitch_joint", "left_wrist_yaw_joint",
        "right_wrist_pitch_joint", "right_wrist_yaw_joint",
    }  # fmt: skip


def test_rpy_convention_matches_scipy() -> None:
    from scipy.spatial.transform import Rotation

    rpy = (0.3, -0.2, 1.1)
    q = quat_wxyz_from_rpy(*rpy)
    ref = Rotation.from_euler("xyz", rpy).as_quat()  # extrinsic x then y then z = Rz Ry Rx
    np.testing.assert_allclose(np.abs(np.dot(q, ref[[3, 0, 1, 2]])), 1.0, atol=1e-12)


def test_unknown_variant_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown G1 variant"):
        g1_description("g1_99dof")


def test_mjcf_is_mesh_free_and_has_collision_geoms_and_sites() -> None:
    xml = build_mjcf()
    assert "mesh" not in xml
    model = load_g1_model()
    kinds = {int(t) for t in model.geom_type}
    assert mujoco.mjtGeom.mjGEOM_CAPSULE in kinds and mujoco.mjtGeom.mjGEOM_BOX in kinds
    for s in ("left_sole", "right_sole", "left_hand", "right_hand"):
        assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, s) >= 0
