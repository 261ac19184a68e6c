"""A CMU walk (subject 131, start-walk-stop) retargeted onto the G1 and replayed in MuJoCo on Unitree's
official mesh-free model: within limits, on the ground, not skating, walking, legs apart."""

from __future__ import annotations

import io
from functools import lru_cache

import mujoco
import numpy as np
import pytest

from mocapd.formats.robot import write_g1_csv
from mocapd.pipeline.contacts import detect_contacts
from mocapd.pipeline.resample import resample_motion
from mocapd.pipeline.skeleton import Motion
from mocapd.robots.g1 import load_g1_model
from mocapd.robots.motion import RobotMotion
from mocapd.robots.retarget import retarget_to_g1
from tests.conftest import shared_file
from tests.support.cmu import cmu_motion

FPS = 30.0


@lru_cache(maxsize=4)
def _retargeted(take: str, variant: str = "g1_29dof_rev_1_0") -> tuple[Motion, RobotMotion]:
    motion = resample_motion(cmu_motion(shared_file(f"bvh/{take}.bvh")), FPS)
    return motion, retarget_to_g1(motion, detect_contacts(motion), variant=variant)


def _replay(model: mujoco.MjModel, qpos: np.ndarray, sites: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Site positions (F, S, 3) and the lowest foot-sphere bottom per frame (F,) on ``model``."""
    data = mujoco.MjData(model)
    site_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, s) for s in sites]
    foot_bodies = {
        mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{s}_ankle_roll_link") for s in ("left", "right")
    }
    spheres = [g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in foot_bodies]
    assert len(spheres) == 8
    out = np.zeros((qpos.shape[0], len(sites), 3))
    lowest = np.zeros(qpos.shape[0])
    for k, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        out[k] = data.site_xpos[site_ids]
        lowest[k] = min(data.geom_xpos[g][2] - model.geom_size[g][0] for g in spheres)
    return out, lowest


def _skate_cm_s(soles: np.ndarray) -> float:
    low = soles[..., 2] < 0.01  # (F, 2)
    both = low[1:] & low[:-1]
    speed = np.linalg.norm(np.diff(soles[..., :2], axis=0), axis=-1) * FPS  # (F-1, 2)
    return float(speed[both].mean() * 100.0) if both.any() else 0.0


@pytest.mark.parametrize("variant", ["g1_29dof_rev_1_0", "g1_23dof_rev_1_0"])
def test_replay_on_the_official_model(variant: str) -> None:
    official = mujoco.MjModel.from_xml_path(str(shared_file(f"g1/{variant}_nomesh.xml")))
    _, rm = _retargeted("cmu_131_02", variant)
    qpos = rm.qpos()
    assert qpos.shape[1] == official.nq
    lo, hi = official.jnt_range[1:, 0], official.jnt_range[1:, 1]
    outside = (qpos[:, 7:] < lo - 1e-4) | (qpos[:, 7:] > hi + 1e-4)  # the MJCF rounds ranges to 1e-5
    assert int(outside.any(axis=1).sum()) == 0
    soles, lowest = _replay(official, qpos, ["left_sole", "right_sole"])
    assert -lowest.min() * 1000.0 < 5.0  # sole penetration, mm
    assert _skate_cm_s(soles) < 5.0
    # the CSV, read back as a robot-learning tool would, replays to the same soles
    table = np.loadtxt(io.BytesIO(write_g1_csv(rm)), delimiter=",")  # (F, 36)
    if variant == "g1_29dof_rev_1_0":
        q_csv = np.concatenate([table[:, :3], table[:, [6, 3, 4, 5]], table[:, 7:]], axis=1)
        soles_csv, _ = _replay(official, q_csv, ["left_sole", "right_sole"])
        np.testing.assert_allclose(soles_csv, soles, atol=1e-4)


def test_cmu_walk_gives_a_walking_robot() -> None:
    motion, rm = _retargeted("cmu_131_02")
    # alternating single-support phases
    single = np.where(
        rm.contacts[:, 0] & ~rm.contacts[:, 1], 1, np.where(rm.contacts[:, 1] & ~rm.contacts[:, 0], 2, 0)
    )
    phases = [int(s) for s in single if s]
    switches = sum(1 for a, b in zip(phases, phases[1:], strict=False) if a != b)
    assert switches >= 4
    # the soles are on the ground in contact and lifted in swing
    official = mujoco.MjModel.from_xml_path(str(shared_file("g1/g1_29dof_rev_1_0_nomesh.xml")))
    soles, _ = _replay(official, rm.qpos(), ["left_sole", "right_sole"])
    for side in range(2):
        assert np.median(soles[rm.contacts[:, side], side, 2]) < 0.01
        assert np.percentile(soles[~rm.contacts[:, side], side, 2], 90) > 0.03
    # forward progress comparable to the scaled human's
    pelvis = motion.world_positions_m()[:, motion.skeleton.index("pelvis"), :2]  # (F, 2)
    human_m = np.linalg.norm(pelvis[-1] - pelvis[0])
    robot_m = np.linalg.norm(rm.root_pos_m[-1, :2] - rm.root_pos_m[0, :2])
    assert human_m > 1.0
    assert robot_m == pytest.approx(rm.quality["scale"]["leg"] * human_m, rel=0.1)


def test_cmu_walk_legs_never_interpenetrate() -> None:
    _, rm = _retargeted("cmu_131_02")
    model = load_g1_model(rm.variant)
    data = mujoco.MjData(model)
    side = {}
    for g in range(model.ngeom):
        body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, int(model.geom_bodyid[g])) or ""
        if any(p in body for p in ("hip", "knee", "ankle")):
            side[g] = body.split("_")[0]
    assert set(side.values()) == {"left", "right"}
    bad_frames = 0
    for q in rm.qpos():
        data.qpos[:] = q
        mujoco.mj_fwdPosition(model, data)
        contacts = data.contact[: data.ncon]
        if any(
            c.geom1 in side and c.geom2 in side and side[c.geom1] != side[c.geom2] and c.dist < -1e-3
            for c in contacts
        ):
            bad_frames += 1
    assert bad_frames == 0
    assert rm.quality["leg_self_collision_frames"] == 0
