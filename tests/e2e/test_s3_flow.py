"""Scale-out end to end: the API (uvicorn on a free port) on PostgreSQL with S3 storage (moto's S3
server on another port), and a worker run in-process on the same database and bucket.

The client's bytes never pass through the API: the upload URL is a presigned PUT straight to the
bucket, complete-upload reads the object back (size, streamed SHA-256, probe), the worker downloads
the source and uploads its artifacts to the bucket, and every download link redirects (307) to a
presigned GET of the object. The worker uses a fast processor (below) in place of the motion
pipeline; its artifacts are derived from the SHA-256 of the source it was given, which proves the
worker read exactly the admitted bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from mocapd.storage import S3Store, source_key
from mocapd.worker.processor import ProcessRequest, ProcessResult, ProgressFn
from tests.conftest import shared_file
from tests.integration.test_s3_storage import AWS_ENV, make_bucket, moto_server, set_aws_env, verify_presigned
from tests.support.postgres import fresh_postgres

pytestmark = pytest.mark.postgres

VIDEO = "pose2sim_balancing/cam01.mp4"
PREFIX = "mocapd"
TINY_PLAN_BYTES = 100_000  # a plan whose size limit cam01 (about 380 kB) exceeds
SECRET = AWS_ENV["AWS_SECRET_ACCESS_KEY"]


class SourceDigestProcessor:
    """Stands in for the motion pipeline: artifacts whose bytes derive from the source's SHA-256."""

    def process(self, request: ProcessRequest, on_progress: ProgressFn) -> ProcessResult:
        digest = hashlib.sha256(request.source_path.read_bytes()).hexdigest()
        on_progress("preflight", 1.0)
        on_progress("processing", 1.0)
        sizes = {"motion.fbx": 250_000, "motion.bvh": 30_000, "motion.glb": 90_000, "preview.mp4": 150_000}
        if "unitree_g1" in request.settings.target_ids:
            sizes.update({"g1_motion.json": 40_000, "g1_motion.csv": 20_000})
        files = []
        for name, n in sizes.items():
            path = request.out_dir / name
            path.write_bytes(random.Random(digest + name).randbytes(n))
            files.append(path)
        quality = request.out_dir / "quality.json"
        quality.write_text(json.dumps({"sourceSha256": digest}))
        return ProcessResult(files=[*files, quality], manifest={"processor": {"name": "s3-e2e", "sourceSha256": digest}})


