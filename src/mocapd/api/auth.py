"""Bearer API-key authentication. A missing, malformed, unknown or revoked key is 401."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mocapd.api.state import AppState, get_state
from mocapd.db.accounts import authenticate
from mocapd.errors import MocapdError

__all__ = ["Principal", "require_account"]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_live_...`")


@dataclass(frozen=True)
class Principal:
    account_id: str
    account_name: str
    plan_name: str


def require_account(
    request: Request,
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
    state: AppState = Depends(get_state),
) -> Principal:
    challenge = {"WWW-Authenticate": 'Bearer realm="mocapd"'}
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise MocapdError("unauthorized", "Send an API key as 'Authorization: Bearer <key>'.", headers=challenge)
    with state.db.read() as s:
        acct = authenticate(s, creds.credentials.strip())
        if acct is None:
            raise MocapdError("unauthorized", "The API key is unknown or has been revoked.", headers=challenge)
        return Principal(acct.id, acct.name, acct.plan_name)
