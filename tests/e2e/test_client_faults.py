"""The client against the real API and worker behind a fault-injecting proxy (`tests.e2e.faultproxy`).

One server (uvicorn in a thread, SQLite + local storage) and one worker thread run for the module; the
worker uses a fast processor (below) instead of the motion pipeline, so a job completes in well under a
second. Every test gets a fresh account and asserts the invariants of the client's issue: exactly one
job exists, at most one capture is in the ledger, and the files on disk equal the server's.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mocapd.client import (
    InputRejected,
    JobFailed,
    JobRequest,
    JobRunner,
    MocapdClient,
    RecordStage,
    RecordStore,
    RetryPolicy,
    ServerUnreachable,
)
from mocapd.errors import InputFault
from mocapd.worker.processor import ProcessRequest, ProcessResult, ProgressFn
from tests.conftest import PROJECT_ROOT, shared_file
from tests.e2e.faultproxy import FaultProxy

VIDEO = "pose2sim_balancing/cam01.mp4"
FAIL_FPS = 24  # the fast processor fails jobs asking for 24 fps with no_person_detected at preflight
CLIENT_TIMEOUT_S = 2.0  # generous for a loaded CI box; delay faults wait longer than this
JOBS_PATH = r"^/api/v1/mocap/jobs$"


class FastProcessor:
    """Stands in for the motion pipeline: real progress reports, deterministic artifact bytes derived
    from the source's SHA-256 (big enough for a download to be cut midway)."""

    def process(self, request: ProcessRequest, on_progress: ProgressFn) -> ProcessResult:
        digest = hashlib.sha256(request.source_path.read_bytes()).digest()
        on_progress("preflight", 0.5)
        if request.settings.export_fps == FAIL_FPS:
            raise InputFault("no_person_detected", "No person was found in the first frames.", stage="preflight")
        for i in range(3):
            time.sleep(0.05)
            on_progress("processing", (i + 1) / 3)
        sizes = {"motion.fbx": 300_000, "motion.bvh": 40_000, "motion.glb": 120_000, "quality.json": 2_000,
                 "preview.mp4": 200_000}
        if "unitree_g1" in request.settings.target_ids:
            sizes.update({"g1_motion.json": 50_000, "g1_motion.csv": 30_000})
        files = []
        for name, n in sizes.items():
            path = request.out_dir / name
            path.write_bytes(random.Random(digest + name.encode()).randbytes(n))
            files.append(path)
        return ProcessResult(files=files, manifest={"processor": "e2e-fast"})


@dataclass
class Service:
    url: str
    db: Any
    store: Any

    def new_account(self, name: str) -> str:
        from mocapd.db.accounts import create_account, create_key
        from mocapd.db.ledger import grant

        with self.db.write() as s:
            acct = create_account(s, name, "starter")
            grant(s, acct.id, 200, "api", reason="e2e")
            return create_key(s, acct)

    def get(self, key: str, path: str, **params: Any) -> Any:
        r = httpx.get(self.url + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def jobs(self, key: str) -> list[dict[str, Any]]:
        return list(self.get(key, "/api/v1/mocap/jobs", limit=50)["items"])

    def ledger(self, key: str, job_id: str) -> list[dict[str, Any]]:
        return list(self.get(key, "/api/v1/account/ledger", jobId=job_id)["items"])

    def wait_terminal(self, key: str, job_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(key, f"/api/v1/mocap/jobs/{job_id}")["job"]
            if job["status"] in ("completed", "failed", "canceled"):
                return dict(job)
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish")


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def running_service(data_dir: Path, processor: Any = None) -> Iterator[Service]:
    """The real API (uvicorn in a thread, on a free port) and one worker thread, on ``data_dir``."""
    import uvicorn

    from mocapd.api.app import create_app
    from mocapd.config import Settings
    from mocapd.db.engine import Database
    from mocapd.storage import open_store
    from mocapd.worker.loop import Worker
    from mocapd.worker.runner import StageRunner

    settings = Settings(data_dir=data_dir, secret="e2e-secret", poll_interval_s=1, lease_s=15.0, heartbeat_s=2.0,
                        retry_backoff_s=0.2)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    api_thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    api_thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.02)
    db = Database(settings.resolved_database_url)
    store = open_store(settings)
    stop = threading.Event()
    runner = StageRunner(db, store, processor or FastProcessor(), lease_s=settings.lease_s, retry_backoff_s=0.2,
                         job_timeout_s=60, progress_interval_s=0.05)
    worker = Worker(db, runner, lease_s=settings.lease_s, heartbeat_s=settings.heartbeat_s, retry_backoff_s=0.2,
                    idle_poll_s=0.05, stop=stop)
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    worker_thread.start()
    try:
        yield Service(f"http://127.0.0.1:{port}", db, store)
    finally:
        stop.set()
        worker_thread.join(10)
        server.should_exit = True
        api_thread.join(10)
        db.dispose()
        sock.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("mocapd-data")) as svc:
        yield svc


