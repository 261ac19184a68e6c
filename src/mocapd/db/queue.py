"""The job queue on the ``jobs`` table: named operations over the job row.

A job row is its own queue entry. The operations, each one short transaction:

- ``claim``: the queued job with the highest ``queue_weight``, then the oldest ``queued_at``, whose
  ``run_after`` has passed, becomes ``processing`` under a lease: ``lease_owner`` (the worker id),
  ``lease_expires_at = now + lease_s`` and a fresh fencing token ``lease_token = previous + 1``
  (strictly increasing per job, so no two claims of one job ever share a token). One statement:
  ``UPDATE jobs SET ... WHERE id = (SELECT id ... LIMIT 1 [FOR UPDATE SKIP LOCKED]) AND status =
  'queued' RETURNING *``.
- ``heartbeat``: ``lease_expires_at = now + lease_s`` if the caller still holds the token.
- ``report_progress`` / ``finish`` / ``fail`` / ``retry`` / ``hand_back``: worker writes. Each one
  first selects the row on ``(id, lease_token, status = processing)`` (``FOR UPDATE`` on PostgreSQL;
  the SQLite transaction already holds the database write lock from ``BEGIN IMMEDIATE``), so the
  check and the write are one compare-and-set; a worker that lost its lease writes nothing and is
  told so (``False``).
- ``reap``: jobs whose lease expired go back to the queue after a backoff, or fail with
  ``runner_lost`` once their last attempt is spent.
- ``cancel``: the client's cancel of a draft, queued or running job (a running worker finds out at
  its next heartbeat, which then fails the fence).

The difference between the databases is how rows are locked, `lock_rows`: ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, nothing on SQLite, where the transaction already holds the single write lock
(``BEGIN IMMEDIATE``, taken by `Database.write`). Because SQLite has one writer, `claim` looks with
a plain read before taking the write lock there (`reap` always does), and queue writes take their turn
through `Database.write` (on SQLite a fair cross-process lock in front of ``BEGIN IMMEDIATE``).

Credits are settled by `mocapd.db.transitions` inside the same fenced transaction: capture on
``finish``, release on ``fail`` / ``cancel`` / the last ``reap``; the ledger's unique settle key
makes a second settlement of one hold impossible.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from mocapd.db.engine import Database
from mocapd.db.events import record_note, record_transition
from mocapd.db.models import Account, Artifact, Job, Plan
from mocapd.db.transitions import mark_canceled, mark_completed, mark_failed, mark_requeued
from mocapd.domain.jobs import TERMINAL_STATUSES, EventType, JobStage, JobStatus

__all__ = [
    "ArtifactRecord",
    "ClaimedJob",
    "HeartbeatResult",
    "ReapReport",
    "cancel",
    "claim",
    "fail",
    "finish",
    "hand_back",
    "heartbeat",
    "lock_rows",
    "reap",
    "report_progress",
    "retry",
    "retention_days_of",
    "retry_delay_s",
]

_S = TypeVar("_S", bound="Select[Any]")
_MAX_BACKOFF_S = 600.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs to run one claimed attempt; ``lease_token`` fences every later write."""

    id: str
    account_id: str
    channel: str
    lease_owner: str
    lease_token: int
    attempt: int
    max_attempts: int
    title: str | None
    source_key: str
    source_filename: str
    source_facts: dict[str, Any]
    target_ids: tuple[str, ...]
    export_fps: int
    mocap_type: str
    trim_start_s: float
    trim_end_s: float | None
    focal_length_px: float | None
    camera_fov_deg: float | None
    subject_height_m: float | None
    billed_seconds: int
    held_credits: int
    upload_bytes: int | None
    upload_sha256: str | None
    queued_at: datetime | None
    lease_expires_at: datetime
    model_quality: str = "standard"
    source_type: str = "upload"  # "reexport": the parent's stored motion instead of a video
    parent_job_id: str | None = None
    hand_tracking: bool = False


@dataclass(frozen=True)
class ArtifactRecord:
    """One uploaded artifact, registered as an `Artifact` row when the job completes."""

    name: str
    object_key: str
    bytes: int
    sha256: str
    content_type: str
    target_id: str | None


@dataclass(frozen=True)
class HeartbeatResult:
    alive: bool  # False: the lease is gone (reaped, canceled, finished by another attempt)
    cancel_requested: bool = False
    lease_expires_at: datetime | None = None


@dataclass
class ReapReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.requeued) + len(self.failed) + len(self.canceled)


