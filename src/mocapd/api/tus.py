"""Resumable uploads: a tus 1.0.0 server (core, creation, creation-with-upload, termination, checksum
with sha256) for each draft job, at the signed ``tusUploadUrl`` of its create response.

Written here rather than taken from a library. `tuspyserver` (4.4, the maintained FastAPI tus router)
was evaluated and does not hold up for this service: it has no checksum extension; it flushes but
never fsyncs the bytes before recording the offset; its S3 storage holds a whole PATCH body in memory
(a tus client may send a 2 GB file as one PATCH) and locks only within one process, so two API
replicas can interleave one upload; it has one global size limit, not a plan's; and its uploads live
under its own ids and folders, not the job's source key with the job's SHA-256. So the protocol is
implemented here, with its own conformance tests (tests/integration/api/test_tus.py, tuspy as the
independent client):

- ``POST {tusUploadUrl}`` creates the job's upload (``Upload-Length`` required, refused at once past
  the plan's limit or when it differs from ``sourceBytes``); a new upload replaces the job's previous
  one (like a repeated PUT), unless a request is writing to it (423). With a body
  (``creation-with-upload``) the first bytes are written at once. ``Location`` is the upload's own
  signed URL, valid until the draft expires.
- ``HEAD`` answers the committed ``Upload-Offset``: bytes that are durable (fsync-ed, or in S3 parts
  and a stored tail) and recorded in the database. Only those are ever acknowledged.
- ``PATCH`` appends at ``Upload-Offset`` (409 otherwise) under a lock taken in the database (423 while
  another request holds it), so two clients can never interleave bytes. A body that would pass the
  declared length is refused as soon as it does (413 past the plan's limit). A long PATCH commits its
  progress as it goes; a dropped connection keeps every byte received (unless the PATCH carried an
  ``Upload-Checksum``, whose bytes count only once the whole body matches: 460 otherwise).
- ``DELETE`` (termination) removes every byte of the upload, and the job's source if it had completed.
- The last byte makes the job's source object (rename, or CompleteMultipartUpload) and records its size
  and SHA-256 through the same step as a PUT (`JobService.record_upload`), so complete-upload works the
  same afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mocapd.api.schemas import Problem
from mocapd.api.service import JobService, upload_rules
from mocapd.api.state import AppState, get_state
from mocapd.api.upload_link import Link, SignedLink, open_upload_target
from mocapd.db import uploads
from mocapd.db.models import Job
from mocapd.errors import MocapdError
from mocapd.storage.resumable import ResumableWriter, abort_upload, begin_upload, open_writer

__all__ = ["TUS_EXTENSIONS", "TUS_VERSION", "router", "tus_resource_url"]

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum"
LOCK_TTL_S = 30.0
RENEW_EVERY_S = 10.0  # a request renews (or commits) well inside its lock's life, or stops writing
COMMIT_EVERY_S = 1.0  # within a PATCH, durable progress is recorded at most this often (a database write)
OFFSET_TYPE = "application/offset+octet-stream"

router = APIRouter(tags=["resumable uploads (tus 1.0)"])
State = Annotated[AppState, Depends(get_state)]
_TUS = {"Tus-Resumable": TUS_VERSION}
_ERR: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 403, 404, 409, 412, 413, 415, 422, 423, 460)
}


class _Hashers:
    """SHA-256 of each upload's bytes so far, kept between requests in this process while they follow
    one another: the last request then knows the digest without reading the file back. Absent (another
    process took a request, or after a restart), the finished object is hashed from storage instead."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._size = size

    def take(self, upload_id: str, offset: int) -> Any | None:
        item = self._items.pop(upload_id, None)
        if offset == 0:
            return hashlib.sha256()
        return item[1] if item is not None and item[0] == offset else None

    def put(self, upload_id: str, offset: int, hasher: Any) -> None:
        self._items[upload_id] = (offset, hasher)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


_HASHERS = _Hashers()


def _svc(state: AppState, request: Request) -> JobService:
    return JobService(state, state.base_url(request))


@contextlib.contextmanager
def _tus_errors() -> Iterator[None]:
    """Every problem answered by the tus endpoints carries ``Tus-Resumable``."""
    try:
        yield
    except MocapdError as exc:
        exc.headers = {**_TUS, **(exc.headers or {})}
        raise exc from None


