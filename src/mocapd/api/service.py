"""The job API's operations over the database and the object store (HTTP-free, called by routers)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mocapd.api.problems import error_body
from mocapd.api.reads import plausible_job_id, poll_payload
from mocapd.api.schemas import CreateJobIn, ReexportIn
from mocapd.api.state import AppState
from mocapd.db import ledger
from mocapd.db.accounts import active_job_count, plan_limits
from mocapd.db.events import record_note
from mocapd.db.models import Account, IdempotencyRecord, Job, Plan
from mocapd.db.transitions import mark_admitted, mark_canceled, mark_created, mark_failed
from mocapd.domain.admission import (
    AccountState,
    TrimWindow,
    account_problems,
    check_account_can_start,
    check_create,
    normalise_targets,
    resolve_trim,
)
from mocapd.domain.credits import credits_for_window, reexport_credits
from mocapd.domain.jobs import TERMINAL_STATUSES, Channel, EventType, JobStage, JobStatus
from mocapd.domain.plans import PlanLimits
from mocapd.domain.uploads import UploadRules
from mocapd.errors import InputFault, MocapdError
from mocapd.model_files import is_installed, model_for_quality
from mocapd.storage import TooLarge, admitted_source_key, private_key, source_key

__all__ = ["CreateOutcome", "JobService", "upload_rules"]

_ACCEPTING_UPLOAD = {JobStage.AWAITING_UPLOAD, JobStage.UPLOADING, JobStage.UPLOADED}
# Rejections that leave the job a draft, so the client can call complete-upload again later.
_RETRY_LATER = {"api_concurrency_limit_exceeded", "insufficient_api_v_credits", "validation_busy", "model_unavailable"}
_RETRY_UPLOAD = {"upload_missing", "upload_size_mismatch", "upload_checksum_mismatch"}


def _now() -> datetime:
    return datetime.now(UTC)


def clean_filename(name: str) -> str:
    """A file name only: any path part (POSIX or Windows) is stripped; at most 255 bytes."""
    base = PureWindowsPath(PurePosixPath(name.replace("\x00", "")).name).name.strip()
    if not base or base in {".", ".."}:
        raise MocapdError("validation_error", "sourceFilename must name a file.", stage="create")
    if len(base.encode()) > 255:
        raise MocapdError("validation_error", "sourceFilename is longer than 255 bytes.", stage="create")
    return base


def upload_rules(job: Job, *, stage: str | None = None, job_id: str | None = None) -> UploadRules:
    """The upload checks for ``job``: its plan's limit and the client's claimed size and digest (the
    signed PUT and complete-upload both apply these)."""
    return UploadRules(job.max_upload_bytes, job.claimed_bytes, job.claimed_sha256, job_id=job_id, stage=stage)


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class _Price:
    account: Account
    plan: PlanLimits
    window: TrimWindow
    credits: int
    account_state: AccountState


@dataclass(frozen=True)
class CreateOutcome:
    status_code: int
    body: dict[str, Any]
    replayed: bool


class JobService:
    def __init__(self, state: AppState, base_url: str) -> None:
        self.state = state
        self.settings = state.settings
        self.base_url = base_url

    # ---------------------------------------------------------------- helpers
    def _plan(self, s: Session, account_id: str) -> tuple[Account, PlanLimits]:
        acct = s.get(Account, account_id)
        assert acct is not None
        plan = s.get(Plan, acct.plan_name)
        assert plan is not None
        return acct, plan_limits(plan)

    def _job(self, s: Session, account_id: str, job_id: str) -> Job:
        """The account's job, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's writes are
        already serialised by BEGIN IMMEDIATE), so a cancel cannot race a worker's finish."""
        job = s.get(Job, job_id, with_for_update=True) if plausible_job_id(job_id) else None
        if job is None or job.account_id != account_id:
            raise MocapdError("job_not_found", f"No job {job_id[:64]!r} in this account.", job_id=None)
        return job

    def upload_url(self, job: Job) -> tuple[str, str]:
        """Where the client PUTs the source: the store's own presigned URL where it presigns (the API never
        sees the body, so it cannot cut it off at the plan's limit: a declared sourceBytes is signed and
        the bucket refuses any other size; complete-upload checks the object whatever the store did),
        else the API's signed PUT."""
        ttl_s = self.settings.upload_url_ttl_s
        exp = int(_now().timestamp()) + ttl_s
        url = self.state.store.upload_url(job.source_key, ttl_s, content_length=job.claimed_bytes)
        if url is None:
            exp, sig = self.state.signer.sign("upload", job.id, job.source_key, ttl_s)
            url = f"{self.base_url}/uploads/{job.id}?expires={exp}&signature={sig}"
        return url, datetime.fromtimestamp(exp, UTC).isoformat().replace("+00:00", "Z")

    def tus_upload_url(self, job: Job) -> str:
        """The job's tus 1.0 creation endpoint, signed like the upload URL (served by the API in both
        storage modes: in S3 mode it writes a multipart upload, so the client needs no S3 credentials)."""
        exp, sig = self.state.signer.sign("upload", job.id, f"tus:{job.source_key}", self.settings.upload_url_ttl_s)
        return f"{self.base_url}/uploads/{job.id}/tus?expires={exp}&signature={sig}"

    def _account_state(self, s: Session, acct: Account, plan: PlanLimits, channel: str) -> AccountState:
        bal = ledger.balance(s, acct.id, channel)
        return AccountState(plan=plan, active_jobs=active_job_count(s, acct.id), available_credits=bal.available)

    # ---------------------------------------------------------------- create
    def create(
        self, account_id: str, req: CreateJobIn, raw: dict[str, Any], idem_key: str | None, channel: str = "api"
    ) -> CreateOutcome:
        return self._idempotent(account_id, raw, idem_key, lambda s: self._create_in(s, account_id, req, channel))

    def _idempotent(self, account_id: str, raw: dict[str, Any], idem_key: str | None,
                    make: Callable[[Session], dict[str, Any]]) -> CreateOutcome:
        """Run ``make`` (a create, in one write transaction) once per ``Idempotency-Key`` and body."""
        if idem_key is not None:
            idem_key = idem_key.strip().strip('"')
            if not (1 <= len(idem_key) <= 255):
                raise MocapdError("validation_error", "Idempotency-Key must be 1 to 255 characters.", stage="create")
            fp = fingerprint(raw)
            replay = self._idem_begin(account_id, idem_key, fp)
            if replay is not None:
                return replay
        try:
            with self.state.db.write() as s:
                body = make(s)
                if idem_key is not None:
                    rec = s.get(IdempotencyRecord, (account_id, idem_key))
                    if rec is not None:
                        rec.state, rec.response_status, rec.response_body = "done", 201, body
                        rec.job_id = body["jobId"] if "jobId" in body else body["job"]["id"]
        except MocapdError:
            if idem_key is not None:  # nothing stored for a rejected request: the client may fix and retry
                with self.state.db.write() as s:
                    rec = s.get(IdempotencyRecord, (account_id, idem_key))
                    if rec is not None and rec.state == "in_progress":
                        s.delete(rec)
            raise
        return CreateOutcome(201, body, False)

    def _idem_begin(self, account_id: str, key: str, fp: str) -> CreateOutcome | None:
        now = _now()
        for _ in range(3):
            try:
                with self.state.db.write() as s:
                    rec = s.get(IdempotencyRecord, (account_id, key))
                    if rec is not None and rec.expires_at < now:
                        s.delete(rec)
                        s.flush()
                        rec = None
                    if rec is None:
                        s.add(
                            IdempotencyRecord(
                                account_id=account_id, key=key, fingerprint=fp, state="in_progress",
                                locked_until=now + timedelta(seconds=30), created_at=now,
                                expires_at=now + timedelta(seconds=self.settings.idempotency_ttl_s),
                            )
                        )
                        return None
                    if rec.fingerprint != fp:
                        raise MocapdError(
                            "idempotency_key_reused",
                            "This Idempotency-Key was used with a different request body.",
                            stage="create",
                        )
                    if rec.state == "done":
                        assert rec.response_body is not None
                        body = dict(rec.response_body)
                        job = s.get(Job, rec.job_id) if rec.job_id else None
                        if job is not None and job.status == JobStatus.DRAFT:
                            body["uploadUrl"], body["uploadUrlExpiresAt"] = self.upload_url(job)
                            body["tusUploadUrl"] = self.tus_upload_url(job)
                        return CreateOutcome(rec.response_status or 201, body, True)
                    if rec.locked_until > now:
                        raise MocapdError(
                            "idempotency_key_in_flight",
                            "A request with this Idempotency-Key is still in progress; retry shortly.",
                            stage="create",
                            headers={"Retry-After": "1"},
                        )
                    rec.locked_until = now + timedelta(seconds=30)  # the first attempt died: take over
                    return None
            except IntegrityError:
                continue  # a concurrent first request inserted the key: look again
        raise MocapdError("idempotency_key_in_flight", "Retry shortly.", stage="create")

    def _create_in(self, s: Session, account_id: str, req: CreateJobIn, channel: str = "api") -> dict[str, Any]:
        acct, plan = self._plan(s, account_id)
        if req.sourceType is not None and req.sourceType != "upload":
            raise MocapdError("validation_error", "sourceType must be 'upload'.", stage="create")
        targets = normalise_targets(req.targetIds, req.targetId, plan)
        fps = req.exportFps if req.exportFps is not None else 30
        mocap_type = req.mocapType or "full_body"
        model_quality = req.modelQuality or "standard"
        if model_quality == "high" and not plan.allows_option("model_high"):
            raise MocapdError("plan_option_unavailable",
                              f"modelQuality \"high\" is not included in the {plan.name} plan (starter and premium include it).",
                              stage="create", details={"field": "modelQuality"})
        hand_tracking = bool(req.handTracking)
        if hand_tracking and not plan.allows_option("hands"):
            raise MocapdError("plan_option_unavailable",
                              f"handTracking is not included in the {plan.name} plan (starter and premium include it).",
                              stage="create", details={"field": "handTracking"})
        trim_start = req.trimStartSec or 0.0
        check_create(
            plan=plan, export_fps=fps, mocap_type=mocap_type, trim_start_s=trim_start, trim_end_s=req.trimEndSec,
            claimed_duration_s=req.sourceDurationSec, claimed_bytes=req.sourceBytes,
        )
        filename = clean_filename(req.sourceFilename)
        estimate = 1
        if req.sourceDurationSec is not None or req.trimEndSec is not None:
            end = req.trimEndSec if req.trimEndSec is not None else req.sourceDurationSec
            estimate = credits_for_window(trim_start, float(end))  # type: ignore[arg-type]
        check_account_can_start(self._account_state(s, acct, plan, Channel(channel)), estimate, "create")
        now = _now()
        job_id = "mocap_" + secrets.token_hex(12)
        job = Job(
            id=job_id, account_id=acct.id, channel=Channel(channel), status=JobStatus.DRAFT, stage=JobStage.AWAITING_UPLOAD,
            progress=0.0, title=req.title, target_ids=targets, export_fps=int(fps), mocap_type=mocap_type,
            model_quality=model_quality, hand_tracking=hand_tracking,
            trim_start_s=trim_start, trim_end_s=req.trimEndSec, focal_length_px=req.focalLengthPx,
            camera_fov_deg=req.cameraFovDeg, subject_height_m=req.subjectHeightM, source_filename=filename,
            source_key=source_key(job_id), claimed_duration_s=req.sourceDurationSec, claimed_bytes=req.sourceBytes,
            claimed_sha256=req.sourceSha256.lower() if req.sourceSha256 else None,
            max_upload_bytes=plan.max_file_bytes, created_at=now, updated_at=now,
            purge_after=now + timedelta(seconds=self.settings.draft_ttl_s), queue_weight=plan.queue_weight,
            max_attempts=self.settings.max_attempts, attempts=0, lease_token=0, event_seq=0,
            billed_seconds=0, held_credits=0, charged_credits=0, refunded_credits=0,
        )
        s.add(job)
        self._copy_avatars(s, acct.id, job_id, targets)
        mark_created(s, job, "Job created; waiting for the upload.")
        url, expires_at = self.upload_url(job)
        return {
            "jobId": job_id, "status": "draft", "mocapType": mocap_type, "exportFps": int(fps), "targetIds": targets,
            "uploadUrl": url, "uploadUrlExpiresAt": expires_at, "tusUploadUrl": self.tus_upload_url(job),
            "sourceKey": job.source_key,
            "maxUploadBytes": plan.max_file_bytes,
        }

    # ---------------------------------------------------------------- re-export
    def reexport(self, account_id: str, parent_id: str, req: ReexportIn, raw: dict[str, Any],
                 idem_key: str | None) -> CreateOutcome:
        """A child job of a completed job, admitted at once, that makes its products from the parent's
        stored motion: other frame rate, targets or mocap type, no detection (SPEC section 14)."""
        keyed = {"reexportOf": parent_id, **raw}
        return self._idempotent(account_id, keyed, idem_key, lambda s: self._reexport_in(s, account_id, parent_id, req))

    def _reexport_in(self, s: Session, account_id: str, parent_id: str, req: ReexportIn) -> dict[str, Any]:
        parent = self._job(s, account_id, parent_id)
        if parent.status != JobStatus.COMPLETED:
            raise MocapdError("job_not_completed", f"The job is {parent.status}; only a completed job can be "
                              "re-exported.", job_id=parent.id)
        if not self.state.store.exists(private_key(parent.id, "motion.npz")):
            raise MocapdError("parent_motion_unavailable", "The job's stored motion is gone (it was made before "
                              "re-exports existed, or its retention ended).", job_id=parent.id)
        acct, plan = self._plan(s, account_id)
        targets = normalise_targets(req.targetIds, None, plan) if req.targetIds is not None else list(parent.target_ids)
        fps = req.exportFps if req.exportFps is not None else parent.export_fps
        mocap_type = req.mocapType or parent.mocap_type
        check_create(plan=plan, export_fps=fps, mocap_type=mocap_type, trim_start_s=0.0, trim_end_s=None,
                     claimed_duration_s=None, claimed_bytes=None)
        duration_s = float(parent.trim_end_s or 0.0) - float(parent.trim_start_s or 0.0)
        credits = reexport_credits(duration_s)
        check_account_can_start(self._account_state(s, acct, plan, parent.channel), credits, "validation")
        now = _now()
        job_id = "mocap_" + secrets.token_hex(12)
        job = Job(
            id=job_id, account_id=acct.id, channel=parent.channel, status=JobStatus.DRAFT,
            stage=JobStage.UPLOADED, progress=0.0, title=parent.title, target_ids=targets, export_fps=int(fps),
            mocap_type=mocap_type, trim_start_s=parent.trim_start_s, trim_end_s=parent.trim_end_s,
            focal_length_px=parent.focal_length_px, camera_fov_deg=parent.camera_fov_deg,
            subject_height_m=parent.subject_height_m, model_quality=parent.model_quality,
            hand_tracking=parent.hand_tracking,  # the stored motion's: its fingers come with it
            source_filename=parent.source_filename,
            source_key=source_key(job_id), upload_bytes=parent.upload_bytes, upload_sha256=parent.upload_sha256,
            source_facts=dict(parent.source_facts or {}), max_upload_bytes=0, created_at=now, updated_at=now,
            queue_weight=plan.queue_weight, max_attempts=self.settings.max_attempts, attempts=0, lease_token=0,
            event_seq=0, billed_seconds=0, held_credits=0, charged_credits=0, refunded_credits=0,
            source_type="reexport", parent_job_id=parent.id,
        )
        s.add(job)
        self._copy_avatars(s, acct.id, job_id, targets)
        mark_created(s, job, f"Re-export of {parent.id}: no upload, no detection.")
        mark_admitted(s, job, credits=credits, queue_weight=plan.queue_weight,
                      admitted={"heldVCredits": credits, "durationSec": round(duration_s, 3), "parentJobId": parent.id})
        return self._poll_payload(s, job)

    def _copy_avatars(self, s: Session, account_id: str, job_id: str, targets: list[str]) -> None:
        """The job's own copy of each avatar it targets (its files are gone if the create fails)."""
        if any(t.startswith("avatar:") for t in targets):
            from mocapd.api.avatars import snapshot_avatars

            try:
                snapshot_avatars(self.state, s, account_id, job_id, targets)
            except BaseException:
                self.state.store.delete_prefix(f"jobs/{job_id}/")
                raise

    def reissue_upload_url(self, account_id: str, job_id: str) -> dict[str, Any]:
        with self.state.db.read() as s:
            job = self._job(s, account_id, job_id)
            if job.status != JobStatus.DRAFT or job.stage not in _ACCEPTING_UPLOAD:
                raise MocapdError("job_not_awaiting_upload", f"The job is {job.status}; it takes no upload.", job_id=job.id)
            url, exp = self.upload_url(job)
            return {"jobId": job.id, "uploadUrl": url, "uploadUrlExpiresAt": exp, "tusUploadUrl": self.tus_upload_url(job),
                    "maxUploadBytes": job.max_upload_bytes}

    # ---------------------------------------------------------------- upload (local store)
    def upload_target(self, job_id: str) -> Job:
        with self.state.db.read() as s:
            job = s.get(Job, job_id) if plausible_job_id(job_id) else None
            if job is None:
                raise MocapdError("upload_url_invalid", "The upload link does not name a job.")
            if job.status != JobStatus.DRAFT or job.stage not in _ACCEPTING_UPLOAD:
                raise MocapdError("job_not_awaiting_upload", f"The job is {job.status}; it takes no upload.", job_id=job.id)
            return job

    def record_upload(self, job_id: str, nbytes: int, sha256: str, publish: Callable[[], None] | None = None) -> None:
        """Record an upload's size and SHA-256; with ``publish`` (which puts the bytes in place), that and
        the record are one step under the job's lock: concurrent uploads are ordered by it, so the last
        to take it wins both, and none lands once complete-upload has taken the job (409)."""
        with self.state.db.write() as s:
            job = s.get(Job, job_id, with_for_update=True)
            assert job is not None
            if job.status != JobStatus.DRAFT or job.stage not in _ACCEPTING_UPLOAD:
                raise MocapdError("job_not_awaiting_upload", "The job was admitted while uploading.", job_id=job.id)
            if publish is not None:
                publish()  # a rename: if the commit below fails, complete-upload hashes what it admits anyway
            job.upload_bytes, job.upload_sha256 = nbytes, sha256
            job.stage = JobStage.UPLOADED
            job.updated_at = _now()
            record_note(s, job, EventType.UPLOAD_RECEIVED, f"Received {nbytes} bytes.", {"bytes": nbytes, "sha256": sha256})

    def forget_upload(self, job_id: str) -> None:
        """A terminated upload leaves no bytes: the draft's source object goes and the job awaits an upload."""
        with self.state.db.write() as s:
            job = s.get(Job, job_id)
            assert job is not None
            if job.status != JobStatus.DRAFT or job.stage not in _ACCEPTING_UPLOAD:
                raise MocapdError("job_not_awaiting_upload", f"The job is {job.status}; its upload is kept.",
                                  job_id=job.id)
            self.state.store.delete(job.source_key)
            job.upload_bytes = job.upload_sha256 = None
            job.stage = JobStage.AWAITING_UPLOAD
            job.updated_at = _now()
            record_note(s, job, EventType.UPLOAD_TERMINATED, "The upload was terminated; its bytes were deleted.")

    # ---------------------------------------------------------------- complete-upload
    def complete_upload(self, account_id: str, job_id: str) -> dict[str, Any]:
        with self.state.db.write() as s:
            job = self._job(s, account_id, job_id)
            if job.status != JobStatus.DRAFT:
                if job.status == JobStatus.CANCELED:
                    raise MocapdError("canceled", "The job was canceled.", job_id=job.id, stage="canceled")
                return self._poll_payload(s, job)  # idempotent: already admitted or finished
            if job.stage == JobStage.FAILED:
                return self._poll_payload(s, job)
            job.stage = JobStage.VALIDATING  # locks out further PUTs while we look at the file
            job.updated_at = _now()
        try:
            admitted = self._snapshot(job)
            facts, nbytes, sha = self._inspect_upload(job, key=admitted)
        except MocapdError as exc:
            return self._reject(account_id, job_id, exc)
        try:
            with self.state.db.write() as s:
                job = self._job(s, account_id, job_id)
                if job.status != JobStatus.DRAFT:
                    return self._poll_payload(s, job)
                price = self._price(s, job, facts)
                window, credits, plan = price.window, price.credits, price.plan
                missing = self._missing_model(job)
                if missing is not None:
                    raise missing
                check_account_can_start(price.account_state, credits, "validation")
                job.upload_bytes, job.upload_sha256, job.source_facts = nbytes, sha, facts
                if admitted is not None:
                    job.source_key = admitted  # the worker reads the snapshot: no upload URL can replace it
                job.trim_start_s, job.trim_end_s = window.start_s, window.end_s
                mark_admitted(s, job, credits=credits, queue_weight=plan.queue_weight,
                              admitted={"heldVCredits": credits, "durationSec": round(window.duration_s, 3)})
                return self._poll_payload(s, job)
        except MocapdError as exc:
            return self._reject(account_id, job_id, exc)

    def _missing_model(self, job: Job) -> MocapdError | None:
        """`model_unavailable` when the job's modelQuality needs a model file that is not installed here
        (`mocapd models fetch` installs it; the job stays a draft and complete-upload can be called again)."""
        model = model_for_quality(job.model_quality or "standard")
        if model is None or is_installed(self.settings.resolved_models_dir, model):
            return None
        return MocapdError("model_unavailable",
                           f"modelQuality \"{job.model_quality}\" needs the {model.description.split(' (')[0]} model, "
                           "which is not installed on this server (the operator installs it with `mocapd models fetch`).",
                           stage="validation", details={"model": model.name})

    def _price(self, s: Session, job: Job, facts: dict[str, Any]) -> _Price:
        """Admission's reckoning of a probed upload: the trim window against the real duration (raises
        `api_trim_range_invalid` / `api_duration_limit_exceeded`), its credits and the account's state.
        complete-upload then requires `check_account_can_start`; a quote lists `account_problems`."""
        acct, plan = self._plan(s, job.account_id)
        window = resolve_trim(job.trim_start_s, job.trim_end_s, float(facts["durationSec"]), plan)
        return _Price(acct, plan, window, window.credits, self._account_state(s, acct, plan, job.channel))

    # ---------------------------------------------------------------- quote
    def quote(self, account_id: str, job_id: str) -> dict[str, Any]:
        """What complete-upload would charge now and whether it would admit the job, holding nothing."""
        with self.state.db.read() as s:
            job = self._job(s, account_id, job_id)
            if job.status != JobStatus.DRAFT or job.stage not in _ACCEPTING_UPLOAD | {JobStage.VALIDATING}:
                raise MocapdError("job_not_awaiting_upload", f"The job is {job.status}; only a draft can be quoted.",
                                  job_id=job.id)
        problems: list[MocapdError] = []
        facts: dict[str, Any] | None = None
        try:
            facts, _, _ = self._inspect_upload(job, discard_oversize=False)
        except MocapdError as exc:
            if exc.code == "upload_missing":
                exc.job_id = job.id
                raise
            problems.append(exc)
        window: TrimWindow | None = None
        with self.state.db.read() as s:
            job = self._job(s, account_id, job_id)
            acct, plan = self._plan(s, account_id)
            account_state = self._account_state(s, acct, plan, job.channel)
            if facts is not None:
                try:
                    price = self._price(s, job, facts)
                    window, account_state = price.window, price.account_state
                except MocapdError as exc:
                    problems.append(exc)
            credits = window.credits if window is not None else None
            missing = self._missing_model(job)
            if missing is not None:
                problems.append(missing)
            problems += account_problems(account_state, credits or 0, "validation")
        return {
            "jobId": job.id,
            "vCredits": credits,
            "channel": job.channel,
            "durationSec": round(window.duration_s, 3) if window is not None else None,
            "sourceDurationSec": facts.get("durationSec") if facts is not None else None,
            "trimStartSec": window.start_s if window is not None else job.trim_start_s,
            "trimEndSec": window.end_s if window is not None else job.trim_end_s,
            "available": account_state.available_credits,
            "admissible": not problems,
            "problems": [error_body(p) for p in problems],
        }

    def _snapshot(self, job: Job) -> str | None:
        """Copy the upload to the job's admitted key and return that key, or None when the upload is
        missing, empty or too large (then `_inspect_upload` of the upload itself says what is wrong).

        Uploads may still land on the upload key (a PUT that started before complete-upload, or in S3 mode
        any presigned PUT until the URL expires); the snapshot is what is probed, hashed, admitted and
        processed, and nothing writes to it afterwards."""
        size = self.state.store.size(job.source_key)
        if size is None or size == 0 or size > job.max_upload_bytes:
            return None
        dest = admitted_source_key(job.id)
        try:
            self.state.store.snapshot(job.source_key, dest)
        except FileNotFoundError:
            return None  # gone since: `_inspect_upload` answers upload_missing
        return dest

    def _inspect_upload(self, job: Job, *, discard_oversize: bool = True,
                        key: str | None = None) -> tuple[dict[str, Any], int, str]:
        """Size, SHA-256 and probe facts of the object ``key`` (default: the upload), after the upload checks
        (the plan's limit, the client's claimed size and digest).

        One read of the object (`ObjectStore.local_copy`) gives the bytes that are checked and probed,
        their size and their digest: one version of the object, even if it is replaced meanwhile."""
        store = self.state.store
        key = key or job.source_key
        rules = upload_rules(job, stage="validation")
        size = store.size(key)
        if size is None:
            raise MocapdError("upload_missing", "Nothing has been uploaded for this job.", stage="validation")
        if size == 0:
            raise InputFault("source_unreadable", "The uploaded file is empty.", stage="validation")
        probes = self.state.probes
        assert probes is not None
        try:
            rules.check_limit(size)
            with store.local_copy(key, max_bytes=job.max_upload_bytes) as copy:
                if copy.bytes == 0:
                    raise InputFault("source_unreadable", "The uploaded file is empty.", stage="validation")
                rules.check_received(copy.bytes, copy.sha256)
                return probes.probe(copy.path), copy.bytes, copy.sha256
        except TooLarge as exc:  # replaced by a bigger object since the size above
            if discard_oversize:
                self._discard(job, key)  # never keep (or pay for) an object past the plan's limit
            raise rules.too_large() from exc
        except MocapdError as exc:
            if discard_oversize and exc.code == "api_file_size_limit_exceeded":
                self._discard(job, key)
            raise

    def _discard(self, job: Job, key: str) -> None:
        """Never keep (or pay for) an object past the plan's limit: the upload, and its snapshot if any."""
        for k in dict.fromkeys([key, job.source_key]):
            self.state.store.delete(k)

    def _reject(self, account_id: str, job_id: str, exc: MocapdError) -> dict[str, Any]:
        """Record a rejection, then raise it. Input problems fail the job; a missing or mismatched
        upload goes back to awaiting upload; a full account (credits, concurrency) stays a draft."""
        with self.state.db.write() as s:
            job = self._job(s, account_id, job_id)
            if job.status == JobStatus.DRAFT and job.stage == JobStage.VALIDATING:
                if exc.code in _RETRY_LATER:
                    job.stage = JobStage.UPLOADED
                    record_note(s, job, EventType.VALIDATION_DEFERRED, exc.message, {"code": exc.code})
                elif exc.code in _RETRY_UPLOAD:
                    job.stage = JobStage.AWAITING_UPLOAD
                    record_note(s, job, EventType.VALIDATION_UPLOAD_REJECTED, exc.message, {"code": exc.code})
                else:
                    _, plan = self._plan(s, account_id)
                    mark_failed(s, job, code=exc.code, message=exc.message, stage="validation",
                                retention_days=plan.retention_days)
                job.updated_at = _now()
        exc.job_id = job_id
        exc.stage = "validation"
        raise exc

    # ---------------------------------------------------------------- reads
    def _poll_payload(self, s: Session, job: Job) -> dict[str, Any]:
        return poll_payload(self.state, s, job, self.base_url)

    def cancel(self, account_id: str, job_id: str) -> dict[str, Any]:
        with self.state.db.write() as s:
            job = self._job(s, account_id, job_id)
            if job.status in TERMINAL_STATUSES:
                if job.status == JobStatus.CANCELED:
                    return self._poll_payload(s, job)
                raise MocapdError("job_not_cancelable", f"The job already {job.status}.", job_id=job.id)
            _, plan = self._plan(s, account_id)
            if job.status == JobStatus.PROCESSING:
                job.cancel_requested = True  # the worker sees it at its next heartbeat and stops
            mark_canceled(s, job, retention_days=plan.retention_days)
            return self._poll_payload(s, job)
