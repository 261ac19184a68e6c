"""Worker processes: titled ``mocapd worker``, restarted after SIGKILL, graceful on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mocapd.config import Settings
from mocapd.db.engine import Database
from mocapd.db.models import Job
from mocapd.storage import LocalStore
from mocapd.worker.supervisor import PROCESS_TITLE, Supervisor, WorkerOptions
from tests.conftest import PROJECT_ROOT
from tests.integration.queue.support import admit_job, new_database, seed_account, sqlite_url
from tests.support.procs import descendants, kill_all

pytestmark = pytest.mark.timeout(60)
PROBE = "tests.integration.queue.probe_processor:factory"


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=sqlite_url(tmp_path),
        storage_url=f"file://{tmp_path / 'objects'}",
        lease_s=3.0,
        heartbeat_s=0.2,
        retry_backoff_s=0.05,
    )


def _wait(cond: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _status(db: Database, job_id: str) -> tuple[str, str, int]:
    with db.read() as s:
        j = s.get(Job, job_id)
        assert j is not None
        return j.status, j.stage, j.attempts


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_workers_are_titled_restarted_and_stop_gracefully(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    db = new_database(settings.resolved_database_url)
    store = LocalStore(tmp_path / "objects")
    acct = seed_account(db, "a")
    sup = Supervisor(settings, 2, options=WorkerOptions(processor=PROBE, idle_poll_s=0.05), crash_loop_s=0.0)
    try:
        sup.start()
        _wait(lambda: len(sup.pids()) == 2)
        _wait(lambda: all(_cmdline(p) == PROCESS_TITLE for p in sup.pids()))
        quick = admit_job(db, store, acct, {"work_s": 0.01})
        _wait(lambda: _status(db, quick)[0] == "completed")
        victim = sup.pids()[0]
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(sup.pids()) == 2 and victim not in sup.pids())
        assert sup.restarts >= 1
        # a long job is running when SIGTERM arrives: it is handed back, not lost and not charged
        slow = admit_job(db, store, acct, {"work_s": 60.0, "steps": 6000})
        _wait(lambda: _status(db, slow)[1] == "processing")
        t0 = time.monotonic()
    finally:
        sup.stop(timeout_s=10.0)
    assert time.monotonic() - t0 < 5.0
    assert sup.pids() == []
    assert _status(db, slow) == ("queued", "queued", 0)
    db.dispose()


def _start_run_workers(tmp_path: Path) -> subprocess.Popen[bytes]:
    """``mocapd worker``'s entry point (`run_workers`, 2 workers, the probe processor) in its own process."""
    settings = _settings(tmp_path)
    new_database(settings.resolved_database_url).dispose()
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from mocapd.config import Settings
        from mocapd.worker.supervisor import WorkerOptions, run_workers
        s = Settings(data_dir=Path({str(tmp_path)!r}), database_url={settings.resolved_database_url!r},
                     storage_url={settings.resolved_storage_url!r}, lease_s=3.0, heartbeat_s=0.2)
        if __name__ == "__main__":
            run_workers(s, 2, options=WorkerOptions(processor={PROBE!r}))
        """
    )
    path = tmp_path / "run.py"
    path.write_text(script)
    return subprocess.Popen([sys.executable, str(path)], cwd=PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


def test_run_workers_stops_on_sigterm(tmp_path: Path) -> None:
    """``mocapd worker``'s entry point in its own process: starts its pool, exits 0 on SIGTERM."""
    proc = _start_run_workers(tmp_path)
    try:
        def children() -> list[int]:  # workers fork from the fork server, so they are grandchildren
            return [p for p in descendants(proc.pid) if _cmdline(p) == PROCESS_TITLE]

        _wait(lambda: len(children()) == 2, timeout_s=20.0)
        kids = children()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15.0) == 0
        _wait(lambda: not any(Path(f"/proc/{k}").exists() and _cmdline(k) == PROCESS_TITLE for k in kids), 5.0)
    finally:
        left = descendants(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_all(left)  # never leave a fork server or a worker behind a failed test


def test_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL in the middle of a job: the lease expires, the reaper returns the job, another worker
    completes it, and the hold is captured once."""
    settings = _settings(tmp_path)
    settings = Settings(**{**settings.__dict__, "lease_s": 1.0})
    db = new_database(settings.resolved_database_url)
    store = LocalStore(tmp_path / "objects")
    acct = seed_account(db, "a")
    jid = admit_job(db, store, acct, {"work_s": 1.5, "steps": 30})
    sup = Supervisor(settings, 1, options=WorkerOptions(processor=PROBE, idle_poll_s=0.05), crash_loop_s=0.0)
    try:
        sup.start()
        _wait(lambda: _status(db, jid)[1] == "processing")
        os.kill(sup.pids()[0], signal.SIGKILL)
        _wait(lambda: _status(db, jid)[0] == "completed", timeout_s=30.0)
    finally:
        sup.stop(timeout_s=10.0)
    from mocapd.db.models import LedgerEntry

    with db.read() as s:
        kinds = list(s.scalars(select(LedgerEntry.type).where(LedgerEntry.job_id == jid).order_by(LedgerEntry.id)))
    assert kinds == ["hold", "capture"]
    assert _status(db, jid)[2] == 2
    db.dispose()


def test_killing_the_supervisor_leaves_no_orphan_workers(tmp_path: Path) -> None:
    """SIGKILL on the supervising process: its fork server dies with it, and the workers follow."""
    proc = _start_run_workers(tmp_path)
    left: list[int] = []
    try:
        _wait(lambda: len([p for p in descendants(proc.pid) if _cmdline(p) == PROCESS_TITLE]) == 2, timeout_s=20.0)
        left = descendants(proc.pid)
        proc.kill()
        proc.wait()
        _wait(lambda: not any(Path(f"/proc/{k}").exists() and _cmdline(k) for k in left), 10.0)
    finally:
        kill_all(left)
