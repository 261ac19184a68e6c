"""A Hypothesis state machine over the job + ledger rules, on a real SQLite database with a fake clock.

Rules: create, upload, complete-upload (admission with a hold, or rejection for lack of credits),
claim, heartbeat, advance the clock, reap expired leases, finish, fail (input fault), retry (system
fault), hand back, cancel, and stale writes from workers whose lease is gone (zombies). A plain-Python
model predicts every outcome; after every step the invariants are checked against the database:
statuses match the model, each job has exactly one terminal event iff terminal, ledger entries per job
are one of {}, {hold}, {hold, capture}, {hold, release}, captured iff completed, open holds exactly for
active jobs, and every account's balance = grants - captures with available >= 0.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from sqlalchemy import select

from mocapd.db import queue
from mocapd.db.accounts import create_account, ensure_plans
from mocapd.db.engine import Database
from mocapd.db.ledger import balance, grant
from mocapd.db.models import Base, Job, JobEvent, LedgerEntry
from mocapd.db.transitions import mark_admitted, mark_created, mark_failed
from mocapd.domain.jobs import JobStage

LEASE_S = 30.0
BACKOFF_S = 2.0
MAX_ATTEMPTS = 3
TERMINAL = {"completed", "failed", "canceled"}
TERMINAL_EVENTS = ("job.completed", "job.failed", "job.canceled")


@dataclass
class ModelJob:
    account: str
    weight: int
    status: str = "draft"
    uploaded: bool = False
    held: int = 0
    settled: str | None = None  # "capture" | "release"
    attempts: int = 0
    token: int = 0
    lease_expires_at: datetime | None = None
    queued_at: datetime | None = None


@dataclass(frozen=True)
class Lease:
    job_id: str
    token: int


@dataclass
class ModelAccount:
    id: str
    weight: int
    grants: int
    captures: int = 0
    jobs: list[str] = field(default_factory=list)


class JobLedgerMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="mocapd-machine-"))
        self.db = Database(f"sqlite:///{self.tmp / 'm.sqlite3'}")
        Base.metadata.create_all(self.db.write_engine)
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.rng = random.Random(0)
        self.model: dict[str, ModelJob] = {}
        self.accounts: list[ModelAccount] = []
        with self.db.write() as s:
            ensure_plans(s)
            for name, plan, weight, credits in (("free", "free", 1, 12), ("premium", "premium", 4, 20)):
                acct = create_account(s, name, plan)
                grant(s, acct.id, credits, reason="machine")
                self.accounts.append(ModelAccount(acct.id, weight, credits))

    def teardown(self) -> None:
        self.db.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- client side ------------------------------------------------------------------------------
    @initialize(target=jobs, seconds=st.lists(st.integers(1, 4), min_size=2, max_size=3))
    def admitted_jobs(self, seconds: list[int]) -> MultipleResults[str]:
        """Start with a few admitted jobs from both accounts, so workers have something to claim."""
        ids = []
        for i, sec in enumerate(seconds):
            jid = self.create(i % 2)
            self.upload(jid)
            self.complete_upload(jid, sec)
            ids.append(jid)
        return multiple(*ids)

    @precondition(lambda self: len(self.model) < 5)  # few jobs, so claims, expiries and zombies meet
    @rule(target=jobs, which=st.integers(0, 1))
    def create(self, which: int) -> str:
        acct = self.accounts[which]
        job_id = f"mocap_{len(self.model):04d}"
        with self.db.write() as s:
            job = Job(
                id=job_id, account_id=acct.id, channel="api", status="draft", stage="awaiting_upload",
                progress=0.0, target_ids=["default"], export_fps=30, mocap_type="full_body", trim_start_s=0.0,
                source_filename="a.mp4", source_key=f"jobs/{job_id}/source/upload", max_upload_bytes=1000,
                created_at=self.now, updated_at=self.now, event_seq=0,
            )
            s.add(job)
            mark_created(s, job, "Job created.")
        self.model[job_id] = ModelJob(account=acct.id, weight=acct.weight)
        acct.jobs.append(job_id)
        return job_id

    def upload(self, job_id: str) -> None:
        m = self.model[job_id]
        if m.status != "draft":
            return
        with self.db.write() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.upload_bytes, job.stage = 100, "uploaded"
        m.uploaded = True

    def complete_upload(self, job_id: str, seconds: int) -> None:
        m = self.model[job_id]
        if m.status != "draft" or not m.uploaded:
            return
        with self.db.write() as s:
            job = s.get(Job, job_id)
            assert job is not None
            if balance(s, job.account_id, "api").available < seconds:
                mark_failed(s, job, code="insufficient_api_v_credits", message="no", stage="validation")
                m.status = "failed"
                return
            job.max_attempts = MAX_ATTEMPTS
            mark_admitted(s, job, credits=seconds, queue_weight=m.weight, admitted={}, now=self.now)
        m.status, m.held, m.queued_at = "queued", seconds, self.now

    @rule(job_id=jobs)
    def cancel(self, job_id: str) -> None:
        m = self.model[job_id]
        expected = m.status not in TERMINAL
        assert queue.cancel(self.db, job_id) is expected
        if expected:
            m.status = "canceled"
            m.settled = "release" if m.held else None

    # -- worker side ------------------------------------------------------------------------------
    def _runnable(self) -> list[str]:
        with self.db.read() as s:
            due = {
                j.id: j.run_after
                for j in s.scalars(select(Job).where(Job.status == "queued"))
            }
        return [jid for jid, run_after in due.items() if run_after is None or run_after <= self.now]

    @precondition(lambda self: any(m.status == "queued" for m in self.model.values()))
    @rule(target=leases)
    def claim(self) -> MultipleResults[Lease]:
        runnable = self._runnable()
        got = queue.claim(self.db, "worker", LEASE_S, now=self.now)
        if not runnable:  # every queued job is still backing off
            assert got is None
            return multiple()
        assert got is not None
        best = min(runnable, key=lambda j: (-self.model[j].weight, self.model[j].queued_at, j))
        assert got.id == best, "claim order is weight, then age"
        m = self.model[got.id]
        assert m.status == "queued" and got.lease_token > m.token
        m.status, m.attempts, m.token = "processing", m.attempts + 1, got.lease_token
        m.lease_expires_at = self.now + timedelta(seconds=LEASE_S)
        assert got.attempt == m.attempts
        return multiple(Lease(got.id, got.lease_token))

    def _current(self, lease: Lease) -> bool:
        m = self.model.get(lease.job_id)
        return m is not None and m.status == "processing" and m.token == lease.token

    @precondition(lambda self: any(m.status == "draft" for m in self.model.values()))
    @rule(job_id=jobs, seconds=st.integers(1, 9), complete=st.booleans())
    def upload_and_complete(self, job_id: str, seconds: int, complete: bool) -> None:
        """Upload the source; then (or later, with a second upload) complete-upload: admission."""
        if not self.model[job_id].uploaded or not complete:
            self.upload(job_id)
        if complete:
            self.complete_upload(job_id, seconds)

    @rule(
        lease=leases,
        action=st.sampled_from(["heartbeat", "progress", "finish", "fail_input", "retry_system_fault", "hand_back"]),
    )
    def worker_write(self, lease: Lease, action: str) -> None:
        """A worker write with any lease ever handed out: current ones succeed, stale ones (zombies,
        duplicate deliveries) must change nothing."""
        getattr(self, action)(lease)

    def heartbeat(self, lease: Lease) -> None:
        beat = queue.heartbeat(self.db, lease.job_id, lease.token, LEASE_S, now=self.now)
        assert beat.alive is self._current(lease)
        if beat.alive:
            self.model[lease.job_id].lease_expires_at = self.now + timedelta(seconds=LEASE_S)

    def progress(self, lease: Lease) -> None:
        stage = JobStage.PACKAGING if lease.token % 2 else JobStage.PROCESSING
        assert queue.report_progress(self.db, lease.job_id, lease.token, stage, 0.5, now=self.now) is self._current(lease)

    @rule(seconds=st.sampled_from([1.0, 10.0, 29.0, 31.0, 120.0]))
    def advance_clock(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @rule()
    def expire_leases(self) -> None:
        """The clock jumps past every current lease, the reaper runs, and the backoff passes."""
        self.advance_clock(LEASE_S + 1.0)
        self.reap()
        self.advance_clock(120.0)

    @rule()
    def reap(self) -> None:
        report = queue.reap(self.db, base_backoff_s=BACKOFF_S, now=self.now, rng=self.rng)
        expired = {
            jid for jid, m in self.model.items()
            if m.status == "processing" and m.lease_expires_at is not None and m.lease_expires_at < self.now
        }
        assert set(report.requeued) | set(report.failed) == expired and not report.canceled
        for jid in report.failed:
            assert self.model[jid].attempts >= MAX_ATTEMPTS
            self.model[jid].status, self.model[jid].settled = "failed", "release"
        for jid in report.requeued:
            assert self.model[jid].attempts < MAX_ATTEMPTS
            self.model[jid].status = "queued"

    def finish(self, lease: Lease) -> None:
        expected = self._current(lease)
        assert queue.finish(self.db, lease.job_id, lease.token, [], now=self.now) is expected
        if expected:
            self.model[lease.job_id].status, self.model[lease.job_id].settled = "completed", "capture"
            acct = next(a for a in self.accounts if a.id == self.model[lease.job_id].account)
            acct.captures += self.model[lease.job_id].held

    def fail_input(self, lease: Lease) -> None:
        expected = self._current(lease)
        ok = queue.fail(self.db, lease.job_id, lease.token, code="no_person_detected", message="x", stage="preflight")
        assert ok is expected
        if expected:
            self.model[lease.job_id].status, self.model[lease.job_id].settled = "failed", "release"

    def retry_system_fault(self, lease: Lease) -> None:
        expected = self._current(lease)
        res = queue.retry(
            self.db, lease.job_id, lease.token, code="processing_failed", message="x", stage="processing",
            base_backoff_s=BACKOFF_S, now=self.now, rng=self.rng,
        )
        if not expected:
            assert res == "lost"
            return
        m = self.model[lease.job_id]
        if m.attempts >= MAX_ATTEMPTS:
            assert res == "failed"
            m.status, m.settled = "failed", "release"
        else:
            assert res == "requeued"
            m.status = "queued"

    def hand_back(self, lease: Lease) -> None:
        expected = self._current(lease)
        assert queue.hand_back(self.db, lease.job_id, lease.token, now=self.now) is expected
        if expected:
            m = self.model[lease.job_id]
            m.status, m.attempts = "queued", m.attempts - 1

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def database_matches_model_and_ledger_balances(self) -> None:
        with self.db.read() as s:
            jobs = {j.id: j for j in s.scalars(select(Job))}
            entries = s.scalars(select(LedgerEntry)).all()
            terminal_events = Counter(
                s.scalars(select(JobEvent.job_id).where(JobEvent.type.in_(TERMINAL_EVENTS))).all()
            )
            balances = {a.id: balance(s, a.id, "api") for a in self.accounts}
        per_job: dict[str, list[str]] = {}
        for e in entries:
            if e.job_id:
                per_job.setdefault(e.job_id, []).append(e.type)
        for jid, m in self.model.items():
            job = jobs[jid]
            assert job.status == m.status, (jid, job.status, m.status)
            assert job.attempts == m.attempts
            assert terminal_events[jid] == (1 if m.status in TERMINAL else 0)
            kinds = per_job.get(jid, [])
            expected = ([] if not m.held else ["hold"]) + ([m.settled] if m.settled else [])
            assert kinds == expected, (jid, kinds, expected)
            assert (job.lease_owner is not None) == (m.status == "processing")
            assert job.charged_credits == (m.held if m.settled == "capture" else 0)
        for a in self.accounts:
            b = balances[a.id]
            assert b.balance == a.grants - a.captures
            open_holds = sum(self.model[j].held for j in a.jobs if self.model[j].status in ("queued", "processing"))
            assert b.held == open_holds
            assert b.available >= 0


TestJobLedgerMachine = JobLedgerMachine.TestCase
TestJobLedgerMachine.settings = settings(
    max_examples=75,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
