"""Signed, expiring URLs for uploads and artifact downloads (like S3 presigned URLs).

signature = HMAC-SHA256(secret, "<purpose>\\n<job id>\\n<name>\\n<expires>"), hex. The purpose keeps an
upload signature from being replayed as a download signature and vice versa.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from mocapd.domain.codes import ErrorCode
from mocapd.errors import MocapdError

__all__ = ["Signer"]

# purpose -> (code for a missing or wrong signature, code for an expired link)
_CODES: dict[str, tuple[ErrorCode, ErrorCode]] = {
    "upload": ("upload_url_invalid", "upload_url_expired"),
    "download": ("download_url_invalid", "download_url_expired"),
}


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, job_id: str, name: str, expires: int) -> str:
        msg = f"{purpose}\n{job_id}\n{name}\n{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def sign(self, purpose: str, job_id: str, name: str, ttl_s: int, now: float | None = None) -> tuple[int, str]:
        expires = int((now if now is not None else time.time()) + ttl_s)
        return expires, self._mac(purpose, job_id, name, expires)

    def verify(self, purpose: str, job_id: str, name: str, expires: str | None, signature: str | None) -> None:
        """Raise ``<purpose>_url_invalid`` for a missing or wrong signature, ``<purpose>_url_expired`` after expiry."""
        invalid, expired = _CODES[purpose]
        try:
            exp = int(expires or "")
        except ValueError:
            raise MocapdError(invalid, "The link is not valid (no expiry).") from None
        good = self._mac(purpose, job_id, name, exp)
        if not signature or not hmac.compare_digest(good, signature):
            raise MocapdError(invalid, "The link's signature is not valid.")
        if exp < time.time():
            hint = "POST .../upload-url issues a new one" if purpose == "upload" else "read the result again for fresh links"
            raise MocapdError(expired, f"The link has expired; {hint}.")
