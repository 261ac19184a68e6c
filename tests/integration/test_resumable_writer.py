"""The local store's resumable writer: how often it asks for a checkpoint while a background fsync runs,
and what a checkpoint makes durable (a real file; fsync counted, not faked)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mocapd.storage import LocalStore, resumable
from mocapd.storage.resumable import LOCAL_CHECKPOINT_BYTES, begin_upload, open_writer

CHUNK = 256 << 10


def _stream(writer: resumable.ResumableWriter, nbytes: int, on_due: list[int]) -> None:
    """Write ``nbytes`` as the API does, starting a background checkpoint whenever one is due but never
    running its fsync (as if the disk were slow): the offsets at which one was due."""
    block = os.urandom(CHUNK)
    for _ in range(nbytes // CHUNK):
        writer.write(block)
        if writer.checkpoint_due():
            on_due.append(writer.offset)
            assert writer.background_checkpoint() is not None


def test_a_checkpoint_in_flight_is_not_due_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    state = begin_upload(store, "job_1", "up_1", "jobs/job_1/source/video.mp4")
    writer = open_writer(store, state, 0)
    try:
        due: list[int] = []
        _stream(writer, 3 * LOCAL_CHECKPOINT_BYTES, due)
        # One checkpoint per LOCAL_CHECKPOINT_BYTES, though none of their fsyncs has finished: a chunk
        # arriving while one runs does not start (and wait for) another.
        assert due == [LOCAL_CHECKPOINT_BYTES, 2 * LOCAL_CHECKPOINT_BYTES, 3 * LOCAL_CHECKPOINT_BYTES]
    finally:
        writer.close()


def test_a_background_checkpoint_is_durable_up_to_its_offset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(resumable.os, "fsync", counting_fsync)
    store = LocalStore(tmp_path / "objects")
    state = begin_upload(store, "job_1", "up_1", "jobs/job_1/source/video.mp4")
    writer = open_writer(store, state, 0)
    try:
        block = os.urandom(CHUNK)
        while not writer.checkpoint_due():
            writer.write(block)
        prepared = writer.background_checkpoint()
        assert prepared is not None
        offset, sync = prepared
        writer.write(block)  # bytes keep arriving while the fsync runs
        assert synced == []
        sync()
        # The file held at least ``offset`` bytes when it was synced, and only ``offset`` counts as durable.
        assert synced and synced[0] >= offset == LOCAL_CHECKPOINT_BYTES
        durable, _ = writer.checkpoint(everything=True)
        assert durable == writer.offset == LOCAL_CHECKPOINT_BYTES + CHUNK
        assert len(synced) == 2
        assert not writer.checkpoint_due()
    finally:
        writer.close()
    reopened = open_writer(store, state, LOCAL_CHECKPOINT_BYTES)  # a later request starts at the committed offset
    try:
        assert os.path.getsize(store.path(str(state["prefix"]) + "/data")) == LOCAL_CHECKPOINT_BYTES
    finally:
        reopened.close()
