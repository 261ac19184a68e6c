"""The job state machine: public statuses, finer stages, and which moves are allowed."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "JobStage",
    "JobStatus",
    "can_transition",
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


def status_of_stage(stage: JobStage) -> JobStatus:
    return _STATUS_OF_STAGE[stage]


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in _TRANSITIONS[current]
