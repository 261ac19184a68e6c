"""Upload URLs and complete-upload: the file is checked for real, and rejection leaves nothing half-done."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from sqlalchemy import func, select

from mocapd.db.models import LedgerEntry
from tests.conftest import shared_file
from tests.integration.api.conftest import Api
from tests.integration.api.media import audio_only, png_bytes, synthetic_video


def _cam01() -> bytes:
    return shared_file("pose2sim_balancing/cam01.mp4").read_bytes()


def _holds(api: Api) -> int:
    with api.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.type == "hold")) or 0)


def _job(api: Api, job_id: str, key: str | None = None) -> dict:  # type: ignore[type-arg]
    return api.client.get(f"/api/v1/mocap/jobs/{job_id}", headers=api.headers(key)).json()["data"]["job"]


def _stored_files(api: Api) -> list[Path]:
    root = api.settings.data_dir / "objects" / "jobs"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_full_admission_holds_credits_and_queues(api: Api) -> None:
    data = _cam01()
    job = api.create(sourceBytes=len(data), sourceSha256=hashlib.sha256(data).hexdigest())
    up = api.upload(job, data)
    assert up.status_code == 200 and up.json()["data"] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    r = api.complete(job["jobId"])
    assert r.status_code == 200 and r.headers["Retry-After"]
    j = r.json()["data"]["job"]
    assert (j["status"], j["stage"]) == ("queued", "queued")
    assert j["billing"] == {"heldVCredits": 2, "chargedVCredits": 0, "refundedVCredits": 0, "channel": "api"}
    assert j["source"]["width"] == 1080 and j["source"]["fps"] == 60.0 and abs(j["source"]["durationSec"] - 1.667) < 0.01
    types = [e["type"] for e in r.json()["data"]["events"]]
    assert types == ["job.created", "upload.received", "job.admitted", "job.queued"]
    again = api.complete(job["jobId"])  # idempotent: never a second hold
    assert again.status_code == 200 and again.json()["data"]["job"]["status"] == "queued"
    assert _holds(api) == 1
    late = api.upload(job, data)
    assert late.status_code == 409 and late.json()["code"] == "job_not_awaiting_upload"


def test_repeated_put_replaces_and_reissued_url_works(api: Api) -> None:
    job = api.create()
    assert api.upload(job, b"first attempt, broken").status_code == 200
    fresh = api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/upload-url", headers=api.headers()).json()["data"]
    data = _cam01()
    assert api.client.put(fresh["uploadUrl"], content=data).json()["data"]["bytes"] == len(data)
    assert api.complete(job["jobId"]).json()["data"]["job"]["status"] == "queued"


def test_upload_over_the_plan_limit_is_cut_off(api: Api) -> None:
    _, key = api.new_account("small", "free")
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"]}, headers=api.headers(key))
    job = r.json()["data"]
    limit = job["maxUploadBytes"]
    chunk = b"\0" * (1 << 20)
    sent = 0

    def body():  # type: ignore[no-untyped-def]
        nonlocal sent
        while sent < limit * 3:  # a stream with no Content-Length that would go on well past the limit
            sent += len(chunk)
            yield chunk

    up = api.client.put(job["uploadUrl"], content=body())
    assert up.status_code == 413 and up.json()["code"] == "api_file_size_limit_exceeded"
    assert _stored_files(api) == []  # nothing kept: the partial body was discarded
    assert not any((api.settings.data_dir / "objects" / ".tmp").iterdir())
    declared = api.client.put(job["uploadUrl"], content=b"x" * 10, headers={"Content-Length": str(limit + 1)})
    assert declared.status_code in (413, 400)


def test_upload_must_match_the_claims(api: Api) -> None:
    data = _cam01()
    job = api.create(sourceBytes=len(data) + 1)
    r = api.upload(job, data)
    assert r.status_code == 422 and r.json()["code"] == "upload_size_mismatch"
    job = api.create(sourceSha256="0" * 64)
    r = api.upload(job, data)
    assert r.status_code == 422 and r.json()["code"] == "upload_checksum_mismatch"
    assert _stored_files(api) == []
    assert api.complete(job["jobId"]).json()["code"] == "upload_missing"


def test_expired_and_tampered_urls(api: Api) -> None:
    job = api.create()
    url = urlparse(job["uploadUrl"])
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    tampered = f"{url.path}?{urlencode({**q, 'expires': int(q['expires']) + 60})}"
    r = api.client.put(tampered, content=b"abc")
    assert r.status_code == 403 and r.json()["code"] == "upload_url_invalid"
    r = api.client.put(f"{url.path}?{urlencode({**q, 'signature': 'f' * 64})}", content=b"abc")
    assert r.status_code == 403 and r.json()["code"] == "upload_url_invalid"
    r = api.client.put(url.path, content=b"abc")
    assert r.status_code == 403 and r.json()["code"] == "upload_url_invalid"
    exp, sig = api.client.app.state.mocapd.signer.sign("upload", job["jobId"], job["sourceKey"], -10)  # type: ignore[attr-defined]
    r = api.client.put(f"{url.path}?expires={exp}&signature={sig}", content=b"abc")
    assert r.status_code == 403 and r.json()["code"] == "upload_url_expired"
    assert _stored_files(api) == []


def _rejected(api: Api, data: bytes | None, code: str, status: int, **create: object) -> dict:  # type: ignore[type-arg]
    job = api.create(**create)
    if data is not None:
        assert api.upload(job, data).status_code == 200
    r = api.complete(job["jobId"])
    assert r.status_code == status, r.text
    p = r.json()
    assert p["code"] == code and p["stage"] == "validation" and p["jobId"] == job["jobId"]
    assert _holds(api) == 0
    return _job(api, job["jobId"])


def test_nothing_uploaded(api: Api) -> None:
    j = _rejected(api, None, "upload_missing", 409)
    assert (j["status"], j["stage"]) == ("draft", "awaiting_upload")  # upload and try again


def test_zero_bytes(api: Api) -> None:
    j = _rejected(api, b"", "source_unreadable", 422)
    assert j["status"] == "failed" and j["error"]["retryFrom"] == "new_job" and j["billing"]["heldVCredits"] == 0


def test_random_bytes(api: Api) -> None:
    assert _rejected(api, os.urandom(20000), "source_unreadable", 422)["status"] == "failed"


def test_png_renamed_mp4(api: Api) -> None:
    j = _rejected(api, png_bytes(), "source_unreadable", 422)
    assert j["error"]["stage"] == "validation"


def test_audio_only(api: Api, tmp_path: Path) -> None:
    _rejected(api, audio_only(tmp_path / "a.mp4").read_bytes(), "source_no_video_stream", 422)


def test_truncated_mp4(api: Api) -> None:
    data = _cam01()
    _rejected(api, data[: len(data) // 2], "source_unreadable", 422)


def test_trim_past_the_real_end(api: Api) -> None:
    j = _rejected(api, _cam01(), "api_trim_range_invalid", 422, trimStartSec=0.5, trimEndSec=4.0)
    assert j["status"] == "failed"


def test_clip_over_the_plan_duration(api: Api, tmp_path: Path) -> None:
    _, key = api.new_account("free-user", "free", credits=100)
    video = synthetic_video(tmp_path / "long.mp4", 35).read_bytes()
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"]}, headers=api.headers(key))
    job = r.json()["data"]
    api.upload(job, video)
    r = api.complete(job["jobId"], key)
    assert r.status_code == 422 and r.json()["code"] == "api_duration_limit_exceeded"
    # the same clip trimmed to 20 s is admitted and costs 20 credits
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"], "trimStartSec": 5.0,
                        "trimEndSec": 25.0}, headers=api.headers(key))
    job = r.json()["data"]
    api.upload(job, video)
    ok = api.complete(job["jobId"], key).json()["data"]["job"]
    assert ok["status"] == "queued" and ok["billing"]["heldVCredits"] == 20


def test_too_little_credit_leaves_a_draft_that_can_be_completed_later(api: Api) -> None:
    acct, key = api.new_account("broke", "starter", credits=1)
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"]}, headers=api.headers(key))
    job = r.json()["data"]
    api.upload(job, _cam01())
    r = api.complete(job["jobId"], key)
    assert r.status_code == 402 and r.json()["code"] == "insufficient_api_v_credits" and r.json()["retryFrom"] == "complete_upload"
    j = _job(api, job["jobId"], key)
    assert (j["status"], j["stage"]) == ("draft", "uploaded") and j["billing"]["heldVCredits"] == 0
    from mocapd.db.ledger import grant

    with api.db.write() as s:
        grant(s, acct, 10, "api")
    assert api.complete(job["jobId"], key).json()["data"]["job"]["status"] == "queued"


def test_concurrency_limit(api: Api) -> None:
    _, key = api.new_account("busy", "free", credits=100)  # free: 2 active jobs
    data = _cam01()
    ids = []
    for _ in range(3):
        r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"]}, headers=api.headers(key))
        job = r.json()["data"]
        api.upload(job, data)
        ids.append(job["jobId"])
    assert api.complete(ids[0], key).status_code == 200
    assert api.complete(ids[1], key).status_code == 200
    r = api.complete(ids[2], key)
    assert r.status_code == 429 and r.json()["code"] == "api_concurrency_limit_exceeded" and r.json()["retryable"] is True
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"]}, headers=api.headers(key))
    assert r.status_code == 429
    api.client.post(f"/api/v1/mocap/jobs/{ids[0]}/cancel", headers=api.headers(key))
    assert api.complete(ids[2], key).json()["data"]["job"]["status"] == "queued"


def test_inactive_plan_at_complete_upload(api: Api) -> None:
    from mocapd.db.models import Plan

    job = api.create()
    api.upload(job, _cam01())
    with api.db.write() as s:
        plan = s.get(Plan, "starter")
        assert plan is not None
        plan.active = False
    r = api.complete(job["jobId"])
    assert r.status_code == 403 and r.json()["code"] == "api_plan_inactive"


@pytest.mark.parametrize("when", ["draft", "queued"])
def test_cancel_releases_and_blocks_further_work(api: Api, when: str) -> None:
    job = api.create()
    api.upload(job, _cam01())
    if when == "queued":
        api.complete(job["jobId"])
    r = api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/cancel", headers=api.headers())
    j = r.json()["data"]["job"]
    assert j["status"] == "canceled" and j["error"]["code"] == "canceled"
    if when == "queued":
        assert j["billing"]["refundedVCredits"] == 2
    assert api.complete(job["jobId"]).json()["code"] == "canceled"
    assert api.upload(job, b"abc").json()["code"] == "job_not_awaiting_upload"
    again = api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/cancel", headers=api.headers())
    assert again.status_code == 200  # cancel is idempotent
    ledger = api.client.get(f"/api/v1/account/ledger?jobId={job['jobId']}", headers=api.headers()).json()["data"]["items"]
    assert sorted(e["type"] for e in ledger) == (["hold", "release"] if when == "queued" else [])
    acct = api.client.get("/api/v1/account", headers=api.headers()).json()["data"]
    assert acct["balances"]["api"] == {"balance": 300, "held": 0, "available": 300}
