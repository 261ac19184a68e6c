"""A pure ASGI middleware (no BaseHTTPMiddleware overhead): holds every request body but the upload
PUT's to a size limit while it streams in, and counts requests and their time per route for /metrics.

The limit is applied here, on the bytes as they arrive, because a ``Content-Length`` header is only a
claim and a ``Transfer-Encoding: chunked`` body has none: the body is read once, up to the limit, and
handed to the application from memory. The upload PUT streams to storage under its own, plan-sized limit.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mocapd.api.problems import problem_response

__all__ = ["CLIENT_CLOSED", "MAX_JSON_BODY", "GuardAndCount"]

MAX_JSON_BODY = 64 * 1024  # JSON requests are small; a 10 MB body is refused before parsing
CLIENT_CLOSED = 499  # the status /metrics counts for a request whose client went away (nginx's convention)

log = logging.getLogger("mocapd.api")


class _Disconnected(Exception):
    """The client went away before its body was complete."""


def _streams_own_body(scope: Scope) -> bool:
    return str(scope["path"]).startswith("/uploads/")


class GuardAndCount:
    def __init__(self, app: ASGIApp, max_body: int = MAX_JSON_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        status = 500
        started = False
        t0 = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            if not _streams_own_body(scope):
                body = await self._read_body(scope, receive)
                if body is None:
                    # Connection: close makes the server drop the connection after answering, rather than
                    # keep reading (and discarding) the rest of a body that may never end.
                    response = problem_response(
                        "payload_too_large", f"Request bodies are limited to {self.max_body} bytes.", instance=path,
                        headers={"Connection": "close"},
                    )
                    await response(scope, receive, send_wrapper)
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_wrapper)
        except (ClientDisconnect, _Disconnected):
            # The client closed the connection mid-request: nothing to answer, nobody to answer to, and not
            # a server error. One line, no traceback; whatever the request was writing cleans itself up.
            log.info("client disconnected during %s %s", scope["method"], path)
            if not started:
                status = CLIENT_CLOSED
        finally:
            app: Any = scope.get("app")
            state = getattr(getattr(app, "state", None), "mocapd", None)
            if state is not None:
                route = getattr(scope.get("route"), "path", "unmatched")
                state.requests[(route, scope["method"], status)] += 1
                state.request_seconds[route] += time.perf_counter() - t0

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (declared or counted)."""
        for k, v in scope["headers"]:
            if k == b"content-length":
                declared = v.decode("latin-1")
                if not declared.isdigit() or int(declared) > self.max_body:
                    return None  # refused before a byte is read
        chunks: list[bytes] = []
        n = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            n += len(chunk)
            if n > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` in one message, then whatever the server says next (disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
