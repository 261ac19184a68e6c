"""Periodic upkeep: the lease reaper, draft expiry and the retention purge.

- reap: `mocapd.db.queue.reap` (expired leases back to the queue with backoff, or ``runner_lost``).
- expire drafts: a draft never completed within ``draft_ttl_s`` (24 h) becomes ``failed`` with stage
  ``expired``; its uploaded object is deleted, and so is an unfinished resumable upload (in S3 mode its
  multipart upload is aborted). Drafts hold no credits, so nothing is settled.
- purge: a finished job past ``purge_after`` (set at its terminal move from the plan's retention) has
  its objects deleted (``jobs/{id}/`` and the source key), then its row (events and artifact rows
  cascade). Ledger entries are kept: the ledger is append-only.

Every step is idempotent and safe to run from several processes at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select

from mocapd.config import Settings
from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.models import Avatar, Job, TusUpload
from mocapd.db.queue import lock_rows, retention_days_of
from mocapd.db.transitions import mark_expired
from mocapd.db.webhooks import purge_messages
from mocapd.domain.jobs import TERMINAL_STATUSES, JobStatus
from mocapd.storage.base import ObjectStore
from mocapd.storage.resumable import abort_upload

__all__ = ["HousekeepingReport", "expire_drafts", "purge_finished", "run_housekeeping"]

log = logging.getLogger("mocapd.housekeeping")

DRAFT_EXPIRED_CODE = "draft_expired"


@dataclass
class HousekeepingReport:
    reaped: int = 0
    drafts_expired: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    avatars_purged: list[str] = field(default_factory=list)


def expire_drafts(
    db: Database, store: ObjectStore, *, draft_ttl_s: float, now: datetime | None = None, limit: int = 200
) -> list[str]:
    """Fail drafts older than ``draft_ttl_s`` (stage ``expired``) and delete their uploads."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=draft_ttl_s)
    expired: list[tuple[str, str]] = []
    resumable: list[dict[str, object]] = []
    with db.write() as s:
        q = (
            select(Job)
            .where(Job.status == JobStatus.DRAFT.value, Job.created_at < cutoff)
            .order_by(Job.created_at)
            .limit(limit)
        )
        for job in s.scalars(lock_rows(s, q)).all():
            mark_expired(
                s,
                job,
                code=DRAFT_EXPIRED_CODE,
                message=f"The upload was not completed within {draft_ttl_s / 3600:g} h; the draft expired.",
                retention_days=retention_days_of(s, job.account_id),
                now=now,
            )
            expired.append((job.id, job.source_key))
            tus = s.get(TusUpload, job.id)
            if tus is not None and tus.completed_at is None:
                resumable.append(dict(tus.store_state))
    for state in resumable:
        try:
            abort_upload(store, state)
        except Exception as exc:
            log.warning("could not abort the resumable upload under %s: %s", state.get("prefix"), exc)
    for job_id, key in expired:  # after the commit: a crash here leaves objects the purge removes later
        try:
            store.delete_prefix(key)
        except Exception as exc:
            log.warning("could not delete the upload of expired draft %s: %s", job_id, exc)
    return [j for j, _ in expired]


def purge_finished(db: Database, store: ObjectStore, *, now: datetime | None = None, limit: int = 200) -> list[str]:
    """Delete finished jobs past their retention: objects first, then the row (events, artifacts cascade)."""
    now = now or datetime.now(UTC)
    with db.read() as s:
        rows = s.execute(
            select(Job.id, Job.source_key)
            .where(Job.status.in_([st.value for st in TERMINAL_STATUSES]), Job.purge_after < now)
            .order_by(Job.purge_after)
            .limit(limit)
        ).all()
    purged: list[str] = []
    for job_id, source_key in rows:
        try:
            store.delete_prefix(f"jobs/{job_id}/")
            if source_key and not source_key.startswith(f"jobs/{job_id}/"):
                store.delete_prefix(source_key)
        except Exception as exc:
            log.warning("could not delete the objects of job %s: %s", job_id, exc)
            continue
        with db.write() as s:
            res = s.execute(
                delete(Job).where(
                    Job.id == job_id,
                    Job.status.in_([st.value for st in TERMINAL_STATUSES]),
                    Job.purge_after < now,
                )
            )
            if cast("CursorResult[Any]", res).rowcount:
                purged.append(job_id)
    return purged


def purge_avatars(db: Database, store: ObjectStore, *, now: datetime | None = None, limit: int = 200) -> list[str]:
    """Delete avatars never completed (a draft past the draft TTL), failed or deleted past the plan's
    retention: their objects first, then the row. A ready avatar stays until it is deleted."""
    now = now or datetime.now(UTC)
    with db.read() as s:
        ids = list(s.scalars(
            select(Avatar.id).where(Avatar.status.in_(["draft", "failed", "deleted"]), Avatar.purge_after < now)
            .order_by(Avatar.purge_after).limit(limit)
        ))
    purged: list[str] = []
    for avatar_id in ids:
        try:
            store.delete_prefix(f"avatars/{avatar_id}/")
        except Exception as exc:
            log.warning("could not delete the objects of avatar %s: %s", avatar_id, exc)
            continue
        with db.write() as s:
            res = s.execute(delete(Avatar).where(Avatar.id == avatar_id, Avatar.status.in_(["draft", "failed", "deleted"]),
                                                 Avatar.purge_after < now))
            if cast("CursorResult[Any]", res).rowcount:
                purged.append(avatar_id)
    return purged


def run_housekeeping(
    db: Database, store: ObjectStore, settings: Settings, *, now: datetime | None = None
) -> HousekeepingReport:
    report = HousekeepingReport()
    report.reaped = queue.reap(db, base_backoff_s=settings.retry_backoff_s, now=now).total
    report.drafts_expired = expire_drafts(db, store, draft_ttl_s=settings.draft_ttl_s, now=now)
    report.purged = purge_finished(db, store, now=now)
    report.avatars_purged = purge_avatars(db, store, now=now)
    purge_messages(db, now=now, job_ids=report.purged)  # webhook messages: old ones, and those of purged jobs
    return report
