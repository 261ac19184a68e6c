"""Every move of a job's status, shared by the API (create, admission, cancel, rejection), the queue
(claim, requeue, finish, fail, reap) and housekeeping (draft expiry).

Each one changes the row, settles the credit hold where the move ends the job (exactly once, by the
ledger's unique settle key) and records the move with `mocapd.db.events.record_transition` (the state
machine's check and the one event), inside the caller's transaction. The caller is responsible for
fencing (the worker's lease token). The claim, one statement for speed, lives in `mocapd.db.queue` and
records its move with the same function.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from mocapd.db.events import record_note, record_transition
from mocapd.db.ledger import append_entry, place_hold, settle_hold
from mocapd.db.models import Job
from mocapd.domain.credits import EntryType, unused_hold_key
from mocapd.domain.jobs import EventType, InvalidTransition, JobStage, JobStatus, check_transition

__all__ = [
    "InvalidTransition",
    "mark_admitted",
    "mark_canceled",
    "mark_completed",
    "mark_created",
    "mark_expired",
    "mark_failed",
    "mark_requeued",
]


def _move(
    job: Job, status: JobStatus, stage: JobStage, event: EventType, now: datetime | None = None
) -> tuple[JobStatus, datetime]:
    """Check the move, then set the new status and stage; returns the old status and the time of the move.

    Checked before anything changes, so a forbidden move settles no credits (`record_transition`
    checks again as it writes the event)."""
    before = JobStatus(job.status)
    check_transition(job.id, before, status, event)
    now = now or datetime.now(UTC)
    job.status = status
    job.stage = stage
    job.updated_at = now
    return before, now


def _end(job: Job, now: datetime, retention_days: int) -> None:
    job.lease_owner = None
    job.lease_expires_at = None
    job.completed_at = now
    job.purge_after = now + timedelta(days=retention_days)


def _release(session: Session, job: Job, reason: str) -> None:
    if job.held_credits and settle_hold(
        session,
        account_id=job.account_id,
        channel=job.channel,
        job_id=job.id,
        amount=job.held_credits,
        capture=False,
        lease_token=job.lease_token,
        reason=reason,
    ):
        job.refunded_credits = job.held_credits


def mark_created(session: Session, job: Job, message: str) -> None:
    """A new draft (already added to ``session``)."""
    record_transition(session, job, None, JobStatus.DRAFT, EventType.JOB_CREATED, message, now=job.created_at)


def mark_admitted(
    session: Session,
    job: Job,
    *,
    credits: int,
    queue_weight: int,
    admitted: dict[str, Any],
    now: datetime | None = None,
) -> None:
    """complete-upload's admission: the credit hold, then ``draft -> queued`` (the ``job.admitted`` note
    with ``admitted`` as its data, and the ``job.queued`` transition)."""
    before, now = _move(job, JobStatus.QUEUED, JobStage.QUEUED, EventType.JOB_QUEUED, now)
    place_hold(session, account_id=job.account_id, channel=job.channel, job_id=job.id, amount=credits)
    job.billed_seconds = job.held_credits = credits
    job.progress = 0.0
    job.queued_at = now
    job.run_after = None
    job.queue_weight = queue_weight
    job.purge_after = None
    record_note(session, job, EventType.JOB_ADMITTED, f"Admitted: {credits} credits held.", admitted, now=now)
    record_transition(session, job, before, JobStatus.QUEUED, EventType.JOB_QUEUED, "Waiting for a worker.", now=now)


def mark_requeued(
    session: Session,
    job: Job,
    *,
    run_after: datetime,
    event: EventType,
    message: str,
    data: dict[str, Any],
    now: datetime | None = None,
) -> None:
    """A running job back to the queue (a retry after a fault or a lost lease, or handed back)."""
    before, now = _move(job, JobStatus.QUEUED, JobStage.QUEUED, event, now)
    job.progress = 0.0
    job.lease_owner = None
    job.lease_expires_at = None
    job.heartbeat_at = None
    job.run_after = run_after
    record_transition(session, job, before, JobStatus.QUEUED, event, message, data, now=now)


def mark_failed(
    session: Session, job: Job, *, code: str, message: str, stage: str, retention_days: int = 7
) -> None:
    before, now = _move(job, JobStatus.FAILED, JobStage.FAILED, EventType.JOB_FAILED)
    job.error_code, job.error_message, job.error_stage = code, message, stage
    _end(job, now, retention_days)
    _release(session, job, f"released: job failed ({code})")
    record_transition(session, job, before, JobStatus.FAILED, EventType.JOB_FAILED, message,
                      {"code": code, "stage": stage}, now=now)


def mark_expired(session: Session, job: Job, *, code: str, message: str, retention_days: int, now: datetime) -> None:
    """A draft never completed in time: ``failed`` at stage ``expired`` (drafts hold no credits)."""
    before, now = _move(job, JobStatus.FAILED, JobStage.EXPIRED, EventType.JOB_EXPIRED, now)
    job.error_code, job.error_message, job.error_stage = code, message, "upload"
    _end(job, now, retention_days)
    record_transition(session, job, before, JobStatus.FAILED, EventType.JOB_EXPIRED, message, now=now)


def mark_canceled(session: Session, job: Job, *, retention_days: int = 7) -> None:
    stage_before = job.stage
    before, now = _move(job, JobStatus.CANCELED, JobStage.CANCELED, EventType.JOB_CANCELED)
    job.error_code, job.error_message, job.error_stage = "canceled", "The job was canceled.", stage_before
    _end(job, now, retention_days)
    _release(session, job, "released: job canceled")
    record_transition(session, job, before, JobStatus.CANCELED, EventType.JOB_CANCELED,
                      "Canceled at the client's request.", now=now)


def mark_completed(session: Session, job: Job, *, retention_days: int, charged: int | None = None) -> None:
    """Complete the job and capture ``charged`` credits of its hold (all of it when None; never more).

    A capture smaller than the hold (the video held less than its header said) comes with the release
    of the rest, under its own unique key, in the same transaction: both are written once or not at all.
    """
    before, now = _move(job, JobStatus.COMPLETED, JobStage.COMPLETED, EventType.JOB_COMPLETED)
    job.progress = 1.0
    _end(job, now, retention_days)
    held = int(job.held_credits or 0)
    amount = held if charged is None else max(0, min(held, int(charged)))
    reason = "captured: job completed"
    if amount < held:
        reason = f"captured: job completed, {amount} of the {held} credits held"
    if settle_hold(
        session,
        account_id=job.account_id,
        channel=job.channel,
        job_id=job.id,
        amount=amount,
        capture=True,
        lease_token=job.lease_token,
        reason=reason,
    ):
        job.charged_credits = amount
        if amount < held:
            append_entry(
                session,
                account_id=job.account_id,
                channel=job.channel,
                type=EntryType.RELEASE,
                amount=held - amount,
                job_id=job.id,
                key=unused_hold_key(job.id),
                lease_token=job.lease_token,
                reason=f"released: the job processed {amount} s of video, {held - amount} s fewer than held",
            )
            job.refunded_credits = held - amount
    record_transition(session, job, before, JobStatus.COMPLETED, EventType.JOB_COMPLETED,
                      "All artifacts are ready.", now=now)
