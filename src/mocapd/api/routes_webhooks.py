"""/api/v1/webhooks: an account's webhook endpoints and their delivery log (SPEC section 13).

The secret is in the answer of create and rotate-secret only. URLs are checked at creation (and on
update) with the same rules the dispatcher applies after DNS resolution at every delivery.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mocapd.api.auth import Principal, require_account
from mocapd.api.schemas import Envelope, Page, Problem
from mocapd.api.state import AppState, get_state
from mocapd.db.models import IdempotencyRecord, WebhookDelivery, WebhookEndpoint
from mocapd.db.outbox import enqueue_event
from mocapd.db.webhooks import new_secret, redeliver
from mocapd.domain.webhooks import EVENT_TYPES, UrlRefused, check_url
from mocapd.domain.wire import iso
from mocapd.errors import MocapdError

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

Auth = Annotated[Principal, Depends(require_account)]
State = Annotated[AppState, Depends(get_state)]
_ERR: dict[int | str, dict[str, Any]] = {
    s: {"model": Problem, "content": {"application/problem+json": {}}} for s in (401, 404, 409, 422)
}
MAX_ENDPOINTS = 20  # per account


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookIn(_In):
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=len(EVENT_TYPES) + 1)
    description: str | None = Field(default=None, max_length=500)


class WebhookPatchIn(_In):
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=len(EVENT_TYPES) + 1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookOut(BaseModel):
    webhookId: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabledReason: str | None
    createdAt: str
    updatedAt: str


class WebhookSecretOut(WebhookOut):
    secret: str


class DeliveryOut(BaseModel):
    id: str
    webhookId: str
    messageId: str
    eventType: str
    jobId: str | None
    attempt: int
    status: str
    responseStatus: int | None
    lastError: str | None
    nextAttemptAt: str | None
    createdAt: str
    updatedAt: str


class TestOut(BaseModel):
    webhookId: str
    messageId: str
    deliveryId: str


def _endpoint_dict(ep: WebhookEndpoint, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "webhookId": ep.id,
        "url": ep.url,
        "events": list(ep.events),
        "description": ep.description,
        "enabled": bool(ep.enabled),
        "disabledReason": ep.disabled_reason,
        "createdAt": iso(ep.created_at),
        "updatedAt": iso(ep.updated_at),
    }
    if secret:
        out["secret"] = ep.secret
    return out


def _delivery_dict(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "webhookId": d.endpoint_id,
        "messageId": d.message_id,
        "eventType": d.event_type,
        "jobId": d.job_id,
        "attempt": d.attempt,
        "status": d.status,
        "responseStatus": d.response_status,
        "lastError": d.last_error,
        "nextAttemptAt": iso(d.next_attempt_at) if d.status == "pending" else None,
        "createdAt": iso(d.created_at),
        "updatedAt": iso(d.updated_at),
    }


def _events(events: list[str]) -> list[str]:
    out = sorted(set(events))
    unknown = [e for e in out if e != "*" and e not in EVENT_TYPES]
    if unknown:
        raise MocapdError(
            "webhook_event_unknown",
            f"Unknown event type(s): {', '.join(unknown)}.",
            details={"allowed": ["*", *EVENT_TYPES]},
        )
    return ["*"] if "*" in out else out


def _check_url(state: AppState, url: str) -> str:
    """The form and, for a host name, every address it resolves to now (again at each delivery)."""
    from mocapd.webhooks.send import resolve_checked

    allow = state.settings.webhook_allow_private
    try:
        _scheme, host, port = check_url(url, allow_private=allow)
        if not allow:
            resolve_checked(host, port, allow_private=False)
    except UrlRefused as exc:
        raise MocapdError("webhook_url_not_allowed", str(exc), details={"url": url[:200]}) from exc
    return url


def _owned(s: Session, account_id: str, webhook_id: str) -> WebhookEndpoint:
    ep = s.get(WebhookEndpoint, webhook_id)
    if ep is None or ep.account_id != account_id:  # another account's endpoint is not found
        raise MocapdError("webhook_not_found", f"No webhook endpoint {webhook_id!r}.")
    return ep


def _data(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"data": data}, status_code=status_code, headers=headers)


def _create(state: AppState, account_id: str, body: WebhookIn, idem_key: str | None) -> tuple[dict[str, Any], bool]:
    events = _events(body.events)
    url = _check_url(state, body.url)
    fp = hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()
    key = None
    if idem_key is not None:
        idem_key = idem_key.strip().strip('"')
        if not (1 <= len(idem_key) <= 240):
            raise MocapdError("validation_error", "Idempotency-Key must be 1 to 240 characters.")
        key = "webhooks:" + idem_key  # its own namespace beside the job keys
    now = datetime.now(UTC)
    for _ in range(3):
        try:
            with state.db.write() as s:
                if key is not None:
                    rec = s.get(IdempotencyRecord, (account_id, key))
                    if rec is not None and rec.expires_at >= now:
                        if rec.fingerprint != fp:
                            raise MocapdError(
                                "idempotency_key_reused", "This Idempotency-Key was used with a different request body."
                            )
                        assert rec.response_body is not None
                        return dict(rec.response_body), True
                    if rec is not None:
                        s.delete(rec)
                        s.flush()
                count = len(s.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.account_id == account_id)).all())
                if count >= MAX_ENDPOINTS:
                    raise MocapdError("validation_error", f"An account has at most {MAX_ENDPOINTS} webhook endpoints.")
                ep = WebhookEndpoint(
                    id="wh_" + secrets.token_hex(12),
                    account_id=account_id,
                    url=url,
                    events=events,
                    description=body.description,
                    secret=new_secret(),
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
                s.add(ep)
                out = _endpoint_dict(ep, secret=True)
                if key is not None:
                    s.add(
                        IdempotencyRecord(
                            account_id=account_id, key=key, fingerprint=fp, state="done", locked_until=now,
                            response_status=201, response_body=out, created_at=now,
                            expires_at=now + _ttl(state),
                        )
                    )
                return out, False
        except IntegrityError:
            continue  # a concurrent request with the same key stored its answer first: replay it
    raise MocapdError("idempotency_key_in_flight", "Retry shortly.", headers={"Retry-After": "1"})


def _ttl(state: AppState) -> Any:
    from datetime import timedelta

    return timedelta(seconds=state.settings.idempotency_ttl_s)


@router.post("", status_code=201, response_model=Envelope[WebhookSecretOut], responses=_ERR,
             summary="Register an endpoint (the secret is shown only in this answer)")
async def create_webhook(
    body: WebhookIn,
    principal: Auth,
    state: State,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=300)] = None,
) -> Response:
    out, replayed = await run_in_threadpool(_create, state, principal.account_id, body, idempotency_key)
    return _data(out, 200 if replayed else 201, {"Idempotent-Replayed": "true"} if replayed else None)


@router.get("", response_model=Envelope[Page[WebhookOut]], responses=_ERR, summary="The account's endpoints")
async def list_webhooks(principal: Auth, state: State) -> Response:
    with state.db.read() as s:
        eps = s.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.account_id == principal.account_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        ).all()
        return _data({"items": [_endpoint_dict(e) for e in eps], "nextCursor": None})


@router.get("/{webhook_id}", response_model=Envelope[WebhookOut], responses=_ERR, summary="One endpoint")
async def get_webhook(webhook_id: str, principal: Auth, state: State) -> Response:
    with state.db.read() as s:
        return _data(_endpoint_dict(_owned(s, principal.account_id, webhook_id)))


def _patch(state: AppState, account_id: str, webhook_id: str, body: WebhookPatchIn) -> dict[str, Any]:
    events = _events(body.events) if body.events is not None else None
    url = _check_url(state, body.url) if body.url is not None else None
    with state.db.write() as s:
        ep = _owned(s, account_id, webhook_id)
        if url is not None:
            ep.url = url
        if events is not None:
            ep.events = events
        if "description" in body.model_fields_set:
            ep.description = body.description
        if body.enabled is not None:
            ep.enabled = body.enabled
            if body.enabled:  # re-enabled by its owner: its failure clock starts again
                ep.failing_since, ep.disabled_reason = None, None
            else:
                ep.disabled_reason = "Disabled by the account."
        ep.updated_at = datetime.now(UTC)
        return _endpoint_dict(ep)


@router.patch("/{webhook_id}", response_model=Envelope[WebhookOut], responses=_ERR, summary="Change an endpoint")
async def patch_webhook(webhook_id: str, body: WebhookPatchIn, principal: Auth, state: State) -> Response:
    return _data(await run_in_threadpool(_patch, state, principal.account_id, webhook_id, body))


def _delete(state: AppState, account_id: str, webhook_id: str) -> None:
    with state.db.write() as s:
        s.delete(_owned(s, account_id, webhook_id))  # its deliveries go with it (ON DELETE CASCADE)


@router.delete("/{webhook_id}", status_code=204, responses=_ERR, summary="Remove an endpoint and its delivery log")
async def delete_webhook(webhook_id: str, principal: Auth, state: State) -> Response:
    await run_in_threadpool(_delete, state, principal.account_id, webhook_id)
    return Response(status_code=204)


def _rotate(state: AppState, account_id: str, webhook_id: str) -> dict[str, Any]:
    with state.db.write() as s:
        ep = _owned(s, account_id, webhook_id)
        ep.secret = new_secret()
        ep.updated_at = datetime.now(UTC)
        return _endpoint_dict(ep, secret=True)


@router.post("/{webhook_id}/rotate-secret", response_model=Envelope[WebhookSecretOut], responses=_ERR,
             summary="Replace the signing secret (every later delivery, retries included, is signed with the new one)")
async def rotate_secret(webhook_id: str, principal: Auth, state: State) -> Response:
    return _data(await run_in_threadpool(_rotate, state, principal.account_id, webhook_id))


@router.get("/{webhook_id}/deliveries", response_model=Envelope[Page[DeliveryOut]], responses=_ERR,
            summary="The endpoint's deliveries, newest first")
async def list_deliveries(
    webhook_id: str,
    principal: Auth,
    state: State,
    status: Annotated[str | None, Query(pattern="^(pending|succeeded|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    with state.db.read() as s:
        _owned(s, principal.account_id, webhook_id)
        d = WebhookDelivery
        q = select(d).where(d.endpoint_id == webhook_id)
        if status is not None:
            q = q.where(d.status == status)
        if cursor:
            after = s.get(d, cursor)
            if after is None or after.endpoint_id != webhook_id:
                raise MocapdError("validation_error", "The cursor is not valid.")
            q = q.where(or_(d.created_at < after.created_at, and_(d.created_at == after.created_at, d.id < after.id)))
        rows = s.scalars(q.order_by(d.created_at.desc(), d.id.desc()).limit(limit + 1)).all()
        items = [_delivery_dict(r) for r in rows[:limit]]
        return _data({"items": items, "nextCursor": rows[limit - 1].id if len(rows) > limit else None})


def _redeliver(state: AppState, account_id: str, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    with state.db.write() as s:
        _owned(s, account_id, webhook_id)
        old = s.get(WebhookDelivery, delivery_id)
        if old is None or old.endpoint_id != webhook_id:
            raise MocapdError("webhook_delivery_not_found", f"No delivery {delivery_id!r} for this endpoint.")
        new = redeliver(s, old)
        s.flush()
        return _delivery_dict(new)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             response_model=Envelope[DeliveryOut], responses=_ERR,
             summary="Send a message again (a new delivery with the same webhook-id)")
async def redeliver_delivery(webhook_id: str, delivery_id: str, principal: Auth, state: State) -> Response:
    return _data(await run_in_threadpool(_redeliver, state, principal.account_id, webhook_id, delivery_id), 202)


def _test(state: AppState, account_id: str, webhook_id: str) -> dict[str, Any]:
    with state.db.write() as s:
        ep = _owned(s, account_id, webhook_id)
        msg_id = enqueue_event(s, account_id, "webhook.test", {"webhook": _endpoint_dict(ep)}, endpoint_id=ep.id)
        assert msg_id is not None
        delivery_id = s.scalar(select(WebhookDelivery.id).where(WebhookDelivery.message_id == msg_id))
        return {"webhookId": ep.id, "messageId": msg_id, "deliveryId": delivery_id}


@router.post("/{webhook_id}/test", status_code=202, response_model=Envelope[TestOut], responses=_ERR,
             summary="Send a webhook.test event to this endpoint")
async def test_webhook(webhook_id: str, principal: Auth, state: State) -> Response:
    return _data(await run_in_threadpool(_test, state, principal.account_id, webhook_id), 202)
