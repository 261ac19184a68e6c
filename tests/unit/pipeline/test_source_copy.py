"""The preview-size frames kept while detecting: both formats give back every frame with its time."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mocapd.pipeline.source_copy import RAW_COPY_BUDGET_BYTES, SourceCopy, raw_copy_fits, to_i420

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (128, 128, 128)] * 3


@pytest.mark.parametrize("raw", [False, True], ids=["h264", "raw"])
def test_a_copy_gives_back_every_frame_with_its_time_and_colour(tmp_path: Path, raw: bool) -> None:
    copy = SourceCopy(tmp_path / "copy", fps=30.0, raw=raw)
    times = [0.5 + k / 30.0 + (0.004 if k == 5 else 0.0) for k in range(len(COLOURS))]  # one off-grid time
    for t, c in zip(times, COLOURS, strict=True):
        copy.add(t, np.full((61, 81, 3), c, dtype=np.uint8))  # odd sizes are cropped to even
    assert copy.close() and copy.close()  # idempotent
    back = list(copy.frames())
    assert [t for t, _ in back] == times
    for (_, rgb), c in zip(back, COLOURS, strict=True):
        assert rgb.shape == (60, 80, 3)
        assert np.abs(rgb.reshape(-1, 3).mean(axis=0) - np.array(c)).max() < 6


def test_a_raw_copy_keeps_the_i420_planes_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    planes = [rng.integers(16, 236, size=(72, 64), dtype=np.uint8) for _ in range(5)]  # (3 h / 2, w), h = 48
    copy = SourceCopy(tmp_path / "copy", fps=25.0, raw=True)
    for k, p in enumerate(planes):
        copy.add(k / 25.0, p)
    assert copy.close()
    assert (tmp_path / "copy").stat().st_size == 5 * 72 * 64  # 1.5 bytes a pixel, nothing else
    back = [rgb for _, rgb in copy.frames()]
    assert len(back) == 5
    for p, rgb in zip(planes, back, strict=True):
        assert np.array_equal(rgb, cv2.cvtColor(p, cv2.COLOR_YUV2RGB_I420))


@pytest.mark.parametrize("raw", [False, True], ids=["h264", "raw"])
def test_a_copy_that_cannot_be_written_is_reported_unusable_without_blocking(tmp_path: Path, raw: bool) -> None:
    copy = SourceCopy(tmp_path / "missing-dir" / "copy", fps=30.0, raw=raw)
    for k in range(40):  # more than the queue holds: add() must not block once the writer failed
        copy.add(k / 30.0, np.zeros((32, 32, 3), dtype=np.uint8))
    assert copy.close() is False


@pytest.mark.parametrize("raw", [False, True], ids=["h264", "raw"])
def test_a_frame_of_another_size_makes_the_copy_unusable(tmp_path: Path, raw: bool) -> None:
    copy = SourceCopy(tmp_path / "copy", fps=30.0, raw=raw)
    copy.add(0.0, np.zeros((32, 32, 3), dtype=np.uint8))
    copy.add(1 / 30, np.zeros((32, 48, 3), dtype=np.uint8))
    for k in range(2, 20):
        copy.add(k / 30, np.zeros((32, 32, 3), dtype=np.uint8))
    assert copy.close() is False


def test_an_empty_copy_is_not_usable(tmp_path: Path) -> None:
    assert SourceCopy(tmp_path / "copy", fps=30.0, raw=True).close() is False


def test_raw_copies_only_within_the_budget() -> None:
    per_frame = 960 * 540 * 3 // 2
    fitting = RAW_COPY_BUDGET_BYTES // per_frame
    assert raw_copy_fits(fitting, 960, 540)
    assert not raw_copy_fits(fitting + 1, 960, 540)
    assert raw_copy_fits(fitting + 0.5, 961, 541) is False  # a part frame counts whole; odd sizes are cropped
    assert raw_copy_fits(0, 960, 540)


def test_i420_planes_pass_through_and_bad_planes_are_refused() -> None:
    planes = np.zeros((6, 4), dtype=np.uint8)
    assert to_i420(planes).shape == (6, 4)
    with pytest.raises(ValueError, match="I420 planes"):
        to_i420(np.zeros((5, 4), dtype=np.uint8))


@pytest.mark.parametrize("raw", [False, True], ids=["h264", "raw"])
def test_a_failed_copy_gives_its_disk_space_back(tmp_path: Path, raw: bool) -> None:
    copy = SourceCopy(tmp_path / "copy", fps=30.0, raw=raw)
    for k in range(6):
        copy.add(k / 30.0, np.zeros((32, 32, 3), dtype=np.uint8))
    copy.add(6 / 30.0, np.zeros((32, 48, 3), dtype=np.uint8))  # fails the copy after frames were written
    assert copy.close() is False
    assert not (tmp_path / "copy").exists()


def test_a_raw_copy_needs_twice_its_size_free_on_its_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    size = 10 * 960 * 540 * 3 // 2
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=2 * size))
    assert raw_copy_fits(10, 960, 540, tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=2 * size - 1))
    assert not raw_copy_fits(10, 960, 540, tmp_path)
    assert raw_copy_fits(10, 960, 540)  # no directory: the budget alone
