"""Re-exports: a completed job's stored motion becomes a new job (own id, parentJobId) for another frame
rate, target or mocap type, without the pose model, charged ceil(duration / 10) through the same queue,
lease and ledger."""

from __future__ import annotations

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
