"""The Studio's avatar, job-option, quote and re-export pages in a real headless Chromium against a real
`mocapd serve` with a worker: a real rig uploaded and prepared with its automatic bone mapping, a bone
corrected (and a wrong one explained in words), a short real clip captured onto that avatar after the
price was shown, the avatar's GLB in the viewer and its files in the downloads, a re-export at another
frame rate whose page names its parent, the avatar deleted; a plan without the options shows them
disabled with the reason. A webhook endpoint added, sent a test event (received by a local receiver and
verified with its signature), disabled, given a new secret and deleted. Screenshots of the avatars and
webhooks pages at desktop and phone width into docs/studio/."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time
from typing import Any

import httpx
import pytest

from tests.conftest import shared_file
from tests.e2e.test_studio_browser import (
    DESKTOP,
    _shoot,
    _sign_in,
    _unlabelled_controls,
    playwright_api,
    studio,  # noqa: F401  (the module's server and browser)
)

pytestmark = pytest.mark.slow
expect = playwright_api.expect


def _watch_csp(page: Any) -> list[str]:
    """Every Content-Security-Policy refusal the page reports (an inline script or style would be one)."""
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    return refused


def _keyboard_unreachable(page: Any) -> list[str]:
    return list(page.evaluate("""() => [...document.querySelectorAll('main a[href], main button, main input, main select')]
        .filter((el) => el.tabIndex < 0 || el.closest('[inert]'))
        .map((el) => el.outerHTML.slice(0, 80))"""))


def _wait_status(page: Any, wanted: str, timeout_s: float = 300) -> list[str]:
    seen: list[str] = []
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        state = page.get_by_test_id("job-status").text_content() or ""
        if not seen or seen[-1] != state:
            seen.append(state)
        if state == wanted or state.startswith("failed") or state == "canceled":
            break
        page.wait_for_timeout(250)
    assert seen[-1] == wanted, (seen, page.locator("main").text_content())
    return seen


def test_an_avatar_is_prepared_corrected_animated_reexported_and_deleted(studio: dict[str, Any]) -> None:  # noqa: F811
    base, key = studio["base"], studio["key"]
    rig = shared_file("avatars/m2m_male.glb")
    clip = shared_file("pose2sim_balancing/cam01.mp4")
    ctx = studio["browser"].new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    refused = _watch_csp(page)
    _sign_in(page, base, key)
    # the watcher sees a refusal: an inline script added to the page is blocked and reported
    page.evaluate("() => { const el = document.createElement('script'); el.textContent = 'window.x = 1'; document.head.append(el); }")
    page.wait_for_timeout(200)
    assert refused and page.evaluate("window.x === undefined"), refused
    refused.clear()

    # upload a real rig; the page shows it prepared with its automatic mapping
    page.get_by_role("link", name="Avatars").click()
    page.wait_for_url("**/studio/avatars")
    page.get_by_label("Name").fill("Male figure")
    page.get_by_test_id("avatar-file").set_input_files(str(rig))
    page.get_by_test_id("avatar-submit").click()
    expect(page.get_by_test_id("avatar-status")).to_have_text("ready", timeout=60_000)
    expect(page.get_by_test_id("avatar-row-status")).to_have_text("ready")
    summary = page.get_by_test_id("avatar-mapping-summary").text_content() or ""
    assert re.search(r"\d+ skeleton bones are mapped", summary), summary
    head = page.get_by_test_id("avatar-bone-head")
    auto_head = head.input_value()
    assert auto_head, "the automatic mapping left the head empty"
    avatar_id = page.locator("tr[data-avatar]").first.get_attribute("data-avatar")
    assert avatar_id and avatar_id.startswith("av_")
    assert _unlabelled_controls(page) == [] and _keyboard_unreachable(page) == []

    # a wrong bone is refused with words and changes nothing; a right one is saved
    head.fill("no_such_bone")
    page.get_by_test_id("avatar-save").click()
    problem = page.get_by_test_id("avatar-mapping-error")
    expect(problem).to_contain_text("cannot be used")
    assert "{" not in (problem.text_content() or "")
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert api.get(f"/api/v1/avatars/{avatar_id}").json()["data"]["mapping"]["head"] == auto_head
    neck = page.get_by_test_id("avatar-bone-neck_01").input_value()
    assert neck and neck != auto_head
    page.get_by_test_id("avatar-bone-head").fill(auto_head)
    page.get_by_test_id("avatar-save").click()
    expect(page.get_by_test_id("avatar-saved")).to_have_text("The mapping is saved and checked.")
    assert api.get(f"/api/v1/avatars/{avatar_id}").json()["data"]["mapping"]["head"] == auto_head
    assert "{" not in (page.locator("main").text_content() or "")
    _shoot(page, "avatars")

    # a job onto the avatar from the new-job page, with its price shown before it starts
    page.get_by_role("link", name="New job").first.click()
    page.wait_for_url("**/studio/new")
    page.get_by_test_id("new-job-file").set_input_files(str(clip))
    page.get_by_test_id(f"new-job-target-avatar:{avatar_id}").check()
    assert page.get_by_test_id("new-job-hand-tracking").is_enabled()  # the dev account's plan (starter) has it
    page.get_by_test_id("new-job-confirm-price").check()
    page.get_by_test_id("new-job-submit").click()
    page.wait_for_url("**/studio/jobs/mocap_*")
    job_id = page.url.rsplit("/", 1)[1]
    quote = page.get_by_test_id("job-quote")
    expect(quote).to_contain_text("credits from your studio balance", timeout=60_000)
    assert page.get_by_test_id("job-status").text_content() == "uploaded"
    assert api.get(f"/api/v1/mocap/jobs/{job_id}").json()["data"]["job"]["status"] == "draft"  # nothing held yet
    quoted = int(re.search(r"costs (\d+) credits", quote.text_content() or "").group(1))  # type: ignore[union-attr]
    page.get_by_test_id("job-start").click()
    _wait_status(page, "completed")
    job = api.get(f"/api/v1/mocap/jobs/{job_id}").json()["data"]["job"]
    assert job["billing"]["chargedVCredits"] == quoted and job["billing"]["channel"] == "studio"
    expect(page.get_by_test_id("job-options")).to_contain_text("Skeleton, Avatar at 30 frames a second")

    # the avatar's GLB is in the viewer's model picker and shows; its files download with their digests
    page.wait_for_selector("[data-testid=job-viewer][data-loaded=true]", timeout=60_000)
    glb = f"avatar_{avatar_id}.glb"
    picker = page.get_by_test_id("viewer-model")
    assert glb in picker.locator("option").evaluate_all("(os) => os.map((o) => o.value)")
    page.evaluate("document.querySelector('[data-testid=job-viewer]').dataset.loaded = 'false'")
    picker.select_option(glb)
    page.wait_for_selector("[data-testid=job-viewer][data-loaded=true]", timeout=60_000)
    result = api.get(f"/api/v1/mocap/jobs/{job_id}/result").json()["data"]
    digests = {f["name"]: f["sha256"] for f in result["files"]}
    for name in (f"avatar_{avatar_id}.fbx", glb):
        href = page.get_by_test_id(f"job-download-{name}").get_attribute("href")
        assert hashlib.sha256(page.request.get(href).body()).hexdigest() == digests[name]

    # a re-export at another frame rate: a child job whose page names its parent
    page.get_by_test_id("reexport-fps").select_option("24")
    page.get_by_test_id(f"reexport-target-avatar:{avatar_id}").uncheck()
    assert page.get_by_test_id("reexport-target-default").is_checked()
    page.get_by_test_id("reexport-submit").click()
    page.wait_for_url(re.compile(r".*/studio/jobs/(?!" + job_id + r")mocap_[^/]+$"))
    child_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("job-parent")).to_contain_text(job_id)
    expect(page.get_by_test_id("job-options")).to_contain_text("Skeleton at 24 frames a second")
    _wait_status(page, "completed", 180)
    child = api.get(f"/api/v1/mocap/jobs/{child_id}").json()["data"]["job"]
    assert child["parentJobId"] == job_id and child["exportFps"] == 24 and child["targetIds"] == ["default"]
    page.get_by_test_id("job-parent").get_by_role("link").click()
    page.wait_for_url(f"**/studio/jobs/{job_id}")

    # delete the avatar; the list is empty again, the finished job keeps its files
    page.get_by_role("link", name="Avatars").click()
    page.wait_for_url("**/studio/avatars")
    page.get_by_role("button", name="Bone mapping of Male figure").click()
    page.get_by_test_id("avatar-delete").click()
    expect(page.get_by_text("No avatars yet.")).to_be_visible()
    assert api.get(f"/api/v1/avatars/{avatar_id}").status_code == 404
    assert api.get(f"/api/v1/mocap/jobs/{job_id}/result").json()["data"]["files"]
    assert refused == []
    api.close()
    ctx.close()


def test_a_plan_without_the_options_shows_them_disabled_with_the_reason(studio: dict[str, Any]) -> None:  # noqa: F811
    from mocapd.config import Settings
    from mocapd.db.accounts import create_account, create_key
    from mocapd.db.engine import Database

    db = Database(Settings(data_dir=studio["data"]).resolved_database_url)
    try:
        with db.write() as s:
            free_key = create_key(s, create_account(s, "free-plan-user", "free"))
    finally:
        db.dispose()
    ctx = studio["browser"].new_context(viewport=DESKTOP)
    page = ctx.new_page()
    _sign_in(page, studio["base"], free_key)
    page.goto(f"{studio['base']}/studio/new")
    hands = page.get_by_test_id("new-job-hand-tracking")
    hands.wait_for()
    assert hands.is_disabled()
    assert page.locator("#model-quality option[value=high]").is_disabled()
    assert "not on your plan" in (page.locator("label[for=hand-tracking]").text_content() or "")
    assert _unlabelled_controls(page) == []
    ctx.close()


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass


def test_a_webhook_endpoint_is_added_tested_disabled_rotated_and_deleted(studio: dict[str, Any]) -> None:  # noqa: F811
    base, key = studio["base"], studio["key"]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        if c.get("/api/v1/webhooks").status_code == 404:
            pytest.skip("this build has no webhooks API")
    standardwebhooks = pytest.importorskip("standardwebhooks", reason="the standardwebhooks package verifies signatures")
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook_url = f"http://127.0.0.1:{receiver.server_address[1]}/mocapd-events"
    ctx = studio["browser"].new_context(viewport=DESKTOP)
    page = ctx.new_page()
    page.on("dialog", lambda d: d.accept())
    refused = _watch_csp(page)
    try:
        _sign_in(page, base, key)
        page.get_by_role("link", name="Webhooks").click()
        page.wait_for_url("**/studio/webhooks")
        expect(page.get_by_text("No endpoints yet.")).to_be_visible()
        page.get_by_test_id("webhook-url").fill(hook_url)
        page.get_by_label("Description").fill("Render farm")
        page.get_by_test_id("webhook-submit").click()
        secret = page.get_by_test_id("webhook-secret")
        expect(secret).to_contain_text("whsec_")
        first_secret = (secret.text_content() or "").strip()
        expect(page.get_by_test_id("webhook-enabled")).to_have_text("yes")
        assert _unlabelled_controls(page) == []

        # a test event reaches the receiver, signed with the secret shown once; the log shows it delivered
        page.get_by_role("button", name=f"Details of {hook_url}").click()
        page.get_by_test_id("webhook-test").click()
        expect(page.get_by_test_id("webhook-delivery-status").first).to_have_text("delivered", timeout=30_000)
        headers, body = next((h, b) for h, b in _Receiver.got if json.loads(b)["type"] == "webhook.test")
        standardwebhooks.Webhook(first_secret).verify(body, headers)

        # "Send again": a new delivery of the same message (same webhook-id), delivered too
        page.get_by_role("button", name=re.compile(r"^Send the webhook\.test message of .* again$")).first.click()
        statuses = page.get_by_test_id("webhook-delivery-status")
        expect(statuses).to_have_count(2, timeout=30_000)
        expect(statuses.nth(0)).to_have_text("delivered", timeout=30_000)
        expect(statuses.nth(1)).to_have_text("delivered", timeout=30_000)
        tests = [h["webhook-id"] for h, b in _Receiver.got if json.loads(b)["type"] == "webhook.test"]
        assert len(tests) == 2 and tests[0] == tests[1], tests
        assert "{" not in (page.locator("main").text_content() or "")
        assert _keyboard_unreachable(page) == []
        _shoot(page, "webhooks")

        # disable, rotate (a new secret, shown once), delete
        page.get_by_test_id("webhook-toggle").click()
        expect(page.get_by_test_id("webhook-enabled")).to_have_text(re.compile(r"^no\b"))
        expect(page.get_by_test_id("webhook-toggle")).to_have_text("Enable")
        page.get_by_test_id("webhook-rotate").click()
        expect(page.get_by_test_id("webhook-secret")).not_to_have_text(first_secret)
        assert (page.get_by_test_id("webhook-secret").text_content() or "").startswith("whsec_")
        page.reload()
        page.wait_for_selector("[data-testid=webhook-enabled]")
        assert page.get_by_test_id("webhook-secret").count() == 0  # shown only when made
        page.get_by_role("button", name=f"Details of {hook_url}").click()
        page.get_by_test_id("webhook-delete").click()
        expect(page.get_by_text("No endpoints yet.")).to_be_visible()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            assert c.get("/api/v1/webhooks").json()["data"]["items"] == []
        assert refused == []
    finally:
        ctx.close()
        receiver.shutdown()
        receiver.server_close()
