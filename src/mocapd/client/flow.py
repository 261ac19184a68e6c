"""`JobRunner`: the whole client flow, stage by stage, driven from a resume record.

Each stage retries in its own way (SPEC section 11):

- create: repeated with the record's ``Idempotency-Key``, so a lost answer can never make a second job;
- upload: the whole file is sent again (a repeated PUT replaces the bytes); an expired or invalid URL
  is replaced through ``POST .../upload-url``; ``job_not_awaiting_upload`` means the job was already
  admitted, so the flow moves on. Files of ``tus_min_bytes`` and more go by the job's resumable (tus
  1.0) endpoint instead: the upload's URL is saved in the record before the first byte, and every retry,
  in this process or after a restart, asks the server its offset and sends only the rest;
- complete-upload: repeated (it is idempotent); a timeout is never taken as a failure;
- polling: the same job is polled after timeouts, dropped connections and 5xx/429, with exponential
  backoff and full jitter, never sooner than ``Retry-After``; the next poll time is kept in the record;
- downloads: resumed from the bytes on disk with ``Range`` + ``If-Range`` (the ETag), verified against
  the size and SHA-256 from ``/result`` (or the manifest, or ``Repr-Digest``); only the download is
  retried, and a file that fails verification is fetched again from byte 0.

The record is saved after every step the client must not repeat or lose, so a process killed at any
point is continued by `JobRunner.run` (``mocapd resume``) without creating another job.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mocapd.client.api import DownloadHead, MocapdClient, Response
from mocapd.client.errors import (
    ApiError,
    ClientError,
    InputRejected,
    IntegrityError,
    JobFailed,
    ServerUnreachable,
    SourceChanged,
    TransportError,
)
from mocapd.client.progress import NullReporter, Reporter
from mocapd.client.records import ArtifactState, RecordStage, RecordStore, ResumeRecord
from mocapd.client.retry import RetryPolicy

__all__ = ["TERMINAL", "JobRequest", "JobRunner", "job_failed_from_record", "sha256_file"]

T = TypeVar("T")
TERMINAL = frozenset({"completed", "failed", "canceled"})
_URL_CODES = {"upload_url_expired", "upload_url_invalid"}
_LINK_CODES = {"download_url_expired", "download_url_invalid"}
_UPLOAD_URL_MARGIN_S = 30.0  # re-issue an upload URL that expires within this many seconds
TUS_MIN_BYTES = 8 << 20  # files from this size up go by the resumable (tus) endpoint when the server offers one
TUS_CHUNK_BYTES = 64 << 20  # bytes per PATCH (the server also commits its offset within a PATCH)
_GONE_CODES = {"upload_not_found", "upload_url_invalid", "upload_url_expired", "upload_checksum_mismatch"}


@dataclass(frozen=True)
class JobRequest:
    """What to ask for (the create body minus the source facts, which the runner measures)."""

    target_ids: tuple[str, ...] = ("default",)
    export_fps: int = 30
    mocap_type: str = "full_body"
    title: str | None = None
    trim_start_s: float | None = None
    trim_end_s: float | None = None
    model_quality: str | None = None  # "standard" | "high" (the larger pose model; plans starter and premium)
    hand_tracking: bool = False  # finger bones (plans starter and premium)

    def to_wire(self, filename: str, source_bytes: int, source_sha256: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sourceFilename": filename,
            "targetIds": list(dict.fromkeys(self.target_ids)),
            "exportFps": self.export_fps,
            "mocapType": self.mocap_type,
            "sourceBytes": source_bytes,
            "sourceSha256": source_sha256,
            "sourceType": "upload",
        }
        if self.title is not None:
            body["title"] = self.title
        if self.trim_start_s is not None:
            body["trimStartSec"] = self.trim_start_s
        if self.trim_end_s is not None:
            body["trimEndSec"] = self.trim_end_s
        if self.model_quality is not None:
            body["modelQuality"] = self.model_quality
        if self.hand_tracking:
            body["handTracking"] = True
        return body


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> tuple[int, str]:
    """(size in bytes, hex SHA-256) of a file, read in chunks."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def job_failed_from_record(record: ResumeRecord) -> JobFailed:
    err = record.error or {}
    status = record.terminal_status or "failed"
    return JobFailed(
        record.job_id or "?", status, err.get("code") or ("canceled" if status == "canceled" else None),
        err.get("stage") or record.job_stage, err.get("retryFrom"), err.get("message"),
    )


