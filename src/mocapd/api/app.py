"""The FastAPI application: create_app(settings) wires the database, the store and the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from mocapd import __version__
from mocapd.api.middleware import MAX_JSON_BODY, GuardAndCount
from mocapd.api.problems import install_error_handlers
from mocapd.api.signing import Signer
from mocapd.api.state import AppState
from mocapd.config import Settings, load_settings
from mocapd.db.engine import Database
from mocapd.storage import open_store

__all__ = ["MAX_JSON_BODY", "app_from_env", "create_app"]

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

    app.add_middleware(GuardAndCount)

    from mocapd.api import (
        routes_account,
        routes_avatars,
        routes_files,
        routes_jobs,
        routes_ops,
        routes_webhooks,
        tus,
    )
    from mocapd.api.schemas import Problem
    from mocapd.api.studio import routes as routes_studio

    # every call made with an API key spends from its request budget (mocapd.api.auth)
    limited: dict[int | str, dict[str, Any]] = {
        429: {"model": Problem, "content": {"application/problem+json": {}},
              "description": "Past the key's request budget (`rate_limited`, with `Retry-After`)"}
    }
    app.include_router(routes_jobs.router, responses=limited)
    app.include_router(routes_avatars.router)  # (its own responses; the budget applies all the same)
    app.include_router(routes_files.router)
    app.include_router(tus.router)
    app.include_router(routes_account.router, responses=limited)
    app.include_router(routes_webhooks.router, responses=limited)
    app.include_router(routes_ops.router)
    app.include_router(routes_studio.router)
    return app


def app_from_env() -> FastAPI:
    """The factory uvicorn calls in each of several API processes (settings from MOCAPD_* variables).
    Each such process stops with the `mocapd serve`/`mocapd api` process that started it."""
    from mocapd.logs import configure_logging
    from mocapd.proc import die_with_parent

    die_with_parent()
    configure_logging()
    return create_app(load_settings(), migrate=False)
