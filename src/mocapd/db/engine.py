"""Engines and sessions. SQLite runs in WAL mode with a busy timeout and foreign keys on.

SQLite has one writer at a time, so on a SQLite file two habits keep the writers' tail short:

* every writer of every process queues on an exclusive ``flock`` (`FlockGate`) before ``BEGIN
  IMMEDIATE``: the kernel wakes the next waiter at once, where SQLite's busy handler polls with
  growing sleeps (up to 100 ms), and a process that dies drops its lock;
* checkpoints run in a background thread (``PRAGMA wal_checkpoint(PASSIVE)`` about once a second
  after this process wrote), never inside a commit: SQLite's automatic checkpoint would copy the WAL
  into the database and fsync it (10-50 ms here) inside the commit of whichever writer crossed
  1000 pages, while it holds the write lock and every other writer waits.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "FlockGate", "is_sqlite"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_INTERVAL_S = 1.0
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024  # the WAL file is cut back to this after a checkpoint resets it


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy not issue BEGIN itself, so we can say BEGIN IMMEDIATE where it matters.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA wal_autocheckpoint=0")  # `_Checkpointer` does it, outside the write lock
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    cur.close()


class FlockGate:
    """An exclusive ``flock`` on a file, shared by the threads of a process (they take turns on a
    thread lock) and re-entrant within a thread. A forked child opens the file again (flocks belong
    to the open file, which a fork shares)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    @contextmanager
    def hold(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        if depth:  # a nested use in the same thread already holds the gate
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


class _Checkpointer:
    """A daemon thread that runs a passive WAL checkpoint about once a second while this process
    writes (passive: it never waits for, nor blocks, readers and writers; several processes doing it
    at once just find the work done). Started on the first write; a forked child starts its own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pid = 0
        self._wrote = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._wrote, self._stop = threading.Event(), threading.Event()
            self._thread = threading.Thread(target=self._run, name="mocapd-wal-checkpoint", daemon=True)
            self._thread.start()
        self._wrote.set()

    def _run(self) -> None:
        wrote, stop = self._wrote, self._stop
        while not stop.is_set():
            wrote.wait(timeout=CHECKPOINT_INTERVAL_S)
            if stop.wait(CHECKPOINT_INTERVAL_S):  # at most one checkpoint a second
                return
            if wrote.is_set():
                wrote.clear()
                self.checkpoint()

    def checkpoint(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").close()
        except Exception:  # noqa: BLE001 - a missed checkpoint is retried on the next round
            pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout=5.0)
        self._thread = None
        self._pid = 0


class Database:
    """One engine plus a session factory. ``write()`` opens a transaction that takes the write lock at
    once on SQLite (BEGIN IMMEDIATE), so read-check-write sequences never hit a lock upgrade deadlock."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        file = self._sqlite_file()
        if file:
            Path(file).parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("sqlite"):
            self.engine = self._sqlite_engine(url, "BEGIN")
            self.write_engine = self._sqlite_engine(url, "BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)
            self.write_engine = self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)
        self._write_gate = FlockGate(file + ".write-lock") if file else None
        self._checkpointer = _Checkpointer(self.engine) if file else None

    def _sqlite_file(self) -> str | None:
        if not self.url.startswith("sqlite"):
            return None
        path = self.url.split("///", 1)[-1]
        return path if path and path != ":memory:" else None

    @staticmethod
    def _sqlite_engine(url: str, begin: str) -> Engine:
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as s:
            yield s

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A bare connection for Core reads (no ORM session): the cheapest way to read."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction committed on success, rolled back on error; the write lock is taken up front
        (on a SQLite file, after the process-wide write gate: see the module doc)."""
        gate = self._write_gate.hold() if self._write_gate is not None else nullcontext()
        with gate, self._write_sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    @contextmanager
    def write_connect(self) -> Iterator[Connection]:
        """`write` on a bare connection, for Core statements: no ORM session to build and tear down
        (the request budget's one UPDATE on every API call)."""
        gate = self._write_gate.hold() if self._write_gate is not None else nullcontext()
        with gate, self.write_engine.begin() as conn:
            yield conn
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        self.write_engine.dispose()
        if self._write_gate is not None:
            self._write_gate.close()