def _verify(state: AppState, job_id: str, upload_id: str, link: SignedLink) -> None:
    """The upload's own URL (`tus_resource_url`) is signed over its id."""
    state.signer.verify("upload", job_id, f"tus:{upload_id}", link.expires, link.signature)


@contextlib.contextmanager
def _locked(state: AppState, job_id: str, upload_id: str) -> Iterator[tuple[str, uploads.UploadRow]]:
    """The upload's lock (its token and row), given back at once if the block fails; kept otherwise."""
    token, row = uploads.acquire(state.db, job_id, upload_id, LOCK_TTL_S)
    try:
        yield token, row
    except BaseException:
        uploads.release(state.db, job_id, upload_id, token)
        raise


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise MocapdError("tus_version_unsupported", "Send Tus-Resumable: 1.0.0.", headers={"Tus-Version": TUS_VERSION})


def _int_header(request: Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise MocapdError("upload_header_invalid", f"{name} must be a non-negative integer.")
    return int(raw)


def _metadata(raw: str | None) -> dict[str, Any] | None:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs."""
    if not raw:
        return None
    out: dict[str, Any] = {}
    for item in raw.split(",")[:32]:
        key, _, value = item.strip().partition(" ")
        if not key:
            continue
        try:
            out[key[:64]] = base64.b64decode(value, validate=True).decode("utf-8", "replace")[:512] if value else None
        except (binascii.Error, ValueError):
            raise MocapdError("upload_header_invalid", "Upload-Metadata values must be base64.") from None
    return out


def _checksum(request: Request) -> bytes | None:
    raw = request.headers.get("upload-checksum")
    if raw is None:
        return None
    algo, _, value = raw.strip().partition(" ")
    if algo.lower() != "sha256":
        raise MocapdError("upload_header_invalid", "Upload-Checksum supports sha256 only.",
                          headers={"Tus-Checksum-Algorithm": "sha256"})
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise MocapdError("upload_header_invalid", "Upload-Checksum must be 'sha256 <base64 of 32 bytes>'.")
    return digest


def tus_resource_url(state: AppState, base_url: str, job: Job, upload_id: str) -> str:
    """The upload's own URL, signed until the draft expires (at least the upload URL's lifetime)."""
    ttl = state.settings.upload_url_ttl_s
    if job.purge_after is not None:
        ttl = max(ttl, int((job.purge_after - datetime.now(UTC)).total_seconds()) + 60)
    exp, sig = state.signer.sign("upload", job.id, f"tus:{upload_id}", ttl)
    return f"{base_url}/uploads/{job.id}/tus/{upload_id}?expires={exp}&signature={sig}"


# ------------------------------------------------------------------------------------------ OPTIONS
@router.options("/uploads/{job_id}/tus", include_in_schema=False)
@router.options("/uploads/{job_id}/tus/{upload_id}", include_in_schema=False)
def tus_options(job_id: str, state: State) -> Response:
    headers = {**_TUS, "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
               "Tus-Checksum-Algorithm": "sha256"}
    with state.db.read() as s:
        job = s.get(Job, job_id) if len(job_id) <= 64 else None
        if job is not None:
            headers["Tus-Max-Size"] = str(job.max_upload_bytes)
    return Response(status_code=204, headers=headers)


# ------------------------------------------------------------------------------------------ creation
@router.post("/uploads/{job_id}/tus", status_code=201, summary="Create the job's resumable upload (tus 1.0)",
             responses={201: {"description": "Created; Location is the upload's URL"}, **_ERR})
async def tus_create(job_id: str, request: Request, state: State, link: Link) -> Response:
    with _tus_errors():
        return await _create(job_id, request, state, link)


async def _create(job_id: str, request: Request, state: AppState, link: SignedLink) -> Response:
    _check_version(request)
    svc, job = await open_upload_target(state, request, job_id, link, "tus:")
    if request.headers.get("upload-defer-length") is not None:
        raise MocapdError("upload_header_invalid", "Upload-Length is required (creation-defer-length is not offered).")
    length = _int_header(request, "upload-length")
    if length is None:
        raise MocapdError("upload_header_invalid", "Upload-Length is required.")
    rules = upload_rules(job, job_id=job.id)
    rules.check_limit(length)
    if length == 0:
        raise MocapdError("upload_header_invalid", "Upload-Length must be greater than 0.", job_id=job.id)
    rules.check_size(length)  # the claimed size
    metadata = _metadata(request.headers.get("upload-metadata"))
    checksum = _checksum(request)
    with_body = request.headers.get("content-type", "").split(";")[0].strip().lower() == OFFSET_TYPE
    upload_id = "up_" + secrets.token_hex(12)
    store_state = await run_in_threadpool(begin_upload, state.store, job.id, upload_id, job.source_key)

    def register() -> uploads.UploadRow | None:
        with state.db.write() as s:
            return uploads.replace(s, job.id, upload_id, length, metadata, store_state)

    try:
        previous = await run_in_threadpool(register)
    except BaseException:
        await run_in_threadpool(abort_upload, state.store, store_state)
        raise
    if previous is not None:
        await run_in_threadpool(abort_upload, state.store, previous.store_state)
    headers = {**_TUS, "Location": tus_resource_url(state, svc.base_url, job, upload_id)}
    if with_body:
        offset = await _patch(state, svc, request, job, upload_id, 0, checksum)
        headers["Upload-Offset"] = str(offset)
    return Response(status_code=201, headers=headers)


# ------------------------------------------------------------------------------------------ HEAD
@router.head("/uploads/{job_id}/tus/{upload_id}", summary="The upload's offset (tus 1.0)", responses=_ERR)
def tus_head(job_id: str, upload_id: str, state: State, link: Link) -> Response:
    with _tus_errors():
        _verify(state, job_id, upload_id, link)
        row = uploads.get(state.db, job_id, upload_id)
        if row is None:
            raise MocapdError("upload_not_found", "No such upload (it was terminated or replaced).", job_id=job_id)
    headers = {**_TUS, "Upload-Offset": str(row.offset), "Upload-Length": str(row.length), "Cache-Control": "no-store"}
    return Response(status_code=200, headers=headers)


# ------------------------------------------------------------------------------------------ PATCH
@router.patch("/uploads/{job_id}/tus/{upload_id}", status_code=204, summary="Append bytes at Upload-Offset (tus 1.0)",
              responses=_ERR)
async def tus_patch(job_id: str, upload_id: str, request: Request, state: State, link: Link) -> Response:
    with _tus_errors():
        _check_version(request)
        _verify(state, job_id, upload_id, link)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != OFFSET_TYPE:
            raise MocapdError("upload_content_type_invalid", f"Send Content-Type: {OFFSET_TYPE}.", job_id=job_id)
        offset = _int_header(request, "upload-offset")
        if offset is None:
            raise MocapdError("upload_header_invalid", "Upload-Offset is required.", job_id=job_id)
        checksum = _checksum(request)
        new_offset = await _patch(state, _svc(state, request), request, job_id, upload_id, offset, checksum)
    return Response(status_code=204, headers={**_TUS, "Upload-Offset": str(new_offset)})


async def _patch(state: AppState, svc: JobService, request: Request, job_or_id: Job | str, upload_id: str,
                 offset: int, checksum: bytes | None) -> int:
    """Append the request body at ``offset`` under the upload's lock; the committed offset after it."""
    db = state.db
    declared = _int_header(request, "content-length")

    def begin() -> tuple[Job, str, uploads.UploadRow, ResumableWriter]:
        # One trip to a worker thread for the job, the lock and the file (each PATCH starts here).
        job = svc.upload_target(job_or_id) if isinstance(job_or_id, str) else job_or_id
        with _locked(state, job.id, upload_id) as (token, row):
            if row.completed:
                raise MocapdError("upload_offset_mismatch", "The upload is already complete.", job_id=job.id,
                                  headers={"Upload-Offset": str(row.offset)})
            if offset != row.offset:
                raise MocapdError("upload_offset_mismatch", f"Upload-Offset is {offset}; the server has "
                                  f"{row.offset}.", job_id=job.id, details={"offset": row.offset})
            if declared is not None and offset + declared > row.length:
                raise _past_length(job, row.length, offset + declared)
            return job, token, row, open_writer(state.store, row.store_state, row.offset)

    job, token, row, writer = await run_in_threadpool(begin)
    try:
        return await _stream(state, svc, request, job, row, token, writer, checksum)
    except BaseException:
        await run_in_threadpool(writer.abandon)
        await run_in_threadpool(uploads.release, db, job.id, upload_id, token)
        raise
    finally:
        writer.close()


