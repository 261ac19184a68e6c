"""The README's commands work as written: the operator commands, and the curl walk-through against a
real `mocapd serve` with one worker running the real pipeline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PROJECT_ROOT, shared_file
from tests.support.procs import free_port, stop, wait_http_ok

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
    port = free_port()
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
        stop(proc)


@pytest.mark.postgres
@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("psql") is None, reason="curl or psql is not installed")
def test_scale_out_walkthrough_on_postgres_and_s3(tmp_path: Path) -> None:
    """The "Scaling out" block as a newcomer runs it (a new role and database on the real PostgreSQL
    server, a bucket on moto's S3 server, the first account and key, `mocapd api` and `mocapd worker`
    in the background), then the curl walk-through against that API, download redirects included.
    The workers run the fast processor of the S3 tests, so the job takes a second."""
    import hashlib
    import secrets
    import signal

    from sqlalchemy import create_engine, text

    from tests.integration.test_s3_storage import AWS_ENV, moto_server
    from tests.support.postgres import PG_ADMIN_URL, postgres_available
    from tests.support.procs import descendants, kill_all

    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    video = shared_file("pose2sim_balancing/cam01.mp4")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(video, work / "clip.mp4")
    role, dbname, bucket = (f"mocapd_{secrets.token_hex(4)}", f"mocapd_{secrets.token_hex(4)}",
                            f"bucket-{secrets.token_hex(4)}")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    block = _block_after("**Scaling out.**")
    procs: list[subprocess.Popen[str]] = []
    with moto_server() as endpoint:
        subs = {  # the README's placeholders -> this machine; each must be in the block as written
            'CREATE ROLE mocapd LOGIN': f'CREATE ROLE {role} LOGIN',
            'CREATE DATABASE mocapd OWNER mocapd': f'CREATE DATABASE {dbname} OWNER {role}',
            "postgresql+psycopg://mocapd:change-me@db/mocapd":
                f"postgresql+psycopg://{role}:change-me@127.0.0.1:5432/{dbname}",
            "AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...":
                f"AWS_ACCESS_KEY_ID={AWS_ENV['AWS_ACCESS_KEY_ID']} AWS_SECRET_ACCESS_KEY={AWS_ENV['AWS_SECRET_ACCESS_KEY']}",
            "my-bucket": bucket,
            "https://s3.example.com": endpoint,
            "https://mocap.example.com": base,
            "MOCAPD_SECRET=...": f"MOCAPD_SECRET={secrets.token_hex(32)}",
            "--port 8000": f"--port {port}",
            "http://127.0.0.1:8000": base,
        }
        for old, new in subs.items():
            assert old in block, f"the README's scale-out block no longer says {old!r}"
            block = block.replace(old, new)
        env = {k: v for k, v in _env(tmp_path).items() if not k.startswith("AWS_")}
        env.pop("MOCAPD_DATA_DIR")  # nothing may depend on a local data directory
        env.update({k: v for k, v in AWS_ENV.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
        env.update({"PGHOST": "127.0.0.1", "PGUSER": "postgres", "PGDATABASE": "postgres",
                    "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)]),
                    "MOCAPD_PROCESSOR": "tests.e2e.test_s3_flow:SourceDigestProcessor", "MOCAPD_LOG_LEVEL": "info"})
        lines = [x for x in block.splitlines() if x.strip() and not x.lstrip().startswith("#")]
        assert lines[0] == 'pip install -e ".[postgres,s3]"'  # installed already
        background = [x.split("#")[0].strip().removesuffix("&").strip() for x in lines if "&" in x.split("#")[0]]
        assert [b.split()[:2] for b in background] == [["mocapd", "api"], ["mocapd", "worker"]]
        first_bg = next(i for i, x in enumerate(lines) if "&" in x.split("#")[0])
        setup = lines[1:first_bg]
        if shutil.which("aws") is None:  # the AWS CLI is optional here: the same call through boto3
            setup = [f"python3 -c \"import boto3; boto3.client('s3', endpoint_url='{endpoint}').create_bucket(Bucket='{bucket}')\""
                     if x.startswith("aws s3 mb") else x for x in setup]
        after = lines[first_bg + len(background):]
        env_file = tmp_path / "env"
        logs: dict[str, Any] = {}
        try:
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(setup) + f"\nenv -0 > {env_file}"],
                                 cwd=work, env=env, capture_output=True, text=True, timeout=180)
            assert run.returncode == 0, (run.stdout, run.stderr)
            key = re.findall(r"^(sk_live_\S+)$", run.stdout, re.M)[-1]
            shell_env = dict(x.split("=", 1) for x in env_file.read_text().split("\0") if "=" in x)
            for cmd in background:
                name = cmd.split()[1]
                logs[name] = (tmp_path / f"{name}.log").open("w")
                procs.append(subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=work, env=shell_env, text=True,
                                              stdout=logs[name], stderr=subprocess.STDOUT, start_new_session=True))
            wait_http_ok(base + "/healthz", timeout_s=90)
            check = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(after)], cwd=work, env=shell_env,
                                   capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, (check.stdout, check.stderr, (tmp_path / "api.log").read_text())
            assert json.loads(check.stdout) == {"status": "ok", "checks": {"database": "ok", "storage": "ok"}}

            # the curl walk-through, against this API with the key `mocapd keys create` printed
            script = _block_after("## The same flow with curl").replace("http://127.0.0.1:8000", base)
            script = script.replace("KEY=sk_live_...", f"KEY={key}")
            first, rest = script.split("# 4.", 1)
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", first + '\necho; echo "JOB=$JOB"'], cwd=work,
                                 env=shell_env, capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, (run.stdout, run.stderr)
            job_id = re.findall(r"^JOB=(mocap_\w+)$", run.stdout, re.M)[-1]
            assert '"status":"queued"' in run.stdout.replace(" ", "")
            h = {"Authorization": f"Bearer {key}"}
            status = None
            for _ in range(240):
                status = httpx.get(f"{base}/api/v1/mocap/jobs/{job_id}", headers=h).json()["data"]["job"]["status"]
                if status in ("completed", "failed", "canceled"):
                    break
                time.sleep(0.25)
            assert status == "completed", (tmp_path / "worker.log").read_text()
            assignments = "\n".join(x for x in first.splitlines() if re.match(r"^(KEY|API)=", x))
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", f"{assignments}\nJOB={job_id}\n# 4." + rest],
                                 cwd=work, env=shell_env, capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, (run.stdout, run.stderr)
            result = httpx.get(f"{base}/api/v1/mocap/jobs/{job_id}/result", headers=h).json()["data"]
            fbx = next(f for o in result["outputs"] for f in o["files"] if f["name"] == "motion.fbx")
            got = (work / "motion.fbx").read_bytes()  # followed the 307 to the bucket
            assert len(got) == fbx["bytes"] > 0 and hashlib.sha256(got).hexdigest() == fbx["sha256"]
            assert httpx.get(f"{base}/api/v1/mocap/jobs/{job_id}/artifacts/motion.fbx", headers=h).status_code == 307
            assert '"type":"capture"' in run.stdout.replace(" ", "")
            worker_log = (tmp_path / "worker.log").read_text()
            pg_url = f"postgresql+psycopg://{role}:***@127.0.0.1:5432/{dbname}"  # the password masked
            assert f"event=start command=worker concurrency=2 database={pg_url} storage=s3://{bucket}/mocapd" in worker_log
            assert "event=start command=api" in (tmp_path / "api.log").read_text()
            assert f"event=claim job={job_id} attempt=1" in worker_log
            assert re.search(rf"event=finish job={job_id} attempt=1 outcome=completed", worker_log)
        finally:
            for f in logs.values():
                f.close()
            for p in procs:
                left = descendants(p.pid)
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
                    try:
                        p.wait(30)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait()
                kill_all(left)
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
                c.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
            admin.dispose()
