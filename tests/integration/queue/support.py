"""Shared set-up for the queue tests, the chaos tests and bench/queue_load.py.

- `sqlite_url(tmp)` / `fresh_postgres()`: a database per test run (PostgreSQL: a new
  ``mocapd_test_<random>`` database on 127.0.0.1:5432, dropped at the end).
- `new_database(url)`: migrated to head with `mocapd.db.migrate.upgrade`.
- `seed_account` / `admit_job`: what the API does at create + upload + complete-upload (draft row,
  source object, credit hold, ``queued``), so the queue is exercised on real admitted jobs.
- `ledger_report` / `terminal_report`: the invariants the chaos and state-machine tests assert.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mocapd.db.accounts import create_account, ensure_plans
from mocapd.db.engine import Database
from mocapd.db.ledger import balance, grant
from mocapd.db.migrate import upgrade
from mocapd.db.models import Account, Job, JobEvent, LedgerEntry, Plan
from mocapd.db.transitions import mark_admitted, mark_created
from mocapd.domain.jobs import TERMINAL_STATUSES
from mocapd.storage import LocalStore, source_key

TERMINAL_EVENTS = ("job.completed", "job.failed", "job.canceled", "job.expired")


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'mocapd.sqlite3'}"


def new_database(url: str) -> Database:
    db = Database(url)
    upgrade(db)
    return db


def seed_account(db: Database, name: str, *, plan: str = "free", credits: int = 10_000) -> str:
    with db.write() as s:
        ensure_plans(s)
        acct = create_account(s, name, plan)
        grant(s, acct.id, credits, reason="test grant")
        return acct.id


def create_draft(db: Database, account_id: str, *, title: str | None = None, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    job_id = "mocap_" + secrets.token_hex(8)
    with db.write() as s:
        job = Job(
            id=job_id,
            account_id=account_id,
            channel="api",
            status="draft",
            stage="awaiting_upload",
            progress=0.0,
            title=title,
            target_ids=["default", "unitree_g1"],
            export_fps=30,
            mocap_type="full_body",
            trim_start_s=0.0,
            source_filename="clip.mp4",
            source_key=source_key(job_id),
            max_upload_bytes=50_000_000,
            created_at=now,
            updated_at=now,
            event_seq=0,
        )
        s.add(job)
        mark_created(s, job, "Job created.")
    return job_id


def admit(db: Database, job_id: str, *, seconds: int, max_attempts: int = 3, now: datetime | None = None) -> None:
    """complete-upload's admission: hold, ``queued``, weight from the plan, one transaction."""
    now = now or datetime.now(UTC)
    with db.write() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.status == "draft"
        weight = s.scalar(
            select(Plan.queue_weight).join(Account, Account.plan_name == Plan.name).where(Account.id == job.account_id)
        )
        job.trim_end_s = float(seconds)
        job.source_facts = {"durationSec": float(seconds), "fps": 30.0, "width": 640, "height": 360, "rotation": 0}
        job.max_attempts = max_attempts
        mark_admitted(s, job, credits=seconds, queue_weight=int(weight or 1), admitted={"heldVCredits": seconds}, now=now)


def admit_job(
    db: Database,
    store: LocalStore,
    account_id: str,
    behaviour: dict[str, Any] | None = None,
    *,
    seconds: int = 3,
    max_attempts: int = 3,
    title: str | None = None,
) -> str:
    """Create, upload (a small JSON "video" telling the probe processor what to do) and admit a job."""
    job_id = create_draft(db, account_id, title=title)
    path = store.path(source_key(job_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"job": job_id, **(behaviour or {})}).encode()
    path.write_bytes(body)
    with db.write() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.upload_bytes = len(body)
    admit(db, job_id, seconds=seconds, max_attempts=max_attempts)
    return job_id


@dataclass(frozen=True)
class LedgerReport:
    holds: int
    captures: int
    releases: int
    open_holds: int
    accounts_balanced: bool
    settle_per_job_max: int
    jobs_settled_both_ways: int


def ledger_report(db: Database) -> LedgerReport:
    """Sum of holds = captures + releases + still-open holds; balance = grants - captures per account."""
    with db.read() as s:
        entries = s.scalars(select(LedgerEntry)).all()
        accounts = s.scalars(select(Account.id)).all()
        balanced = True
        for acct in accounts:
            mine = [e for e in entries if e.account_id == acct and e.channel == "api"]
            grants = sum(e.amount for e in mine if e.type == "grant")
            captures = sum(e.amount for e in mine if e.type == "capture")
            if balance(s, acct, "api").balance != grants - captures:
                balanced = False
    per_job: dict[str, Counter[str]] = {}
    for e in entries:
        # The release of the unused part of a partly captured hold (`unused_hold_key`) is not a settlement.
        if e.job_id and not (e.entry_key or "").startswith("settle-rest:"):
            per_job.setdefault(e.job_id, Counter())[e.type] += 1
    holds = sum(e.amount for e in entries if e.type == "hold")
    captures = sum(e.amount for e in entries if e.type == "capture")
    releases = sum(e.amount for e in entries if e.type == "release")
    return LedgerReport(
        holds=holds,
        captures=captures,
        releases=releases,
        open_holds=holds - captures - releases,
        accounts_balanced=balanced,
        settle_per_job_max=max((c["capture"] + c["release"] for c in per_job.values()), default=0),
        jobs_settled_both_ways=sum(1 for c in per_job.values() if c["capture"] and c["release"]),
    )


@dataclass(frozen=True)
class TerminalReport:
    statuses: Counter[str]
    terminal_events: Counter[str]  # job id -> number of terminal events
    nonterminal: list[str]
    completed_without_capture: list[str]
    failed_or_canceled_with_capture: list[str]


def terminal_report(db: Database, job_ids: list[str]) -> TerminalReport:
    with db.read() as s:
        jobs = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(job_ids))).all()}
        events = Counter(
            jid
            for (jid,) in s.execute(
                select(JobEvent.job_id).where(JobEvent.job_id.in_(job_ids), JobEvent.type.in_(TERMINAL_EVENTS))
            ).all()
        )
        captured = set(s.scalars(select(LedgerEntry.job_id).where(LedgerEntry.type == "capture")).all())
    terminal = {str(t) for t in TERMINAL_STATUSES}
    return TerminalReport(
        statuses=Counter(j.status for j in jobs.values()),
        terminal_events=Counter({jid: events.get(jid, 0) for jid in job_ids}),
        nonterminal=[jid for jid in job_ids if jid not in jobs or jobs[jid].status not in terminal],
        completed_without_capture=[j.id for j in jobs.values() if j.status == "completed" and j.id not in captured],
        failed_or_canceled_with_capture=[j.id for j in jobs.values() if j.status != "completed" and j.id in captured],
    )
