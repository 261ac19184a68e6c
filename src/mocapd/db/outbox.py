"""The webhook outbox: an event becomes a message plus one pending delivery per subscribed endpoint,
written with the caller's session, so in the same transaction as the change it reports. A crash
before the commit loses the change and its message together; after it, a dispatcher delivers.

`enqueue_event` is the one entry point (jobs, avatars, tests); `record_job_status` is what the job event
log (`mocapd.db.events`) calls on every status change.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mocapd.db.models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from mocapd.domain.webhooks import subscribed, webhook_event_for
from mocapd.domain.wire import iso, job_dict

__all__ = ["encode_body", "enqueue_event", "new_delivery_id", "new_message_id", "record_job_status"]


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_delivery_id() -> str:
    return "dlv_" + secrets.token_hex(12)


def encode_body(event_type: str, timestamp: datetime, data: dict[str, Any]) -> str:
    """The message body of SPEC 13, compact JSON: the bytes stored are the bytes signed and sent."""
    return json.dumps({"type": event_type, "timestamp": iso(timestamp), "data": data}, separators=(",", ":"))


def enqueue_event(
    session: Session,
    account_id: str,
    event_type: str,
    data: dict[str, Any],
    *,
    job_id: str | None = None,
    timestamp: datetime | None = None,
    endpoint_id: str | None = None,
) -> str | None:
    """Write ``event_type`` with ``data`` (``{"job": ...}`` or ``{"avatar": ...}``) for every enabled
    endpoint of the account subscribed to it (or only ``endpoint_id``, subscribed or not: the test
    event), in the caller's transaction. Returns the message id, or None when no endpoint wants it (then
    nothing is written: one indexed read is the whole cost for accounts without webhooks)."""
    q = select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.account_id == account_id)
    if endpoint_id is not None:
        q = q.where(WebhookEndpoint.id == endpoint_id)
    else:
        q = q.where(WebhookEndpoint.enabled.is_(True))
    targets = [r.id for r in session.execute(q) if endpoint_id is not None or subscribed(r.events, event_type)]
    if not targets:
        return None
    now = timestamp or datetime.now(UTC)
    msg_id = new_message_id()
    session.execute(
        insert(WebhookMessage).values(
            id=msg_id,
            account_id=account_id,
            event_type=event_type,
            job_id=job_id,
            body=encode_body(event_type, now, data),
            created_at=now,
        )
    )
    session.execute(
        insert(WebhookDelivery),
        [
            {
                "id": new_delivery_id(),
                "endpoint_id": ep,
                "message_id": msg_id,
                "event_type": event_type,
                "job_id": job_id,
                "status": "pending",
                "attempt": 0,
                "next_attempt_at": now,
                "lease_token": 0,
                "created_at": now,
                "updated_at": now,
            }
            for ep in targets
        ],
    )
    return msg_id


def record_job_status(session: Session, job: Any, status: str, at: datetime) -> str | None:
    """A job's status change as its webhook event (``job.<status>``, none for ``draft``), carrying the
    whole job object as it is now. ``job`` is a `Job` or a ``jobs`` row returned by a statement."""
    event_type = webhook_event_for(str(status))
    if event_type is None:
        return None
    return enqueue_event(session, job.account_id, event_type, {"job": job_dict(job)}, job_id=job.id, timestamp=at)
