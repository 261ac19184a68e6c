"""Racing uploads against a real uvicorn server: concurrent PUTs to one upload URL, PUTs that end after
complete-upload, and (S3 mode) presigned PUTs after admission. Whatever the interleaving, the recorded
size and SHA-256 describe the stored bytes, and the admitted source is the one probed and billed, for
good: the worker's check of the source (`worker.runner._check_source`) passes.

Local store on SQLite and PostgreSQL; S3 mode against moto's server on PostgreSQL."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mocapd.api.app import create_app
from mocapd.config import Settings
from mocapd.db.accounts import create_account, create_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant
from mocapd.db.models import Job
from mocapd.storage import ObjectStore, open_store
from tests.conftest import shared_file
from tests.support.postgres import fresh_postgres
from tests.support.server import uvicorn_server

VIDEO = "pose2sim_balancing/cam01.mp4"
OTHER_VIDEO = "pose2sim_balancing/cam02.mp4"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Served:
    url: str
    db: Database
    store: ObjectStore
    key: str

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {self.key}"}, timeout=60, **kw)

    def create(self) -> dict[str, Any]:
        r = self.call("POST", "/api/v1/mocap/jobs", json={"sourceFilename": "clip.mp4", "targetIds": ["default"]})
        assert r.status_code == 201, r.text
        return dict(r.json()["data"])

    def complete(self, job_id: str) -> httpx.Response:
        return self.call("POST", f"/api/v1/mocap/jobs/{job_id}/complete-upload")

    def row(self, job_id: str) -> Job:
        with self.db.read() as s:
            job = s.get(Job, job_id)
            assert job is not None
            s.expunge(job)
            return job

    def stored_sha(self, key: str) -> str:
        return self.store.hash_object(key).sha256

    def assert_source_consistent(self, job_id: str) -> Job:
        """The recorded digest is the digest of the object the job's source key names."""
        job = self.row(job_id)
        assert job.upload_sha256 is not None
        assert self.stored_sha(job.source_key) == job.upload_sha256, f"stored bytes differ from the record ({job.stage})"
        return job


@contextmanager
def served_on(backend: str, data_dir: Path, **settings: Any) -> Iterator[Served]:
    with (fresh_postgres("mocapd_races") if backend == "postgresql" else nullcontext(None)) as db_url:
        cfg = Settings(data_dir=data_dir, database_url=db_url, secret="races", **settings)
        with uvicorn_server(create_app(cfg)) as url:
            db = Database(cfg.resolved_database_url)
            with db.write() as s:
                acct = create_account(s, "races", "starter")
                grant(s, acct.id, 500, "api")
                key = create_key(s, acct)
            try:
                yield Served(url, db, open_store(cfg), key)
            finally:
                db.dispose()


def _slow(data: bytes, gate: threading.Event, started: threading.Event) -> Iterator[bytes]:
    """The body in two halves: the second only once ``gate`` is set."""
    half = len(data) // 2
    yield data[:half]
    started.set()
    assert gate.wait(60)
    yield data[half:]


# ---------------------------------------------------------------- local store


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def local(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_on(request.param, tmp_path_factory.mktemp("races")) as served:
        yield served


def test_concurrent_puts_record_the_bytes_stored(local: Served) -> None:
    rng = random.Random(7)
    for _ in range(6):
        job = local.create()
        bodies = [rng.randbytes(200_000 + i) for i in range(6)]

        def put(body: bytes, url: str = job["uploadUrl"]) -> httpx.Response:
            return httpx.put(url, content=(body[i:i + 16384] for i in range(0, len(body), 16384)),
                             timeout=60)

        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(put, bodies))
        assert [r.status_code for r in answers] == [200] * len(bodies)
        row = local.assert_source_consistent(job["jobId"])
        assert row.upload_sha256 in {sha(b) for b in bodies}
        assert row.upload_bytes == local.store.size(row.source_key)


def test_a_put_ending_after_admission_replaces_nothing(local: Served) -> None:
    video = shared_file(VIDEO).read_bytes()
    other = shared_file(OTHER_VIDEO).read_bytes()
    job = local.create()
    assert httpx.put(job["uploadUrl"], content=video, timeout=60).status_code == 200
    gate, started = threading.Event(), threading.Event()
    late: dict[str, httpx.Response] = {}
    writer = threading.Thread(target=lambda: late.setdefault(
        "r", httpx.put(job["uploadUrl"], content=_slow(other, gate, started), timeout=60)))
    writer.start()
    assert started.wait(30)
    r = local.complete(job["jobId"])
    assert r.status_code == 200 and r.json()["data"]["job"]["status"] == "queued", r.text
    gate.set()
    writer.join(60)
    assert late["r"].status_code == 409 and late["r"].json()["code"] == "job_not_awaiting_upload"
    row = local.assert_source_consistent(job["jobId"])
    assert row.upload_sha256 == sha(video)
    # nobody can replace it afterwards either
    assert httpx.put(job["uploadUrl"], content=other, timeout=60).status_code == 409
    local.assert_source_consistent(job["jobId"])


def race_puts_against_complete_upload(served: Served) -> None:
    """Four clients keep PUTting one of two videos while complete-upload runs: the job is admitted with
    the bytes its record names, and complete-upload answers that digest."""
    bodies = [shared_file(VIDEO).read_bytes(), shared_file(OTHER_VIDEO).read_bytes()]
    job = served.create()
    assert httpx.put(job["uploadUrl"], content=bodies[0], timeout=60).status_code == 200
    stop = threading.Event()

    def hammer(i: int) -> None:
        while not stop.is_set():
            httpx.put(job["uploadUrl"], content=bodies[i % 2], timeout=60)
            i += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    r = served.complete(job["jobId"])
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(60)
    assert r.status_code == 200 and r.json()["data"]["job"]["status"] == "queued", r.text
    row = served.assert_source_consistent(job["jobId"])
    assert row.upload_sha256 in {sha(b) for b in bodies}
    assert r.json()["data"]["job"]["source"]["sha256"] == row.upload_sha256


def test_puts_racing_complete_upload_admit_what_they_recorded(local: Served) -> None:
    race_puts_against_complete_upload(local)


# ---------------------------------------------------------------- S3 (moto)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.integration.test_s3_storage import make_bucket, moto_server, set_aws_env

    with pytest.MonkeyPatch.context() as mp, moto_server() as endpoint:
        set_aws_env(mp)
        bucket = make_bucket(endpoint)
        with served_on("postgresql", tmp_path_factory.mktemp("races-s3"), storage_url=f"s3://{bucket}/mocapd",
                       s3_endpoint_url=endpoint, s3_region="us-east-1") as served:
            yield served


def test_s3_presigned_puts_after_admission_replace_nothing(s3: Served) -> None:
    video = shared_file(VIDEO).read_bytes()
    other = shared_file(OTHER_VIDEO).read_bytes()
    job = s3.create()
    assert httpx.put(job["uploadUrl"], content=video, timeout=60).status_code == 200
    r = s3.complete(job["jobId"])
    assert r.status_code == 200 and r.json()["data"]["job"]["status"] == "queued", r.text
    # the presigned URL is valid until it expires, and the bucket takes the PUT...
    assert httpx.put(job["uploadUrl"], content=other, timeout=60).status_code == 200
    # ...but the admitted source is not what it names
    row = s3.assert_source_consistent(job["jobId"])
    assert row.upload_sha256 == sha(video)


def test_s3_puts_racing_complete_upload(s3: Served) -> None:
    race_puts_against_complete_upload(s3)
