"""The stage runner: one claimed attempt of one job, ``preflight`` -> ``processing`` -> ``packaging``.

1. preflight: download the source object to a private temporary folder.
2. The `Processor` runs; its ``on_progress(stage, fraction)`` calls land here, are mapped onto the
   job's overall progress (preflight 0..0.1, processing 0.1..0.85, packaging 0.85..1), written to the
   row at most every ``progress_interval_s`` or at a stage change (fenced by the lease token), and
   raise `Abort` when the lease is lost, the job was canceled, the job ran past ``job_timeout_s``, or
   the worker is shutting down (before packaging; once packaging has started the attempt finishes).
3. packaging: upload every file to ``jobs/{job}/artifacts/{name}``, write ``manifest.json`` last,
   then register all artifact rows and complete the job (capturing the hold) in one fenced transaction.

Outcome by error: `InputFault` fails the job now; `Abort` per its reason; any other exception is a
system fault: retried with backoff, failed after the last attempt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.queue import ArtifactRecord, ClaimedJob
from mocapd.domain.credits import capture_for
from mocapd.domain.jobs import JobStage
from mocapd.domain.targets import MANIFEST_FILE, describe_file
from mocapd.errors import InputFault, MocapdError
from mocapd.logs import log_event
from mocapd.pipeline.settings import JobSettings
from mocapd.storage import artifact_key, private_key
from mocapd.storage.base import ObjectStore
from mocapd.worker.processor import ArtifactFile, Processor, ProcessRequest, ProcessResult

__all__ = [
    "Abort",
    "AbortReason",
    "LeaseState",
    "Outcome",
    "StageRunner",
]

log = logging.getLogger("mocapd.worker")

# Share of overall progress per stage: [start, end).
STAGE_SPAN: dict[JobStage, tuple[float, float]] = {
    JobStage.PREFLIGHT: (0.0, 0.1),
    JobStage.PROCESSING: (0.1, 0.85),
    JobStage.PACKAGING: (0.85, 1.0),
}
MANIFEST_NAME = MANIFEST_FILE.name
MOTION_NAME = "motion.npz"  # a job's solved motion, among its private files
REEXPORT = "reexport"


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    REQUEUED = "requeued"
    CANCELED = "canceled"
    HANDED_BACK = "handed_back"
    LOST = "lost"  # the lease was gone: another party owns the job now; nothing written


class AbortReason(StrEnum):
    LOST = "lost"
    CANCELED = "canceled"
    STOPPING = "stopping"
    TIMEOUT = "timeout"


class Abort(Exception):
    def __init__(self, reason: AbortReason) -> None:
        super().__init__(f"attempt aborted: {reason}")
        self.reason = reason


class LeaseState:
    """Flags shared by the heartbeat thread, the signal handler and the running attempt."""

    def __init__(self, stopping: threading.Event | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lost = threading.Event()
        self._canceled = threading.Event()
        self.stopping = stopping or threading.Event()
        self._clock = clock
        self.last_ok_s = clock()

    def beat_ok(self) -> None:
        self.last_ok_s = self._clock()

    def mark_lost(self) -> None:
        self._lost.set()

    def mark_canceled(self) -> None:
        self._canceled.set()

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def canceled(self) -> bool:
        return self._canceled.is_set()

    def check(self, *, lease_s: float, allow_stop: bool) -> None:
        """Raise `Abort` if the attempt must stop. A worker whose heartbeats have failed for 80 % of the
        lease stops itself, before anyone else can claim the job."""
        if self.lost or self._clock() - self.last_ok_s > 0.8 * lease_s:
            self._lost.set()
            raise Abort(AbortReason.LOST)
        if self.canceled:
            raise Abort(AbortReason.CANCELED)
        if self.stopping.is_set() and not allow_stop:
            raise Abort(AbortReason.STOPPING)


class StageRunner:
    """Runs one claimed attempt to an `Outcome`; every database write is fenced by the lease token."""

    def __init__(
        self,
        db: Database,
        store: ObjectStore,
        processor: Processor,
        *,
        lease_s: float,
        retry_backoff_s: float,
        job_timeout_s: float,
        progress_interval_s: float = 0.5,
        work_dir: Path | None = None,
        models_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.store = store
        self.processor = processor
        self.lease_s = lease_s
        self.retry_backoff_s = retry_backoff_s
        self.job_timeout_s = job_timeout_s
        self.progress_interval_s = progress_interval_s
        self.work_dir = work_dir
        self.models_dir = models_dir
        self._clock = clock

    def run(self, job: ClaimedJob, lease: LeaseState) -> Outcome:
        progress = _Progress(self, job, lease)
        try:
            with tempfile.TemporaryDirectory(prefix=f"mocapd-{job.id}-", dir=self.work_dir) as tmp:
                return self._run(job, lease, progress, Path(tmp))
        except Abort as abort:
            return self._aborted(job, abort.reason, progress.stage)
        except InputFault as exc:
            stage = exc.stage if exc.stage in {s.value for s in STAGE_SPAN} else progress.stage.value
            log_event(log, "input_fault", level=logging.WARNING, job=job.id, attempt=job.attempt, code=exc.code,
                      stage=stage)
            ok = queue.fail(self.db, job.id, job.lease_token, code=exc.code, message=exc.message, stage=stage)
            return Outcome.FAILED if ok else Outcome.LOST
        except Exception as exc:  # a system fault: retry with backoff
            stage = progress.stage
            if isinstance(exc, MocapdError):
                code, message = exc.code, exc.message
            else:
                code = "packaging_failed" if stage is JobStage.PACKAGING else "processing_failed"
                message = f"{stage.value.capitalize()} failed ({type(exc).__name__})."
            result = queue.retry(
                self.db,
                job.id,
                job.lease_token,
                code=code,
                message=message,
                stage=stage.value,
                base_backoff_s=self.retry_backoff_s,
            )
            log_event(log, "retry" if result == "requeued" else "gave_up", level=logging.WARNING, exc_info=True,
                      job=job.id, attempt=job.attempt, stage=stage.value, code=code, result=result)
            return {"requeued": Outcome.REQUEUED, "failed": Outcome.FAILED}.get(result, Outcome.LOST)

    def _aborted(self, job: ClaimedJob, reason: AbortReason, stage: JobStage) -> Outcome:
        log_event(log, "abort", level=logging.WARNING if reason is AbortReason.TIMEOUT else logging.INFO,
                  job=job.id, attempt=job.attempt, reason=reason.value, stage=stage.value)
        if reason is AbortReason.LOST:
            return Outcome.LOST
        if reason is AbortReason.CANCELED:
            queue.cancel(self.db, job.id)  # the client asked; a no-op if the API already canceled it
            return Outcome.CANCELED
        if reason is AbortReason.STOPPING:
            return Outcome.HANDED_BACK if queue.hand_back(self.db, job.id, job.lease_token) else Outcome.LOST
        ok = queue.fail(
            self.db,
            job.id,
            job.lease_token,
            code="runner_timeout",
            message=f"The job ran longer than {self.job_timeout_s:g} s.",
            stage=stage.value,
        )
        return Outcome.FAILED if ok else Outcome.LOST

    def _download_inputs(self, job: ClaimedJob, tmp: Path) -> Path | None:
        """The copies of the avatars the job names (taken when it was created), into ``tmp/inputs``."""
        refs = [t.partition(":")[2] for t in job.target_ids if t.startswith("avatar:")]
        if not refs:
            return None
        inputs = tmp / "inputs"
        inputs.mkdir()
        for ref in refs:
            for suffix in (".npz", ".json"):
                name = f"avatar_{ref}{suffix}"
                try:
                    self.store.download_to(f"jobs/{job.id}/inputs/{name}", inputs / name)
                except Exception as exc:
                    raise MocapdError("processing_failed", f"The job's copy of avatar {ref} could not be read.") from exc
        return inputs

    def _run(self, job: ClaimedJob, lease: LeaseState, progress: _Progress, tmp: Path) -> Outcome:
        progress("preflight", 0.0)
        if job.source_type == REEXPORT:
            # A re-export starts from its parent's stored motion: no video, no detection.
            source = tmp / "source" / MOTION_NAME
            source.parent.mkdir()
            try:
                self.store.download_to(private_key(str(job.parent_job_id), MOTION_NAME), source)
            except Exception as exc:
                raise MocapdError("processing_failed", "The parent job's stored motion could not be read.") from exc
        else:
            source = tmp / "source" / (Path(job.source_filename).name or "upload")
            source.parent.mkdir()
            try:
                self.store.download_to(job.source_key, source)
            except Exception as exc:
                raise MocapdError("processing_failed", "The source video could not be read from storage.") from exc
            _check_source(job, source)
        trim_end_s = job.trim_end_s
        if trim_end_s is None:
            trim_end_s = float(job.source_facts.get("durationSec", 0.0))
        out_dir = tmp / "out"
        out_dir.mkdir()
        inputs_dir = self._download_inputs(job, tmp)
        request = ProcessRequest(
            job_id=job.id,
            source_path=source,
            out_dir=out_dir,
            settings=JobSettings(
                target_ids=tuple(job.target_ids),
                export_fps=job.export_fps,
                mocap_type=job.mocap_type,
                trim_start_s=job.trim_start_s,
                trim_end_s=trim_end_s,
                focal_length_px=job.focal_length_px,
                camera_fov_deg=job.camera_fov_deg,
                subject_height_m=job.subject_height_m,
                model_quality=job.model_quality,
                hand_tracking=job.hand_tracking,
                models_dir=str(self.models_dir) if self.models_dir is not None else None,
            ),
            source_facts=dict(job.source_facts),
            attempt=job.attempt,
            inputs_dir=inputs_dir,
            source_type=job.source_type,
        )
        result = self.processor.process(request, progress)
        progress("packaging", 0.0)
        files = [f for f in _artifact_files(result.files, request.settings.target_ids) if f.path.name != MANIFEST_NAME]
        names = [f.path.name for f in files]
        if len(set(names)) != len(names):
            raise MocapdError("packaging_failed", "The pipeline produced two files with one name.")
        records: list[ArtifactRecord] = []
        for i, file in enumerate(files):
            lease.check(lease_s=self.lease_s, allow_stop=True)  # a zombie must not overwrite a live attempt's files
            records.append(self._upload(job, file))
            progress("packaging", (i + 1) / (len(files) + 1))
        for path in result.private:  # kept for later (a re-export's motion), never listed or served
            lease.check(lease_s=self.lease_s, allow_stop=True)
            try:
                self.store.put_file(private_key(job.id, Path(path).name), Path(path), "application/octet-stream")
            except Exception as exc:
                raise MocapdError("packaging_failed", f"Storing {Path(path).name} failed.") from exc
        charged = capture_for(job.held_credits, result.processed_s)
        manifest_path = tmp / MANIFEST_NAME
        manifest_path.write_bytes(_manifest_bytes(job, request, result, records, charged))
        lease.check(lease_s=self.lease_s, allow_stop=True)
        records.append(self._upload(job, ArtifactFile(manifest_path, None, MANIFEST_FILE.content_type)))
        lease.check(lease_s=self.lease_s, allow_stop=True)
        if not queue.finish(self.db, job.id, job.lease_token, records, charged_credits=charged):
            return Outcome.LOST
        return Outcome.COMPLETED

    def _upload(self, job: ClaimedJob, file: ArtifactFile) -> ArtifactRecord:
        path, ctype = file.path, file.content_type
        key = artifact_key(job.id, path.name)
        try:
            stored = self.store.put_file(key, path, ctype)
        except Exception as exc:
            raise MocapdError("packaging_failed", f"Uploading {path.name} failed.") from exc
        return ArtifactRecord(
            name=path.name,
            object_key=stored.key,
            bytes=stored.bytes,
            sha256=stored.sha256,
            content_type=ctype,
            target_id=file.target_id,
        )


def _artifact_files(files: Sequence[ArtifactFile | Path], target_ids: tuple[str, ...]) -> list[ArtifactFile]:
    """The processor's files as records; a bare path is described by the catalogue from its name."""
    out = []
    for f in files:
        if isinstance(f, ArtifactFile):
            out.append(ArtifactFile(Path(f.path), f.target_id, f.content_type))
        else:
            target_id, content_type = describe_file(Path(f).name, target_ids)
            out.append(ArtifactFile(Path(f), target_id, content_type))
    return out


