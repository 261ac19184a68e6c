"""Probing uploads at complete-upload, outside the API process and a bounded number at a time.

The probe (`mocapd.media.probe`) decodes a frame, and FFmpeg may decode several while opening a
file; a frame within the limit can still be 100 MB. Run in the API process, 16 concurrent
complete-uploads of large-frame files took it to 2.7 GB, and the allocator kept that memory after the
probes finished. So each probe runs in a child process (``python -m mocapd.media.probe``) whose
memory goes back to the system when it exits and whose address space is capped
(``PROBE_MEMORY_MB``); a decoder crash on a hostile file kills the child, not the API. At most
``slots`` children run at once per API process; a request waits up to ``wait_s`` for a slot, then gets
``validation_busy`` (503, retryable: the job stays a draft and complete-upload can be called again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import mocapd
from mocapd.domain.codes import is_error_code
from mocapd.errors import InputFault, MocapdError

__all__ = ["PROBE_MEMORY_MB", "PROBE_TIMEOUT_S", "ProbeGate"]

# Address-space cap of one probe child: the interpreter and PyAV map about 1.1 GB of address space
# before decoding anything; the largest admitted frame (8192x8192) and the frames FFmpeg decodes while
# opening an H.264 file fit in the rest.
PROBE_MEMORY_MB = 3072
PROBE_TIMEOUT_S = 60.0
_CRASHES = {signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL}


class ProbeGate:
    """Runs probes in child processes, at most ``slots`` at once."""

    def __init__(self, slots: int = 2, wait_s: float = 30.0) -> None:
        if slots < 1:
            raise ValueError("at least one probe slot is needed")
        self.slots = slots
        self.wait_s = wait_s
        self._free = threading.BoundedSemaphore(slots)

    def probe(self, path: Path) -> dict[str, Any]:
        """The wire facts of the video at ``path``; `InputFault` for a bad file, `MocapdError`
        ``validation_busy`` when no slot freed up in time."""
        if not self._free.acquire(timeout=self.wait_s):
            raise MocapdError(
                "validation_busy",
                "The service is checking other uploads; call complete-upload again shortly.",
                stage="validation",
                headers={"Retry-After": "2"},
            )
        try:
            return _run_child(Path(path))
        finally:
            self._free.release()


def _run_child(path: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "mocapd.media.probe", "--max-memory-mb", str(PROBE_MEMORY_MB), str(path.resolve())]
    # The child imports this very mocapd (not one its working directory or another path would shadow).
    package_root = str(Path(mocapd.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    try:
        done = subprocess.run(
            cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False, env=env, cwd="/", stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:  # run() killed the child
        raise InputFault(
            "source_unsupported", f"The video could not be read within {PROBE_TIMEOUT_S:g} s.", stage="validation"
        ) from exc
    if done.returncode != 0:
        # A decoder that crashed on the file, or ran out of its capped memory: the file's fault. Anything
        # else (SIGTERM at shutdown, a failed start) is ours, and complete-upload can be called again.
        if -done.returncode in _CRASHES or b"MemoryError" in done.stderr:
            raise InputFault("source_unsupported", "The video cannot be decoded.", stage="validation")
        raise RuntimeError(f"the probe process failed ({done.returncode}): {done.stderr[-2000:].decode(errors='replace')}")
    try:
        out = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise RuntimeError(f"the probe process printed no result: {done.stdout[-500:]!r}") from exc
    if "fault" in out:
        code = str(out["fault"]["code"])
        if not is_error_code(code):
            raise RuntimeError(f"the probe process answered an unknown error code {code!r}")
        raise InputFault(code, str(out["fault"]["message"]), stage="validation")
    facts: dict[str, Any] = out["facts"]
    return facts
