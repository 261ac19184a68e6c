"""Client costs: CLI start-up, upload and download throughput (with SHA-256 verification), resuming a
cut download, resume-record writes, and the end-to-end latency of a job on the fast test processor.

Usage (from the project root):

    .venv/bin/python bench/bench_client.py [--mb 100]

Runs the real API (uvicorn) and one worker in this process on a temporary data directory, exactly as
tests/e2e/test_client_faults.py does; the worker's processor writes one ``motion.fbx`` of ``--mb`` MB so
the download is large. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.faultproxy import FaultProxy  # noqa: E402
from tests.e2e.test_client_faults import running_service  # noqa: E402

from mocapd.client import JobRequest, JobRunner, MocapdClient, RecordStore, RetryPolicy  # noqa: E402
from mocapd.client.records import ResumeRecord  # noqa: E402
from mocapd.worker.processor import ProcessRequest, ProcessResult, ProgressFn  # noqa: E402

VIDEO = Path(os.environ.get("MOCAPD_TEST_DATA", ROOT.parent / "shared" / "data")) / "pose2sim_balancing" / "cam01.mp4"


class BigProcessor:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes

    def process(self, request: ProcessRequest, on_progress: ProgressFn) -> ProcessResult:
        on_progress("processing", 1.0)
        path = request.out_dir / "motion.fbx"
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(self.nbytes >> 20):
                f.write(block)
        return ProcessResult(files=[path], manifest={})


def cli_startup_s(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mocapd.client", "--help"], check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def record_save_ms(tmp: Path, n: int = 200) -> float:
    store = RecordStore(tmp / "records")
    rec = ResumeRecord(record_id=ResumeRecord.new_id(), base_url="http://x", idempotency_key="k", request={},
                       source_path="/v", source_bytes=1, source_sha256="00", out_dir="/o")
    t0 = time.perf_counter()
    for i in range(n):
        rec.progress = i / n
        store.save(rec)
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    nbytes = args.mb << 20
    print(f"CLI start-up (python -m mocapd.client --help, median of 5): {cli_startup_s():.2f} s")
    with tempfile.TemporaryDirectory(prefix="mocapd-bench-") as tmp_s:
        tmp = Path(tmp_s)
        print(f"resume record write (temp + fsync + os.replace): {record_save_ms(tmp):.2f} ms")
        big = tmp / "big.bin"
        with open(big, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        with running_service(tmp / "data", BigProcessor(nbytes)) as svc:
            key = svc.new_account("bench")
            policy = RetryPolicy(base_s=0.05, cap_s=0.5, poll_max_s=0.2)
            with MocapdClient(svc.url, key, timeout_s=60) as client:
                created = client.create_job({"sourceFilename": "big.bin", "targetIds": ["default"]}, "bench-up").data
                t0 = time.perf_counter()
                client.upload(created["uploadUrl"], big)
                dt = time.perf_counter() - t0
                print(f"upload {args.mb} MB (streamed PUT, server hashes): {dt:.2f} s = {args.mb / dt:.0f} MB/s")

                runner = JobRunner(client, RecordStore(tmp / "state"), policy=policy)
                t0 = time.perf_counter()
                rec = runner.submit(VIDEO, JobRequest(), tmp / "out1", download=False)
                print(f"job end to end without download (create, upload 0.4 MB, admit, process, poll): "
                      f"{time.perf_counter() - t0:.2f} s")
                t0 = time.perf_counter()
                runner.download(str(rec.job_id), tmp / "out2")
                dt = time.perf_counter() - t0
                print(f"download + verify {args.mb} MB: {dt:.2f} s = {args.mb / dt:.0f} MB/s")

            proxy = FaultProxy(svc.url).start()
            try:
                proxy.add("GET", r"/motion\.fbx$", "cut_body", fraction=0.8)
                with MocapdClient(proxy.url, key, timeout_s=60) as client:
                    runner = JobRunner(client, RecordStore(tmp / "state2"), policy=policy)
                    t0 = time.perf_counter()
                    runner.download(str(rec.job_id), tmp / "out3")
                    dt = time.perf_counter() - t0
                gets: list[Any] = [e for e in proxy.log if e.path.endswith("/motion.fbx")]
                print(f"download through the proxy cut at 80 % then resumed ({len(gets)} GETs, "
                      f"second with {gets[-1].headers.get('range')}): {dt:.2f} s")
            finally:
                proxy.stop()


if __name__ == "__main__":
    main()
