"""The client commands through typer's CliRunner (no server needed for these)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mocapd.client.commands import parse_trim, register_client_commands
from mocapd.client.records import RecordStage, RecordStore, ResumeRecord
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:
        """mocapd"""

    register_client_commands(a)
    return a


def test_parse_trim() -> None:
    assert parse_trim("1.2:13.8") == (1.2, 13.8)
    assert parse_trim("2:") == (2.0, None)
    assert parse_trim(":10") == (None, 10.0)
    assert parse_trim(None) == (None, None)
    for bad in ("5", "a:b", "4:2"):
        with pytest.raises(typer.BadParameter):
            parse_trim(bad)


def test_every_command_is_registered(app: typer.Typer) -> None:
    out = CliRunner().invoke(app, ["--help"]).output
    for name in ("submit", "resume", "status", "download", "jobs"):
        assert name in out


def test_submit_without_an_api_key_exits_1_and_writes_no_record(app: typer.Typer, tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    r = CliRunner().invoke(app, ["submit", str(video), "--state-dir", str(tmp_path / "s")], env={"MOCAPD_API_KEY": ""})
    assert r.exit_code == 1 and "API key" in r.output
    assert list(RecordStore(tmp_path / "s").all()) == []


def test_a_bad_trim_is_a_usage_error(app: typer.Typer, tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    r = CliRunner().invoke(app, ["submit", str(video), "--trim", "9:3", "--api-key", "sk_live_x"])
    assert r.exit_code == 2


def test_resume_with_nothing_to_do(app: typer.Typer, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["resume", "--json", "--api-key", "sk_live_x", "--state-dir", str(tmp_path)])
    assert r.exit_code == 0 and json.loads(r.output) == {"ok": True, "results": []}


def test_resume_against_a_dead_server_exits_5_and_keeps_the_record(app: typer.Typer, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RecordStore(tmp_path)
    rec = ResumeRecord(record_id=ResumeRecord.new_id(), base_url=f"http://127.0.0.1:{port}", idempotency_key="k",
                       request={}, source_path="/nope", source_bytes=1, source_sha256="00", out_dir=str(tmp_path / "o"),
                       stage=RecordStage.ADMITTED, job_id="mocap_x")
    store.save(rec)
    r = CliRunner().invoke(app, ["resume", "--json", "--api-key", "sk_live_x", "--state-dir", str(tmp_path),
                                 "--give-up-after", "0"])
    assert r.exit_code == 5, r.output
    (result,) = json.loads(r.output)["results"]
    assert result["error"] == "ServerUnreachable" and result["record"]["jobId"] == "mocap_x"
    assert [x.record_id for x in store.unfinished()] == [rec.record_id]


def test_importing_the_client_commands_stays_light() -> None:
    code = ("import sys, mocapd.client.commands, mocapd.client; "
            "print(sorted(m for m in ('mediapipe', 'mujoco', 'av', 'numpy', 'scipy', 'sqlalchemy', 'fastapi') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "[]"
