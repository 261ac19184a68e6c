"""An API bound to a fresh SQLite file and local folder, with one funded account per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mocapd.api.app import create_app
from mocapd.config import Settings
from mocapd.db.accounts import create_account, create_key
from mocapd.db.engine import Database
from mocapd.db.ledger import grant


@dataclass
class Api:
    client: TestClient
    settings: Settings
    db: Database
    key: str
    account_id: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_account(self, name: str, plan: str = "free", credits: int = 100) -> tuple[str, str]:
        with self.db.write() as s:
            acct = create_account(s, name, plan)
            if credits:
                grant(s, acct.id, credits, "api")
            return acct.id, create_key(s, acct)

    def create(self, **body: object) -> dict:  # type: ignore[type-arg]
        payload = {"sourceFilename": "clip.mp4", "targetIds": ["default"], **body}
        r = self.client.post("/api/v1/mocap/jobs", json=payload, headers=self.headers())
        assert r.status_code == 201, r.text
        return r.json()["data"]

    def upload(self, job: dict, data: bytes) -> object:  # type: ignore[type-arg]
        return self.client.put(job["uploadUrl"], content=data)

    def complete(self, job_id: str, key: str | None = None) -> object:
        return self.client.post(f"/api/v1/mocap/jobs/{job_id}/complete-upload", headers=self.headers(key))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path / "data", secret="test-secret")
    app = create_app(settings)
    with TestClient(app, base_url="http://testserver") as client:
        db = Database(settings.resolved_database_url)
        with db.write() as s:
            acct = create_account(s, "studio-a", "starter")
            grant(s, acct.id, 300, "api", reason="test grant")
            key = create_key(s, acct)
            acct_id = acct.id
        yield Api(client, settings, db, key, acct_id)
        db.dispose()
