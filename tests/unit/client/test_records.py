from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mocapd.client.errors import RecordError
from mocapd.client.records import ArtifactState, RecordStage, RecordStore, ResumeRecord, default_state_dir


def _record(**kw: object) -> ResumeRecord:
    base: dict[str, object] = dict(
        record_id=ResumeRecord.new_id(), base_url="http://h:1", idempotency_key="k" * 32,
        request={"sourceFilename": "a.mp4", "targetIds": ["default"]}, source_path="/v/a.mp4", source_bytes=10,
        source_sha256="ab" * 32, out_dir="/out",
    )
    base.update(kw)
    return ResumeRecord(**base)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    rec = _record(stage=RecordStage.FINISHED, job_id="mocap_1", terminal_status="completed", next_poll_at_s=12.5,
                  error={"code": "x"})
    rec.artifacts["motion.fbx"] = ArtifactState("motion.fbx", 5, "cd" * 32, "/out/motion.fbx", True, True)
    store.save(rec)
    back = store.load(rec.record_id)
    assert back == rec
    assert isinstance(back.stage, RecordStage) and isinstance(back.artifacts["motion.fbx"], ArtifactState)


def test_save_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RecordStore(tmp_path)
    rec = _record()
    store.save(rec)
    rec.stage, rec.job_id = RecordStage.UPLOADING, "mocap_2"

    def crash(*a: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.save(rec)
    monkeypatch.undo()
    assert store.load(rec.record_id).stage is RecordStage.CREATING  # the old record is intact
    assert [p.name for p in store.dir.iterdir()] == [f"{rec.record_id}.json"]
    store.save(rec)
    assert store.load(rec.record_id).job_id == "mocap_2"


def test_unfinished_and_find_job(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    a = _record(job_id="mocap_a", created_at_s=1.0)
    b = _record(job_id="mocap_b", stage=RecordStage.DONE, created_at_s=2.0)
    c = _record(created_at_s=3.0)
    for r in (c, b, a):
        store.save(r)
    assert [r.record_id for r in store.unfinished()] == [a.record_id, c.record_id]
    found = store.find_job("mocap_b")
    assert found is not None and found.record_id == b.record_id
    assert store.find_job("mocap_zzz") is None
    assert store.find_job(c.record_id) == store.load(c.record_id)


def test_unreadable_records_are_skipped_not_deleted(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    good = _record()
    store.save(good)
    bad = store.dir / "rec_broken.json"
    bad.write_text("{not json")
    assert [r.record_id for r in store.all()] == [good.record_id]
    assert bad.exists()
    with pytest.raises(RecordError):
        store.load("rec_broken")


def test_newer_record_versions_and_bad_ids_are_refused(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    rec = _record()
    store.save(rec)
    path = store.path(rec.record_id)
    data = json.loads(path.read_text())
    data["version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="newer"):
        store.load(rec.record_id)
    with pytest.raises(RecordError):
        store.path("../etc/passwd")


def test_default_state_dir_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "mocapd"