def lock_rows(session: Session, query: _S) -> _S:
    """The one database difference: lock the selected rows for this transaction, skipping rows
    another transaction holds (PostgreSQL ``FOR UPDATE SKIP LOCKED``). On SQLite the transaction
    already owns the single write lock (``BEGIN IMMEDIATE``), so the select needs nothing."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def retry_delay_s(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: ``base * 2**(attempt-1) * u``, ``u ~ U[0.5, 1]``, capped at 600 s.

    ``attempt`` is the attempt that just failed (1 for the first)."""
    u = (rng or random).uniform(0.5, 1.0)
    return float(min(_MAX_BACKOFF_S, base_s * 2.0 ** max(0, attempt - 1)) * u)


def retention_days_of(session: Session, account_id: str) -> int:
    days = session.scalar(
        select(Plan.retention_days).join(Account, Account.plan_name == Plan.name).where(Account.id == account_id)
    )
    return int(days) if days is not None else 7


def _fenced(session: Session, job_id: str, lease_token: int) -> Job | None:
    """The job row if (and only if) this lease still owns it, locked for the rest of the transaction."""
    q = (
        select(Job)
        .where(Job.id == job_id, Job.lease_token == lease_token, Job.status == JobStatus.PROCESSING.value)
        .with_for_update()
    )
    return session.scalars(q).first()


def _snapshot(job: Any) -> ClaimedJob:
    """From a `Job` or a ``jobs`` row."""
    assert job.lease_owner is not None and job.lease_expires_at is not None
    return ClaimedJob(
        id=job.id,
        account_id=job.account_id,
        channel=job.channel,
        lease_owner=job.lease_owner,
        lease_token=int(job.lease_token),
        attempt=int(job.attempts),
        max_attempts=int(job.max_attempts),
        title=job.title,
        source_key=job.source_key,
        source_filename=job.source_filename,
        source_facts=dict(job.source_facts or {}),
        target_ids=tuple(job.target_ids or ()),
        export_fps=int(job.export_fps),
        mocap_type=job.mocap_type,
        trim_start_s=float(job.trim_start_s or 0.0),
        trim_end_s=None if job.trim_end_s is None else float(job.trim_end_s),
        focal_length_px=job.focal_length_px,
        camera_fov_deg=job.camera_fov_deg,
        subject_height_m=job.subject_height_m,
        model_quality=job.model_quality or "standard",
        hand_tracking=bool(job.hand_tracking),
        billed_seconds=int(job.billed_seconds or 0),
        held_credits=int(job.held_credits or 0),
        upload_bytes=job.upload_bytes,
        upload_sha256=job.upload_sha256,
        queued_at=job.queued_at,
        lease_expires_at=job.lease_expires_at,
        source_type=str(getattr(job, "source_type", None) or "upload"),
        parent_job_id=getattr(job, "parent_job_id", None),
    )


def _runnable(t: Any, now: Any) -> ColumnElement[bool]:
    return and_(
        t.c.status == JobStatus.QUEUED.value,
        t.c.cancel_requested.is_(False),
        or_(t.c.run_after.is_(None), t.c.run_after <= now),
    )


@dataclass(frozen=True)
class _ClaimSql:
    look: Any  # SELECT id ... LIMIT 1 (no lock)
    take: Any  # UPDATE ... WHERE id = (SELECT ... [FOR UPDATE SKIP LOCKED]) AND status = 'queued' RETURNING *


@functools.cache
def _claim_sql(dialect: str) -> _ClaimSql:
    """The claim statements, built once per dialect with bound parameters (building them per call
    costs more than running them)."""
    t = cast(Table, Job.__table__)
    ts = t.c.run_after.type
    now = bindparam("now", type_=ts)
    pick = t.alias("pick")
    candidate = (
        select(pick.c.id)
        .where(_runnable(pick, now))
        .order_by(pick.c.queue_weight.desc(), pick.c.queued_at.asc(), pick.c.id.asc())
        .limit(1)
    )
    if dialect == "postgresql":  # the same choice as lock_rows
        candidate = candidate.with_for_update(skip_locked=True)
    take = (
        update(t)
        .where(t.c.id == candidate.scalar_subquery(), t.c.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.PROCESSING.value,
            stage=JobStage.PREFLIGHT.value,
            progress=0.0,
            attempts=t.c.attempts + 1,
            lease_owner=bindparam("worker_id"),
            lease_token=t.c.lease_token + 1,
            lease_expires_at=bindparam("expires", type_=ts),
            heartbeat_at=now,
            started_at=now,
            updated_at=now,
            run_after=None,
            event_seq=t.c.event_seq + 1,
        )
        .returning(*t.c)
    )
    return _ClaimSql(look=select(t.c.id).where(_runnable(t, now)).limit(1), take=take)


