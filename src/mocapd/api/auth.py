"""Authentication: a Bearer API key (the API door, billed to the api balance) or a Studio session
cookie (the Studio door, billed to the studio balance). A missing, malformed, unknown or revoked
credential is 401. A state-changing request made with the cookie must carry the session's CSRF token in
`X-CSRF-Token` and, when the browser sends one, an `Origin` of this service (403 otherwise).

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
from mocapd.db.studio_sessions import csrf_matches, find_session
from mocapd.errors import MocapdError

__all__ = ["SESSION_COOKIE", "Principal", "require_account", "same_origin"]

SESSION_COOKIE = "mocapd_studio"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_live_...`")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="mocapd"'}


@dataclass(frozen=True)
class Principal:
    account_id: str
    channel: str = "api"  # the balance this caller's jobs spend: "api" (key) or "studio" (session)
    session_id: str | None = None


def same_origin(request: Request) -> bool:
    """True when the request carries no Origin (not a browser's cross-site request) or this service's own."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in {f"http://{host}", f"https://{host}"}


def _studio_principal(request: Request, token: str) -> Principal:
    state: AppState = request.app.state.mocapd
    with state.db.connect() as conn:
        info = find_session(conn, token)
    if info is None:
        raise MocapdError("unauthorized", "The Studio session has ended. Sign in again.")
    if request.method not in _SAFE_METHODS and (
        not same_origin(request) or not csrf_matches(info, request.headers.get("x-csrf-token"))
    ):
        raise MocapdError("studio_csrf_rejected", "This request did not come from a Studio page. Reload the page and try again.")
    return Principal(info.account_id, channel="studio", session_id=info.id)


async def require_account(
    request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    if creds is None and (token := request.cookies.get(SESSION_COOKIE)):
        return _studio_principal(request, token)
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
