"""Engines and sessions. SQLite runs in WAL mode with a busy timeout and foreign keys on."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "is_sqlite"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    cur.close()


class Database:
    """One engine plus a session factory. ``write()`` opens a transaction that takes the write lock at
    once on SQLite (BEGIN IMMEDIATE), so read-check-write sequences never hit a lock upgrade deadlock."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = self._sqlite_engine(url, "BEGIN")
            self.write_engine = self._sqlite_engine(url, "BEGIN IMMEDIATE")
        else:
            self.engine = create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)
            self.write_engine = self.engine
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._gate_lock = threading.Lock()
        self._gate_fd: int | None = None
        self._gate_pid = 0
        self._local = threading.local()
        self._write_sessions = sessionmaker(self.write_engine, expire_on_commit=False)

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
        """A transaction committed on success, rolled back on error; the write lock is taken up front.

        On a SQLite file every writer of every process first queues on an exclusive ``flock`` of
        ``<db>.write-lock``, then says ``BEGIN IMMEDIATE``. SQLite's own busy handler makes a blocked
        writer poll with growing sleeps (up to 100 ms), so under many workers an unlucky writer waits
        long after the lock is free; the kernel instead wakes the next ``flock`` waiter at once, and
        drops the lock of a process that dies."""
        with self._write_gate(), self._write_sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def _write_gate(self) -> Iterator[None]:
        if not self.sqlite:
            yield
            return
        path = self.url.split("///", 1)[-1]
        if not path or path == ":memory:":
            yield
            return
        depth = getattr(self._local, "depth", 0)
        if depth:  # a nested write in the same thread already holds the gate
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth = depth
            return
        if self._gate_fd is None or self._gate_pid != os.getpid():  # a forked child opens its own
            self._gate_fd = os.open(path + ".write-lock", os.O_RDWR | os.O_CREAT, 0o644)
            self._gate_pid = os.getpid()
        with self._gate_lock:  # flock excludes processes; the threads of one process share the fd
            fcntl.flock(self._gate_fd, fcntl.LOCK_EX)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                fcntl.flock(self._gate_fd, fcntl.LOCK_UN)

    def dispose(self) -> None:
        self.engine.dispose()
        self.write_engine.dispose()
        if self._gate_fd is not None and self._gate_pid == os.getpid():
            os.close(self._gate_fd)
            self._gate_fd = None
