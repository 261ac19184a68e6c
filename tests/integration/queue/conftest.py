"""Fixtures: every queue test runs on SQLite and on PostgreSQL (one fresh database per test run,
tables emptied between tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mocapd.db.engine import Database
from mocapd.db.models import Base
from mocapd.storage import LocalStore
from tests.integration.queue.support import new_database, sqlite_url
from tests.support.postgres import fresh_postgres


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[Database]:
    with fresh_postgres() as url:
        db = new_database(url)
        yield db
        db.dispose()


def _empty(db: Database) -> None:
    names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
    with db.write() as s:
        s.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = new_database(sqlite_url(tmp_path))
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("_pg_database")
        _empty(database)
        yield database


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "objects")
