"""The named queue operations on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.ledger import balance
from mocapd.db.models import Artifact, Job, JobEvent, LedgerEntry
from mocapd.db.queue import ArtifactRecord
from mocapd.storage import LocalStore
from tests.integration.queue.support import admit_job, ledger_report, seed_account

LEASE_S = 30.0


def _job(db: Database, job_id: str) -> Job:
    with db.read() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _events(db: Database, job_id: str) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)))


def _ledger(db: Database, job_id: str) -> list[tuple[str, int]]:
    with db.read() as s:
        rows = s.execute(
            select(LedgerEntry.type, LedgerEntry.amount).where(LedgerEntry.job_id == job_id).order_by(LedgerEntry.id)
        )
        return [(t, int(a)) for t, a in rows]


def test_claim_order_is_weight_then_age_and_respects_run_after(db: Database, store: LocalStore) -> None:
    free = seed_account(db, "free-co", plan="free")
    premium = seed_account(db, "premium-co", plan="premium")
    f1 = admit_job(db, store, free)
    f2 = admit_job(db, store, free)
    p1 = admit_job(db, store, premium)
    later = admit_job(db, store, premium)
    with db.write() as s:
        job = s.get(Job, later)
        assert job is not None
        job.run_after = datetime.now(UTC) + timedelta(hours=1)
    order = []
    while (c := queue.claim(db, "w1", LEASE_S)) is not None:
        order.append(c.id)
    assert order == [p1, f1, f2]  # premium (weight 4) first, then the free jobs oldest first
    assert _job(db, later).status == "queued"


def test_claim_sets_a_lease_with_a_fresh_increasing_token(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct)
    t0 = datetime.now(UTC)
    c1 = queue.claim(db, "w1", LEASE_S, now=t0)
    assert c1 is not None and c1.attempt == 1 and c1.lease_owner == "w1"
    job = _job(db, jid)
    assert (job.status, job.stage, job.lease_owner) == ("processing", "preflight", "w1")
    assert job.lease_expires_at == t0 + timedelta(seconds=LEASE_S)
    # the lease expires, the reaper returns it, the next claim carries a new token
    queue.reap(db, base_backoff_s=0.0, now=t0 + timedelta(seconds=LEASE_S + 1))
    c2 = queue.claim(db, "w2", LEASE_S, now=t0 + timedelta(seconds=LEASE_S + 2))
    assert c2 is not None and c2.id == jid and c2.attempt == 2
    assert c2.lease_token > c1.lease_token
    assert "job.started" in _events(db, jid) and "job.retry_scheduled" in _events(db, jid)


def test_concurrent_claimers_never_share_a_job(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a", credits=100_000)
    ids = {admit_job(db, store, acct) for _ in range(24)}
    got: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (c := queue.claim(db, name, LEASE_S)) is not None:
            with lock:
                got.append(c.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(ids)  # each job exactly once, none left


def test_heartbeat_extends_only_the_current_lease(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct)
    t0 = datetime.now(UTC)
    c = queue.claim(db, "w1", 10.0, now=t0)
    assert c is not None
    beat = queue.heartbeat(db, jid, c.lease_token, 10.0, now=t0 + timedelta(seconds=8))
    assert beat.alive and not beat.cancel_requested
    assert _job(db, jid).lease_expires_at == t0 + timedelta(seconds=18)
    # not expired at t0 + 12 s thanks to the heartbeat
    assert queue.reap(db, base_backoff_s=0.0, now=t0 + timedelta(seconds=12)).total == 0
    assert not queue.heartbeat(db, jid, c.lease_token + 1, 10.0).alive  # a wrong token extends nothing


def test_a_worker_that_lost_its_lease_can_change_nothing(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, seconds=5)
    t0 = datetime.now(UTC)
    zombie = queue.claim(db, "zombie", 5.0, now=t0)
    assert zombie is not None
    queue.reap(db, base_backoff_s=0.0, now=t0 + timedelta(seconds=6))
    live = queue.claim(db, "live", LEASE_S, now=t0 + timedelta(seconds=7))
    assert live is not None and live.id == jid
    before = _job(db, jid)
    art = [ArtifactRecord("motion.bvh", f"jobs/{jid}/artifacts/motion.bvh", 3, "0" * 64, "text/plain", "default")]
    from mocapd.domain.jobs import JobStage

    assert not queue.heartbeat(db, jid, zombie.lease_token, LEASE_S).alive
    assert not queue.report_progress(db, jid, zombie.lease_token, JobStage.PACKAGING, 0.9)
    assert not queue.finish(db, jid, zombie.lease_token, art)
    assert not queue.fail(db, jid, zombie.lease_token, code="processing_failed", message="x", stage="processing")
    assert queue.retry(db, jid, zombie.lease_token, code="processing_failed", message="x", stage="processing",
                       base_backoff_s=0.0) == "lost"
    assert not queue.hand_back(db, jid, zombie.lease_token)
    after = _job(db, jid)
    assert (after.status, after.stage, after.lease_owner, after.attempts) == (
        before.status, before.stage, "live", before.attempts
    )
    assert _ledger(db, jid) == [("hold", 5)]
    assert queue.finish(db, jid, live.lease_token, art)
    assert not queue.finish(db, jid, live.lease_token, art)  # a duplicate delivery of the same finish
    assert _ledger(db, jid) == [("hold", 5), ("capture", 5)]
    done = _job(db, jid)
    assert (done.status, done.charged_credits, done.progress) == ("completed", 5, 1.0)
    with db.read() as s:
        assert [a.name for a in s.scalars(select(Artifact).where(Artifact.job_id == jid))] == ["motion.bvh"]
    assert _events(db, jid).count("job.completed") == 1


def test_retry_backs_off_then_fails_after_the_last_attempt(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a", credits=100)
    jid = admit_job(db, store, acct, seconds=4, max_attempts=2)
    t0 = datetime.now(UTC)
    c1 = queue.claim(db, "w", LEASE_S, now=t0)
    assert c1 is not None
    res = queue.retry(db, jid, c1.lease_token, code="processing_failed", message="boom", stage="processing",
                      base_backoff_s=10.0, now=t0, rng=random.Random(1))
    assert res == "requeued"
    job = _job(db, jid)
    assert job.status == "queued" and job.run_after is not None
    assert t0 + timedelta(seconds=5) <= job.run_after <= t0 + timedelta(seconds=10)
    assert queue.claim(db, "w", LEASE_S, now=t0 + timedelta(seconds=1)) is None  # still backing off
    c2 = queue.claim(db, "w", LEASE_S, now=t0 + timedelta(seconds=11))
    assert c2 is not None and c2.attempt == 2
    res = queue.retry(db, jid, c2.lease_token, code="processing_failed", message="boom", stage="processing",
                      base_backoff_s=10.0)
    assert res == "failed"
    job = _job(db, jid)
    assert (job.status, job.error_code, job.error_stage, job.refunded_credits) == (
        "failed", "processing_failed", "processing", 4
    )
    assert _ledger(db, jid) == [("hold", 4), ("release", 4)]
    with db.read() as s:
        assert balance(s, acct, "api").available == 100


def test_input_fault_fails_at_once_and_releases(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, seconds=2, max_attempts=5)
    c = queue.claim(db, "w", LEASE_S)
    assert c is not None
    assert queue.fail(db, jid, c.lease_token, code="no_person_detected", message="nobody", stage="preflight")
    job = _job(db, jid)
    assert (job.status, job.error_code, job.attempts) == ("failed", "no_person_detected", 1)
    assert job.purge_after is not None and job.completed_at is not None
    assert _ledger(db, jid) == [("hold", 2), ("release", 2)]


def test_reaper_requeues_expired_leases_and_fails_the_last_attempt(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, seconds=3, max_attempts=2)
    t0 = datetime.now(UTC)
    assert queue.claim(db, "w1", 5.0, now=t0) is not None
    rep = queue.reap(db, base_backoff_s=1.0, now=t0 + timedelta(seconds=6))
    assert rep.requeued == [jid]
    job = _job(db, jid)
    assert job.status == "queued" and job.attempts == 1 and job.lease_owner is None
    assert job.run_after is not None and job.run_after > t0 + timedelta(seconds=6)
    assert queue.claim(db, "w2", 5.0, now=t0 + timedelta(seconds=10)) is not None
    rep = queue.reap(db, base_backoff_s=1.0, now=t0 + timedelta(seconds=20))
    assert rep.failed == [jid]
    job = _job(db, jid)
    assert (job.status, job.error_code, job.error_stage) == ("failed", "runner_lost", "preflight")
    assert _ledger(db, jid) == [("hold", 3), ("release", 3)]
    assert queue.reap(db, base_backoff_s=1.0, now=t0 + timedelta(seconds=60)).total == 0


def test_cancel_queued_and_running_jobs(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    queued = admit_job(db, store, acct, seconds=2)
    assert queue.cancel(db, queued)
    assert _job(db, queued).status == "canceled"
    assert _ledger(db, queued) == [("hold", 2), ("release", 2)]
    running = admit_job(db, store, acct, seconds=3)
    c = queue.claim(db, "w", LEASE_S)
    assert c is not None and c.id == running
    assert queue.cancel(db, running)
    assert not queue.cancel(db, running)  # already terminal
    assert not queue.heartbeat(db, running, c.lease_token, LEASE_S).alive  # the worker learns at its next beat
    assert not queue.finish(db, running, c.lease_token, [])
    job = _job(db, running)
    assert (job.status, job.error_stage, job.refunded_credits, job.charged_credits) == ("canceled", "preflight", 3, 0)
    assert _ledger(db, running) == [("hold", 3), ("release", 3)]
    assert ledger_report(db).accounts_balanced


def test_hand_back_requeues_now_without_spending_an_attempt(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct)
    c = queue.claim(db, "w", LEASE_S)
    assert c is not None
    assert queue.hand_back(db, jid, c.lease_token)
    job = _job(db, jid)
    assert (job.status, job.attempts) == ("queued", 0)
    c2 = queue.claim(db, "w2", LEASE_S)
    assert c2 is not None and c2.id == jid and c2.attempt == 1


def test_cancel_racing_finish_settles_each_job_exactly_once(db: Database, store: LocalStore) -> None:
    """A client's cancel and the worker's finish hit the same running job at the same moment: one of
    them wins, the other changes nothing (one terminal event, one settlement)."""
    acct = seed_account(db, "a", credits=100_000)
    jobs = [admit_job(db, store, acct, seconds=2) for _ in range(12)]
    claims = [queue.claim(db, "w", LEASE_S) for _ in jobs]
    results: dict[str, list[bool]] = {}

    def race(c: queue.ClaimedJob) -> None:
        go = threading.Barrier(2)
        out: list[bool] = []

        def fin() -> None:
            go.wait()
            out.append(queue.finish(db, c.id, c.lease_token, []))

        def can() -> None:
            go.wait()
            out.append(queue.cancel(db, c.id))

        ts = [threading.Thread(target=fin), threading.Thread(target=can)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        results[c.id] = out

    for c in claims:
        assert c is not None
        race(c)
    for jid in jobs:
        assert sorted(results[jid]) == [False, True]
        assert [t for t in _events(db, jid) if t in ("job.completed", "job.canceled")] in (
            ["job.completed"], ["job.canceled"]
        )
        kinds = [k for k, _ in _ledger(db, jid)]
        assert kinds in (["hold", "capture"], ["hold", "release"])
        assert (kinds[1] == "capture") == (_job(db, jid).status == "completed")
    assert ledger_report(db).accounts_balanced
