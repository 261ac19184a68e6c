"""Worker processes: N of them, restarted when they die, stopped gracefully on SIGTERM.

- `worker_main` is the body of one worker process: titled ``mocapd worker`` (setproctitle), a fresh
  worker id, its own database engine and object store, the claim loop until SIGTERM/SIGINT. On the first
  signal the current job is finished if it is already packaging, else handed back to the queue; a
  second signal exits at once (the lease expires and the reaper returns the job: SIGKILL loses nothing).
- `Supervisor` starts N such processes (``forkserver``: nothing inherited from the parent), restarts any
  that dies (with a growing delay if they keep dying young), and runs housekeeping (draft expiry,
  retention purge, reaper) every ``housekeeping_interval_s``.
- `supervise(settings, n_workers)` returns a started `Supervisor` (for ``mocapd serve``);
  `run_workers(settings, concurrency)` blocks until SIGTERM/SIGINT (for ``mocapd worker``).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from mocapd.config import Settings
from mocapd.logs import configure_logging, log_event
from mocapd.proc import die_with_parent, settle_heap

__all__ = ["PROCESS_TITLE", "Supervisor", "WorkerOptions", "run_workers", "supervise", "worker_main"]

log = logging.getLogger("mocapd.supervisor")

PROCESS_TITLE = "mocapd worker"


# Imported once by the fork server, so a (re)started worker is a cheap fork, not a fresh interpreter.
_PRELOAD = [
    "mocapd.worker.forkserver_guard",
    "mocapd.worker.supervisor",
    "mocapd.worker.loop",
    "mocapd.worker.runner",
    "mocapd.worker.processor",
    "mocapd.db.engine",
    "mocapd.storage",
]


@dataclass(frozen=True)
class WorkerOptions:
    processor: str | None = None  # "module:factory"; None: $MOCAPD_PROCESSOR, else the motion pipeline
    idle_poll_s: float = 0.2
    progress_interval_s: float = 0.5
    # Environment set in each worker process before the processor loads (workers fork from a server
    # started once, so later changes to the parent's environment do not reach them otherwise).
    environ: tuple[tuple[str, str], ...] = ()


def worker_main(settings: Settings, options: WorkerOptions) -> None:
    """One worker process: claim and run jobs until SIGTERM (SIGINT is left to the supervisor)."""
    from setproctitle import setproctitle

    setproctitle(PROCESS_TITLE)
    die_with_parent()  # the fork server dying (with a killed supervisor) stops this worker: SIGTERM hands back
    os.environ.update(dict(options.environ))
    configure_logging()  # a forked worker inherits the fork server's logging, which nobody configured
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(128 + signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the supervisor decides

    from mocapd.db.engine import Database
    from mocapd.storage import open_store
    from mocapd.worker.loop import Worker
    from mocapd.worker.processor import load_processor
    from mocapd.worker.runner import StageRunner

    db = Database(settings.resolved_database_url, pool_size=2)
    try:
        runner = StageRunner(
            db,
            open_store(settings),
            load_processor(options.processor),
            lease_s=settings.lease_s,
            retry_backoff_s=settings.retry_backoff_s,
            job_timeout_s=settings.job_timeout_s,
            progress_interval_s=options.progress_interval_s,
            models_dir=settings.resolved_models_dir,
        )
        worker = Worker(
            db,
            runner,
            lease_s=settings.lease_s,
            heartbeat_s=settings.heartbeat_s,
            retry_backoff_s=settings.retry_backoff_s,
            idle_poll_s=options.idle_poll_s,
            stop=stop,
            hard_timeout_s=settings.job_timeout_s + max(30.0, 0.1 * settings.job_timeout_s),
            on_hard_timeout=lambda: os._exit(75),  # the main thread is stuck; the supervisor restarts us
        )
        log_event(log, "worker_start", worker=worker.worker_id, pid=os.getpid())
        settle_heap()
        worker.run()
    finally:
        db.dispose()


class Supervisor:
    """Keeps ``n_workers`` worker processes alive until `stop`."""

    def __init__(
        self,
        settings: Settings,
        n_workers: int | None = None,
        *,
        options: WorkerOptions | None = None,
        housekeeping_interval_s: float = 60.0,
        check_interval_s: float = 0.1,
        crash_loop_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.n_workers = n_workers if n_workers is not None else (os.cpu_count() or 1)
        self.options = options or WorkerOptions()
        self.housekeeping_interval_s = housekeeping_interval_s
        self.check_interval_s = check_interval_s
        self.crash_loop_s = crash_loop_s  # a worker dying younger than this is restarted after a growing delay
        self.restarts = 0
        self._ctx = _worker_context()
        self._procs: list[multiprocessing.process.BaseProcess | None] = [None] * self.n_workers
        self._started_s = [0.0] * self.n_workers
        self._quick_deaths = [0] * self.n_workers
        self._not_before_s = [0.0] * self.n_workers
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Supervisor:
        with self._lock:
            for i in range(self.n_workers):
                self._spawn(i)
        self._monitor = threading.Thread(target=self._watch, name="mocapd-supervisor", daemon=True)
        self._monitor.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every worker (each finishes or hands back its job), SIGKILL those still alive after
        ``timeout_s``."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join()
        with self._lock:
            procs = [p for p in self._procs if p is not None]
        for p in procs:
            p.terminate()  # SIGTERM; a worker that has just died (a crash, a kill) is not an error
        deadline = time.monotonic() + timeout_s
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._procs if p is not None and p.is_alive() and p.pid is not None]

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------------
    def _spawn(self, i: int) -> None:
        p = self._ctx.Process(
            target=worker_main, args=(self.settings, self.options), name=f"mocapd-worker-{i}", daemon=False
        )
        p.start()
        self._procs[i] = p
        self._started_s[i] = time.monotonic()

    def _watch(self) -> None:
        next_housekeeping_s = time.monotonic() + self.housekeeping_interval_s
        while not self._stopping.wait(self.check_interval_s):
            now_s = time.monotonic()
            with self._lock:
                for i, p in enumerate(self._procs):
                    if p is not None and p.is_alive():
                        continue
                    if p is not None:
                        p.join(0)
                        young = now_s - self._started_s[i] < self.crash_loop_s
                        self._quick_deaths[i] = self._quick_deaths[i] + 1 if young else 0
                        delay = min(30.0, 0.25 * 2 ** (self._quick_deaths[i] - 1)) if young else 0.0
                        self._not_before_s[i] = now_s + delay
                        log_event(log, "worker_exit", level=logging.WARNING, pid=p.pid, exitcode=p.exitcode,
                                  restart_in_s=round(delay, 2))
                        self._procs[i] = None
                    if now_s >= self._not_before_s[i] and not self._stopping.is_set():
                        self._spawn(i)
                        self.restarts += 1
            if now_s >= next_housekeeping_s:
                next_housekeeping_s = now_s + self.housekeeping_interval_s
                self._housekeeping()

    def _housekeeping(self) -> None:
        from mocapd.db.engine import Database
        from mocapd.storage import open_store
        from mocapd.worker.housekeeping import run_housekeeping

        db = Database(self.settings.resolved_database_url, pool_size=1)
        try:
            report = run_housekeeping(db, open_store(self.settings), self.settings)
            if report.reaped or report.drafts_expired or report.purged:
                log_event(log, "housekeeping", reaped=report.reaped, drafts_expired=len(report.drafts_expired),
                          purged=len(report.purged))
        except Exception:
            log_event(log, "housekeeping_failed", level=logging.ERROR, exc_info=True)
        finally:
            db.dispose()


def _worker_context() -> multiprocessing.context.ForkServerContext:
    """``forkserver``: workers fork from a clean single-threaded server that preloaded the worker modules
    (no threads, locks or connections inherited from the parent, and a restart costs milliseconds)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def supervise(settings: Settings, n_workers: int | None = None, *, options: WorkerOptions | None = None) -> Supervisor:
    """Start ``n_workers`` supervised worker processes (default: one per core); call ``.stop()`` to end."""
    return Supervisor(settings, n_workers, options=options).start()


def run_workers(settings: Settings, concurrency: int | None = None, *, options: WorkerOptions | None = None) -> None:
    """Run ``concurrency`` worker processes (default: one per core) until SIGTERM or SIGINT; blocking."""
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    sup = Supervisor(settings, concurrency, options=options).start()
    try:
        while not done.wait(0.5):
            pass
    finally:
        sup.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
