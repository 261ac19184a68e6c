"""A pure ASGI middleware (no BaseHTTPMiddleware overhead): refuses oversized JSON bodies before
they are read, and counts requests and their time per route for /metrics."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mocapd.api.problems import problem_response

__all__ = ["MAX_JSON_BODY", "GuardAndCount"]

MAX_JSON_BODY = 64 * 1024  # JSON requests are small; a 10 MB body is refused before parsing


class GuardAndCount:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["method"] in ("POST", "PATCH") and not path.startswith("/uploads/"):
            length = None
            for k, v in scope["headers"]:
                if k == b"content-length":
                    length = v.decode("latin-1")
                    break
            if length is not None and (not length.isdigit() or int(length) > MAX_JSON_BODY):
                response = problem_response(
                    "payload_too_large", f"JSON bodies are limited to {MAX_JSON_BODY} bytes.", instance=path
                )
                await response(scope, receive, send)
                return
        status = 500
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            app: Any = scope.get("app")
            state = getattr(getattr(app, "state", None), "mocapd", None)
            if state is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                state.requests[(route, scope["method"], status)] += 1
                state.request_seconds[route] += time.perf_counter() - t0
