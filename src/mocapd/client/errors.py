"""The client's error tree. Every error says whether repeating the same step is safe.

`ClientError` is the root (a `mocapd.errors.MocapdError` is a server-side error; the client never
raises one). Foreign errors (httpx, OSError, JSON) are converted where they enter, with ``from exc``.

Exit codes of the CLI come from here, so scripts can tell the cases apart:

| class | meaning | exit |
|---|---|---|
| `InputRejected` | the server refused the input (create, upload or complete-upload) | 3 |
| `JobFailed` | the job reached `failed` or `canceled` | 4 |
| `ServerUnreachable` | the server could not be reached (or kept failing) long enough to give up | 5 |
| `IntegrityError` | a download kept failing its size / SHA-256 check | 6 |
| anything else | usage, local files, records, unexpected answers | 1 |
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTEGRITY",
    "EXIT_JOB_FAILED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_UNREACHABLE",
    "ApiError",
    "ClientError",
    "InputRejected",
    "IntegrityError",
    "JobFailed",
    "RecordError",
    "ServerUnreachable",
    "SourceChanged",
    "TransportError",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_REJECTED = 3
EXIT_JOB_FAILED = 4
EXIT_UNREACHABLE = 5
EXIT_INTEGRITY = 6


class ClientError(Exception):
    """Root of the client's errors. ``retry_safe``: repeating the same request cannot do harm."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, retry_safe: bool = False, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_safe = retry_safe
        self.job_id = job_id

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "message": self.message, "retrySafe": self.retry_safe, "jobId": self.job_id}


class TransportError(ClientError):
    """No usable HTTP answer: connect failure, dropped connection, timeout, or a gateway error (502/503/504
    without a problem body). ``maybe_applied``: the server may have acted on the request."""

    exit_code = EXIT_UNREACHABLE

    def __init__(
        self,
        message: str,
        *,
        retry_safe: bool,
        maybe_applied: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message, retry_safe=retry_safe, job_id=job_id)
        self.maybe_applied = maybe_applied
        self.status = status
        self.retry_after_s = retry_after_s


class ApiError(ClientError):
    """The server answered with an application/problem+json error (SPEC section 2)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        stage: str | None = None,
        retryable: bool = False,
        retry_from: str | None = None,
        job_id: str | None = None,
        retry_after_s: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}", retry_safe=retryable, job_id=job_id)
        self.status = status
        self.code = code
        self.detail = message
        self.stage = stage
        self.retryable = retryable
        self.retry_from = retry_from
        self.retry_after_s = retry_after_s
        self.body = body or {}

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(status=self.status, code=self.code, stage=self.stage, retryFrom=self.retry_from)
        return d


class InputRejected(ApiError):
    """The server refused the input; sending the same thing again will not help."""

    exit_code = EXIT_REJECTED

    @classmethod
    def from_api(cls, err: ApiError) -> InputRejected:
        return cls(err.status, err.code, err.detail, stage=err.stage, retryable=err.retryable,
                   retry_from=err.retry_from, job_id=err.job_id, retry_after_s=err.retry_after_s, body=err.body)


class JobFailed(ClientError):
    """The job ended ``failed`` (or ``canceled``): reported with its stage, code and ``retryFrom``."""

    exit_code = EXIT_JOB_FAILED

    def __init__(self, job_id: str, status: str, code: str | None, stage: str | None, retry_from: str | None,
                 message: str | None) -> None:
        text = f"job {job_id} {status}"
        if stage:
            text += f" at stage {stage}"
        if code:
            text += f" ({code})"
        if message:
            text += f": {message}"
        if retry_from:
            text += f" [retryFrom: {retry_from}]"
        super().__init__(text, retry_safe=False, job_id=job_id)
        self.status = status
        self.code = code
        self.stage = stage
        self.retry_from = retry_from
        self.detail = message

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(status=self.status, code=self.code, stage=self.stage, retryFrom=self.retry_from, detail=self.detail)
        return d


class ServerUnreachable(ClientError):
    """Retries ran out; the resume record is kept, so `mocapd resume` continues later."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message, retry_safe=True, job_id=job_id)


class IntegrityError(ClientError):
    """A download did not match its announced size or SHA-256, again and again."""

    exit_code = EXIT_INTEGRITY

    def __init__(self, message: str, *, job_id: str | None = None, name: str | None = None) -> None:
        super().__init__(message, retry_safe=True, job_id=job_id)
        self.name = name


class SourceChanged(ClientError):
    """The local video differs from the one the record was made for (size or SHA-256)."""


class RecordError(ClientError):
    """A resume record is missing, unreadable or from a newer client."""
