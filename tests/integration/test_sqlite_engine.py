"""The SQLite engine's habits on a real file: WAL checkpoints in the background (never inside a
writer's commit), and the write gate (one writer at a time across processes, re-entrant in a thread)."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from sqlalchemy import text

from mocapd.db.engine import Database, FlockGate


def test_commits_never_checkpoint_and_the_background_thread_does(tmp_path: Path) -> None:
    file = tmp_path / "db.sqlite3"
    db = Database(f"sqlite:///{file}")
    try:
        with db.write() as s:
            s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)"))
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        db._checkpointer.stop()  # type: ignore[union-attr]  # no background checkpoints for now
        for k in range(500):  # about 1000 pages: SQLite's own rule would checkpoint at 1000
            with db.write() as s:
                s.execute(text("INSERT INTO t (body) VALUES (:b)"), {"b": "x" * 3000 + str(k)})
        # the rows are only in the WAL: no commit copied them into the database file
        assert (tmp_path / "db.sqlite3-wal").stat().st_size > 1_500_000
        assert file.stat().st_size < 100_000
        with db.write() as s:  # the first write after stop() starts a new background thread
            s.execute(text("INSERT INTO t (body) VALUES ('last')"))
        deadline = time.monotonic() + 10.0
        while file.stat().st_size < 1_500_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert file.stat().st_size >= 1_500_000  # checkpointed in the background
        with db.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 501
    finally:
        db.dispose()


def _hold_gate(path: str, started: mp.Event, release: mp.Event) -> None:  # type: ignore[type-arg]
    gate = FlockGate(path)
    with gate.hold():
        started.set()
        release.wait(10)


def test_the_gate_excludes_other_processes_and_is_reentrant_in_a_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "gate.lock")
    ctx = mp.get_context("spawn")
    started, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_gate, args=(path, started, release))
    other.start()
    try:
        assert started.wait(30)
        gate = FlockGate(path)
        waited = []

        def take() -> None:
            t0 = time.monotonic()
            with gate.hold(), gate.hold():  # nested in one thread: no self-deadlock
                waited.append(time.monotonic() - t0)

        import threading

        taker = threading.Thread(target=take)
        taker.start()
        time.sleep(0.5)
        assert not waited  # still blocked by the other process
        release.set()
        taker.join(10)
        assert waited and waited[0] >= 0.4
        gate.close()
    finally:
        release.set()
        other.join(10)
