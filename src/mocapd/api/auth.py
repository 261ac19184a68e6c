"""Authentication: a Bearer API key (the API door, billed to the api balance) or a Studio session
cookie (the Studio door, billed to the studio balance). A missing, malformed, unknown or revoked
credential is 401. A state-changing request made with the cookie must carry the session's CSRF token in
`X-CSRF-Token` and, when the browser sends one, an `Origin` of this service (403 otherwise).

Every API key has a request budget (SPEC 13): past it the answer is 429 ``rate_limited`` with
``Retry-After``. It runs on every request, so it is one statement, done inline (no thread hop): with the
budget on, the token bucket's ``UPDATE ... RETURNING`` (`mocapd.db.ratelimit`) both finds the key and
spends from it; with it off (``MOCAPD_RATE_LIMIT=0``), one indexed read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from mocapd.api.state import AppState
from mocapd.db.accounts import KEY_PREFIX, hash_key
from mocapd.db.models import ApiKey
from mocapd.db.ratelimit import bucket_state, plan_budget, spend
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
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        raise MocapdError("unauthorized", "The API key is unknown or has been revoked.", headers=_CHALLENGE)
    state: AppState = request.app.state.mocapd
    key_sha256 = hash_key(presented)
    budget = _budget(state, key_sha256)
    if budget is None:  # the limiter is off
        with state.db.connect() as conn:
            row = conn.execute(
                select(ApiKey.account_id, ApiKey.revoked_at).where(ApiKey.key_sha256 == key_sha256)
            ).first()
        if row is None or row.revoked_at is not None:
            raise MocapdError("unauthorized", "The API key is unknown or has been revoked.", headers=_CHALLENGE)
        return Principal(row.account_id)
    rate, burst = budget
    now_s = time.time()
    account_id = spend(state.db, key_sha256, now_s, rate, burst)
    if account_id is not None:
        return Principal(account_id)
    bucket = bucket_state(state.db, key_sha256, now_s, rate, burst)
    if not bucket.known:
        raise MocapdError("unauthorized", "The API key is unknown or has been revoked.", headers=_CHALLENGE)
    wait_s = max(1, math.ceil(bucket.retry_after_s))
    raise MocapdError(
        "rate_limited",
        f"This API key is limited to {rate:g} requests a second (bursts of {burst:g}); retry in {wait_s} s.",
        headers={"Retry-After": str(wait_s)},
        details={"limitPerSecond": rate, "burst": burst},
    )


_PLAN_TTL_S = 10.0  # a plan's budget change reaches every API process within this
_plan_cache: dict[str, tuple[float, tuple[float, float] | None]] = {}


def _budget(state: AppState, key_sha256: str) -> tuple[float, float] | None:
    """(rate, burst) for this key, or None when the limiter is off: MOCAPD_RATE_LIMIT for every key
    (0 = off), else the plan's setting (remembered for a few seconds: a setting, not the bucket)."""
    override = state.settings.rate_limit_rps
    if override is not None:
        return None if override <= 0 else (override, 2.0 * override)
    now = time.monotonic()
    hit = _plan_cache.get(key_sha256)
    if hit is not None and hit[0] > now:
        return hit[1] or (1.0, 1.0)  # an unknown key: spend() finds nothing, the 401 follows
    found = plan_budget(state.db, key_sha256)
    if len(_plan_cache) > 10_000:
        _plan_cache.clear()
    budget = None if found is None or found[0] <= 0 else found
    _plan_cache[key_sha256] = (now + _PLAN_TTL_S, budget if found is not None else None)
    return budget if found is not None else (1.0, 1.0)
