"""Re-exports: a completed job's stored motion becomes a new job (own id, parentJobId) for another frame
rate, target or mocap type, without the pose model, charged ceil(duration / 10) through the same queue,
lease and ledger."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mocapd.db.engine import Database
from mocapd.formats.bvh import write_bvh
from mocapd.formats.motion_npz import read_motion_npz
from mocapd.pipeline.run import export_motion
from mocapd.storage import open_store, private_key
from mocapd.worker.loop import Worker
from mocapd.worker.processor import PipelineProcessor
from mocapd.worker.runner import StageRunner
from tests.conftest import shared_file
from tests.integration.api.conftest import Api

pytestmark = pytest.mark.slow

TRIM = (0.4, 1.45)  # 1.05 s of cam01: a re-export costs ceil(1.05 / 10) = 1


@pytest.fixture
def worker(api: Api, tmp_path: Path) -> Iterator[Worker]:
    db = Database(api.settings.resolved_database_url)
    runner = StageRunner(db, open_store(api.settings), PipelineProcessor(), lease_s=60, retry_backoff_s=0.1,
                         job_timeout_s=600, progress_interval_s=0.2, work_dir=tmp_path)
    yield Worker(db, runner, lease_s=60, heartbeat_s=5, retry_backoff_s=0.1)
    db.dispose()


def _job(api: Api, job_id: str) -> dict:  # type: ignore[type-arg]
    return api.client.get(f"/api/v1/mocap/jobs/{job_id}", headers=api.headers()).json()["data"]["job"]  # type: ignore[no-any-return]


def _file(api: Api, job_id: str, name: str) -> bytes:
    r = api.client.get(f"/api/v1/mocap/jobs/{job_id}/artifacts/{name}", headers=api.headers())
    assert r.status_code == 200, r.text
    return r.content


def test_reexport_reuses_the_stored_motion_without_the_pose_model(
    api: Api, worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = shared_file("pose2sim_balancing/cam01.mp4").read_bytes()
    parent = api.create(trimStartSec=TRIM[0], trimEndSec=TRIM[1], exportFps=30, targetIds=["default"])
    api.upload(parent, data)
    assert api.complete(parent["jobId"]).status_code == 200  # type: ignore[attr-defined]
    early = api.client.post(f"/api/v1/mocap/jobs/{parent['jobId']}/exports", json={}, headers=api.headers())
    assert early.status_code == 409 and early.json()["code"] == "job_not_completed"
    assert str(worker.run_once()) in ("completed", "Outcome.COMPLETED")
    store = open_store(api.settings)
    stored_key = private_key(parent["jobId"], "motion.npz")
    assert store.exists(stored_key)  # kept with the job...
    names = [f["name"] for f in api.client.get(f"/api/v1/mocap/jobs/{parent['jobId']}/result",
                                               headers=api.headers()).json()["data"]["outputs"][0]["files"]]
    assert "motion.npz" not in names  # ... and never served

    import mocapd.pipeline.pose as pose

    def no_pose_model(*_: object, **__: object) -> None:
        raise AssertionError("a re-export ran the pose model")

    monkeypatch.setattr(pose.PoseDetector, "__init__", no_pose_model)
    for family in list(pose.DETECTORS):
        monkeypatch.setitem(pose.DETECTORS, family, no_pose_model)
    with pytest.raises(AssertionError, match="pose model"):
        pose.open_detector()  # the trap works: any detection from here on fails its job

    _, other_key = api.new_account("someone-else")
    foreign = api.client.post(f"/api/v1/mocap/jobs/{parent['jobId']}/exports", json={}, headers=api.headers(other_key))
    assert foreign.status_code == 404

    r = api.client.post(f"/api/v1/mocap/jobs/{parent['jobId']}/exports",
                        json={"exportFps": 60, "targetIds": ["default", "unitree_g1"]},
                        headers={**api.headers(), "Idempotency-Key": "reexport-1"})
    assert r.status_code == 201, r.text
    child = r.json()["data"]["job"]
    again = api.client.post(f"/api/v1/mocap/jobs/{parent['jobId']}/exports",
                            json={"exportFps": 60, "targetIds": ["default", "unitree_g1"]},
                            headers={**api.headers(), "Idempotency-Key": "reexport-1"})
    assert again.json()["data"]["job"]["id"] == child["id"]  # a retried request makes no second job
    duration = TRIM[1] - TRIM[0]
    price = max(1, math.ceil(duration / 10))
    assert child["id"] != parent["jobId"] and child["parentJobId"] == parent["jobId"]
    assert child["sourceType"] == "reexport" and child["status"] == "queued"
    assert child["billing"]["heldVCredits"] == price and child["exportFps"] == 60
    assert str(worker.run_once()) in ("completed", "Outcome.COMPLETED")
    done = _job(api, child["id"])
    assert done["status"] == "completed" and done["billing"]["chargedVCredits"] == price

    # Its motion is the parent's stored motion resampled to 60 fps, written by the same writer.
    kept = Path(api.settings.data_dir) / "kept.npz"
    store.download_to(stored_key, kept)
    expected, _ = export_motion(read_motion_npz(kept).motion, 60)
    assert _file(api, child["id"], "motion.bvh") == write_bvh(expected)
    g1 = _file(api, child["id"], "g1_motion.json")
    assert b'"fps": 60' in g1 or b'"fps":60' in g1
    stored = read_motion_npz(kept).motion
    # The stored motion is the parent's own: exported at the parent's 30 fps it gives the parent's file.
    assert _file(api, parent["jobId"], "motion.bvh") == write_bvh(export_motion(stored, 30)[0])
    assert expected.fps == 60 and abs(expected.num_frames - 2 * export_motion(stored, 30)[0].num_frames) <= 1

    ledger = api.client.get("/api/v1/account/ledger", params={"jobId": child["id"]}, headers=api.headers())
    items = ledger.json()["data"]["items"]
    assert sorted((e["type"], e["amount"], e["jobId"], e["parentJobId"]) for e in items) == [
        ("capture", price, child["id"], parent["jobId"]), ("hold", price, child["id"], parent["jobId"])]

    # Upper body only: solved again from the stored joints, still no pose model.
    r = api.client.post(f"/api/v1/mocap/jobs/{child['id']}/exports", json={"mocapType": "upper_body", "exportFps": 24},
                        headers=api.headers())
    assert r.status_code == 201, r.text
    upper = r.json()["data"]["job"]
    assert upper["parentJobId"] == child["id"] and upper["mocapType"] == "upper_body"
    assert str(worker.run_once()) in ("completed", "Outcome.COMPLETED")
    assert _job(api, upper["id"])["status"] == "completed"
    bvh = _file(api, upper["id"], "motion.bvh").decode()
    frames = int(bvh.split("Frames:")[1].split()[0])
    assert abs(frames - round(expected.num_frames * 24 / 60)) <= 1
    roots = np.array([[float(v) for v in line.split()[:3]] for line in bvh.split("Frame Time:")[1].splitlines()[1:]
                      if line.strip()])
    assert np.ptp(roots, axis=0).max() < 1e-6  # upper_body: the root stays put


def _fingers(bvh: bytes, tmp: Path) -> np.ndarray:
    from mocapd.formats.bvh import read_bvh
    from mocapd.pipeline.fingers import FINGER_NAMES

    path = tmp / "read.bvh"
    path.write_bytes(bvh)
    motion = read_bvh(path)
    names = motion.skeleton.names
    assert set(FINGER_NAMES) <= set(names), "the finger bones are missing"
    return motion.local_quat_wxyz[:, [names.index(n) for n in FINGER_NAMES]]  # (F, 30, 4)


def _preview(data: bytes, tmp: Path) -> tuple[int, int, int]:
    import av

    path = tmp / "preview.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        frames = [f for f in container.decode(video=0)]
        return len(frames), frames[0].width, frames[0].height


def test_a_reexport_of_a_hand_tracked_job_keeps_its_fingers_and_is_reported_like_any_job(
    api: Api, worker: Worker, tmp_path: Path
) -> None:
    from mocapd.formats.motion_npz import write_motion_npz
    from mocapd.pipeline.settings import JobSettings
    from mocapd.worker.produce import reexport

    data = shared_file("pose2sim_balancing/cam01.mp4").read_bytes()  # 60 fps, the hands in view
    parent = api.create(trimStartSec=0.5, trimEndSec=1.0, exportFps=30, targetIds=["default"], handTracking=True)
    api.upload(parent, data)
    assert api.complete(parent["jobId"]).status_code == 200  # type: ignore[attr-defined]
    assert str(worker.run_once()) in ("completed", "Outcome.COMPLETED")
    pid = parent["jobId"]
    parent_quality = json.loads(_file(api, pid, "quality.json"))
    parent_fingers = _fingers(_file(api, pid, "motion.bvh"), tmp_path)

    # The same rate and type with a robot: the parent's motion, fingers included, byte for byte.
    r = api.client.post(f"/api/v1/mocap/jobs/{pid}/exports", json={"targetIds": ["default", "unitree_g1"]},
                        headers=api.headers())
    assert r.status_code == 201, r.text
    same = r.json()["data"]["job"]
    assert same["handTracking"] is True
    # Upper body at 60 fps: solved again from the stored joints, the same hands on the new clock.
    r = api.client.post(f"/api/v1/mocap/jobs/{pid}/exports", json={"exportFps": 60, "mocapType": "upper_body"},
                        headers=api.headers())
    assert r.status_code == 201, r.text
    upper = r.json()["data"]["job"]
    for _ in range(2):
        assert str(worker.run_once()) in ("completed", "Outcome.COMPLETED")

    assert _file(api, same["id"], "motion.bvh") == _file(api, pid, "motion.bvh")
    fingers_60 = _fingers(_file(api, upper["id"], "motion.bvh"), tmp_path)
    n = min(len(parent_fingers), len(fingers_60[::2]))
    assert n >= 14
    # 60 fps frame 2k is 30 fps frame k: the same finger rotations (BVH keeps 6 decimals of degrees)
    dots = np.abs(np.sum(fingers_60[::2][:n] * parent_fingers[:n], axis=-1))
    assert dots.min() > 1 - 1e-8
    angle = 2.0 * np.degrees(np.arccos(np.clip(np.abs(fingers_60[..., 0]), 0.0, 1.0)))
    assert (angle.max(axis=0) - angle.min(axis=0)).max() > 2.0, "the fingers never move"

    for child, robot in ((same, True), (upper, False)):
        result = api.client.get(f"/api/v1/mocap/jobs/{child['id']}/result", headers=api.headers()).json()["data"]
        assert result["qualityUrl"] and result["previewVideoUrl"] and result["manifestUrl"]
        quality = json.loads(_file(api, child["id"], "quality.json"))
        # the detection's figures are the parent's; the motion's are its own
        for key in ("frames", "perJointConfidence", "hands"):
            assert quality[key] == parent_quality[key], key
        assert quality["boneLengthSpreadMm"] == pytest.approx(parent_quality["boneLengthSpreadMm"], abs=0.02)
        assert quality["jitter"]["meanAccelerationMps2"] is not None
        assert quality["reexport"]["detection"].startswith("the parent job's")
        assert (quality["robot"] is not None) == robot
        manifest = json.loads(_file(api, child["id"], "manifest.json"))
        assert manifest["processing"]["hands"] == parent_quality["hands"]
        assert "preview.mp4" in [f["name"] for f in manifest["files"]]
        frames, width, height = _preview(_file(api, child["id"], "preview.mp4"), tmp_path)
        assert width == (2 if robot else 1) * height  # the motion's square panel (and the robot's): no video
        motion_frames = manifest["targets"]["default"]["frameCount"]
        assert frames == math.ceil(motion_frames / (2 if child is upper else 1))  # at most 30 fps
    assert quality["jitter"] != parent_quality["jitter"]  # measured on the upper body's own 60 fps motion

    # A parent stored before the detection was kept: the same files, those figures said to be unknown.
    store = open_store(api.settings)
    old = tmp_path / "old.npz"
    store.download_to(private_key(pid, "motion.npz"), old)
    kept = read_motion_npz(old)
    write_motion_npz(old, kept.motion, kept.joints_m, kept.mocap_type, kept.subject_height_m, hands=kept.hands)
    out = reexport(old, JobSettings(("default",), 30, "full_body", 0.0, 0.5), tmp_path / "out", lambda *_: None)
    assert sorted(f.path.name for f in out.files) == ["motion.bvh", "motion.fbx", "motion.glb", "preview.mp4",
                                                        "quality.json"]
    quality = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert quality["frames"] is None and quality["perJointConfidence"] is None
    assert "not available" in quality["reexport"]["detection"] and quality["hands"] == parent_quality["hands"]
    assert (tmp_path / "out" / "motion.bvh").read_bytes() == _file(api, pid, "motion.bvh")
