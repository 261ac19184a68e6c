"""Job events: every transition writes one, numbered per job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from mocapd.db.models import Job, JobEvent

__all__ = ["add_event"]


def add_event(
    session: Session,
    job: Job,
    type: str,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> JobEvent:
    job.event_seq = (job.event_seq or 0) + 1
    ev = JobEvent(
        job_id=job.id,
        seq=job.event_seq,
        type=type,
        status=job.status,
        stage=job.stage,
        progress=job.progress or 0.0,
        message=message,
        data=data,
        created_at=datetime.now(UTC),
    )
    session.add(ev)
    return ev
