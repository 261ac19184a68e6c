"""The pure rules: state machine, code table, credits and admission, exhaustively."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mocapd.domain.admission import (
    AccountState,
    check_account_can_start,
    check_create,
    normalise_targets,
    resolve_trim,
)
from mocapd.domain.codes import CODES, RetryFrom, code_info
from mocapd.domain.credits import EntryType, balance_of, credits_for_window, entry_key
from mocapd.domain.jobs import TERMINAL_STATUSES, JobStage, JobStatus, can_transition, status_of_stage
from mocapd.domain.plans import DEFAULT_PLANS
from mocapd.errors import MocapdError

FREE, STARTER, PREMIUM = DEFAULT_PLANS["free"], DEFAULT_PLANS["starter"], DEFAULT_PLANS["premium"]

SPEC_CODES = """export_fps_invalid mocap_type_invalid api_target_ids_required api_target_unsupported
api_source_duration_invalid api_trim_range_invalid api_duration_limit_exceeded api_file_size_limit_exceeded
api_concurrency_limit_exceeded api_plan_inactive insufficient_api_v_credits idempotency_key_reused validation_error
upload_url_invalid upload_url_expired upload_size_mismatch upload_checksum_mismatch job_not_awaiting_upload
upload_missing source_unreadable source_no_video_stream source_unsupported no_person_detected processing_failed
packaging_failed runner_lost runner_timeout job_not_found unauthorized rate_limited canceled""".split()


def test_every_spec_code_is_in_the_one_table() -> None:
    for code in SPEC_CODES:
        info = code_info(code)
        assert info.code == code and 400 <= info.http_status < 600 and isinstance(info.retry_from, RetryFrom)
    assert code_info("no_such_code").code == "internal_error"
    assert code_info("unauthorized").http_status == 401 and code_info("job_not_found").http_status == 404
    assert {c.http_status for c in CODES.values()} <= {400, 401, 402, 403, 404, 409, 410, 412, 413, 415, 416, 422,
                                                     423, 429, 460, 500, 503}


def test_terminal_states_are_final_and_every_stage_has_a_status() -> None:
    for a, b in itertools.product(JobStatus, JobStatus):
        if a in TERMINAL_STATUSES:
            assert not can_transition(a, b)
    assert can_transition(JobStatus.PROCESSING, JobStatus.QUEUED)  # retry after a system fault
    assert not can_transition(JobStatus.QUEUED, JobStatus.DRAFT)
    assert not can_transition(JobStatus.DRAFT, JobStatus.COMPLETED)
    for stage in JobStage:
        assert status_of_stage(stage) in JobStatus


@pytest.mark.parametrize(("start", "end", "credits"), [(0, 0.2, 1), (0, 1.0, 1), (0, 1.0000001, 1), (0, 1.01, 2),
                                                       (1.2, 13.8, 13), (0, 30, 30), (5, 5, 1)])
def test_credits_for_window(start: float, end: float, credits: int) -> None:
    assert credits_for_window(start, end) == credits


@given(st.floats(0, 600), st.floats(0.001, 600))
def test_credits_cover_the_window(start: float, length: float) -> None:
    c = credits_for_window(start, start + length)
    assert c >= 1 and c >= math.floor(length) and c <= math.ceil(length) + 1


@given(st.lists(st.tuples(st.sampled_from(list(EntryType)), st.integers(0, 1000)), max_size=30))
def test_balance_folds_entries(entries: list[tuple[EntryType, int]]) -> None:
    totals: dict[str, int] = {}
    for t, a in entries:
        totals[t] = totals.get(t, 0) + a
    b = balance_of(totals)
    g = totals.get
    assert b.balance == g("grant", 0) + g("adjust", 0) - g("capture", 0) - g("expire", 0)
    assert b.available == b.balance - b.held


def test_capture_and_release_share_one_key() -> None:
    assert entry_key(EntryType.CAPTURE, "j") == entry_key(EntryType.RELEASE, "j") != entry_key(EntryType.HOLD, "j")
    with pytest.raises(ValueError):
        entry_key(EntryType.GRANT, "j")


def test_targets() -> None:
    assert normalise_targets(["default", "default"], "unitree_g1", FREE) == ["default", "unitree_g1"]
    with pytest.raises(MocapdError) as e:
        normalise_targets([], None, FREE)
    assert e.value.code == "api_target_ids_required"
    with pytest.raises(MocapdError) as e:
        normalise_targets(["smpl"], None, PREMIUM)
    assert e.value.code == "api_target_unsupported"


def _create(**kw: object) -> None:
    args = dict(plan=FREE, export_fps=30, mocap_type="full_body", trim_start_s=0.0, trim_end_s=None,
                claimed_duration_s=None, claimed_bytes=None)
    args.update(kw)
    check_create(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "code"),
    [({"export_fps": 25}, "export_fps_invalid"), ({"mocap_type": "x"}, "mocap_type_invalid"),
     ({"trim_start_s": -0.1}, "api_trim_range_invalid"), ({"trim_start_s": 3.0, "trim_end_s": 1.0}, "api_trim_range_invalid"),
     ({"claimed_duration_s": 0.0}, "api_source_duration_invalid"), ({"claimed_duration_s": 31.0}, "api_duration_limit_exceeded"),
     ({"claimed_duration_s": 60.0, "trim_start_s": 10.0, "trim_end_s": 41.0}, "api_duration_limit_exceeded"),
     ({"claimed_bytes": 50_000_001}, "api_file_size_limit_exceeded"), ({"trim_end_s": float("nan")}, "validation_error"),
     ({"claimed_duration_s": 5.0, "trim_start_s": 5.0}, "api_trim_range_invalid")],
)
def test_create_rejections(kw: dict, code: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(MocapdError) as e:
        _create(**kw)
    assert e.value.code == code


def test_create_accepts_a_long_video_trimmed_to_the_limit() -> None:
    _create(claimed_duration_s=300.0, trim_start_s=100.0, trim_end_s=130.0)
    for fps in (24, 30, 60, 120):
        _create(export_fps=fps)


def test_account_checks_in_order() -> None:
    from dataclasses import replace

    ok = AccountState(FREE, 0, 10)
    check_account_can_start(ok, 10, "validation")
    cases = [(AccountState(replace(FREE, active=False), 5, 0), "api_plan_inactive"),
             (AccountState(FREE, 2, 0), "api_concurrency_limit_exceeded"), (AccountState(FREE, 1, 9), "insufficient_api_v_credits")]
    for state, code in cases:
        with pytest.raises(MocapdError) as e:
            check_account_can_start(state, 10, "validation")
        assert e.value.code == code


def test_resolve_trim_against_the_real_file() -> None:
    w = resolve_trim(0.0, None, 7.67, STARTER)
    assert (w.start_s, w.end_s, w.credits) == (0.0, 7.67, 8)
    assert resolve_trim(1.0, 7.7, 7.67, STARTER).end_s == 7.67  # within a frame of the end: rounding
    for start, end, code in [(8.0, None, "api_trim_range_invalid"), (0.0, 9.0, "api_trim_range_invalid")]:
        with pytest.raises(MocapdError) as e:
            resolve_trim(start, end, 7.67, STARTER)
        assert e.value.code == code
    with pytest.raises(MocapdError) as e:
        resolve_trim(0.0, None, 35.0, FREE)
    assert e.value.code == "api_duration_limit_exceeded"
