"""The API's probe gate: child processes, a bounded number at once, and what a dead child means."""

from __future__ import annotations

import json
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from mocapd.api.probing import ProbeGate
from mocapd.errors import InputFault, MocapdError


def _fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for the interpreter that runs the probe child."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.parametrize("sig", ["SEGV", "ABRT", "BUS"])
def test_a_child_crashing_on_the_file_is_the_files_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: str) -> None:
    monkeypatch.setattr(sys, "executable", _fake_python(tmp_path, f"kill -{sig} $$"))
    with pytest.raises(InputFault) as err:
        ProbeGate().probe(tmp_path / "clip.mp4")
    assert err.value.code == "source_unsupported"


def test_a_child_stopped_from_outside_is_not_blamed_on_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", _fake_python(tmp_path, "kill -TERM $$"))
    with pytest.raises(RuntimeError):
        ProbeGate().probe(tmp_path / "clip.mp4")


def test_probes_beyond_the_slots_wait_then_answer_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = json.dumps({"facts": {"width": 64}})
    monkeypatch.setattr(sys, "executable", _fake_python(tmp_path, f"sleep 1; echo '{facts}'"))
    gate = ProbeGate(slots=1, wait_s=0.2)
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(gate.probe(tmp_path / "a.mp4")))
    first.start()
    while gate._free._value:  # noqa: SLF001 - wait until the first probe holds the slot
        time.sleep(0.01)
    with pytest.raises(MocapdError) as err:
        gate.probe(tmp_path / "b.mp4")
    first.join()
    assert err.value.code == "validation_busy" and err.value.headers == {"Retry-After": "2"}
    assert results == [{"width": 64}]
    assert gate.probe(tmp_path / "c.mp4") == {"width": 64}  # the slot is free again
