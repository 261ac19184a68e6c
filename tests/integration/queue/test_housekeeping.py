"""Draft expiry and the retention purge, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from mocapd.config import Settings
from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.models import Artifact, Job, JobEvent, LedgerEntry
from mocapd.storage import LocalStore, source_key
from mocapd.worker.housekeeping import expire_drafts, purge_finished, run_housekeeping
from mocapd.worker.loop import Worker
from mocapd.worker.runner import Outcome, StageRunner
from tests.integration.queue.probe_processor import ProbeProcessor
from tests.integration.queue.support import admit_job, create_draft, seed_account

DAY = timedelta(days=1)


def _job(db: Database, job_id: str) -> Job | None:
    with db.read() as s:
        return s.get(Job, job_id)


def test_drafts_expire_after_the_ttl_and_lose_their_upload(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    now = datetime.now(UTC)
    old = create_draft(db, acct, now=now - timedelta(hours=25))
    fresh = create_draft(db, acct, now=now - timedelta(hours=23))
    for jid in (old, fresh):
        p = store.path(source_key(jid))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"video")
    assert expire_drafts(db, store, draft_ttl_s=24 * 3600, now=now) == [old]
    job = _job(db, old)
    assert job is not None
    assert (job.status, job.stage) == ("failed", "expired") and job.purge_after is not None
    assert not store.exists(source_key(old)) and store.exists(source_key(fresh))
    fresh_job = _job(db, fresh)
    assert fresh_job is not None and fresh_job.status == "draft"
    assert expire_drafts(db, store, draft_ttl_s=24 * 3600, now=now) == []  # idempotent
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.job_id == old)) == 0


def test_finished_jobs_are_purged_after_the_plan_retention(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a", plan="free")  # 7 days
    done = admit_job(db, store, acct)
    running = admit_job(db, store, acct)
    runner = StageRunner(db, store, ProbeProcessor(), lease_s=5.0, retry_backoff_s=0.0, job_timeout_s=60.0)
    w = Worker(db, runner, lease_s=5.0, heartbeat_s=0.5, retry_backoff_s=0.0)
    assert w.run_once() is Outcome.COMPLETED
    assert queue.claim(db, "other", 3600.0) is not None  # the second job is still being worked on
    job = _job(db, done)
    assert job is not None and job.purge_after is not None and job.completed_at is not None
    assert timedelta(days=7) - timedelta(seconds=5) < job.purge_after - job.completed_at <= timedelta(days=7)
    now = datetime.now(UTC)
    assert purge_finished(db, store, now=now + 6 * DAY) == []
    assert purge_finished(db, store, now=now + 8 * DAY) == [done]
    assert _job(db, done) is None
    assert not list(store.root.glob(f"jobs/{done}/**/*.*")) and not store.exists(source_key(done))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(JobEvent).where(JobEvent.job_id == done)) == 0
        assert s.scalar(select(func.count()).select_from(Artifact).where(Artifact.job_id == done)) == 0
        # the ledger is append-only: the job's hold and capture stay
        assert s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.job_id == done)) == 2
    assert _job(db, running) is not None and store.exists(source_key(running))


def test_run_housekeeping_reaps_expires_and_purges(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    now = datetime.now(UTC)
    jid = admit_job(db, store, acct)
    assert queue.claim(db, "lost-worker", 1.0, now=now) is not None
    draft = create_draft(db, acct, now=now - 2 * DAY)
    settings = Settings(retry_backoff_s=0.0, draft_ttl_s=24 * 3600)
    report = run_housekeeping(db, store, settings, now=now + timedelta(seconds=5))
    assert (report.reaped, report.drafts_expired, report.purged) == (1, [draft], [])
    job = _job(db, jid)
    assert job is not None and job.status == "queued"
