"""The credit ledger: append-only entries, balances folded from them, holds settled exactly once.

Exactly-once rests on the database, not on the caller: every hold has the unique key ``hold:<job>``
and its settlement (capture *or* release) the unique key ``settle:<job>``, inserted with
ON CONFLICT DO NOTHING. A second capture, a release after a capture, or a zombie worker's late
write inserts nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mocapd.db.models import LedgerEntry
from mocapd.domain.credits import Balance, Channel, EntryType, balance_of, entry_key

__all__ = ["append_entry", "balance", "grant", "place_hold", "settle_hold"]


def _now() -> datetime:
    return datetime.now(UTC)


def append_entry(
    session: Session,
    *,
    account_id: str,
    channel: str,
    type: EntryType,
    amount: int,
    job_id: str | None = None,
    key: str | None = None,
    lease_token: int | None = None,
    reason: str | None = None,
) -> bool:
    """Insert one entry; False (and nothing written) if an entry with the same unique key exists."""
    values = dict(
        account_id=account_id,
        channel=str(channel),
        type=str(type),
        amount=int(amount),
        job_id=job_id,
        entry_key=key,
        lease_token=lease_token,
        reason=reason,
        created_at=_now(),
    )
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LedgerEntry).values(**values)
    if key is not None:
        ins = ins.on_conflict_do_nothing(index_elements=["entry_key"])
    result = cast("CursorResult[Any]", session.execute(ins))  # an INSERT: a cursor result
    return bool(result.rowcount)


def balance(session: Session, account_id: str, channel: str) -> Balance:
    rows = session.execute(
        select(LedgerEntry.type, func.coalesce(func.sum(LedgerEntry.amount), 0))
        .where(LedgerEntry.account_id == account_id, LedgerEntry.channel == str(channel))
        .group_by(LedgerEntry.type)
    ).all()
    return balance_of({t: int(a) for t, a in rows})


def grant(session: Session, account_id: str, amount: int, channel: str = Channel.API, reason: str | None = None) -> None:
    if amount == 0:
        return
    kind = EntryType.GRANT if amount > 0 else EntryType.ADJUST
    append_entry(session, account_id=account_id, channel=channel, type=kind, amount=amount, reason=reason)


def place_hold(session: Session, *, account_id: str, channel: str, job_id: str, amount: int) -> bool:
    return append_entry(
        session,
        account_id=account_id,
        channel=channel,
        type=EntryType.HOLD,
        amount=amount,
        job_id=job_id,
        key=entry_key(EntryType.HOLD, job_id),
        reason="credits held at admission",
    )


def settle_hold(
    session: Session,
    *,
    account_id: str,
    channel: str,
    job_id: str,
    amount: int,
    capture: bool,
    lease_token: int | None = None,
    reason: str | None = None,
) -> bool:
    """Capture (charge) or release (refund) the job's hold; True only for the one call that settled it."""
    kind = EntryType.CAPTURE if capture else EntryType.RELEASE
    return append_entry(
        session,
        account_id=account_id,
        channel=channel,
        type=kind,
        amount=amount,
        job_id=job_id,
        key=entry_key(kind, job_id),
        lease_token=lease_token,
        reason=reason,
    )
