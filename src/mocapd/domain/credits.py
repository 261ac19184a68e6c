"""Credit arithmetic (SPEC section 5): 1 v-credit = 1 second of admitted video."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Balance",
    "Channel",
    "EntryType",
    "balance_of",
    "capture_for",
    "credits_for_window",
    "entry_key",
    "reexport_credits",
    "unused_hold_key",
]


class Channel(StrEnum):
    API = "api"
    STUDIO = "studio"


class EntryType(StrEnum):
    GRANT = "grant"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    EXPIRE = "expire"
    ADJUST = "adjust"


def reexport_credits(duration_s: float) -> int:
    """A re-export of a clip of ``duration_s`` seconds: ceil(duration / 10), at least 1 (SPEC section 14)."""
    return max(1, math.ceil(max(0.0, duration_s) / 10.0 - 1e-6))


def credits_for_window(trim_start_s: float, trim_end_s: float) -> int:
    """ceil(end - start), at least 1, whatever the number of targets.

    A tiny tolerance keeps 10.0000001 s (a float artefact of a 10 s clip) from costing 11.
    """
    seconds = max(0.0, trim_end_s - trim_start_s)
    return max(1, math.ceil(seconds - 1e-6))


def capture_for(held: int, processed_s: float | None) -> int:
    """What a completed job is charged: the seconds of video it processed (decoded timestamps of the
    admitted window, ``ceil``, at least 1), never more than ``held``. The hold may rest on a duration
    header that overstates the video (an MKV whose header says 600 s holding 1.67 s is charged 2).
    ``processed_s`` None (a processor that does not report it): the hold."""
    if processed_s is None or not math.isfinite(processed_s):
        return held
    return min(held, credits_for_window(0.0, processed_s))


@dataclass(frozen=True)
class Balance:
    balance: int  # grants + adjusts - captures - expires
    held: int  # open holds: holds - captures - releases
    @property
    def available(self) -> int:
        return self.balance - self.held


def balance_of(totals: dict[str, int]) -> Balance:
    """Fold per-type sums of ledger amounts (all positive except ``adjust``) into a balance."""
    g = totals.get
    balance = g(EntryType.GRANT, 0) + g(EntryType.ADJUST, 0) - g(EntryType.CAPTURE, 0) - g(EntryType.EXPIRE, 0)
    held = g(EntryType.HOLD, 0) - g(EntryType.CAPTURE, 0) - g(EntryType.RELEASE, 0)
    return Balance(balance=balance, held=held)


def entry_key(kind: str, job_id: str) -> str:
    """Unique ledger keys: a job has one ``hold`` and one ``settle`` (capture or release, never both)."""
    if kind == EntryType.HOLD:
        return f"hold:{job_id}"
    if kind in (EntryType.CAPTURE, EntryType.RELEASE):
        return f"settle:{job_id}"
    raise ValueError(f"no unique key for {kind}")


def unused_hold_key(job_id: str) -> str:
    """The release of the part of a hold a completed job did not use (written with its capture, once)."""
    return f"settle-rest:{job_id}"
