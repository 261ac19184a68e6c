"""The one narrow interface between the worker and the motion pipeline.

A `Processor` turns a local source video plus job settings into files in ``out_dir`` (each an
`ArtifactFile`: path, target id, content type, as the catalogue `mocapd.domain.targets` lists them)
and a manifest dict. It reports progress through ``on_progress(stage, fraction)`` (stage one of ``preflight``,
``processing``, ``packaging``; fraction 0..1 within that stage); ``on_progress`` raises to abort
(cancel, lost lease, shutdown), so a processor must let exceptions from it propagate.

It raises `mocapd.errors.InputFault` for bad input (fails the job at once) and anything else for a
system fault (retried with backoff).

The default processor calls `mocapd.worker.produce.produce`, imported lazily (it is heavy). Another
processor is plugged by import path: ``MOCAPD_PROCESSOR="package.module:factory"``, where ``factory()``
returns a `Processor`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mocapd.pipeline.settings import JobSettings

__all__ = [
    "PROCESSOR_ENV",
    "ArtifactFile",
    "PipelineProcessor",
    "ProcessRequest",
    "ProcessResult",
    "Processor",
    "ProgressFn",
    "load_processor",
]

PROCESSOR_ENV = "MOCAPD_PROCESSOR"

ProgressFn = Callable[[str, float], None]


@dataclass(frozen=True)
class ProcessRequest:
    job_id: str
    source_path: Path
    out_dir: Path
    settings: JobSettings
    source_facts: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    inputs_dir: Path | None = None  # the job's other inputs (an avatar target's prepared rig)
    source_type: str = "upload"  # "reexport": ``source_path`` is the parent's stored motion (motion.npz)


@dataclass(frozen=True)
class ArtifactFile:
    path: Path
    target_id: str | None  # None for a job-wide file (preview, quality report)
    content_type: str


@dataclass(frozen=True)
class ProcessResult:
    # Every artifact except manifest.json, which the runner writes. A bare path is described by the
    # catalogue from its name (`mocapd.domain.targets.describe_file`), for processors that write only
    # the catalogue's files.
    files: Sequence[ArtifactFile | Path]
    manifest: dict[str, Any]  # the pipeline's own manifest facts (camera choice, model, quality summary...)
    # Seconds of video processed (decoded timestamps of the admitted window); the job is charged for
    # these, never more than the hold. None: charge the hold.
    processed_s: float | None = None
    private: list[Path] = field(default_factory=list)  # the job's own files, kept but never served


class Processor(Protocol):
    def process(self, request: ProcessRequest, on_progress: ProgressFn) -> ProcessResult: ...


class PipelineProcessor:
    """The production processor: `mocapd.worker.produce.produce` on the source file."""

    def process(self, request: ProcessRequest, on_progress: ProgressFn) -> ProcessResult:
        from mocapd.worker.produce import produce, reexport  # heavy: mediapipe, mujoco, av

        if request.source_type == "reexport":
            return reexport(request.source_path, request.settings, request.out_dir, on_progress,
                            inputs_dir=request.inputs_dir)
        return produce(request.source_path, request.settings, request.out_dir, on_progress,
                       inputs_dir=request.inputs_dir)


def load_processor(spec: str | None = None) -> Processor:
    """``spec`` (or ``$MOCAPD_PROCESSOR``) as ``"module:factory"``; the pipeline processor if neither is set."""
    spec = spec or os.environ.get(PROCESSOR_ENV) or None
    if spec is None:
        return PipelineProcessor()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"processor must look like 'package.module:factory', got {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    processor = factory()
    if not callable(getattr(processor, "process", None)):
        raise TypeError(f"{spec} returned {type(processor).__name__}, which has no process(request, on_progress)")
    return processor  # type: ignore[no-any-return]
