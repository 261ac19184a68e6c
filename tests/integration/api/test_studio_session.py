"""The Studio's door: an API key exchanged for a session cookie, CSRF on every state-changing request,
no session fixation, sign-out that really ends the session, studio-channel billing, and pages served
with a strict Content-Security-Policy and no inline script."""

from __future__ import annotations

import re
import subprocess
import sys
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mocapd.api.app import create_app
from mocapd.api.auth import SESSION_COOKIE
from mocapd.api.studio.routes import STATIC_DIR
from mocapd.config import Settings
from mocapd.db.accounts import revoke_key
from mocapd.db.ledger import grant
from tests.integration.api.conftest import Api

ROOT = Path(__file__).resolve().parents[3]
SESSION = "/api/v1/studio/session"
JOBS = "/api/v1/mocap/jobs"
ORIGIN = {"Origin": "http://testserver"}


def _set_cookie(r: object) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in r.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        jar.load(header)
    return jar


def _plant(client: TestClient, value: str | None) -> None:
    """Put a cookie value into the client's jar as a browser would hold it (one cookie of that name)."""
    client.cookies.clear()
    if value is not None:
        client.cookies.set(SESSION_COOKIE, value, domain="testserver.local")


def _sign_in(api: Api, key: str | None = None) -> str:
    r = api.client.post(SESSION, json={"apiKey": key or api.key}, headers=ORIGIN)
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["csrfToken"])


