"""A real HTTP webhook receiver for tests: a threaded server on 127.0.0.1 that records every request
and answers from a script (status codes in turn, a redirect, a hang, an endless body)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival


@dataclass
class Receiver:
    """``answers``: what to answer, in turn (the last one repeats): an int status, ``"hang"``
    (sleep ``hang_s`` before answering), ``"redirect:<url>"`` (302) or ``"endless"`` (200 with a body
    that never ends)."""

    answers: list[Any] = field(default_factory=lambda: [200])
    hang_s: float = 30.0
    delay_s: float = 0.0  # before every answer
    received: list[Received] = field(default_factory=list)
    port: int = 0
    endless_sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cond: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def next_answer(self, body: bytes, headers: dict[str, str]) -> Any:
        with self._cond:
            n = len(self.received)
            self.received.append(Received(headers, body, time.time()))
            self._cond.notify_all()
            return self.answers[min(n, len(self.answers) - 1)]

    def wait_for(self, n: int, timeout_s: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the receiver got {len(self.received)} requests, expected {n}")
                self._cond.wait(left)
            return list(self.received)


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            answer = rx.next_answer(body, {k.lower(): v for k, v in self.headers.items()})
            try:
                time.sleep(rx.delay_s)
                if answer == "hang":
                    time.sleep(rx.hang_s)
                    answer = 200
                if isinstance(answer, str) and answer.startswith("redirect:"):
                    self.send_response(302)
                    self.send_header("location", answer.split(":", 1)[1])
                    self.send_header("content-length", "0")
                    self.end_headers()
                elif answer == "endless":
                    self.send_response(200)
                    self.send_header("content-type", "text/plain")
                    self.end_headers()  # no length: the body runs until the connection closes
                    chunk = b"x" * 16384
                    while rx.endless_sent < 1 << 30:
                        self.wfile.write(chunk)
                        rx.endless_sent += len(chunk)
                else:
                    payload = b"ok"
                    self.send_response(int(answer))
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

    return Handler


@contextmanager
def receiver(
    answers: list[Any] | None = None, *, hang_s: float = 30.0, delay_s: float = 0.0, port: int = 0
) -> Iterator[Receiver]:
    rx = Receiver(answers=answers or [200], hang_s=hang_s, delay_s=delay_s)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(rx))
    server.daemon_threads = True
    rx.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rx
    finally:
        server.shutdown()
        server.server_close()
