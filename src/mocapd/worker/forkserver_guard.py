"""Imported only by the workers' fork server (first in `supervisor._PRELOAD`).

The fork server is started by the supervisor and forks every worker. If the supervisor is killed
(SIGKILL, OOM), nothing else stops the fork server, and its workers would run on unsupervised. On
Linux this asks the kernel to kill the fork server with its parent; each worker in turn gets SIGTERM
when the fork server dies (`supervisor._die_with_parent`) and hands its job back.
"""

from __future__ import annotations

import signal
import sys


def _guard() -> None:
    if not sys.argv or sys.argv[0] != "-c":  # only the fork server runs as `python -c ...`
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


_guard()
