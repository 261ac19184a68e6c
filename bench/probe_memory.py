"""Memory of the API process while 16 uploads of large-frame files are probed at once.

The API probes an upload at complete-upload; its routes run in a thread pool, so 16 concurrent
complete-uploads are 16 threads calling the probe. This script is that process: ``--mode inprocess``
calls `mocapd.media.probe.probe_video` in each thread (what the API did before: probing in its own
process), ``--mode gate`` calls `mocapd.api.probing.ProbeGate.probe` (what it does now: a child process
per probe, at most ``--slots`` at once). It reports this process's resident memory before, its peak
(VmHWM) and what it still holds 2 s after the last probe returned, plus the wall time.
``--mode server`` does it for real: one `mocapd api` process (SQLite, local folder), 16 jobs created and
uploaded, then 16 concurrent complete-upload requests; the same figures are read from the API
process's /proc entry (whichever mocapd is on PYTHONPATH: before or after the gate).

Files (made in a temporary folder, never in the repository), ``--kind``:
* ``mjpeg8k``: an MJPEG/MKV of three 8192x8192 frames, the largest frame size admitted (decodable);
* ``h264claim``: a 700-byte raw H.264 stream whose header claims 16384x8192 (refused; before the fix,
  FFmpeg decoded frames of that size while opening it: 1.2 GB for one file).

Run:  PYTHONPATH=src .venv/bin/python bench/probe_memory.py --mode server --kind mjpeg8k
      PYTHONPATH=src .venv/bin/python bench/probe_memory.py --mode gate --kind mjpeg8k
      (before: the same with ``--mode inprocess`` from a checkout that predates the gate; never run
      ``--mode inprocess --kind h264claim`` on such a checkout unless 20 GB are free)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support; mocapd itself from PYTHONPATH or the installed package


def _status(field: str, pid: str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["inprocess", "gate", "server"], required=True)
    parser.add_argument("--kind", choices=["mjpeg8k", "h264claim"], default="mjpeg8k")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()

    from tests.support.hostile_media import h264_claiming, jpeg_of_size, mjpeg_file

    tmp = Path(tempfile.mkdtemp(prefix="mocapd-bench-probe-"))
    try:
        if args.kind == "mjpeg8k":
            first = mjpeg_file(tmp / "f0.mkv", [jpeg_of_size(8192, 8192)] * 3, size=(8192, 8192))
        else:
            first = h264_claiming(tmp / "f0.h264", 16384, 8192)
        files = [first] + [shutil.copy(first, tmp / f"f{i}{first.suffix}") for i in range(1, args.n)]
        files = [Path(f) for f in files]

        if args.mode == "server":
            _server(args, files, tmp)
            return
        if args.mode == "inprocess":
            from mocapd.media.probe import probe_video

            def probe(path: Path) -> object:
                return probe_video(path)
        else:
            from mocapd.api.probing import ProbeGate

            gate = ProbeGate(args.slots, wait_s=600.0)

            def probe(path: Path) -> object:
                return gate.probe(path)

        import av  # noqa: F401 - loaded before the baseline in both modes

        outcomes: list[str] = []

        def run(path: Path) -> None:
            try:
                probe(path)
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001 - counted
                outcomes.append(getattr(exc, "code", type(exc).__name__))

        before = _status("VmRSS")
        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(f,)) for f in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        time.sleep(2.0)
        print(json.dumps({
            "mode": args.mode, "kind": args.kind, "n": args.n, "slots": args.slots if args.mode == "gate" else None,
            "rss_before_mib": round(before), "peak_mib": round(_status("VmHWM")), "rss_after_mib": round(_status("VmRSS")),
            "wall_s": round(wall, 2), "outcomes": {o: outcomes.count(o) for o in set(outcomes)},
            "load1": round(os.getloadavg()[0], 1),
        }))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _server(args: argparse.Namespace, files: list[Path], tmp: Path) -> None:
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    sys.path.insert(0, str(ROOT / "bench"))
    from _common import free_port, wait_ready
    from api_load import cli

    data = tmp / "data"
    cli(data, "db", "upgrade")
    cli(data, "accounts", "create", "bench", "--plan", "premium")
    cli(data, "credits", "grant", "bench", "100000")
    key = cli(data, "keys", "create", "bench").strip().splitlines()[-1]
    port = free_port()
    env = {**os.environ, "MOCAPD_LOG_LEVEL": "warning", "MOCAPD_PROBE_SLOTS": str(args.slots)}
    server = subprocess.Popen([sys.executable, "-m", "mocapd", "api", "--data-dir", str(data), "--host", "127.0.0.1",
                               "--port", str(port), "--api-processes", "1"], env=env)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    try:
        wait_ready(base)
        jobs = []
        for i, f in enumerate(files):
            r = httpx.post(base + "/api/v1/mocap/jobs", json={"sourceFilename": f"c{i}{f.suffix}", "targetIds": ["default"]},
                           headers=headers)
            job = r.json()["data"]
            assert httpx.put(job["uploadUrl"], content=f.read_bytes(), timeout=60).status_code == 200
            jobs.append(job["jobId"])
        pid = str(server.pid)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        before = _status("VmRSS", pid)

        def complete(job_id: str) -> str:
            r = httpx.post(f"{base}/api/v1/mocap/jobs/{job_id}/complete-upload", headers=headers, timeout=600)
            return str(r.status_code) + ("" if r.status_code == 200 else " " + str(r.json().get("code")))

        started = time.monotonic()
        with ThreadPoolExecutor(len(jobs)) as pool:
            outcomes = list(pool.map(complete, jobs))
        wall = time.monotonic() - started
        time.sleep(2.0)
        print(json.dumps({
            "mode": "server", "kind": args.kind, "n": args.n, "rss_before_mib": round(before),
            "peak_mib": round(_status("VmHWM", pid)), "rss_after_mib": round(_status("VmRSS", pid)), "wall_s": round(wall, 2),
            "outcomes": {o: outcomes.count(o) for o in set(outcomes)}, "load1": round(os.getloadavg()[0], 1),
        }))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
