"""A re-export's time against its parent job's: each clip is run as a job (default + unitree_g1 at 30 fps)
through the API and an in-process worker, then re-exported at 60 fps to the same targets; the worker's
wall time for each attempt is compared (the API calls are not timed).

    PYTHONPATH=src .venv/bin/python bench/reexport.py --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from mocapd.api.app import create_app
from mocapd.config import Settings
from mocapd.db.accounts import create_account, create_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant
from mocapd.storage import open_store
from mocapd.worker.loop import Worker
from mocapd.worker.processor import PipelineProcessor
from mocapd.worker.runner import StageRunner

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIPS = ("pose2sim_balancing/cam01.mp4", "video/sports2d_demo.mp4")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mocapd-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", secret="bench")
        with TestClient(create_app(settings)) as client:
            db = Database(settings.resolved_database_url)
            with db.write() as s:
                acct = create_account(s, "bench", "premium")
                grant(s, acct.id, 100_000, "api")
                key = create_key(s, acct)
            h = {"Authorization": f"Bearer {key}"}
            runner = StageRunner(db, open_store(settings), PipelineProcessor(), lease_s=120, retry_backoff_s=0.1,
                                 job_timeout_s=3600, work_dir=Path(tmp))
            worker = Worker(db, runner, lease_s=120, heartbeat_s=10, retry_backoff_s=0.1)

            def run() -> float:
                t0 = time.perf_counter()
                outcome = worker.run_once()
                assert str(outcome).endswith("completed"), outcome
                return time.perf_counter() - t0

            for clip in CLIPS:
                data = (args.data / clip).read_bytes()
                parents, children = [], []
                for _ in range(args.repeat):
                    job = client.post("/api/v1/mocap/jobs", headers=h, json={
                        "sourceFilename": Path(clip).name, "targetIds": ["default", "unitree_g1"], "exportFps": 30,
                    }).json()["data"]
                    client.put(job["uploadUrl"], content=data)
                    assert client.post(f"/api/v1/mocap/jobs/{job['jobId']}/complete-upload", headers=h).status_code == 200
                    parents.append(run())
                    r = client.post(f"/api/v1/mocap/jobs/{job['jobId']}/exports", headers=h,
                                    json={"exportFps": 60, "targetIds": ["default", "unitree_g1"]})
                    assert r.status_code == 201, r.text
                    children.append(run())
                p, c = statistics.median(parents), statistics.median(children)
                print(f"{clip}: job {p:.2f} s, re-export {c:.2f} s = {c / p:.2f}x "
                      f"(jobs {', '.join(f'{x:.2f}' for x in parents)}; re-exports "
                      f"{', '.join(f'{x:.2f}' for x in children)})", flush=True)
            db.dispose()


if __name__ == "__main__":
    main()
