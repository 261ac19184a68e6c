"""Studio page weight and speed in headless Chromium (Debian's chromium through Playwright).

Starts `mocapd serve` with one worker on a fresh data directory, runs the sports2d clip to completion
over the API, then opens the job page R times in a fresh browser profile (cold cache) and reports:

- bytes to first render: what crossed the network (transfer sizes, gzip as served) until the job's
  status is on screen;
- time to first frame of the 3D viewer: from navigation start until the viewer has drawn the loaded
  motion.glb;
- the same with a warm cache (the second visit in one profile: 304s on unchanged files).

    .venv/bin/python bench/studio.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CLIP = Path(os.environ.get("MOCAPD_TEST_DATA", ROOT.parent / "shared" / "data")) / "video" / "sports2d_demo.mp4"
sys.path.insert(0, str(ROOT))

from tests.e2e.test_service_flow import _free_port, _stop  # noqa: E402
from tests.support.procs import wait_http_ok  # noqa: E402


def _measure(page, url: str) -> tuple[int, float, float, int]:  # type: ignore[no-untyped-def]
    """(bytes to first render, first render ms, first viewer frame ms, all bytes by then) for one visit."""
    page.goto(url)
    page.wait_for_selector("[data-testid=job-viewer][data-loaded=true]", timeout=120_000)
    deadline = time.time() + 60
    while not page.evaluate("performance.getEntriesByName('studio:viewer-first-frame').length") and time.time() < deadline:
        page.wait_for_timeout(20)
    return tuple(page.evaluate("""() => {
        const mark = (n) => performance.getEntriesByName(n)[0].startTime;
        const render = mark('studio:job-status'), frame = mark('studio:viewer-first-frame');
        const entries = performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'));
        const upTo = (t) => entries.filter((e) => e.responseEnd <= t).reduce((n, e) => n + (e.transferSize || 0), 0);
        return [upTo(render), render, frame, upTo(frame)];
    }"""))


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is not installed (apt-get install chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="mocapd-studio-bench-"))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mocapd", "serve", "--data-dir", str(tmp / "data"), "--port", str(port),
                             "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MOCAPD_LOG_LEVEL": "warning"})
    try:
        key = None
        assert proc.stdout is not None
        while key is None:
            line = proc.stdout.readline()
            if not line:
                raise SystemExit("serve printed no key")
            if line.startswith("sk_live_"):
                key = line.strip()
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(base + "/readyz")
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=auth, timeout=60) as c:
            job = c.post("/api/v1/mocap/jobs", json={"sourceFilename": CLIP.name, "targetIds": ["default"]}).json()["data"]
            c.put(job["uploadUrl"], content=CLIP.read_bytes(), headers={"Authorization": ""})
            c.post(f"/api/v1/mocap/jobs/{job['jobId']}/complete-upload")
            while c.get(f"/api/v1/mocap/jobs/{job['jobId']}").json()["data"]["job"]["status"] not in ("completed", "failed"):
                time.sleep(1)
        url = f"{base}/studio/jobs/{job['jobId']}"
        cold: list[tuple[int, float, float, int]] = []
        warm: list[tuple[int, float, float, int]] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            for _ in range(args.runs):
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                # sign in through the session exchange only, so nothing of the Studio is cached yet
                r = page.request.post(base + "/api/v1/studio/session", data={"apiKey": key}, headers={"Origin": base})
                assert r.status == 201, r.text()
                cold.append(_measure(page, url))
                warm.append(_measure(page, url))
                ctx.close()
            browser.close()
        for name, rows in (("cold cache", cold), ("warm cache", warm)):
            kb = statistics.median(r[0] for r in rows) / 1000
            render = statistics.median(r[1] for r in rows)
            frame = statistics.median(r[2] for r in rows)
            kb_frame = statistics.median(r[3] for r in rows) / 1000
            print(f"{name}: {kb:.0f} kB to first render ({render:.0f} ms); first viewer frame at {frame:.0f} ms "
                  f"after {kb_frame:.0f} kB (median of {len(rows)})")
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
