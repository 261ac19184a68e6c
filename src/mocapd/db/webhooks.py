"""Webhook endpoints and the delivery queue on ``webhook_deliveries``.

Deliveries are claimed like jobs (`mocapd.db.queue`): one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n
[FOR UPDATE SKIP LOCKED]) RETURNING`` moves each due delivery's ``next_attempt_at`` past a lease and
bumps its ``attempt`` and ``lease_token``. On PostgreSQL ``SKIP LOCKED`` keeps two dispatchers off one
row; on SQLite the statement runs under the database's single write lock (``BEGIN IMMEDIATE`` behind
the write gate), so a second claimer sees the row no longer due. Either way one attempt is sent by one
dispatcher. The result is written only under the claim's token (`record_attempt`); a dispatcher that
dies mid-send leaves the row to be claimed again when its lease runs out (at least once).
"""

from __future__ import annotations

import base64
import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from mocapd.db.engine import Database
from mocapd.db.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from mocapd.db.outbox import new_delivery_id

__all__ = [
    "ClaimedDelivery",
    "claim_deliveries",
    "new_secret",
    "purge_messages",
    "record_attempt",
    "redeliver",
]


def _now() -> datetime:
    return datetime.now(UTC)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class ClaimedDelivery:
    """One attempt a dispatcher owns: everything needed to send it, fenced by ``lease_token``."""

    id: str
    endpoint_id: str
    message_id: str  # the webhook-id
    attempt: int  # 1 for the first attempt
    lease_token: int
    url: str
    secret: str
    enabled: bool
    body: str


@functools.cache
def _claim_sql(dialect: str) -> tuple[Any, Any]:
    t = cast(Table, WebhookDelivery.__table__)
    ts = t.c.next_attempt_at.type
    now = bindparam("now", type_=ts)
    due = (
        select(t.c.id)
        .where(t.c.status == "pending", t.c.next_attempt_at <= now)
        .order_by(t.c.next_attempt_at)
        .limit(bindparam("n"))
    )
    values = {
        "attempt": t.c.attempt + 1,
        "lease_token": t.c.lease_token + 1,
        "next_attempt_at": bindparam("lease_until", type_=ts),
        "updated_at": now,
    }
    returning = (t.c.id, t.c.endpoint_id, t.c.message_id, t.c.attempt, t.c.lease_token)
    if dialect == "postgresql":
        # UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED) pick: the locked pick is made once (under
        # ``id IN (subquery)`` PostgreSQL may run the subquery again and take more than n rows)
        pick = due.with_for_update(skip_locked=True).subquery("pick")
        take = update(t).where(t.c.id == pick.c.id).values(**values).returning(*returning)
    else:
        take = (
            update(t)
            .where(t.c.id.in_(due.scalar_subquery()), t.c.status == "pending", t.c.next_attempt_at <= now)
            .values(**values)
            .returning(*returning)
        )
    look = select(t.c.id).where(t.c.status == "pending", t.c.next_attempt_at <= now).limit(1)
    return look, take


def claim_deliveries(db: Database, n: int, lease_s: float, *, now: datetime | None = None) -> list[ClaimedDelivery]:
    """Claim up to ``n`` due deliveries for ``lease_s`` seconds (oldest due first). On SQLite an idle
    outbox is seen with a plain read and never takes the write lock."""
    if n <= 0:
        return []
    now = now or _now()
    look, take = _claim_sql(db.engine.dialect.name)
    if db.sqlite:
        with db.connect() as conn:
            if conn.execute(look, {"now": now}).first() is None:
                return []
    with db.write() as s:
        rows = s.execute(take, {"now": now, "n": n, "lease_until": now + timedelta(seconds=lease_s)}).all()
        if not rows:
            return []
        eps = {
            e.id: e
            for e in s.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.secret, WebhookEndpoint.enabled).where(
                    WebhookEndpoint.id.in_({r.endpoint_id for r in rows})
                )
            )
        }
        bodies = {
            m.id: m.body
            for m in s.execute(
                select(WebhookMessage.id, WebhookMessage.body).where(WebhookMessage.id.in_({r.message_id for r in rows}))
            )
        }
    return [
        ClaimedDelivery(
            id=r.id,
            endpoint_id=r.endpoint_id,
            message_id=r.message_id,
            attempt=r.attempt,
            lease_token=r.lease_token,
            url=eps[r.endpoint_id].url,
            secret=eps[r.endpoint_id].secret,
            enabled=bool(eps[r.endpoint_id].enabled),
            body=bodies[r.message_id],
        )
        for r in rows
        if r.endpoint_id in eps and r.message_id in bodies
    ]


