"""`JobRunner` stage rules against a scripted, wire-shaped fake of the API (the real server is exercised in
tests/e2e/test_client_faults.py). Time is simulated: ``sleep`` advances a fake clock."""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mocapd.client import (
    InputRejected,
    IntegrityError,
    JobRequest,
    JobRunner,
    MocapdClient,
    RecordStage,
    RecordStore,
    RetryPolicy,
    ServerUnreachable,
)

JOB = "mocap_0001"
ART = bytes(range(256)) * 200  # motion.fbx, 51 200 bytes
ART_SHA = hashlib.sha256(ART).hexdigest()
Handler = Callable[[httpx.Request], httpx.Response]


def _problem(status: int, code: str, retry_from: str = "none", retryable: bool = False) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "code": code, "detail": code, "stage": "x",
                                        "retryable": retryable, "retryFrom": retry_from},
                          headers={"content-type": "application/problem+json"})


class FakeApi:
    """The happy path of the v1 wire; ``script[route]`` holds handlers used (once each) before it."""

    def __init__(self) -> None:
        self.script: dict[str, list[Handler]] = defaultdict(list)
        self.calls: list[str] = []
        self.polls_until_done = 2
        self.status = "queued"

    def route(self, req: httpx.Request) -> str:
        p = req.url.path
        if p == "/api/v1/mocap/jobs":
            return "create"
        if p.startswith("/uploads/"):
            return "upload"
        if p.startswith("/files/"):
            return "file"
        return p.rsplit("/", 1)[-1] if not p.endswith(JOB) else "poll"

    def __call__(self, req: httpx.Request) -> httpx.Response:
        route = self.route(req)
        self.calls.append(route)
        if self.script[route]:
            return self.script[route].pop(0)(req)
        return getattr(self, "on_" + route.replace("-", "_"))(req)

    def _job(self) -> dict[str, Any]:
        return {"job": {"id": JOB, "status": self.status, "stage": self.status, "progress": 0.5, "error": None},
                "events": [], "result": None}

    def on_create(self, req: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"data": {"jobId": JOB, "status": "draft", "uploadUrl": "http://api/uploads/"
                                                  + JOB + "?v=1", "uploadUrlExpiresAt": "2999-01-01T00:00:00Z"}})

    def on_upload(self, req: httpx.Request) -> httpx.Response:
        body = req.read()
        return httpx.Response(200, json={"data": {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}})

    def on_upload_url(self, req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"uploadUrl": "http://api/uploads/" + JOB + "?v=2",
                                                  "uploadUrlExpiresAt": "2999-01-01T00:00:00Z"}})

    def on_complete_upload(self, req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": self._job()}, headers={"retry-after": "3"})

    def on_poll(self, req: httpx.Request) -> httpx.Response:
        self.polls_until_done -= 1
        if self.polls_until_done <= 0:
            self.status = "completed"
            return httpx.Response(200, json={"data": self._job()})
        return httpx.Response(200, json={"data": self._job()}, headers={"retry-after": "3"})

    def on_result(self, req: httpx.Request) -> httpx.Response:
        files = [{"name": "motion.fbx", "url": f"http://api/files/{JOB}/motion.fbx?s=1", "bytes": len(ART),
                  "sha256": ART_SHA}]
        return httpx.Response(200, json={"data": {"outputs": [{"targetId": "default", "files": files}]}})

    def on_file(self, req: httpx.Request) -> httpx.Response:
        rng = req.headers.get("range")
        if rng and req.headers.get("if-range") == f'"{ART_SHA}"':
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            return httpx.Response(206, content=ART[start:], headers={"content-range": f"bytes {start}-{len(ART) - 1}/{len(ART)}"})
        return httpx.Response(200, content=ART, headers={"etag": f'"{ART_SHA}"'})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, d: float) -> None:
        self.sleeps.append(d)
        self.t += d


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    p = tmp_path / "clip.mp4"
    p.write_bytes(b"video bytes " * 1000)
    return p


def _runner(fake: FakeApi, clock: Clock, tmp_path: Path, **policy: Any) -> JobRunner:
    client = MocapdClient("http://api", "sk_live_x", http=httpx.Client(transport=httpx.MockTransport(fake)))
    return JobRunner(client, RecordStore(tmp_path / "state"), policy=RetryPolicy(**policy), sleep=clock.sleep,
                     clock=lambda: 1e9 + clock.t, monotonic=lambda: clock.t, rng=random.Random(0))


