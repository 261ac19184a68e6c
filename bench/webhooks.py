"""Webhook delivery benchmark on the embedded default (SQLite), against `mocapd serve --workers 0`
(its dispatcher) and a local receiver.

1. Latency: jobs are admitted, claimed and finished (the queue operations a worker runs) at a steady
   rate; the latency is from the job.completed event's timestamp (the commit of the change) to its
   arrival at the receiver; p50/p99.
2. Throughput: N messages written at once; deliveries per second until the receiver has them all.

    .venv/bin/python bench/webhooks.py --jobs 200 --rate 10 --burst 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, wait_ready

from mocapd.config import Settings
from mocapd.db import queue
from mocapd.db.accounts import create_account, create_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant
from mocapd.db.migrate import upgrade
from mocapd.db.models import Job
from mocapd.db.outbox import enqueue_event
from mocapd.db.transitions import mark_admitted, mark_created


class Arrivals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, dict[str, Any]]] = []


def start_receiver(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            t = time.time()
            with arrivals.lock:
                arrivals.items.append((t, json.loads(body)))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def new_job(db: Database, account_id: str, i: int) -> str:
    """A draft job admitted to the queue (the transitions complete-upload makes)."""
    now = datetime.now(UTC)
    job_id = f"mocap_bench{i:06d}"
    with db.write() as s:
        job = Job(id=job_id, account_id=account_id, channel="api", status="draft", stage="awaiting_upload",
                  progress=0.0, target_ids=["default"], export_fps=30, mocap_type="full_body", trim_start_s=0.0,
                  trim_end_s=1.0, source_filename="c.mp4", source_key=f"sources/{job_id}", max_upload_bytes=1,
                  created_at=now, updated_at=now, event_seq=0,
                  source_facts={"durationSec": 1.0, "fps": 30.0, "width": 640, "height": 360, "rotation": 0})
        s.add(job)
        mark_created(s, job, "Job created.")
        mark_admitted(s, job, credits=1, queue_weight=1, admitted={"heldVCredits": 1}, now=now)
    return job_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10.0, help="job completions a second")
    ap.add_argument("--burst", type=int, default=2000, help="messages written at once for the throughput run")
    args = ap.parse_args()
    arrivals = Arrivals()
    _server, hook_port = start_receiver(arrivals)
    with tempfile.TemporaryDirectory(prefix="mocapd-bench-") as tmp:
        data = Path(tmp) / "data"
        settings = Settings(data_dir=data)
        db = Database(settings.resolved_database_url)
        upgrade(db)
        with db.write() as s:
            acct = create_account(s, "bench", "premium")
            grant(s, acct.id, 10**7, "api")
            key = create_key(s, acct)
            account_id = acct.id
        port = free_port()
        env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning", "MOCAPD_WEBHOOK_ALLOW_PRIVATE": "1", "MOCAPD_RATE_LIMIT": "0"}
        serve = subprocess.Popen([sys.executable, "-m", "mocapd", "serve", "--data-dir", str(data), "--port", str(port),
                                  "--workers", "0"], env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            r = httpx.post(base + "/api/v1/webhooks", json={"url": f"http://127.0.0.1:{hook_port}/h", "events": ["job.completed"]},
                           headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 201, r.text
            jobs = [new_job(db, account_id, i) for i in range(args.jobs)]
            interval = 1.0 / args.rate
            t_next = time.perf_counter()
            for job_id in jobs:
                time.sleep(max(0.0, t_next - time.perf_counter()))
                t_next += interval
                c = queue.claim(db, "bench-worker", 60)
                assert c is not None and c.id == job_id
                assert queue.finish(db, c.id, c.lease_token, [])
            deadline = time.time() + 60
            while len(arrivals.items) < args.jobs and time.time() < deadline:
                time.sleep(0.05)
            lat = sorted(t - datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00")).timestamp()
                         for t, b in arrivals.items)
            print(f"latency, completion -> receipt: {len(lat)} of {args.jobs} jobs at {args.rate:g}/s: "
                  f"p50 {1000 * statistics.median(lat):.0f} ms, p99 {1000 * lat[int(0.99 * len(lat)) - 1]:.0f} ms, "
                  f"max {1000 * lat[-1]:.0f} ms")
            with arrivals.lock:
                arrivals.items.clear()
            with db.write() as s:
                for i in range(args.burst):
                    enqueue_event(s, account_id, "job.completed", {"job": {"id": f"mocap_burst{i}"}}, job_id=f"mocap_burst{i}")
            t0 = time.time()
            deadline = t0 + 600
            while len(arrivals.items) < args.burst and time.time() < deadline:
                time.sleep(0.02)
            dt = max(t for t, _ in arrivals.items) - t0
            print(f"throughput: {len(arrivals.items)} deliveries in {dt:.1f} s = {len(arrivals.items) / dt:.0f} deliveries/s "
                  "(one dispatcher, 8 sending threads)")
        finally:
            serve.terminate()
            serve.wait(30)
            db.dispose()


if __name__ == "__main__":
    main()
