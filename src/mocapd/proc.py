"""Process hygiene shared by the service's child processes."""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading

__all__ = ["die_with_parent", "lower_thread_priority", "settle_heap"]


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: ask the kernel to send ``sig`` to this process when its parent dies, so a SIGKILLed
    `mocapd serve` or `mocapd worker` never leaves orphan API or worker processes behind. Elsewhere a
    no-op.

    A child started by `multiprocessing` (API processes, workers) whose parent died before it got here
    was already handed to another parent, so the kernel will never signal it: it checks its parent
    once the request is in place and signals itself. (For a worker that parent is the supervisor,
    which is also what the fork server it is forked from follows.)"""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        os.kill(os.getpid(), sig)


def settle_heap() -> None:
    """Call once a long-lived process has imported and connected: collect, then move every object
    alive now out of the collector's reach (``gc.freeze``). Later collections then only walk what
    the process allocates while it works; without this a full collection in a worker walks every
    imported module (SQLAlchemy, NumPy, MediaPipe) and took 40-150 ms here, which is a stall for
    every other worker when it lands while this one holds the SQLite write lock."""
    gc.collect()
    gc.freeze()


def lower_thread_priority(nice: int) -> None:
    """Give the calling thread, and the threads it starts from now on (FFmpeg's), a lower CPU priority.

    Linux keeps a nice value per thread and new threads inherit it; elsewhere this does nothing (the
    same call would lower the whole process).
    """
    if nice > 0 and sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
        except OSError:  # pragma: no cover - not allowed here: run at the normal priority
            pass
