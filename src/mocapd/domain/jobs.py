"""The job state machine: public statuses, finer stages, channels, event types, and which moves are allowed.

A *transition* changes a job's status (``draft -> queued`` at admission, ``queued -> processing`` at a
claim, ``processing -> queued`` at a requeue, and the terminal moves); each one writes exactly one event
of a type in `TRANSITION_EVENTS` (`mocapd.db.events.record_transition`). A *note* records something that
happens within a status (an upload received, a stage started, a rejected validation); its type is in
`NOTE_EVENTS`.
"""

from __future__ import annotations

from enum import StrEnum

from mocapd.domain.credits import Channel  # which credit balance a job draws on

__all__ = [
    "ACTIVE_STATUSES",
    "NOTE_EVENTS",
    "TERMINAL_STATUSES",
    "TRANSITION_EVENTS",
    "Channel",
    "EventType",
    "InvalidTransition",
    "JobStage",
    "JobStatus",
    "can_transition",
    "check_transition",
    "status_of_stage",
]


class JobStatus(StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class JobStage(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    VALIDATING = "validating"
    QUEUED = "queued"
    PREFLIGHT = "preflight"
    PROCESSING = "processing"
    PACKAGING = "packaging"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


class EventType(StrEnum):
    # transitions (one per status change)
    JOB_CREATED = "job.created"  # (none) -> draft
    JOB_QUEUED = "job.queued"  # draft -> queued (admission)
    JOB_STARTED = "job.started"  # queued -> processing (claim)
    JOB_RETRY_SCHEDULED = "job.retry_scheduled"  # processing -> queued after a system fault or a lost lease
    JOB_REQUEUED = "job.requeued"  # processing -> queued, handed back by a stopping worker
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    JOB_EXPIRED = "job.expired"  # draft -> failed (stage expired)
    # notes (the status stays)
    UPLOAD_RECEIVED = "upload.received"
    UPLOAD_TERMINATED = "upload.terminated"  # a resumable upload terminated: its bytes are gone
    JOB_ADMITTED = "job.admitted"  # the credit hold, written with the admission's job.queued
    JOB_STAGE = "job.stage"
    VALIDATION_DEFERRED = "validation.deferred"
    VALIDATION_UPLOAD_REJECTED = "validation.upload_rejected"


TRANSITION_EVENTS = frozenset(
    {
        EventType.JOB_CREATED,
        EventType.JOB_QUEUED,
        EventType.JOB_STARTED,
        EventType.JOB_RETRY_SCHEDULED,
        EventType.JOB_REQUEUED,
        EventType.JOB_COMPLETED,
        EventType.JOB_FAILED,
        EventType.JOB_CANCELED,
        EventType.JOB_EXPIRED,
    }
)
NOTE_EVENTS = frozenset(EventType) - TRANSITION_EVENTS

TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})
ACTIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.PROCESSING})

_STATUS_OF_STAGE: dict[JobStage, JobStatus] = {
    JobStage.AWAITING_UPLOAD: JobStatus.DRAFT,
    JobStage.UPLOADING: JobStatus.DRAFT,
    JobStage.UPLOADED: JobStatus.DRAFT,
    JobStage.VALIDATING: JobStatus.DRAFT,
    JobStage.QUEUED: JobStatus.QUEUED,
    JobStage.PREFLIGHT: JobStatus.PROCESSING,
    JobStage.PROCESSING: JobStatus.PROCESSING,
    JobStage.PACKAGING: JobStatus.PROCESSING,
    JobStage.COMPLETED: JobStatus.COMPLETED,
    JobStage.FAILED: JobStatus.FAILED,
    JobStage.CANCELED: JobStatus.CANCELED,
    JobStage.EXPIRED: JobStatus.FAILED,
}

# Allowed status moves. processing -> queued is a retry after a system fault or a lost lease.
_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.DRAFT: frozenset({JobStatus.DRAFT, JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.PROCESSING: frozenset(
        {JobStatus.PROCESSING, JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


# The event a move writes, by (from, to); None: a job that does not exist yet. A move with two possible
# events (a requeue, a draft's failure) lists both; the caller names the one that happened.
_EVENTS_OF_MOVE: dict[tuple[JobStatus | None, JobStatus], frozenset[EventType]] = {
    (None, JobStatus.DRAFT): frozenset({EventType.JOB_CREATED}),
    (JobStatus.DRAFT, JobStatus.QUEUED): frozenset({EventType.JOB_QUEUED}),
    (JobStatus.QUEUED, JobStatus.PROCESSING): frozenset({EventType.JOB_STARTED}),
    (JobStatus.PROCESSING, JobStatus.QUEUED): frozenset({EventType.JOB_RETRY_SCHEDULED, EventType.JOB_REQUEUED}),
    (JobStatus.PROCESSING, JobStatus.COMPLETED): frozenset({EventType.JOB_COMPLETED}),
    (JobStatus.DRAFT, JobStatus.FAILED): frozenset({EventType.JOB_FAILED, EventType.JOB_EXPIRED}),
    (JobStatus.QUEUED, JobStatus.FAILED): frozenset({EventType.JOB_FAILED}),
    (JobStatus.PROCESSING, JobStatus.FAILED): frozenset({EventType.JOB_FAILED}),
    (JobStatus.DRAFT, JobStatus.CANCELED): frozenset({EventType.JOB_CANCELED}),
    (JobStatus.QUEUED, JobStatus.CANCELED): frozenset({EventType.JOB_CANCELED}),
    (JobStatus.PROCESSING, JobStatus.CANCELED): frozenset({EventType.JOB_CANCELED}),
}


class InvalidTransition(Exception):
    """A move the state machine does not allow, or an event that does not belong to the move (a bug)."""

    def __init__(self, job_id: str, current: JobStatus | None, new: JobStatus, event: EventType | None = None) -> None:
        self.job_id, self.current, self.new, self.event = job_id, current, new, event
        what = f"{current} -> {new}" + (f" ({event})" if event else "")
        super().__init__(f"job {job_id}: {what} is not allowed")


def status_of_stage(stage: JobStage) -> JobStatus:
    return _STATUS_OF_STAGE[stage]


def can_transition(current: JobStatus | None, new: JobStatus) -> bool:
    """Whether the status may move from ``current`` to ``new`` (None: a new job, which starts as a draft)."""
    if current is None:
        return new == JobStatus.DRAFT
    return new in _TRANSITIONS[current]


def check_transition(job_id: str, current: JobStatus | None, new: JobStatus, event: EventType) -> None:
    """Raise `InvalidTransition` unless ``current -> new`` is a status change the machine allows and
    ``event`` is the event that change writes."""
    if current == new or not can_transition(current, new):
        raise InvalidTransition(job_id, current, new)
    if event not in _EVENTS_OF_MOVE.get((current, new), frozenset()):
        raise InvalidTransition(job_id, current, new, event)
