"""API load benchmark on the embedded default (SQLite + local folder), one `mocapd api` process.

1. Status polls: C concurrent clients poll GET /api/v1/mocap/jobs/{id} for D seconds (each client its
   own job); reports polls/s and p50/p99 latency.
2. Upload: one file of N MB streamed to the signed upload URL; reports MB/s against the disk's own
   write speed, and the server's peak memory growth (VmHWM - VmRSS before, from /proc).

    .venv/bin/python bench/api_load.py --clients 64 --seconds 15 --upload-mb 500
    .venv/bin/python bench/api_load.py --rate-limit 1000000 ...   # the same with the request budget on
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import free_port, wait_ready


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


WRK_SCRIPT = """
local ids = {%s}
local i = 0
wrk.headers["Authorization"] = "Bearer %s"
request = function()
  i = i %% #ids + 1
  return wrk.format("GET", "/api/v1/mocap/jobs/" .. ids[i])
end
done = function(summary, latency, requests)
  io.write(string.format("WRK %%d %%f %%f %%f %%d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, summary.errors.status))
end
"""


def wrk_load(base: str, key: str, job_ids: list[str], seconds: float, tmp: Path) -> tuple[float, float, float]:
    """polls/s, p50 ms, p99 ms measured by wrk (a C load generator: it leaves the CPU to the server)."""
    script = tmp / "poll.lua"
    script.write_text(WRK_SCRIPT % (", ".join(f'"{j}"' for j in job_ids), key))
    out = subprocess.run(["wrk", "-t2", f"-c{len(job_ids)}", f"-d{int(seconds)}s", "-s", str(script), base],
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    n, dur, p50, p99, errors = line.split()[1:]
    assert int(errors) == 0, out
    return int(n) / float(dur), float(p50), float(p99)


async def open_loop(host: str, port: int, key: str, job_ids: list[str], rate: float, seconds: float) -> list[float]:
    """Each client polls its own job on a fixed schedule (rate / clients per second each), over one
    keep-alive connection, with a minimal HTTP/1.1 client (cheap enough not to steal the server's CPU).
    Latency counts from the scheduled send time, so a slow server cannot hide its queueing."""
    lat: list[float] = []
    interval = len(job_ids) / rate
    t_start = time.perf_counter() + 0.5

    async def client(k: int, job_id: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        req = (f"GET /api/v1/mocap/jobs/{job_id} HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Bearer {key}\r\n\r\n").encode()
        due = t_start + k * interval / len(job_ids)
        while due < t_start + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - due)
            due += interval
        writer.close()

    await asyncio.gather(*(client(k, j) for k, j in enumerate(job_ids)))
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
    ap.add_argument("--rate", type=float, default=800, help="open-loop polls per second over all clients")
    ap.add_argument("--api-processes", type=int, default=2)
    ap.add_argument("--rate-limit", default="0",
                    help="MOCAPD_RATE_LIMIT for the server: 0 = limiter off; 1000000 = on, every poll spends from "
                         "the key's bucket (one key for all clients) but none is refused")
    ap.add_argument("--driver", choices=["auto", "wrk", "httpx"], default="auto",
                    help="load generator: wrk (C, apt-get install wrk) or httpx (Python, shares the CPU)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mocapd-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        data = Path(tmp) / "data"
        cli(data, "db", "upgrade")
        cli(data, "accounts", "create", "bench", "--plan", "premium")
        cli(data, "credits", "grant", "bench", "100000")
        key = cli(data, "keys", "create", "bench").strip().splitlines()[-1]
        port = free_port()
        env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning", "MOCAPD_RATE_LIMIT": args.rate_limit}
        server = subprocess.Popen([sys.executable, "-m", "mocapd", "api", "--data-dir", str(data), "--host", "127.0.0.1",
                                   "--port", str(port), "--api-processes", str(args.api_processes)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            h = {"Authorization": f"Bearer {key}"}
            jobs = []
            for i in range(args.clients):
                r = httpx.post(base + "/api/v1/mocap/jobs", json={"sourceFilename": f"c{i}.mp4", "targetIds": ["default"]},
                               headers=h)
                jobs.append(r.json()["data"]["jobId"])
            asyncio.run(poll_load(base, key, jobs[:4], 2))  # warm-up
            driver = args.driver if args.driver != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
            if driver == "wrk":
                rate, p50, p99 = wrk_load(base, key, jobs, args.seconds, Path(tmp))
            else:
                lat = sorted(asyncio.run(poll_load(base, key, jobs, args.seconds)))
                rate, p50, p99 = len(lat) / args.seconds, 1000 * statistics.median(lat), 1000 * lat[int(0.99 * len(lat)) - 1]
            print(f"polls, closed loop ({driver}): {args.clients} clients as fast as they can, {args.seconds:.0f} s: "
                  f"{rate:.0f} polls/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
            lat = sorted(asyncio.run(open_loop("127.0.0.1", port, key, jobs, args.rate, args.seconds)))
            print(f"polls, open loop: {args.clients} clients at {args.rate:.0f} polls/s in all, {args.seconds:.0f} s: "
                  f"{len(lat) / args.seconds:.0f} polls/s served, p50 {1000 * statistics.median(lat):.1f} ms, "
                  f"p99 {1000 * lat[int(0.99 * len(lat)) - 1]:.1f} ms")

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
