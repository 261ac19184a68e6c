"""The problem+json error handler (RFC 9457): the only place errors become HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mocapd.domain.codes import ErrorCode, code_info
from mocapd.errors import MocapdError

__all__ = ["error_body", "install_error_handlers", "problem_body", "problem_response"]

PROBLEM_TYPE = "https://mocapd.dev/problems/"


def problem_body(
    code: ErrorCode,
    detail: str,
    *,
    stage: str | None = None,
    job_id: str | None = None,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9457 problem object for ``code`` (also listed, unsent, in a quote's ``problems``)."""
    info = code_info(code)
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": info.title,
        "status": info.http_status,
        "detail": detail,
        "code": code,
        "stage": stage or info.stage,
        "retryable": info.retryable,
        "retryFrom": info.retry_from.value,
    }
    if job_id:
        body["jobId"] = job_id
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return body


def error_body(exc: MocapdError, instance: str | None = None) -> dict[str, Any]:
    return problem_body(exc.code, exc.message, stage=exc.stage, job_id=exc.job_id, instance=instance,
                        extra=dict(exc.details) if exc.details else None)


def problem_response(
    code: ErrorCode,
    detail: str,
    *,
    stage: str | None = None,
    job_id: str | None = None,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = problem_body(code, detail, stage=stage, job_id=job_id, instance=instance, extra=extra)
    return JSONResponse(body, status_code=body["status"], media_type="application/problem+json", headers=headers)


_FIELD_CODES: dict[str, ErrorCode] = {"exportFps": "export_fps_invalid", "mocapType": "mocap_type_invalid"}
_HTTP_CODES: dict[int, ErrorCode] = {401: "unauthorized", 404: "job_not_found", 405: "validation_error",
                                     413: "payload_too_large"}


def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    code: ErrorCode = "validation_error"
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        errors.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
        if loc and loc[0] in _FIELD_CODES and code == "validation_error":
            code = _FIELD_CODES[loc[0]]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "The request is not valid."
    return problem_response(code, detail, instance=request.url.path, extra={"errors": errors})


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts on this path (Starlette names only the first route's)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MocapdError)
    async def _ours(request: Request, exc: MocapdError) -> JSONResponse:
        extra = dict(exc.details) if exc.details else None
        return problem_response(
            exc.code, exc.message, stage=exc.stage, job_id=exc.job_id, instance=request.url.path,
            extra=extra, headers=exc.headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "validation_error")
        if exc.status_code == 404 and not request.url.path.startswith("/api/v1/mocap/jobs/"):
            return JSONResponse(
                {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No such endpoint.",
                 "code": "not_found", "stage": "request", "retryable": False},
                status_code=404, media_type="application/problem+json",
            )
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            return JSONResponse(
                {"type": "about:blank", "title": "Method Not Allowed", "status": 405,
                 "detail": f"Use {', '.join(allowed)} on this path.", "code": "method_not_allowed", "stage": "request",
                 "retryable": False},
                status_code=405, media_type="application/problem+json", headers={"Allow": ", ".join(allowed)},
            )
        return problem_response(code, str(exc.detail), instance=request.url.path)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - a bug
        import logging

        logging.getLogger("mocapd.api").exception("unhandled error on %s", request.url.path)
        return problem_response("internal_error", "Internal error; the request can be retried.", instance=request.url.path)
