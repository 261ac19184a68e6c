"""The error every avatar reader and check raises: a code of SPEC section 12 and a message."""

from __future__ import annotations

from mocapd.domain.codes import ErrorCode
from mocapd.errors import InputFault

__all__ = ["AvatarError"]


class AvatarError(InputFault):
    """The uploaded character cannot become an avatar (the code says why)."""

    def __init__(self, code: ErrorCode, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(code, message, stage="validation", details=details)
