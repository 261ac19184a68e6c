"""Studio routes: the session exchange and the pages with their static files.

Every page is the same shell (index.html) that loads the app; the app then speaks the public API
with the session cookie. Static files are served from the package with a strict Content-Security-Policy
(no inline script, nothing from another origin but the object store's downloads), ETags and gzip.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from mocapd.api.auth import SESSION_COOKIE, Principal, require_account, same_origin
from mocapd.api.schemas import Envelope, Problem
from mocapd.api.state import AppState, get_state
from mocapd.db.studio_sessions import SESSION_TTL, end_session, find_session, start_session
from mocapd.errors import MocapdError

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
router = APIRouter(tags=["studio"])

_COMPRESSIBLE = {"text/html", "text/css", "text/javascript", "application/javascript", "application/json",
                 "image/svg+xml", "text/plain"}


class SignInIn(BaseModel):
    apiKey: str = Field(min_length=1, max_length=300)


class SessionOut(BaseModel):
    accountId: str
    csrfToken: str
    expiresAt: str


def _problems(*codes: int) -> dict[int | str, dict[str, object]]:
    return {c: {"model": Problem, "content": {"application/problem+json": {}}} for c in codes}


def _csp(state: AppState) -> str:
    store = ""
    s = state.settings
    if s.s3_endpoint_url:
        parts = urlsplit(s.s3_endpoint_url)
        store = f" {parts.scheme}://{parts.netloc}"
    elif (s.storage_url or "").startswith("s3://"):
        store = " https://*.amazonaws.com"
    # connect-src blob:: three.js's GLTFLoader reads a GLB's embedded textures (an avatar's look) by
    # fetching the blob: URLs it makes of them; blob: URLs are only ever created by the page itself
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob:{store}; connect-src 'self' blob:{store}; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def _security_headers(state: AppState) -> dict[str, str]:
    return {
        "Content-Security-Policy": _csp(state),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def _is_https(request: Request, state: AppState) -> bool:
    public = getattr(state.settings, "public_url", None) or ""
    return request.url.scheme == "https" or str(public).startswith("https://")


def _set_cookie(response: Response, request: Request, state: AppState, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int(SESSION_TTL.total_seconds()), path="/",
                        httponly=True, samesite="strict", secure=_is_https(request, state))


# ---- the session exchange -------------------------------------------------------------------------

@router.post("/api/v1/studio/session", status_code=201, response_model=Envelope[SessionOut],
             responses=_problems(401, 403, 413, 422, 429), summary="Sign in to the Studio with an API key")
def sign_in(body: SignInIn, request: Request, state: Annotated[AppState, Depends(get_state)]) -> Response:
    if not same_origin(request):
        raise MocapdError("studio_csrf_rejected", "Sign in from the Studio page itself.")
    with state.db.write() as s:
        old = request.cookies.get(SESSION_COOKIE)
        if old and (info := find_session(s, old)) is not None:
            end_session(s, info.id)  # a new sign-in never keeps a cookie it did not issue
        new = start_session(s, body.apiKey)
    if new is None:
        raise MocapdError("unauthorized", "That API key is unknown or has been revoked.")
    response = JSONResponse({"data": {"accountId": new.account_id, "csrfToken": new.csrf_token,
                                      "expiresAt": new.expires_at.isoformat().replace("+00:00", "Z")}},
                            status_code=201, headers={"Cache-Control": "no-store"})
    _set_cookie(response, request, state, new.token)
    return response


@router.get("/api/v1/studio/session", response_model=Envelope[SessionOut], responses=_problems(401, 429),
            summary="The current Studio session and its CSRF token")
def get_session(request: Request, state: Annotated[AppState, Depends(get_state)]) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    with state.db.connect() as conn:
        info = find_session(conn, token) if token else None
    if info is None:
        raise MocapdError("unauthorized", "Not signed in to the Studio.")
    return JSONResponse({"data": {"accountId": info.account_id, "csrfToken": info.csrf_token,
                                  "expiresAt": info.expires_at.isoformat().replace("+00:00", "Z")}},
                        headers={"Cache-Control": "no-store"})


@router.delete("/api/v1/studio/session", status_code=204, responses=_problems(401, 403, 429),
               summary="Sign out of the Studio")
def sign_out(request: Request, principal: Annotated[Principal, Depends(require_account)],
             state: Annotated[AppState, Depends(get_state)]) -> Response:
    if principal.session_id is not None:
        with state.db.write() as s:
            end_session(s, principal.session_id)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_is_https(request, state))
    return response


# ---- pages and static files -----------------------------------------------------------------------

@dataclass(frozen=True)
class _File:
    body: bytes
    gz: bytes | None
    etag: str
    content_type: str


_cache: dict[Path, _File] = {}


def _load(path: Path) -> _File:
    cached = _cache.get(path)
    if cached is not None:
        return cached
    body = path.read_bytes()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in (".js", ".mjs"):
        ctype = "text/javascript"
    gz = gzip.compress(body, 6, mtime=0) if ctype in _COMPRESSIBLE and len(body) > 1024 else None
    f = _File(body, gz, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', ctype)
    _cache[path] = f
    return f


def _send(request: Request, state: AppState, f: _File, *, cache: str) -> Response:
    headers = {**_security_headers(state), "ETag": f.etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == f.etag:
        return Response(status_code=304, headers=headers)
    body = f.body
    if f.gz is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body, headers["Content-Encoding"] = f.gz, "gzip"
    ctype = f.content_type + ("; charset=utf-8" if f.content_type.startswith("text/") else "")
    return Response(body, media_type=ctype, headers=headers)


@router.get("/studio/static/{name:path}", include_in_schema=False)
def studio_static(name: str, request: Request, state: Annotated[AppState, Depends(get_state)]) -> Response:
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or not path.is_file():
        return Response("Not found", status_code=404, media_type="text/plain", headers=_security_headers(state))
    return _send(request, state, _load(path), cache="no-cache")


@router.get("/studio", include_in_schema=False)
@router.get("/studio/{page:path}", include_in_schema=False)
def studio_page(request: Request, state: Annotated[AppState, Depends(get_state)], page: str = "") -> Response:
    return _send(request, state, _load(STATIC_DIR / "index.html"), cache="no-cache")
