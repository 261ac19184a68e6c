"""The Studio in a real headless Chromium (Debian's chromium driven by Playwright through
executable_path) against a real `mocapd serve` with a worker: sign in, upload a real clip, watch the
states, see the animated figure, download every file with the manifest's SHA-256, the studio balance
charged, a bad file's failure and retry, another account's job not found, sign-out that ends the
session; screenshots of every page at desktop and phone width into docs/studio/."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import shared_file
from tests.support.procs import dev_serve

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "studio"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("studio") / "data"
    env = {"MOCAPD_WEBHOOK_ALLOW_PRIVATE": "1"}
    with dev_serve(data, workers=1, env=env) as (base, key), playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"])
        try:
            yield {"base": base, "key": key, "data": data, "browser": browser}
        finally:
            browser.close()


def _balances(base: str, key: str) -> dict[str, Any]:
    r = httpx.get(f"{base}/api/v1/account", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return dict(r.json()["data"]["balances"])


def _sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/studio")
    page.get_by_test_id("signin-key").fill(key)
    page.get_by_test_id("signin-submit").click()
    page.wait_for_url("**/studio/jobs")


def _shoot(page: Any, name: str) -> None:
    """Desktop and phone pictures of the page; at phone width nothing may scroll sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"{name}: the page scrolls sideways by {overflow}px at 375 px"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}-phone.png"))
    page.set_viewport_size(DESKTOP)