def test_sign_in_sets_an_httponly_strict_cookie_and_keeps_no_key(api: Api) -> None:
    r = api.client.post(SESSION, json={"apiKey": api.key}, headers=ORIGIN)
    assert r.status_code == 201
    morsel = _set_cookie(r)[SESSION_COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/"
    assert not morsel["secure"]  # plain http (a local Studio); https below
    assert api.key not in r.text and api.key not in morsel.value
    assert r.headers["cache-control"] == "no-store"
    # the cookie alone reads the account (safe methods need no CSRF token)
    acct = api.client.get("/api/v1/account")
    assert acct.status_code == 200 and acct.json()["data"]["account"]["id"] == api.account_id


def test_the_cookie_is_secure_when_served_over_https(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret="s", public_url="https://studio.example.com")
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        from mocapd.db.accounts import create_account, create_key
        from mocapd.db.engine import Database

        db = Database(settings.resolved_database_url)
        with db.write() as s:
            key = create_key(s, create_account(s, "secure", "starter"))
        db.dispose()
        r = client.post(SESSION, json={"apiKey": key}, headers={"Origin": "https://testserver"})
        assert r.status_code == 201
        assert _set_cookie(r)[SESSION_COOKIE]["secure"] is True


@pytest.mark.parametrize("key", ["sk_live_nope", "not-a-key", "x" * 300])
def test_a_bad_key_is_refused_and_no_cookie_set(api: Api, key: str) -> None:
    r = api.client.post(SESSION, json={"apiKey": key}, headers=ORIGIN)
    assert r.status_code in (401, 422)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert SESSION_COOKIE not in _set_cookie(r)


def test_sign_in_from_another_site_is_refused(api: Api) -> None:
    r = api.client.post(SESSION, json={"apiKey": api.key}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["code"] == "studio_csrf_rejected"


def test_every_state_changing_request_needs_the_csrf_token(api: Api) -> None:
    with api.db.write() as s:
        grant(s, api.account_id, 10, "studio", reason="test grant")
    csrf = _sign_in(api)
    body = {"sourceFilename": "clip.mp4", "targetIds": ["default"]}
    missing = api.client.post(JOBS, json=body)
    wrong = api.client.post(JOBS, json=body, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
    cross = api.client.post(JOBS, json=body, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    for r in (missing, wrong, cross):
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "studio_csrf_rejected"
    assert api.client.get(JOBS).json()["data"]["items"] == []  # nothing was created
    ok = api.client.post(JOBS, json=body, headers={"X-CSRF-Token": csrf, **ORIGIN})
    assert ok.status_code == 201, ok.text
    job_id = ok.json()["data"]["jobId"]
    # cancel and sign-out are state-changing too
    assert api.client.post(f"{JOBS}/{job_id}/cancel").status_code == 403
    assert api.client.delete(SESSION).status_code == 403
    assert api.client.post(f"{JOBS}/{job_id}/cancel", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_a_studio_job_spends_the_studio_balance(api: Api, tmp_path: Path) -> None:
    from tests.integration.api.media import synthetic_video

    csrf = _sign_in(api)
    refused = api.client.post(JOBS, json={"sourceFilename": "clip.mp4", "targetIds": ["default"]}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 402  # the studio balance is empty, whatever the api balance holds

    with api.db.write() as s:
        grant(s, api.account_id, 50, "studio", reason="test grant")
    csrf = _sign_in(api)
    video = synthetic_video(tmp_path / "clip.mp4", 2.0).read_bytes()
    r = api.client.post(JOBS, json={"sourceFilename": "clip.mp4", "targetIds": ["default"]}, headers={"X-CSRF-Token": csrf})
    job = r.json()["data"]
    assert api.client.put(job["uploadUrl"], content=video).status_code in (200, 201)
    done = api.client.post(f"{JOBS}/{job['jobId']}/complete-upload", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    assert done.json()["data"]["job"]["billing"]["channel"] == "studio"
    balances = api.client.get("/api/v1/account").json()["data"]["balances"]
    assert balances["studio"]["held"] == 2 and balances["api"]["held"] == 0
    # the same key over the API door bills the api balance
    r = api.client.post(JOBS, json={"sourceFilename": "c.mp4", "targetIds": ["default"]}, headers=api.headers())
    assert r.json()["data"]["jobId"]
    assert api.client.get(f"{JOBS}/{r.json()['data']['jobId']}", headers=api.headers()).json()["data"]["job"]["billing"]["channel"] == "api"


def test_sign_out_ends_the_session_for_good(api: Api) -> None:
    csrf = _sign_in(api)
    old = api.client.cookies.get(SESSION_COOKIE)
    r = api.client.delete(SESSION, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    _plant(api.client, old)  # a copy of the old cookie kept by an attacker
    assert api.client.get("/api/v1/account").status_code == 401
    assert api.client.get(SESSION).status_code == 401


def test_no_session_fixation(api: Api) -> None:
    # a value planted in the browser before sign-in is never adopted
    _plant(api.client, "planted-by-someone-else")
    _sign_in(api)
    issued = api.client.cookies.get(SESSION_COOKIE)
    assert issued and issued != "planted-by-someone-else"
    # an attacker's own live session planted in the victim's browser is ended by the victim's sign-in
    _, other_key = api.new_account("attacker", "starter")
    with TestClient(api.client.app, base_url="http://testserver") as attacker:
        assert attacker.post(SESSION, json={"apiKey": other_key}, headers=ORIGIN).status_code == 201
        planted = attacker.cookies.get(SESSION_COOKIE)
    _plant(api.client, planted)
    _sign_in(api)
    assert api.client.cookies.get(SESSION_COOKIE) != planted
    assert api.client.get("/api/v1/account").json()["data"]["account"]["id"] == api.account_id
    _plant(api.client, planted)
    assert api.client.get("/api/v1/account").status_code == 401


def test_revoking_the_key_ends_its_sessions(api: Api) -> None:
    _sign_in(api)
    assert api.client.get("/api/v1/account").status_code == 200
    with api.db.write() as s:
        revoke_key(s, api.key[:16])
    assert api.client.get("/api/v1/account").status_code == 401


def test_another_accounts_job_is_not_found_through_the_session(api: Api) -> None:
    _, other_key = api.new_account("other", "starter")
    r = api.client.post(JOBS, json={"sourceFilename": "c.mp4", "targetIds": ["default"]}, headers=api.headers(other_key))
    other_job = r.json()["data"]["jobId"]
    api.client.headers.pop("Authorization", None)
    _sign_in(api)
    assert api.client.get(f"{JOBS}/{other_job}").status_code == 404


def test_pages_have_a_strict_csp_and_no_inline_script(api: Api) -> None:
    for path in ("/studio", "/studio/jobs", "/studio/jobs/job_123", "/studio/new"):
        r = api.client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        html = r.text
        for tag in re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S):
            assert tag.strip() == "", "inline script"
        assert all("src=" in t for t in re.findall(r"<script\b[^>]*>", html))
        assert not re.search(r"\son[a-z]+=", html), "inline event handler"
        assert "sk_live_" not in html
    # no script or style comes from another origin, and the app never writes to web storage
    for path in STATIC_DIR.glob("*.js"):
        src = path.read_text()
        assert "localStorage" not in src and "sessionStorage" not in src, path.name
        assert not re.search(r"""(?:src|href)=["']https?://""", src)
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', (STATIC_DIR / "index.html").read_text()))


def test_static_files_are_served_safely(api: Api) -> None:
    r = api.client.get("/studio/static/app.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers.get("content-encoding") == "gzip"
    again = api.client.get("/studio/static/app.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    secret_source = (STATIC_DIR.parent / "routes.py").read_text()[:200]
    for bad in ("/studio/static/../routes.py", "/studio/static/%2e%2e/routes.py", "/studio/static/..%2froutes.py",
                "/studio/static/nope.js", "/studio/static/vendor/../../routes.py"):
        r = api.client.get(bad)
        assert secret_source not in r.text, bad
        assert r.status_code == 404 or r.text.startswith("<!doctype html>"), bad  # a missing file, or the page shell


def test_the_vendored_scripts_match_their_pins() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "refresh_studio_vendor.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    for licence in ("three/LICENSE", "tus/LICENSE"):
        assert (STATIC_DIR / "vendor" / licence).is_file()


def test_the_vendor_check_notices_a_changed_file(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("refresh_vendor", ROOT / "scripts" / "refresh_studio_vendor.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    copy = tmp_path / "vendor"
    import shutil

    shutil.copytree(STATIC_DIR / "vendor", copy)
    mod.VENDOR, mod.LOCK = copy, copy / "vendor.lock.json"
    assert mod.check() == []
    (copy / "tus" / "tus.min.js").write_text("alert('changed')")
    assert any("tus/tus.min.js" in p for p in mod.check())