def _check_source(job: ClaimedJob, path: Path) -> None:
    """The downloaded source must be the very bytes admitted at complete-upload (size and SHA-256).

    With S3 the presigned upload URL stays valid until it expires, so the object can be replaced after
    admission; processing other bytes than the ones probed and billed would be wrong. It fails the job
    at once (retrying would read the same replaced object).
    """
    if job.upload_sha256 is None:
        return
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
    if (job.upload_bytes is not None and n != job.upload_bytes) or h.hexdigest() != job.upload_sha256:
        raise InputFault(
            "source_changed",
            "The source video in storage is no longer the one admitted (it was replaced after complete-upload).",
            stage="preflight",
        )


class _Progress:
    """The ``on_progress`` hook given to the processor: checks the lease, throttles fenced writes."""

    def __init__(self, runner: StageRunner, job: ClaimedJob, lease: LeaseState) -> None:
        self.runner = runner
        self.job = job
        self.lease = lease
        self.stage = JobStage.PREFLIGHT
        self.started_s = runner._clock()
        self.last_write_s = -float("inf")
        self.written_stage: JobStage | None = None
        self.logged_stage: JobStage | None = None

    def __call__(self, stage: str, fraction: float) -> None:
        r = self.runner
        try:
            st = JobStage(stage)
            STAGE_SPAN[st]
        except (ValueError, KeyError):
            raise ValueError(f"unknown worker stage {stage!r}") from None
        if STAGE_SPAN[st][0] >= STAGE_SPAN[self.stage][0]:
            self.stage = st  # stages only move forward; a late report of an earlier stage is ignored
            if st is not self.logged_stage:
                self.logged_stage = st
                log_event(log, "stage", job=self.job.id, attempt=self.job.attempt, stage=st.value)
        else:
            fraction = 0.0
        lo, hi = STAGE_SPAN[self.stage]
        self.lease.check(lease_s=r.lease_s, allow_stop=self.stage is JobStage.PACKAGING)
        now_s = r._clock()
        if now_s - self.started_s > r.job_timeout_s:
            raise Abort(AbortReason.TIMEOUT)
        if self.stage is self.written_stage and now_s - self.last_write_s < r.progress_interval_s:
            return
        overall = lo + (hi - lo) * min(1.0, max(0.0, float(fraction)))
        if not queue.report_progress(r.db, self.job.id, self.job.lease_token, self.stage, overall):
            self.lease.mark_lost()
            raise Abort(AbortReason.LOST)
        self.written_stage = self.stage
        self.last_write_s = now_s


