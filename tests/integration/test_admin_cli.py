"""The operator interface of `mocapd` (SPEC section 1), run as users run it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mocapd.cli import app
from mocapd.db.accounts import authenticate
from mocapd.db.engine import Database
from mocapd.db.ledger import balance

runner = CliRunner()


def _run(data: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return result.output


def test_accounts_keys_and_credits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert "up to date" in _run(data, "db", "upgrade")
    assert "created account acme" in _run(data, "accounts", "create", "acme", "--plan", "premium")
    key = _run(data, "keys", "create", "acme").strip().splitlines()[-1]
    assert key.startswith("sk_live_") and len(key) > 40
    _run(data, "credits", "grant", "acme", "120", "--reason", "welcome")
    _run(data, "credits", "grant", "acme", "30", "--channel", "studio")
    assert "premium" in _run(data, "accounts", "list")
    assert key[:16] in _run(data, "keys", "list", "acme")
    db = Database(f"sqlite:///{data / 'mocapd.sqlite3'}")
    try:
        with db.read() as s:
            acct = authenticate(s, key)
            assert acct is not None and acct.plan_name == "premium"
            assert balance(s, acct.id, "api").balance == 120 and balance(s, acct.id, "studio").balance == 30
            raw = s.execute(text("select key_sha256 from api_keys")).scalar()
            assert raw != key and key not in str(raw)  # only the hash is stored
        assert "revoked" in _run(data, "keys", "revoke", key[:14])
        with db.read() as s:
            assert authenticate(s, key) is None
    finally:
        db.dispose()


@pytest.mark.parametrize(
    "args",
    [["accounts", "create", "x", "--plan", "gold"], ["keys", "create", "nobody"], ["keys", "revoke", "sk_live_"],
     ["credits", "grant", "nobody", "5"], ["credits", "grant", "acme", "5", "--channel", "crypto"]],
)
def test_mistakes_are_reported_without_a_traceback(tmp_path: Path, args: list[str]) -> None:
    data = tmp_path / "data"
    _run(data, "accounts", "create", "acme")
    result = runner.invoke(app, [*args, "--data-dir", str(data)])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_help_lists_the_operator_and_client_commands() -> None:
    out = runner.invoke(app, ["--help"]).output
    for cmd in ("serve", "api", "worker", "accounts", "keys", "credits", "db", "submit", "resume", "status", "download", "jobs"):
        assert cmd in out


def test_purge_prints_counts_and_the_jobs_it_touched(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.integration.queue.support import create_draft, seed_account

    data = tmp_path / "data"
    assert "returned 0 expired leases to the queue, expired 0 drafts, purged 0 finished jobs" in _run(data, "purge")
    db = Database(f"sqlite:///{data / 'mocapd.sqlite3'}")
    try:
        acct = seed_account(db, "old")
        stale = create_draft(db, acct, now=datetime.now(UTC) - timedelta(days=3))
        create_draft(db, acct)  # young: kept
    finally:
        db.dispose()
    out = _run(data, "purge")
    assert out.splitlines()[0] == "returned 0 expired leases to the queue, expired 1 drafts, purged 0 finished jobs"
    assert f"expired draft {stale}" in out.splitlines()
