"""Signed-URL endpoints (no API key): the upload PUT and artifact downloads (local storage)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from mocapd.api.downloads import serve_artifact
from mocapd.api.schemas import Envelope, Problem, UploadOut
from mocapd.api.service import upload_rules
from mocapd.api.state import AppState, get_state
from mocapd.api.upload_link import Link, open_upload_target
from mocapd.db.models import Artifact, Job
from mocapd.errors import MocapdError
from mocapd.storage import StoredObject, TooLarge

router = APIRouter(tags=["signed URLs"])
State = Annotated[AppState, Depends(get_state)]
_ERR: dict[int | str, dict[str, Any]] = {s: {"model": Problem, "content": {"application/problem+json": {}}} for s in (403, 404, 409, 413, 422)}


@router.put("/uploads/{job_id}", response_model=Envelope[UploadOut], responses=_ERR,
            summary="Upload the source video to a signed upload URL (repeatable until admission)")
async def put_upload(job_id: str, request: Request, state: State, link: Link) -> Response:
    from starlette.concurrency import run_in_threadpool

    svc, job = await open_upload_target(state, request, job_id, link)
    rules = upload_rules(job, job_id=job.id)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        rules.check_limit(int(declared))

    def check(obj: StoredObject) -> None:
        rules.check_received(obj.bytes, obj.sha256)

    async def publish(obj: StoredObject, commit: Callable[[], None]) -> None:
        # The body is complete and checked: put it in place and record its digest in one step, under the
        # job's lock (the last upload to take it wins both; after complete-upload none lands).
        await run_in_threadpool(svc.record_upload, job.id, obj.bytes, obj.sha256, commit)

    try:
        stored = await state.store.put_stream(job.source_key, request.stream(), rules.limit_bytes, check, publish)
    except TooLarge:
        raise rules.too_large() from None
    return JSONResponse({"data": {"bytes": stored.bytes, "sha256": stored.sha256}})


_FILE: dict[int | str, dict[str, Any]] = {**_ERR, 206: {"description": "Partial content"}, 416: _ERR[404]}


@router.head("/files/{job_id}/{name}", responses=_FILE, operation_id="head_signed_file", summary="Signed artifact headers")
@router.get("/files/{job_id}/{name}", responses=_FILE, operation_id="get_signed_file",
            summary="Download an artifact from a signed URL")
def get_file(
    job_id: str,
    name: str,
    request: Request,
    state: State,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    state.signer.verify("download", job_id, name, expires, signature)
    with state.db.read() as s:
        job = s.get(Job, job_id)
        art = s.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
        if job is None or art is None or job.status != "completed":
            raise MocapdError("artifact_not_found", f"No artifact {name!r} for this job.")
    return serve_artifact(state, request, art)