def claim(db: Database, worker_id: str, lease_s: float, *, now: datetime | None = None) -> ClaimedJob | None:
    """Claim the next runnable job (weight desc, then queued_at asc, then id) or return None.

    One compare-and-set statement: ``UPDATE jobs ... WHERE id = (SELECT id ... ORDER BY ... LIMIT 1
    [FOR UPDATE SKIP LOCKED]) AND status = 'queued' RETURNING *``, plus the ``job.started`` event, in one
    short transaction. An empty queue is seen by a plain read first and never takes the write lock."""
    now = now or _now()
    sql = _claim_sql(db.engine.dialect.name)
    if db.sqlite:  # SQLite has one writer: an empty queue must not take the write lock to find out
        with db.read() as s:
            if s.execute(sql.look, {"now": now}).first() is None:
                return None
    with db.write() as s:
        row = s.execute(
            sql.take, {"now": now, "worker_id": worker_id, "expires": now + timedelta(seconds=lease_s)}
        ).first()
        if row is None:  # another claimer took it between our look and our lock
            return None
        record_transition(  # the statement above already advanced event_seq
            s, row, JobStatus.QUEUED, JobStatus.PROCESSING, EventType.JOB_STARTED,
            f"Attempt {row.attempts} of {row.max_attempts} started.", {"attempt": row.attempts, "worker": worker_id},
            seq=row.event_seq, now=now,
        )
        return _snapshot(row)


def heartbeat(
    db: Database, job_id: str, lease_token: int, lease_s: float, *, now: datetime | None = None
) -> HeartbeatResult:
    """Extend the lease to ``now + lease_s`` if this token still owns the running job (one UPDATE)."""
    now = now or _now()
    expires = now + timedelta(seconds=lease_s)
    t = cast(Table, Job.__table__)
    with db.write() as s:
        row = s.execute(
            update(t)
            .where(
                t.c.id == job_id,
                t.c.lease_token == lease_token,
                t.c.status == JobStatus.PROCESSING.value,
            )
            .values(heartbeat_at=now, lease_expires_at=expires)
            .returning(t.c.cancel_requested)
        ).first()
    if row is None:
        return HeartbeatResult(alive=False)
    return HeartbeatResult(alive=True, cancel_requested=bool(row[0]), lease_expires_at=expires)


