"""Webhook delivery against a real receiver (a local HTTP server): every job status change arrives
signed (verified with the standardwebhooks library), retries keep the webhook-id, redirects are not
followed, long answers are cut off, a hanging receiver delays no one else, SSRF rules hold at
creation and after DNS resolution at delivery, and two dispatchers never send one attempt twice
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from mocapd.api.app import create_app
from mocapd.config import Settings
from mocapd.db import queue
from mocapd.db.accounts import create_key
from mocapd.db.engine import Database
from mocapd.db.models import Account, WebhookDelivery, WebhookEndpoint
from mocapd.db.outbox import enqueue_event
from mocapd.webhooks import Dispatcher, send_signed
from tests.integration.queue.support import admit, create_draft, new_database, seed_account
from tests.support.postgres import fresh_postgres
from tests.support.receiver import receiver

SCHEDULE = "0.2,0.2,0.2"  # three quick retries


@dataclass
class Env:
    settings: Settings
    db: Database
    client: TestClient
    account_id: str
    key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def endpoint(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        r = self.client.post("/api/v1/webhooks", json={"url": url, "events": events or ["*"]}, headers=self.headers())
        assert r.status_code == 201, r.text
        return dict(r.json()["data"])

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        r = self.client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=self.headers())
        assert r.status_code == 200, r.text
        return list(r.json()["data"]["items"])


def _env(tmp_path: Path, url: str | None = None, **over: Any) -> Iterator[Env]:
    kw: dict[str, Any] = {"webhook_allow_private": True, "webhook_retry_schedule": SCHEDULE, "rate_limit_rps": 0, **over}
    settings = Settings(data_dir=tmp_path / "data", secret="s", database_url=url, **kw)
    db = new_database(settings.resolved_database_url)
    account_id = seed_account(db, "hooks", plan="starter")
    with db.write() as s:
        acct = s.get(Account, account_id)
        assert acct is not None
        key = create_key(s, acct)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield Env(settings, db, client, account_id, key)
    db.dispose()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path)


def _drain(d: Dispatcher, until: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "the dispatcher did not get there in time"
        if d.run_once() == 0:
            time.sleep(0.05)


def _verify(secret: str, got: Any) -> dict[str, Any]:
    return dict(Webhook(secret).verify(got.body, got.headers))


def test_every_status_change_arrives_signed_with_the_whole_job(env: Env) -> None:
    with receiver() as rx:
        ep = env.endpoint(rx.url)
        db = env.db
        # job A: queued, processing, (system fault) queued, processing, completed
        a = create_draft(db, env.account_id)
        admit(db, a, seconds=3)
        c = queue.claim(db, "w1", 30)
        assert c is not None and c.id == a
        assert queue.retry(db, a, c.lease_token, code="processing_failed", message="boom", stage="processing",
                           base_backoff_s=0.0) == "requeued"
        time.sleep(0.01)
        c = queue.claim(db, "w1", 30)
        assert c is not None
        assert queue.finish(db, a, c.lease_token, [])
        # job B: queued, processing, failed; job C: canceled while a draft
        b = create_draft(db, env.account_id)
        admit(db, b, seconds=2)
        cb = queue.claim(db, "w1", 30)
        assert cb is not None
        assert queue.fail(db, b, cb.lease_token, code="no_person_detected", message="nobody", stage="preflight")
        c_id = create_draft(db, env.account_id)
        assert queue.cancel(db, c_id)

        with _Running(db, env.settings) as d:
            got = rx.wait_for(9)
        assert d is not None
    bodies = [_verify(ep["secret"], g) for g in got]
    seen = [(b["data"]["job"]["id"], b["type"]) for b in bodies]
    assert Counter(seen) == Counter(
        [(a, "job.queued"), (a, "job.processing"), (a, "job.queued"), (a, "job.processing"), (a, "job.completed"),
         (b, "job.queued"), (b, "job.processing"), (b, "job.failed"), (c_id, "job.canceled")]
    )
    for body, g in zip(bodies, got, strict=True):
        job = body["data"]["job"]
        assert body["type"] == f"job.{job['status']}"  # the job as it was at that change
        assert body["timestamp"].endswith("Z") and job["billing"] and "source" in job
        assert g.headers["webhook-id"].startswith("msg_")
        assert g.headers["content-type"] == "application/json"
    failed = next(b for b in bodies if b["type"] == "job.failed")["data"]["job"]
    assert failed["error"]["code"] == "no_person_detected"
    assert len({g.headers["webhook-id"] for g in got}) == 9
    # a wrong secret does not verify
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=").verify(got[0].body, got[0].headers)
    items = env.deliveries(ep["webhookId"])
    assert len(items) == 9 and {i["status"] for i in items} == {"succeeded"} and {i["attempt"] for i in items} == {1}


class _Running:
    """A started dispatcher, stopped on exit."""

    def __init__(self, db: Database, settings: Settings, **kw: Any) -> None:
        self.d = Dispatcher(db, settings, **kw)

    def __enter__(self) -> Dispatcher:
        return self.d.start()

    def __exit__(self, *exc: object) -> None:
        self.d.stop()


def test_a_failing_receiver_gets_the_retries_with_one_webhook_id(env: Env) -> None:
    with receiver([500, 500, 200]) as rx:
        ep = env.endpoint(rx.url)
        with env.db.write() as s:
            enqueue_event(s, env.account_id, "job.completed", {"job": {"id": "mocap_x"}}, job_id="mocap_x")
        with _Running(env.db, env.settings):
            got = rx.wait_for(3)
            time.sleep(0.5)
        assert len(rx.received) == 3
    assert len({g.headers["webhook-id"] for g in got}) == 1
    assert len({g.body for g in got}) == 1
    for g in got:
        _verify(ep["secret"], g)
    assert got[1].at - got[0].at >= 0.15  # the schedule's delay
    [item] = env.deliveries(ep["webhookId"])
    assert item["status"] == "succeeded" and item["attempt"] == 3 and item["responseStatus"] == 200


def test_the_schedule_runs_out_then_redeliver_sends_the_same_message(env: Env) -> None:
    with receiver([503, 503, 503, 503, 200]) as rx:
        ep = env.endpoint(rx.url)
        with env.db.write() as s:
            enqueue_event(s, env.account_id, "job.failed", {"job": {"id": "mocap_y"}}, job_id="mocap_y")
        with _Running(env.db, env.settings):
            rx.wait_for(4)
            time.sleep(0.6)
        assert len(rx.received) == 4  # the first attempt and the schedule's three retries
        [item] = env.deliveries(ep["webhookId"])
        assert item["status"] == "failed" and item["attempt"] == 4 and item["responseStatus"] == 503
        assert item["nextAttemptAt"] is None
        r = env.client.post(f"/api/v1/webhooks/{ep['webhookId']}/deliveries/{item['id']}/redeliver", headers=env.headers())
        assert r.status_code == 202, r.text
        with _Running(env.db, env.settings):
            got = rx.wait_for(5)
    assert got[4].headers["webhook-id"] == got[0].headers["webhook-id"]
    items = env.deliveries(ep["webhookId"])
    assert [i["status"] for i in items] == ["succeeded", "failed"]


def test_a_redirect_is_not_followed(env: Env) -> None:
    with receiver() as target, receiver([f"redirect:{target.url}"]) as rx:
        ep = env.endpoint(rx.url)
        r = env.client.post(f"/api/v1/webhooks/{ep['webhookId']}/test", headers=env.headers())
        assert r.status_code == 202, r.text
        with _Running(env.db, env.settings):
            rx.wait_for(4)
            time.sleep(0.3)
        assert target.received == []
    [item] = env.deliveries(ep["webhookId"])
    assert item["eventType"] == "webhook.test" and item["status"] == "failed" and item["responseStatus"] == 302
    assert "not followed" in item["lastError"]


def test_an_endless_answer_is_cut_off_at_64_kib(env: Env) -> None:
    with receiver(["endless"]) as rx:
        t0 = time.monotonic()
        attempt = send_signed(rx.url, "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=", "msg_1", "{}",
                              allow_private=True)
        took = time.monotonic() - t0
        assert attempt.ok and attempt.response_status == 200
        assert attempt.response_bytes == 64 * 1024
        assert took < 5.0


def test_a_hanging_receiver_delays_no_other_delivery(env: Env) -> None:
    with receiver(["hang"], hang_s=8.0) as slow, receiver() as fast:
        env.endpoint(slow.url)
        with env.db.write() as s:
            enqueue_event(s, env.account_id, "job.queued", {"job": {"id": "mocap_1"}}, job_id="mocap_1")
        with _Running(env.db, env.settings, timeout_s=3.0):
            slow.wait_for(1)
            env.endpoint(fast.url)
            with env.db.write() as s:
                enqueue_event(s, env.account_id, "job.processing", {"job": {"id": "mocap_1"}}, job_id="mocap_1")
            t0 = time.time()
            got = fast.wait_for(1, timeout_s=2.0)  # while the slow one still hangs
            assert got[0].at - t0 < 1.0
        assert len(fast.received) == 1


def test_ssrf_refused_at_creation(tmp_path: Path) -> None:
    for e in _env(tmp_path, webhook_allow_private=False):
        for url in [
            "http://93.184.216.34/hook",  # not https
            "https://127.0.0.1/hook",
            "https://localhost:8443/hook",  # resolves to 127.0.0.1
            "https://10.1.2.3/hook",
            "https://192.168.0.10/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://metadata.google.internal/computeMetadata",
            "https://[::1]/hook",
            "https://[fe80::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://224.0.0.1/hook",
            "https://0.0.0.0/hook",
            "https://user:pw@93.184.216.34/hook",
            "ftp://93.184.216.34/",
        ]:
            r = e.client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=e.headers())
            assert r.status_code == 422, (url, r.text)
            assert r.json()["code"] == "webhook_url_not_allowed", url
        r = e.client.post("/api/v1/webhooks", json={"url": "https://93.184.216.34/hook", "events": ["job.completed"]},
                          headers=e.headers())
        assert r.status_code == 201, r.text
        r = e.client.patch(f"/api/v1/webhooks/{r.json()['data']['webhookId']}", json={"url": "https://127.0.0.1/"},
                           headers=e.headers())
        assert r.status_code == 422 and r.json()["code"] == "webhook_url_not_allowed"


def test_ssrf_refused_at_delivery_after_dns(env: Env) -> None:
    """An endpoint made while private addresses were allowed, delivered after the operator took that
    back: ``localhost`` resolves to 127.0.0.1, so the attempt is refused and nothing is sent."""
    with receiver() as rx:
        ep = env.endpoint(f"https://localhost:{rx.port}/hook")
        with env.db.write() as s:
            enqueue_event(s, env.account_id, "job.completed", {"job": {"id": "mocap_z"}}, job_id="mocap_z")
        strict = replace(env.settings, webhook_allow_private=False)
        d = Dispatcher(env.db, strict)
        _drain(d, lambda: env.deliveries(ep["webhookId"])[0]["attempt"] >= 1)
        d.stop()
        assert rx.received == []
    [item] = env.deliveries(ep["webhookId"])
    assert "loopback" in item["lastError"] and "127.0.0.1" in item["lastError"]


def test_the_connection_goes_to_the_checked_address() -> None:
    """DNS rebinding: the name is resolved once, checked, and the connection made to that address (the
    Host header keeps the name). "hooks.invalid" exists only in this resolver, so the request can only
    have reached the receiver through the pinned address."""
    calls: list[str] = []

    def resolver(host: str, port: int, *_: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    with receiver() as rx:
        attempt = send_signed(f"http://hooks.invalid:{rx.port}/hook", "whsec_QUFBQUFBQUFBQUFB", "msg_pin", "{}",
                              allow_private=True, resolver=resolver)
        assert attempt.ok, attempt
        assert rx.received[0].headers["host"] == f"hooks.invalid:{rx.port}"
        refused = send_signed(f"https://hooks.invalid:{rx.port}/hook", "whsec_QUFBQUFBQUFBQUFB", "msg_pin", "{}",
                              allow_private=False, resolver=resolver)
        assert not refused.ok and "loopback" in (refused.error or "")
        assert len(rx.received) == 1
    assert calls == ["hooks.invalid", "hooks.invalid"]


def _two_dispatchers_never_double_send(settings: Settings, account_id: str, n: int = 120) -> None:
    with receiver(delay_s=0.03) as rx:  # slow enough that both dispatchers are busy at once
        db = Database(settings.resolved_database_url)
        with db.write() as s:
            now = time.time()
            s.add(WebhookEndpoint(id="wh_race", account_id=account_id, url=rx.url, events=["*"], secret="whsec_QUFBQUFB",
                                  enabled=True, created_at=_utc(now), updated_at=_utc(now)))
        with db.write() as s:
            for i in range(n):
                enqueue_event(s, account_id, "job.completed", {"job": {"id": f"mocap_{i}"}}, job_id=f"mocap_{i}")
        dbs = [Database(settings.resolved_database_url) for _ in range(2)]
        ds = [Dispatcher(d, settings, concurrency=4, poll_s=0.01) for d in dbs]
        start = threading.Barrier(2)

        def go(d: Dispatcher) -> None:
            start.wait()
            d.start()

        threads = [threading.Thread(target=go, args=(d,)) for d in ds]
        for t in threads:
            t.start()
        got = rx.wait_for(n, timeout_s=60)
        time.sleep(0.5)
        for t in threads:
            t.join()
        for d in ds:
            d.stop()
        assert len(rx.received) == n
        ids = Counter(g.headers["webhook-id"] for g in got)
        assert len(ids) == n and max(ids.values()) == 1
        assert all(d.sent > 0 for d in ds), [d.sent for d in ds]  # both took part
        with db.read() as s:
            rows = s.scalars(select(WebhookDelivery)).all()
            assert len(rows) == n and {r.status for r in rows} == {"succeeded"} and {r.attempt for r in rows} == {1}
        for d in [db, *dbs]:
            d.dispose()


def _utc(t: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC)


def test_two_dispatchers_never_double_send_sqlite(tmp_path: Path) -> None:
    for e in _env(tmp_path):
        _two_dispatchers_never_double_send(e.settings, e.account_id)


@pytest.mark.postgres
def test_two_dispatchers_never_double_send_postgres(tmp_path: Path) -> None:
    with fresh_postgres() as url:
        for e in _env(tmp_path, url):
            _two_dispatchers_never_double_send(e.settings, e.account_id)


def test_endpoint_api_tenancy_secret_and_idempotency(env: Env) -> None:
    h = env.headers()
    r = env.client.post("/api/v1/webhooks", json={"url": "https://93.184.216.34/a", "events": ["job.completed", "job.failed"],
                                                  "description": "ci"}, headers={**h, "Idempotency-Key": "k1"})
    assert r.status_code == 201
    created = r.json()["data"]
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    again = env.client.post("/api/v1/webhooks", json={"url": "https://93.184.216.34/a", "events": ["job.completed", "job.failed"],
                                                      "description": "ci"}, headers={**h, "Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["webhookId"] == created["webhookId"]
    other = env.client.post("/api/v1/webhooks", json={"url": "https://93.184.216.34/b", "events": ["*"]},
                            headers={**h, "Idempotency-Key": "k1"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    wid = created["webhookId"]
    got = env.client.get(f"/api/v1/webhooks/{wid}", headers=h).json()["data"]
    assert "secret" not in got and got["events"] == ["job.completed", "job.failed"]
    assert [w["webhookId"] for w in env.client.get("/api/v1/webhooks", headers=h).json()["data"]["items"]] == [wid]
    rotated = env.client.post(f"/api/v1/webhooks/{wid}/rotate-secret", headers=h).json()["data"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    r = env.client.patch(f"/api/v1/webhooks/{wid}", json={"events": ["nope"]}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "webhook_event_unknown"
    r = env.client.patch(f"/api/v1/webhooks/{wid}", json={"enabled": False, "description": None}, headers=h)
    assert r.status_code == 200 and r.json()["data"]["enabled"] is False and r.json()["data"]["description"] is None
    # another account sees nothing of it
    other_id = seed_account(env.db, "other")
    with env.db.write() as s:
        acct = s.get(Account, other_id)
        assert acct is not None
        other_key = create_key(s, acct)
    oh = {"Authorization": f"Bearer {other_key}"}
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("post", "/rotate-secret"), ("post", "/test"),
                         ("get", "/deliveries")]:
        kw: dict[str, Any] = {"json": {"enabled": True}} if method == "patch" else {}
        r = getattr(env.client, method)(f"/api/v1/webhooks/{wid}{path}", headers=oh, **kw)
        assert r.status_code == 404 and r.json()["code"] == "webhook_not_found", (method, path, r.text)
    assert env.client.get("/api/v1/webhooks", headers=oh).json()["data"]["items"] == []
    assert env.client.delete(f"/api/v1/webhooks/{wid}", headers=h).status_code == 204
    assert env.client.get(f"/api/v1/webhooks/{wid}", headers=h).status_code == 404


def test_only_subscribed_enabled_endpoints_get_an_event(env: Env) -> None:
    done = env.endpoint("https://93.184.216.34/done", ["job.completed"])
    every = env.endpoint("https://93.184.216.34/all", ["*"])
    off = env.endpoint("https://93.184.216.34/off", ["*"])
    env.client.patch(f"/api/v1/webhooks/{off['webhookId']}", json={"enabled": False}, headers=env.headers())
    job = create_draft(env.db, env.account_id)
    admit(env.db, job, seconds=1)  # job.queued
    assert [i["eventType"] for i in env.deliveries(every["webhookId"])] == ["job.queued"]
    assert env.deliveries(done["webhookId"]) == [] and env.deliveries(off["webhookId"]) == []
    body = json.loads(_message_body(env.db, env.deliveries(every["webhookId"])[0]["messageId"]))
    assert body["data"]["job"]["status"] == "queued" and body["data"]["job"]["id"] == job


def _message_body(db: Database, message_id: str) -> str:
    from mocapd.db.models import WebhookMessage

    with db.read() as s:
        m = s.get(WebhookMessage, message_id)
        assert m is not None
        return m.body


def test_an_endpoint_failing_for_the_whole_window_is_disabled(tmp_path: Path) -> None:
    for e in _env(tmp_path, webhook_disable_after_s=0.5, webhook_retry_schedule="0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1"):
        with receiver([500]) as rx:
            ep = e.endpoint(rx.url)
            with e.db.write() as s:
                enqueue_event(s, e.account_id, "job.failed", {"job": {"id": "mocap_d"}}, job_id="mocap_d")
            with _Running(e.db, e.settings):
                deadline = time.monotonic() + 10
                while e.client.get(f"/api/v1/webhooks/{ep['webhookId']}", headers=e.headers()).json()["data"]["enabled"]:
                    assert time.monotonic() < deadline, "never disabled"
                    time.sleep(0.1)
                time.sleep(0.3)
            [item] = e.deliveries(ep["webhookId"])
            assert item["status"] == "failed"  # no retries left for a disabled endpoint
            got = e.client.get(f"/api/v1/webhooks/{ep['webhookId']}", headers=e.headers()).json()["data"]
            assert "failed" in got["disabledReason"]
            # a disabled endpoint gets no new events; re-enabled by its owner, it does again
            with e.db.write() as s:
                assert enqueue_event(s, e.account_id, "job.failed", {"job": {}}, job_id="mocap_e") is None
            r = e.client.patch(f"/api/v1/webhooks/{ep['webhookId']}", json={"enabled": True}, headers=e.headers())
            assert r.json()["data"]["enabled"] is True and r.json()["data"]["disabledReason"] is None
            with e.db.write() as s:
                assert enqueue_event(s, e.account_id, "job.failed", {"job": {}}, job_id="mocap_e") is not None


def test_housekeeping_forgets_old_and_purged_jobs_messages(env: Env) -> None:
    from datetime import timedelta

    from mocapd.db.models import WebhookMessage
    from mocapd.db.webhooks import purge_messages

    env.endpoint("https://93.184.216.34/a")
    with env.db.write() as s:
        old = enqueue_event(s, env.account_id, "job.completed", {"job": {}}, job_id="mocap_old",
                            timestamp=_utc(time.time()) - timedelta(days=40))
        kept = enqueue_event(s, env.account_id, "job.completed", {"job": {}}, job_id="mocap_new")
        purged = enqueue_event(s, env.account_id, "job.completed", {"job": {}}, job_id="mocap_gone")
        pending_old = enqueue_event(s, env.account_id, "job.completed", {"job": {}}, job_id="mocap_p",
                                    timestamp=_utc(time.time()) - timedelta(days=40))
        for d in s.scalars(select(WebhookDelivery).where(WebhookDelivery.message_id.in_([old, kept, purged]))):
            d.status = "succeeded"
    assert purge_messages(env.db, job_ids=["mocap_gone"]) == 2
    with env.db.read() as s:
        left = set(s.scalars(select(WebhookMessage.id)))
        assert left == {kept, pending_old}
        assert {d.message_id for d in s.scalars(select(WebhookDelivery))} == {kept, pending_old}
