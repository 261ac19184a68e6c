"""Terminal moves of a job, shared by the API (cancel, rejection) and the worker (finish, fail).

Each one checks the state machine, settles the credit hold exactly once and writes an event, inside
the caller's transaction. The caller is responsible for fencing (the worker's lease token).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from mocapd.db.events import add_event
from mocapd.db.ledger import settle_hold
from mocapd.db.models import Job
from mocapd.domain.jobs import JobStage, JobStatus, can_transition

__all__ = ["InvalidTransition", "mark_canceled", "mark_completed", "mark_failed"]


class InvalidTransition(Exception):
    def __init__(self, job: Job, new: JobStatus) -> None:
        super().__init__(f"job {job.id}: {job.status} -> {new} is not allowed")


def _move(job: Job, status: JobStatus, stage: JobStage) -> datetime:
    if not can_transition(JobStatus(job.status), status):
        raise InvalidTransition(job, status)
    now = datetime.now(UTC)
    job.status = status
    job.stage = stage
    job.updated_at = now
    job.lease_owner = None
    job.lease_expires_at = None
    return now


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


def mark_failed(
    session: Session, job: Job, *, code: str, message: str, stage: str, retention_days: int = 7
) -> None:
    now = _move(job, JobStatus.FAILED, JobStage.FAILED)
    job.error_code, job.error_message, job.error_stage = code, message, stage
    job.completed_at = now
    job.purge_after = now + timedelta(days=retention_days)
    _release(session, job, f"released: job failed ({code})")
    add_event(session, job, "job.failed", message, {"code": code, "stage": stage})


def mark_canceled(session: Session, job: Job, *, retention_days: int = 7) -> None:
    stage_before = job.stage
    now = _move(job, JobStatus.CANCELED, JobStage.CANCELED)
    job.error_code, job.error_message, job.error_stage = "canceled", "The job was canceled.", stage_before
    job.completed_at = now
    job.purge_after = now + timedelta(days=retention_days)
    _release(session, job, "released: job canceled")
    add_event(session, job, "job.canceled", "Canceled at the client's request.")


def mark_completed(session: Session, job: Job, *, retention_days: int) -> None:
    now = _move(job, JobStatus.COMPLETED, JobStage.COMPLETED)
    job.progress = 1.0
    job.completed_at = now
    job.purge_after = now + timedelta(days=retention_days)
    if settle_hold(
        session,
        account_id=job.account_id,
        channel=job.channel,
        job_id=job.id,
        amount=job.held_credits,
        capture=True,
        lease_token=job.lease_token,
        reason="captured: job completed",
    ):
        job.charged_credits = job.held_credits
    add_event(session, job, "job.completed", "All artifacts are ready.")