@dataclass
class Stack:
    url: str
    endpoint: str
    bucket: str
    db: Any
    store: S3Store
    worker: Any

    def account(self, plan: str = "starter") -> str:
        from mocapd.db.accounts import create_account, create_key
        from mocapd.db.ledger import grant

        with self.db.write() as s:
            acct = create_account(s, f"s3-{secrets.token_hex(4)}", plan)
            grant(s, acct.id, 300, "api", reason="s3 e2e")
            return create_key(s, acct)

    def call(self, method: str, path: str, key: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {key}", **kw.pop("headers", {})},
                             timeout=30, **kw)

    def create(self, key: str, **body: Any) -> dict[str, Any]:
        r = self.call("POST", "/api/v1/mocap/jobs", key, json={"sourceFilename": "cam01.mp4", "targetIds": ["default"],
                                                               **body})
        assert r.status_code == 201, r.text
        return dict(r.json()["data"])

    def complete(self, key: str, job_id: str) -> httpx.Response:
        return self.call("POST", f"/api/v1/mocap/jobs/{job_id}/complete-upload", key)

    def job(self, key: str, job_id: str) -> dict[str, Any]:
        r = self.call("GET", f"/api/v1/mocap/jobs/{job_id}", key)
        assert r.status_code == 200, r.text
        return dict(r.json()["data"]["job"])

    def ledger(self, key: str, job_id: str) -> list[str]:
        r = self.call("GET", "/api/v1/account/ledger", key, params={"jobId": job_id})
        return [e["type"] for e in r.json()["data"]["items"]]

    def run_worker(self) -> str:
        outcome = self.worker.run_once()
        assert outcome is not None, "no job was queued"
        return str(outcome.value)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    import uvicorn

    from mocapd.api.app import create_app
    from mocapd.config import Settings
    from mocapd.db.engine import Database
    from mocapd.storage import open_store
    from mocapd.worker.loop import Worker
    from mocapd.worker.runner import StageRunner

    with pytest.MonkeyPatch.context() as mp, moto_server() as endpoint, fresh_postgres("mocapd_s3") as db_url:
        set_aws_env(mp)
        bucket = make_bucket(endpoint)
        settings = Settings(data_dir=tmp_path_factory.mktemp("mocapd-s3"), database_url=db_url,
                            storage_url=f"s3://{bucket}/{PREFIX}", s3_endpoint_url=endpoint, s3_region="us-east-1",
                            secret="s3-e2e-secret", lease_s=15.0, heartbeat_s=2.0, retry_backoff_s=0.2)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
            time.sleep(0.02)
        db = Database(db_url)
        store = open_store(settings)
        assert isinstance(store, S3Store)
        runner = StageRunner(db, store, SourceDigestProcessor(), lease_s=settings.lease_s, retry_backoff_s=0.2,
                             job_timeout_s=60, progress_interval_s=0.05, work_dir=tmp_path_factory.mktemp("work"))
        worker = Worker(db, runner, lease_s=settings.lease_s, heartbeat_s=settings.heartbeat_s, retry_backoff_s=0.2)
        try:
            yield Stack(f"http://127.0.0.1:{sock.getsockname()[1]}", endpoint, bucket, db, store, worker)
        finally:
            server.should_exit = True
            thread.join(10)
            db.dispose()
            sock.close()


@pytest.fixture(scope="module")
def video() -> bytes:
    return shared_file(VIDEO).read_bytes()


def _put(url: str, body: bytes) -> None:
    r = httpx.put(url, content=body, timeout=30)  # no Authorization: the URL alone carries the right to write
    assert r.status_code == 200, r.text


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = dict(r.json())
    assert body["code"] == code, body
    return body


# ---------------------------------------------------------------------------------------------- tests


