"""Shared test set-up: where the read-only test data lives, and a clean MOCAPD_* environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MOCAPD_TEST_DATA", PROJECT_ROOT.parent / "shared" / "data")).resolve()


def shared_file(relative: str) -> Path:
    """A file from ../shared/data, or skip the calling test with a clear reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"test data {relative} not found under {SHARED_DATA} (set MOCAPD_TEST_DATA)")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test data folder {SHARED_DATA} is absent (set MOCAPD_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _clean_mocapd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MOCAPD_") and name != "MOCAPD_TEST_DATA":
            monkeypatch.delenv(name, raising=False)
