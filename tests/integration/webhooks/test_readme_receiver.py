"""The README's webhook receiver works as written: it verifies real signed messages, drops a redelivery
and ignores an event older than one it already applied."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from mocapd.db.outbox import encode_body
from mocapd.db.webhooks import new_secret
from tests.conftest import PROJECT_ROOT


def _signed(secret: str, msg_id: str, body: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body), "content-type": "application/json"}


def test_the_readme_receiver() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text().split("## Webhooks", 1)[1]
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)  # type: ignore[union-attr]
    secret = new_secret()
    scope: dict[str, Any] = {}
    exec(compile(code.replace('"whsec_..."', repr(secret)), "README", "exec"), scope)  # noqa: S102
    client = TestClient(scope["app"])
    job = {"id": "mocap_1", "status": "completed"}
    new = encode_body("job.completed", datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC), {"job": job})
    old = encode_body("job.processing", datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC), {"job": {**job, "status": "processing"}})
    assert client.post("/mocapd", content=new, headers=_signed(secret, "msg_a", new)).status_code == 200
    assert client.post("/mocapd", content=old, headers=_signed(secret, "msg_b", old)).status_code == 200
    assert client.post("/mocapd", content=new, headers=_signed(secret, "msg_a", new)).status_code == 200
    assert scope["latest"] == {"mocap_1": "2026-01-01T12:00:01.000Z"} and scope["seen"] == {"msg_a", "msg_b"}
    assert client.post("/mocapd", content=new, headers=_signed(new_secret(), "msg_c", new)).status_code == 400