def _unlabelled_controls(page: Any) -> list[str]:
    return list(page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter((el) => el.offsetParent !== null || el.type === 'file')
        .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !(el.textContent || '').trim())
        .map((el) => el.outerHTML.slice(0, 80))"""))


def test_a_person_captures_a_clip_in_the_studio(studio: dict[str, Any]) -> None:
    base, key = studio["base"], studio["key"]
    ctx = studio["browser"].new_context(viewport=DESKTOP)
    page = ctx.new_page()
    refused: list[str] = []  # every Content-Security-Policy refusal the pages report
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{base}/studio")
    _shoot(page, "signin")
    _sign_in(page, base, key)

    # the API key is nowhere in the page, its storage or the script-visible cookies
    assert key not in page.content()
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert "mocapd_studio" not in page.evaluate("document.cookie")
    _shoot(page, "jobs-empty")
    before = _balances(base, key)

    page.get_by_role("link", name="New job").first.click()
    page.wait_for_url("**/studio/new")
    page.get_by_test_id("new-job-file").set_input_files(str(shared_file("video/sports2d_demo.mp4")))
    assert page.get_by_test_id("new-job-target-default").is_checked()
    page.get_by_test_id("new-job-target-unitree_g1").check()
    assert _unlabelled_controls(page) == []
    _shoot(page, "new-job")
    page.get_by_test_id("new-job-submit").click()
    page.wait_for_url("**/studio/jobs/mocap_*")
    job_id = page.url.rsplit("/", 1)[1]

    # the states, in order, to completed; the status panel keeps its size while the job moves
    seen: list[str] = []
    heights: set[int] = set()
    deadline = time.time() + 600
    while time.time() < deadline:
        state = page.get_by_test_id("job-status").text_content() or ""
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == "completed" or state.startswith("failed"):
            break
        box = page.locator(".status-box").bounding_box()
        if box:
            heights.add(round(box["height"]))
        page.wait_for_timeout(250)
    assert seen[-1] == "completed", seen
    order = ["awaiting upload", "uploading", "uploaded", "queued", "processing", "packaging", "completed"]
    assert [s for s in seen if s in order] == sorted([s for s in seen if s in order], key=order.index), seen
    assert {"queued", "processing", "completed"} <= set(seen) or {"processing", "completed"} <= set(seen), seen
    assert max(heights) - min(heights) <= 2, f"the status panel changed height while the job ran: {heights}"

    # the page uploaded through the resumable (tus) endpoint, not a plain PUT
    from sqlalchemy import select

    from mocapd.config import Settings
    from mocapd.db.engine import Database
    from mocapd.db.models import TusUpload

    db = Database(Settings(data_dir=studio["data"]).resolved_database_url)
    try:
        with db.read() as s:
            tus_row = s.scalar(select(TusUpload).where(TusUpload.job_id == job_id))
    finally:
        db.dispose()
    assert tus_row is not None and tus_row.completed_at is not None and tus_row.offset == tus_row.length

    # the viewer shows the animated figure: its pixels change between two moments of playback
    page.wait_for_selector("[data-testid=job-viewer][data-loaded=true]", timeout=60_000)
    page.get_by_test_id("viewer-play").click()
    page.wait_for_timeout(600)
    first = page.evaluate("document.querySelector('[data-testid=job-viewer]').toDataURL()")
    page.wait_for_timeout(900)
    second = page.evaluate("document.querySelector('[data-testid=job-viewer]').toDataURL()")
    assert first != second, "the figure did not move during playback"
    page.get_by_test_id("viewer-play").click()  # pause
    _shoot(page, "job")

    # every download link gives the file the manifest describes
    result = httpx.get(f"{base}/api/v1/mocap/jobs/{job_id}/result", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()["data"]
    manifest_url = page.get_by_test_id("job-download-manifest.json").get_attribute("href")
    manifest = json.loads(page.request.get(manifest_url).body())
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    names = [f["name"] for f in result["files"]]
    assert "motion.glb" in names and "g1_motion.json" in names
    for name in names:
        link = page.get_by_test_id(f"job-download-{name}")
        body = page.request.get(link.get_attribute("href")).body()
        digest = hashlib.sha256(body).hexdigest()
        if name != "manifest.json":
            assert digest == listed[name], name
        assert digest == next(f["sha256"] for f in result["files"] if f["name"] == name)

    # the studio balance paid, not the api balance
    after = _balances(base, key)
    charged = result["job"]["billing"]["chargedVCredits"]
    assert charged > 0 and result["job"]["billing"]["channel"] == "studio"
    assert after["studio"]["balance"] == before["studio"]["balance"] - charged
    assert after["api"] == before["api"]
    page.get_by_role("link", name="Credits").click()
    page.wait_for_url("**/studio/credits")
    assert page.get_by_test_id("balance-studio").text_content() == str(after["studio"]["balance"])
    assert page.get_by_test_id("balance-api").text_content() == str(after["api"]["balance"])
    _shoot(page, "credits")
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.wait_for_url("**/studio/jobs")
    page.wait_for_selector("[data-testid=job-row-status]")
    _shoot(page, "jobs")
    for name, path in (("webhooks", "/studio/webhooks"),):  # the avatars page: test_studio_pages_browser.py
        page.goto(base + path)
        page.wait_for_selector("h1")
        page.wait_for_timeout(300)
        assert "{" not in (page.locator("main").text_content() or ""), f"{name}: raw JSON on the page"
        _shoot(page, name)
    assert refused == []
    ctx.close()


def test_a_bad_file_shows_its_stage_and_the_right_retry(studio: dict[str, Any], tmp_path: Path) -> None:
    base, key = studio["base"], studio["key"]
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"this is a text file, not a video\n" * 200)
    ctx = studio["browser"].new_context(viewport=DESKTOP)
    page = ctx.new_page()
    _sign_in(page, base, key)
    page.goto(f"{base}/studio/new")
    page.get_by_test_id("new-job-file").set_input_files(str(bad))
    page.get_by_test_id("new-job-submit").click()
    page.wait_for_url("**/studio/jobs/mocap_*")
    playwright_api.expect(page.get_by_test_id("job-status")).to_have_text(re.compile("^failed"), timeout=60_000)
    assert page.get_by_test_id("job-status").text_content() == "failed validation"
    error = page.get_by_test_id("job-error").text_content() or ""
    assert "stage: validation" in error and "{" not in error
    retry = page.get_by_test_id("job-retry")
    assert retry.text_content() == "Start again with a new job"
    retry.click()
    page.wait_for_url("**/studio/new?from=*")
    assert page.get_by_test_id("new-job-target-default").is_checked()
    _shoot(page, "failed-retry")
    ctx.close()


def test_another_accounts_job_is_not_found_and_sign_out_ends_the_session(studio: dict[str, Any]) -> None:
    from mocapd.config import Settings
    from mocapd.db.accounts import create_account, create_key
    from mocapd.db.engine import Database
    from mocapd.db.ledger import grant

    base, key = studio["base"], studio["key"]
    db = Database(Settings(data_dir=studio["data"]).resolved_database_url)
    try:
        with db.write() as s:
            other = create_account(s, "someone-else", "starter")
            grant(s, other.id, 10, "api", reason="test")
            other_key = create_key(s, other)
    finally:
        db.dispose()
    r = httpx.post(f"{base}/api/v1/mocap/jobs", json={"sourceFilename": "c.mp4", "targetIds": ["default"]},
                   headers={"Authorization": f"Bearer {other_key}"}, timeout=30)
    assert r.status_code == 201, r.text
    other_job = r.json()["data"]["jobId"]

    ctx = studio["browser"].new_context(viewport=DESKTOP)
    page = ctx.new_page()
    _sign_in(page, base, key)
    page.goto(f"{base}/studio/jobs/{other_job}")
    page.wait_for_selector("[data-testid=not-found]")
    assert "c.mp4" not in page.content()

    cookie = next(c for c in ctx.cookies() if c["name"] == "mocapd_studio")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    stolen = {"mocapd_studio": cookie["value"]}
    assert httpx.get(f"{base}/api/v1/account", cookies=stolen, timeout=30).status_code == 200
    page.get_by_test_id("signout").click()
    page.wait_for_selector("[data-testid=signin-key]")
    assert httpx.get(f"{base}/api/v1/account", cookies=stolen, timeout=30).status_code == 401
    page.goto(f"{base}/studio/jobs")
    page.wait_for_selector("[data-testid=signin-key]")
    ctx.close()
