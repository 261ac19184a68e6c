"""Backoff with jitter, and ``Retry-After`` parsing (RFC 9110 section 10.2.3).

Delay before attempt ``n`` (0-based) after a failure: "full jitter",
``d = U(0, min(cap_s, base_s * 2**n))``; a server's ``Retry-After`` is a floor: ``max(retry_after_s, d)``,
plus up to ``jitter_frac`` of it so many clients told the same value do not return in lock-step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date; None if absent/invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = datetime.fromtimestamp(now_s, UTC) if now_s is not None else datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """How each stage retries. ``give_up_after_s``: continuous failure time after which a stage raises
    `ServerUnreachable` (the record is kept for ``mocapd resume``)."""

    base_s: float = 0.5
    cap_s: float = 30.0
    jitter_frac: float = 0.2
    give_up_after_s: float = 600.0
    poll_min_s: float = 0.2  # never poll faster than this
    poll_max_s: float = 30.0  # nor wait longer than this between polls
    max_download_attempts: int = 5  # full re-downloads after a verification failure
    max_upload_url_reissues: int = 3

    def backoff_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Delay before retry number ``attempt`` (0-based)."""
        ceiling = min(self.cap_s, self.base_s * (2.0 ** min(attempt, 30)))
        d = rng.uniform(0.0, ceiling)
        if retry_after_s is not None:
            floor = min(retry_after_s, self.cap_s * 4)
            d = max(d, floor * (1.0 + rng.uniform(0.0, self.jitter_frac)))
        return d

    def poll_interval_s(self, retry_after_s: float | None, rng: random.Random) -> float:
        """Wait between successful polls: the server's suggestion (default 2 s), jittered, clamped."""
        base = 2.0 if retry_after_s is None else retry_after_s
        d = base * (1.0 + rng.uniform(0.0, self.jitter_frac))
        return min(self.poll_max_s, max(self.poll_min_s, d))
