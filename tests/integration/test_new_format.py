"""Adding an output format is one writer plus one catalogue entry: a throwaway format registered here
goes through the real pipeline, the stage runner, storage and the database, and comes out in the job's
result under the right target with its content type."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from mocapd.api.reads import _artifacts, find_job
from mocapd.api.serialize import result_dict
from mocapd.api.signing import Signer
from mocapd.db import queue
from mocapd.db.models import Job
from mocapd.domain import targets
from mocapd.formats import writers
from mocapd.formats.writers import Take
from mocapd.storage import LocalStore, source_key
from mocapd.worker.processor import PipelineProcessor
from mocapd.worker.runner import LeaseState, Outcome, StageRunner
from tests.conftest import shared_file
from tests.integration.queue.support import admit, create_draft, new_database, seed_account, sqlite_url

pytestmark = pytest.mark.slow

CONTENT_TYPE = "text/tab-separated-values; charset=utf-8"


def _pelvis_tsv(take: Take) -> bytes:
    """The throwaway format: the pelvis height per frame, one line each."""
    heights = take.motion.world_positions_m()[:, take.motion.skeleton.index("pelvis"), 2]
    return "".join(f"{i}\t{z:.4f}\n" for i, z in enumerate(heights)).encode()


@pytest.fixture
def pelvis_format(monkeypatch: pytest.MonkeyPatch) -> None:
    default = targets.TARGET_KINDS["default"]
    spec = targets.FileSpec("pelvis.tsv", CONTENT_TYPE, "pelvis_tsv")  # the catalogue entry
    monkeypatch.setitem(targets.TARGET_KINDS, "default", dataclasses.replace(default, files=(*default.files, spec)))
    monkeypatch.setitem(writers.WRITERS, "pelvis_tsv", _pelvis_tsv)  # the writer


def test_a_registered_writer_delivers_its_file_in_the_result(pelvis_format: None, tmp_path: Path) -> None:
    db = new_database(sqlite_url(tmp_path))
    store = LocalStore(tmp_path / "objects")
    try:
        job_id = create_draft(db, seed_account(db, "a"))
        with db.write() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.target_ids = ["default"]
        path = store.path(source_key(job_id))
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_file("pose2sim_balancing/cam01.mp4"), path)
        admit(db, job_id, seconds=1)
        with db.write() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.trim_end_s = 0.5  # the window 0..0.5 s
        claimed = queue.claim(db, "w1", lease_s=600.0)
        assert claimed is not None and claimed.id == job_id
        runner = StageRunner(db, store, PipelineProcessor(), lease_s=600.0, retry_backoff_s=0.0, job_timeout_s=600.0)
        assert runner.run(claimed, LeaseState()) is Outcome.COMPLETED

        with db.read() as s:
            row = find_job(s, claimed.account_id, job_id)
            result = result_dict(row, _artifacts(s, row), Signer(b"k" * 32), "http://test", 600)
    finally:
        db.dispose()
    files = {f["name"]: f for f in result["files"]}
    assert files["pelvis.tsv"]["contentType"] == CONTENT_TYPE
    (output,) = result["outputs"]
    assert output["targetId"] == "default"
    assert [f["name"] for f in output["files"]] == ["motion.bvh", "motion.fbx", "motion.glb", "pelvis.tsv"]
    stored = store.path(f"jobs/{job_id}/artifacts/pelvis.tsv").read_text().splitlines()
    assert len(stored) == 15 and all(0.5 < float(line.split("\t")[1]) < 1.3 for line in stored)  # 0.5 s at 30 fps
