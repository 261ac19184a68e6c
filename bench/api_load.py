"""API load benchmark on the embedded default (SQLite + local folder), one `mocapd api` process.

1. Status polls: C concurrent clients poll GET /api/v1/mocap/jobs/{id} for D seconds (each client its
   own job); reports polls/s and p50/p99 latency.
2. Upload: one file of N MB streamed to the signed upload URL; reports MB/s against the disk's own
   write speed, and the server's peak memory growth (VmHWM - VmRSS before, from /proc).

    .venv/bin/python bench/api_load.py --clients 64 --seconds 15 --upload-mb 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mem_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cli(data: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mocapd", *args, "--data-dir", str(data)], check=True,
                         capture_output=True, text=True)
    return out.stdout


async def poll_load(base: str, key: str, job_ids: list[str], seconds: float) -> list[float]:
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=len(job_ids), max_keepalive_connections=len(job_ids))
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=30) as c:
        async def one(job_id: str) -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await c.get(f"/api/v1/mocap/jobs/{job_id}")
                assert r.status_code == 200, r.text
                lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(one(j) for j in job_ids))
    return lat


def disk_write_mb_s(path: Path, mb: int) -> float:
    block = os.urandom(1 << 20)
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return mb / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--upload-mb", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mocapd-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        data = Path(tmp) / "data"
        cli(data, "db", "upgrade")
        cli(data, "accounts", "create", "bench", "--plan", "premium")
        cli(data, "credits", "grant", "bench", "100000")
        key = cli(data, "keys", "create", "bench").strip().splitlines()[-1]
        port = free_port()
        env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning"}
        server = subprocess.Popen([sys.executable, "-m", "mocapd", "api", "--data-dir", str(data), "--host", "127.0.0.1",
                                   "--port", str(port)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(base + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            h = {"Authorization": f"Bearer {key}"}
            jobs = []
            for i in range(args.clients):
                r = httpx.post(base + "/api/v1/mocap/jobs", json={"sourceFilename": f"c{i}.mp4", "targetIds": ["default"]},
                               headers=h)
                jobs.append(r.json()["data"]["jobId"])
            asyncio.run(poll_load(base, key, jobs[:4], 2))  # warm-up
            lat = asyncio.run(poll_load(base, key, jobs, args.seconds))
            lat.sort()
            n = len(lat)
            print(f"polls: {args.clients} clients, {args.seconds:.0f} s: {n / args.seconds:.0f} polls/s, "
                  f"p50 {1000 * statistics.median(lat):.1f} ms, p99 {1000 * lat[int(0.99 * n) - 1]:.1f} ms")

            src = Path(tmp) / "upload.bin"
            block = os.urandom(1 << 20)
            with open(src, "wb") as f:
                for _ in range(args.upload_mb):
                    f.write(block)
            r = httpx.post(base + "/api/v1/mocap/jobs", json={"sourceFilename": "big.mp4", "targetIds": ["default"]}, headers=h)
            url = r.json()["data"]["uploadUrl"]
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
            rss0 = mem_kb(server.pid, "VmRSS")
            t0 = time.perf_counter()
            with open(src, "rb") as f:
                r = httpx.put(url, content=f, timeout=600, headers={"Content-Length": str(src.stat().st_size)})
            dt = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            peak = mem_kb(server.pid, "VmHWM")
            disk = disk_write_mb_s(Path(tmp) / "disk.bin", min(args.upload_mb, 500))
            print(f"upload: {args.upload_mb} MB in {dt:.2f} s = {args.upload_mb / dt:.0f} MB/s "
                  f"(disk write {disk:.0f} MB/s); server RSS {rss0 / 1024:.0f} MB before, peak {peak / 1024:.0f} MB "
                  f"(growth {max(0, peak - rss0) / 1024:.0f} MB)")
        finally:
            server.terminate()
            server.wait(20)


if __name__ == "__main__":
    main()
