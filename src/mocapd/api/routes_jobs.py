"""/api/v1/mocap/jobs: create, upload URLs, complete-upload, poll, result, events, list, cancel, artifacts.

The read endpoints (poll, result, events, list) are `async` and query inline: each is a few indexed
reads that never wait on a writer (SQLite WAL, PostgreSQL MVCC), and skipping the thread hop is what
keeps polling fast under many clients. Writes and anything that touches files run in the threadpool.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from mocapd.api.auth import Principal, require_account
from mocapd.api.downloads import serve_artifact
from mocapd.api.reads import events_page, find_job, jobs_page, poll_payload, result_payload
from mocapd.api.schemas import (
    CreateJobIn,
    CreateJobOut,
    Envelope,
    EventOut,
    JobOut,
    JobPollOut,
    Page,
    Problem,
    QuoteOut,
    ReexportIn,
    ResultOut,
    UploadUrlOut,
)
from mocapd.api.service import JobService
from mocapd.api.state import AppState, get_state
from mocapd.db.models import Artifact
from mocapd.domain.jobs import TERMINAL_STATUSES
from mocapd.errors import MocapdError

router = APIRouter(prefix="/api/v1/mocap/jobs", tags=["jobs"])

Auth = Annotated[Principal, Depends(require_account)]
State = Annotated[AppState, Depends(get_state)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": Problem, "content": {"application/problem+json": {}}} for s in (401, 404, 409, 413, 422)
}


def _svc(state: AppState, request: Request) -> JobService:
    return JobService(state, state.base_url(request))


def _data(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"data": data}, status_code=status_code, headers=headers)


def _poll_headers(state: AppState, status: str) -> dict[str, str] | None:
    if status in TERMINAL_STATUSES:
        return None
    return {"Retry-After": str(state.settings.poll_interval_s)}


@router.post(
    "",
    status_code=201,
    response_model=Envelope[CreateJobOut],
    responses={**_ERRORS, 200: {"model": Envelope[CreateJobOut], "description": "An idempotent replay"}},
    summary="Create a job (status draft) and get its upload URL",
)
async def create_job(
    request: Request,
    body: CreateJobIn,
    principal: Auth,
    state: State,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=300)] = None,
) -> Response:
    raw = json.loads(await request.body())
    from starlette.concurrency import run_in_threadpool

    out = await run_in_threadpool(_svc(state, request).create, principal.account_id, body, raw, idempotency_key,
                                   principal.channel)
    headers = {"Idempotent-Replayed": "true"} if out.replayed else None
    return _data(out.body, out.status_code, headers)


@router.post("/{job_id}/upload-url", response_model=Envelope[UploadUrlOut], responses=_ERRORS,
             summary="Issue a fresh upload URL")
def reissue_upload_url(job_id: str, request: Request, principal: Auth, state: State) -> Response:
    return _data(_svc(state, request).reissue_upload_url(principal.account_id, job_id))


@router.post("/{job_id}/complete-upload", response_model=Envelope[JobPollOut], responses={**_ERRORS, 402: _ERRORS[401], 403: _ERRORS[401], 429: _ERRORS[401]},
             summary="Validate the upload and admit the job (idempotent)")
def complete_upload(job_id: str, request: Request, principal: Auth, state: State) -> Response:
    data = _svc(state, request).complete_upload(principal.account_id, job_id)
    return _data(data, headers=_poll_headers(state, data["job"]["status"]))


@router.post("/{job_id}/exports", status_code=201, response_model=Envelope[JobPollOut],
             responses={**_ERRORS, 402: _ERRORS[401], 403: _ERRORS[401], 429: _ERRORS[401]},
             summary="Re-export a completed job: a new job from its stored motion (other fps, targets, mocap type)")
async def reexport_job(
    job_id: str,
    request: Request,
    body: ReexportIn,
    principal: Auth,
    state: State,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=300)] = None,
) -> Response:
    raw = json.loads(await request.body() or b"{}")
    from starlette.concurrency import run_in_threadpool

    out = await run_in_threadpool(_svc(state, request).reexport, principal.account_id, job_id, body, raw,
                                  idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if out.replayed else {}
    return _data(out.body, out.status_code, {**headers, **(_poll_headers(state, "queued") or {})})


@router.post("/{job_id}/quote", response_model=Envelope[QuoteOut], responses=_ERRORS,
             summary="What complete-upload would charge, and whether it would admit the job (holds nothing)")
def quote_job(job_id: str, request: Request, principal: Auth, state: State) -> Response:
    return _data(_svc(state, request).quote(principal.account_id, job_id))


@router.get("/{job_id}", response_model=Envelope[JobPollOut], responses=_ERRORS, summary="Poll a job")
async def get_job(job_id: str, request: Request, principal: Auth, state: State) -> Response:
    with state.db.connect() as conn:
        job = find_job(conn, principal.account_id, job_id)
        data = poll_payload(state, conn, job, state.base_url(request))
    return _data(data, headers=_poll_headers(state, job.status))


@router.get("/{job_id}/result", response_model=Envelope[ResultOut], responses=_ERRORS,
            summary="The job's result (always 200 for an existing job)")
async def get_result(job_id: str, request: Request, principal: Auth, state: State) -> Response:
    with state.db.connect() as conn:
        job = find_job(conn, principal.account_id, job_id)
        data = result_payload(state, conn, job, state.base_url(request))
    return _data(data, headers=_poll_headers(state, job.status))


@router.get("/{job_id}/events", response_model=Envelope[Page[EventOut]], responses=_ERRORS, summary="The full event log")
async def get_events(
    job_id: str,
    request: Request,
    principal: Auth,
    state: State,
    after: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    with state.db.connect() as conn:
        job = find_job(conn, principal.account_id, job_id)
        return _data(events_page(conn, job, after, limit))


@router.get("", response_model=Envelope[Page[JobOut]], responses=_ERRORS, summary="The account's jobs, newest first")
async def list_jobs(
    principal: Auth,
    state: State,
    status: Annotated[str | None, Query(pattern="^(draft|queued|processing|completed|failed|canceled)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    with state.db.connect() as conn:
        return _data(jobs_page(conn, principal.account_id, status, limit, cursor))


@router.post("/{job_id}/cancel", response_model=Envelope[JobPollOut], responses=_ERRORS, summary="Cancel a job")
def cancel_job(job_id: str, request: Request, principal: Auth, state: State) -> Response:
    return _data(_svc(state, request).cancel(principal.account_id, job_id))


_ART = {**_ERRORS, 206: {"description": "Partial content"}, 416: _ERRORS[404]}


@router.head("/{job_id}/artifacts/{name}", responses=_ART, operation_id="head_artifact", summary="Artifact headers")
@router.get("/{job_id}/artifacts/{name}", responses=_ART, operation_id="get_artifact",
            summary="Download an artifact with the API key")
def get_artifact(job_id: str, name: str, request: Request, principal: Auth, state: State) -> Response:
    svc = _svc(state, request)
    with state.db.read() as s:
        job = svc._job(s, principal.account_id, job_id)
        art = None if "\x00" in name else s.scalar(select(Artifact).where(Artifact.job_id == job.id, Artifact.name == name))
        if art is None or job.status != "completed":
            raise MocapdError("artifact_not_found", f"The job has no artifact {name!r}.", job_id=job.id)
    return serve_artifact(state, request, art)
