"""The upload checks, written once for every way a source arrives: the plan's size limit, the size the
client claimed (``sourceBytes``) and the digest it claimed (``sourceSha256``).

The API's signed PUT applies them while it streams the body in (limit) and before the object is
replaced (claims); complete-upload applies them again to the object as stored, whichever store took
it, since a presigned PUT to a bucket never passes through the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from mocapd.domain.codes import ErrorCode
from mocapd.errors import MocapdError

__all__ = ["UploadRules"]


@dataclass(frozen=True)
class UploadRules:
    limit_bytes: int  # the plan's limit, fixed on the job at create
    claimed_bytes: int | None = None
    claimed_sha256: str | None = None  # lower-case hex
    job_id: str | None = None
    stage: str | None = None  # None: each code's own stage (upload); complete-upload says validation
    limit_code: ErrorCode = "api_file_size_limit_exceeded"  # an avatar's upload has its own

    def too_large(self, nbytes: int | None = None) -> MocapdError:
        """The error for a body or object past the plan's limit (``nbytes``: its size when known)."""
        detail = (
            f"The file is {nbytes} bytes; the plan allows {self.limit_bytes}."
            if nbytes is not None
            else f"The upload passed the plan's limit of {self.limit_bytes} bytes."
        )
        details: dict[str, object] = {"limitBytes": self.limit_bytes}
        if nbytes is not None:
            details["bytes"] = nbytes
        return MocapdError(self.limit_code, detail, stage=self.stage, job_id=self.job_id,
                           details=details)

    def check_limit(self, nbytes: int) -> None:
        """The plan's limit on a size known before the body is read (a declared Content-Length)."""
        if nbytes > self.limit_bytes:
            raise self.too_large(nbytes)

    def check_size(self, nbytes: int) -> None:
        """An object's size (stored, or completely received): the plan's limit, then the claimed size."""
        self.check_limit(nbytes)
        if self.claimed_bytes is not None and nbytes != self.claimed_bytes:
            raise MocapdError("upload_size_mismatch", f"Received {nbytes} bytes; sourceBytes said {self.claimed_bytes}.",
                              stage=self.stage, job_id=self.job_id)

    def check_digest(self, sha256: str, *, then: str = "") -> None:
        """The claimed digest (``then``: what happens next, added to the message)."""
        if self.claimed_sha256 is not None and sha256 != self.claimed_sha256:
            raise MocapdError("upload_checksum_mismatch", f"The upload's SHA-256 differs from sourceSha256.{then}",
                              stage=self.stage, job_id=self.job_id)

    def check_received(self, nbytes: int, sha256: str) -> None:
        """A completely read body: its size as `check_size`, then the claimed digest."""
        self.check_size(nbytes)
        self.check_digest(sha256)
