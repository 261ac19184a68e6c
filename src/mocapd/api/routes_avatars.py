"""/api/v1/avatars (SPEC 12): create, upload (signed PUT), complete-upload (prepare), list, get, patch, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from mocapd.api.auth import Principal, require_account
from mocapd.api.avatars import AvatarService, avatar_upload_rules
from mocapd.api.schemas import Envelope, Problem
from mocapd.api.state import AppState, get_state
from mocapd.errors import MocapdError
from mocapd.storage import StoredObject, TooLarge

router = APIRouter(tags=["avatars"])
Auth = Annotated[Principal, Depends(require_account)]
State = Annotated[AppState, Depends(get_state)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": Problem, "content": {"application/problem+json": {}}} for s in (401, 403, 404, 409, 413, 422)
}


class CreateAvatarIn(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    name: StrictStr = Field(..., min_length=1, max_length=200)
    sourceFilename: StrictStr = Field(..., min_length=1)
    sourceBytes: StrictInt | None = None
    sourceSha256: StrictStr | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class PatchAvatarIn(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    name: StrictStr | None = Field(None, min_length=1, max_length=200)
    mapping: dict[StrictStr, StrictStr] | None = Field(None, max_length=64)


class AvatarOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    avatarId: str
    name: str
    status: str


class CreateAvatarOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    avatarId: str
    status: str
    uploadUrl: str
    uploadUrlExpiresAt: str
    maxUploadBytes: int


class AvatarPage(BaseModel):
    items: list[AvatarOut]
    nextCursor: str | None


def _svc(state: AppState, request: Request) -> AvatarService:
    return AvatarService(state, state.base_url(request))


def _data(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"data": data}, status_code=status_code, headers=headers)


@router.post("/api/v1/avatars", status_code=201, response_model=Envelope[CreateAvatarOut],
             responses={**_ERRORS, 200: {"model": Envelope[CreateAvatarOut], "description": "An idempotent replay"}},
             summary="Create an avatar (status draft) and get its upload URL")
async def create_avatar(
    request: Request,
    body: CreateAvatarIn,
    principal: Auth,
    state: State,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=300)] = None,
) -> Response:
    raw = json.loads(await request.body())
    status, out, replayed = await run_in_threadpool(
        _svc(state, request).create, principal.account_id, body.model_dump(), raw, idempotency_key
    )
    return _data(out, status, {"Idempotent-Replayed": "true"} if replayed else None)


@router.post("/api/v1/avatars/{avatar_id}/complete-upload", response_model=Envelope[AvatarOut], responses=_ERRORS,
             summary="Prepare the uploaded model: skeleton, mesh, skin, units, rest pose, bone mapping (idempotent)")
def complete_avatar(avatar_id: str, request: Request, principal: Auth, state: State) -> Response:
    return _data(_svc(state, request).complete(principal.account_id, avatar_id))


@router.get("/api/v1/avatars", response_model=Envelope[AvatarPage], responses=_ERRORS,
            summary="The account's avatars, newest first")
def list_avatars(
    request: Request,
    principal: Auth,
    state: State,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    return _data(_svc(state, request).page(principal.account_id, limit, cursor))


@router.get("/api/v1/avatars/{avatar_id}", response_model=Envelope[AvatarOut], responses=_ERRORS, summary="An avatar")
def get_avatar(avatar_id: str, request: Request, principal: Auth, state: State) -> Response:
    return _data(_svc(state, request).get(principal.account_id, avatar_id))


@router.patch("/api/v1/avatars/{avatar_id}", response_model=Envelope[AvatarOut], responses=_ERRORS,
              summary="Rename the avatar or correct its bone mapping (validated again)")
def patch_avatar(avatar_id: str, body: PatchAvatarIn, request: Request, principal: Auth, state: State) -> Response:
    return _data(_svc(state, request).patch(principal.account_id, avatar_id, body.name, body.mapping))


@router.delete("/api/v1/avatars/{avatar_id}", status_code=204, responses=_ERRORS,
               summary="Delete the avatar and its files (finished jobs keep theirs)")
def delete_avatar(avatar_id: str, request: Request, principal: Auth, state: State) -> Response:
    _svc(state, request).delete(principal.account_id, avatar_id)
    return Response(status_code=204)


@router.put("/uploads/avatars/{avatar_id}", response_model=Envelope[dict[str, Any]], responses=_ERRORS,
            tags=["signed URLs"], summary="Upload an avatar's model file to its signed upload URL")
async def put_avatar_upload(
    avatar_id: str,
    request: Request,
    state: State,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    svc = _svc(state, request)
    if len(avatar_id) > 64:
        raise MocapdError("upload_url_invalid", "The upload link is not valid.")
    av = await run_in_threadpool(svc.upload_target, avatar_id)
    state.signer.verify("upload", "avatar:" + av.id, av.source_key, expires, signature)
    rules = avatar_upload_rules(av)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        rules.check_limit(int(declared))

    def check(obj: StoredObject) -> None:
        rules.check_received(obj.bytes, obj.sha256)

    try:
        stored = await state.store.put_stream(av.source_key, request.stream(), rules.limit_bytes, check)
    except TooLarge:
        raise rules.too_large() from None
    await run_in_threadpool(svc.record_upload, av.id, stored.bytes, stored.sha256)
    return JSONResponse({"data": {"bytes": stored.bytes, "sha256": stored.sha256}})