def test_a_job_runs_on_postgres_and_s3_and_every_link_redirects_to_the_bucket(stack: Stack, video: bytes) -> None:
    key = stack.account()
    sha = hashlib.sha256(video).hexdigest()
    created = stack.create(key, title="s3 flow", targetIds=["default", "unitree_g1"], sourceBytes=len(video),
                           sourceSha256=sha)
    job_id = created["jobId"]
    assert created["sourceKey"] == source_key(job_id)

    # the upload URL is a presigned PUT to the bucket, binding the declared size
    put_url = urlsplit(created["uploadUrl"])
    assert f"{put_url.scheme}://{put_url.netloc}" == stack.endpoint
    assert put_url.path == f"/{stack.bucket}/{PREFIX}/jobs/{job_id}/source/upload"
    assert "content-length" in dict(parse_qsl(put_url.query))["X-Amz-SignedHeaders"].split(";")
    assert verify_presigned("PUT", created["uploadUrl"], {"Content-Length": str(len(video))}, secret_key=SECRET)
    assert not verify_presigned("PUT", created["uploadUrl"], {"Content-Length": str(len(video) + 1)}, secret_key=SECRET)
    _put(created["uploadUrl"], video)
    assert stack.store.size(source_key(job_id)) == len(video)

    r = stack.complete(key, job_id)
    assert r.status_code == 200, r.text
    job = r.json()["data"]["job"]
    assert (job["status"], job["stage"]) == ("queued", "queued")
    assert job["source"]["bytes"] == len(video) and job["source"]["sha256"] == sha
    assert job["billing"]["heldVCredits"] == max(1, math.ceil(job["trimEndSec"] - job["trimStartSec"]))
    assert stack.ledger(key, job_id) == ["hold"]
    assert stack.complete(key, job_id).json()["data"]["job"]["status"] == "queued"  # idempotent, no second hold

    assert stack.run_worker() == "completed"
    r = stack.call("GET", f"/api/v1/mocap/jobs/{job_id}/result", key)
    assert r.status_code == 200, r.text
    result = r.json()["data"]
    assert result["status"] == "completed"
    files = {f["name"]: f for o in result["outputs"] for f in o["files"]}
    files.update({name: {"url": result[field]} for name, field in
                  (("manifest.json", "manifestUrl"), ("quality.json", "qualityUrl"), ("preview.mp4", "previewVideoUrl"))})
    assert {"motion.fbx", "motion.bvh", "motion.glb", "g1_motion.json", "g1_motion.csv"} <= set(files)

    listed = stack.store.client.list_objects_v2(Bucket=stack.bucket, Prefix=f"{PREFIX}/jobs/{job_id}/artifacts/")
    assert {o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]} == set(files)  # uploaded by the worker

    manifest: dict[str, Any] = {}
    for name, entry in files.items():
        link = httpx.get(entry["url"], timeout=30)  # the signed link answers 307 to a presigned S3 GET
        assert link.status_code == 307, (name, link.text)
        location = link.headers["location"]
        assert location.startswith(f"{stack.endpoint}/{stack.bucket}/{PREFIX}/jobs/{job_id}/artifacts/{name}?")
        assert verify_presigned("GET", location, {}, secret_key=SECRET)
        assert link.headers["cache-control"] == "no-store"
        body = httpx.get(location, timeout=30)
        assert body.status_code == 200
        assert body.headers["content-disposition"] == f'attachment; filename="{name}"'
        digest = hashlib.sha256(body.content).hexdigest()
        assert link.headers["etag"] == f'"{digest}"'
        if "sha256" in entry:
            assert (digest, len(body.content)) == (entry["sha256"], entry["bytes"])
        if name == "manifest.json":
            manifest = json.loads(body.content)
    assert manifest["source"]["sha256"] == sha and manifest["processor"]["sourceSha256"] == sha
    by_name = {f["name"]: f for f in manifest["files"]}
    for name in set(files) - {"manifest.json"}:
        got = httpx.get(files[name]["url"], follow_redirects=True, timeout=30).content
        assert hashlib.sha256(got).hexdigest() == by_name[name]["sha256"], name

    # the API-key route redirects too; the API key is not forwarded to the bucket
    fbx = files["motion.fbx"]
    path = f"/api/v1/mocap/jobs/{job_id}/artifacts/motion.fbx"
    whole = stack.call("GET", path, key, follow_redirects=True)
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == fbx["sha256"]
    part = stack.call("GET", path, key, headers={"Range": "bytes=1000-1999"}, follow_redirects=True)
    assert part.status_code == 206 and part.content == whole.content[1000:2000]
    head = stack.call("HEAD", path, key)
    assert head.status_code == 200 and int(head.headers["content-length"]) == fbx["bytes"]
    assert head.headers["etag"] == f'"{fbx["sha256"]}"' and "location" not in head.headers
    assert stack.call("GET", path, key, headers={"If-None-Match": f'"{fbx["sha256"]}"'}).status_code == 304

    assert sorted(stack.ledger(key, job_id)) == ["capture", "hold"]
    ready = httpx.get(stack.url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["checks"]["storage"] == "ok"


def test_size_and_checksum_mismatches_are_caught_at_complete_upload(stack: Stack, video: bytes) -> None:
    key = stack.account()
    sha = hashlib.sha256(video).hexdigest()

    nothing = stack.create(key)
    _problem(stack.complete(key, nothing["jobId"]), 409, "upload_missing")

    sized = stack.create(key, sourceBytes=len(video))
    longer = video + b"trailing junk"
    # S3 refuses this body (the signed Content-Length differs); the test server does not check, so the
    # re-check at complete-upload is what stops it here.
    assert not verify_presigned("PUT", sized["uploadUrl"], {"Content-Length": str(len(longer))}, secret_key=SECRET)
    _put(sized["uploadUrl"], longer)
    problem = _problem(stack.complete(key, sized["jobId"]), 422, "upload_size_mismatch")
    assert (problem["jobId"], problem["retryFrom"], problem["stage"]) == (sized["jobId"], "upload", "validation")
    job = stack.job(key, sized["jobId"])
    assert (job["status"], job["stage"]) == ("draft", "awaiting_upload")  # send the file again
    assert stack.ledger(key, sized["jobId"]) == []
    _put(sized["uploadUrl"], video)
    r = stack.complete(key, sized["jobId"])
    assert r.status_code == 200 and r.json()["data"]["job"]["status"] == "queued", r.text
    assert stack.run_worker() == "completed"

    wrong = stack.create(key, sourceSha256=hashlib.sha256(b"another video").hexdigest())
    _put(wrong["uploadUrl"], video)
    _problem(stack.complete(key, wrong["jobId"]), 422, "upload_checksum_mismatch")
    assert stack.job(key, wrong["jobId"])["stage"] == "awaiting_upload"
    right = stack.create(key, sourceSha256=sha)
    _put(right["uploadUrl"], video)
    assert stack.complete(key, right["jobId"]).status_code == 200
    assert stack.run_worker() == "completed"


def test_an_upload_past_the_plan_limit_is_refused_and_deleted(stack: Stack, video: bytes) -> None:
    from mocapd.db.models import Plan

    with stack.db.write() as s:
        if s.get(Plan, "tiny") is None:
            s.add(Plan(name="tiny", max_active_jobs=2, max_duration_s=60.0, max_file_bytes=TINY_PLAN_BYTES,
                       allowed_targets=["*"], retention_days=1, queue_weight=1, active=True))
    key = stack.account("tiny")
    _problem(stack.call("POST", "/api/v1/mocap/jobs", key, json={"sourceFilename": "a.mp4", "targetIds": ["default"],
                                                                 "sourceBytes": len(video)}),
             413, "api_file_size_limit_exceeded")
    created = stack.create(key)  # no size declared: the PUT cannot be bounded, complete-upload must refuse it
    assert created["maxUploadBytes"] == TINY_PLAN_BYTES
    _put(created["uploadUrl"], video)
    assert stack.store.exists(source_key(created["jobId"]))
    _problem(stack.complete(key, created["jobId"]), 413, "api_file_size_limit_exceeded")
    job = stack.job(key, created["jobId"])
    assert job["status"] == "failed" and job["error"]["code"] == "api_file_size_limit_exceeded"
    assert not stack.store.exists(source_key(created["jobId"]))  # the oversized object is gone
    assert stack.ledger(key, created["jobId"]) == []


def test_a_source_replaced_after_admission_changes_nothing(stack: Stack, video: bytes) -> None:
    """The presigned URL stays valid after admission and the bucket takes the PUT, but the job was admitted
    with a snapshot no URL names: the worker processes exactly the bytes probed and billed."""
    key = stack.account()
    created = stack.create(key)
    _put(created["uploadUrl"], video)
    assert stack.complete(key, created["jobId"]).json()["data"]["job"]["status"] == "queued"
    _put(created["uploadUrl"], video[: len(video) // 2])  # the presigned URL is still valid after admission
    assert stack.run_worker() == "completed"
    r = stack.call("GET", f"/api/v1/mocap/jobs/{created['jobId']}/result", key)
    quality = httpx.get(r.json()["data"]["qualityUrl"], timeout=30, follow_redirects=True).json()
    assert quality["sourceSha256"] == hashlib.sha256(video).hexdigest()  # what the worker was given
    assert sorted(stack.ledger(key, created["jobId"])) == ["capture", "hold"]


def test_a_source_tampered_with_in_the_bucket_fails_the_job_without_a_charge(stack: Stack, video: bytes) -> None:
    """Defence in depth: should the admitted object itself change (someone with bucket credentials), the
    worker's check refuses it (source_changed) and releases the hold."""
    from mocapd.db.models import Job

    key = stack.account()
    created = stack.create(key)
    _put(created["uploadUrl"], video)
    assert stack.complete(key, created["jobId"]).json()["data"]["job"]["status"] == "queued"
    with stack.db.read() as s:
        admitted = s.get(Job, created["jobId"]).source_key  # type: ignore[union-attr]
    stack.store.client.put_object(Bucket=stack.bucket, Key=f"{PREFIX}/{admitted}", Body=video[: len(video) // 2])
    assert stack.run_worker() == "failed"
    job = stack.job(key, created["jobId"])
    assert job["status"] == "failed" and job["error"]["code"] == "source_changed"
    assert job["error"]["stage"] == "preflight" and job["attempts"] == 1
    assert sorted(stack.ledger(key, created["jobId"])) == ["hold", "release"]


def test_housekeeping_deletes_expired_uploads_and_purged_jobs_from_the_bucket(stack: Stack, video: bytes) -> None:
    from datetime import UTC, datetime, timedelta

    from mocapd.db.models import Job
    from mocapd.worker.housekeeping import expire_drafts, purge_finished

    key = stack.account()
    done = stack.create(key, targetIds=["default"])
    _put(done["uploadUrl"], video)
    assert stack.complete(key, done["jobId"]).status_code == 200
    assert stack.run_worker() == "completed"
    draft = stack.create(key)
    _put(draft["uploadUrl"], video)
    now = datetime.now(UTC)
    with stack.db.write() as s:  # age these two jobs only; the other tests' jobs stay young
        s.get(Job, done["jobId"]).purge_after = now - timedelta(minutes=1)  # type: ignore[union-attr]
        s.get(Job, draft["jobId"]).created_at = now - timedelta(days=30)  # type: ignore[union-attr]

    def keys(job_id: str) -> list[str]:
        listed = stack.store.client.list_objects_v2(Bucket=stack.bucket, Prefix=f"{PREFIX}/jobs/{job_id}/")
        return [o["Key"] for o in listed.get("Contents", [])]

    assert len(keys(done["jobId"])) > 5 and keys(draft["jobId"]) == [f"{PREFIX}/{source_key(draft['jobId'])}"]
    assert expire_drafts(stack.db, stack.store, draft_ttl_s=10 * 86400) == [draft["jobId"]]
    assert keys(draft["jobId"]) == []
    assert stack.job(key, draft["jobId"])["stage"] == "expired"
    assert purge_finished(stack.db, stack.store) == [done["jobId"]]
    assert keys(done["jobId"]) == []
    assert stack.call("GET", f"/api/v1/mocap/jobs/{done['jobId']}", key).status_code == 404


def test_the_python_client_runs_a_job_through_s3(stack: Stack, tmp_path: Path) -> None:
    """The SDK uploads to a presigned S3 PUT (no JSON answer; complete-upload checks the digest) and
    downloads through the 307 redirects, verifying every file."""
    from mocapd.client.api import MocapdClient
    from mocapd.client.flow import JobRequest, JobRunner
    from mocapd.client.records import RecordStore

    key = stack.account()
    src = shared_file(VIDEO)
    with MocapdClient(stack.url, key, timeout_s=30) as client:
        runner = JobRunner(client, RecordStore(tmp_path / "state"))
        record = runner.start(src, JobRequest(title="sdk on s3"), tmp_path / "out", download=True)
        record = runner.run(record, wait=False)  # created, uploaded, admitted
        assert record.job_id is not None and stack.job(key, record.job_id)["status"] == "queued"
        assert stack.run_worker() == "completed"
        record = runner.run(record)
    files = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_file())
    assert "motion.fbx" in files and "manifest.json" in files
    assert stack.ledger(key, record.job_id).count("capture") == 1
