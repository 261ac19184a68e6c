"""The layers the house style promises, checked on the source: pure packages import no web, database
or cloud library, and the command line starts without loading the heavy numeric stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "mocapd"
FORBIDDEN_IN_PURE = {"fastapi", "starlette", "sqlalchemy", "alembic", "psycopg", "boto3", "botocore", "httpx", "uvicorn",
                     "mocapd.api", "mocapd.db", "mocapd.storage", "mocapd.worker", "mocapd.client"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["domain", "pipeline", "robots", "formats"])
def test_pure_packages_import_no_io_library(package: str) -> None:
    bad = []
    for path in sorted((SRC / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_PURE):
                bad.append(f"{path.relative_to(SRC)}: {name}")
    assert not bad, bad


def test_domain_imports_nothing_heavy() -> None:
    for path in (SRC / "domain").rglob("*.py"):
        assert not {n.split(".")[0] for n in _imports(path)} & {"numpy", "av", "mediapipe", "mujoco", "scipy"}, path


def test_the_command_line_loads_no_heavy_module() -> None:
    code = ("import sys, mocapd.cli; heavy = {'mediapipe', 'mujoco', 'av', 'cv2', 'scipy', 'mink', 'sqlalchemy', 'numpy'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