def record_attempt(
    db: Database,
    claimed: ClaimedDelivery,
    *,
    ok: bool,
    response_status: int | None,
    error: str | None,
    retry_schedule_s: Sequence[float],
    disable_after_s: float,
    now: datetime | None = None,
) -> str | None:
    """Write one attempt's outcome under its claim: succeeded; or pending again after the schedule's
    next delay; or failed when the schedule is spent. An endpoint whose deliveries have all failed for
    ``disable_after_s`` is disabled. Returns the delivery's new status, or None if the claim was lost."""
    now = now or _now()
    t = cast(Table, WebhookDelivery.__table__)
    values: dict[str, Any] = {"response_status": response_status, "last_error": error, "updated_at": now}
    if ok:
        values.update(status="succeeded", next_attempt_at=None)
    elif claimed.attempt - 1 < len(retry_schedule_s) and claimed.enabled:
        values.update(status="pending", next_attempt_at=now + timedelta(seconds=retry_schedule_s[claimed.attempt - 1]))
    else:
        values.update(status="failed", next_attempt_at=None)
    with db.write() as s:
        done = cast(CursorResult[Any], s.execute(
            update(t).where(t.c.id == claimed.id, t.c.lease_token == claimed.lease_token).values(**values)
        )).rowcount
        if not done:
            return None
        ep = s.get(WebhookEndpoint, claimed.endpoint_id)
        if ep is not None:
            if ok:
                ep.failing_since = None
            elif ep.failing_since is None:
                ep.failing_since = now
            elif ep.enabled and (now - ep.failing_since).total_seconds() >= disable_after_s:
                ep.enabled = False
                ep.disabled_reason = f"Every delivery failed since {ep.failing_since.isoformat()}."
                ep.updated_at = now
        return str(values["status"])


def redeliver(s: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """A new delivery of the same message (same webhook-id) to the same endpoint, due now."""
    now = _now()
    d = WebhookDelivery(
        id=new_delivery_id(),
        endpoint_id=delivery.endpoint_id,
        message_id=delivery.message_id,
        event_type=delivery.event_type,
        job_id=delivery.job_id,
        status="pending",
        attempt=0,
        next_attempt_at=now,
        lease_token=0,
        created_at=now,
        updated_at=now,
    )
    s.add(d)
    return d


MESSAGE_RETENTION_DAYS = 30


def purge_messages(db: Database, *, now: datetime | None = None, keep_days: int = MESSAGE_RETENTION_DAYS,
                   job_ids: Sequence[str] = ()) -> int:
    """Delete messages (their deliveries cascade) older than ``keep_days`` with no delivery still
    pending, and every message of ``job_ids`` (jobs purged at the end of their retention: the messages
    carry copies of the job). Returns how many were deleted."""
    now = now or _now()
    m, d = cast(Table, WebhookMessage.__table__), cast(Table, WebhookDelivery.__table__)
    pending = select(d.c.id).where(d.c.message_id == m.c.id, d.c.status == "pending").exists()
    with db.write() as s:
        n = cast(CursorResult[Any], s.execute(
            delete(m).where(m.c.created_at < now - timedelta(days=keep_days), ~pending))).rowcount or 0
        if job_ids:
            n += cast(CursorResult[Any], s.execute(delete(m).where(m.c.job_id.in_(list(job_ids))))).rowcount or 0
    return int(n)
