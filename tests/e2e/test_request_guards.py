"""Request-level guards on a real uvicorn server, on SQLite and PostgreSQL: request bodies are held to
the limit as they stream in (chunked bodies too); a client that drops mid-upload is one log line and a
499 in /metrics, leaving nothing behind; signed links never name a host the client made up; /metrics is
the operator's (loopback, or a token)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from mocapd.api.app import create_app
from mocapd.api.middleware import MAX_JSON_BODY
from mocapd.config import Settings
from mocapd.db.accounts import create_account, create_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant
from mocapd.db.models import Job
from tests.support.postgres import fresh_postgres
from tests.support.server import uvicorn_server

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class Served:
    url: str
    settings: Settings
    db: Database
    key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def create(self, **headers: str) -> dict:  # type: ignore[type-arg]
        r = httpx.post(self.url + "/api/v1/mocap/jobs", json={"sourceFilename": "a.mp4", "targetIds": ["default"]},
                       headers={**self.headers(), **headers}, timeout=30)
        assert r.status_code == 201, r.text
        return dict(r.json()["data"])

    def metrics(self) -> str:
        r = httpx.get(self.url + "/metrics", timeout=30)
        assert r.status_code == 200, r.text
        return r.text

    def jobs(self) -> int:
        with self.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(Job)) or 0)


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data: Path = tmp_path_factory.mktemp("guards")
    if request.param == "postgresql":
        ctx = fresh_postgres("mocapd_guards")
    else:
        from contextlib import nullcontext

        ctx = nullcontext(None)  # type: ignore[assignment]
    with ctx as db_url:
        cfg = Settings(data_dir=data, database_url=db_url, secret="guards")
        with uvicorn_server(create_app(cfg)) as url:
            db = Database(cfg.resolved_database_url)
            with db.write() as s:
                acct = create_account(s, "guards", "starter")
                grant(s, acct.id, 300, "api")
                key = create_key(s, acct)
            try:
                yield Served(url, cfg, db, key)
            finally:
                db.dispose()


def _chunks(data: bytes, size: int = 4096) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_chunked_body_past_the_limit_is_413(served: Served) -> None:
    before = served.jobs()
    body = json.dumps({"sourceFilename": "a.mp4", "targetIds": ["default"] * 10_000}).encode()
    assert len(body) > MAX_JSON_BODY
    r = httpx.post(served.url + "/api/v1/mocap/jobs", content=_chunks(body), headers=served.headers(), timeout=30)
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "payload_too_large"
    assert served.jobs() == before


def test_a_huge_chunked_body_is_cut_off_early(served: Served) -> None:
    """200 MB offered: the server stops reading near the limit (the client notices well before the end)."""
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"sourceFilename": "a.mp4", "targetIds": ["default"], "title": "'
        for _ in range(200 * 16):
            sent += 65536
            yield b"x" * 65536
        yield b'"}'

    before = served.jobs()
    r = httpx.post(served.url + "/api/v1/mocap/jobs", content=endless(), headers=served.headers(), timeout=30)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert sent < 50 * 1024 * 1024, f"the client sent {sent} bytes before the server answered"
    assert served.jobs() == before


def test_small_chunked_body_is_accepted(served: Served) -> None:
    body = json.dumps({"sourceFilename": "a.mp4", "targetIds": ["default"], "title": "chunked"}).encode()
    r = httpx.post(served.url + "/api/v1/mocap/jobs", content=_chunks(body, 16), headers=served.headers(), timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["data"]["status"] == "draft"


def test_declared_length_past_the_limit_is_refused_unread(served: Served) -> None:
    body = json.dumps({"sourceFilename": "a.mp4", "targetIds": ["default"], "title": "x" * MAX_JSON_BODY}).encode()
    r = httpx.post(served.url + "/api/v1/mocap/jobs", content=body, headers=served.headers(), timeout=30)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


# ---------------------------------------------------------------- a client that drops mid-upload


def test_client_dropping_mid_upload_is_one_line_and_a_499(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    job = served.create()
    put = urlsplit(job["uploadUrl"])
    caplog.set_level(logging.INFO)
    with socket.create_connection((put.hostname, put.port)) as sock:
        sock.sendall(f"PUT {put.path}?{put.query} HTTP/1.1\r\nHost: {put.netloc}\r\n"
                     "Content-Type: video/mp4\r\nContent-Length: 5000000\r\n\r\n".encode())
        sock.sendall(b"\0" * 300_000)
        time.sleep(0.3)  # the server is now writing the upload
    route = 'route="/uploads/{job_id}",method="PUT"'
    deadline = time.monotonic() + 10
    while f'{route},status="499"' not in (m := served.metrics()):
        assert time.monotonic() < deadline, m
        time.sleep(0.05)
    assert f'{route},status="500"' not in m
    records = [r for r in caplog.records if r.levelno >= logging.INFO and "disconnect" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None, [r.getMessage() for r in records]
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    # nothing half-written: no source object, no temporary file, the job still waits for its upload
    objects = served.settings.data_dir / "objects"
    assert [p for p in objects.rglob("*") if p.is_file()] == []
    r = httpx.get(f"{served.url}/api/v1/mocap/jobs/{job['jobId']}", headers=served.headers(), timeout=30)
    assert r.json()["data"]["job"]["stage"] == "awaiting_upload"
    # and the same link still takes the whole file
    r = httpx.put(job["uploadUrl"], content=b"\1" * 1000, timeout=30)
    assert r.status_code == 200 and r.json()["data"]["bytes"] == 1000


# ---------------------------------------------------------------- the Host header and signed links


def test_a_spoofed_host_never_names_the_links(served: Served) -> None:
    own = urlsplit(served.url)
    job = served.create(Host="evil.example")
    link = urlsplit(job["uploadUrl"])
    assert link.hostname == own.hostname and link.port == own.port, job["uploadUrl"]
    again = httpx.post(f"{served.url}/api/v1/mocap/jobs/{job['jobId']}/upload-url",
                       headers={**served.headers(), "Host": "evil.example:443"}, timeout=30)
    assert urlsplit(again.json()["data"]["uploadUrl"]).hostname == own.hostname
    assert httpx.put(job["uploadUrl"], content=b"x" * 10, timeout=30).status_code == 200  # the link works


def test_local_hosts_are_taken_as_sent(served: Served) -> None:
    port = urlsplit(served.url).port
    job = served.create(Host=f"localhost:{port}")
    assert job["uploadUrl"].startswith(f"http://localhost:{port}/uploads/")


def test_configured_hosts_are_taken(tmp_path: Path) -> None:
    cfg = Settings(data_dir=tmp_path, secret="guards", allowed_hosts="mocap.example.com, other.example")
    with uvicorn_server(create_app(cfg)) as url:
        db = Database(cfg.resolved_database_url)
        with db.write() as s:
            acct = create_account(s, "hosts", "starter")
            grant(s, acct.id, 10, "api")
            key = create_key(s, acct)
        db.dispose()
        served = Served(url, cfg, db, key)
        assert served.create(Host="mocap.example.com")["uploadUrl"].startswith("http://mocap.example.com/uploads/")
        assert urlsplit(served.create(Host="evil.example")["uploadUrl"]).hostname == "127.0.0.1"


# ---------------------------------------------------------------- /metrics


def test_metrics_answer_this_machine_only_by_default(served: Served) -> None:
    assert "mocapd_jobs" in served.metrics()  # from 127.0.0.1
    # the same request relayed by a proxy on this machine for a remote client (uvicorn trusts
    # X-Forwarded-For from 127.0.0.1, so the client is the remote address)
    r = httpx.get(served.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert "mocapd_jobs" not in r.text


def test_metrics_token(tmp_path: Path) -> None:
    cfg = Settings(data_dir=tmp_path, secret="guards", metrics_token="s3cret-metrics")
    with uvicorn_server(create_app(cfg)) as url:
        remote = {"X-Forwarded-For": "203.0.113.9"}
        assert httpx.get(url + "/metrics", timeout=30).status_code == 401  # a token, once set, is needed everywhere
        assert httpx.get(url + "/metrics", headers={**remote, "Authorization": "Bearer nope"}, timeout=30).status_code == 401
        r = httpx.get(url + "/metrics", headers={**remote, "Authorization": "Bearer s3cret-metrics"}, timeout=30)
        assert r.status_code == 200 and "mocapd_jobs" in r.text
