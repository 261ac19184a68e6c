"""modelQuality "high": plan-gated at create, and refused at admission with model_unavailable while the
model file is not installed (the job stays a draft, nothing is held, a quote says why); once installed,
the same complete-upload admits it."""

from __future__ import annotations

import json
from pathlib import Path

from mocapd.model_files import MODELS, installed_path
from tests.integration.api.conftest import Api
from tests.integration.api.media import synthetic_video

HEAVY = MODELS["blazepose_heavy"]


def _pretend_installed(models_dir: Path) -> None:
    """What `mocapd models fetch` leaves (the admission check reads the size and the marker; the real
    download and its digests are tested in tests/unit/test_model_files.py)."""
    path = installed_path(models_dir, HEAVY)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.truncate(HEAVY.bytes)
    (path.parent / "installed.json").write_text(json.dumps({"sha256": HEAVY.sha256}))


def test_high_quality_is_a_paid_plan_option(api: Api) -> None:
    _, free_key = api.new_account("freebie", "free", credits=50)
    r = api.client.post("/api/v1/mocap/jobs", headers=api.headers(free_key),
                        json={"sourceFilename": "c.mp4", "targetIds": ["default"], "modelQuality": "high"})
    assert r.status_code == 403 and r.json()["code"] == "plan_option_unavailable"
    assert api.client.get("/api/v1/mocap/jobs", headers=api.headers(free_key)).json()["data"]["items"] == []
    bad = api.client.post("/api/v1/mocap/jobs", headers=api.headers(),
                          json={"sourceFilename": "c.mp4", "targetIds": ["default"], "modelQuality": "ultra"})
    assert bad.status_code == 422
    std = api.create(modelQuality="standard")
    assert api.client.get(f"/api/v1/mocap/jobs/{std['jobId']}", headers=api.headers()).json()["data"]["job"]["modelQuality"] == "standard"


def test_a_missing_model_is_refused_at_admission_and_admitted_once_installed(api: Api, tmp_path: Path) -> None:
    job = api.create(modelQuality="high")
    assert api.upload(job, synthetic_video(tmp_path / "c.mp4", 2.0).read_bytes()).status_code in (200, 201)  # type: ignore[attr-defined]
    quote = api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/quote", headers=api.headers()).json()["data"]
    assert not quote["admissible"] and [p["code"] for p in quote["problems"]] == ["model_unavailable"]
    r = api.complete(job["jobId"])
    assert r.status_code == 503 and r.json()["code"] == "model_unavailable"  # type: ignore[attr-defined]
    assert r.json()["retryable"] is True and r.json()["retryFrom"] == "complete_upload"  # type: ignore[attr-defined]
    polled = api.client.get(f"/api/v1/mocap/jobs/{job['jobId']}", headers=api.headers()).json()["data"]["job"]
    assert polled["status"] == "draft" and polled["billing"]["heldVCredits"] == 0
    assert api.client.get("/api/v1/account", headers=api.headers()).json()["data"]["balances"]["api"]["held"] == 0

    _pretend_installed(api.settings.resolved_models_dir)
    again = api.complete(job["jobId"])
    assert again.status_code == 200, again.text  # type: ignore[attr-defined]
    admitted = again.json()["data"]["job"]  # type: ignore[attr-defined]
    assert admitted["status"] == "queued" and admitted["modelQuality"] == "high" and admitted["billing"]["heldVCredits"] == 2


def test_hand_tracking_is_a_paid_plan_option(api: Api) -> None:
    _, free_key = api.new_account("freehands", "free", credits=50)
    r = api.client.post("/api/v1/mocap/jobs", headers=api.headers(free_key),
                        json={"sourceFilename": "c.mp4", "targetIds": ["default"], "handTracking": True})
    assert r.status_code == 403 and r.json()["code"] == "plan_option_unavailable"
    assert r.json()["field"] == "handTracking" or "handTracking" in r.json()["detail"]
    bad = api.client.post("/api/v1/mocap/jobs", headers=api.headers(),
                          json={"sourceFilename": "c.mp4", "targetIds": ["default"], "handTracking": "yes"})
    assert bad.status_code == 422
    job = api.create(handTracking=True)
    polled = api.client.get(f"/api/v1/mocap/jobs/{job['jobId']}", headers=api.headers()).json()["data"]["job"]
    assert polled["handTracking"] is True
    plain = api.create()
    assert api.client.get(f"/api/v1/mocap/jobs/{plain['jobId']}", headers=api.headers()).json()["data"]["job"]["handTracking"] is False