def test_happy_path_sends_the_digest_and_honours_retry_after(fake: FakeApi, clock: Clock, video: Path,
                                                             tmp_path: Path) -> None:
    record = _runner(fake, clock, tmp_path).submit(video, JobRequest(title="t"), tmp_path / "out")
    assert fake.calls == ["create", "upload", "complete-upload", "poll", "poll", "result", "file"]
    assert record.request["sourceSha256"] == hashlib.sha256(video.read_bytes()).hexdigest()
    assert record.stage is RecordStage.DONE and record.artifacts["motion.fbx"].verified
    assert (tmp_path / "out" / "motion.fbx").read_bytes() == ART
    assert clock.sleeps and all(3.0 <= s <= 3.6 for s in clock.sleeps)  # Retry-After 3, jittered up to 20 %


def test_an_expired_upload_url_is_reissued(fake: FakeApi, clock: Clock, video: Path, tmp_path: Path) -> None:
    fake.script["upload"].append(lambda req: _problem(403, "upload_url_expired", "upload"))
    record = _runner(fake, clock, tmp_path).submit(video, JobRequest(), tmp_path / "out")
    assert fake.calls[:4] == ["create", "upload", "upload-url", "upload"]
    assert record.upload_url is not None and record.upload_url.endswith("v=2")


def test_job_not_awaiting_upload_moves_on_to_complete_upload(fake: FakeApi, clock: Clock, video: Path,
                                                             tmp_path: Path) -> None:
    fake.script["upload"].append(lambda req: _problem(409, "job_not_awaiting_upload"))
    record = _runner(fake, clock, tmp_path).submit(video, JobRequest(), tmp_path / "out")
    assert fake.calls[:3] == ["create", "upload", "complete-upload"] and record.stage is RecordStage.DONE


def test_upload_missing_at_complete_upload_sends_the_file_again(fake: FakeApi, clock: Clock, video: Path,
                                                                tmp_path: Path) -> None:
    fake.script["complete-upload"].append(lambda req: _problem(409, "upload_missing", "upload"))
    _runner(fake, clock, tmp_path).submit(video, JobRequest(), tmp_path / "out")
    assert fake.calls[:5] == ["create", "upload", "complete-upload", "upload", "complete-upload"]


def test_not_enough_credits_keeps_the_record_resumable(fake: FakeApi, clock: Clock, video: Path,
                                                       tmp_path: Path) -> None:
    fake.script["complete-upload"].append(lambda req: _problem(402, "insufficient_api_v_credits", "complete_upload"))
    runner = _runner(fake, clock, tmp_path)
    with pytest.raises(InputRejected) as caught:
        runner.submit(video, JobRequest(), tmp_path / "out")
    assert caught.value.exit_code == 3
    (record,) = runner.records.unfinished()
    assert record.stage is RecordStage.UPLOADED
    runner.run(record)  # credits granted meanwhile: resume completes without a new create or upload
    assert fake.calls.count("create") == 1 and fake.calls.count("upload") == 1 and record.stage is RecordStage.DONE


def test_an_unreadable_source_fails_the_record_for_good(fake: FakeApi, clock: Clock, video: Path,
                                                        tmp_path: Path) -> None:
    fake.script["complete-upload"].append(lambda req: _problem(422, "source_unreadable", "new_job"))
    runner = _runner(fake, clock, tmp_path)
    with pytest.raises(InputRejected):
        runner.submit(video, JobRequest(), tmp_path / "out")
    (record,) = runner.records.all()
    assert record.stage is RecordStage.DONE and record.terminal_status == "failed"
    assert record.error is not None and record.error["code"] == "source_unreadable"


def test_polling_gives_up_after_the_budget_and_keeps_the_record(fake: FakeApi, clock: Clock, video: Path,
                                                                tmp_path: Path) -> None:
    fake.script["poll"].extend([lambda req: httpx.Response(503, headers={"retry-after": "2"})] * 1000)
    runner = _runner(fake, clock, tmp_path, give_up_after_s=60.0)
    with pytest.raises(ServerUnreachable):
        runner.submit(video, JobRequest(), tmp_path / "out")
    (record,) = runner.records.unfinished()
    assert record.stage is RecordStage.ADMITTED and record.next_poll_at_s is not None
    assert 60.0 <= clock.t <= 60.0 + 4 * 30  # gave up soon after the budget, never before
    assert all(s >= 2.0 for s in clock.sleeps[1:])  # every retry waited at least Retry-After


