"""The one table of error codes: code -> HTTP status, retryable, retryFrom, default stage.

Every error a client can see carries one of these codes (SPEC section 4). Only the API's
problem+json handler turns them into HTTP; everything else raises `mocapd.errors.MocapdError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeGuard

__all__ = ["CODES", "CodeInfo", "ErrorCode", "RetryFrom", "UnknownErrorCode", "code_info", "is_error_code"]

# Every code a client can see. A literal type, so `mypy --strict` rejects a misspelt code where an error is
# raised; tests/unit/domain/test_rules.py checks that it and the table below name the same codes.
ErrorCode = Literal[
    "validation_error",
    "export_fps_invalid",
    "mocap_type_invalid",
    "api_target_ids_required",
    "api_target_unsupported",
    "api_source_duration_invalid",
    "api_trim_range_invalid",
    "api_duration_limit_exceeded",
    "api_file_size_limit_exceeded",
    "api_concurrency_limit_exceeded",
    "api_plan_inactive",
    "insufficient_api_v_credits",
    "idempotency_key_reused",
    "idempotency_key_in_flight",
    "upload_url_invalid",
    "upload_url_expired",
    "download_url_invalid",
    "download_url_expired",
    "upload_size_mismatch",
    "upload_checksum_mismatch",
    "draft_expired",
    "job_not_awaiting_upload",
    "upload_not_found",
    "upload_header_invalid",
    "upload_content_type_invalid",
    "tus_version_unsupported",
    "upload_offset_mismatch",
    "upload_locked",
    "upload_chunk_checksum_mismatch",
    "upload_missing",
    "source_unreadable",
    "source_no_video_stream",
    "source_unsupported",
    "validation_busy",
    "source_changed",
    "no_person_detected",
    "processing_failed",
    "packaging_failed",
    "runner_lost",
    "runner_timeout",
    "job_not_found",
    "artifact_not_found",
    "unauthorized",
    "rate_limited",
    "webhook_not_found",
    "webhook_delivery_not_found",
    "webhook_url_not_allowed",
    "webhook_event_unknown",
    "canceled",
    "job_not_cancelable",
    "job_not_completed",
    "parent_motion_unavailable",
    "range_not_satisfiable",
    "payload_too_large",
    "not_ready",
    "internal_error",
    "avatar_unreadable",
    "avatar_format_unsupported",
    "avatar_no_skeleton",
    "avatar_not_humanoid",
    "avatar_file_size_limit_exceeded",
    "avatar_mapping_invalid",
    "avatar_not_found",
    "avatar_not_awaiting_upload",
    "avatar_not_ready",
    "studio_csrf_rejected",
    "plan_option_unavailable",
    "model_unavailable",
]


class UnknownErrorCode(ValueError):
    """An error raised with a code missing from `CODES`: a bug in our code, never the client's fault."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(f"{code!r} is not an error code in mocapd.domain.codes.CODES")


class RetryFrom(StrEnum):
    UPLOAD = "upload"
    COMPLETE_UPLOAD = "complete_upload"
    NEW_JOB = "new_job"
    NONE = "none"


@dataclass(frozen=True)
class CodeInfo:
    code: ErrorCode
    http_status: int
    retryable: bool
    retry_from: RetryFrom
    stage: str
    title: str


def _c(code: ErrorCode, status: int, retryable: bool, retry_from: RetryFrom, stage: str, title: str) -> CodeInfo:
    return CodeInfo(code, status, retryable, retry_from, stage, title)


