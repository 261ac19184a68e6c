"""/api/v1/account and its ledger."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from mocapd.api.auth import Principal, require_account
from mocapd.api.reads import account_payload, ledger_page
from mocapd.api.schemas import AccountOut, Envelope, LedgerEntryOut, Page, Problem
from mocapd.api.state import AppState, get_state

router = APIRouter(prefix="/api/v1/account", tags=["account"])
_ERR: dict[int | str, dict[str, Any]] = {401: {"model": Problem, "content": {"application/problem+json": {}}},
        422: {"model": Problem, "content": {"application/problem+json": {}}}}


@router.get("", response_model=Envelope[AccountOut], responses=_ERR, summary="Plan, limits and balances")
async def get_account(
    principal: Annotated[Principal, Depends(require_account)], state: Annotated[AppState, Depends(get_state)]
) -> Response:
    with state.db.read() as s:
        return JSONResponse({"data": account_payload(s, principal.account_id)})


@router.get("/ledger", response_model=Envelope[Page[LedgerEntryOut]], responses=_ERR, summary="Every credit movement")
async def get_ledger(
    principal: Annotated[Principal, Depends(require_account)],
    state: Annotated[AppState, Depends(get_state)],
    jobId: Annotated[str | None, Query(max_length=64)] = None,
    channel: Annotated[str | None, Query(pattern="^(api|studio)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    with state.db.read() as s:
        return JSONResponse({"data": ledger_page(s, principal.account_id, jobId, channel, limit, cursor)})
