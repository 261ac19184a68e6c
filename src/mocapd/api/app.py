"""The FastAPI application: create_app(settings) wires the database, the store and the routers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from mocapd import __version__
from mocapd.api.problems import install_error_handlers, problem_response
from mocapd.api.signing import Signer
from mocapd.api.state import AppState
from mocapd.config import Settings, load_settings
from mocapd.db.engine import Database
from mocapd.storage import open_store

__all__ = ["MAX_JSON_BODY", "create_app"]

MAX_JSON_BODY = 64 * 1024  # JSON requests are small; a 10 MB body is refused before parsing

DESCRIPTION = """Asynchronous video motion capture: create a job, upload a video to the signed upload URL,
complete the upload, poll, and download the animated skeleton (FBX, BVH, glTF), Unitree G1 motion
(JSON, CSV), a preview video and a quality report. Errors are `application/problem+json` with `code`,
`stage` and `retryable`."""


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url)
        if migrate:
            from mocapd.db.migrate import upgrade

            upgrade(db)
        app.state.mocapd = AppState(settings, db, open_store(settings), Signer(settings.signing_secret()))
        try:
            yield
        finally:
            db.dispose()

    app = FastAPI(title="mocapd", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    install_error_handlers(app)

    @app.middleware("http")
    async def guard_and_count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method in ("POST", "PATCH") and not request.url.path.startswith("/uploads/"):
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_JSON_BODY):
                return problem_response("payload_too_large", f"JSON bodies are limited to {MAX_JSON_BODY} bytes.",
                                        instance=request.url.path)
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        state: AppState | None = getattr(request.app.state, "mocapd", None)
        if state is not None:
            state.requests[(path, request.method, response.status_code)] += 1
            state.request_seconds[path] += time.perf_counter() - t0
        return response

    from mocapd.api import routes_account, routes_files, routes_jobs, routes_ops

    app.include_router(routes_jobs.router)
    app.include_router(routes_files.router)
    app.include_router(routes_account.router)
    app.include_router(routes_ops.router)
    return app