def _manifest_bytes(
    job: ClaimedJob, request: ProcessRequest, result: ProcessResult, records: list[ArtifactRecord], charged: int
) -> bytes:
    """manifest.json: job, source facts, settings, camera choice, billing and every other artifact."""
    pipeline = result.manifest
    own = ("source", "settings", "camera")
    doc: dict[str, Any] = {
        "version": 1,
        "job": {"id": job.id, "title": job.title, "attempt": job.attempt, "sourceType": job.source_type,
                "parentJobId": job.parent_job_id},
        "source": {
            **job.source_facts,  # probed at admission
            **dict(pipeline.get("source") or {}),  # as decoded by the pipeline
            "filename": job.source_filename,
            "bytes": job.upload_bytes,
            "sha256": job.upload_sha256,
        },
        "settings": request.settings.as_manifest(),
        "camera": pipeline.get("camera"),
        **{k: v for k, v in pipeline.items() if k not in own},  # processing facts, targets ...
        "billing": {
            "channel": job.channel,
            "billedSeconds": job.billed_seconds,
            "heldVCredits": job.held_credits,
            "chargedVCredits": charged,
            "refundedVCredits": job.held_credits - charged,
            "processedSec": None if result.processed_s is None else round(result.processed_s, 3),
        },
        "files": [
            {"name": r.name, "bytes": r.bytes, "sha256": r.sha256, "contentType": r.content_type, "targetId": r.target_id}
            for r in records
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode() + b"\n"
