"""Auth, tenancy, polling, result, list, events and artifact downloads."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mocapd.db.accounts import revoke_key
from mocapd.db.models import Artifact, Job
from mocapd.db.transitions import mark_completed
from mocapd.storage import artifact_key
from tests.conftest import shared_file
from tests.integration.api.conftest import Api


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer ", "Basic abc", "Bearer sk_live_doesnotexist", "Bearer not-a-key", "Token sk_live_x"],
)
def test_missing_or_bad_keys_are_401(api: Api, header: str | None) -> None:
    h = {"Authorization": header} if header is not None else {}
    for method, path in [("GET", "/api/v1/mocap/jobs"), ("POST", "/api/v1/mocap/jobs"), ("GET", "/api/v1/account")]:
        r = api.client.request(method, path, headers=h, json={"sourceFilename": "a.mp4", "targetIds": ["default"]})
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert r.headers["content-type"].startswith("application/problem+json")


def test_revoked_key_is_401(api: Api) -> None:
    assert api.client.get("/api/v1/account", headers=api.headers()).status_code == 200
    with api.db.write() as s:
        revoke_key(s, api.key[:16])
    assert api.client.get("/api/v1/account", headers=api.headers()).json()["code"] == "unauthorized"


def test_another_accounts_job_is_404(api: Api) -> None:
    job = api.create()
    _, other = api.new_account("intruder")
    jid = job["jobId"]
    for method, path in [
        ("GET", f"/api/v1/mocap/jobs/{jid}"),
        ("GET", f"/api/v1/mocap/jobs/{jid}/result"),
        ("GET", f"/api/v1/mocap/jobs/{jid}/events"),
        ("POST", f"/api/v1/mocap/jobs/{jid}/complete-upload"),
        ("POST", f"/api/v1/mocap/jobs/{jid}/cancel"),
        ("POST", f"/api/v1/mocap/jobs/{jid}/upload-url"),
        ("GET", f"/api/v1/mocap/jobs/{jid}/artifacts/motion.fbx"),
    ]:
        r = api.client.request(method, path, headers=api.headers(other))
        assert r.status_code == 404 and r.json()["code"] == "job_not_found", path
    assert api.client.get("/api/v1/mocap/jobs", headers=api.headers(other)).json()["data"]["items"] == []
    assert api.client.get(f"/api/v1/mocap/jobs/{jid}", headers=api.headers()).status_code == 200


def test_unknown_job_ids(api: Api) -> None:
    for jid in ["mocap_nope", "x" * 300, "..%2F..%2Fetc"]:
        r = api.client.get(f"/api/v1/mocap/jobs/{jid}", headers=api.headers())
        assert r.status_code == 404


def test_poll_result_and_events_of_a_draft(api: Api) -> None:
    job = api.create()
    r = api.client.get(f"/api/v1/mocap/jobs/{job['jobId']}", headers=api.headers())
    assert r.headers["Retry-After"] == "2"
    d = r.json()["data"]
    assert d["result"] is None and d["job"]["status"] == "draft" and d["events"][0]["type"] == "job.created"
    res = api.client.get(f"/api/v1/mocap/jobs/{job['jobId']}/result", headers=api.headers())
    assert res.status_code == 200
    rd = res.json()["data"]
    assert rd["status"] == "draft" and rd["outputs"] == [] and rd["jobId"] == job["jobId"]
    assert rd["previewVideoUrl"] is None and "fbxUrl" not in rd
    ev = api.client.get(f"/api/v1/mocap/jobs/{job['jobId']}/events?after=0", headers=api.headers()).json()["data"]
    assert [e["seq"] for e in ev["items"]] == [1]


def test_list_is_newest_first_with_cursor(api: Api) -> None:
    ids = [api.create(title=f"t{i}")["jobId"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.client.get("/api/v1/mocap/jobs" + q, headers=api.headers()).json()["data"]
        seen += [j["id"] for j in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert api.client.get("/api/v1/mocap/jobs?cursor=garbage!", headers=api.headers()).status_code == 422
    assert api.client.get("/api/v1/mocap/jobs?status=draft", headers=api.headers()).json()["data"]["items"]
    assert api.client.get("/api/v1/mocap/jobs?status=bogus", headers=api.headers()).status_code == 422


def _complete_with_artifacts(api: Api, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    """Admit a real upload, then finish it as a worker would, with real stored artifacts."""
    job = api.create(targetIds=["default", "unitree_g1"])
    api.upload(job, shared_file("pose2sim_balancing/cam01.mp4").read_bytes())
    api.complete(job["jobId"])
    store = api.client.app.state.mocapd.store  # type: ignore[attr-defined]
    files = {"motion.fbx": b"FBX" * 5000, "g1_motion.json": b'{"version": 1}', "preview.mp4": b"\0" * 1000,
             "manifest.json": b"{}", "quality.json": b"{}"}
    targets = {"motion.fbx": "default", "g1_motion.json": "unitree_g1"}
    with api.db.write() as s:
        row = s.get(Job, job["jobId"])
        assert row is not None
        row.status, row.stage = "processing", "packaging"
        for name, data in files.items():
            p = tmp_path / name
            p.write_bytes(data)
            obj = store.put_file(artifact_key(row.id, name), p, "application/octet-stream")
            s.add(Artifact(job_id=row.id, name=name, object_key=obj.key, bytes=obj.bytes, sha256=obj.sha256,
                           content_type="application/octet-stream", target_id=targets.get(name),
                           created_at=datetime.now(UTC)))
        mark_completed(s, row, retention_days=14)
    return job["jobId"], files


def test_completed_result_and_downloads(api: Api, tmp_path: Path) -> None:
    jid, files = _complete_with_artifacts(api, tmp_path)
    poll = api.client.get(f"/api/v1/mocap/jobs/{jid}", headers=api.headers())
    assert "Retry-After" not in poll.headers
    res = poll.json()["data"]["result"]
    assert res["status"] == "completed" and {o["targetId"] for o in res["outputs"]} == {"default", "unitree_g1"}
    by_target = {o["targetId"]: o for o in res["outputs"]}
    assert by_target["default"]["resultType"] == "fbx" and by_target["default"]["fbxUrl"]
    assert by_target["unitree_g1"]["resultType"] == "robot_motion_json" and by_target["unitree_g1"]["motionJsonUrl"]
    assert res["previewVideoUrl"] and res["manifestUrl"] and res["qualityUrl"]
    assert {f["name"]: f["bytes"] for f in res["files"]} == {n: len(b) for n, b in files.items()}
    fbx = files["motion.fbx"]
    sha = hashlib.sha256(fbx).hexdigest()
    url = by_target["default"]["fbxUrl"].replace("http://testserver", "")
    full = api.client.get(url)
    assert full.status_code == 200 and full.content == fbx
    assert full.headers["ETag"] == f'"{sha}"' and full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["Repr-Digest"] == "sha-256=:" + base64.b64encode(bytes.fromhex(sha)).decode() + ":"
    assert int(full.headers["Content-Length"]) == len(fbx)
    head = api.client.head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["Content-Length"] == str(len(fbx))
    part = api.client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == fbx[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(fbx)}"
    tail = api.client.get(url, headers={"Range": "bytes=-10"})
    assert tail.content == fbx[-10:]
    assert api.client.get(url, headers={"Range": f"bytes={len(fbx)}-"}).status_code == 416
    stale = api.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == fbx
    assert api.client.get(url, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    tampered = url.replace("motion.fbx", "preview.mp4")
    assert api.client.get(tampered).json()["code"] == "download_url_invalid"
    # the same file with the API key
    keyed = api.client.get(f"/api/v1/mocap/jobs/{jid}/artifacts/motion.fbx", headers={**api.headers(), "Range": "bytes=0-2"})
    assert keyed.status_code == 206 and keyed.content == b"FBX"
    assert api.client.get(f"/api/v1/mocap/jobs/{jid}/artifacts/nope.bin", headers=api.headers()).status_code == 404
    # the hold was captured once
    items = api.client.get(f"/api/v1/account/ledger?jobId={jid}", headers=api.headers()).json()["data"]["items"]
    assert sorted(e["type"] for e in items) == ["capture", "hold"]


def test_ops_endpoints(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json()["status"] == "ok"
    api.client.get("/api/v1/account", headers=api.headers())
    assert api.client.get("/metrics").status_code == 401  # the test client is not on this machine's loopback
    local = TestClient(api.client.app, base_url="http://testserver", client=("127.0.0.1", 50000))
    m = local.get("/metrics").text
    assert 'mocapd_http_requests_total{route="/api/v1/account",method="GET",status="200"}' in m
    assert 'mocapd_jobs{status="draft"}' in m
    doc = api.client.get("/openapi.json").json()
    assert "/api/v1/mocap/jobs/{job_id}/complete-upload" in doc["paths"]
    assert api.client.get("/docs").status_code == 200
