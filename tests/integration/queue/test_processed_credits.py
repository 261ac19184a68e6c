"""Credits follow the video the job processed, with the real pipeline on short hostile files, on SQLite
and PostgreSQL: a duration header that overstates the video is held but not charged; a frame over the
pixel limit mid-stream fails the job and charges nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from mocapd.db.engine import Database
from mocapd.db.ledger import balance
from mocapd.db.models import Artifact, Job, LedgerEntry
from mocapd.media.probe import probe_video
from mocapd.storage import LocalStore, source_key
from mocapd.worker.processor import PipelineProcessor
from mocapd.worker.runner import LeaseState, Outcome, StageRunner
from tests.conftest import shared_file
from tests.integration.queue.support import admit, create_draft, ledger_report, seed_account
from tests.support.hostile_media import (
    encode_jpeg,
    jpeg_of_size,
    mjpeg_file,
    patch_mkv_duration,
    person_clip,
    person_frames,
)

pytestmark = pytest.mark.slow


def _admit_file(db: Database, store: LocalStore, account_id: str, path: Path) -> str:
    """What complete-upload does with this file: probe it, hold its probed duration, queue it."""
    facts = probe_video(path).to_wire()
    job_id = create_draft(db, account_id)
    target = store.path(source_key(job_id))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(path.read_bytes())
    seconds = int(-(-facts["durationSec"] // 1))
    admit(db, job_id, seconds=seconds)
    with db.write() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.source_facts, job.target_ids, job.trim_end_s = facts, ["default"], facts["durationSec"]
        job.upload_bytes = target.stat().st_size
    return job_id


def _run_one(db: Database, store: LocalStore) -> Outcome:
    from mocapd.db import queue

    claimed = queue.claim(db, "w1", lease_s=120.0)
    assert claimed is not None
    runner = StageRunner(db, store, PipelineProcessor(), lease_s=120.0, retry_backoff_s=0.0, job_timeout_s=600.0)
    return runner.run(claimed, LeaseState())


def _ledger(db: Database, job_id: str) -> list[tuple[str, int]]:
    with db.read() as s:
        rows = s.execute(select(LedgerEntry.type, LedgerEntry.amount).where(LedgerEntry.job_id == job_id).order_by(LedgerEntry.id))
        return [(t, a) for t, a in rows]


def test_a_duration_header_of_600_s_on_a_1_s_video_charges_1(db: Database, store: LocalStore, tmp_path: Path) -> None:
    clip = person_clip(tmp_path / "clip.mkv", shared_file("pose2sim_balancing/cam01.mp4"), seconds=1.0, fps=30)
    patch_mkv_duration(clip, 600.0)
    assert probe_video(clip).duration_s == 600.0
    acct = seed_account(db, "a", credits=1000)
    jid = _admit_file(db, store, acct, clip)
    assert _run_one(db, store) is Outcome.COMPLETED
    with db.read() as s:
        job = s.get(Job, jid)
        assert job is not None
        assert (job.status, job.held_credits, job.charged_credits, job.refunded_credits) == ("completed", 600, 1, 599)
        assert balance(s, acct, "api").balance == 999 and balance(s, acct, "api").held == 0
        key = s.scalar(select(Artifact.object_key).where(Artifact.job_id == jid, Artifact.name == "manifest.json"))
    assert _ledger(db, jid) == [("hold", 600), ("capture", 1), ("release", 599)]
    report = ledger_report(db)
    assert report.open_holds == 0 and report.accounts_balanced
    assert report.settle_per_job_max == 1 and report.jobs_settled_both_ways == 0  # the rest is not a settlement
    manifest = json.loads(store.path(str(key)).read_bytes())
    assert manifest["billing"]["heldVCredits"] == 600 and manifest["billing"]["chargedVCredits"] == 1
    assert manifest["billing"]["refundedVCredits"] == 599
    assert manifest["billing"]["processedSec"] == pytest.approx(1.0, abs=0.001)
    assert manifest["processing"]["processedSec"] == pytest.approx(1.0, abs=0.001)


def test_a_frame_over_the_pixel_limit_fails_the_job_and_charges_nothing(
    db: Database, store: LocalStore, tmp_path: Path
) -> None:
    frames = [encode_jpeg(rgb) for rgb in person_frames(shared_file("pose2sim_balancing/cam01.mp4"), (136, 240), 30, 30)]
    frames[20] = jpeg_of_size(9000, 8000)  # after preflight has found the person
    clip = mjpeg_file(tmp_path / "switch.mkv", frames, fps=30, size=(136, 240))
    acct = seed_account(db, "a", credits=1000)
    jid = _admit_file(db, store, acct, clip)
    assert _run_one(db, store) is Outcome.FAILED
    with db.read() as s:
        job = s.get(Job, jid)
        assert job is not None
        assert (job.status, job.error_code, job.charged_credits) == ("failed", "source_unsupported", 0)
        assert balance(s, acct, "api").balance == 1000 and balance(s, acct, "api").held == 0
    assert _ledger(db, jid) == [("hold", 1), ("release", 1)]