def report_progress(
    db: Database,
    job_id: str,
    lease_token: int,
    stage: JobStage,
    progress: float,
    *,
    message: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Set stage and overall progress (0..1, never decreasing within an attempt); an event on a stage change."""
    now = now or _now()
    with db.write() as s:
        job = _fenced(s, job_id, lease_token)
        if job is None:
            return False
        changed = job.stage != stage.value
        job.stage = stage.value
        job.progress = max(float(job.progress or 0.0), min(1.0, max(0.0, float(progress))))
        job.updated_at = now
        if changed:
            record_note(s, job, EventType.JOB_STAGE, message or f"Stage {stage.value} started.", {"stage": stage.value})
        return True


def finish(
    db: Database,
    job_id: str,
    lease_token: int,
    artifacts: Sequence[ArtifactRecord],
    *,
    now: datetime | None = None,
    charged_credits: int | None = None,
) -> bool:
    """Register every artifact and complete the job, capturing ``charged_credits`` of its hold (all of
    it when None) and releasing the rest, in one fenced transaction."""
    now = now or _now()
    with db.write() as s:
        job = _fenced(s, job_id, lease_token)
        if job is None:
            return False
        s.execute(delete(Artifact).where(Artifact.job_id == job_id))
        for a in artifacts:
            s.add(
                Artifact(
                    job_id=job_id,
                    name=a.name,
                    object_key=a.object_key,
                    bytes=a.bytes,
                    sha256=a.sha256,
                    content_type=a.content_type,
                    target_id=a.target_id,
                    created_at=now,
                )
            )
        mark_completed(s, job, retention_days=retention_days_of(s, job.account_id), charged=charged_credits)
        return True


def fail(
    db: Database, job_id: str, lease_token: int, *, code: str, message: str, stage: str | None
) -> bool:
    """Fail the job now (input fault, timeout, last attempt), releasing its hold. Fenced.

    ``stage`` is where it failed; None: the job's current stage."""
    with db.write() as s:
        job = _fenced(s, job_id, lease_token)
        if job is None:
            return False
        mark_failed(
            s,
            job,
            code=code,
            message=message,
            stage=stage or job.stage,
            retention_days=retention_days_of(s, job.account_id),
        )
        return True


def _requeue(
    s: Session, job: Job, *, now: datetime, delay_s: float, event: EventType, message: str, data: dict[str, Any]
) -> None:
    mark_requeued(s, job, run_after=now + timedelta(seconds=delay_s), event=event, message=message, data=data, now=now)


def retry(
    db: Database,
    job_id: str,
    lease_token: int,
    *,
    code: str,
    message: str,
    stage: str,
    base_backoff_s: float,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> str:
    """A system fault: back to the queue after a backoff, or failed after the last attempt.

    Returns ``"requeued"``, ``"failed"`` or ``"lost"`` (the lease was no longer ours)."""
    now = now or _now()
    with db.write() as s:
        job = _fenced(s, job_id, lease_token)
        if job is None:
            return "lost"
        if job.attempts >= job.max_attempts:
            mark_failed(
                s, job, code=code, message=message, stage=stage, retention_days=retention_days_of(s, job.account_id)
            )
            return "failed"
        delay = retry_delay_s(job.attempts, base_backoff_s, rng)
        _requeue(
            s,
            job,
            now=now,
            delay_s=delay,
            event=EventType.JOB_RETRY_SCHEDULED,
            message=f"Attempt {job.attempts} failed ({code}); retrying in {delay:.1f} s.",
            data={"code": code, "stage": stage, "attempt": job.attempts, "retryInSec": round(delay, 3), "detail": message},
        )
        return "requeued"


def hand_back(db: Database, job_id: str, lease_token: int, *, now: datetime | None = None) -> bool:
    """Return a running job to the queue at once without spending an attempt (graceful shutdown)."""
    now = now or _now()
    with db.write() as s:
        job = _fenced(s, job_id, lease_token)
        if job is None:
            return False
        job.attempts = max(0, job.attempts - 1)
        _requeue(
            s, job, now=now, delay_s=0.0, event=EventType.JOB_REQUEUED, message="The worker stopped; the job was handed back.",
            data={"reason": "worker_shutdown"},
        )
        return True


def cancel(db: Database, job_id: str) -> bool:
    """The client's cancel: a draft, queued or processing job becomes ``canceled`` now, its hold released.

    A worker still running it loses its fence at once and learns so at its next heartbeat.
    False if the job was already terminal (or does not exist)."""
    with db.write() as s:
        job = s.scalars(select(Job).where(Job.id == job_id).with_for_update()).first()
        if job is None or job.status in TERMINAL_STATUSES:
            return False
        job.cancel_requested = True
        mark_canceled(s, job, retention_days=retention_days_of(s, job.account_id))
        return True


def reap(
    db: Database,
    *,
    base_backoff_s: float,
    now: datetime | None = None,
    limit: int = 100,
    rng: random.Random | None = None,
) -> ReapReport:
    """Return expired leases to the queue with backoff, or fail them (``runner_lost``) on the last attempt.

    Also finishes jobs whose cancel was requested while nobody held them. Safe to run from any number
    of processes at once: rows are locked (PostgreSQL skips rows another reaper holds) and every move
    rechecks the expired lease inside the transaction."""
    now = now or _now()
    report = ReapReport()
    due = or_(
        (Job.status == JobStatus.PROCESSING.value) & (Job.lease_expires_at < now),
        (Job.status == JobStatus.QUEUED.value) & Job.cancel_requested.is_(True),
    )
    with db.read() as s:  # usually nothing is due: find out without the write lock
        if s.execute(select(Job.id).where(due).limit(1)).first() is None:
            return report
    with db.write() as s:
        q = select(Job).where(due).order_by(Job.lease_expires_at.asc()).limit(limit)
        for job in s.scalars(lock_rows(s, q)).all():
            retention = retention_days_of(s, job.account_id)
            if job.cancel_requested:
                mark_canceled(s, job, retention_days=retention)
                report.canceled.append(job.id)
            elif job.attempts >= job.max_attempts:
                mark_failed(
                    s,
                    job,
                    code="runner_lost",
                    message=f"The worker running attempt {job.attempts} stopped answering; no attempts remain.",
                    stage=job.stage,
                    retention_days=retention,
                )
                report.failed.append(job.id)
            else:
                delay = retry_delay_s(job.attempts, base_backoff_s, rng)
                _requeue(
                    s,
                    job,
                    now=now,
                    delay_s=delay,
                    event=EventType.JOB_RETRY_SCHEDULED,
                    message=f"The worker running attempt {job.attempts} was lost; retrying in {delay:.1f} s.",
                    data={"code": "runner_lost", "stage": job.stage, "attempt": job.attempts, "retryInSec": round(delay, 3)},
                )
                report.requeued.append(job.id)
    return report
