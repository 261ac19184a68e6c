"""The per-key request budget: a token bucket on the ``api_keys`` row, so every API process and every
replica spends from the same bucket (the database decides, not process memory).

A request costs one statement when it is allowed: ``UPDATE api_keys SET rl_tokens = avail - 1, rl_at =
now WHERE key_sha256 = :key AND revoked_at IS NULL AND avail >= 1 RETURNING account_id``, where
``avail = min(burst, tokens + (now - rl_at) * rate)`` (a fresh key starts full). No row back means an
unknown or revoked key, or an empty bucket: `bucket_state` then tells which, and when the next token
comes. Times are unix seconds from the API process's clock; a clock behind the row's never refills.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Float, Table, bindparam, case, func, select, text, update

from mocapd.db.engine import Database
from mocapd.db.models import Account, ApiKey, Plan

__all__ = ["BucketState", "bucket_state", "plan_budget", "spend"]


_NO_FSYNC = text("SET LOCAL synchronous_commit = off")


@functools.cache
def _spend_sql() -> Any:
    t = cast(Table, ApiKey.__table__)
    now = bindparam("now", type_=Float)
    rate = bindparam("rate", type_=Float)
    burst = bindparam("burst", type_=Float)
    tokens = func.coalesce(t.c.rl_tokens, burst)
    last = func.coalesce(t.c.rl_at, now)
    refilled = tokens + case((now > last, now - last), else_=0.0) * rate
    avail = case((refilled > burst, burst), else_=refilled)
    return (
        update(t)
        .where(t.c.key_sha256 == bindparam("key"), t.c.revoked_at.is_(None), avail >= 1.0)
        .values(rl_tokens=avail - 1.0, rl_at=case((now > last, now), else_=last))
        .returning(t.c.account_id)
    )


def spend(db: Database, key_sha256: str, now_s: float, rate: float, burst: float) -> str | None:
    """Take one token from the key's bucket: its account id, or None (unknown, revoked or empty)."""
    with db.write_connect() as s:
        if not db.sqlite:
            # a bucket's last few milliseconds may be lost in a crash, harmlessly: this commit does not
            # wait for the WAL to reach the disk (3-4 ms a request here; SQLite's WAL mode never waits)
            s.execute(_NO_FSYNC)
        row = s.execute(_spend_sql(), {"key": key_sha256, "now": now_s, "rate": rate, "burst": burst}).first()
    return None if row is None else str(row[0])


@dataclass(frozen=True)
class BucketState:
    known: bool  # an unrevoked key
    retry_after_s: float  # until the next token


def bucket_state(db: Database, key_sha256: str, now_s: float, rate: float, burst: float) -> BucketState:
    with db.connect() as conn:
        row = conn.execute(
            select(ApiKey.revoked_at, ApiKey.rl_tokens, ApiKey.rl_at).where(ApiKey.key_sha256 == key_sha256)
        ).first()
    if row is None or row.revoked_at is not None:
        return BucketState(False, 0.0)
    tokens = burst if row.rl_tokens is None else float(row.rl_tokens)
    last = now_s if row.rl_at is None else float(row.rl_at)
    avail = min(burst, tokens + max(0.0, now_s - last) * rate)
    return BucketState(True, max(0.0, (1.0 - avail) / rate) if rate > 0 else 3600.0)


def plan_budget(db: Database, key_sha256: str) -> tuple[float, float] | None:
    """(requests a second, burst) of the plan of the key's account, or None for an unknown key."""
    with db.connect() as conn:
        row = conn.execute(
            select(Plan.rate_limit_rps, Plan.rate_limit_burst)
            .join(Account, Account.plan_name == Plan.name)
            .join(ApiKey, ApiKey.account_id == Account.id)
            .where(ApiKey.key_sha256 == key_sha256)
        ).first()
    return None if row is None else (float(row[0]), float(row[1]))
