"""Processes and servers in tests: descendants of a process, whether one is alive, waiting for a
server to answer, and cleaning up whatever a test started."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import httpx


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, grandchildren...), from /proc."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parents.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def started_at(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), or None if it is gone: with ``pid`` it names
    one process for good, where a pid alone is soon reused on a busy machine (pid_max is 32768 here,
    and every thread of every process takes a number from the same space)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(pid: int, started: int | None = None) -> bool:
    """Running (not gone, not a zombie); with ``started`` (from `started_at`), still the same process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if started is not None and int(fields[19]) != started:
        return False  # the pid now names another process
    return fields[0] != "Z"


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_http_ok(url: str, timeout_s: float = 60.0) -> None:
    """Poll ``url`` until it answers 200 (a server starting up); fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {timeout_s:.0f} s")
