"""The API on each database it supports: a fresh SQLite file, or a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from mocapd.api.app import create_app
from mocapd.config import Settings
from mocapd.db.accounts import create_account, create_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant
from tests.integration.api.conftest import Api
from tests.support.postgres import fresh_postgres

BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def api_on(backend: str, data_dir: Path, **settings: object) -> Iterator[Api]:
    """An `Api` (in-process client, one funded account) on ``backend``."""
    with fresh_postgres("mocapd_api") if backend == "postgresql" else _no_url() as url:
        cfg = Settings(data_dir=data_dir, database_url=url, secret="test-secret", **settings)  # type: ignore[arg-type]
        with TestClient(create_app(cfg), base_url="http://testserver") as client:
            db = Database(cfg.resolved_database_url)
            with db.write() as s:
                acct = create_account(s, "studio-a", "starter")
                grant(s, acct.id, 300, "api", reason="test grant")
                key = create_key(s, acct)
                acct_id = acct.id
            try:
                yield Api(client, cfg, db, key, acct_id)
            finally:
                db.dispose()


@contextmanager
def _no_url() -> Iterator[None]:
    yield None
