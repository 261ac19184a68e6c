"""Job events: one row per status change (`record_transition`) or note (`record_note`), numbered per job.

`record_transition` is the one place a job's status change is recorded. Every move (creation,
admission, claim, requeue, completion, failure, cancel, draft expiry) reaches it, inside the
transaction that changes the job row, after the row already shows the new status. It checks the move
against the state machine (`mocapd.domain.jobs.check_transition`) and writes exactly one event.

Anything else that must happen atomically with a status change (a webhook outbox row, for one) is
written here, beside the event, so it commits or rolls back with the move: see `_after_transition`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session

from mocapd.db.models import JobEvent
from mocapd.db.outbox import record_job_status
from mocapd.domain.jobs import NOTE_EVENTS, EventType, JobStatus, check_transition

__all__ = ["JobRow", "record_note", "record_transition"]


class JobRow(Protocol):
    """What an event needs of a job: a `mocapd.db.models.Job` or a ``jobs`` row returned by a statement."""

    @property
    def id(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def progress(self) -> float: ...
    @property
    def event_seq(self) -> int: ...


@functools.cache
def _insert_event() -> Insert:
    # A Core INSERT, built once: cheaper than the ORM's unit of work (the claim writes one per job).
    return insert(cast(Table, JobEvent.__table__))


def _next_seq(job: JobRow) -> int:
    seq = int(job.event_seq or 0) + 1
    job.event_seq = seq  # type: ignore[misc]  # a Job; a returned row carries its bumped seq (seq=...)
    return seq


def _write(
    session: Session,
    job: JobRow,
    seq: int,
    type: EventType,
    message: str | None,
    data: dict[str, Any] | None,
    now: datetime | None,
) -> None:
    """The one event builder."""
    if job in session.new:  # a job created in this transaction: its row first (the event refers to it)
        session.flush()
    session.execute(
        _insert_event(),
        {
            "job_id": job.id,
            "seq": seq,
            "type": type.value,
            "status": str(job.status),
            "stage": str(job.stage),
            "progress": float(job.progress or 0.0),
            "message": message,
            "data": data,
            "created_at": now or datetime.now(UTC),
        },
    )


def record_transition(
    session: Session,
    job: JobRow,
    from_status: JobStatus | None,
    to_status: JobStatus,
    event: EventType,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    seq: int | None = None,
    now: datetime | None = None,
) -> None:
    """Record ``job``'s move ``from_status -> to_status`` (None: the job was just created).

    Call it in the transaction that changed the row, once the row shows ``to_status``. Raises
    `mocapd.domain.jobs.InvalidTransition` (rolling the transaction back) for a move the state machine
    forbids or an event that does not belong to it. ``seq``: the event number when the statement that
    moved the job already advanced ``event_seq`` (the claim); otherwise it is advanced here."""
    check_transition(job.id, from_status, to_status, event)
    if job.status != to_status:
        raise AssertionError(f"job {job.id}: recorded {from_status} -> {to_status} but the row is {job.status}")
    _write(session, job, _next_seq(job) if seq is None else seq, event, message, data, now)
    _after_transition(session, job, from_status, to_status, event, now)


def _after_transition(
    session: Session,
    job: JobRow,
    from_status: JobStatus | None,
    to_status: JobStatus,
    event: EventType,
    now: datetime | None,
) -> None:
    """The hook for rows that must commit with a status change: the webhook outbox's message (written
    with ``session``, so in the transaction of the change)."""
    record_job_status(session, job, to_status, now or datetime.now(UTC))


def record_note(
    session: Session,
    job: JobRow,
    event: EventType,
    message: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Record something that happened within the job's current status (an upload, a stage, a rejection)."""
    if event not in NOTE_EVENTS:
        raise ValueError(f"{event} is a status change: use record_transition")
    _write(session, job, _next_seq(job), event, message, data, now)
