"""The SDK sends a large file by tus and, after its process is killed mid-file, a new process resumes
from the server's offset (read from the resume record's upload URL), never from byte 0."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mocapd.client import MocapdClient
from mocapd.client.flow import JobRunner
from mocapd.client.records import RecordStage, RecordStore
from mocapd.config import Settings
from mocapd.db.accounts import create_account, create_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant
from tests.conftest import shared_file
from tests.integration.api.test_tus import _serve

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mocapd.client import MocapdClient
    from mocapd.client.flow import JobRequest, JobRunner
    from mocapd.client.progress import NullReporter
    from mocapd.client.records import RecordStore

    class Slow(NullReporter):  # a slow network: about 20 MiB/s
        def upload(self, sent, total):
            print(sent, total, flush=True)
            time.sleep(0.05)

    url, key, state, video = sys.argv[1:5]
    runner = JobRunner(MocapdClient(url, key), RecordStore(Path(state)), reporter=Slow())
    runner.submit(Path(video), JobRequest(), Path(state) / "out", wait=False)
    print("done", flush=True)
""")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("sdk-tus"), secret="sdk-tus-secret")
    url, server, thread, sock = _serve(settings)
    db = Database(settings.resolved_database_url)
    with db.write() as s:
        acct = create_account(s, "sdk", "premium")
        grant(s, acct.id, 100, "api")
        key = create_key(s, acct)
    try:
        yield url, key
    finally:
        server.should_exit = True
        thread.join(10)
        db.dispose()
        sock.close()


def test_sdk_resumes_a_large_upload_after_its_process_is_killed(api: tuple[str, str], tmp_path: Path) -> None:
    url, key = api
    video = tmp_path / "long.mp4"  # a real clip padded to 32 MiB (the probe reads the container, not the tail)
    video.write_bytes(shared_file("pose2sim_balancing/cam01.mp4").read_bytes() + os.urandom(32 << 20))
    size, digest = video.stat().st_size, hashlib.sha256(video.read_bytes()).hexdigest()
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(Path.cwd() / "src"), os.environ.get("PYTHONPATH", "")) if p)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, key, str(state), str(video)], stdout=subprocess.PIPE,
                             text=True, env=env)
    try:
        assert child.stdout is not None
        for line in child.stdout:  # kill it once about 40 % is on the wire
            sent, total = (int(x) for x in line.split()[:2])
            if sent >= 0.4 * total:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    records = RecordStore(state)
    (record,) = list(records.all())
    assert record.stage is RecordStage.UPLOADING and record.tus_upload_url
    offset = _server_offset(record.tus_upload_url)
    assert 0.2 * size <= offset < size  # what reached the server before the kill stays there

    patches: list[int] = []

    def seen(request: httpx.Request) -> None:
        if request.method == "PATCH":
            patches.append(int(request.headers["Upload-Offset"]))

    with httpx.Client(timeout=60, event_hooks={"request": [seen]}) as http:
        runner = JobRunner(MocapdClient(url, key, http=http), records)
        done = runner.run(record, wait=False)
    assert patches == [offset]  # one PATCH, from the server's offset: nothing sent twice
    assert done.stage is RecordStage.ADMITTED
    job = httpx.get(f"{url}/api/v1/mocap/jobs/{done.job_id}", headers={"Authorization": f"Bearer {key}"}).json()
    source: dict[str, Any] = job["data"]["job"]["source"]
    assert (source["bytes"], source["sha256"]) == (size, digest)
    assert job["data"]["job"]["status"] == "queued"


def _server_offset(upload_url: str) -> int:
    deadline = time.monotonic() + 10
    while True:  # the server commits what it received once it sees the connection die
        r = httpx.head(upload_url, headers={"Tus-Resumable": "1.0.0"})
        offset = int(r.headers["Upload-Offset"])
        probe = httpx.patch(upload_url, headers={"Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
                                                 "Content-Type": "application/offset+octet-stream"}, content=b"")
        if probe.status_code != 423 or time.monotonic() > deadline:
            return int(httpx.head(upload_url, headers={"Tus-Resumable": "1.0.0"}).headers["Upload-Offset"])
        time.sleep(0.05)
