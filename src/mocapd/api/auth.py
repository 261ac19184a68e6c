"""Bearer API-key authentication. A missing, malformed, unknown or revoked key is 401.

It runs on every request, so it is one indexed lookup, done inline (no thread hop): SQLite in WAL
mode and PostgreSQL never block a reader behind a writer.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from mocapd.api.state import AppState
from mocapd.db.accounts import KEY_PREFIX, hash_key
from mocapd.db.models import ApiKey
from mocapd.errors import MocapdError

__all__ = ["Principal", "require_account"]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_live_...`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mocapd"'}


@dataclass(frozen=True)
class Principal:
    account_id: str


async def require_account(
    request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise MocapdError("unauthorized", "Send an API key as 'Authorization: Bearer <key>'.", headers=_CHALLENGE)
    presented = creds.credentials.strip()
    row = None
    if presented.startswith(KEY_PREFIX) and len(presented) <= 200:
        state: AppState = request.app.state.mocapd
        with state.db.connect() as conn:
            row = conn.execute(
                select(ApiKey.account_id, ApiKey.revoked_at).where(ApiKey.key_sha256 == hash_key(presented))
            ).first()
    if row is None or row.revoked_at is not None:
        raise MocapdError("unauthorized", "The API key is unknown or has been revoked.", headers=_CHALLENGE)
    return Principal(row.account_id)
