"""The job object of SPEC section 2.4 as a plain dict: what polls return and what webhooks carry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mocapd.domain.codes import code_info

__all__ = ["iso", "job_dict"]


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_dict(job: Any) -> dict[str, Any]:
    facts = job.source_facts or {}
    error = None
    if job.error_code:
        info = code_info(job.error_code)
        error = {
            "code": job.error_code,
            "message": job.error_message or info.title,
            "stage": job.error_stage,
            "retryable": info.retryable,
            "retryFrom": info.retry_from.value,
        }
    return {
        "id": job.id,
        "status": job.status,
        "stage": job.stage,
        "progress": round(float(job.progress or 0.0), 4),
        "targetIds": list(job.target_ids),
        "exportFps": job.export_fps,
        "mocapType": job.mocap_type,
        "modelQuality": getattr(job, "model_quality", None) or "standard",
        "handTracking": bool(getattr(job, "hand_tracking", False)),
        "title": job.title,
        "source": {
            "filename": job.source_filename,
            "bytes": job.upload_bytes,
            "sha256": job.upload_sha256,
            "durationSec": facts.get("durationSec"),
            "fps": facts.get("fps"),
            "width": facts.get("width"),
            "height": facts.get("height"),
            "codec": facts.get("codec"),
            "rotationDeg": facts.get("rotationDeg"),
        },
        "trimStartSec": job.trim_start_s,
        "trimEndSec": job.trim_end_s,
        "billing": {
            "heldVCredits": job.held_credits,
            "chargedVCredits": job.charged_credits,
            "refundedVCredits": job.refunded_credits,
            "channel": job.channel,
        },
        "error": error,
        "attempts": job.attempts,
        "sourceType": getattr(job, "source_type", None) or "upload",
        "parentJobId": getattr(job, "parent_job_id", None),
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "completedAt": iso(job.completed_at),
    }
