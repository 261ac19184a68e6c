"""POST /api/v1/mocap/jobs: every invalid field gets its specific code and creates nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from mocapd.db.models import Job
from tests.integration.api.conftest import Api

BASE = {"sourceFilename": "take1.mp4", "targetIds": ["default"]}


def _jobs(api: Api) -> int:
    with api.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def test_create_returns_draft_with_signed_upload_url(api: Api) -> None:
    r = api.client.post("/api/v1/mocap/jobs", json={**BASE, "title": "Jump", "exportFps": 60}, headers=api.headers())
    assert r.status_code == 201
    d = r.json()["data"]
    assert d["jobId"].startswith("mocap_") and d["status"] == "draft"
    assert d["exportFps"] == 60 and d["mocapType"] == "full_body" and d["targetIds"] == ["default"]
    assert "/uploads/" + d["jobId"] in d["uploadUrl"] and "signature=" in d["uploadUrl"]
    assert d["maxUploadBytes"] == 500_000_000 and d["sourceKey"] and d["uploadUrlExpiresAt"].endswith("Z")


def test_legacy_fields_and_duplicate_targets(api: Api) -> None:
    r = api.client.post(
        "/api/v1/mocap/jobs",
        json={"sourceFilename": "a.mp4", "targetId": "unitree_g1", "targetIds": ["default", "default"],
              "sourceType": "upload", "sourceBytes": 1000, "someFutureField": {"x": 1}},
        headers=api.headers(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["data"]["targetIds"] == ["default", "unitree_g1"]
    only_legacy = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetId": "default"},
                                  headers=api.headers())
    assert only_legacy.json()["data"]["targetIds"] == ["default"]


@pytest.mark.parametrize(
    ("patch", "code", "status"),
    [
        ({"exportFps": 25}, "export_fps_invalid", 422),
        ({"exportFps": "30"}, "export_fps_invalid", 422),
        ({"mocapType": "hands_only"}, "mocap_type_invalid", 422),
        ({"targetIds": ["dragon"]}, "api_target_unsupported", 422),
        ({"targetIds": []}, "api_target_ids_required", 422),
        ({"targetIds": None}, "api_target_ids_required", 422),
        ({"trimStartSec": -1.0}, "api_trim_range_invalid", 422),
        ({"trimStartSec": 5.0, "trimEndSec": 2.0}, "api_trim_range_invalid", 422),
        ({"trimStartSec": 2.0, "trimEndSec": 2.0}, "api_trim_range_invalid", 422),
        ({"sourceDurationSec": 0}, "api_source_duration_invalid", 422),
        ({"sourceDurationSec": -3}, "api_source_duration_invalid", 422),
        ({"sourceDurationSec": 10, "trimEndSec": 12}, "api_trim_range_invalid", 422),
        ({"sourceDurationSec": 500}, "api_duration_limit_exceeded", 422),
        ({"trimStartSec": 0, "trimEndSec": 121}, "api_duration_limit_exceeded", 422),
        ({"sourceBytes": 600_000_000}, "api_file_size_limit_exceeded", 413),
        ({"sourceBytes": 0}, "validation_error", 422),
        ({"sourceBytes": 1.5}, "validation_error", 422),
        ({"trimStartSec": "zero"}, "validation_error", 422),
        ({"sourceDurationSec": True}, "validation_error", 422),
        ({"sourceSha256": "abc"}, "validation_error", 422),
        ({"sourceType": "url"}, "validation_error", 422),
        ({"title": "x" * 201}, "validation_error", 422),
        ({"sourceFilename": ""}, "validation_error", 422),
        ({"sourceFilename": "../../"}, "validation_error", 422),
        ({"sourceFilename": "é" * 200}, "validation_error", 422),
        ({"subjectHeightM": 9.0}, "validation_error", 422),
    ],
)
def test_invalid_fields(api: Api, patch: dict, code: str, status: int) -> None:  # type: ignore[type-arg]
    body = {**BASE, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    r = api.client.post("/api/v1/mocap/jobs", json=body, headers=api.headers())
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    p = r.json()
    assert p["code"] == code and p["status"] == status and isinstance(p["retryable"], bool) and p["stage"]
    assert _jobs(api) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(api: Api, literal: str) -> None:
    raw = '{"sourceFilename": "a.mp4", "targetIds": ["default"], "trimEndSec": ' + literal + "}"
    r = api.client.post("/api/v1/mocap/jobs", content=raw, headers={**api.headers(), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    assert _jobs(api) == 0


def test_malformed_json_and_huge_body(api: Api) -> None:
    r = api.client.post("/api/v1/mocap/jobs", content=b"{not json", headers={**api.headers(), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    huge = json.dumps({**BASE, "title": "x" * (10 * 1024 * 1024)})
    r = api.client.post("/api/v1/mocap/jobs", content=huge, headers={**api.headers(), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert _jobs(api) == 0


def test_path_in_filename_is_stripped(api: Api) -> None:
    for name, expect in [("../../etc/passwd", "passwd"), ("C:\\Users\\me\\clip.mp4", "clip.mp4"), ("/abs/x.mov", "x.mov")]:
        job = api.create(sourceFilename=name)
        r = api.client.get(f"/api/v1/mocap/jobs/{job['jobId']}", headers=api.headers())
        assert r.json()["data"]["job"]["source"]["filename"] == expect


def test_plan_allowed_targets_and_inactive_plan(api: Api) -> None:
    from mocapd.db.models import Plan

    with api.db.write() as s:
        plan = s.get(Plan, "starter")
        assert plan is not None
        plan.allowed_targets = ["default"]
    r = api.client.post("/api/v1/mocap/jobs", json={**BASE, "targetIds": ["unitree_g1"]}, headers=api.headers())
    assert r.json()["code"] == "api_target_unsupported" and r.json()["allowed"] == ["default"]
    with api.db.write() as s:
        plan = s.get(Plan, "starter")
        assert plan is not None
        plan.active = False
    r = api.client.post("/api/v1/mocap/jobs", json=BASE, headers=api.headers())
    assert r.status_code == 403 and r.json()["code"] == "api_plan_inactive"


def test_too_little_credit_at_create_when_duration_is_claimed(api: Api) -> None:
    _, key = api.new_account("poor", "starter", credits=5)
    r = api.client.post("/api/v1/mocap/jobs", json={**BASE, "sourceDurationSec": 10}, headers=api.headers(key))
    assert r.status_code == 402 and r.json()["code"] == "insufficient_api_v_credits"
    assert r.json()["required"] == 10 and r.json()["available"] == 5


class TestIdempotency:
    def test_replay_returns_the_same_job(self, api: Api) -> None:
        h = {**api.headers(), "Idempotency-Key": "k-123"}
        a = api.client.post("/api/v1/mocap/jobs", json=BASE, headers=h)
        b = api.client.post("/api/v1/mocap/jobs", json=BASE, headers=h)
        assert a.status_code == b.status_code == 201
        assert b.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in a.headers
        assert a.json()["data"]["jobId"] == b.json()["data"]["jobId"]
        assert _jobs(api) == 1

    def test_different_body_is_422(self, api: Api) -> None:
        h = {**api.headers(), "Idempotency-Key": "k-456"}
        api.client.post("/api/v1/mocap/jobs", json=BASE, headers=h)
        r = api.client.post("/api/v1/mocap/jobs", json={**BASE, "exportFps": 60}, headers=h)
        assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused"
        assert _jobs(api) == 1

    def test_in_flight_duplicate_is_409(self, api: Api) -> None:
        from datetime import UTC, datetime, timedelta

        from mocapd.api.service import fingerprint
        from mocapd.db.models import IdempotencyRecord

        now = datetime.now(UTC)
        with api.db.write() as s:  # a first request that is still running
            s.add(IdempotencyRecord(account_id=api.account_id, key="k-789", fingerprint=fingerprint(BASE),
                                    state="in_progress", locked_until=now + timedelta(seconds=30), created_at=now,
                                    expires_at=now + timedelta(hours=24)))
        r = api.client.post("/api/v1/mocap/jobs", json=BASE, headers={**api.headers(), "Idempotency-Key": "k-789"})
        assert r.status_code == 409 and r.json()["code"] == "idempotency_key_in_flight" and r.json()["retryable"]
        assert _jobs(api) == 0

    def test_keys_are_scoped_per_account_and_rejections_are_not_stored(self, api: Api) -> None:
        _, other = api.new_account("other")
        h1 = {**api.headers(), "Idempotency-Key": "same"}
        h2 = {**api.headers(other), "Idempotency-Key": "same"}
        a = api.client.post("/api/v1/mocap/jobs", json=BASE, headers=h1).json()["data"]["jobId"]
        b = api.client.post("/api/v1/mocap/jobs", json=BASE, headers=h2).json()["data"]["jobId"]
        assert a != b
        bad = api.client.post("/api/v1/mocap/jobs", json={**BASE, "exportFps": 7}, headers={**api.headers(), "Idempotency-Key": "fixme"})
        assert bad.status_code == 422
        good = api.client.post("/api/v1/mocap/jobs", json={**BASE, "exportFps": 7}, headers={**api.headers(), "Idempotency-Key": "fixme"})
        assert good.json()["code"] == "export_fps_invalid"  # not a replay of a stored rejection, re-validated
