"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import ipaddress
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import func, select, text

from mocapd.api.schemas import Problem
from mocapd.api.state import AppState, get_state
from mocapd.db.diagnose import explain_database_error
from mocapd.db.models import Job
from mocapd.errors import MocapdError

router = APIRouter(tags=["operations"])
State = Annotated[AppState, Depends(get_state)]


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database and the object store are reachable",
            responses={503: {"description": "Not ready"}})
def readyz(state: State) -> Response:
    checks: dict[str, str] = {}
    try:
        with state.db.read() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this endpoint is for load balancers
        checks["database"] = f"error: {explain_database_error(exc, state.settings.resolved_database_url) or type(exc).__name__}"
    try:
        state.store.ping()
        checks["storage"] = "ok"
    except MocapdError as exc:  # the store says what is wrong in words
        checks["storage"] = f"error: {exc.message}"
    except Exception as exc:
        checks["storage"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_metrics_access(request: Request, state: State) -> None:
    """/metrics counts every account's jobs: with MOCAPD_METRICS_TOKEN it takes that bearer token from
    anywhere; without it, it answers only clients on this machine (loopback)."""
    token = state.settings.metrics_token
    if token:
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise MocapdError("unauthorized", "/metrics needs the metrics token: Authorization: Bearer <token>.",
                              headers={"WWW-Authenticate": "Bearer"})
    elif not _loopback(request):
        raise MocapdError("unauthorized", "/metrics answers only this machine unless MOCAPD_METRICS_TOKEN is set.",
                          headers={"WWW-Authenticate": "Bearer"})


_METRICS_401: dict[int | str, dict[str, Any]] = {401: {"model": Problem, "description": "Not from this machine, or without the metrics token",
                      "content": {"application/problem+json": {}}}}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics", responses=_METRICS_401,
            dependencies=[Depends(require_metrics_access)])
def metrics(state: State) -> PlainTextResponse:
    lines = [
        "# HELP mocapd_up 1 while the API process runs.",
        "# TYPE mocapd_up gauge",
        "mocapd_up 1",
        "# HELP mocapd_uptime_seconds Seconds since the API process started.",
        "# TYPE mocapd_uptime_seconds gauge",
        f"mocapd_uptime_seconds {time.time() - state.started_at:.1f}",
        "# HELP mocapd_http_requests_total HTTP requests by route, method and status.",
        "# TYPE mocapd_http_requests_total counter",
    ]
    for (route, method, status), n in sorted(state.requests.items()):
        lines.append(f'mocapd_http_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}')
    lines += [
        "# HELP mocapd_http_request_seconds_total Time spent serving requests by route.",
        "# TYPE mocapd_http_request_seconds_total counter",
    ]
    for route, secs in sorted(state.request_seconds.items()):
        lines.append(f'mocapd_http_request_seconds_total{{route="{route}"}} {secs:.6f}')
    lines += ["# HELP mocapd_jobs Jobs by status.", "# TYPE mocapd_jobs gauge"]
    with state.db.read() as s:
        counts = {str(st): int(n) for st, n in s.execute(select(Job.status, func.count()).group_by(Job.status))}
    for job_status in ("draft", "queued", "processing", "completed", "failed", "canceled"):
        lines.append(f'mocapd_jobs{{status="{job_status}"}} {counts.get(job_status, 0)}')
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
