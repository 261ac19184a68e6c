"""Resumable (tus) upload rows: one per draft job, with a fenced lock so one request writes at a time.

The lock is a token with an expiry, taken by compare-and-set (``UPDATE ... WHERE lock is free``), so it
holds across API processes and machines. Every write a request makes is conditioned on its token: a
request that stalled past its lock's expiry and lost it to another cannot move the offset. A request
renews its lock while it streams; one whose process died frees it by expiry.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from mocapd.db.engine import Database
from mocapd.db.models import TusUpload
from mocapd.errors import MocapdError

__all__ = ["UploadRow", "acquire", "commit", "forget", "get", "release", "renew", "replace"]


@dataclass(frozen=True)
class UploadRow:
    job_id: str
    upload_id: str
    length: int
    offset: int
    metadata: dict[str, Any] | None
    store_state: dict[str, Any]
    completed: bool
    locked_until: datetime | None

    @classmethod
    def of(cls, row: TusUpload) -> UploadRow:
        return cls(row.job_id, row.upload_id, row.length, row.offset, row.upload_metadata, dict(row.store_state),
                   row.completed_at is not None, row.lock_expires_at if row.lock_token else None)


def _now() -> datetime:
    return datetime.now(UTC)


def get(db: Database, job_id: str, upload_id: str | None = None) -> UploadRow | None:
    """The job's upload (only if its id is ``upload_id``, when given)."""
    with db.read() as s:
        row = s.get(TusUpload, job_id)
        if row is None or (upload_id is not None and row.upload_id != upload_id):
            return None
        return UploadRow.of(row)


def replace(s: Session, job_id: str, upload_id: str, length: int, metadata: dict[str, Any] | None,
            store_state: dict[str, Any]) -> UploadRow | None:
    """Make (``upload_id``, ``length``) the job's upload, in the caller's transaction; the upload it
    replaced (whose bytes the caller deletes after the commit), or None. A locked upload is not replaced."""
    now = _now()
    old = s.get(TusUpload, job_id, with_for_update=True)
    previous = None
    if old is not None:
        if old.lock_token is not None and old.lock_expires_at is not None and old.lock_expires_at > now:
            raise MocapdError("upload_locked", "Another request is writing to this job's upload; retry shortly.",
                              job_id=job_id, headers={"Retry-After": "2"})
        previous = UploadRow.of(old)
        s.delete(old)
        s.flush()
    s.add(TusUpload(job_id=job_id, upload_id=upload_id, length=length, offset=0, upload_metadata=metadata,
                    store_state=store_state, created_at=now, updated_at=now))
    return previous


def acquire(db: Database, job_id: str, upload_id: str, ttl_s: float) -> tuple[str, UploadRow]:
    """Take the upload's lock: (token, the row as locked). `upload_not_found`, or `upload_locked` while
    another request holds it."""
    token = secrets.token_hex(16)
    now = _now()
    with db.write() as s:
        res = s.execute(
            update(TusUpload)
            .where(TusUpload.job_id == job_id, TusUpload.upload_id == upload_id,
                   or_(TusUpload.lock_token.is_(None), TusUpload.lock_expires_at < now))
            .values(lock_token=token, lock_expires_at=now + timedelta(seconds=ttl_s))
        )
        row = s.get(TusUpload, job_id)
        if row is None or row.upload_id != upload_id:
            raise MocapdError("upload_not_found", "No such upload (it was terminated or replaced).", job_id=job_id)
        if res.rowcount != 1:  # type: ignore[attr-defined]
            raise MocapdError("upload_locked", "Another request is writing to this upload; retry shortly.",
                              job_id=job_id, headers={"Retry-After": "2"})
        return token, UploadRow.of(row)


def _fenced(job_id: str, upload_id: str, token: str) -> Any:
    return update(TusUpload).where(
        TusUpload.job_id == job_id, TusUpload.upload_id == upload_id, TusUpload.lock_token == token
    )


def renew(db: Database, job_id: str, upload_id: str, token: str, ttl_s: float) -> bool:
    with db.write_connect() as conn:  # a Core statement: no ORM session (this runs while bytes stream)
        res = conn.execute(_fenced(job_id, upload_id, token).values(lock_expires_at=_now() + timedelta(seconds=ttl_s)))
        return bool(res.rowcount)


def commit(db: Database, job_id: str, upload_id: str, token: str, *, offset: int, store_state: dict[str, Any],
           ttl_s: float, completed: bool = False, release: bool = False) -> bool:
    """Record ``offset`` bytes as durable (and the store's state), renewing or releasing the lock.
    False if the lock was lost (nothing written)."""
    now = _now()
    values: dict[str, Any] = {"offset": offset, "store_state": store_state, "updated_at": now,
                              "lock_expires_at": now + timedelta(seconds=ttl_s)}
    if completed:
        values["completed_at"] = now
    if release:
        values["lock_token"] = None
        values["lock_expires_at"] = None
    with db.write_connect() as conn:  # a Core statement: no ORM session (this runs while bytes stream)
        res = conn.execute(_fenced(job_id, upload_id, token).values(**values))
        return bool(res.rowcount)


def release(db: Database, job_id: str, upload_id: str, token: str) -> None:
    with db.write_connect() as conn:
        conn.execute(_fenced(job_id, upload_id, token).values(lock_token=None, lock_expires_at=None))


def forget(db: Database, job_id: str, upload_id: str, token: str) -> bool:
    """Delete the upload's row (termination), if this request holds its lock."""
    with db.write() as s:
        row = s.get(TusUpload, job_id, with_for_update=True)
        if row is None or row.upload_id != upload_id or row.lock_token != token:
            return False
        s.delete(row)
        return True
