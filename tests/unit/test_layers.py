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


@pytest.mark.parametrize("package", ["domain", "pipeline", "robots", "avatars", "formats"])
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


# Which mocapd packages (and top-level modules) each one may import. The motion stack is
# domain <- media <- pipeline <- robots <- formats <- worker; db and storage sit beside pipeline and know
# nothing of it; api uses db, storage, domain and the media probe, never motion code; client speaks HTTP
# only. ``errors`` is the domain's exception type (it reads the code table), so the two count as one.
_BASE = {"domain", "errors", "proc", "logs", "model_files"}  # proc: process hygiene; logs: the log format;
# model_files: which model files exist, their pins and where they are installed
_MOTION = ["media", "pipeline", "robots", "avatars", "formats"]
ALLOWED: dict[str, set[str]] = {
    "domain": {"errors"},
    "errors": {"domain"},
    "proc": set(),
    "logs": set(),
    "model_files": set(),
    "config": set(),
    **{pkg: _BASE | set(_MOTION[:i]) for i, pkg in enumerate(_MOTION)},
    "db": _BASE | {"config"},
    "storage": _BASE | {"config"},
    "worker": _BASE | {"config", "db", "storage", *_MOTION},
    # api: the avatar reader too (mocapd.avatars minus its retargeting, see the test below), and the webhooks'
    # URL check at creation
    "api": _BASE | {"config", "db", "storage", "media", "avatars", "webhooks"},
    "webhooks": _BASE | {"config", "db"},  # the webhook dispatcher
    "client": set(),
}
TOP_LEVEL = {"cli", "__main__", "__init__"}  # the command line may import everything (lazily)


def _unit(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0].removesuffix(".py")


def _mocapd_imports() -> dict[str, set[tuple[str, str]]]:
    """unit -> {(imported unit, where)}, for every import in every module (lazy and TYPE_CHECKING ones too)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        unit = _unit(path)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{path.relative_to(SRC)}: relative import (the layer check reads absolute ones)")
        for name in _imports(path):
            if name == "mocapd" or not name.startswith("mocapd."):
                continue
            target = name.split(".")[1]
            if target != unit:
                out.setdefault(unit, set()).add((target, f"{path.relative_to(SRC)}: {name}"))
    return out


def _violations(imports: dict[str, set[tuple[str, str]]]) -> list[str]:
    return sorted(
        where
        for unit, targets in imports.items()
        if unit not in TOP_LEVEL
        for target, where in targets
        if target not in ALLOWED.get(unit, set())
    )


def _cycle(imports: dict[str, set[tuple[str, str]]]) -> list[str] | None:
    """One import cycle between packages (``errors`` counted with ``domain``), or None."""

    def merged(unit: str) -> str:
        return "domain" if unit == "errors" else unit

    graph: dict[str, set[str]] = {}
    for unit, targets in imports.items():
        graph.setdefault(merged(unit), set()).update(merged(t) for t, _ in targets if merged(t) != merged(unit))
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        for nxt in sorted(graph.get(node, ())):
            if found := visit(nxt, [*path, node]):
                return found
        done.add(node)
        return None

    for node in sorted(graph):
        if found := visit(node, []):
            return found
    return None


def test_every_package_imports_only_its_lower_layers() -> None:
    units = {_unit(p) for p in SRC.rglob("*.py")}
    assert units - TOP_LEVEL <= set(ALLOWED), f"new package(s) {sorted(units - TOP_LEVEL - set(ALLOWED))}: add to ALLOWED"
    assert _violations(_mocapd_imports()) == []


def test_packages_form_no_cycle() -> None:
    assert _cycle(_mocapd_imports()) is None


def test_the_layer_check_refuses_an_upward_import_and_a_cycle() -> None:
    """The check is not vacuous: fed a tree where the api imports the pipeline and the pipeline the formats,
    it names both, and it finds the cycle formats -> pipeline -> formats."""
    imports = _mocapd_imports()
    imports.setdefault("api", set()).add(("pipeline", "api/x.py: mocapd.pipeline.run"))
    imports.setdefault("pipeline", set()).add(("formats", "pipeline/y.py: mocapd.formats.preview"))
    imports.setdefault("client", set()).add(("api", "client/z.py: mocapd.api.schemas"))
    assert _violations(imports) == [
        "api/x.py: mocapd.pipeline.run", "client/z.py: mocapd.api.schemas", "pipeline/y.py: mocapd.formats.preview"
    ]  # fmt: skip
    cycle = _cycle(imports)
    assert cycle is not None and {"formats", "pipeline"} <= set(cycle)


def test_avatar_preparation_imports_no_motion_code() -> None:
    """The API prepares uploaded characters with mocapd.avatars; only its retargeting may use motion code."""
    bad = []
    for path in sorted((SRC / "avatars").glob("*.py")):
        if path.name == "retarget.py":
            continue
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in ("mocapd.pipeline", "mocapd.robots", "mocapd.formats")):
                bad.append(f"{path.name}: {name}")
    assert not bad, bad
