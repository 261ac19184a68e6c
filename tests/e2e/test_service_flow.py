"""End to end over real HTTP: `mocapd serve` (a real uvicorn server) on a fresh data directory, the
whole create -> upload -> complete-upload -> poll -> result flow with httpx, then a `mocapd worker`
process that runs the real motion pipeline to completion and the ledger that shows one capture."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import shared_file
from tests.support.procs import (
    MOCAPD,
    alive,
    descendants,
    dev_serve,
    free_port,
    kill_all,
    started_at,
    stop,
    wait_http_ok,
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    data = tmp_path / "data"
    with dev_serve(data, workers=0) as (base, key):
        yield base, key, data


def test_whole_flow_over_http(server: tuple[str, str, Path]) -> None:
    base, key, data_dir = server
    video = shared_file("pose2sim_balancing/cam01.mp4").read_bytes()
    digest = hashlib.sha256(video).hexdigest()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
        before = c.get("/api/v1/account").json()["data"]["balances"]["api"]
        r = c.post("/api/v1/mocap/jobs", json={"title": "balance", "sourceFilename": "cam01.mp4", "targetIds": ["default", "unitree_g1"],
                                               "exportFps": 30, "sourceBytes": len(video), "sourceSha256": digest},
                   headers={"Idempotency-Key": "e2e-1"})
        assert r.status_code == 201
        job = r.json()["data"]
        up = httpx.put(job["uploadUrl"], content=video, timeout=30)  # no API key: the URL is the credential
        assert up.json()["data"] == {"bytes": len(video), "sha256": digest}
        r = c.post(f"/api/v1/mocap/jobs/{job['jobId']}/complete-upload")
        assert r.status_code == 200 and r.json()["data"]["job"]["status"] == "queued"
        poll = c.get(f"/api/v1/mocap/jobs/{job['jobId']}")
        assert poll.headers["Retry-After"] and poll.json()["data"]["job"]["stage"] == "queued"
        assert c.get(f"/api/v1/mocap/jobs/{job['jobId']}/result").json()["data"]["outputs"] == []
        held = c.get("/api/v1/account").json()["data"]["balances"]["api"]
        assert held == {"balance": before["balance"], "held": 2, "available": before["available"] - 2}

        # a worker appears (another process, same data directory) and runs the real pipeline
        env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning"}
        log = data_dir / "worker.log"
        with log.open("w") as log_file:
            worker = subprocess.Popen([*MOCAPD, "worker", "--data-dir", str(data_dir), "--concurrency", "1"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=log_file, text=True)
        try:
            deadline = time.time() + 240
            stages = []
            while time.time() < deadline:
                d = c.get(f"/api/v1/mocap/jobs/{job['jobId']}").json()["data"]
                stages.append(d["job"]["stage"])
                if d["job"]["status"] in ("completed", "failed", "canceled"):
                    break
                time.sleep(0.5)
        finally:
            stop(worker)
        assert d["job"]["status"] == "completed", (d["job"]["error"], log.read_text()[-3000:])
        assert d["job"]["billing"] == {"heldVCredits": 2, "chargedVCredits": 2, "refundedVCredits": 0, "channel": "api"}
        types = [e["type"] for e in c.get(f"/api/v1/mocap/jobs/{job['jobId']}/events").json()["data"]["items"]]
        assert types[0] == "job.created" and types[-1] == "job.completed"
        res = c.get(f"/api/v1/mocap/jobs/{job['jobId']}/result").json()["data"]
        names = {f["name"] for o in res["outputs"] for f in o["files"]}
        assert {"motion.fbx", "motion.bvh", "motion.glb", "g1_motion.json", "g1_motion.csv"} <= names
        for o in res["outputs"]:
            for f in o["files"]:
                body = httpx.get(f["url"], timeout=30).content
                assert len(body) == f["bytes"] and hashlib.sha256(body).hexdigest() == f["sha256"]
        assert httpx.get(res["previewVideoUrl"], timeout=30).status_code == 200
        manifest = httpx.get(res["manifestUrl"], timeout=30).json()
        assert {f["name"] for f in manifest["files"]} >= names
        ledger = c.get(f"/api/v1/account/ledger?jobId={job['jobId']}").json()["data"]["items"]
        assert sorted(e["type"] for e in ledger) == ["capture", "hold"]
        after = c.get("/api/v1/account").json()["data"]["balances"]["api"]
        assert after == {"balance": before["balance"] - 2, "held": 0, "available": before["available"] - 2}
        replay = c.post("/api/v1/mocap/jobs", json={"title": "balance", "sourceFilename": "cam01.mp4",
                        "targetIds": ["default", "unitree_g1"], "exportFps": 30, "sourceBytes": len(video),
                        "sourceSha256": digest}, headers={"Idempotency-Key": "e2e-1"})
        assert replay.headers.get("Idempotent-Replayed") == "true" and replay.json()["data"]["jobId"] == job["jobId"]


def test_a_killed_serve_leaves_no_process_behind(tmp_path: Path) -> None:
    """SIGKILL on `mocapd serve`: its API processes and workers stop too, and the port is free again."""
    port = free_port()
    env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([*MOCAPD, "serve", "--data-dir", str(tmp_path / "data"), "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    children: list[int] = []
    try:
        wait_http_ok(base + "/healthz")
        children = descendants(proc.pid)
        assert len(children) >= 3  # two API processes, the fork server, a worker
        identity = {p: started_at(p) for p in children}
        proc.kill()
        proc.wait()
        deadline = time.time() + 15
        while time.time() < deadline and any(alive(p, identity[p]) for p in children):
            time.sleep(0.2)
        assert not [p for p in children if alive(p, identity[p])]
        with pytest.raises(httpx.HTTPError):
            httpx.get(base + "/healthz", timeout=1)
    finally:
        kill_all(children)

