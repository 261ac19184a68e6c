"""A fast, deterministic `Processor` for exercising the queue (plugged in with
``MOCAPD_PROCESSOR=tests.integration.queue.probe_processor:factory``).

The "video" is a small JSON document that says how the attempt behaves:
``work_s`` (total simulated work, default 0.02 s), ``steps`` (progress reports, default 4),
``fault``: ``"input"`` (no person, at preflight), ``"system_once"`` (a crash on the first attempt),
``"system_always"``, ``"hang_s"`` (work without reporting progress). It really reads the source and
writes real files whose bytes derive from the source's SHA-256, so reruns produce identical artifacts.

If ``MOCAPD_PROBE_LOG`` names a file, one JSON line per attempt start and per finished processing run
is appended to it (pid, job, attempt), which the chaos test uses to count executions.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from mocapd.errors import InputFault
from mocapd.worker.processor import ProcessRequest, ProcessResult, ProgressFn

LOG_ENV = "MOCAPD_PROBE_LOG"


def _log(kind: str, request: ProcessRequest) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "job": request.job_id, "attempt": request.attempt, "pid": os.getpid()}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class ProbeProcessor:
    def process(self, request: ProcessRequest, on_progress: ProgressFn) -> ProcessResult:
        raw = request.source_path.read_bytes()
        spec: dict[str, Any] = json.loads(raw)
        digest = hashlib.sha256(raw).hexdigest()
        _log("start", request)
        on_progress("preflight", 0.5)
        if spec.get("fault") == "input":
            raise InputFault("no_person_detected", "No person was found in the first frames.")
        steps = int(spec.get("steps", 4))
        work_s = float(spec.get("work_s", 0.02))
        if spec.get("hang_s"):
            time.sleep(float(spec["hang_s"]))
        for i in range(steps):
            time.sleep(work_s / max(1, steps))
            on_progress("processing", (i + 1) / steps)
            if i == steps // 2 and (
                spec.get("fault") == "system_always" or (spec.get("fault") == "system_once" and request.attempt == 1)
            ):
                raise RuntimeError("simulated crash in the solver")
        out: list[Path] = []
        for name in ("motion.bvh", "motion.fbx", "motion.glb", "quality.json"):
            p = request.out_dir / name
            p.write_bytes(f"{name} {digest} {request.settings.export_fps}\n".encode())
            out.append(p)
        if "unitree_g1" in request.settings.target_ids:
            for name in ("g1_motion.json", "g1_motion.csv"):
                p = request.out_dir / name
                p.write_bytes(f"{name} {digest}\n".encode())
                out.append(p)
        _log("done", request)
        return ProcessResult(
            files=out,
            manifest={"camera": {"focalLengthPx": 1000.0, "chosenBy": "probe"}, "processor": "probe"},
        )


def factory() -> ProbeProcessor:
    return ProbeProcessor()
