"""The per-key token bucket on the real databases (a controlled clock), and through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mocapd.api.app import create_app
from mocapd.config import Settings
from mocapd.db.accounts import create_key, hash_key
from mocapd.db.engine import Database
from mocapd.db.models import Account
from mocapd.db.ratelimit import bucket_state, plan_budget, spend
from tests.integration.queue.support import new_database, seed_account, sqlite_url
from tests.support.postgres import fresh_postgres


def _bucket(db: Database) -> None:
    account_id = seed_account(db, "limited")
    with db.write() as s:
        acct = s.get(Account, account_id)
        assert acct is not None
        key = hash_key(create_key(s, acct))
    assert plan_budget(db, key) == (20.0, 40.0)  # the plans' default
    t = 1_000_000.0
    assert [spend(db, key, t, 2.0, 4.0) for _ in range(5)] == [account_id] * 4 + [None]  # a full bucket of 4
    state = bucket_state(db, key, t, 2.0, 4.0)
    assert state.known and state.retry_after_s == pytest.approx(0.5)
    assert spend(db, key, t + 0.4, 2.0, 4.0) is None  # 0.8 of a token
    assert spend(db, key, t + 0.5, 2.0, 4.0) == account_id  # one token refilled
    assert spend(db, key, t + 0.5, 2.0, 4.0) is None
    assert spend(db, key, t - 100.0, 2.0, 4.0) is None  # a clock behind the row's refills nothing
    assert [spend(db, key, t + 100.0, 2.0, 4.0) for _ in range(5)].count(account_id) == 4  # never past the burst
    assert spend(db, "0" * 64, t, 2.0, 4.0) is None and not bucket_state(db, "0" * 64, t, 2.0, 4.0).known


def test_bucket_sqlite(tmp_path: Path) -> None:
    db = new_database(sqlite_url(tmp_path))
    try:
        _bucket(db)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_bucket_postgres() -> None:
    with fresh_postgres() as url:
        db = new_database(url)
        try:
            _bucket(db)
        finally:
            db.dispose()


@pytest.mark.parametrize("limit", [1.0, 0.0])
def test_the_api_answers_429_past_the_budget(tmp_path: Path, limit: float) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret="s", rate_limit_rps=limit)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        db = Database(settings.resolved_database_url)
        account_id = seed_account(db, "a")
        with db.write() as s:
            acct = s.get(Account, account_id)
            assert acct is not None
            key = create_key(s, acct)
        db.dispose()
        h = {"Authorization": f"Bearer {key}"}
        codes = [client.get("/api/v1/account", headers=h).status_code for _ in range(4)]
        if limit == 0:  # the limiter is off
            assert codes == [200] * 4
            return
        assert codes[:2] == [200, 200] and codes[2:] == [429, 429]  # a burst of two
        r = client.get("/api/v1/mocap/jobs", headers=h)
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["code"] == "rate_limited" and r.headers["content-type"] == "application/problem+json"
        assert client.get("/api/v1/account", headers={"Authorization": "Bearer sk_live_nope"}).status_code == 401
