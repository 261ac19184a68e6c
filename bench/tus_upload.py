"""Resumable (tus) upload against the plain PUT, on one `mocapd api` process (SQLite + local folder, or
S3 mode against moto's server with ``--s3``): MB/s for an N MB file and the API process's peak memory
growth (VmHWM - VmRSS before, from /proc) while it is received, and its CPU seconds. The two alternate,
each run after an ``os.sync()``; the load average is printed, as other work on the machine moves the
figures (compare the ratio within one run). The tus client is the SDK's
(`MocapdClient.tus_create` / `tus_patch`, 64 MiB a PATCH, as `mocapd submit` sends a large file).

    PYTHONPATH=src .venv/bin/python bench/tus_upload.py --mb 500 --repeat 3
    PYTHONPATH=src .venv/bin/python bench/tus_upload.py --mb 500 --repeat 3 --s3
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

import httpx
from _common import free_port, wait_ready

from mocapd.client import MocapdClient
from mocapd.client.flow import TUS_CHUNK_BYTES

AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mem_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mocapd", *args], check=True, capture_output=True, text=True, env=env)
    return out.stdout


def upload_put(base: str, key: str, src: Path) -> None:
    h = {"Authorization": f"Bearer {key}"}
    job = httpx.post(base + "/api/v1/mocap/jobs", json={"sourceFilename": "big.mp4", "targetIds": ["default"]},
                     headers=h).json()["data"]
    with open(src, "rb") as f:
        r = httpx.put(job["uploadUrl"], content=f, timeout=600, headers={"Content-Length": str(src.stat().st_size)})
    assert r.status_code == 200, r.text


def upload_tus(base: str, key: str, src: Path) -> None:
    h = {"Authorization": f"Bearer {key}"}
    job = httpx.post(base + "/api/v1/mocap/jobs", json={"sourceFilename": "big.mp4", "targetIds": ["default"]},
                     headers=h).json()["data"]
    size = src.stat().st_size
    with MocapdClient(base, key, timeout_s=600) as client:
        url = client.tus_create(job["tusUploadUrl"], size)
        offset = 0
        while offset < size:
            offset = client.tus_patch(url, src, offset, min(TUS_CHUNK_BYTES, size - offset))
    got = httpx.get(f"{base}/api/v1/mocap/jobs/{job['jobId']}", headers=h).json()["data"]["job"]["source"]
    assert got["bytes"] == size, got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--s3", action="store_true", help="S3 mode against moto's server on localhost")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mocapd-bench-", dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        data = Path(tmp) / "data"
        env = {**os.environ, "MOCAPD_DATA_DIR": str(data), "MOCAPD_LOG_LEVEL": "warning"}
        moto = None
        if args.s3:
            import boto3
            from moto.server import ThreadedMotoServer

            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            host, port = moto.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            env.update(AWS)
            os.environ.update(AWS)
            boto3.session.Session().client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            env.update(MOCAPD_STORAGE_URL="s3://bench/p", MOCAPD_S3_ENDPOINT_URL=endpoint, MOCAPD_S3_REGION="us-east-1",
                       MOCAPD_SECRET="bench-secret")
        cli(env, "db", "upgrade")
        cli(env, "accounts", "create", "bench", "--plan", "premium")
        cli(env, "credits", "grant", "bench", "100000")
        key = cli(env, "keys", "create", "bench").strip().splitlines()[-1]
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "mocapd", "api", "--host", "127.0.0.1", "--port", str(port),
                                   "--api-processes", "1"], env=env)
        base = f"http://127.0.0.1:{port}"
        src = Path(tmp) / "upload.bin"
        block = os.urandom(1 << 20)
        with open(src, "wb") as f:
            for _ in range(args.mb):
                f.write(block)
        try:
            wait_ready(base)
            results: dict[str, list[tuple[float, float, float]]] = {"put": [], "tus": []}
            load0 = os.getloadavg()[0]
            ways = [("put", upload_put), ("tus", upload_tus)]
            for i in range(args.repeat):
                # The order alternates, and each run starts with no dirty pages of the previous one: a PUT
                # leaves its 500 MB for the kernel to write later, which would slow whatever runs next.
                for name, fn in ways if i % 2 == 0 else ways[::-1]:
                    os.sync()
                    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # peak (VmHWM) := current RSS
                    rss0 = mem_kb(server.pid, "VmRSS")
                    cpu0 = cpu_s(server.pid)
                    t0 = time.perf_counter()
                    fn(base, key, src)
                    dt = time.perf_counter() - t0
                    cpu = cpu_s(server.pid) - cpu0
                    growth = max(0, mem_kb(server.pid, "VmHWM") - rss0) / 1024
                    results[name].append((args.mb / dt, growth, cpu))
                    print(f"{name}: {args.mb} MB in {dt:.2f} s = {args.mb / dt:.0f} MB/s, server CPU {cpu:.2f} s, "
                          f"peak growth {growth:.0f} MB", flush=True)
            put = statistics.median(r[0] for r in results["put"])
            tus = statistics.median(r[0] for r in results["tus"])
            print(f"median: PUT {put:.0f} MB/s, tus {tus:.0f} MB/s = {tus / put:.2f}x; server CPU PUT "
                  f"{statistics.median(r[2] for r in results['put']):.2f} s, tus "
                  f"{statistics.median(r[2] for r in results['tus']):.2f} s; peak growth tus "
                  f"{max(r[1] for r in results['tus']):.0f} MB, PUT {max(r[1] for r in results['put']):.0f} MB "
                  f"({'S3 mode' if args.s3 else 'local store'}; load {load0:.1f} -> {os.getloadavg()[0]:.1f})")
        finally:
            server.terminate()
            server.wait(30)
            if moto is not None:
                moto.stop()


if __name__ == "__main__":
    main()