_DISCARDED = " It was discarded: create a new upload."


def _past_length(job: Job, length: int, reached: int) -> MocapdError:
    if reached > job.max_upload_bytes:
        return upload_rules(job, job_id=job.id).too_large()
    return MocapdError("upload_header_invalid", f"The body goes past Upload-Length ({length} bytes).", job_id=job.id)


async def _stream(state: AppState, svc: JobService, request: Request, job: Job, row: uploads.UploadRow, token: str,
                  writer: ResumableWriter, checksum: bytes | None) -> int:
    db = state.db
    body_hash = hashlib.sha256() if checksum is not None else None
    whole = _HASHERS.take(row.upload_id, row.offset)
    committed = row.offset
    renewed_s = time.monotonic()
    pending: asyncio.Future[None] | None = None  # a checkpoint whose fsync runs while bytes keep arriving

    async def settle() -> None:
        nonlocal pending
        if pending is not None:
            task, pending = pending, None
            await task

    async def commit(everything: bool, *, release: bool = False) -> None:
        nonlocal committed, renewed_s
        await settle()

        def durable_then_recorded() -> int:  # one trip to a worker thread: the bytes on disk, then the offset
            durable, store_state = writer.checkpoint(everything=everything)
            if not uploads.commit(db, job.id, row.upload_id, token, offset=durable, store_state=store_state,
                                  ttl_s=LOCK_TTL_S, release=release):
                raise MocapdError("upload_locked", "This request lost the upload's lock; resume from HEAD.",
                                  job_id=job.id)
            writer.committed()
            return durable

        committed = await run_in_threadpool(durable_then_recorded)
        renewed_s = time.monotonic()

    async def commit_behind() -> None:
        """A checkpoint within the request: with the local store its fsync runs beside the stream, and the
        offset is committed once the bytes are on disk."""
        nonlocal pending
        await settle()
        prepared = writer.background_checkpoint()
        if prepared is None:
            await commit(False)
            return
        offset, sync = prepared

        async def run() -> None:
            nonlocal committed, renewed_s
            store_state = await run_in_threadpool(sync)
            if time.monotonic() - renewed_s < COMMIT_EVERY_S:
                return  # on disk; the database hears of it at the next commit (or at the PATCH's end)
            ok = await run_in_threadpool(lambda: uploads.commit(db, job.id, row.upload_id, token, offset=offset,
                                                                store_state=store_state, ttl_s=LOCK_TTL_S))
            if not ok:
                raise MocapdError("upload_locked", "This request lost the upload's lock.", job_id=job.id)
            committed, renewed_s = offset, time.monotonic()

        pending = asyncio.ensure_future(run())

    disconnected = False
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            if writer.offset + len(chunk) > row.length:
                raise _past_length(job, row.length, writer.offset + len(chunk))
            if pending is not None and pending.done():
                await settle()  # raises if the lock was lost
            if time.monotonic() - renewed_s > RENEW_EVERY_S:
                # Never write on a lock that may have expired: renew it first (committing what is durable).
                await settle()
                if time.monotonic() - renewed_s <= RENEW_EVERY_S:
                    pass
                elif checksum is None and writer.offset > committed:
                    await commit(False)
                elif await run_in_threadpool(uploads.renew, db, job.id, row.upload_id, token, LOCK_TTL_S):
                    renewed_s = time.monotonic()
                else:
                    raise MocapdError("upload_locked", "This request lost the upload's lock.", job_id=job.id)
            writer.write(chunk)
            if body_hash is not None:
                body_hash.update(chunk)
            if whole is not None:
                whole.update(chunk)
            if writer.full():
                await run_in_threadpool(writer.flush)
            if checksum is None and writer.checkpoint_due():
                await commit_behind()
    except ClientDisconnect:
        disconnected = True
    except BaseException:
        if pending is not None:
            with contextlib.suppress(BaseException):
                await pending  # an fsync cannot be interrupted; let it finish before the writer goes
        raise
    await settle()
    if checksum is not None:
        assert body_hash is not None
        if disconnected or body_hash.digest() != checksum:
            await run_in_threadpool(writer.abandon)
            await run_in_threadpool(uploads.release, db, job.id, row.upload_id, token)
            if disconnected:
                return committed
            raise MocapdError("upload_chunk_checksum_mismatch", "The body does not match Upload-Checksum; "
                              "nothing of it was kept.", job_id=job.id, details={"offset": committed})
    if writer.offset < row.length:
        await commit(True, release=True)
        if whole is not None:
            _HASHERS.put(row.upload_id, writer.offset, whole)
        return committed
    await _finish(state, svc, job, row, token, writer, whole)
    return row.length


