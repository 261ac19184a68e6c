"""Rows -> wire dicts (camelCase, SPEC section 2.4/2.5). Kept as plain dicts on the hot path."""

from __future__ import annotations

from typing import Any

from mocapd.api.signing import Signer
from mocapd.db.models import Artifact, Job, JobEvent, LedgerEntry
from mocapd.domain.targets import JOB_FILES, TARGET_KINDS, resolve_target
from mocapd.domain.wire import iso, job_dict

__all__ = ["event_dict", "iso", "job_dict", "ledger_dict", "result_dict"]

_URL_FIELDS = tuple(dict.fromkeys(k.url_field for k in TARGET_KINDS.values()))


def event_dict(ev: JobEvent | Any) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "type": ev.type,
        "status": ev.status,
        "stage": ev.stage,
        "progress": round(float(ev.progress or 0.0), 4),
        "message": ev.message,
        "data": ev.data,
        "createdAt": iso(ev.created_at),
    }


def ledger_dict(e: LedgerEntry) -> dict[str, Any]:
    return {
        "id": f"le_{e.id}",
        "type": e.type,
        "amount": e.amount,
        "channel": e.channel,
        "jobId": e.job_id,
        "createdAt": iso(e.created_at),
        "reason": e.reason,
    }


def result_dict(
    job: Job | Any, artifacts: list[Artifact] | list[Any], signer: Signer, base_url: str, ttl_s: int, job_out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The /result payload; outputs are empty unless the job completed. URLs are freshly signed."""
    job_out = job_out or job_dict(job)
    completed = job.status == "completed"
    urls: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    if completed:
        for a in artifacts:
            exp, sig = signer.sign("download", job.id, a.name, ttl_s)
            url = f"{base_url}/files/{job.id}/{a.name}?expires={exp}&signature={sig}"
            urls[a.name] = url
            files[a.name] = {"name": a.name, "url": url, "bytes": a.bytes, "sha256": a.sha256, "contentType": a.content_type}
    outputs: list[dict[str, Any]] = []
    if completed:
        for target_id in job.target_ids:
            target = resolve_target(target_id)
            if target is None:  # pragma: no cover - admission accepts only the catalogue's targets
                raise ValueError(f"job {job.id} names target {target_id!r}, which the catalogue does not know")
            tfiles = [files[a.name] for a in artifacts if a.target_id == target_id]
            outputs.append({
                "targetId": target_id, "resultType": target.kind.result_type,
                target.kind.url_field: urls.get(target.main_file), "files": tfiles,
            })  # fmt: skip
    data: dict[str, Any] = {
        "jobId": job.id,
        "status": job.status,
        "job": job_out,
        "outputs": outputs,
        "files": [files[a.name] for a in artifacts] if completed else [],
        **{f.url_field: urls.get(f.name) for f in JOB_FILES},
        "createdAt": job_out["createdAt"],
        "updatedAt": job_out["updatedAt"],
        "completedAt": job_out["completedAt"],
    }
    if len(outputs) == 1:
        o = outputs[0]
        data["targetId"] = o["targetId"]
        data["resultType"] = o["resultType"]
        for k in _URL_FIELDS:
            if k in o:
                data[k] = o[k]
    return data
