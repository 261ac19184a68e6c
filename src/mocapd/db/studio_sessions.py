"""Studio sessions: a person signs in with an API key and gets a cookie instead.

The key itself is never kept by the browser. The cookie carries a random token; the database keeps
only its SHA-256. The CSRF token is derived from the cookie's token (a one-way hash of it), so the
page can ask for it again after a reload and a cross-site request, which never sees the cookie's
value, can never produce it. Signing in always makes a new session
(the token is never chosen by the client, so a planted cookie cannot be fixed onto an account), and
signing out, expiry or revoking the key ends it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from mocapd.db.accounts import KEY_PREFIX, hash_key
from mocapd.db.models import ApiKey, StudioSession

__all__ = ["SESSION_TTL", "NewSession", "SessionInfo", "csrf_matches", "csrf_token_for", "end_session", "find_session", "start_session"]

SESSION_TTL = timedelta(hours=12)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_token_for(token: str) -> str:
    digest = hashlib.sha256(b"mocapd studio csrf\0" + token.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the HttpOnly cookie only
    csrf_token: str  # handed to the page; sent back in X-CSRF-Token on every state-changing request
    account_id: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionInfo:
    id: str
    account_id: str
    csrf_token: str
    expires_at: datetime


def start_session(s: Session, presented_key: str, *, now: datetime | None = None) -> NewSession | None:
    """A new session for an active API key, or None when the key is unknown, malformed or revoked."""
    now = now or datetime.now(UTC)
    presented_key = presented_key.strip()
    if not presented_key.startswith(KEY_PREFIX) or len(presented_key) > 200:
        return None
    key = s.scalar(select(ApiKey).where(ApiKey.key_sha256 == hash_key(presented_key)))
    if key is None or key.revoked_at is not None:
        return None
    token = secrets.token_urlsafe(32)
    row = StudioSession(
        id="ss_" + secrets.token_hex(8), account_id=key.account_id, key_id=key.id, token_sha256=_sha(token),
        created_at=now, expires_at=now + SESSION_TTL,
    )
    s.add(row)
    s.flush()
    return NewSession(token, csrf_token_for(token), key.account_id, row.expires_at)


def find_session(s: Session | Connection, token: str, *, now: datetime | None = None) -> SessionInfo | None:
    """The live session a cookie names (not signed out, not expired, its key not revoked)."""
    if not token or len(token) > 100:
        return None
    now = now or datetime.now(UTC)
    row = s.execute(
        select(StudioSession.id, StudioSession.account_id, StudioSession.expires_at,
               StudioSession.revoked_at, ApiKey.revoked_at.label("key_revoked_at"))
        .join(ApiKey, ApiKey.id == StudioSession.key_id)
        .where(StudioSession.token_sha256 == _sha(token))
    ).first()
    if row is None or row.revoked_at is not None or row.key_revoked_at is not None or row.expires_at <= now:
        return None
    return SessionInfo(row.id, row.account_id, csrf_token_for(token), row.expires_at)


def csrf_matches(info: SessionInfo, presented: str | None) -> bool:
    return bool(presented) and secrets.compare_digest((presented or "").encode(), info.csrf_token.encode())


def end_session(s: Session, session_id: str, *, now: datetime | None = None) -> None:
    s.execute(update(StudioSession).where(StudioSession.id == session_id, StudioSession.revoked_at.is_(None))
              .values(revoked_at=now or datetime.now(UTC)))
