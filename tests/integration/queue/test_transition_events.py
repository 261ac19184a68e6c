"""Every way a job's status changes writes exactly one transition event, in the same transaction, on
SQLite and PostgreSQL; a move the state machine forbids writes nothing and settles nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.events import record_note
from mocapd.db.models import Job, JobEvent, LedgerEntry
from mocapd.db.transitions import mark_canceled, mark_completed, mark_failed
from mocapd.domain.jobs import TRANSITION_EVENTS, EventType, InvalidTransition, JobStage, JobStatus
from mocapd.storage import LocalStore
from mocapd.worker.housekeeping import expire_drafts
from tests.integration.queue.support import admit, admit_job, create_draft, seed_account

LEASE_S = 30.0


def _log(db: Database, job_id: str) -> list[tuple[int, str, str]]:
    with db.read() as s:
        rows = s.execute(
            select(JobEvent.seq, JobEvent.type, JobEvent.status).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)
        )
        return [(int(seq), t, st) for seq, t, st in rows]


def _status(db: Database, job_id: str) -> str:
    with db.read() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job.status


def _step(db: Database, job_id: str, op: Callable[[], object], expect: EventType, status: JobStatus) -> None:
    """Run ``op``; the job must now be ``status`` with exactly one new transition event, ``expect``."""
    before = _log(db, job_id)
    op()
    after = _log(db, job_id)
    assert after[: len(before)] == before  # nothing rewritten
    new = after[len(before) :]
    transitions = [(t, st) for _, t, st in new if t in TRANSITION_EVENTS]
    assert transitions == [(expect.value, status.value)], new
    assert _status(db, job_id) == status
    assert [seq for seq, _, _ in after] == list(range(1, len(after) + 1))  # numbered without gaps


def _check_log(db: Database, job_id: str) -> None:
    """Over the whole log: every transition event changes the status the previous one recorded."""
    last: str | None = None
    for _, t, st in _log(db, job_id):
        if t in TRANSITION_EVENTS:
            assert st != last, (t, st)
            last = st
    assert last == _status(db, job_id)


def test_create_admit_claim_finish(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = create_draft(db, acct)
    assert [t for _, t, _ in _log(db, jid)] == ["job.created"]
    _step(db, jid, lambda: admit(db, jid, seconds=3), EventType.JOB_QUEUED, JobStatus.QUEUED)
    assert [t for _, t, _ in _log(db, jid)] == ["job.created", "job.admitted", "job.queued"]
    claimed = queue.claim(db, "w1", LEASE_S)
    assert claimed is not None and claimed.id == jid
    assert _log(db, jid)[-1][1:] == ("job.started", "processing")
    assert queue.report_progress(db, jid, claimed.lease_token, JobStage.PROCESSING, 0.5)  # a note: the status stays
    assert _log(db, jid)[-1][1:] == ("job.stage", "processing")
    _step(db, jid, lambda: queue.finish(db, jid, claimed.lease_token, []), EventType.JOB_COMPLETED, JobStatus.COMPLETED)
    _check_log(db, jid)


def test_requeue_paths_retry_hand_back_and_reap(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, max_attempts=3)
    c = queue.claim(db, "w1", LEASE_S)
    assert c is not None
    token = c.lease_token
    _step(
        db, jid,
        lambda: queue.retry(db, jid, token, code="processing_failed", message="boom", stage="processing",
                            base_backoff_s=0.0),
        EventType.JOB_RETRY_SCHEDULED, JobStatus.QUEUED,
    )
    c = queue.claim(db, "w1", LEASE_S)
    assert c is not None
    token = c.lease_token
    _step(db, jid, lambda: queue.hand_back(db, jid, token), EventType.JOB_REQUEUED, JobStatus.QUEUED)
    assert queue.claim(db, "w1", LEASE_S) is not None
    later = datetime.now(UTC) + timedelta(seconds=LEASE_S + 1)
    _step(db, jid, lambda: queue.reap(db, base_backoff_s=0.0, now=later), EventType.JOB_RETRY_SCHEDULED, JobStatus.QUEUED)
    c = queue.claim(db, "w1", LEASE_S, now=later)
    assert c is not None and c.attempt == 3  # hand_back spent no attempt: retry 1, reap 2, this one 3
    _step(
        db, jid, lambda: queue.reap(db, base_backoff_s=0.0, now=later + timedelta(seconds=LEASE_S + 1)),
        EventType.JOB_FAILED, JobStatus.FAILED,
    )
    _check_log(db, jid)


def test_fail_and_retry_on_the_last_attempt(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    a = admit_job(db, store, acct)
    b = admit_job(db, store, acct, max_attempts=1)
    for jid in (a, b):
        c = queue.claim(db, "w1", LEASE_S)
        assert c is not None and c.id == jid

        def end(jid: str = jid, token: int = c.lease_token) -> object:
            if jid == a:
                return queue.fail(db, jid, token, code="no_person_detected", message="nobody", stage="preflight")
            return queue.retry(db, jid, token, code="processing_failed", message="boom", stage="processing",
                               base_backoff_s=0.0)

        _step(db, jid, end, EventType.JOB_FAILED, JobStatus.FAILED)
        _check_log(db, jid)


@pytest.mark.parametrize("where", ["draft", "queued", "processing", "queued_cancel_requested"])
def test_cancel_from_every_live_status(db: Database, store: LocalStore, where: str) -> None:
    acct = seed_account(db, "a")
    jid = create_draft(db, acct) if where == "draft" else admit_job(db, store, acct)
    if where == "processing":
        assert queue.claim(db, "w1", LEASE_S) is not None
    if where == "queued_cancel_requested":  # nobody holds it: the reaper finishes the cancel
        with db.write() as s:
            job = s.get(Job, jid)
            assert job is not None
            job.cancel_requested = True
        op: Callable[[], object] = lambda: queue.reap(db, base_backoff_s=0.0)  # noqa: E731
    else:
        op = lambda: queue.cancel(db, jid)  # noqa: E731
    _step(db, jid, op, EventType.JOB_CANCELED, JobStatus.CANCELED)
    events = len(_log(db, jid))
    assert queue.cancel(db, jid) is False  # terminal: no second event
    assert len(_log(db, jid)) == events
    _check_log(db, jid)


def test_draft_expiry_and_rejection_at_validation(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    now = datetime.now(UTC)
    old = create_draft(db, acct, now=now - timedelta(hours=25))
    _step(db, old, lambda: expire_drafts(db, store, draft_ttl_s=24 * 3600, now=now), EventType.JOB_EXPIRED,
          JobStatus.FAILED)
    rejected = create_draft(db, acct)

    def reject() -> None:
        with db.write() as s:
            job = s.get(Job, rejected)
            assert job is not None
            mark_failed(s, job, code="source_unreadable", message="not a video", stage="validation")

    _step(db, rejected, reject, EventType.JOB_FAILED, JobStatus.FAILED)
    for jid in (old, rejected):
        _check_log(db, jid)


def test_a_forbidden_move_writes_nothing_and_settles_nothing(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    draft = create_draft(db, acct)
    done = admit_job(db, store, acct)
    c = queue.claim(db, "w1", LEASE_S)
    assert c is not None and queue.finish(db, done, c.lease_token, [])
    for jid, move in ((draft, "complete"), (done, "cancel"), (done, "fail")):
        log_before = _log(db, jid)
        with db.read() as s:
            entries_before = s.scalar(select(func.count()).select_from(LedgerEntry))
        with pytest.raises(InvalidTransition), db.write() as s:
            job = s.get(Job, jid)
            assert job is not None
            if move == "complete":
                mark_completed(s, job, retention_days=7)
            elif move == "cancel":
                mark_canceled(s, job)
            else:
                mark_failed(s, job, code="processing_failed", message="late", stage="processing")
        assert _log(db, jid) == log_before
        with db.read() as s:
            assert s.scalar(select(func.count()).select_from(LedgerEntry)) == entries_before
    assert _status(db, draft) == "draft" and _status(db, done) == "completed"


def test_a_status_change_cannot_be_written_as_a_note(db: Database) -> None:
    acct = seed_account(db, "a")
    jid = create_draft(db, acct)
    with pytest.raises(ValueError, match="record_transition"), db.write() as s:
        job = s.get(Job, jid)
        assert job is not None
        record_note(s, job, EventType.JOB_CANCELED, "not like this")
    assert [t for _, t, _ in _log(db, jid)] == ["job.created"]
