"""Webhook rules (SPEC section 13), pure: event types, which job events are state changes, the retry
schedule, and which addresses a webhook may reach."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_RETRY_SCHEDULE_S",
    "EVENT_TYPES",
    "UrlRefused",
    "address_refusal",
    "check_url",
    "parse_retry_schedule",
    "subscribed",
    "webhook_event_for",
]

EVENT_TYPES: tuple[str, ...] = (
    "job.queued",
    "job.processing",
    "job.completed",
    "job.failed",
    "job.canceled",
    "avatar.ready",
    "avatar.failed",
    "webhook.test",
)

DEFAULT_RETRY_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)

_WEBHOOK_STATUSES = frozenset({"queued", "processing", "completed", "failed", "canceled"})


def webhook_event_for(status: str) -> str | None:
    """The webhook event of a job's move to ``status`` (``job.<status>``); None for ``draft``."""
    return f"job.{status}" if status in _WEBHOOK_STATUSES else None


def subscribed(events: list[str] | tuple[str, ...], event_type: str) -> bool:
    return "*" in events or event_type in events


def parse_retry_schedule(text: str) -> tuple[float, ...]:
    """``"5,300,1800"`` -> the delays (seconds) before the 2nd, 3rd, ... attempt; after the last one
    the delivery is failed. Empty: no retries."""
    out: list[float] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value = float(part)
        if not value >= 0:
            raise ValueError(f"retry delays are seconds >= 0, not {part!r}")
        out.append(value)
    return tuple(out)


class UrlRefused(ValueError):
    """A webhook URL (or an address it resolves to) that the service will not call."""


_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


def address_refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not connect to ``ip`` (loopback, private, link-local - which holds the cloud
    metadata address 169.254.169.254 -, multicast, reserved, unspecified), or None if it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return address_refusal(ip.ipv4_mapped)
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local or cloud metadata address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "a private or reserved address"
    return None


def check_url(url: str, *, allow_private: bool) -> tuple[str, str, int]:
    """Check a webhook URL's form: ``https`` (``http`` too when private addresses are allowed), a host,
    no credentials; a literal IP address must pass `address_refusal`. Returns (scheme, host, port)."""
    if len(url) > 2000:
        raise UrlRefused("The URL is longer than 2000 characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"The URL is not valid: {exc}.") from exc
    scheme = parts.scheme.lower()
    allowed = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed:
        raise UrlRefused("Webhook URLs must use https.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UrlRefused("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("The URL must not carry credentials.")
    if parts.fragment:
        raise UrlRefused("The URL must not have a fragment.")
    if not allow_private:
        if host in _METADATA_HOSTS:  # names resolving to 127.0.0.1 and the like are caught after DNS
            raise UrlRefused(f"The host {host} is a cloud metadata service.")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and (why := address_refusal(ip)):
            raise UrlRefused(f"The URL points to {why}.")
    return scheme, host, port or (443 if scheme == "https" else 80)
