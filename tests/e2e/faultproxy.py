"""A fault-injecting HTTP/1.1 reverse proxy for the client's end-to-end tests.

It forwards every request to the real server (the ``Host`` header is kept, so the server signs upload and
download URLs that point back through the proxy) and, for requests matching a `Fault`, misbehaves:

| action | what the client sees | reaches the server? |
|---|---|---|
| ``drop_request`` | the connection closes without an answer | no |
| ``drop_response`` | the connection closes without an answer | yes (the answer is thrown away) |
| ``delay`` | no answer for ``delay_s`` (past the client's timeout), then the connection closes | yes |
| ``status`` | ``status`` (502/503...) with an HTML body, optional ``Retry-After`` | no |
| ``cut_body`` | the status line, headers and ``fraction`` of the body, then the connection closes | yes |
| ``hold`` | nothing until `Fault.release` (the test kills the client meanwhile) | if ``forward`` |

Faults match by method and a regular expression searched in the path; ``skip`` lets that many matching
requests through first, ``times`` is how many it then hits. Every request is logged.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

__all__ = ["Fault", "FaultProxy", "Logged"]

_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "content-length"}


@dataclass
class Fault:
    method: str
    path: str
    action: str
    times: int = 1
    skip: int = 0
    status: int = 503
    retry_after: str | None = None
    delay_s: float = 5.0
    fraction: float = 0.5
    forward: bool = True
    seen: int = 0
    hits: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path, path) is not None

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    action: str  # "pass" or the fault's action
    status: int | None
    headers: dict[str, str]


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.log: list[Logged] = []
        self._stopping = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._http = httpx.Client(timeout=60.0, follow_redirects=False)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            for f in self._faults:
                f.release()
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def add(self, method: str, path: str, action: str, **kw: Any) -> Fault:
        fault = Fault(method, path, action, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            for f in self._faults:
                f.release()
            self._faults.clear()
            self.log.clear()

    def count(self, method: str, path: str, action: str | None = None) -> int:
        with self._lock:
            return sum(1 for e in self.log if e.method == method and re.search(path, e.path)
                       and (action is None or e.action == action))

    # ------------------------------------------------------------------ internals
    def _pick(self, method: str, path: str) -> Fault | None:
        """The first fault due for this request. Every matching fault counts it (``skip`` counts all
        matching requests, whichever fault, if any, hit them)."""
        chosen = None
        with self._lock:
            for f in self._faults:
                if f.matches(method, path):
                    f.seen += 1
                    if chosen is None and f.seen > f.skip and f.hits < f.times:
                        f.hits += 1
                        chosen = f
        return chosen

    def _read_body(self, h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(h.rfile.read(size))
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> httpx.Response:
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in _HOP]
        r = self._http.request(h.command, self.upstream + h.path, headers=headers, content=body)
        r.read()
        return r

    def _record(self, h: BaseHTTPRequestHandler, action: str, status: int | None) -> None:
        with self._lock:
            self.log.append(Logged(h.command, h.path.split("?", 1)[0], action, status,
                                   {k.lower(): v for k, v in h.headers.items()}))

    @staticmethod
    def _kill(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, h: BaseHTTPRequestHandler, r: httpx.Response, body_bytes: int | None = None) -> None:
        h.send_response(r.status_code)
        for k, v in r.headers.multi_items():
            if k.lower() not in _HOP:
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(r.content)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(r.content if body_bytes is None else r.content[:body_bytes])
        h.wfile.flush()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        try:
            body = self._read_body(h)
            fault = self._pick(h.command, h.path.split("?", 1)[0])
            action = fault.action if fault else "pass"
            if fault is None:
                r = self._forward(h, body)
                self._record(h, action, r.status_code)
                self._send(h, r)
                return
            if action == "drop_request":
                self._record(h, action, None)
                return self._kill(h)
            if action == "status":
                self._record(h, action, fault.status)
                payload = b"<html><body>bad gateway</body></html>"
                h.send_response(fault.status)
                h.send_header("Content-Type", "text/html")
                h.send_header("Content-Length", str(len(payload)))
                if fault.retry_after is not None:
                    h.send_header("Retry-After", fault.retry_after)
                h.end_headers()
                h.wfile.write(payload)
                h.wfile.flush()
                return
            if action == "hold":
                r = self._forward(h, body) if fault.forward else None
                self._record(h, action, r.status_code if r is not None else None)
                fault.reached.set()
                fault.released.wait(60)
                return self._kill(h)
            r = self._forward(h, body)
            self._record(h, action, r.status_code)
            fault.reached.set()
            if action == "drop_response":
                return self._kill(h)
            if action == "delay":
                self._stopping.wait(fault.delay_s)
                return self._kill(h)
            if action == "cut_body":
                self._send(h, r, body_bytes=int(len(r.content) * fault.fraction))
                return self._kill(h)
            raise ValueError(f"unknown fault action {action!r}")
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
