"""End to end over real HTTP: a user's avatar uploaded and prepared through the API, then a real video
job with ``targetIds: ["default", "avatar:..."]`` run by a `mocapd worker` process: both outputs
arrive, and the avatar's FBX and GLB carry its own bones, mesh and skin (GLB checked by pygltflib's
validator, FBX read back by ufbx)."""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from pathlib import Path

import httpx
import pygltflib

from mocapd.avatars.read_fbx import read_fbx
from mocapd.avatars.read_gltf import read_gltf
from tests.conftest import shared_file
from tests.e2e.test_service_flow import server  # noqa: F401  (the fixture)
from tests.support.procs import MOCAPD, stop
from tests.support.rigs import rig_bytes


def test_a_video_job_animates_the_users_avatar(server: tuple[str, str, Path]) -> None:  # noqa: F811
    base, key, data_dir = server
    model = rig_bytes("m2m_male.glb")
    video = shared_file("pose2sim_balancing/cam01.mp4").read_bytes()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        av = c.post("/api/v1/avatars", json={"name": "Male", "sourceFilename": "m2m_male.glb",
                                             "sourceBytes": len(model)}).json()["data"]
        assert httpx.put(av["uploadUrl"], content=model, timeout=60).status_code == 200
        ready = c.post(f"/api/v1/avatars/{av['avatarId']}/complete-upload").json()["data"]
        assert ready["status"] == "ready" and ready["unmapped"] == []
        target = f"avatar:{av['avatarId']}"
        job = c.post("/api/v1/mocap/jobs", json={"sourceFilename": "cam01.mp4", "targetIds": ["default", target],
                                                 "exportFps": 30, "sourceBytes": len(video)}).json()["data"]
        assert httpx.put(job["uploadUrl"], content=video, timeout=60).status_code == 200
        assert c.post(f"/api/v1/mocap/jobs/{job['jobId']}/complete-upload").json()["data"]["job"]["status"] == "queued"
        env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning"}
        log = data_dir / "worker.log"
        with log.open("w") as log_file:
            worker = subprocess.Popen([*MOCAPD, "worker", "--data-dir", str(data_dir), "--concurrency", "1"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=log_file, text=True)
        try:
            deadline = time.time() + 240
            while time.time() < deadline:
                d = c.get(f"/api/v1/mocap/jobs/{job['jobId']}").json()["data"]
                if d["job"]["status"] in ("completed", "failed", "canceled"):
                    break
                time.sleep(0.5)
        finally:
            stop(worker)
        assert d["job"]["status"] == "completed", (d["job"]["error"], log.read_text()[-3000:])
        res = c.get(f"/api/v1/mocap/jobs/{job['jobId']}/result").json()["data"]
        outputs = {o["targetId"]: o for o in res["outputs"]}
        assert set(outputs) == {"default", target}
        out = outputs[target]
        names = [f["name"] for f in out["files"]]
        assert out["resultType"] == "fbx" and names == [f"avatar_{av['avatarId']}.fbx", f"avatar_{av['avatarId']}.glb"]
        assert out["fbxUrl"]
        fbx = httpx.get(out["files"][0]["url"], timeout=60).content
        glb = httpx.get(out["files"][1]["url"], timeout=60).content
    rig = read_fbx(fbx, "a.fbx")
    assert "pelvis" in rig.names and len(rig.names) == ready["bones"] and rig.meshes
    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from pygltflib.validator import validate

        validate(gltf)
    back = read_gltf(glb, "a.glb")
    assert back.names == rig.names and len(back.meshes) == 1 and gltf.animations[0].channels
