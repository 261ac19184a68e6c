"""complete-upload probes in a bounded number of child processes: a request that finds every slot busy
gets 503 validation_busy (retryable) and its job stays a draft; a file claiming huge frames is refused."""

from __future__ import annotations

from pathlib import Path

from tests.integration.api.conftest import Api
from tests.integration.api.media import synthetic_video
from tests.support.hostile_media import h264_claiming


def _job(api: Api, job_id: str) -> dict:  # type: ignore[type-arg]
    return api.client.get(f"/api/v1/mocap/jobs/{job_id}", headers=api.headers()).json()["data"]["job"]


def test_busy_probe_slots_answer_503_and_keep_the_draft(api: Api, tmp_path: Path) -> None:
    gate = api.client.app.state.mocapd.probes  # type: ignore[attr-defined]
    gate.wait_s = 0.2
    job = api.create()
    assert api.upload(job, synthetic_video(tmp_path / "a.mp4", 2.0).read_bytes()).status_code == 200
    held = [gate._free.acquire(timeout=1) for _ in range(gate.slots)]  # other uploads being probed
    assert all(held)
    try:
        r = api.complete(job["jobId"])
    finally:
        for _ in held:
            gate._free.release()
    assert r.status_code == 503 and r.headers["Retry-After"]
    body = r.json()
    assert (body["code"], body["retryable"], body["retryFrom"]) == ("validation_busy", True, "complete_upload")
    assert (_job(api, job["jobId"])["status"], _job(api, job["jobId"])["stage"]) == ("draft", "uploaded")
    again = api.complete(job["jobId"])  # a slot is free: admitted
    assert again.status_code == 200 and again.json()["data"]["job"]["status"] == "queued"


def test_a_file_claiming_16384x8192_frames_is_refused(api: Api, tmp_path: Path) -> None:
    job = api.create(sourceFilename="clip.h264")
    assert api.upload(job, h264_claiming(tmp_path / "huge.h264", 16384, 8192).read_bytes()).status_code == 200
    r = api.complete(job["jobId"])
    assert r.status_code == 422 and r.json()["code"] == "source_unsupported"
    assert _job(api, job["jobId"])["status"] == "failed"
