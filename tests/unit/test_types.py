"""`mypy --strict` on the whole source with the project's own configuration ([tool.mypy] in
pyproject.toml), so the README's test command enforces it: new code that does not type-check fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_source_passes_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy comes with the dev extra: pip install -e '.[dev]'")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
         str(ROOT / ".mypy_cache"), str(ROOT / "src" / "mocapd")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"mypy --strict found problems:\n{done.stdout}{done.stderr}"
    assert "Success" in done.stdout
