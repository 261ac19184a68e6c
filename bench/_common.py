"""What several bench scripts share: a free local port, and waiting for a started server's /readyz.

Imported as ``_common``: a script run as ``python bench/<name>.py`` has this folder on its path."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str) -> None:
    """Poll ``base``/readyz until it answers 200 (about 300 tries; the caller's first request then says
    whether the server came up)."""
    for _ in range(300):
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