async def _finish(state: AppState, svc: JobService, job: Job, row: uploads.UploadRow, token: str,
                  writer: ResumableWriter, whole: Any | None) -> None:
    """The last byte is in: make the job's source object, check it like a PUT body, record it. Where the
    digest is known first, the object is put in place inside `JobService.record_upload` (the PUT's own
    step, under the job's lock: nothing lands once complete-upload has taken the job)."""
    if whole is not None:
        sha: str | None = whole.hexdigest()
    else:
        local = await run_in_threadpool(writer.digest_of_data)
        sha = local.sha256 if local is not None else None
    if sha is not None:
        await _check_digest(state, job, row, token, sha, stored=False)
        known: str = sha

        def record() -> bool:  # one trip to a worker thread: the source in place, then the upload complete
            svc.record_upload(job.id, row.length, known, writer.finish)
            return _completed(state, job, row, token)

        done = await run_in_threadpool(record)
    else:  # S3 without the running digest (the upload moved between processes): hash the object in the store
        await run_in_threadpool(svc.upload_target, job.id)
        await run_in_threadpool(writer.finish)
        sha = (await run_in_threadpool(state.store.hash_object, job.source_key)).sha256
        await _check_digest(state, job, row, token, sha, stored=True)
        await run_in_threadpool(svc.record_upload, job.id, row.length, sha)
        done = await run_in_threadpool(_completed, state, job, row, token)
    if not done:
        raise MocapdError("upload_locked", "This request lost the upload's lock.", job_id=job.id)


