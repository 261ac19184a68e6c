"""One signed POST to a webhook endpoint, with the SSRF rules of SPEC section 13.

The host is resolved here, every address it resolves to is checked (loopback, private, link-local and
metadata, multicast are refused unless the operator allows private addresses), and the connection goes
to the checked address itself: the URL is rewritten to the IP, with the ``Host`` header and the TLS
server name (httpx's ``sni_hostname`` extension, which the certificate is also verified against) set to
the original host. So a name that resolves to a public address at the check and to 127.0.0.1 a moment
later (DNS rebinding) still reaches only the checked address. Each attempt uses its own connection: a
pool keyed by IP could hand one host's TLS connection to another host on the same address.

Redirects are never followed, the whole attempt is bounded by ``timeout_s``, and at most
``max_response_bytes`` of the answer are read.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks.webhooks import Webhook

from mocapd import __version__
from mocapd.domain.webhooks import UrlRefused, address_refusal, check_url

__all__ = ["MAX_RESPONSE_BYTES", "TIMEOUT_S", "Attempt", "resolve_checked", "send_signed"]

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
Resolver = Callable[..., list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Attempt:
    ok: bool
    response_status: int | None
    error: str | None
    response_bytes: int = 0  # how much of the answer was read (at most max_response_bytes)


_ssl_context: ssl.SSLContext | None = None


def _ssl() -> ssl.SSLContext:
    global _ssl_context  # built once (loading the CA store costs tens of milliseconds)
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def resolve_checked(host: str, port: int, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> str:
    """The address to connect to: ``host`` resolved; every address it resolves to must be allowed."""
    try:
        infos = resolver(host, port, 0, socket.SOCK_STREAM)
    except OSError as exc:
        raise UrlRefused(f"The host {host} does not resolve: {exc}.") from exc
    ips = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not allow_private and (why := address_refusal(ip)):
            raise UrlRefused(f"The host {host} resolves to {why} ({ip}).")
        ips.append(ip)
    if not ips:
        raise UrlRefused(f"The host {host} has no address.")
    return str(ips[0])


def send_signed(
    url: str,
    secret: str,
    message_id: str,
    body: str,
    *,
    allow_private: bool,
    timeout_s: float = TIMEOUT_S,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    resolver: Resolver = socket.getaddrinfo,
) -> Attempt:
    """POST ``body`` to ``url`` signed per Standard Webhooks (``webhook-id`` = ``message_id``)."""
    deadline = time.monotonic() + timeout_s
    try:
        scheme, host, port = check_url(url, allow_private=allow_private)
        ip = resolve_checked(host, port, allow_private=allow_private, resolver=resolver)
    except UrlRefused as exc:
        return Attempt(False, None, f"refused: {exc}")
    parts = urlsplit(url)
    ip_host = f"[{ip}]" if ":" in ip else ip
    pinned = urlunsplit((scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
    default_port = 443 if scheme == "https" else 80
    now = datetime.now(UTC)
    headers = {
        "host": host if port == default_port else f"{host}:{port}",
        "content-type": "application/json",
        "user-agent": f"mocapd-webhooks/{__version__}",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    try:
        with httpx.Client(
            verify=_ssl(), follow_redirects=False, trust_env=False, timeout=httpx.Timeout(timeout_s)
        ) as client:
            request = client.build_request("POST", pinned, content=body.encode(), headers=headers, extensions=extensions)
            response = client.send(request, stream=True)
            try:
                got = 0
                for chunk in response.iter_raw():
                    got += len(chunk)
                    if got >= max_response_bytes or time.monotonic() > deadline:
                        break
                got = min(got, max_response_bytes)
            finally:
                response.close()
    except httpx.TimeoutException:
        return Attempt(False, None, f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Attempt(False, None, f"request failed: {type(exc).__name__}: {exc}"[:500])
    status = response.status_code
    if 200 <= status < 300:
        return Attempt(True, status, None, got)
    if 300 <= status < 400:
        where = response.headers.get("location", "")[:200]
        return Attempt(False, status, f"redirect to {where!r} not followed", got)
    return Attempt(False, status, f"HTTP {status}", got)
