"""One error tree for the whole product.

`MocapdError` carries a code from `mocapd.domain.codes.CODES` (any other code raises
`mocapd.domain.codes.UnknownErrorCode`) plus context (stage, job id,
details). Only the API turns it into HTTP; the worker decides retry versus fail from the
subclass: `InputFault` fails a job at once, `SystemFault` is retried with backoff.
"""

from __future__ import annotations

from typing import Any

from mocapd.domain.codes import ErrorCode, UnknownErrorCode, code_info, is_error_code

__all__ = ["InputFault", "MocapdError", "SystemFault"]


class MocapdError(Exception):
    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        stage: str | None = None,
        job_id: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not is_error_code(code):  # a bug: fail loudly here, not as an internal_error problem later
            raise UnknownErrorCode(code)
        info = code_info(code)
        self.code: ErrorCode = code
        self.message = message or info.title
        self.stage = stage or info.stage
        self.job_id = job_id
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}")

    @property
    def http_status(self) -> int:
        return code_info(self.code).http_status

    @property
    def retryable(self) -> bool:
        return code_info(self.code).retryable

    @property
    def retry_from(self) -> str:
        return code_info(self.code).retry_from.value


class InputFault(MocapdError):
    """The input itself is bad (unreadable video, no person): fail the job without retry."""


class SystemFault(MocapdError):
    """Something on our side went wrong (storage, crash): retry with backoff."""
