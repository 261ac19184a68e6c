"""Accounts, plans and API keys. Keys are shown once and stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mocapd.db.models import Account, ApiKey, Job, Plan
from mocapd.domain.jobs import ACTIVE_STATUSES
from mocapd.domain.plans import DEFAULT_PLANS, PlanLimits, plan_options
from mocapd.errors import MocapdError

__all__ = [
    "KEY_PREFIX",
    "active_job_count",
    "authenticate",
    "create_account",
    "create_key",
    "ensure_plans",
    "find_account",
    "hash_key",
    "plan_limits",
    "revoke_key",
]

KEY_PREFIX = "sk_live_"
_PREFIX_LEN = len(KEY_PREFIX) + 8  # shown in listings and used to revoke


def _now() -> datetime:
    return datetime.now(UTC)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_plans(session: Session) -> None:
    for p in DEFAULT_PLANS.values():
        if session.get(Plan, p.name) is None:
            session.add(
                Plan(
                    name=p.name,
                    max_active_jobs=p.max_active_jobs,
                    max_duration_s=p.max_duration_s,
                    max_file_bytes=p.max_file_bytes,
                    allowed_targets=list(p.allowed_targets),
                    retention_days=p.retention_days,
                    queue_weight=p.queue_weight,
                    active=p.active,
                    rate_limit_rps=p.rate_limit_rps,
                    rate_limit_burst=p.rate_limit_burst,
                )
            )
    session.flush()


def plan_limits(plan: Plan) -> PlanLimits:
    return PlanLimits(
        name=plan.name,
        max_active_jobs=plan.max_active_jobs,
        max_duration_s=plan.max_duration_s,
        max_file_bytes=plan.max_file_bytes,
        allowed_targets=tuple(plan.allowed_targets),
        retention_days=plan.retention_days,
        queue_weight=plan.queue_weight,
        active=plan.active,
        options=plan_options(plan.name),
        rate_limit_rps=plan.rate_limit_rps,
        rate_limit_burst=plan.rate_limit_burst,
    )


def create_account(session: Session, name: str, plan: str = "free") -> Account:
    ensure_plans(session)
    if session.get(Plan, plan) is None:
        raise MocapdError("validation_error", f"Unknown plan '{plan}'.", details={"allowed": list(DEFAULT_PLANS)})
    if session.scalar(select(Account).where(Account.name == name)) is not None:
        raise MocapdError("validation_error", f"An account named '{name}' already exists.")
    acct = Account(id="acct_" + secrets.token_hex(8), name=name, plan_name=plan, created_at=_now())
    session.add(acct)
    session.flush()
    return acct


def find_account(session: Session, name_or_id: str) -> Account:
    acct = session.get(Account, name_or_id) or session.scalar(select(Account).where(Account.name == name_or_id))
    if acct is None:
        raise MocapdError("validation_error", f"No account named '{name_or_id}'.")
    return acct


def create_key(session: Session, account: Account) -> str:
    """A new API key for ``account``; the plaintext is returned once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")
    session.add(
        ApiKey(
            id="key_" + secrets.token_hex(8),
            account_id=account.id,
            prefix=key[:_PREFIX_LEN],
            key_sha256=hash_key(key),
            created_at=_now(),
        )
    )
    session.flush()
    return key


def revoke_key(session: Session, prefix: str) -> ApiKey:
    matches = session.scalars(select(ApiKey).where(ApiKey.prefix.startswith(prefix))).all()
    if len(prefix) < len(KEY_PREFIX) + 4 or len(matches) != 1:
        raise MocapdError(
            "validation_error",
            "Give a key prefix that matches exactly one key (at least sk_live_ plus 4 characters).",
        )
    key = matches[0]
    if key.revoked_at is None:
        key.revoked_at = _now()
    return key


def authenticate(session: Session, presented: str) -> Account | None:
    """The account of an active key, or None (unknown, malformed or revoked)."""
    if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.key_sha256 == hash_key(presented)))
    if key is None or key.revoked_at is not None:
        return None
    return session.get(Account, key.account_id)


def active_job_count(session: Session, account_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Job).where(
                Job.account_id == account_id, Job.status.in_([str(s) for s in ACTIVE_STATUSES])
            )
        )
        or 0
    )
