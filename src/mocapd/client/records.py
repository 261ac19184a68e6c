"""Resume records: one JSON file per job under the state directory, replaced atomically.

A record is written *before* the create request (with the ``Idempotency-Key`` the create will use) and
rewritten after every step that the client must not repeat or lose: the create response, the confirmed
upload, the admission, the next poll time, the terminal status and each verified artifact. A crash at any
moment leaves either the old or the new record on disk (temp file + fsync + ``os.replace``), never a torn
one, and the record always says what is safe to do next.

Stages (``last good stage``), in order:

| stage | known | next step |
|---|---|---|
| ``creating`` | request, key, source digest | create (replayed by the key: never a second job) |
| ``uploading`` | job id, upload URL (and tus URLs) | PUT the whole file (a repeated PUT replaces the bytes); a large file goes by tus: HEAD the upload for the server's offset, PATCH the rest |
| ``uploaded`` | server's size and SHA-256 match ours | complete-upload (idempotent) |
| ``admitted`` | the job is queued | poll |
| ``finished`` | terminal status (and error) | download and verify artifacts (if completed) |
| ``done`` | every artifact verified, or failure reported | nothing |
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mocapd.client.errors import RecordError

__all__ = ["RECORD_VERSION", "ArtifactState", "RecordStage", "RecordStore", "ResumeRecord", "default_state_dir"]

RECORD_VERSION = 1


class RecordStage(StrEnum):
    CREATING = "creating"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    ADMITTED = "admitted"
    FINISHED = "finished"
    DONE = "done"


@dataclass
class ArtifactState:
    name: str
    bytes: int | None = None
    sha256: str | None = None  # expected digest (from /result or the manifest), lower-case hex
    path: str | None = None  # where the verified file is
    downloaded: bool = False
    verified: bool = False


@dataclass
class ResumeRecord:
    record_id: str
    base_url: str
    idempotency_key: str
    request: dict[str, Any]  # the exact create body (the key's fingerprint covers it)
    source_path: str
    source_bytes: int
    source_sha256: str
    out_dir: str  # "" until the job id is known when no folder was given: then <work_dir>/<job id>
    work_dir: str = ""  # the directory the command ran in
    stage: RecordStage = RecordStage.CREATING
    job_id: str | None = None
    upload_url: str | None = None
    upload_url_expires_at: str | None = None
    tus_url: str | None = None  # the job's resumable-upload (tus) creation URL
    tus_upload_url: str | None = None  # the resumable upload under way: the server keeps its offset
    job_status: str | None = None
    job_stage: str | None = None
    progress: float = 0.0
    next_poll_at_s: float | None = None  # unix time of the next poll
    terminal_status: str | None = None
    error: dict[str, Any] | None = None  # the job's error object once failed
    artifacts: dict[str, ArtifactState] = field(default_factory=dict)
    download: bool = True  # fetch artifacts when the job completes
    created_at_s: float = field(default_factory=time.time)
    updated_at_s: float = field(default_factory=time.time)
    version: int = RECORD_VERSION

    @staticmethod
    def new_id() -> str:
        return "rec_" + uuid.uuid4().hex

    @property
    def unfinished(self) -> bool:
        return self.stage is not RecordStage.DONE

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["stage"] = self.stage.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ResumeRecord:
        if int(d.get("version", 0)) > RECORD_VERSION:
            raise RecordError(f"record {d.get('record_id')} was written by a newer mocapd (version {d.get('version')})")
        d = dict(d)
        d["stage"] = RecordStage(d["stage"])
        d["artifacts"] = {k: ArtifactState(**v) for k, v in (d.get("artifacts") or {}).items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def summary(self) -> dict[str, Any]:
        """What `--json` prints for this record."""
        return {
            "recordId": self.record_id,
            "jobId": self.job_id,
            "baseUrl": self.base_url,
            "stage": self.stage.value,
            "status": self.job_status,
            "jobStage": self.job_stage,
            "progress": self.progress,
            "terminalStatus": self.terminal_status,
            "error": self.error,
            "outDir": self.out_dir,
            "artifacts": [
                {"name": a.name, "bytes": a.bytes, "sha256": a.sha256, "path": a.path, "verified": a.verified}
                for a in self.artifacts.values()
            ],
        }


def default_state_dir() -> Path:
    """The user's state directory: ``$XDG_STATE_HOME/mocapd`` (``~/.local/state/mocapd``), the platform's
    application-data folder on macOS and Windows."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "mocapd" / "state"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "mocapd" / "state"
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "mocapd"


class RecordStore:
    """Resume records as ``<state_dir>/jobs/<record_id>.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "jobs"

    def path(self, record_id: str) -> Path:
        if not record_id.startswith("rec_") or "/" in record_id or "\\" in record_id:
            raise RecordError(f"not a record id: {record_id!r}")
        return self.dir / f"{record_id}.json"

    def save(self, record: ResumeRecord) -> None:
        """Write atomically: temp file in the same folder, fsync, ``os.replace``, fsync the folder."""
        record.updated_at_s = time.time()
        self.dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps(record.to_json(), indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{record.record_id}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path(record.record_id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.dir)

    def load(self, record_id: str) -> ResumeRecord:
        path = self.path(record_id)
        try:
            return ResumeRecord.from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            raise RecordError(f"no resume record {record_id} under {self.dir}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise RecordError(f"resume record {path} is unreadable: {exc}") from exc

    def all(self) -> Iterator[ResumeRecord]:
        """Every readable record, oldest first (unreadable files are skipped, never deleted)."""
        if not self.dir.is_dir():
            return
        records = []
        for path in self.dir.glob("rec_*.json"):
            try:
                records.append(self.load(path.stem))
            except RecordError:
                continue
        yield from sorted(records, key=lambda r: r.created_at_s)

    def unfinished(self) -> list[ResumeRecord]:
        return [r for r in self.all() if r.unfinished]

    def find_job(self, job_id: str) -> ResumeRecord | None:
        """The newest record of ``job_id`` (or the record whose id is ``job_id``)."""
        if job_id.startswith("rec_"):
            return self.load(job_id)
        found = [r for r in self.all() if r.job_id == job_id]
        return found[-1] if found else None


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