_R = RetryFrom
CODES: dict[str, CodeInfo] = {
    c.code: c
    for c in (
        # create time
        _c("validation_error", 422, False, _R.NEW_JOB, "create", "The request is not valid"),
        _c("export_fps_invalid", 422, False, _R.NEW_JOB, "create", "exportFps must be 24, 30, 60 or 120"),
        _c("mocap_type_invalid", 422, False, _R.NEW_JOB, "create", "mocapType must be full_body or upper_body"),
        _c("api_target_ids_required", 422, False, _R.NEW_JOB, "create", "targetIds is required"),
        _c("api_target_unsupported", 422, False, _R.NEW_JOB, "create", "A requested target is not available"),
        _c("api_source_duration_invalid", 422, False, _R.NEW_JOB, "create", "The source duration is not valid"),
        _c("api_trim_range_invalid", 422, False, _R.NEW_JOB, "validation", "The trim window is not valid"),
        _c("api_duration_limit_exceeded", 422, False, _R.NEW_JOB, "validation", "The clip is longer than the plan allows"),
        _c("api_file_size_limit_exceeded", 413, False, _R.NEW_JOB, "upload", "The file is larger than the plan allows"),
        _c("api_concurrency_limit_exceeded", 429, True, _R.COMPLETE_UPLOAD, "validation", "Too many active jobs"),
        _c("api_plan_inactive", 403, False, _R.NONE, "validation", "The account's plan is not active"),
        _c("insufficient_api_v_credits", 402, False, _R.COMPLETE_UPLOAD, "validation", "Not enough credits"),
        _c("idempotency_key_reused", 422, False, _R.NONE, "create", "Idempotency-Key was used with a different request"),
        _c("idempotency_key_in_flight", 409, True, _R.NONE, "create", "A request with this Idempotency-Key is in progress"),
        # upload
        _c("upload_url_invalid", 403, False, _R.UPLOAD, "upload", "The upload URL is not valid"),
        _c("upload_url_expired", 403, False, _R.UPLOAD, "upload", "The upload URL has expired"),
        _c("download_url_invalid", 403, False, _R.NONE, "download", "The download link is not valid"),
        _c("download_url_expired", 403, True, _R.NONE, "download", "The download link has expired"),
        _c("upload_size_mismatch", 422, False, _R.UPLOAD, "upload", "The upload does not match sourceBytes"),
        _c("upload_checksum_mismatch", 422, False, _R.UPLOAD, "upload", "The upload does not match sourceSha256"),
        _c("draft_expired", 410, False, _R.NEW_JOB, "upload", "The draft expired before its upload was completed"),
        _c("job_not_awaiting_upload", 409, False, _R.NONE, "upload", "The job no longer accepts uploads"),
        # resumable (tus 1.0) uploads
        _c("upload_not_found", 404, False, _R.UPLOAD, "upload", "No such resumable upload"),
        _c("upload_header_invalid", 400, False, _R.UPLOAD, "upload", "A tus request header is missing or not valid"),
        _c("upload_content_type_invalid", 415, False, _R.UPLOAD, "upload",
           "A PATCH body must be application/offset+octet-stream"),
        _c("tus_version_unsupported", 412, False, _R.NONE, "upload", "Only tus 1.0.0 is supported"),
        _c("upload_offset_mismatch", 409, True, _R.UPLOAD, "upload", "Upload-Offset is not the server's offset"),
        _c("upload_locked", 423, True, _R.UPLOAD, "upload", "Another request is writing to this upload"),
        _c("upload_chunk_checksum_mismatch", 460, True, _R.UPLOAD, "upload",
           "The request body does not match its Upload-Checksum"),
        # complete-upload
        _c("upload_missing", 409, False, _R.UPLOAD, "validation", "Nothing has been uploaded"),
        _c("source_unreadable", 422, False, _R.NEW_JOB, "validation", "The file is not a readable video"),
        _c("source_no_video_stream", 422, False, _R.NEW_JOB, "validation", "The file has no video stream"),
        _c("source_unsupported", 422, False, _R.NEW_JOB, "validation", "The video cannot be decoded"),
        _c("validation_busy", 503, True, _R.COMPLETE_UPLOAD, "validation", "Busy checking other uploads"),
        # worker
        _c("source_changed", 422, False, _R.NEW_JOB, "preflight", "The source changed after it was admitted"),
        _c("no_person_detected", 422, False, _R.NEW_JOB, "preflight", "No person was found in the video"),
        _c("processing_failed", 500, True, _R.NEW_JOB, "processing", "Processing failed"),
        _c("packaging_failed", 500, True, _R.NEW_JOB, "packaging", "Packaging failed"),
        _c("runner_lost", 500, True, _R.NEW_JOB, "processing", "The worker running the job was lost"),
        _c("runner_timeout", 500, True, _R.NEW_JOB, "processing", "The job took too long"),
        # custom avatars (SPEC section 12)
        _c("avatar_unreadable", 422, False, _R.NEW_JOB, "validation", "The file is not a readable character model"),
        _c("avatar_format_unsupported", 422, False, _R.NEW_JOB, "validation", "The model format is not supported"),
        _c("avatar_no_skeleton", 422, False, _R.NEW_JOB, "validation", "The model has no skeleton"),
        _c("avatar_not_humanoid", 422, False, _R.NEW_JOB, "validation", "The skeleton is not a humanoid"),
        _c("avatar_file_size_limit_exceeded", 413, False, _R.NEW_JOB, "upload", "The model file is too large"),
        _c("avatar_mapping_invalid", 422, False, _R.NONE, "request", "The bone mapping is not valid"),
        _c("avatar_not_found", 404, False, _R.NONE, "request", "No such avatar"),
        _c("avatar_not_awaiting_upload", 409, False, _R.NONE, "upload", "The avatar no longer accepts uploads"),
        _c("avatar_not_ready", 409, False, _R.NONE, "request", "The avatar is not ready"),
        # others
        _c("job_not_found", 404, False, _R.NONE, "request", "No such job"),
        _c("artifact_not_found", 404, False, _R.NONE, "request", "No such artifact"),
        _c("unauthorized", 401, False, _R.NONE, "request", "A valid API key is required"),
        _c("plan_option_unavailable", 403, False, _R.NEW_JOB, "create", "The plan does not include this option"),
        _c("model_unavailable", 503, True, _R.COMPLETE_UPLOAD, "validation", "The model this job needs is not installed"),
        _c("studio_csrf_rejected", 403, False, _R.NONE, "request", "The request did not come from a Studio page"),
        _c("rate_limited", 429, True, _R.NONE, "request", "Too many requests"),
        _c("webhook_not_found", 404, False, _R.NONE, "request", "No such webhook endpoint"),
        _c("webhook_delivery_not_found", 404, False, _R.NONE, "request", "No such webhook delivery"),
        _c("webhook_url_not_allowed", 422, False, _R.NONE, "request", "The webhook URL is not allowed"),
        _c("webhook_event_unknown", 422, False, _R.NONE, "request", "Unknown webhook event type"),
        _c("canceled", 409, False, _R.NEW_JOB, "canceled", "The job was canceled"),
        _c("job_not_cancelable", 409, False, _R.NONE, "request", "The job has already finished"),
        _c("job_not_completed", 409, False, _R.NONE, "request", "Only a completed job can be re-exported"),
        _c("parent_motion_unavailable", 409, False, _R.NEW_JOB, "request",
           "The job's stored motion is no longer available"),
        _c("range_not_satisfiable", 416, False, _R.NONE, "download", "The requested range is not satisfiable"),
        _c("payload_too_large", 413, False, _R.NONE, "request", "The request body is too large"),
        _c("not_ready", 503, True, _R.NONE, "request", "The service is not ready"),
        _c("internal_error", 500, True, _R.NONE, "request", "Internal error"),
    )
}


def is_error_code(code: str) -> TypeGuard[ErrorCode]:
    return code in CODES


def code_info(code: str) -> CodeInfo:
    """The table row for ``code``, for showing a stored code (a job's ``error_code``): an unknown one reads
    as ``internal_error``. Raising an unknown code is refused earlier, by `mocapd.errors.MocapdError`."""
    try:
        return CODES[code]
    except KeyError:
        return CODES["internal_error"]
