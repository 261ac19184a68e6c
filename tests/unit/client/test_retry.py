from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from mocapd.client.retry import RetryPolicy, parse_retry_after


def test_retry_after_delta_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    now_s = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    date = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(date, now_s=now_s) == 30.0
    past = format_datetime(datetime(2025, 1, 1, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(past, now_s=now_s) == 0.0


def test_retry_after_absent_or_garbage_is_none() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None


@given(attempt=st.integers(0, 60), hint=st.one_of(st.none(), st.floats(0, 50)), seed=st.integers(0, 2**32))
def test_backoff_is_jittered_below_the_cap_and_never_before_retry_after(attempt: int, hint: float | None,
                                                                        seed: int) -> None:
    p = RetryPolicy(base_s=0.5, cap_s=30.0, jitter_frac=0.2)
    d = p.backoff_s(attempt, hint, random.Random(seed))
    assert d >= 0.0
    if hint is None:
        assert d <= min(30.0, 0.5 * 2**attempt)
    else:
        assert d >= min(hint, 120.0)
        assert d <= max(30.0, min(hint, 120.0) * 1.2) + 1e-9


def test_backoff_grows_on_average() -> None:
    p = RetryPolicy(base_s=0.5, cap_s=30.0)
    rng = random.Random(1)
    means = [sum(p.backoff_s(a, None, rng) for _ in range(400)) / 400 for a in range(5)]
    assert all(b > a for a, b in zip(means, means[1:], strict=False))
    assert abs(means[0] - 0.25) < 0.05  # U(0, 0.5)


def test_poll_interval_follows_the_server_and_stays_in_bounds() -> None:
    p = RetryPolicy(poll_min_s=0.2, poll_max_s=30.0, jitter_frac=0.2)
    rng = random.Random(3)
    assert 5.0 <= p.poll_interval_s(5.0, rng) <= 6.0
    assert p.poll_interval_s(0.0, rng) == 0.2
    assert p.poll_interval_s(3600.0, rng) == 30.0
    assert 2.0 <= p.poll_interval_s(None, rng) <= 2.4
