"""Chaos: 200 jobs through 4 supervised worker processes while workers are SIGKILLed at random moments
(and clients cancel some jobs), on SQLite and on PostgreSQL.

Proves: every job terminal exactly once (one terminal state, one terminal event), none lost, none
completed twice, completed <=> captured, and the ledger balanced (sum of holds = captures + releases;
every account's balance = its grants - captures).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mocapd.config import Settings
from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.models import Artifact, Job, JobEvent
from mocapd.storage import LocalStore
from mocapd.worker.supervisor import Supervisor, WorkerOptions
from tests.integration.queue.probe_processor import LOG_ENV
from tests.integration.queue.support import (
    admit_job,
    ledger_report,
    new_database,
    seed_account,
    sqlite_url,
    terminal_report,
)
from tests.support.postgres import fresh_postgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

N_JOBS = 200
N_WORKERS = 4
DEADLINE_S = 55.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with fresh_postgres() as url:
            yield url


def _behaviour(rng: random.Random) -> dict[str, object]:
    r = rng.random()
    b: dict[str, object] = {"work_s": rng.uniform(0.01, 0.1), "steps": rng.randint(2, 8)}
    if r < 0.05:
        b["fault"] = "input"
    elif r < 0.10:
        b["fault"] = "system_once"
    elif r < 0.12:
        b["fault"] = "system_always"
    return b


def test_sigkill_chaos_loses_nothing_and_charges_exactly_once(database_url: str, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("MOCAPD_CHAOS_SEED", "20261129")))
    log_path = tmp_path / "probe.log"
    db = new_database(database_url)
    try:
        _chaos(db, database_url, tmp_path, log_path, rng)
    finally:
        db.dispose()


def _chaos(db: Database, database_url: str, tmp_path: Path, log_path: Path, rng: random.Random) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        storage_url=f"file://{tmp_path / 'objects'}",
        lease_s=1.0,
        heartbeat_s=0.2,
        retry_backoff_s=0.05,
        job_timeout_s=60.0,
    )
    store = LocalStore(tmp_path / "objects")
    accounts = [seed_account(db, n, plan=p, credits=5_000) for n, p in (("f", "free"), ("s", "starter"), ("p", "premium"))]
    behaviours: dict[str, dict[str, object]] = {}
    for _ in range(N_JOBS):
        b = _behaviour(rng)
        jid = admit_job(db, store, rng.choice(accounts), b, seconds=rng.randint(1, 9), max_attempts=6)
        behaviours[jid] = b
    job_ids = list(behaviours)

    sup = Supervisor(
        settings,
        N_WORKERS,
        options=WorkerOptions(
            processor="tests.integration.queue.probe_processor:factory",
            idle_poll_s=0.05,
            environ=((LOG_ENV, str(log_path)),),
        ),
        housekeeping_interval_s=3600.0,
        crash_loop_s=0.0,  # the kills are ours, not a crash loop: restart at once
    )
    kills = 0
    cancels: list[str] = []
    t0 = time.monotonic()
    sup.start()
    try:
        while time.monotonic() - t0 < DEADLINE_S:
            time.sleep(rng.uniform(0.05, 0.35))
            pids = sup.pids()
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
                kills += 1
            if rng.random() < 0.2:  # a client cancels a random job, wherever it is
                jid = rng.choice(job_ids)
                if queue.cancel(db, jid):
                    cancels.append(jid)
            with db.read() as s:
                left = s.scalar(select(Job.id).where(Job.status.in_(["queued", "processing"])).limit(1))
            if left is None:
                break
    finally:
        sup.stop(timeout_s=10.0)
    elapsed_s = time.monotonic() - t0

    terminal = terminal_report(db, job_ids)
    ledger = ledger_report(db)
    runs = [json.loads(line) for line in log_path.read_text().splitlines()]
    done_per_job = Counter(r["job"] for r in runs if r["kind"] == "done")
    with db.read() as s:
        lost_runner_retries = s.scalar(
            select(JobEvent.id).where(JobEvent.type == "job.retry_scheduled", JobEvent.message.like("%was lost%")).limit(1)
        )
        manifests = set(s.scalars(select(Artifact.job_id).where(Artifact.name == "manifest.json")))
        jobs = {j.id: j for j in s.scalars(select(Job))}
    summary = (
        f"{elapsed_s:.1f} s, {kills} kills, {sup.restarts} restarts, {len(cancels)} cancels, "
        f"statuses {dict(terminal.statuses)}, duplicate executions "
        f"{sum(n - 1 for n in done_per_job.values() if n > 1)}"
    )
    print(summary)

    # every job terminal exactly once, none lost
    assert terminal.nonterminal == [], summary
    assert set(terminal.terminal_events.values()) == {1}, summary
    # completion <=> one capture; never captured and released
    assert terminal.completed_without_capture == [] and terminal.failed_or_canceled_with_capture == []
    assert ledger.settle_per_job_max == 1 and ledger.jobs_settled_both_ways == 0
    assert ledger.open_holds == 0 and ledger.holds == ledger.captures + ledger.releases
    assert ledger.accounts_balanced
    assert all(jid in manifests for jid, j in jobs.items() if j.status == "completed")
    # the faults did what they say
    for jid, b in behaviours.items():
        j = jobs[jid]
        if jid in cancels:
            assert j.status == "canceled"
        elif b.get("fault") == "input":
            assert (j.status, j.error_code) == ("failed", "no_person_detected")
        elif b.get("fault") == "system_always":
            assert j.status == "failed" and j.error_code in ("processing_failed", "runner_lost")
    # the chaos was real: workers died mid-job and were restarted
    assert kills >= 5 and sup.restarts >= kills - N_WORKERS
    assert lost_runner_retries is not None, "no kill ever hit a running job"
    # a processing run finished twice only when a kill hit between its end and the commit
    assert sum(n - 1 for n in done_per_job.values()) <= kills
