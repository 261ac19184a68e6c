"""The stage runner and worker loop in-process, with the probe processor, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.models import Artifact, Job, JobEvent, LedgerEntry
from mocapd.storage import LocalStore
from mocapd.worker.loop import Worker
from mocapd.worker.runner import Outcome, StageRunner
from tests.integration.queue.probe_processor import ProbeProcessor
from tests.integration.queue.support import admit_job, seed_account

LEASE_S = 1.5
HEARTBEAT_S = 0.1


def _worker(db: Database, store: LocalStore, *, job_timeout_s: float = 60.0, stop: threading.Event | None = None) -> Worker:
    runner = StageRunner(
        db, store, ProbeProcessor(), lease_s=LEASE_S, retry_backoff_s=0.0, job_timeout_s=job_timeout_s,
        progress_interval_s=0.05,
    )
    return Worker(db, runner, lease_s=LEASE_S, heartbeat_s=HEARTBEAT_S, retry_backoff_s=0.0, idle_poll_s=0.02, stop=stop)


def _job(db: Database, job_id: str) -> Job:
    with db.read() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _ledger(db: Database, job_id: str) -> list[str]:
    with db.read() as s:
        return list(s.scalars(select(LedgerEntry.type).where(LedgerEntry.job_id == job_id).order_by(LedgerEntry.id)))


def _events(db: Database, job_id: str) -> list[tuple[str, str]]:
    with db.read() as s:
        rows = s.execute(select(JobEvent.type, JobEvent.stage).where(JobEvent.job_id == job_id).order_by(JobEvent.seq))
        return [(t, st) for t, st in rows]


def test_a_job_runs_through_the_stages_to_registered_artifacts_and_a_manifest(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"work_s": 0.05}, seconds=7, title="walk")
    assert _worker(db, store).run_once() is Outcome.COMPLETED
    job = _job(db, jid)
    assert (job.status, job.stage, job.progress, job.charged_credits) == ("completed", "completed", 1.0, 7)
    stages = [st for t, st in _events(db, jid) if t in ("job.started", "job.stage")]
    assert stages == ["preflight", "processing", "packaging"]
    assert _events(db, jid)[-1] == ("job.completed", "completed")
    assert _ledger(db, jid) == ["hold", "capture"]
    with db.read() as s:
        arts = {a.name: a for a in s.scalars(select(Artifact).where(Artifact.job_id == jid))}
    assert set(arts) == {
        "motion.bvh", "motion.fbx", "motion.glb", "quality.json", "g1_motion.json", "g1_motion.csv", "manifest.json"
    }
    assert arts["motion.fbx"].target_id == "default" and arts["g1_motion.csv"].target_id == "unitree_g1"
    assert arts["preview.mp4" if "preview.mp4" in arts else "quality.json"].target_id is None
    for a in arts.values():  # every row describes the stored bytes
        data = store.path(a.object_key).read_bytes()
        assert a.object_key == f"jobs/{jid}/artifacts/{a.name}"
        assert (a.bytes, a.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    manifest = json.loads(store.path(arts["manifest.json"].object_key).read_bytes())
    assert {f["name"] for f in manifest["files"]} == set(arts) - {"manifest.json"}
    for f in manifest["files"]:
        assert (f["bytes"], f["sha256"], f["contentType"]) == (
            arts[f["name"]].bytes, arts[f["name"]].sha256, arts[f["name"]].content_type
        )
    assert manifest["job"]["id"] == jid and manifest["billing"]["heldVCredits"] == 7
    assert manifest["settings"]["trimEndSec"] == 7.0 and manifest["camera"]["chosenBy"] == "probe"
    assert manifest["source"]["durationSec"] == 7.0 and manifest["processor"] == "probe"


def test_input_fault_fails_without_retry(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"fault": "input"}, max_attempts=5)
    assert _worker(db, store).run_once() is Outcome.FAILED
    job = _job(db, jid)
    assert (job.status, job.error_code, job.error_stage, job.attempts) == ("failed", "no_person_detected", "preflight", 1)
    assert _ledger(db, jid) == ["hold", "release"]


def test_system_fault_is_retried_then_completes(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"fault": "system_once"})
    w = _worker(db, store)
    assert w.run_once() is Outcome.REQUEUED
    job = _job(db, jid)
    assert job.status == "queued" and job.error_code is None
    assert w.run_once() is Outcome.COMPLETED
    assert _job(db, jid).attempts == 2
    assert _ledger(db, jid) == ["hold", "capture"]


def test_system_fault_on_every_attempt_fails_the_job(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"fault": "system_always"}, max_attempts=2)
    w = _worker(db, store)
    assert [w.run_once(), w.run_once(), w.run_once()] == [Outcome.REQUEUED, Outcome.FAILED, None]
    job = _job(db, jid)
    assert (job.status, job.error_code, job.error_stage) == ("failed", "processing_failed", "processing")
    assert _ledger(db, jid) == ["hold", "release"]


def _run_in_thread(w: Worker) -> tuple[threading.Thread, list[Outcome | None]]:
    out: list[Outcome | None] = []
    t = threading.Thread(target=lambda: out.append(w.run_once()))
    t.start()
    return t, out


def _wait_for_stage(db: Database, jid: str, stage: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _job(db, jid).stage != stage:
        assert time.monotonic() < deadline, f"job never reached {stage}"
        time.sleep(0.01)


@pytest.mark.parametrize("how", ["api_cancel", "flag_only"])
def test_cancel_reaches_a_running_job_within_a_heartbeat(db: Database, store: LocalStore, how: str) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"work_s": 20.0, "steps": 2000})
    t, out = _run_in_thread(_worker(db, store))
    _wait_for_stage(db, jid, "processing")
    t0 = time.monotonic()
    if how == "api_cancel":
        assert queue.cancel(db, jid)
    else:  # an API that only raises the flag: the worker itself cancels on its next heartbeat
        with db.write() as s:
            job = s.get(Job, jid)
            assert job is not None
            job.cancel_requested = True
    t.join(5.0)
    assert not t.is_alive()
    assert time.monotonic() - t0 < HEARTBEAT_S + 0.5
    assert out == [Outcome.LOST if how == "api_cancel" else Outcome.CANCELED]
    job = _job(db, jid)
    assert (job.status, job.charged_credits, job.refunded_credits) == ("canceled", 0, 3)
    assert _ledger(db, jid) == ["hold", "release"]


def test_stop_hands_the_running_job_back(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"work_s": 20.0, "steps": 2000})
    stop = threading.Event()
    t, out = _run_in_thread(_worker(db, store, stop=stop))
    _wait_for_stage(db, jid, "processing")
    stop.set()
    t.join(5.0)
    assert out == [Outcome.HANDED_BACK]
    job = _job(db, jid)
    assert (job.status, job.attempts, job.lease_owner) == ("queued", 0, None)
    assert _ledger(db, jid) == ["hold"]


def test_a_worker_whose_lease_was_reaped_stops_and_writes_nothing(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"work_s": 20.0, "steps": 2000})
    t, out = _run_in_thread(_worker(db, store))
    _wait_for_stage(db, jid, "processing")
    # the clock jumps past the lease: the reaper hands the job back to the queue. On PostgreSQL it skips a
    # row the worker holds locked at that instant (a progress write), as a periodic reaper would: try again
    for _ in range(100):
        if queue.reap(db, base_backoff_s=100.0, now=datetime.now(UTC) + timedelta(seconds=60)).requeued == [jid]:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the reaper never took the expired lease")
    t.join(5.0)
    assert out == [Outcome.LOST]
    job = _job(db, jid)
    assert (job.status, job.stage, job.attempts) == ("queued", "queued", 1)
    assert _ledger(db, jid) == ["hold"]


def test_a_job_past_its_timeout_fails_runner_timeout(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"work_s": 6.0, "steps": 600})
    # 1 s: time to reach processing (the timeout is checked at each progress report, preflight's too)
    # on a loaded machine; 0.2 s once expired at the preflight report
    assert _worker(db, store, job_timeout_s=1.0).run_once() is Outcome.FAILED
    job = _job(db, jid)
    assert (job.status, job.error_code, job.error_stage) == ("failed", "runner_timeout", "processing")
    assert _ledger(db, jid) == ["hold", "release"]


def test_missing_source_object_is_a_system_fault(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, max_attempts=1)
    store.delete_prefix(f"jobs/{jid}/source")
    assert _worker(db, store).run_once() is Outcome.FAILED
    job = _job(db, jid)
    assert (job.status, job.error_code, job.error_stage) == ("failed", "processing_failed", "preflight")


def test_a_processor_stuck_without_progress_hits_the_hard_timeout(db: Database, store: LocalStore) -> None:
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"hang_s": 1.5})
    fired = threading.Event()
    runner = StageRunner(db, store, ProbeProcessor(), lease_s=LEASE_S, retry_backoff_s=0.0, job_timeout_s=60.0)
    w = Worker(db, runner, lease_s=LEASE_S, heartbeat_s=HEARTBEAT_S, retry_backoff_s=0.0,
               hard_timeout_s=0.4, on_hard_timeout=fired.set)
    t, out = _run_in_thread(w)
    assert fired.wait(3.0)
    job = _job(db, jid)
    assert (job.status, job.error_code, job.error_stage) == ("failed", "runner_timeout", "preflight")
    t.join(5.0)
    assert out == [Outcome.LOST]  # the stuck attempt's late writes were fenced out
    assert _ledger(db, jid) == ["hold", "release"]
