"""The claim loop of one worker process, and the heartbeat thread that keeps its lease alive.

Loop: reap expired leases every ``reap_interval_s`` (any worker may; the reaper is safe to run
concurrently), claim the next job, run it with a heartbeat thread beside it, repeat; when the queue
is empty, sleep ``idle_poll_s`` (with jitter, so workers do not poll in lock-step).

Heartbeat: every ``heartbeat_s`` (well inside ``lease_s``: at most a third of it) the lease is
extended. A heartbeat that finds the lease gone (reaped, canceled, finished elsewhere) marks the
attempt lost; failing heartbeats (database unreachable) are retried until 80 % of the lease has
passed since the last good one, then the attempt stops itself before anyone else can claim the job.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mocapd.db import queue
from mocapd.db.engine import Database
from mocapd.db.queue import ClaimedJob
from mocapd.logs import log_event
from mocapd.worker.runner import LeaseState, Outcome, StageRunner

__all__ = ["Heartbeat", "Worker", "WorkerStats", "new_worker_id"]

log = logging.getLogger("mocapd.worker")


def new_worker_id() -> str:
    """Unique per process start: host, pid and a random suffix (a restarted pid never reuses an id)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class Heartbeat(threading.Thread):
    """Extends one job's lease every ``interval_s`` until stopped or the lease is lost.

    Hard timeout: a processor stuck where it never reports progress (so the runner's own timeout
    check never runs) is failed from here with ``runner_timeout`` once ``hard_timeout_s`` has passed,
    and ``on_hard_timeout`` is called (a worker process exits there, since its main thread is stuck).
    """

    def __init__(
        self,
        db: Database,
        job: ClaimedJob,
        lease: LeaseState,
        *,
        lease_s: float,
        interval_s: float,
        hard_timeout_s: float | None = None,
        on_hard_timeout: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"heartbeat-{job.id}", daemon=True)
        if interval_s > lease_s / 3:
            raise ValueError(f"heartbeat every {interval_s} s is not well inside a {lease_s} s lease (max lease/3)")
        self.db = db
        self.job = job
        self.lease = lease
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.hard_timeout_s = hard_timeout_s
        self.on_hard_timeout = on_hard_timeout
        self._started_s = time.monotonic()
        self._stop_event = threading.Event()

    def _hard_timeout(self) -> None:
        log_event(log, "hard_timeout", level=logging.ERROR, job=self.job.id, attempt=self.job.attempt,
                  after_s=self.hard_timeout_s, code="runner_timeout")
        queue.fail(
            self.db,
            self.job.id,
            self.job.lease_token,
            code="runner_timeout",
            message=f"The job ran longer than {self.hard_timeout_s:g} s.",
            stage=None,
        )
        self.lease.mark_lost()
        if self.on_hard_timeout is not None:
            self.on_hard_timeout()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            if self.hard_timeout_s is not None and time.monotonic() - self._started_s > self.hard_timeout_s:
                try:
                    self._hard_timeout()
                except Exception as exc:  # the database is down too: the lease will lapse on its own
                    log_event(log, "hard_timeout_unrecorded", level=logging.ERROR, job=self.job.id,
                              error=f"{type(exc).__name__}: {exc}")
                    self.lease.mark_lost()
                return
            try:
                beat = queue.heartbeat(self.db, self.job.id, self.job.lease_token, self.lease_s)
            except Exception as exc:  # the database is unreachable: keep trying until the lease runs short
                log_event(log, "heartbeat_failed", level=logging.WARNING, job=self.job.id,
                          error=f"{type(exc).__name__}: {exc}")
                if time.monotonic() - self.lease.last_ok_s > 0.8 * self.lease_s:
                    self.lease.mark_lost()
                    return
                continue
            if not beat.alive:
                log_event(log, "lease_lost", level=logging.WARNING, job=self.job.id, attempt=self.job.attempt)
                self.lease.mark_lost()
                return
            self.lease.beat_ok()
            if beat.cancel_requested:
                self.lease.mark_canceled()


@dataclass
class WorkerStats:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    reaped: int = 0


class Worker:
    """One worker: claims and runs jobs one at a time until ``stop`` is set."""

    def __init__(
        self,
        db: Database,
        runner: StageRunner,
        *,
        lease_s: float,
        heartbeat_s: float,
        retry_backoff_s: float,
        worker_id: str | None = None,
        idle_poll_s: float = 0.2,
        reap_interval_s: float | None = None,
        stop: threading.Event | None = None,
        on_outcome: Callable[[ClaimedJob, Outcome], None] | None = None,
        hard_timeout_s: float | None = None,
        on_hard_timeout: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.runner = runner
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.retry_backoff_s = retry_backoff_s
        self.worker_id = worker_id or new_worker_id()
        self.idle_poll_s = idle_poll_s
        self.reap_interval_s = reap_interval_s if reap_interval_s is not None else max(0.2, lease_s / 2)
        self.stop = stop or threading.Event()
        self.on_outcome = on_outcome
        self.hard_timeout_s = hard_timeout_s
        self.on_hard_timeout = on_hard_timeout
        self.stats = WorkerStats()
        self._next_reap_s = 0.0
        self._rng = random.Random()

    def maybe_reap(self) -> None:
        now_s = time.monotonic()
        if now_s < self._next_reap_s:
            return
        self._next_reap_s = now_s + self.reap_interval_s * self._rng.uniform(0.75, 1.25)
        report = queue.reap(self.db, base_backoff_s=self.retry_backoff_s)
        self.stats.reaped += report.total
        if report.total:
            log_event(log, "reap", worker=self.worker_id, returned=report.total)

    def run_once(self) -> Outcome | None:
        """Claim and run one job; None if nothing was runnable."""
        job = queue.claim(self.db, self.worker_id, self.lease_s)
        if job is None:
            return None
        self.stats.claimed += 1
        started_s = time.monotonic()
        log_event(log, "claim", job=job.id, attempt=job.attempt, worker=self.worker_id)
        lease = LeaseState(self.stop)
        beat = Heartbeat(
            self.db,
            job,
            lease,
            lease_s=self.lease_s,
            interval_s=self.heartbeat_s,
            hard_timeout_s=self.hard_timeout_s,
            on_hard_timeout=self.on_hard_timeout,
        )
        beat.start()
        try:
            outcome = self.runner.run(job, lease)
        finally:
            beat.stop()
            beat.join()
        self.stats.outcomes[outcome.value] = self.stats.outcomes.get(outcome.value, 0) + 1
        log_event(log, "finish", job=job.id, attempt=job.attempt, outcome=outcome.value,
                  seconds=round(time.monotonic() - started_s, 2), worker=self.worker_id)
        if self.on_outcome is not None:
            self.on_outcome(job, outcome)
        return outcome

    def run(self, max_jobs: int | None = None) -> WorkerStats:
        """Loop until ``stop`` is set (or ``max_jobs`` were claimed). Database outages are waited out."""
        failures = 0
        while not self.stop.is_set():
            if max_jobs is not None and self.stats.claimed >= max_jobs:
                break
            try:
                self.maybe_reap()
                outcome = self.run_once()
                failures = 0
            except Exception:  # database unreachable or a bug: back off, never spin
                failures += 1
                delay = min(10.0, 0.2 * 2**failures)
                log_event(log, "worker_error", level=logging.ERROR, exc_info=True, worker=self.worker_id,
                          retry_in_s=round(delay, 1))
                self.stop.wait(delay)
                continue
            if outcome is None:
                self.stop.wait(self.idle_poll_s * self._rng.uniform(0.5, 1.5))
        return self.stats