async def _check_digest(state: AppState, job: Job, row: uploads.UploadRow, token: str, sha: str, *,
                        stored: bool) -> None:
    """The whole upload's digest against the job's claimed one; on a mismatch the upload is terminated
    (and the job's source object deleted, where it was already ``stored``)."""
    try:
        upload_rules(job, job_id=job.id).check_digest(sha, then=_DISCARDED)
    except MocapdError:
        if stored:
            await run_in_threadpool(state.store.delete, job.source_key)
        await run_in_threadpool(_terminate, state, job.id, row, token)
        raise


def _completed(state: AppState, job: Job, row: uploads.UploadRow, token: str) -> bool:
    return uploads.commit(state.db, job.id, row.upload_id, token, offset=row.length,
                          store_state={**row.store_state, "finished": True}, ttl_s=LOCK_TTL_S, completed=True,
                          release=True)


def _terminate(state: AppState, job_id: str, row: uploads.UploadRow, token: str) -> None:
    if not row.store_state.get("finished"):
        abort_upload(state.store, row.store_state)
    uploads.forget(state.db, job_id, row.upload_id, token)


# ------------------------------------------------------------------------------------------ termination
@router.delete("/uploads/{job_id}/tus/{upload_id}", status_code=204, summary="Terminate the upload (tus 1.0)",
               responses=_ERR)
def tus_delete(job_id: str, upload_id: str, request: Request, state: State, link: Link) -> Response:
    with _tus_errors():
        _check_version(request)
        _verify(state, job_id, upload_id, link)
        svc = _svc(state, request)
        job = svc.upload_target(job_id)
        with _locked(state, job.id, upload_id) as (token, row):
            if row.completed:
                svc.forget_upload(job.id)  # the source it made goes too; the job awaits an upload again
        _terminate(state, job.id, row, token)
    return Response(status_code=204, headers=dict(_TUS))
