"""Request-level guards on a real uvicorn server, on SQLite and PostgreSQL: request bodies are held to
the limit as they stream in (chunked bodies too)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