class JobRunner:
    """Runs jobs to the end and keeps their resume records. ``sleep``, ``clock`` (wall time, persisted
    in records), ``monotonic`` and ``rng`` are injectable for tests."""

    def __init__(
        self,
        client: MocapdClient,
        records: RecordStore,
        *,
        reporter: Reporter | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        tus_min_bytes: int = TUS_MIN_BYTES,
        tus_chunk_bytes: int = TUS_CHUNK_BYTES,
    ) -> None:
        self.client = client
        self.records = records
        self.tus_min_bytes = tus_min_bytes
        self.tus_chunk_bytes = tus_chunk_bytes
        self.reporter: Reporter = reporter if reporter is not None else NullReporter()
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()

    # ------------------------------------------------------------------ entry points
    def start(self, video: Path, request: JobRequest, out_dir: Path | None = None, *, download: bool = True) -> ResumeRecord:
        """Measure the video and write the record (stage ``creating``) before anything is sent."""
        video = Path(video).resolve()
        if not video.is_file():
            raise ClientError(f"no such file: {video}")
        nbytes, sha = sha256_file(video)
        record_id = ResumeRecord.new_id()
        record = ResumeRecord(
            record_id=record_id,
            base_url=self.client.base_url,
            idempotency_key=uuid.uuid4().hex,
            request=request.to_wire(video.name, nbytes, sha),
            source_path=str(video),
            source_bytes=nbytes,
            source_sha256=sha,
            out_dir=str(Path(out_dir).resolve()) if out_dir is not None else "",
            work_dir=str(Path.cwd()),
            download=download,
        )
        self.records.save(record)
        return record

    def submit(self, video: Path, request: JobRequest, out_dir: Path | None = None, *, download: bool = True,
               wait: bool = True) -> ResumeRecord:
        record = self.start(video, request, out_dir, download=download)
        return self.run(record, wait=wait)

    def run(self, record: ResumeRecord, *, wait: bool = True) -> ResumeRecord:
        """Drive ``record`` from its last good stage to ``done``. Raises `JobFailed` for a failed or
        canceled job, `InputRejected`, `ServerUnreachable`, `IntegrityError` as they happen; the record on
        disk always reflects the last completed step. ``wait=False`` stops once the job is admitted."""
        steps: dict[RecordStage, Callable[[ResumeRecord], None]] = {
            RecordStage.CREATING: self._create,
            RecordStage.UPLOADING: self._upload,
            RecordStage.UPLOADED: self._complete,
            RecordStage.ADMITTED: self._poll,
            RecordStage.FINISHED: self._finish,
        }
        guard = 0
        while record.stage is not RecordStage.DONE:
            if not wait and record.stage is RecordStage.ADMITTED:
                return record
            guard += 1
            if guard > 50:  # a server that keeps sending us back (e.g. upload_missing forever)
                raise ClientError(f"job {record.job_id}: no progress after {guard} steps", job_id=record.job_id)
            steps[record.stage](record)
        return record

    def download(self, job_id: str, out_dir: Path) -> ResumeRecord:
        """Download (and verify) a completed job's artifacts, using its record when there is one."""
        record = self.records.find_job(job_id)
        if record is None:
            record = ResumeRecord(
                record_id=ResumeRecord.new_id(), base_url=self.client.base_url, idempotency_key="", request={},
                source_path="", source_bytes=0, source_sha256="", out_dir=str(Path(out_dir).resolve()),
                stage=RecordStage.ADMITTED, job_id=job_id,
            )
        else:
            record.out_dir = str(Path(out_dir).resolve())
            record.download = True
            if record.stage is RecordStage.DONE and record.terminal_status == "completed":
                record.stage = RecordStage.FINISHED
        self.records.save(record)
        return self.run(record)

    # ------------------------------------------------------------------ retry
    def _retrying(self, what: str, fn: Callable[[], T], record: ResumeRecord) -> T:
        """Call ``fn`` until it succeeds, retrying only what is safe: transport failures of idempotent
        calls and retryable API errors, with backoff (at least ``Retry-After``). After
        ``give_up_after_s`` of continuous failure: `ServerUnreachable` (or the last API error)."""
        t0 = self.monotonic()
        attempt = 0
        while True:
            try:
                return fn()
            except TransportError as exc:
                if not exc.retry_safe:
                    raise
                last: ClientError = exc
                hint = exc.retry_after_s
            except ApiError as exc:
                if not (exc.retryable or exc.status == 429):
                    raise
                last, hint = exc, exc.retry_after_s
            if self.monotonic() - t0 > self.policy.give_up_after_s:
                if isinstance(last, ApiError):
                    raise last
                raise ServerUnreachable(f"{what}: gave up after {self.policy.give_up_after_s:g} s: {last.message}; "
                                        f"run `mocapd resume` to continue", job_id=record.job_id) from last
            delay = self.policy.backoff_s(attempt, hint, self.rng)
            self.reporter.note(f"{what}: {last.message}; retrying in {delay:.1f} s")
            if record.stage is RecordStage.ADMITTED:
                record.next_poll_at_s = self.clock() + delay
                self.records.save(record)
            self.sleep(delay)
            attempt += 1

    # ------------------------------------------------------------------ stages
    def _rejected(self, record: ResumeRecord, exc: ApiError, *, job_failed: bool) -> InputRejected:
        record.stage = RecordStage.DONE
        record.terminal_status = "failed" if job_failed else "rejected"
        record.error = {"code": exc.code, "message": exc.detail, "stage": exc.stage, "retryFrom": exc.retry_from,
                        "retryable": exc.retryable}
        self.records.save(record)
        return InputRejected.from_api(exc)

    def _create(self, record: ResumeRecord) -> None:
        try:
            resp = self._retrying("create", lambda: self.client.create_job(record.request, record.idempotency_key),
                                  record)
        except ApiError as exc:
            if exc.status in (401, 404) or exc.status >= 500:
                raise
            raise self._rejected(record, exc, job_failed=False) from exc
        data = resp.data
        record.job_id = str(data["jobId"])
        record.upload_url = data.get("uploadUrl")
        record.upload_url_expires_at = data.get("uploadUrlExpiresAt")
        record.tus_url = data.get("tusUploadUrl")
        record.job_status = data.get("status", "draft")
        if not record.out_dir:  # default folder: ./JOB_ID where the command ran, whoever resumes it
            record.out_dir = str(Path(record.work_dir or Path.cwd()) / record.job_id)
        record.stage = RecordStage.UPLOADING
        self.records.save(record)  # the create answer is on disk before a byte is uploaded
        self.reporter.note(f"created {record.job_id}" + (" (replayed)" if resp.replayed else ""))

    def _upload_url_stale(self, record: ResumeRecord) -> bool:
        if not record.upload_url:
            return True
        if not record.upload_url_expires_at:
            return False
        try:
            expires_s = datetime.fromisoformat(record.upload_url_expires_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return False
        return expires_s - self.clock() < _UPLOAD_URL_MARGIN_S

    def _upload(self, record: ResumeRecord) -> None:
        assert record.job_id is not None
        job_id = record.job_id
        source = Path(record.source_path)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise SourceChanged(f"the source video {source} is gone: {exc}", job_id=job_id) from exc
        if size != record.source_bytes:
            raise SourceChanged(f"{source} has {size} bytes; the job was created for {record.source_bytes}",
                                job_id=job_id)
        if (record.tus_url or record.tus_upload_url) and size >= self.tus_min_bytes:
            return self._upload_tus(record, source)
        reissues = 0
        bad_digests = 0
        while True:
            if self._upload_url_stale(record):
                try:
                    resp = self._retrying("upload-url", lambda: self.client.reissue_upload_url(job_id), record)
                except ApiError as exc:
                    if exc.code == "job_not_awaiting_upload":
                        return self._past_upload(record)
                    raise
                record.upload_url = resp.data["uploadUrl"]
                record.upload_url_expires_at = resp.data.get("uploadUrlExpiresAt")
                record.tus_url = resp.data.get("tusUploadUrl") or record.tus_url
                self.records.save(record)
            url = record.upload_url
            assert url is not None

            def put(url: str = url) -> Response:
                return self.client.upload(url, source, job_id=job_id, on_progress=self.reporter.upload)

            try:
                resp = self._retrying("upload", put, record)
            except ApiError as exc:
                if exc.code in _URL_CODES and reissues < self.policy.max_upload_url_reissues:
                    reissues += 1
                    record.upload_url = None
                    continue
                if exc.code == "job_not_awaiting_upload":
                    return self._past_upload(record)
                if exc.status in (401, 404) or exc.status >= 500:
                    raise
                raise self._rejected(record, exc, job_failed=False) from exc
            got_sha = str(resp.data.get("sha256") or "").lower()
            got_bytes = resp.data.get("bytes")
            # An object store's presigned PUT reports no digest: complete-upload checks it (sourceSha256).
            if got_sha and (got_sha != record.source_sha256 or got_bytes != record.source_bytes):
                bad_digests += 1
                if bad_digests >= 3:
                    raise IntegrityError(f"the server stored {got_bytes} bytes with SHA-256 {got_sha}, not "
                                         f"{record.source_bytes} / {record.source_sha256}", job_id=job_id)
                continue
            record.stage = RecordStage.UPLOADED
            self.records.save(record)
            return

    def _upload_tus(self, record: ResumeRecord, source: Path) -> None:
        """The resumable way: the upload's URL is in the record before a byte is sent, and every attempt
        (after a timeout, a cut connection, a killed process) asks the server its offset and sends only
        the rest. The server records size and SHA-256 when the last byte lands; they are checked here."""
        assert record.job_id is not None
        job_id, size = record.job_id, record.source_bytes
        fresh_uploads = 0
        while True:
            if not record.tus_upload_url:
                if fresh_uploads > self.policy.max_upload_url_reissues:
                    raise ClientError(f"job {job_id}: the resumable upload kept disappearing", job_id=job_id)
                fresh_uploads += 1
                if not record.tus_url or fresh_uploads > 1:
                    try:
                        resp = self._retrying("upload-url", lambda: self.client.reissue_upload_url(job_id), record)
                    except ApiError as exc:
                        if exc.code == "job_not_awaiting_upload":
                            return self._past_upload(record)
                        raise
                    record.upload_url = resp.data["uploadUrl"]
                    record.upload_url_expires_at = resp.data.get("uploadUrlExpiresAt")
                    record.tus_url = resp.data.get("tusUploadUrl")
                    if not record.tus_url:  # the server no longer offers it: a plain PUT
                        self.records.save(record)
                        return self._upload_put_fallback(record)
                tus_url = record.tus_url
                assert tus_url is not None
                try:
                    record.tus_upload_url = self._retrying(
                        "upload", functools.partial(self.client.tus_create, tus_url, size, filename=source.name,
                                                    job_id=job_id),
                        record)
                except ApiError as exc:
                    if exc.code in _GONE_CODES:
                        continue
                    return self._upload_refused(record, exc)
                self.records.save(record)  # the upload's URL is on disk before its first byte is sent
            url = record.tus_upload_url

            def step(url: str = url) -> int:
                offset, length = self.client.tus_offset(url, job_id=job_id)
                if length != size:
                    raise ApiError(409, "upload_not_found", "The upload on the server has another length.",
                                   job_id=job_id)
                if offset >= size:
                    return offset
                return self.client.tus_patch(url, source, offset, min(self.tus_chunk_bytes, size - offset),
                                             job_id=job_id, on_progress=self.reporter.upload)

            try:
                while self._retrying("upload", step, record) < size:
                    pass
            except ApiError as exc:
                if exc.code in _GONE_CODES:  # terminated, replaced, expired or discarded: start a new one
                    record.tus_upload_url = None
                    self.records.save(record)
                    continue
                return self._upload_refused(record, exc)
            job = self._retrying("upload", lambda: self.client.get_job(job_id), record).data.get("job") or {}
            got = job.get("source") or {}
            if job.get("status") == "draft" and (got.get("sha256") != record.source_sha256 or got.get("bytes") != size):
                raise IntegrityError(f"the server recorded {got.get('bytes')} bytes with SHA-256 {got.get('sha256')}, "
                                     f"not {size} / {record.source_sha256}", job_id=job_id)
            record.stage = RecordStage.UPLOADED
            self.records.save(record)
            return

    def _upload_refused(self, record: ResumeRecord, exc: ApiError) -> None:
        if exc.code == "job_not_awaiting_upload":
            return self._past_upload(record)
        if exc.status in (401, 404) or exc.status >= 500:
            raise exc
        raise self._rejected(record, exc, job_failed=False) from exc

    def _upload_put_fallback(self, record: ResumeRecord) -> None:
        record.tus_upload_url = None
        min_bytes, self.tus_min_bytes = self.tus_min_bytes, record.source_bytes + 1
        try:
            return self._upload(record)
        finally:
            self.tus_min_bytes = min_bytes

    def _past_upload(self, record: ResumeRecord) -> None:
        """The job no longer takes uploads (already admitted, or finished): complete-upload tells us how."""
        record.stage = RecordStage.UPLOADED
        self.records.save(record)

    def _complete(self, record: ResumeRecord) -> None:
        assert record.job_id is not None
        job_id = record.job_id
        try:
            resp = self._retrying("complete-upload", lambda: self.client.complete_upload(job_id), record)
        except ApiError as exc:
            if exc.retry_from == "upload":  # nothing (or the wrong thing) arrived: send the file again
                record.stage = RecordStage.UPLOADING
                self.records.save(record)
                return
            if exc.code == "canceled":
                record.stage, record.terminal_status = RecordStage.FINISHED, "canceled"
                record.error = {"code": "canceled", "message": exc.detail, "stage": "canceled", "retryFrom": exc.retry_from}
                self.records.save(record)
                return
            if exc.status in (401, 404) or exc.status >= 500:
                raise
            if exc.retry_from == "complete_upload":  # e.g. not enough credits: the record stays resumable
                raise InputRejected.from_api(exc) from exc
            raise self._rejected(record, exc, job_failed=True) from exc
        self._absorb(record, resp.data)
        if record.stage is RecordStage.UPLOADED:
            record.stage = RecordStage.ADMITTED
        self.records.save(record)

    def _absorb(self, record: ResumeRecord, data: dict[str, Any]) -> None:
        job = data.get("job") or {}
        record.job_status = job.get("status")
        record.job_stage = job.get("stage")
        record.progress = float(job.get("progress") or 0.0)
        if record.job_status in TERMINAL:
            record.terminal_status = record.job_status
            record.error = job.get("error")
            record.stage = RecordStage.FINISHED
            record.next_poll_at_s = None
        self.reporter.processing(str(record.job_status), record.job_stage, record.progress)

    def _poll(self, record: ResumeRecord) -> None:
        assert record.job_id is not None
        job_id = record.job_id
        if record.next_poll_at_s is not None:
            wait_s = record.next_poll_at_s - self.clock()
            if wait_s > 0:
                self.sleep(min(wait_s, self.policy.poll_max_s))
        while True:
            try:
                resp = self._retrying("poll", lambda: self.client.get_job(job_id), record)
            except ApiError as exc:
                if exc.code == "job_not_found":
                    record.stage, record.terminal_status = RecordStage.DONE, "missing"
                    record.error = {"code": exc.code, "message": exc.detail, "stage": exc.stage, "retryFrom": "new_job"}
                    self.records.save(record)
                raise
            self._absorb(record, resp.data)
            if record.stage is RecordStage.FINISHED:
                self.records.save(record)
                return
            delay = self.policy.poll_interval_s(resp.retry_after_s, self.rng)
            record.next_poll_at_s = self.clock() + delay
            self.records.save(record)
            self.sleep(delay)

    def _finish(self, record: ResumeRecord) -> None:
        if record.terminal_status == "completed":
            if record.download:
                self._download_all(record)
            record.stage = RecordStage.DONE
            self.records.save(record)
            return
        record.stage = RecordStage.DONE
        self.records.save(record)
        raise job_failed_from_record(record)

    # ------------------------------------------------------------------ downloads
    def _out_dir(self, record: ResumeRecord) -> Path:
        out = Path(record.out_dir) if record.out_dir else Path.cwd() / str(record.job_id)
        out.mkdir(parents=True, exist_ok=True)
        return out

    def _listing(self, record: ResumeRecord) -> dict[str, str]:
        """Fresh signed URLs by artifact name from /result; expected sizes and digests go into the record."""
        assert record.job_id is not None
        job_id = record.job_id
        data = self._retrying("result", lambda: self.client.get_result(job_id), record).data
        urls: dict[str, str] = {}
        listed = list(data.get("files") or [])  # every artifact with its size and digest
        for output in data.get("outputs") or []:
            listed += list(output.get("files") or [])
        for f in listed:
            if isinstance(f, dict) and f.get("name") and f.get("url"):
                name = _safe_name(str(f["name"]))
                urls[name] = str(f["url"])
                art = record.artifacts.setdefault(name, ArtifactState(name))
                art.bytes = f.get("bytes") if f.get("bytes") is not None else art.bytes
                art.sha256 = str(f["sha256"]).lower() if f.get("sha256") else art.sha256
        for key in ("manifestUrl", "qualityUrl", "previewVideoUrl"):
            url = data.get(key)
            if url:
                name = _safe_name(urlsplit(str(url)).path.rsplit("/", 1)[-1])
                urls[name] = str(url)
                record.artifacts.setdefault(name, ArtifactState(name))
        return urls

    def _download_all(self, record: ResumeRecord) -> None:
        out = self._out_dir(record)
        urls = self._listing(record)
        self.records.save(record)
        names = sorted(urls, key=lambda n: (n != "manifest.json", n))  # the manifest first: it lists digests
        for name in names:
            art = record.artifacts[name]
            self._download_one(record, art, urls, out)
            if name == "manifest.json":
                self._learn_from_manifest(record, out / name)
        self.records.save(record)

    def _learn_from_manifest(self, record: ResumeRecord, path: Path) -> None:
        try:
            manifest = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return
        for f in manifest.get("files") or [] if isinstance(manifest, dict) else []:
            if not isinstance(f, dict) or "name" not in f:
                continue
            art = record.artifacts.get(_safe_name(str(f["name"])))
            if art is not None:
                art.sha256 = art.sha256 or (str(f["sha256"]).lower() if f.get("sha256") else None)
                art.bytes = art.bytes if art.bytes is not None else f.get("bytes")

    def _download_one(self, record: ResumeRecord, art: ArtifactState, urls: dict[str, str], out: Path) -> None:
        final = out / art.name
        part = out / (art.name + ".part")
        if final.exists() and art.sha256 and self._matches(final, art):
            art.downloaded = art.verified = True
            art.path = str(final)
            self.records.save(record)
            return
        t0 = self.monotonic()
        attempt = restarts = refreshes = 0
        while True:
            start = part.stat().st_size if part.exists() else 0
            if art.bytes is not None and start > art.bytes:
                part.unlink()
                start = 0
            try:
                self._fetch(record, art, urls[art.name], part, start)
            except TransportError as exc:
                attempt += 1
                if self.monotonic() - t0 > self.policy.give_up_after_s:
                    raise ServerUnreachable(f"download of {art.name}: {exc.message}; run `mocapd resume`",
                                            job_id=record.job_id) from exc
                delay = self.policy.backoff_s(attempt - 1, exc.retry_after_s, self.rng)
                self.reporter.note(f"{art.name}: {exc.message}; resuming in {delay:.1f} s")
                self.sleep(delay)
                continue
            except ApiError as exc:
                if exc.status == 416:  # nothing left to send: the part is complete (or wrong): verify below
                    pass
                elif (exc.code in _LINK_CODES or exc.status in (401, 403)) and refreshes < 3:
                    refreshes += 1
                    urls.update(self._listing(record))
                    continue
                elif exc.retryable and self.monotonic() - t0 <= self.policy.give_up_after_s:
                    attempt += 1
                    self.sleep(self.policy.backoff_s(attempt - 1, exc.retry_after_s, self.rng))
                    continue
                else:
                    raise
            art.downloaded = True
            if self._matches(part, art):
                os.replace(part, final)
                art.verified = True
                art.path = str(final)
                self.records.save(record)
                return
            part.unlink(missing_ok=True)
            restarts += 1
            self.reporter.note(f"{art.name}: size or SHA-256 mismatch; downloading it again")
            if restarts >= self.policy.max_download_attempts:
                raise IntegrityError(f"{art.name} failed verification {restarts} times", job_id=record.job_id,
                                     name=art.name)

    def _fetch(self, record: ResumeRecord, art: ArtifactState, url: str, part: Path, start: int) -> None:
        """One GET of ``url`` appended to ``part`` from byte ``start`` (If-Range: the expected SHA-256 as
        the strong ETag); a 200 answer to a ranged request rewrites the part from byte 0."""
        if_range = f'"{art.sha256}"' if art.sha256 else None
        done = [start]

        def on_chunk(n: int) -> None:
            done[0] += n
            self.reporter.download(art.name, done[0], art.bytes)

        with open(part, "ab") as f:

            def on_head(head: DownloadHead) -> None:
                if head.status == 200 and start > 0:  # the server sent the whole file: start over
                    f.truncate(0)
                    done[0] = 0
                if art.sha256 is None and head.sha256:
                    art.sha256 = head.sha256
                if art.bytes is None and head.status == 200 and head.total is not None:
                    art.bytes = head.total

            head = self.client.download(url, f, start=start, if_range=if_range, job_id=record.job_id,
                                        on_head=on_head, on_chunk=on_chunk)
            f.flush()
            os.fsync(f.fileno())
        if art.bytes is None and head.total is not None:
            art.bytes = head.total

    @staticmethod
    def _matches(path: Path, art: ArtifactState) -> bool:
        if art.sha256 is None:
            return False  # never call a file verified without a digest to check it against
        with contextlib.suppress(OSError):
            nbytes, sha = sha256_file(path)
            return (art.bytes is None or nbytes == art.bytes) and sha == art.sha256
        return False


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name
    if base in ("", ".", "..") or base.startswith("."):
        raise ClientError(f"refusing artifact name {name!r}")
    return base
