"""POST .../quote: exactly what complete-upload would hold, and whether it would admit, holding nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from mocapd.db.models import LedgerEntry
from tests.conftest import shared_file
from tests.integration.api.conftest import Api
from tests.integration.api.media import png_bytes, synthetic_video

CLIPS = (
    "pose2sim_balancing/cam01.mp4",
    "pose2sim_balancing/cam02.mp4",  # VP9
    "pose2sim_balancing/cam03.mp4",
    "pose2sim_balancing/cam04.mp4",
    "video/sports2d_demo.mp4",
)
# (trimStartSec, trimEndSec) as sent at create; None leaves the field out.
WINDOWS: tuple[tuple[float | None, float | None], ...] = ((None, None), (0.25, None), (0.1, 1.05), (0.0, 1.5))


def _quote(api: Api, job_id: str, key: str | None = None) -> dict:  # type: ignore[type-arg]
    r = api.client.post(f"/api/v1/mocap/jobs/{job_id}/quote", headers=api.headers(key))
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _ledger(api: Api) -> list[tuple[str, int, str | None]]:
    with api.db.read() as s:
        return [(e.type, e.amount, e.job_id) for e in s.scalars(select(LedgerEntry).order_by(LedgerEntry.id))]


def _available(api: Api, key: str | None = None) -> int:
    acct = api.client.get("/api/v1/account", headers=api.headers(key)).json()["data"]
    return int(acct["balances"]["api"]["available"])


@pytest.mark.parametrize("clip", CLIPS)
def test_quote_equals_the_hold_complete_upload_places(api: Api, clip: str) -> None:
    data = shared_file(clip).read_bytes()
    for start, end in WINDOWS + (((2.0, 5.5), (3.2, None)) if "sports2d" in clip else ()):
        body = {k: v for k, v in (("trimStartSec", start), ("trimEndSec", end)) if v is not None}
        job = api.create(**body)
        assert api.upload(job, data).status_code == 200  # type: ignore[attr-defined]
        before, available = _ledger(api), _available(api)
        quote = _quote(api, job["jobId"])
        assert _ledger(api) == before and _available(api) == available  # a quote holds nothing
        assert quote["admissible"] is True and quote["problems"] == []
        assert quote["channel"] == "api" and quote["available"] == available
        done = api.complete(job["jobId"])
        assert done.status_code == 200, done.text  # type: ignore[attr-defined]
        j = done.json()["data"]["job"]  # type: ignore[attr-defined]
        assert j["status"] == "queued"
        holds = [amount for kind, amount, jid in _ledger(api) if kind == "hold" and jid == job["jobId"]]
        assert holds == [quote["vCredits"]] == [j["billing"]["heldVCredits"]], (clip, start, end)
        assert (quote["trimStartSec"], quote["trimEndSec"]) == (j["trimStartSec"], j["trimEndSec"])
        api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/cancel", headers=api.headers())  # free the slot


def test_quote_lists_every_problem_admission_would_raise(api: Api, tmp_path: Path) -> None:
    acct, key = api.new_account("poor", "free", credits=1)
    video = synthetic_video(tmp_path / "v.mp4", 3.0).read_bytes()
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "v.mp4", "targetIds": ["default"]},
                        headers=api.headers(key))
    job = r.json()["data"]
    missing = api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/quote", headers=api.headers(key))
    assert missing.status_code == 409 and missing.json()["code"] == "upload_missing"
    assert api.client.put(job["uploadUrl"], content=video).status_code == 200
    quote = _quote(api, job["jobId"], key)
    assert quote["vCredits"] == 3 and quote["available"] == 1 and quote["admissible"] is False
    assert [p["code"] for p in quote["problems"]] == ["insufficient_api_v_credits"]
    assert quote["problems"][0]["status"] == 402 and quote["problems"][0]["required"] == 3
    done = api.complete(job["jobId"], key)
    assert done.status_code == 402 and done.json()["code"] == "insufficient_api_v_credits"  # type: ignore[attr-defined]

    # A trim window past the real end: no price, and the reason.
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "v.mp4", "targetIds": ["default"],
                                                    "trimStartSec": 5.0}, headers=api.headers(key))
    late = r.json()["data"]
    assert api.client.put(late["uploadUrl"], content=video).status_code == 200
    quote = _quote(api, late["jobId"], key)
    assert quote["vCredits"] is None and quote["admissible"] is False
    assert [p["code"] for p in quote["problems"]] == ["api_trim_range_invalid"]

    # Not a video at all.
    r = api.client.post("/api/v1/mocap/jobs", json={"sourceFilename": "v.mp4", "targetIds": ["default"]},
                        headers=api.headers(key))
    bad = r.json()["data"]
    assert api.client.put(bad["uploadUrl"], content=png_bytes()).status_code == 200
    quote = _quote(api, bad["jobId"], key)
    assert quote["admissible"] is False and quote["problems"][0]["code"] in {"source_unreadable", "source_unsupported",
                                                                             "source_no_video_stream"}
    with api.db.read() as s:
        assert not s.scalars(select(LedgerEntry).where(LedgerEntry.account_id == acct, LedgerEntry.type == "hold")).all()


def test_quote_on_another_accounts_or_admitted_job(api: Api, tmp_path: Path) -> None:
    video = synthetic_video(tmp_path / "v.mp4", 1.0).read_bytes()
    job = api.create()
    api.upload(job, video)
    _, other = api.new_account("other")
    r = api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/quote", headers=api.headers(other))
    assert r.status_code == 404 and r.json()["code"] == "job_not_found"
    assert api.complete(job["jobId"]).status_code == 200  # type: ignore[attr-defined]
    r = api.client.post(f"/api/v1/mocap/jobs/{job['jobId']}/quote", headers=api.headers())
    assert r.status_code == 409 and r.json()["code"] == "job_not_awaiting_upload"
