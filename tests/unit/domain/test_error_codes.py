"""Every error code the source raises is in the one table: a misspelt code is caught here (and by
``mypy --strict`` through the `ErrorCode` literal type), not served as an internal error."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

import mocapd
from mocapd.domain.codes import CODES, ErrorCode, UnknownErrorCode
from mocapd.errors import InputFault, MocapdError, SystemFault

SRC = Path(mocapd.__file__).parent
# Calls whose first argument is an error code, and keyword arguments that carry one.
_CODE_CALLS = {"MocapdError", "InputFault", "SystemFault", "problem_response"}
_CODE_KEYWORDS = {"code"}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _codes_in_source() -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, str]] = []
    for path in sorted(SRC.rglob("*.py")):
        if "client" in path.relative_to(SRC).parts:  # the SDK reads codes off the wire, it raises none
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            args: list[ast.expr] = []
            if _name(node.func) in _CODE_CALLS and node.args:
                args.append(node.args[0])
            args += [k.value for k in node.keywords if k.arg in _CODE_KEYWORDS]
            for a in args:
                if isinstance(a, ast.Constant) and isinstance(a.value, str):
                    found.append((str(path.relative_to(SRC)), node.lineno, a.value))
    return found


def test_the_literal_type_and_the_table_name_the_same_codes() -> None:
    assert set(get_args(ErrorCode)) == set(CODES)
    assert len(get_args(ErrorCode)) == len(CODES)


def test_every_code_raised_in_the_source_is_in_the_table() -> None:
    found = _codes_in_source()
    assert len(found) > 50  # the scan sees the source's raises
    unknown = [f"{path}:{line}: {code}" for path, line, code in found if code not in CODES]
    assert not unknown, "codes missing from mocapd.domain.codes.CODES:\n" + "\n".join(unknown)


@pytest.mark.parametrize("kind", [MocapdError, InputFault, SystemFault])
def test_raising_an_unknown_code_is_refused_at_once(kind: type[MocapdError]) -> None:
    with pytest.raises(UnknownErrorCode, match="no_such_code"):
        kind("no_such_code", "a bug")  # type: ignore[arg-type]
    assert kind("no_person_detected").http_status == 422
