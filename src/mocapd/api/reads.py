"""Read models: poll payload, result, lists, events, account and ledger (SPEC 2.4-2.7)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from mocapd.api.serialize import event_dict, job_dict, ledger_dict, result_dict
from mocapd.api.state import AppState
from mocapd.db import ledger
from mocapd.db.accounts import active_job_count, plan_limits
from mocapd.db.models import Account, Artifact, Job, JobEvent, LedgerEntry, Plan
from mocapd.domain.credits import Channel
from mocapd.domain.plans import ENABLED_TARGETS
from mocapd.errors import MocapdError

__all__ = ["account_payload", "find_job", "plausible_job_id", "decode_cursor", "encode_cursor", "events_page", "jobs_page", "ledger_page", "poll_payload"]

POLL_EVENTS = 20


def encode_cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode("|".join(map(str, parts)).encode()).decode().rstrip("=")


def _bad_cursor() -> MocapdError:
    return MocapdError("validation_error", "The cursor is not valid; pass a nextCursor from a previous page, unchanged.",
                       details={"errors": [{"field": "cursor", "message": "not a cursor this service issued"}]})


def decode_cursor(cursor: str, n: int) -> list[str]:
    """The ``n`` parts of a cursor from `encode_cursor`; anything else is 422 ``validation_error``."""
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeError, binascii.Error):
        raise _bad_cursor() from None
    parts = raw.split("|")
    if len(parts) != n:
        raise _bad_cursor()
    return parts


# Cursor parts are checked strictly before they reach SQL: a NUL byte, a naive timestamp or an integer
# past 64 bits would otherwise fail in the driver (a 500) rather than here.
_INT_PART = re.compile(r"[0-9]{1,10}")
_MAX_ID = 2**31 - 1  # ledger ids are 32-bit integers on PostgreSQL
_ID_PART = re.compile(r"[A-Za-z0-9_]{1,64}")


def _cursor_time(part: str) -> datetime:
    try:
        ts = datetime.fromisoformat(part)
        if ts.tzinfo is None:
            raise ValueError(part)
        return ts.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad_cursor() from None


# Reads go through Core statements on the tables (rows, not ORM objects): they work on a Session or a
# bare Connection alike, and skip the ORM's per-object work on the hot polling path.
_JOBS = Job.__table__
_EVENTS = JobEvent.__table__
_ARTIFACTS = Artifact.__table__


def plausible_job_id(job_id: str) -> bool:
    """Could ``job_id`` name a job? (Anything else is looked up nowhere: a NUL byte is a driver error.)"""
    return job_id.startswith("mocap_") and _ID_PART.fullmatch(job_id) is not None


def find_job(conn: Session | Connection, account_id: str, job_id: str) -> Any:
    """The job row if it exists *and* belongs to the account; otherwise 404 (never 403)."""
    row = None
    if plausible_job_id(job_id):
        row = conn.execute(select(_JOBS).where(_JOBS.c.id == job_id)).first()
    if row is None or row.account_id != account_id:
        raise MocapdError("job_not_found", f"No job {job_id[:64]!r} in this account.")
    return row


def _artifacts(s: Session | Connection, job: Any) -> list[Any]:
    if job.status != "completed":
        return []
    return list(s.execute(select(_ARTIFACTS).where(_ARTIFACTS.c.job_id == job.id).order_by(_ARTIFACTS.c.name)))


def result_payload(state: AppState, s: Session | Connection, job: Any, base_url: str, job_out: dict[str, Any] | None = None) -> dict[str, Any]:
    return result_dict(job, _artifacts(s, job), state.signer, base_url, state.settings.download_url_ttl_s, job_out)


def poll_payload(state: AppState, s: Session | Connection, job: Any, base_url: str) -> dict[str, Any]:
    events = list(
        s.execute(select(_EVENTS).where(_EVENTS.c.job_id == job.id).order_by(_EVENTS.c.seq.desc()).limit(POLL_EVENTS))
    )
    events.reverse()
    job_out = job_dict(job)
    result = result_payload(state, s, job, base_url, job_out) if job.status == "completed" else None
    return {"job": job_out, "events": [event_dict(e) for e in events], "result": result}


def events_page(s: Session | Connection, job: Any, after: int, limit: int) -> dict[str, Any]:
    rows = list(
        s.execute(
            select(_EVENTS).where(_EVENTS.c.job_id == job.id, _EVENTS.c.seq > after).order_by(_EVENTS.c.seq).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [event_dict(e) for e in rows], "nextCursor": str(rows[-1].seq) if more and rows else None}


def jobs_page(s: Session | Connection, account_id: str, status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    q = select(_JOBS).where(_JOBS.c.account_id == account_id)
    if status:
        q = q.where(_JOBS.c.status == status)
    if cursor:
        created, job_id = decode_cursor(cursor, 2)
        ts = _cursor_time(created)
        if not _ID_PART.fullmatch(job_id):
            raise _bad_cursor()
        q = q.where((_JOBS.c.created_at < ts) | ((_JOBS.c.created_at == ts) & (_JOBS.c.id < job_id)))
    rows = list(s.execute(q.order_by(_JOBS.c.created_at.desc(), _JOBS.c.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more and rows else None
    return {"items": [job_dict(j) for j in rows], "nextCursor": nxt}


def account_payload(s: Session, account_id: str) -> dict[str, Any]:
    acct = s.get(Account, account_id)
    assert acct is not None
    plan_row = s.get(Plan, acct.plan_name)
    assert plan_row is not None
    plan = plan_limits(plan_row)
    balances = {}
    for channel in Channel:
        b = ledger.balance(s, acct.id, channel)
        balances[channel.value] = {"balance": b.balance, "held": b.held, "available": b.available}
    return {
        "account": {"id": acct.id, "name": acct.name, "createdAt": acct.created_at.isoformat().replace("+00:00", "Z")},
        "plan": plan.name,
        "limits": {
            "maxActiveJobs": plan.max_active_jobs,
            "maxDurationSec": plan.max_duration_s,
            "maxFileBytes": plan.max_file_bytes,
            "allowedTargets": [t for t in ENABLED_TARGETS if plan.allows_target(t)],
            "retentionDays": plan.retention_days,
            "queueWeight": plan.queue_weight,
            "active": plan.active,
            "options": list(plan.options),
        },
        "balances": balances,
        "activeJobs": active_job_count(s, acct.id),
    }


def ledger_page(
    s: Session, account_id: str, job_id: str | None, channel: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    q = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    if job_id:
        if not plausible_job_id(job_id):
            return {"items": [], "nextCursor": None}  # names no job of this account (nor any other)
        q = q.where(LedgerEntry.job_id == job_id)
    if channel:
        q = q.where(LedgerEntry.channel == channel)
    if cursor:
        (last,) = decode_cursor(cursor, 1)
        if not _INT_PART.fullmatch(last) or int(last) > _MAX_ID:
            raise _bad_cursor()
        q = q.where(LedgerEntry.id < int(last))
    rows = list(s.scalars(q.order_by(LedgerEntry.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    job_ids = {e.job_id for e in rows if e.job_id}
    parents: dict[str, str] = {}
    if job_ids:  # a re-export's entries also name the job it was made from
        q_parents = select(Job.id, Job.parent_job_id).where(Job.id.in_(job_ids), Job.parent_job_id.is_not(None))
        parents = {job_id: parent for job_id, parent in s.execute(q_parents) if parent is not None}
    items = [{**ledger_dict(e), "parentJobId": parents.get(e.job_id) if e.job_id else None} for e in rows]
    return {"items": items, "nextCursor": encode_cursor(rows[-1].id) if more and rows else None}
