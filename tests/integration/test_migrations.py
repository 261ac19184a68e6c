"""Migration parity: the schema after `alembic upgrade head` equals the models, on SQLite and on the
real PostgreSQL server; and upgrading twice is harmless."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mocapd.db.engine import Database
from mocapd.db.migrate import upgrade
from mocapd.db.models import Base
from tests.integration.queue.support import new_database, sqlite_url
from tests.support.postgres import fresh_postgres


def _diff(url: str, *, from_revision: str | None = None) -> list[object]:
    db = new_database(url) if from_revision is None else Database(url)
    try:
        if from_revision is not None:  # a database an earlier release created
            upgrade(db, from_revision)
        upgrade(db)  # a second upgrade is a no-op
        with db.write_engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        db.dispose()


def test_sqlite_schema_matches_the_models(tmp_path: Path) -> None:
    assert _diff(sqlite_url(tmp_path)) == []


def test_a_sqlite_database_of_the_first_schema_upgrades_to_the_models(tmp_path: Path) -> None:
    assert _diff(sqlite_url(tmp_path), from_revision="0001") == []


@pytest.mark.postgres
def test_postgres_schema_matches_the_models() -> None:
    with fresh_postgres() as url:
        assert _diff(url) == []


@pytest.mark.postgres
def test_a_postgres_database_of_the_first_schema_upgrades_to_the_models() -> None:
    with fresh_postgres() as url:
        assert _diff(url, from_revision="0001") == []
