"""What `mocapd worker` logs: one key=value line per claim, stage, retry and finish, each with the job id,
at the level MOCAPD_LOG_LEVEL sets (the command configures logging in every worker process)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mocapd.db.engine import Database
from mocapd.db.models import Job
from mocapd.storage import LocalStore
from tests.conftest import PROJECT_ROOT
from tests.integration.queue.support import admit_job, new_database, seed_account, sqlite_url
from tests.support.procs import descendants, kill_all

pytestmark = pytest.mark.timeout(90)
PROBE = "tests.integration.queue.probe_processor:factory"
LINE = re.compile(r'^ts=\S+ level=(\w+) logger=(\S+)((?: \w+=(?:"(?:[^"\\]|\\.)*"|\S+))*)$')


def _fields(line: str) -> dict[str, str]:
    m = LINE.match(line)
    assert m, f"not one key=value record: {line!r}"
    out = {"level": m.group(1), "logger": m.group(2)}
    out.update({k: json.loads(v) if v.startswith('"') else v
                for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', m.group(3))})
    return out


def _status(db: Database, job_id: str) -> str:
    with db.read() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job.status


def _run_worker(tmp_path: Path, db: Database, job_id: str, level: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCAPD_")}
    env.update({"PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]),
                "MOCAPD_DATA_DIR": str(tmp_path), "MOCAPD_PROCESSOR": PROBE, "MOCAPD_LOG_LEVEL": level,
                "MOCAPD_RETRY_BACKOFF_SECONDS": "0.05", "MOCAPD_LEASE_SECONDS": "6", "MOCAPD_HEARTBEAT_SECONDS": "0.5"})
    proc = subprocess.Popen([sys.executable, "-m", "mocapd", "worker", "--concurrency", "1"], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _status(db, job_id) != "completed":
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the job did not complete"
            time.sleep(0.1)
        time.sleep(0.3)  # the finish line is written just after the row
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        left = descendants(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        kill_all(left)
    assert proc.returncode == 0, err
    return err.splitlines()


def test_the_worker_logs_claim_stage_retry_and_finish_with_the_job_id(tmp_path: Path) -> None:
    db = new_database(sqlite_url(tmp_path))
    try:
        acct = seed_account(db, "logs")
        job_id = admit_job(db, LocalStore(tmp_path / "objects"), acct, {"fault": "system_once", "steps": 4})
        lines = _run_worker(tmp_path, db, job_id, "info")
    finally:
        db.dispose()
    records = [_fields(line) for line in lines if line.strip()]  # every line is one record: no tracebacks
    mine = [r for r in records if r.get("job") == job_id]
    events = [(r["event"], r.get("attempt")) for r in mine]
    assert events[0] == ("claim", "1")
    assert ("stage", "1") in events and ("retry", "1") in events
    assert ("claim", "2") in events and ("finish", "2") in events
    stages = [r["stage"] for r in mine if r["event"] == "stage" and r["attempt"] == "2"]
    assert stages == ["preflight", "processing", "packaging"]
    retry = next(r for r in mine if r["event"] == "retry")
    assert retry["level"] == "warning" and retry["stage"] == "processing" and retry["code"] == "processing_failed"
    assert retry["error"] == "RuntimeError: simulated crash in the solver"
    assert retry["traceback"].startswith("Traceback (most recent call last)") and "probe_processor.py" in retry["traceback"]
    finish = [r for r in mine if r["event"] == "finish"]
    assert [(r["attempt"], r["outcome"]) for r in finish] == [("1", "requeued"), ("2", "completed")]
    assert all(r["worker"] for r in mine if r["event"] in ("claim", "finish"))
    assert any(r["event"] == "worker_start" for r in records)


def test_warning_level_keeps_the_routine_lines_out(tmp_path: Path) -> None:
    db = new_database(sqlite_url(tmp_path))
    try:
        acct = seed_account(db, "quiet")
        job_id = admit_job(db, LocalStore(tmp_path / "objects"), acct, {"fault": "system_once", "steps": 4})
        lines = _run_worker(tmp_path, db, job_id, "warning")
    finally:
        db.dispose()
    events = [_fields(line).get("event") for line in lines if line.strip()]
    assert "retry" in events and "claim" not in events and "finish" not in events


def test_an_unknown_log_level_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCAPD_")}
    env.update({"PYTHONPATH": str(PROJECT_ROOT / "src"), "MOCAPD_DATA_DIR": str(tmp_path), "MOCAPD_LOG_LEVEL": "loud"})
    out = subprocess.run([sys.executable, "-m", "mocapd", "db", "upgrade"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: MOCAPD_LOG_LEVEL='loud' is not a log level: use one of debug, info, warning, error, critical"]
