"""What the API process holds: settings, the database, the object store and the URL signer."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from fastapi import Request

from mocapd.api.signing import Signer
from mocapd.config import Settings
from mocapd.db.engine import Database
from mocapd.storage import ObjectStore

__all__ = ["AppState", "get_state"]


@dataclass
class AppState:
    settings: Settings
    db: Database
    store: ObjectStore
    signer: Signer
    started_at: float = field(default_factory=time.time)
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    request_seconds: Counter[str] = field(default_factory=Counter)

    def base_url(self, request: Request) -> str:
        """Base of the links we sign: MOCAPD_PUBLIC_URL, else the URL the client reached us at."""
        return (self.settings.public_url or str(request.base_url)).rstrip("/")


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mocapd
    return state
