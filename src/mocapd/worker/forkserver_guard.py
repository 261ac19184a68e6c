"""Imported only by the workers' fork server (first in `supervisor._PRELOAD`).

The fork server is started by the supervisor and forks every worker. If the supervisor is killed
(SIGKILL, OOM), nothing else stops the fork server, and its workers would run on unsupervised. On
Linux this asks the kernel to kill the fork server with its parent; each worker in turn gets SIGTERM
when the fork server dies (`mocapd.proc.die_with_parent`) and hands its job back.
"""

from __future__ import annotations

import signal
import sys

from mocapd.proc import die_with_parent


def _guard() -> None:
    if sys.argv and sys.argv[0] == "-c":  # only the fork server runs as `python -c ...`
        die_with_parent(signal.SIGKILL)  # it holds no job: nothing to hand back


_guard()