def test_a_server_that_ignores_range_gets_the_part_rewritten(fake: FakeApi, clock: Clock, video: Path,
                                                             tmp_path: Path) -> None:
    runner = _runner(fake, clock, tmp_path)
    record = runner.submit(video, JobRequest(), tmp_path / "out", download=False)
    out = tmp_path / "dl"
    out.mkdir()
    (out / "motion.fbx.part").write_bytes(ART[:1000])
    fake.script["file"].append(lambda req: httpx.Response(200, content=ART))  # Range ignored
    runner.download(str(record.job_id), out)
    assert (out / "motion.fbx").read_bytes() == ART and not (out / "motion.fbx.part").exists()


def test_a_file_that_never_verifies_raises_and_is_not_kept(fake: FakeApi, clock: Clock, video: Path,
                                                           tmp_path: Path) -> None:
    fake.script["file"].extend([lambda req: httpx.Response(200, content=b"x" * len(ART))] * 10)
    runner = _runner(fake, clock, tmp_path, max_download_attempts=3)
    with pytest.raises(IntegrityError) as caught:
        runner.submit(video, JobRequest(), tmp_path / "out")
    assert caught.value.name == "motion.fbx" and caught.value.exit_code == 6
    assert fake.calls.count("file") == 3
    assert list((tmp_path / "out").iterdir()) == []
    (record,) = runner.records.unfinished()
    assert record.stage is RecordStage.FINISHED  # `mocapd resume` will try the download again


def test_a_changed_source_is_refused_before_upload(fake: FakeApi, clock: Clock, video: Path, tmp_path: Path) -> None:
    fake.script["create"].append(lambda req: httpx.Response(503))
    fake.script["create"].append(lambda req: (video.write_bytes(b"another video"), fake.on_create(req))[1])
    from mocapd.client import SourceChanged

    with pytest.raises(SourceChanged):
        _runner(fake, clock, tmp_path).submit(video, JobRequest(), tmp_path / "out")
    assert "upload" not in fake.calls


def test_the_create_body_is_identical_on_every_retry(fake: FakeApi, clock: Clock, video: Path, tmp_path: Path) -> None:
    bodies: list[tuple[bytes, str]] = []

    def lost(req: httpx.Request) -> httpx.Response:
        bodies.append((req.read(), req.headers["idempotency-key"]))
        raise httpx.ReadTimeout("lost", request=req)

    fake.script["create"].extend([lost, lost])
    fake.script["create"].append(lambda req: (bodies.append((req.read(), req.headers["idempotency-key"])),
                                              fake.on_create(req))[1])
    _runner(fake, clock, tmp_path).submit(video, JobRequest(target_ids=("default", "unitree_g1")), tmp_path / "o")
    assert len(bodies) == 3 and len(set(bodies)) == 1
    assert json.loads(bodies[0][0])["targetIds"] == ["default", "unitree_g1"]


def test_the_default_output_folder_is_fixed_when_the_job_is_created(fake: FakeApi, clock: Clock, video: Path,
                                                                    tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    first, later = tmp_path / "here", tmp_path / "elsewhere"
    first.mkdir()
    later.mkdir()
    monkeypatch.chdir(first)
    fake.script["poll"].extend([lambda req: httpx.Response(503)] * 2)
    runner = _runner(fake, clock, tmp_path, give_up_after_s=0.0)
    with pytest.raises(ServerUnreachable):
        runner.submit(video, JobRequest())
    monkeypatch.chdir(later)  # `mocapd resume` run from another folder
    (record,) = runner.records.unfinished()
    runner.run(record)
    assert (first / JOB / "motion.fbx").read_bytes() == ART and not any(later.iterdir())


def test_rate_limited_answers_are_retried_after_retry_after(fake: FakeApi, clock: Clock, video: Path,
                                                            tmp_path: Path) -> None:
    limited = lambda req: httpx.Response(  # noqa: E731
        429, json={"status": 429, "code": "rate_limited", "detail": "slow down", "stage": "request",
                   "retryable": True, "retryFrom": "none"},
        headers={"content-type": "application/problem+json", "retry-after": "7"})
    for route in ("create", "complete-upload", "poll"):
        fake.script[route].append(limited)
    record = _runner(fake, clock, tmp_path).submit(video, JobRequest(), tmp_path / "out")
    assert record.stage is RecordStage.DONE
    assert fake.calls.count("create") == 2 and fake.calls.count("complete-upload") == 2
    assert sum(1 for s in clock.sleeps if s >= 7.0) >= 3  # never sooner than Retry-After