@pytest.fixture
def proxy(service: Service) -> Iterator[FaultProxy]:
    p = FaultProxy(service.url).start()
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def key(service: Service, request: pytest.FixtureRequest) -> str:
    return service.new_account(f"e2e-{request.node.name}-{time.monotonic_ns()}")


@pytest.fixture
def video() -> Path:
    return shared_file(VIDEO)


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


_OPEN: list[MocapdClient] = []


def _runner(proxy: FaultProxy, key: str, state_dir: Path, **policy: Any) -> JobRunner:
    client = MocapdClient(proxy.url, key, timeout_s=CLIENT_TIMEOUT_S)
    _OPEN.append(client)
    kw: dict[str, Any] = {"base_s": 0.05, "cap_s": 0.3, "give_up_after_s": 20.0, "poll_max_s": 0.3, **policy}
    return JobRunner(client, RecordStore(state_dir), policy=RetryPolicy(**kw))


def assert_invariants(service: Service, key: str, out_dir: Path | None, *, completed: bool) -> dict[str, Any]:
    """Exactly one job; at most one capture (one if completed, none otherwise); files equal the server's."""
    jobs = service.jobs(key)
    assert len(jobs) == 1, [j["id"] for j in jobs]
    job = jobs[0]
    entries = service.ledger(key, job["id"])
    kinds = [e["type"] for e in entries]
    assert kinds.count("capture") == (1 if completed else 0), kinds
    assert kinds.count("hold") <= 1, kinds
    if completed:
        assert out_dir is not None
        result = service.get(key, f"/api/v1/mocap/jobs/{job['id']}/result")
        names = {f["name"] for o in result["outputs"] for f in o["files"]} | {"manifest.json", "quality.json",
                                                                               "preview.mp4"}
        for name in names:
            served = httpx.get(service.url + f"/api/v1/mocap/jobs/{job['id']}/artifacts/{name}",
                               headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert served.status_code == 200
            assert (out_dir / name).read_bytes() == served.content, name
        assert sorted(p.name for p in out_dir.iterdir()) == sorted(names)  # no .part files left behind
    return dict(job)


# ---------------------------------------------------------------------------------------------- scenarios


def test_create_response_is_saved_before_upload_and_a_lost_create_answer_makes_no_second_job(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    proxy.add("POST", JOBS_PATH, "drop_response")  # the job is created, the answer is lost
    held = proxy.add("PUT", r"^/uploads/", "hold", forward=False)
    runner = _runner(proxy, key, tmp_path / "state")
    record = runner.start(video, JobRequest(title="saved-first"), tmp_path / "out")
    on_disk = RecordStore(tmp_path / "state").load(record.record_id)
    assert on_disk.stage is RecordStage.CREATING and on_disk.idempotency_key  # written before any request
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run_catching(runner, record, errors))
    thread.start()
    assert held.reached.wait(20), "the upload never started"
    saved = RecordStore(tmp_path / "state").load(record.record_id)
    (server_job,) = service.jobs(key)
    assert saved.stage is RecordStage.UPLOADING and saved.job_id == server_job["id"]
    assert saved.upload_url and saved.upload_url_expires_at
    held.release()
    thread.join(30)
    assert not errors, errors
    creates = [e for e in proxy.log if e.method == "POST" and e.path == "/api/v1/mocap/jobs"]
    assert len(creates) >= 2 and len({e.headers["idempotency-key"] for e in creates}) == 1
    assert_invariants(service, key, tmp_path / "out", completed=True)


def _run_catching(runner: JobRunner, record: Any, errors: list[BaseException]) -> None:
    try:
        runner.run(record)
    except BaseException as exc:  # reported to the test thread
        errors.append(exc)


def test_broken_uploads_are_resent_until_the_server_has_the_whole_file(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    proxy.add("PUT", r"^/uploads/", "drop_request")  # lost on the way
    proxy.add("PUT", r"^/uploads/", "drop_response", skip=1)  # stored, but the answer is lost
    proxy.add("PUT", r"^/uploads/", "status", status=503, skip=2)
    record = _runner(proxy, key, tmp_path / "state").submit(video, JobRequest(), tmp_path / "out")
    assert record.stage is RecordStage.DONE and record.terminal_status == "completed"
    assert proxy.count("PUT", r"^/uploads/") >= 4  # three broken, then one that worked
    job = assert_invariants(service, key, tmp_path / "out", completed=True)
    assert job["source"]["sha256"] == record.source_sha256


def test_complete_upload_timing_out_while_the_job_was_admitted_is_repeated_not_failed(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    late = proxy.add("POST", r"/complete-upload$", "delay", delay_s=CLIENT_TIMEOUT_S + 1.5)
    proxy.add("POST", r"/complete-upload$", "status", status=502, skip=1)
    record = _runner(proxy, key, tmp_path / "state").submit(video, JobRequest(target_ids=("default", "unitree_g1")),
                                                            tmp_path / "out")
    assert late.reached.is_set()
    assert proxy.count("POST", r"/complete-upload$") >= 3
    assert record.terminal_status == "completed"
    job = assert_invariants(service, key, tmp_path / "out", completed=True)
    assert job["billing"]["chargedVCredits"] == job["billing"]["heldVCredits"] == 2


def test_polling_interrupted_then_resumed_by_a_new_process_from_the_record(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    proxy.add("GET", r"^/api/v1/mocap/jobs/mocap_\w+$", "delay", delay_s=CLIENT_TIMEOUT_S + 1.5)
    proxy.add("GET", r"^/api/v1/mocap/jobs/mocap_\w+$", "drop_request", skip=1)
    proxy.add("GET", r"^/api/v1/mocap/jobs/mocap_\w+$", "status", status=503, retry_after="0", skip=2, times=1000)
    runner = _runner(proxy, key, tmp_path / "state", give_up_after_s=4.0)
    with pytest.raises(ServerUnreachable):
        runner.submit(video, JobRequest(), tmp_path / "out")
    (record,) = RecordStore(tmp_path / "state").unfinished()
    assert record.stage is RecordStage.ADMITTED and record.next_poll_at_s is not None
    proxy.clear()
    done = _cli(["resume", "--json"], proxy, key, tmp_path / "state")
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["ok"] and result["record"]["jobId"] == record.job_id
    assert proxy.count("POST", JOBS_PATH) == 0 and proxy.count("PUT", r"^/uploads/") == 0
    assert_invariants(service, key, tmp_path / "out", completed=True)


def test_resume_url_continues_a_job_whose_server_moved(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    """The record names the address the job was created at (the proxy); that address is gone now, and
    `mocapd resume --url` reaches the same service at its other address."""
    proxy.add("GET", r"^/api/v1/mocap/jobs/mocap_\w+$", "status", status=503, retry_after="0", times=1000)
    with pytest.raises(ServerUnreachable):
        _runner(proxy, key, tmp_path / "state", give_up_after_s=1.0).submit(video, JobRequest(), tmp_path / "out")
    (record,) = RecordStore(tmp_path / "state").unfinished()
    assert record.stage is RecordStage.ADMITTED and record.base_url == proxy.url
    proxy.stop()
    cmd = [sys.executable, "-m", "mocapd.client", "resume", "--json", "--url", service.url, "--api-key", key,
           "--state-dir", str(tmp_path / "state"), "--timeout", "2", "--give-up-after", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=90, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    (result,) = json.loads(done.stdout)["results"]
    assert result["ok"] and result["record"]["jobId"] == record.job_id
    assert [r.base_url for r in RecordStore(tmp_path / "state").all()] == [service.url]  # later resumes too
    assert_invariants(service, key, tmp_path / "out", completed=True)


def test_a_failed_job_is_reported_with_stage_code_and_retry_from(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    proxy.add("GET", r"^/api/v1/mocap/jobs/mocap_\w+$", "status", status=502, times=2)
    runner = _runner(proxy, key, tmp_path / "state")
    with pytest.raises(JobFailed) as caught:
        runner.submit(video, JobRequest(export_fps=FAIL_FPS), tmp_path / "out")
    err = caught.value
    assert (err.status, err.code, err.stage, err.retry_from) == ("failed", "no_person_detected", "preflight", "new_job")
    (record,) = RecordStore(tmp_path / "state").all()
    assert record.stage is RecordStage.DONE and record.terminal_status == "failed"
    assert record.error is not None and record.error["stage"] == "preflight"
    job = assert_invariants(service, key, None, completed=False)
    assert [e["type"] for e in service.ledger(key, job["id"])].count("release") == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_exit_codes_tell_rejected_failed_and_unreachable_apart(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    failed = _cli(["submit", str(video), "--fps", str(FAIL_FPS), "--json"], proxy, key, tmp_path / "s1")
    assert failed.returncode == 4, failed.stderr
    body = json.loads(failed.stdout)
    assert (body["code"], body["stage"], body["retryFrom"]) == ("no_person_detected", "preflight", "new_job")
    rejected = _cli(["submit", str(video), "--target", "no_such_target", "--json"], proxy, key, tmp_path / "s2")
    assert rejected.returncode == 3 and json.loads(rejected.stdout)["code"] == "api_target_unsupported"
    proxy.add("*", ".*", "status", status=503, times=10_000)
    unreachable = _cli(["submit", str(video), "--json", "--give-up-after", "1"], proxy, key, tmp_path / "s3")
    assert unreachable.returncode == 5, unreachable.stdout
    assert len(service.jobs(key)) == 1  # only the failed one: nothing was created by the others


def test_a_download_cut_midway_resumes_with_range_and_is_verified(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    proxy.add("GET", r"^/files/mocap_\w+/motion\.fbx$", "cut_body", fraction=0.4)
    proxy.add("GET", r"^/files/mocap_\w+/motion\.fbx$", "cut_body", fraction=0.5, skip=1)
    proxy.add("GET", r"^/files/mocap_\w+/preview\.mp4$", "cut_body", fraction=0.7)
    proxy.add("GET", r"^/files/", "status", status=503, times=2)
    record = _runner(proxy, key, tmp_path / "state").submit(video, JobRequest(), tmp_path / "out")
    fbx_gets = [e for e in proxy.log if e.path.endswith("/motion.fbx") and e.action != "status"]
    assert len(fbx_gets) == 3
    assert "range" not in fbx_gets[0].headers
    assert fbx_gets[1].headers["range"] == "bytes=120000-"  # 40 % of 300 000 arrived first
    assert fbx_gets[2].headers["range"] == "bytes=210000-"  # then half of the remaining 180 000
    art = record.artifacts["motion.fbx"]
    assert fbx_gets[1].headers["if-range"] == f'"{art.sha256}"'
    assert art.verified and hashlib.sha256((tmp_path / "out" / "motion.fbx").read_bytes()).hexdigest() == art.sha256
    assert all(a.verified for a in record.artifacts.values())
    assert_invariants(service, key, tmp_path / "out", completed=True)


def test_a_corrupted_download_is_discarded_and_fetched_again(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    runner = _runner(proxy, key, tmp_path / "state")
    record = runner.submit(video, JobRequest(), tmp_path / "out", download=False)
    assert record.stage is RecordStage.DONE and not any(a.verified for a in record.artifacts.values())
    out = tmp_path / "out2"
    out.mkdir()
    (out / "motion.bvh.part").write_bytes(b"garbage that is not the start of the file")
    record = runner.download(str(record.job_id), out)
    assert record.artifacts["motion.bvh"].verified
    assert_invariants(service, key, out, completed=True)


def test_input_rejected_at_create_is_not_retried_and_closes_the_record(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputRejected) as caught:
        _runner(proxy, key, tmp_path / "state").submit(video, JobRequest(export_fps=25), tmp_path / "out")
    assert caught.value.code == "export_fps_invalid" and caught.value.status == 422
    assert proxy.count("POST", JOBS_PATH) == 1
    assert RecordStore(tmp_path / "state").unfinished() == []
    assert service.jobs(key) == []


# ---------------------------------------------------------------------------------------------- SIGKILL


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCAPD_")}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "src"), str(PROJECT_ROOT)])
    return env


def _cmd(args: list[str], proxy: FaultProxy, key: str, state_dir: Path) -> list[str]:
    return [sys.executable, "-m", "mocapd.client", *args, "--url", proxy.url, "--api-key", key,
            "--state-dir", str(state_dir), "--timeout", "2"]


def _cli(args: list[str], proxy: FaultProxy, key: str, state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(args, proxy, key, state_dir), capture_output=True, text=True, env=_env(), timeout=90,
                          cwd=state_dir.parent)


KILL_POINTS = {
    # stage: (method, path, forward the held request to the server first?)
    "create": ("POST", JOBS_PATH, True),
    "upload": ("PUT", r"^/uploads/", False),
    "complete-upload": ("POST", r"/complete-upload$", True),
    "polling": ("GET", r"^/api/v1/mocap/jobs/mocap_\w+$", True),
    "download": ("GET", r"^/files/mocap_\w+/motion\.fbx$", True),
}


@pytest.mark.parametrize("stage", list(KILL_POINTS))
def test_a_client_killed_at_each_stage_finishes_with_resume_without_a_second_job(
    service: Service, proxy: FaultProxy, key: str, video: Path, tmp_path: Path, stage: str
) -> None:
    method, path, forward = KILL_POINTS[stage]
    if stage == "download":  # leave a partial file behind first, then die during the resumed request
        proxy.add(method, path, "cut_body", fraction=0.5)
        held = proxy.add(method, path, "hold", forward=forward, skip=1)
    else:
        held = proxy.add(method, path, "hold", forward=forward)
    state, out = tmp_path / "state", tmp_path / "out"
    proc = subprocess.Popen(_cmd(["submit", str(video), "--out", str(out), "--json"], proxy, key, state),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=tmp_path)
    try:
        assert held.reached.wait(30), f"the client never reached {stage}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proxy.clear()
    (record,) = RecordStore(state).unfinished()
    if stage == "download":
        assert (out / "motion.fbx.part").stat().st_size == 150_000
    done = _cli(["resume", "--json"], proxy, key, state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert RecordStore(state).unfinished() == []
    (again,) = RecordStore(state).all()
    assert again.job_id is not None and all(a.verified for a in again.artifacts.values())
    if stage == "download":
        (fbx,) = [e for e in proxy.log if e.path.endswith("/motion.fbx")]
        assert fbx.headers["range"] == "bytes=150000-"
    assert_invariants(service, key, out, completed=True)
