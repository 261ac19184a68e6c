"""Processes and servers in tests: descendants of a process, whether one is alive, waiting for a
server to answer, and cleaning up whatever a test started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

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


MOCAPD = [sys.executable, "-m", "mocapd"]


def free_port() -> int:
    """A TCP port nothing listens on at the moment (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after 30 s; close the pipes the test opened."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@contextlib.contextmanager
def dev_serve(
    data: Path, *, workers: int, env: dict[str, str] | None = None, stderr: IO[str] | None = None
) -> Iterator[tuple[str, str]]:
    """`mocapd serve` on a fresh data directory and a free port, until the block ends: yields its base URL
    and the development API key it prints on first start. Its output goes to ``stderr`` (or the
    test's output) once the key is read."""
    port = free_port()
    full_env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        [*MOCAPD, "serve", "--data-dir", str(data), "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=stderr if stderr is not None else subprocess.STDOUT, text=True, env=full_env,
    )  # fmt: skip
    try:
        key = None
        assert proc.stdout is not None
        deadline = time.time() + 60
        while time.time() < deadline and key is None:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("sk_live_"):
                key = line.strip()
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base + "/readyz")
        assert key, "serve printed no development API key"
        yield base, key
    finally:
        stop(proc)
