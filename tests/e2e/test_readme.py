"""The README's commands work as written: the operator commands, and the curl walk-through against a
real `mocapd serve` with one worker running the real pipeline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROJECT_ROOT, shared_file
from tests.e2e.test_service_flow import _free_port, _stop
from tests.support.procs import wait_http_ok

README = (PROJECT_ROOT / "README.md").read_text()


def _block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def _env(tmp_path: Path) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "MOCAPD_DATA_DIR": str(tmp_path / "data"),
            "MOCAPD_LOG_LEVEL": "warning"}


def test_the_two_opening_commands_are_the_install_and_test_commands() -> None:
    first, second = re.findall(r"```bash\n(.*?)\n```", README, re.S)[:2]
    assert first.endswith("mocapd serve") and "pip install -e ." in first
    assert second.endswith(".venv/bin/pytest") and '".[dev]"' in second
    assert second in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_operator_commands(tmp_path: Path) -> None:
    env = _env(tmp_path)
    key = None
    for line in _block_after("## Operating it").splitlines():
        cmd = line.split("#")[0].strip()
        if not cmd:
            continue
        if cmd.startswith("mocapd keys revoke"):
            assert key
            cmd = f"mocapd keys revoke {key[:14]}"
        out = subprocess.run(cmd, shell=True, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (cmd, out.stdout, out.stderr)
        if cmd.startswith("mocapd keys create"):
            key = out.stdout.strip().splitlines()[-1]
            assert key.startswith("sk_live_")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_walkthrough(tmp_path: Path) -> None:
    video = shared_file("pose2sim_balancing/cam01.mp4")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(video, work / "clip.mp4")
    env = _env(tmp_path)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mocapd", "serve", "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        key = next(line.strip() for line in proc.stdout if line.startswith("sk_live_"))
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base + "/readyz")
        script = _block_after("## The same flow with curl").replace("http://127.0.0.1:8000", base)
        script = script.replace("KEY=sk_live_...", f"KEY={key}")
        setup, rest = script.split("# 4.", 1)
        sh = {**env, "PATH": env["PATH"]}
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", setup + '\necho; echo "JOB=$JOB"'], cwd=work, env=sh,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        job_id = re.findall(r"^JOB=(mocap_\w+)$", run.stdout, re.M)[-1]
        assert '"status":"queued"' in run.stdout.replace(" ", "")
        h = {"Authorization": f"Bearer {key}"}
        status = None
        for _ in range(480):
            status = httpx.get(f"{base}/api/v1/mocap/jobs/{job_id}", headers=h).json()["data"]["job"]["status"]
            if status in ("completed", "failed", "canceled"):
                break
            time.sleep(0.5)
        assert status == "completed"
        assignments = "\n".join(x for x in setup.splitlines() if re.match(r"^(KEY|API)=", x))
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", f"{assignments}\nJOB={job_id}\n# 4." + rest], cwd=work, env=sh,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert (work / "motion.fbx").read_bytes()[:18] == b"Kaydara FBX Binary"
        assert '"type":"capture"' in run.stdout.replace(" ", "")
    finally:
        _stop(proc)
