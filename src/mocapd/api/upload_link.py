"""What the two upload endpoints (the signed PUT in `routes_files.py` and the tus server in `tus.py`)
share: the signed link's query parameters, and the draft job a link opens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from mocapd.api.service import JobService
from mocapd.api.state import AppState
from mocapd.db.models import Job
from mocapd.errors import MocapdError

__all__ = ["Link", "SignedLink", "open_upload_target"]


@dataclass(frozen=True)
class SignedLink:
    """The ``expires`` and ``signature`` query parameters of a signed URL."""

    expires: str | None
    signature: str | None


def _signed_link(
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query(max_length=128)] = None,
) -> SignedLink:
    return SignedLink(expires, signature)


Link = Annotated[SignedLink, Depends(_signed_link)]


async def open_upload_target(state: AppState, request: Request, job_id: str, link: SignedLink,
                             resource_prefix: str = "") -> tuple[JobService, Job]:
    """The draft job an upload link names, once its signature (over ``resource_prefix`` + the job's
    source key) holds."""
    if len(job_id) > 64:
        raise MocapdError("upload_url_invalid", "The upload link is not valid.")
    svc = JobService(state, state.base_url(request))
    job = await run_in_threadpool(svc.upload_target, job_id)
    state.signer.verify("upload", job.id, resource_prefix + job.source_key, link.expires, link.signature)
    return svc, job
